//! The store: an OCI image layout holding one artifact manifest per cache entry.
//!
//! ```text
//! <dir>/oci-layout                {"imageLayoutVersion":"1.0.0"}
//! <dir>/index.json                one descriptor per entry, annotated dev.kiln.cache.key
//! <dir>/blobs/sha256/<hex>        manifests, key documents, outputs, attestations
//! <dir>/lock                      held (flock) while index.json is rewritten
//! ```
//!
//! An entry's manifest has `artifactType` [`ARTIFACT_TYPE`], the key document as its config
//! ([`KEY_MEDIA_TYPE`]), one [`OUTPUT_MEDIA_TYPE`] layer per output titled with its name,
//! and a last layer, the Sigstore bundle of the signed statement ([`ATTESTATION_TITLE`]).
//! Blobs appear by rename; `index.json` is rewritten by rename under the lock, so readers
//! never lock and never see a partial file.
//!
//! An entry travels as it is: [`Store::export`] hands out its manifest and blobs (to push
//! to a registry), [`Store::import`] takes an entry's manifest and fetches its blobs into
//! the store, verifying it exactly as [`Store::get`] does before it is indexed.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use kiln_attest::attach::{ANNOTATION_TITLE, Descriptor, MEDIA_TYPE_MANIFEST};
use kiln_attest::dsse::{BUNDLE_MEDIA_TYPE, Bundle, Envelope};
use kiln_attest::provenance::{ResourceDescriptor, STATEMENT_TYPE, Statement};
use kiln_attest::{PublicKey, SigningKey};
use kiln_core::{Digest, canonical, fsx};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CacheError, io};
use crate::key::KeyDocument;

/// `artifactType` of a cache entry's manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.kiln.cache.v1";
/// Media type of the config blob: the canonical key document.
pub const KEY_MEDIA_TYPE: &str = "application/vnd.kiln.cache.key.v1+json";
/// Media type of an output layer.
pub const OUTPUT_MEDIA_TYPE: &str = "application/octet-stream";
/// Title of the attestation layer (a Sigstore bundle v0.3).
pub const ATTESTATION_TITLE: &str = "attestation.sigstore.json";
/// Predicate type of the statement binding a key to output digests.
pub const PREDICATE_TYPE: &str = "https://kiln.dev/attestations/build-cache/v1";
/// Annotation, on the manifest and its index entry, holding the key digest.
pub const ANNOTATION_KEY: &str = "dev.kiln.cache.key";

const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_LAYOUT: &str = "oci-layout";
const OCI_LAYOUT_BYTES: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const INDEX: &str = "index.json";
const BLOBS: &str = "blobs";
const LOCK: &str = "lock";

/// One cached output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Relative path, `/`-separated, without `.`, `..` or empty components.
    pub name: String,
    /// Where the file is now.
    pub path: PathBuf,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub manifest_digest: Digest,
    pub key: Digest,
    /// The Sigstore bundle bytes (the attestation layer).
    pub attestation: Vec<u8>,
}

/// A verified entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub entry: Entry,
    /// (output name, blob path, sha256), sorted by name. Each blob had this digest when
    /// [`Store::get`] read it; [`Hit::extract`] copies them and checks again.
    pub files: Vec<(String, PathBuf, Digest)>,
    /// Key id of the trusted key whose signature verified.
    pub signer: String,
}

/// The result of [`Store::get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Hit(Hit),
    /// No entry has this key.
    Miss,
    /// Entries have this key and none verified: why each was refused.
    Refused(Vec<String>),
}

/// A cache directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// An OCI image index, keeping entries it does not know as they are.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    manifests: Vec<Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

impl Index {
    fn empty() -> Self {
        Index {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_INDEX.into()),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }
}

/// An entry's image manifest.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: String,
    artifact_type: String,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// The statement's predicate.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Predicate {
    key: Digest,
    key_document: KeyDocument,
}

fn key_of(v: &Value) -> Option<&str> {
    v.get("annotations")?.get(ANNOTATION_KEY)?.as_str()
}

