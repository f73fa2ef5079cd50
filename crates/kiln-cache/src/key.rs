//! The cache key: every input that shapes a build's output, as one canonical document.

use kiln_core::{Digest, canonical};
use serde::{Deserialize, Serialize};

/// `schema` of a [`KeyDocument`]. A change in what the fields mean is a new URI, so an old
/// entry can never match a new build.
pub const KEY_SCHEMA: &str = "https://kiln.dev/cache-key/v1";

/// Every input that shapes the output. Serialized canonically; its sha256 is the key.
///
/// Sets are normalized before hashing ([`KeyDocument::normalized`]): `crates`, `features`
/// and `environment` are sorted and deduplicated, so the order a caller collected them in
/// does not matter. `rustflags` keep their order (a later flag can override an earlier one).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyDocument {
    /// [`KEY_SCHEMA`].
    pub schema: String,
    pub kiln_version: String,
    /// sha256 of the toolchain lock file.
    pub toolchain_lock: Digest,
    /// sha256 of `Cargo.lock`.
    pub cargo_lock: Digest,
    /// (name, version, checksum) of every registry crate.
    pub crates: Vec<(String, String, String)>,
    /// [`crate::source_tree_digest`] of the project.
    pub source_tree: Digest,
    /// The image spec from kiln.toml, as a JSON value (object keys are sorted on output).
    pub image: serde_json::Value,
    pub target: String,
    pub profile: String,
    pub features: Vec<String>,
    pub no_default_features: bool,
    pub rustflags: Vec<String>,
    /// The environment allowlist.
    pub environment: Vec<String>,
    pub source_date_epoch: u64,
}

impl KeyDocument {
    /// The document with its sets sorted and deduplicated: the form that is hashed, stored
    /// and attested.
    pub fn normalized(&self) -> KeyDocument {
        fn set<T: Ord + Clone>(v: &[T]) -> Vec<T> {
            let mut v = v.to_vec();
            v.sort();
            v.dedup();
            v
        }
        KeyDocument {
            crates: set(&self.crates),
            features: set(&self.features),
            environment: set(&self.environment),
            ..self.clone()
        }
    }

    /// The canonical JSON of the normalized document.
    pub fn to_bytes(&self) -> Vec<u8> {
        canonical::to_vec(&self.normalized()).expect("a key document serializes")
    }

    /// The cache key: sha256 of [`KeyDocument::to_bytes`].
    pub fn key(&self) -> Digest {
        Digest::of(&self.to_bytes())
    }