impl Store {
    /// Opens the store in `dir`, creating it if missing. A directory holding anything but
    /// a store is refused (the cache never litters a directory it was pointed at by
    /// mistake).
    pub fn open(dir: &Path) -> Result<Store, CacheError> {
        fsx::create_dir_all(dir).map_err(io("cannot create", dir))?;
        let store = Store {
            dir: dir.to_path_buf(),
        };
        let layout = dir.join(OCI_LAYOUT);
        match std::fs::read(&layout) {
            Ok(bytes) => check_layout(&layout, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                store.check_only_ours()?;
                fsx::write_atomic(&layout, OCI_LAYOUT_BYTES)
                    .map_err(io("cannot write", &layout))?;
            }
            Err(e) => return Err(io("cannot read", &layout)(e)),
        }
        let index = store.index_path();
        if !index.exists() {
            let _lock = store.lock()?;
            if !index.exists() {
                store.write_index(&Index::empty())?;
            }
        }
        Ok(store)
    }

    /// `$KILN_CACHE_DIR`, else `$XDG_CACHE_HOME/kiln`, else `$HOME/.cache/kiln`; `None` if
    /// none is set (empty counts as unset; a relative `$XDG_CACHE_HOME` is ignored, as the
    /// XDG spec says).
    pub fn default_dir() -> Option<PathBuf> {
        default_dir_from(&|v| std::env::var_os(v))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores `outputs` under `key`, signed by `signer`, replacing any entry with the same
    /// key.
    pub fn put(
        &self,
        key: &KeyDocument,
        outputs: &[Output],
        signer: &SigningKey,
    ) -> Result<Entry, CacheError> {
        let doc = key.normalized();
        let key_bytes = doc.to_bytes();
        let key_digest = Digest::of(&key_bytes);

        let mut outputs: Vec<&Output> = outputs.iter().collect();
        outputs.sort_by(|a, b| a.name.cmp(&b.name));
        for (i, o) in outputs.iter().enumerate() {
            check_name(&o.name).map_err(|message| CacheError::InvalidOutput {
                name: o.name.clone(),
                message,
            })?;
            if i > 0 && outputs[i - 1].name == o.name {
                return Err(CacheError::InvalidOutput {
                    name: o.name.clone(),
                    message: "given twice".into(),
                });
            }
        }

        let mut layers = Vec::with_capacity(outputs.len() + 1);
        let mut subject = Vec::with_capacity(outputs.len());
        for o in &outputs {
            let bytes = std::fs::read(&o.path).map_err(io("cannot read output", &o.path))?;
            let d = self.write_blob(&bytes)?;
            layers.push(descriptor(
                OUTPUT_MEDIA_TYPE,
                d,
                bytes.len(),
                BTreeMap::from([(ANNOTATION_TITLE.into(), o.name.clone())]),
            ));
            subject.push(ResourceDescriptor::sha256(o.name.clone(), d));
        }

        let statement = Statement {
            type_: STATEMENT_TYPE.into(),
            subject,
            predicate_type: PREDICATE_TYPE.into(),
            predicate: serde_json::to_value(Predicate {
                key: key_digest,
                key_document: doc,
            })
            .expect("a predicate serializes"),
        };
        let payload = canonical::to_vec(&statement).expect("a statement serializes");
        let bundle = Bundle::keyed(Envelope::sign(&payload, signer), signer.public());
        let attestation = canonical::to_vec(&bundle).expect("a bundle serializes");
        let att = self.write_blob(&attestation)?;
        layers.push(descriptor(
            BUNDLE_MEDIA_TYPE,
            att,
            attestation.len(),
            BTreeMap::from([(ANNOTATION_TITLE.into(), ATTESTATION_TITLE.into())]),
        ));

        let config = self.write_blob(&key_bytes)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: MEDIA_TYPE_MANIFEST.into(),
            artifact_type: ARTIFACT_TYPE.into(),
            config: descriptor(KEY_MEDIA_TYPE, config, key_bytes.len(), BTreeMap::new()),
            layers,
            annotations: BTreeMap::from([(ANNOTATION_KEY.into(), key_digest.to_string())]),
        };
        let manifest_bytes = canonical::to_vec(&manifest).expect("a manifest serializes");
        let manifest_digest = self.write_blob(&manifest_bytes)?;
        self.list(
            manifest_descriptor(manifest_digest, manifest_bytes.len(), key_digest),
            key_digest,
        )?;
        Ok(Entry {
            manifest_digest,
            key: key_digest,
            attestation,
        })
    }

    /// The verified entry for `key`, or why none is usable. Only a store that cannot be
    /// read at all is an error; an entry that does not verify is [`Lookup::Refused`].
    pub fn get(&self, key: &KeyDocument, trusted: &[PublicKey]) -> Result<Lookup, CacheError> {
        let key_bytes = key.to_bytes();
        let key_digest = Digest::of(&key_bytes);
        let key_text = key_digest.to_string();
        let index = self.read_index()?;
        let candidates: Vec<&Value> = index
            .manifests
            .iter()
            .filter(|m| key_of(m) == Some(key_text.as_str()))
            .collect();
        if candidates.is_empty() {
            return Ok(Lookup::Miss);
        }
        let mut refused = Vec::new();
        // The latest entry last in the index is tried first.
        for c in candidates.into_iter().rev() {
            let desc: Descriptor = match serde_json::from_value(c.clone()) {
                Ok(d) => d,
                Err(e) => {
                    refused.push(format!(
                        "{INDEX} entry for {key_text}: not a descriptor ({e})"
                    ));
                    continue;
                }
            };
            match self.verify(&desc, key, &key_bytes, key_digest, trusted) {
                Ok(hit) => return Ok(Lookup::Hit(hit)),
                Err(why) => refused.push(format!("entry {}: {why}", desc.digest)),
            }
        }
        Ok(Lookup::Refused(refused))
    }

    /// The manifest bytes (an OCI image manifest) and blobs of the stored entry
    /// `manifest_digest` (as [`Store::put`] returned it), for copying the entry elsewhere:
    /// the config and every layer as (digest, size, blob path), config first, each once,
    /// each checked against its digest.
    #[allow(clippy::type_complexity)]
    pub fn export(
        &self,
        manifest_digest: &Digest,
    ) -> Result<(Vec<u8>, Vec<(Digest, u64, PathBuf)>), CacheError> {
        let path = self.blob_path(manifest_digest);
        let corrupt = |message: String| CacheError::Corrupt {
            path: path.clone(),
            message,
        };
        let manifest = std::fs::read(&path).map_err(io("cannot read", &path))?;
        let actual = Digest::of(&manifest);
        if actual != *manifest_digest {
            return Err(corrupt(format!(
                "manifest is {actual}, expected {manifest_digest}"
            )));
        }
        let m: Manifest = serde_json::from_slice(&manifest)
            .map_err(|e| corrupt(format!("not an image manifest ({e})")))?;
        let mut blobs: Vec<(Digest, u64, PathBuf)> = Vec::with_capacity(m.layers.len() + 1);
        for d in std::iter::once(&m.config).chain(&m.layers) {
            if blobs.iter().any(|(have, _, _)| *have == d.digest) {
                continue;
            }
            let p = self.blob_path(&d.digest);
            let (got, size) = hash_file(&p).map_err(io("cannot read", &p))?;
            if got != d.digest || size != d.size {
                return Err(CacheError::Corrupt {
                    path: p,
                    message: format!(
                        "{size} bytes of {got}, the manifest says {} bytes of {}",
                        d.size, d.digest
                    ),
                });
            }
            blobs.push((d.digest, d.size, p));
        }
        Ok((manifest, blobs))
    }

    /// Takes in the entry whose manifest is `manifest` (from elsewhere: a registry), for
    /// `key`. Blobs the store lacks are fetched with `fetch(digest, size, file)` into a
    /// temporary file in the store, checked against their digest and size, and renamed
    /// into place; the entry is then verified exactly as [`Store::get`] verifies a local
    /// one, and only a verified entry is added to the index (replacing any with the same
    /// key). `Err` from `fetch` stops the import and is returned as `Ok(Err(_))`; an entry
    /// that does not verify is [`Lookup::Refused`] and is not indexed.
    pub fn import<E>(
        &self,
        key: &KeyDocument,
        trusted: &[PublicKey],
        manifest: &[u8],
        fetch: &mut dyn FnMut(&Digest, u64, &mut std::fs::File) -> Result<(), E>,
    ) -> Result<Result<Lookup, E>, CacheError> {
        let key_bytes = key.to_bytes();
        let key_digest = Digest::of(&key_bytes);
        let manifest_digest = Digest::of(manifest);
        let refused = |why: String| {
            Ok(Ok(Lookup::Refused(vec![format!(
                "entry {manifest_digest}: {why}"
            )])))
        };
        // What can be checked before fetching anything is.
        let m: Manifest = match serde_json::from_slice(manifest) {
            Ok(m) => m,
            Err(e) => return refused(format!("manifest is not an image manifest ({e})")),
        };
        if m.media_type != MEDIA_TYPE_MANIFEST || m.artifact_type != ARTIFACT_TYPE {
            return refused(format!(
                "manifest is `{}` with artifactType `{}`, expected `{MEDIA_TYPE_MANIFEST}` with `{ARTIFACT_TYPE}`",
                m.media_type, m.artifact_type
            ));
        }
        let annotated = m.annotations.get(ANNOTATION_KEY).map(String::as_str);
        if annotated != Some(key_digest.to_string().as_str()) {
            return refused(format!(
                "manifest is annotated with key {}, not {key_digest}",
                annotated.unwrap_or("(none)")
            ));
        }
        for d in std::iter::once(&m.config).chain(&m.layers) {
            let path = self.blob_path(&d.digest);
            if hash_file(&path).is_ok_and(|have| have == (d.digest, d.size)) {
                continue;
            }
            match self.fetch_blob(&d.digest, d.size, fetch)? {
                Ok(Ok(())) => {}
                Ok(Err(why)) => return refused(why),
                Err(e) => return Ok(Err(e)),
            }
        }
        self.write_blob(manifest)?;
        let desc = manifest_descriptor(manifest_digest, manifest.len(), key_digest);
        let hit = match self.verify(&desc, key, &key_bytes, key_digest, trusted) {
            Ok(hit) => hit,
            Err(why) => return refused(why),
        };
        self.list(desc, key_digest)?;
        Ok(Ok(Lookup::Hit(hit)))
    }