    /// The top-level fields in which `self` and `other` differ (after normalization), for
    /// messages that say what changed.
    pub fn differing_fields(&self, other: &KeyDocument) -> Vec<String> {
        let a = serde_json::to_value(self.normalized()).expect("a key document serializes");
        let b = serde_json::to_value(other.normalized()).expect("a key document serializes");
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => a
                .iter()
                .filter(|(k, v)| b.get(*k) != Some(v))
                .map(|(k, _)| k.clone())
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn sample() -> KeyDocument {
        KeyDocument {
            schema: KEY_SCHEMA.into(),
            kiln_version: "0.1.0".into(),
            toolchain_lock: Digest::of(b"toolchain.lock"),
            cargo_lock: Digest::of(b"Cargo.lock"),
            crates: vec![
                ("anyhow".into(), "1.0.0".into(), "aa".into()),
                ("serde".into(), "1.0.200".into(), "bb".into()),
            ],
            source_tree: Digest::of(b"tree"),
            image: json!({"base": "scratch", "entrypoint": ["/hello"], "labels": {"a": "1"}}),
            target: "x86_64-unknown-linux-musl".into(),
            profile: "release".into(),
            features: vec!["a".into(), "b".into()],
            no_default_features: false,
            rustflags: vec!["-Ccodegen-units=1".into()],
            environment: vec!["LANG".into(), "TZ".into()],
            source_date_epoch: 1_700_000_000,
        }
    }

    #[test]
    fn same_document_same_key() {
        assert_eq!(sample().key(), sample().key());
        assert_eq!(sample().to_bytes(), sample().to_bytes());
        assert_eq!(sample().key(), Digest::of(&sample().to_bytes()));
    }

    #[test]
    fn every_field_changes_the_key() {
        let base = sample().key();
        let changed = |f: &dyn Fn(&mut KeyDocument)| {
            let mut d = sample();
            f(&mut d);
            d.key()
        };
        assert_ne!(
            changed(&|d| d.schema = "https://kiln.dev/cache-key/v2".into()),
            base,
            "schema"
        );
        assert_ne!(
            changed(&|d| d.kiln_version = "0.2.0".into()),
            base,
            "kiln_version"
        );
        assert_ne!(
            changed(&|d| d.toolchain_lock = Digest::of(b"x")),
            base,
            "toolchain_lock"
        );
        assert_ne!(
            changed(&|d| d.cargo_lock = Digest::of(b"x")),
            base,
            "cargo_lock"
        );
        assert_ne!(
            changed(&|d| d.crates[0].1 = "1.0.1".into()),
            base,
            "crates: version"
        );
        assert_ne!(
            changed(&|d| d.crates[0].2 = "cc".into()),
            base,
            "crates: checksum"
        );
        assert_ne!(changed(&|d| drop(d.crates.pop())), base, "crates: removed");
        assert_ne!(
            changed(&|d| d.source_tree = Digest::of(b"x")),
            base,
            "source_tree"
        );
        assert_ne!(
            changed(&|d| d.image["labels"]["a"] = json!("2")),
            base,
            "image"
        );
        assert_ne!(
            changed(&|d| d.target = "aarch64-unknown-linux-musl".into()),
            base,
            "target"
        );
        assert_ne!(changed(&|d| d.profile = "dev".into()), base, "profile");
        assert_ne!(changed(&|d| d.features.push("c".into())), base, "features");
        assert_ne!(
            changed(&|d| d.no_default_features = true),
            base,
            "no_default_features"
        );
        assert_ne!(
            changed(&|d| d.rustflags.push("-Copt-level=2".into())),
            base,
            "rustflags"
        );
        assert_ne!(
            changed(&|d| d.environment.push("HOME".into())),
            base,
            "environment"
        );
        assert_ne!(
            changed(&|d| d.source_date_epoch += 1),
            base,
            "source_date_epoch"
        );
        // Flag order is meaningful.
        let two = |d: &mut KeyDocument| d.rustflags = vec!["-Ca".into(), "-Cb".into()];
        let swapped = |d: &mut KeyDocument| d.rustflags = vec!["-Cb".into(), "-Ca".into()];
        assert_ne!(changed(&two), changed(&swapped), "rustflags order");
    }

    #[test]
    fn canonical_bytes_do_not_depend_on_construction_order() {
        let mut other = sample();
        other.crates.reverse();
        other.features = vec!["b".into(), "a".into(), "a".into()];
        other.environment = vec!["TZ".into(), "LANG".into()];
        // The same image spec with its keys inserted in another order.
        let mut labels = serde_json::Map::new();
        labels.insert("a".into(), json!("1"));
        let mut image = serde_json::Map::new();
        image.insert("labels".into(), labels.into());
        image.insert("entrypoint".into(), json!(["/hello"]));
        image.insert("base".into(), json!("scratch"));
        other.image = image.into();
        assert_eq!(other.to_bytes(), sample().to_bytes());
        assert_eq!(other.key(), sample().key());
        let text = String::from_utf8(sample().to_bytes()).unwrap();
        assert!(text.starts_with("{\"cargo_lock\":\"sha256:"), "{text}");
        let back: KeyDocument = serde_json::from_slice(text.as_bytes()).unwrap();
        assert_eq!(back, sample().normalized());
    }

    #[test]
    fn differing_fields_names_what_changed() {
        let mut d = sample();
        d.target = "other".into();
        d.features.reverse();
        assert_eq!(d.differing_fields(&sample()), ["target"]);
    }
}