    /// One blob of [`Store::import`]: fetched into a temporary file beside its final path,
    /// checked, renamed into place. The inner `Err` is why the bytes fetched are refused.
    fn fetch_blob<E>(
        &self,
        d: &Digest,
        size: u64,
        fetch: &mut dyn FnMut(&Digest, u64, &mut std::fs::File) -> Result<(), E>,
    ) -> Result<Result<Result<(), String>, E>, CacheError> {
        let path = self.blob_path(d);
        let dir = path.parent().expect("a blob path has a parent");
        fsx::create_dir_all(dir).map_err(io("cannot create", dir))?;
        let tmp = TempFile::new(dir)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&tmp.0)
            .map_err(io("cannot open", &tmp.0))?;
        if let Err(e) = fetch(d, size, &mut file) {
            return Ok(Err(e));
        }
        file.sync_all().map_err(io("cannot write", &tmp.0))?;
        drop(file);
        let (got, n) = hash_file(&tmp.0).map_err(io("cannot read", &tmp.0))?;
        if got != *d || n != size {
            return Ok(Ok(Err(format!(
                "blob {d} arrived as {n} bytes of {got}, the manifest says {size} bytes"
            ))));
        }
        fsx::set_mode(&tmp.0, 0o644).map_err(io("cannot write", &tmp.0))?;
        std::fs::rename(&tmp.0, &path).map_err(io("cannot write", &path))?;
        Ok(Ok(Ok(())))
    }

    /// Checks one candidate completely; the reason names what differs.
    fn verify(
        &self,
        desc: &Descriptor,
        key: &KeyDocument,
        key_bytes: &[u8],
        key_digest: Digest,
        trusted: &[PublicKey],
    ) -> Result<Hit, String> {
        if desc.media_type != MEDIA_TYPE_MANIFEST {
            return Err(format!(
                "{INDEX} lists it as `{}`, not an image manifest",
                desc.media_type
            ));
        }
        let manifest_bytes = self.read_verified(&desc.digest, desc.size, "manifest")?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| format!("manifest is not an image manifest ({e})"))?;
        if manifest.media_type != MEDIA_TYPE_MANIFEST || manifest.artifact_type != ARTIFACT_TYPE {
            return Err(format!(
                "manifest is `{}` with artifactType `{}`, expected `{MEDIA_TYPE_MANIFEST}` with `{ARTIFACT_TYPE}`",
                manifest.media_type, manifest.artifact_type
            ));
        }
        let annotated = manifest.annotations.get(ANNOTATION_KEY);
        if annotated.map(String::as_str) != Some(key_digest.to_string().as_str()) {
            return Err(format!(
                "manifest is annotated with key {}, not {key_digest}",
                annotated.map_or("(none)", String::as_str)
            ));
        }

        // The signature first: nothing unsigned is believed.
        let (att, outputs): (Vec<&Descriptor>, Vec<&Descriptor>) = manifest
            .layers
            .iter()
            .partition(|l| l.media_type == BUNDLE_MEDIA_TYPE);
        let [att] = att.as_slice() else {
            return Err(format!(
                "manifest has {} attestation layers, expected 1",
                att.len()
            ));
        };
        let attestation = self.read_verified(&att.digest, att.size, "attestation")?;
        let bundle = Bundle::parse(&attestation, ATTESTATION_TITLE).map_err(|e| e.to_string())?;
        if bundle.verification_material.certificate.is_some() {
            return Err(
                "attestation is keyless (a certificate); the cache trusts keys only".into(),
            );
        }
        let signer = bundle
            .dsse_envelope
            .verify(trusted, ATTESTATION_TITLE)
            .map_err(|_| untrusted(&bundle, trusted))?;
        let payload = bundle
            .dsse_envelope
            .payload_bytes(ATTESTATION_TITLE)
            .map_err(|e| e.to_string())?;
        let statement: Statement = serde_json::from_slice(&payload)
            .map_err(|e| format!("attestation payload is not an in-toto statement ({e})"))?;
        if statement.type_ != STATEMENT_TYPE || statement.predicate_type != PREDICATE_TYPE {
            return Err(format!(
                "attestation is a `{}` statement of `{}`, expected `{STATEMENT_TYPE}` of `{PREDICATE_TYPE}`",
                statement.type_, statement.predicate_type
            ));
        }
        let predicate: Predicate = serde_json::from_value(statement.predicate)
            .map_err(|e| format!("attestation predicate is malformed ({e})"))?;
        if predicate.key != key_digest {
            return Err(format!(
                "attestation is for key {}, not {key_digest}",
                predicate.key
            ));
        }
        if predicate.key_document.to_bytes() != key_bytes {
            return Err(format!(
                "attestation's key document differs from the requested one in: {}",
                fields(&predicate.key_document, key)
            ));
        }

        // The config: the key document, byte for byte.
        if manifest.config.media_type != KEY_MEDIA_TYPE {
            return Err(format!(
                "config is `{}`, expected `{KEY_MEDIA_TYPE}`",
                manifest.config.media_type
            ));
        }
        let config = self.read_verified(
            &manifest.config.digest,
            manifest.config.size,
            "config (key document)",
        )?;
        if config != key_bytes {
            return Err(match serde_json::from_slice::<KeyDocument>(&config) {
                Ok(doc) => format!(
                    "config's key document differs from the requested one in: {}",
                    fields(&doc, key)
                ),
                Err(e) => format!("config is not a key document ({e})"),
            });
        }

        // Outputs: manifest layers, attested subjects and blobs agree exactly.
        let mut attested: BTreeMap<String, Digest> = BTreeMap::new();
        for s in &statement.subject {
            let name = s.name.clone().unwrap_or_default();
            let d = s
                .digest
                .get("sha256")
                .and_then(|h| format!("sha256:{h}").parse::<Digest>().ok())
                .ok_or_else(|| format!("attested output `{name}` has no sha256"))?;
            if attested.insert(name.clone(), d).is_some() {
                return Err(format!("output {name} is attested twice"));
            }
        }
        let mut layers: BTreeMap<String, &Descriptor> = BTreeMap::new();
        for l in outputs {
            let name = l
                .annotations
                .get(ANNOTATION_TITLE)
                .cloned()
                .unwrap_or_default();
            if l.media_type != OUTPUT_MEDIA_TYPE {
                return Err(format!(
                    "layer `{name}` is `{}`, expected `{OUTPUT_MEDIA_TYPE}`",
                    l.media_type
                ));
            }
            check_name(&name).map_err(|e| format!("layer `{name}`: {e}"))?;
            if layers.insert(name.clone(), l).is_some() {
                return Err(format!("output {name} is in the manifest twice"));
            }
        }
        if let Some(name) = layers.keys().find(|n| !attested.contains_key(*n)) {
            return Err(format!("output {name} is in the manifest but not attested"));
        }
        if let Some(name) = attested.keys().find(|n| !layers.contains_key(*n)) {
            return Err(format!(
                "output {name} is attested but missing from the manifest"
            ));
        }
        let mut files = Vec::with_capacity(layers.len());
        for (name, layer) in layers {
            let want = attested[&name];
            if layer.digest != want {
                return Err(format!(
                    "output {name}: manifest layer {}, attested {want}",
                    layer.digest
                ));
            }
            let path = self.blob_path(&want);
            let (actual, size) = hash_file(&path)
                .map_err(|e| format!("output {name}: cannot read {} ({e})", path.display()))?;
            if actual != want {
                return Err(format!("output {name}: {actual}, attested {want}"));
            }
            if size != layer.size {
                return Err(format!(
                    "output {name}: {size} bytes, manifest says {}",
                    layer.size
                ));
            }
            files.push((name, path, want));
        }
        Ok(Hit {
            entry: Entry {
                manifest_digest: desc.digest,
                key: key_digest,
                attestation,
            },
            files,
            signer,
        })
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join(INDEX)
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir.join(BLOBS).join("sha256").join(d.hex())
    }

    /// Anything in a directory without `oci-layout` must be what an interrupted `open`
    /// leaves, or the directory is not ours.
    fn check_only_ours(&self) -> Result<(), CacheError> {
        let rd = std::fs::read_dir(&self.dir).map_err(io("cannot list", &self.dir))?;
        for e in rd {
            let e = e.map_err(io("cannot list", &self.dir))?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            let ours = [OCI_LAYOUT, INDEX, BLOBS, LOCK].contains(&name.as_ref())
                || name.starts_with(".kiln-tmp-");
            if !ours {
                return Err(CacheError::NotAStore {
                    path: self.dir.clone(),
                    message: format!("it has no {OCI_LAYOUT} file and holds `{name}`"),
                });
            }
        }
        Ok(())
    }

    /// The store's exclusive lock, held until the file is dropped.
    fn lock(&self) -> Result<std::fs::File, CacheError> {
        let path = self.dir.join(LOCK);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("cannot open", &path))?;
        f.lock().map_err(io("cannot lock", &path))?;
        Ok(f)
    }

    fn read_index(&self) -> Result<Index, CacheError> {
        let path = self.index_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Index::empty()),
            Err(e) => return Err(io("cannot read", &path)(e)),
        };
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| CacheError::Corrupt {
            path: path.clone(),
            message: format!("not an OCI image index ({e})"),
        })?;
        if index.schema_version != 2 {
            return Err(CacheError::Corrupt {
                path,
                message: format!("schemaVersion is {}, expected 2", index.schema_version),
            });
        }
        Ok(index)
    }

    fn write_index(&self, index: &Index) -> Result<(), CacheError> {
        let path = self.index_path();
        let bytes = canonical::to_vec(index).expect("an index serializes");
        fsx::write_atomic(&path, &bytes).map_err(io("cannot write", &path))
    }

    /// Read-modify-write of `index.json` under the lock.
    /// Lists the entry manifest `desc` in `index.json` as the entry of `key`, replacing
    /// one listed before, entries sorted by key.
    fn list(&self, mut desc: Descriptor, key: Digest) -> Result<(), CacheError> {
        desc.artifact_type = Some(ARTIFACT_TYPE.into());
        let entry = serde_json::to_value(desc).expect("a descriptor serializes");
        let key_text = key.to_string();
        self.update_index(|manifests| {
            manifests.retain(|m| key_of(m) != Some(key_text.as_str()));
            manifests.push(entry);
            manifests.sort_by(|a, b| key_of(a).cmp(&key_of(b)));
        })
    }

    fn update_index(&self, f: impl FnOnce(&mut Vec<Value>)) -> Result<(), CacheError> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        f(&mut index.manifests);
        self.write_index(&index)
    }

    /// Writes a blob unless an intact copy is there (a damaged one is replaced).
    fn write_blob(&self, bytes: &[u8]) -> Result<Digest, CacheError> {
        let d = Digest::of(bytes);
        let path = self.blob_path(&d);
        if hash_file(&path).is_ok_and(|(have, _)| have == d) {
            return Ok(d);
        }
        fsx::write_atomic(&path, bytes).map_err(io("cannot write", &path))?;
        Ok(d)
    }

    /// A blob's bytes, if they are the ones `d` names.
    fn read_verified(&self, d: &Digest, size: u64, what: &str) -> Result<Vec<u8>, String> {
        let path = self.blob_path(d);
        let bytes = std::fs::read(&path)
            .map_err(|e| format!("{what} blob {} cannot be read ({e})", path.display()))?;
        let actual = Digest::of(&bytes);
        if actual != *d {
            return Err(format!("{what} blob is {actual}, expected {d}"));
        }
        if bytes.len() as u64 != size {
            return Err(format!(
                "{what} blob is {} bytes, descriptor says {size}",
                bytes.len()
            ));
        }
        Ok(bytes)
    }
}

/// A file created empty beside where a blob goes, removed on drop unless renamed away.
struct TempFile(PathBuf);

impl TempFile {
    fn new(dir: &Path) -> Result<TempFile, CacheError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        loop {
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let path = dir.join(format!(".kiln-tmp-{}-{n}-{nanos}", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => return Ok(TempFile(path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io("cannot create", &path)(e)),
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Hit {
    /// Copies the outputs to `dest/<name>`, checking each copy's bytes against the attested
    /// digest (a blob swapped since [`Store::get`] is caught here). Returns the paths
    /// written, in the order of [`Hit::files`].
    pub fn extract(&self, dest: &Path) -> Result<Vec<PathBuf>, CacheError> {
        let mut out = Vec::with_capacity(self.files.len());
        for (name, blob, want) in &self.files {
            let bytes = std::fs::read(blob).map_err(io("cannot read", blob))?;
            let actual = Digest::of(&bytes);
            if actual != *want {
                return Err(CacheError::Corrupt {
                    path: blob.clone(),
                    message: format!("output {name}: {actual}, attested {want}"),
                });
            }
            let path = dest.join(name);
            fsx::write_atomic(&path, &bytes).map_err(io("cannot write", &path))?;
            out.push(path);
        }
        Ok(out)
    }
}

/// The descriptor of an entry manifest: annotated with its key (the index's lookup).
fn manifest_descriptor(digest: Digest, size: usize, key: Digest) -> Descriptor {
    descriptor(
        MEDIA_TYPE_MANIFEST,
        digest,
        size,
        BTreeMap::from([(ANNOTATION_KEY.into(), key.to_string())]),
    )
}

fn descriptor(
    media_type: &str,
    digest: Digest,
    size: usize,
    annotations: BTreeMap<String, String>,
) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest,
        size: size as u64,
        artifact_type: None,
        annotations,
    }
}

fn check_layout(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| CacheError::NotAStore {
        path: path.to_path_buf(),
        message: format!("{OCI_LAYOUT} is not JSON ({e})"),
    })?;
    match v.get("imageLayoutVersion").and_then(Value::as_str) {
        Some("1.0.0") => Ok(()),
        other => Err(CacheError::NotAStore {
            path: path.to_path_buf(),
            message: format!("imageLayoutVersion is {other:?}, expected \"1.0.0\""),
        }),
    }
}

/// An output name: relative, `/`-separated, no empty, `.` or `..` components.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.contains('\\') || name.contains('\0') {
        return Err("a name is `/`-separated and has no `\\` or NUL".into());
    }
    if name
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err("a name is a relative path without empty, `.` or `..` components".into());
    }
    Ok(())
}

fn hash_file(path: &Path) -> io::Result<(Digest, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut r = kiln_core::HashingReader::new(&mut f);
    io::copy(&mut r, &mut io::sink())?;
    Ok(r.finish())
}

/// Why a bundle's signature is not accepted, naming the key that signed it.
fn untrusted(bundle: &Bundle, trusted: &[PublicKey]) -> String {
    let who = bundle
        .dsse_envelope
        .signatures
        .first()
        .map(|s| s.keyid.clone())
        .filter(|k| !k.is_empty())
        .or_else(|| {
            bundle
                .verification_material
                .public_key
                .as_ref()
                .map(|h| h.hint.clone())
        })
        .unwrap_or_else(|| "(unnamed)".into());
    if trusted.iter().any(|k| k.keyid() == who) {
        format!("attestation's signature by trusted key {who} does not verify")
    } else {
        let list: Vec<&str> = trusted.iter().map(PublicKey::keyid).collect();
        format!(
            "attestation signed by key {who} which is not trusted (trusted: {})",
            if list.is_empty() {
                "none".into()
            } else {
                list.join(", ")
            }
        )
    }
}

fn fields(a: &KeyDocument, b: &KeyDocument) -> String {
    let f = a.differing_fields(b);
    if f.is_empty() {
        "its encoding".into()
    } else {
        f.join(", ")
    }
}

fn default_dir_from(env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let var = |v: &str| env(v).filter(|s| !s.is_empty()).map(PathBuf::from);
    if let Some(d) = var("KILN_CACHE_DIR") {
        return Some(d);
    }
    if let Some(d) = var("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        return Some(d.join("kiln"));
    }
    var("HOME").map(|h| h.join(".cache").join("kiln"))
}

#[cfg(test)]
mod tests;
