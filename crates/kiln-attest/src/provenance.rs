//! in-toto Statement v1 and the SLSA provenance v1 predicate, as kiln's own serde types.
//!
//! Why not the `in-toto` crate: it speaks Statement v0.1 and SLSA v0.2 only, and v1 changed
//! the shape (`buildDefinition`/`runDetails`, `ResourceDescriptor`). The types here follow
//! <https://in-toto.io/Statement/v1> and <https://slsa.dev/provenance/v1> field for field;
//! every map is a `BTreeMap` and bytes go through `kiln_core::canonical`, so the same
//! inputs always give the same statement bytes. Independent parsers (the in-toto-attestation
//! protobufs, strictly) check the result in the tests.

use std::collections::BTreeMap;

use kiln_core::Digest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// Predicate type of SLSA provenance v1.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// kiln's build type. Versioned: a change in what the parameters mean is a new URI, so a
/// policy pinned to this one never silently accepts provenance it does not understand.
pub const BUILD_TYPE: &str = "https://github.com/kiln-build/kiln/buildtypes/oci-image/v1";
/// `builder.id` of a build that ran outside a hosted CI identity.
pub const LOCAL_BUILDER_ID: &str = "https://github.com/kiln-build/kiln/builders/local/v1";

/// The resolvedDependency of the base image (its manifest digest).
pub const BASE_IMAGE: &str = "base-image";
/// Annotation of [`BASE_IMAGE`]: the base's `ref` from kiln.toml (where the layout came
/// from), as parsed (`docker.io/library/` spelled out); the digest is the dependency's.
pub const ANNOTATION_BASE_REF: &str = "dev.kiln.base.ref";
/// The resolvedDependency recording kiln.toml's `[policy] base_allowlist`: `digest.sha256`
/// is the sha256 of the canonical JSON array of the entries as written, and
/// [`ANNOTATION_BASE_ALLOWLIST`] the entries joined by `,`.
pub const BASE_ALLOWLIST: &str = "base-allowlist";
/// The resolvedDependency of a build that used a cache entry: `digest.sha256` is the
/// entry's manifest, annotations its key and signer.
pub const BUILD_CACHE: &str = "build-cache";
pub const ANNOTATION_CACHE_KEY: &str = "dev.kiln.cache.key";
pub const ANNOTATION_CACHE_SIGNER: &str = "dev.kiln.cache.signer";
pub const ANNOTATION_BASE_ALLOWLIST: &str = "dev.kiln.base.allowlist";
/// The resolvedDependency of a build inside a provided toolchain root: `digest.sha256` is
/// the root's OCI manifest; annotations name the root and its tree digest. Each pinned
/// input of the root follows as its own dependency ([`ToolchainRoot::inputs`]).
pub const TOOLCHAIN_ROOT: &str = "toolchain-root";
pub const ANNOTATION_TOOLROOT_NAME: &str = "dev.kiln.toolroot.name";
pub const ANNOTATION_TOOLROOT_TREE: &str = "dev.kiln.toolroot.tree";

/// The provided toolchain root a build ran inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolchainRoot {
    pub name: String,
    pub manifest: Digest,
    pub tree: Digest,
    /// Every pinned input: (name, uri, sha256 hex), e.g. (`deb:gcc-12@12.2.0-14`,
    /// `pkg:deb/debian/gcc-12@12.2.0-14?arch=amd64`, ...).
    pub inputs: Vec<(String, String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<ResourceDescriptor>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Value,
}

/// in-toto's ResourceDescriptor; only the fields kiln uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDescriptor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, Value>,
}

impl ResourceDescriptor {
    pub fn sha256(name: impl Into<String>, d: Digest) -> Self {
        ResourceDescriptor {
            name: Some(name.into()),
            digest: BTreeMap::from([("sha256".into(), d.hex())]),
            ..Default::default()
        }
    }
}

/// The SLSA v1 predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub build_definition: BuildDefinition,
    pub run_details: RunDetails,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    pub build_type: String,
    pub external_parameters: Value,
    pub internal_parameters: Value,
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDetails {
    pub builder: Builder,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Builder {
    pub id: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub version: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub invocation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_on: Option<String>,
}

/// Lineage tags: where the source came from, what transformation this build is, and
/// which policy version governed it. Any may be absent; `verify` can require them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
}

/// The names `verify` accepts in a policy's `lineage = [...]`.
pub const LINEAGE_KEYS: [&str; 3] = ["source", "transform", "policy_version"];

impl Lineage {
    /// `KILN_LINEAGE_SOURCE` / `_TRANSFORM` / `_POLICY_VERSION` from `env`, each
    /// overriding the matching `[lineage]` value of `kiln.toml` (as `$SOURCE_DATE_EPOCH`
    /// overrides the configured epoch: the pipeline that runs the build knows best).
    pub fn resolve(config: Lineage, env: &dyn Fn(&str) -> Option<String>) -> Lineage {
        let pick = |var: &str, c: Option<String>| env(var).filter(|v| !v.is_empty()).or(c);
        Lineage {
            source: pick("KILN_LINEAGE_SOURCE", config.source),
            transform: pick("KILN_LINEAGE_TRANSFORM", config.transform),
            policy_version: pick("KILN_LINEAGE_POLICY_VERSION", config.policy_version),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        match key {
            "source" => self.source.as_deref(),
            "transform" => self.transform.as_deref(),
            "policy_version" => self.policy_version.as_deref(),
            _ => None,
        }
    }

    fn annotations(&self) -> BTreeMap<String, Value> {
        LINEAGE_KEYS
            .iter()
            .filter_map(|k| {
                self.get(k)
                    .map(|v| (format!("dev.kiln.lineage.{k}"), Value::String(v.into())))
            })
            .collect()
    }
}

/// The source checkout, when the project is a git work tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// `remote.origin.url`, or the GitHub repository URL on Actions; `None` when unknown.
    pub repository: Option<String>,
    /// The commit (`git rev-parse HEAD`).
    pub revision: String,
}

/// Who ran the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuilderIdentity {
    pub id: String,
    /// On GitHub Actions: repository and commit from the runner, used when git cannot say.
    pub source: Option<SourceInfo>,
}

impl BuilderIdentity {
    /// The GitHub workflow identity when `GITHUB_ACTIONS=true` (the same string Fulcio
    /// puts in a keyless certificate's SAN: `<server>/<GITHUB_WORKFLOW_REF>`), else the
    /// local builder. Reads only the variables named here.
    pub fn detect(env: &dyn Fn(&str) -> Option<String>) -> Self {
        if env("GITHUB_ACTIONS").as_deref() == Some("true") {
            let server = env("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into());
            let id = match env("GITHUB_WORKFLOW_REF") {
                Some(w) => format!("{server}/{w}"),
                None => format!(
                    "{server}/{}/.github/workflows/{}@{}",
                    env("GITHUB_REPOSITORY").unwrap_or_default(),
                    env("GITHUB_WORKFLOW").unwrap_or_default(),
                    env("GITHUB_REF").unwrap_or_default()
                ),
            };
            let source = env("GITHUB_SHA").map(|revision| SourceInfo {
                repository: env("GITHUB_REPOSITORY").map(|r| format!("{server}/{r}")),
                revision,
            });
            return BuilderIdentity { id, source };
        }
        BuilderIdentity {
            id: LOCAL_BUILDER_ID.into(),
            source: None,
        }
    }
}

/// A registry crate from `Cargo.lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedCrate {
    pub name: String,
    pub version: String,
    /// Hex sha256 of the `.crate` file.
    pub sha256: String,
}

/// One input of the VEX step, recorded in resolvedDependencies with the
/// [`crate::verify::ANNOTATION_INPUT`] annotation saying which kind it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VexInput {
    /// Relative to the project, `/`-separated (`vex/statements.toml`, `advisories/x.json`).
    pub path: String,
    pub sha256: Digest,
    /// The statements file (else an OSV advisory).
    pub statements: bool,
}

/// Everything provenance says, as plain values (kiln-build fills it from its context).
/// No field may hold an absolute host path: the statement must be the same bytes wherever
/// the build ran.
#[derive(Debug, Clone)]
pub struct ProvenanceInputs {
    pub image: String,
    pub tag: String,
    pub platform: String,
    /// The image manifest.
    pub manifest_digest: Digest,
    /// `(path in the image, sha256)` of each binary.
    pub binaries: Vec<(String, Digest)>,
    /// `(file name in the output directory, sha256)` of each SBOM present.
    pub sboms: Vec<(String, Digest)>,
    /// The Rust target triple.
    pub target: String,
    pub kiln_toml: Digest,
    pub cargo_lock: Digest,
    pub source: Option<SourceInfo>,
    pub lineage: Lineage,
    pub sandbox: String,
    /// Names of the environment variables the compiler ran with.
    pub environment: Vec<String>,
    pub source_date_epoch: u64,
    pub source_date_epoch_source: String,
    /// The toolchain lock, relative to the project.
    pub toolchain_lock: String,
    pub toolchain_lock_digest: Digest,
    pub rustc: String,
    pub crates: Vec<LockedCrate>,
    pub base: Option<Digest>,
    /// The base's `ref` (a reference string), when kiln.toml gives one.
    pub base_ref: Option<String>,
    /// `[policy] base_allowlist`, as written (empty: none configured).
    pub base_allowlist: Vec<String>,
    /// The build-cache entry whose binaries were used instead of compiling: (entry
    /// manifest digest, cache key, key id of its signer). Recorded as the
    /// [`BUILD_CACHE`] resolvedDependency; absent when the build compiled.
    pub build_cache: Option<(Digest, Digest, String)>,
    /// The provided toolchain root, when the build ran inside one.
    pub toolchain_root: Option<ToolchainRoot>,
    /// The VEX step's inputs, relative to the project: the statements file and each OSV
    /// advisory it read (empty when the project has no VEX).
    pub vex_inputs: Vec<VexInput>,
    pub builder: BuilderIdentity,
    pub kiln_version: String,
    /// `(startedOn, finishedOn)` RFC 3339, only with `--timestamps`.
    pub timestamps: Option<(String, String)>,
}

/// The name of the image subject: `<image>:<tag>`.
pub fn image_subject_name(image: &str, tag: &str) -> String {
    format!("{image}:{tag}")
}

/// Builds the provenance statement.
pub fn statement(i: &ProvenanceInputs) -> Statement {
    let mut subject = vec![ResourceDescriptor::sha256(
        image_subject_name(&i.image, &i.tag),
        i.manifest_digest,
    )];
    subject.extend(
        i.binaries
            .iter()
            .map(|(p, d)| ResourceDescriptor::sha256(p.clone(), *d)),
    );
    subject.extend(
        i.sboms
            .iter()
            .map(|(p, d)| ResourceDescriptor::sha256(p.clone(), *d)),
    );

    let source = i.source.clone().or_else(|| i.builder.source.clone());
    let mut source_rd = ResourceDescriptor {
        name: Some("source".into()),
        annotations: i.lineage.annotations(),
        ..Default::default()
    };
    match &source {
        Some(s) => {
            source_rd
                .digest
                .insert("gitCommit".into(), s.revision.clone());
            source_rd.uri = s
                .repository
                .as_ref()
                .map(|r| format!("git+{r}@{}", s.revision));
        }
        // Not a git checkout: the project is named by its kiln.toml.
        None => {
            source_rd.digest.insert("sha256".into(), i.kiln_toml.hex());
        }
    }
    let mut deps = vec![source_rd];
    let mut tc = ResourceDescriptor::sha256(i.toolchain_lock.clone(), i.toolchain_lock_digest);
    tc.annotations
        .insert("rustc".into(), Value::String(i.rustc.clone()));
    deps.push(tc);
    if let Some(root) = &i.toolchain_root {
        let mut rd = ResourceDescriptor::sha256(TOOLCHAIN_ROOT, root.manifest);
        rd.media_type = Some("application/vnd.oci.image.manifest.v1+json".into());
        rd.annotations.insert(
            ANNOTATION_TOOLROOT_NAME.into(),
            Value::String(root.name.clone()),
        );
        rd.annotations.insert(
            ANNOTATION_TOOLROOT_TREE.into(),
            Value::String(root.tree.to_string()),
        );
        deps.push(rd);
        let mut inputs = root.inputs.clone();
        inputs.sort();
        for (name, uri, sha256) in inputs {
            deps.push(ResourceDescriptor {
                name: Some(name),
                uri: Some(uri),
                digest: BTreeMap::from([("sha256".into(), sha256)]),
                ..Default::default()
            });
        }
    }
    deps.push(ResourceDescriptor::sha256(
        kiln_core::contract::layout::CARGO_LOCK,
        i.cargo_lock,
    ));
    let mut crates = i.crates.clone();
    crates.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    for c in &crates {
        deps.push(ResourceDescriptor {
            name: Some(format!("{}@{}", c.name, c.version)),
            uri: Some(format!("pkg:cargo/{}@{}", c.name, c.version)),
            digest: BTreeMap::from([("sha256".into(), c.sha256.clone())]),
            ..Default::default()
        });
    }
    if let Some(b) = i.base {
        let mut rd = ResourceDescriptor::sha256(BASE_IMAGE, b);
        rd.media_type = Some("application/vnd.oci.image.manifest.v1+json".into());
        if let Some(r) = &i.base_ref {
            rd.annotations
                .insert(ANNOTATION_BASE_REF.into(), Value::String(r.clone()));
        }
        deps.push(rd);
    }
    // Which allowlist admitted the base (recorded only when one is configured, so a
    // project without it keeps the same bytes).
    if let Some((entry, key, signer)) = &i.build_cache {
        let mut rd = ResourceDescriptor::sha256(BUILD_CACHE, *entry);
        rd.media_type = Some("application/vnd.oci.image.manifest.v1+json".into());
        rd.annotations
            .insert(ANNOTATION_CACHE_KEY.into(), Value::String(key.to_string()));
        rd.annotations.insert(
            ANNOTATION_CACHE_SIGNER.into(),
            Value::String(signer.clone()),
        );
        deps.push(rd);
    }
    if !i.base_allowlist.is_empty() {
        let json = kiln_core::canonical::to_vec(&i.base_allowlist).expect("json");
        let mut rd = ResourceDescriptor::sha256(BASE_ALLOWLIST, Digest::of(&json));
        rd.annotations.insert(
            ANNOTATION_BASE_ALLOWLIST.into(),
            Value::String(i.base_allowlist.join(",")),
        );
        deps.push(rd);
    }
    let mut vex = i.vex_inputs.clone();
    vex.sort_by(|a, b| (!a.statements, &a.path).cmp(&(!b.statements, &b.path)));
    for v in &vex {
        let mut rd = ResourceDescriptor::sha256(v.path.clone(), v.sha256);
        let kind = if v.statements {
            crate::verify::INPUT_VEX_STATEMENTS
        } else {
            crate::verify::INPUT_OSV_ADVISORY
        };
        rd.annotations.insert(
            crate::verify::ANNOTATION_INPUT.into(),
            Value::String(kind.into()),
        );
        deps.push(rd);
    }

    let mut external = serde_json::json!({
        "image": i.image,
        "tag": i.tag,
        "platform": i.platform,
        "target": i.target,
        "kilnToml": { "sha256": i.kiln_toml.hex() },
        "lineage": i.lineage,
    });
    if let Some(s) = &source {
        let mut src = serde_json::Map::new();
        if let Some(r) = &s.repository {
            src.insert("repository".into(), r.clone().into());
        }
        src.insert("revision".into(), s.revision.clone().into());
        external["source"] = Value::Object(src);
    }
    let mut env = i.environment.clone();
    env.sort();
    let internal = serde_json::json!({
        "sandbox": i.sandbox,
        "environmentAllowlist": env,
        "sourceDateEpoch": { "value": i.source_date_epoch, "source": i.source_date_epoch_source },
    });
    let build_definition = BuildDefinition {
        build_type: BUILD_TYPE.into(),
        external_parameters: external,
        internal_parameters: internal,
        resolved_dependencies: deps,
    };
    // Derived from everything above and the outputs: two builds of the same inputs get the
    // same id (and bytes); any difference in inputs or outputs gives a different one.
    let basis = serde_json::json!({ "buildDefinition": build_definition, "subject": subject, "builder": i.builder.id });
    let invocation_id = format!(
        "urn:kiln:invocation:sha256:{}",
        Digest::of(&kiln_core::canonical::to_vec(&basis).expect("json")).hex()
    );
    let (started_on, finished_on) = match &i.timestamps {
        Some((s, f)) => (Some(s.clone()), Some(f.clone())),
        None => (None, None),
    };
    let predicate = Provenance {
        build_definition,
        run_details: RunDetails {
            builder: Builder {
                id: i.builder.id.clone(),
                version: BTreeMap::from([("kiln".into(), i.kiln_version.clone())]),
            },
            metadata: Metadata {
                invocation_id,
                started_on,
                finished_on,
            },
        },
    };
    Statement {
        type_: STATEMENT_TYPE.into(),
        subject,
        predicate_type: SLSA_PROVENANCE_V1.into(),
        predicate: serde_json::to_value(predicate).expect("provenance serializes"),
    }
}

/// Wraps an evidence document (SBOM, VEX) in a statement about the image.
pub fn document_statement(
    image_subject: ResourceDescriptor,
    predicate_type: &str,
    document: Value,
) -> Statement {
    Statement {
        type_: STATEMENT_TYPE.into(),
        subject: vec![image_subject],
        predicate_type: predicate_type.into(),
        predicate: document,
    }
}

/// RFC 3339 UTC (`YYYY-MM-DDTHH:MM:SSZ`) of a Unix time, for `--timestamps`: kiln's one
/// formatter, so every dated document spells time the same way.
pub fn rfc3339(secs: u64) -> String {
    kiln_core::time::rfc3339(secs)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn inputs() -> ProvenanceInputs {
        ProvenanceInputs {
            image: "hello".into(),
            tag: "latest".into(),
            platform: "linux/amd64".into(),
            manifest_digest: Digest::of(b"manifest"),
            binaries: vec![("/usr/local/bin/hello".into(), Digest::of(b"bin"))],
            sboms: vec![("sbom.cdx.json".into(), Digest::of(b"sbom"))],
            target: "x86_64-unknown-linux-gnu".into(),
            kiln_toml: Digest::of(b"toml"),
            cargo_lock: Digest::of(b"lock"),
            source: None,
            lineage: Lineage {
                source: Some("git://x".into()),
                transform: Some("build".into()),
                policy_version: None,
            },
            sandbox: "netns".into(),
            environment: vec!["PATH".into(), "HOME".into()],
            source_date_epoch: 1_700_000_000,
            source_date_epoch_source: "config".into(),
            toolchain_lock: "toolchains/x.lock.json".into(),
            toolchain_lock_digest: Digest::of(b"tc"),
            rustc: "1.95.0".into(),
            crates: vec![LockedCrate {
                name: "itoa".into(),
                version: "1.0.0".into(),
                sha256: "ab".repeat(32),
            }],
            base: None,
            base_ref: None,
            base_allowlist: Vec::new(),
            build_cache: None,
            toolchain_root: None,
            vex_inputs: Vec::new(),
            builder: BuilderIdentity {
                id: LOCAL_BUILDER_ID.into(),
                source: None,
            },
            kiln_version: "0.1.0".into(),
            timestamps: None,
        }
    }

    #[test]
    fn deterministic_and_input_sensitive() {
        let a = kiln_core::canonical::to_vec(&statement(&inputs())).unwrap();
        assert_eq!(
            a,
            kiln_core::canonical::to_vec(&statement(&inputs())).unwrap()
        );
        let mut i = inputs();
        i.sandbox = "none".into();
        let s = statement(&i);
        assert_ne!(a, kiln_core::canonical::to_vec(&s).unwrap());
        let text = String::from_utf8(a).unwrap();
        assert!(
            !text.contains("startedOn") && text.contains("dev.kiln.lineage.transform"),
            "{text}"
        );
        assert_eq!(s.subject.len(), 3);
    }

    #[test]
    fn base_ref_and_allowlist_are_recorded_only_when_configured() {
        let deps = |i: &ProvenanceInputs| -> Vec<ResourceDescriptor> {
            let p: Provenance = serde_json::from_value(statement(i).predicate).unwrap();
            p.build_definition.resolved_dependencies
        };
        let base = Digest::of(b"base manifest");
        let bytes = |i: &ProvenanceInputs| {
            Digest::of(&kiln_core::canonical::to_vec(&statement(i)).unwrap()).to_string()
        };
        let mut i = inputs();
        // Without `ref` or an allowlist the statement is byte for byte what it was before
        // they existed (digests taken from the code without them).
        assert_eq!(
            bytes(&i),
            "sha256:d5d5922fb180828f946474cd67cf5ffb516de358b8632a241be750063846831a"
        );
        i.base = Some(Digest::of(b"base"));
        assert_eq!(
            bytes(&i),
            "sha256:4c89f148b1fccd4ba234bc1337958aadc21a97443b76d86f620c0f97ce4312f2"
        );
        i.base = Some(base);
        let plain = deps(&i);
        let rd = plain
            .iter()
            .find(|d| d.name.as_deref() == Some(BASE_IMAGE))
            .unwrap();
        assert!(rd.annotations.is_empty(), "{rd:?}");
        assert!(
            !plain
                .iter()
                .any(|d| d.name.as_deref() == Some(BASE_ALLOWLIST))
        );

        i.base_ref = Some("ghcr.io/acme/base:1.2".into());
        let entries = vec![
            "ghcr.io/acme/*".to_string(),
            format!("registry.example.com/x@{}", Digest::of(b"x")),
        ];
        i.base_allowlist = entries.clone();
        let with = deps(&i);
        let rd = with
            .iter()
            .find(|d| d.name.as_deref() == Some(BASE_IMAGE))
            .unwrap();
        assert_eq!(rd.digest["sha256"], base.hex());
        assert_eq!(rd.annotations[ANNOTATION_BASE_REF], "ghcr.io/acme/base:1.2");
        let al = with
            .iter()
            .find(|d| d.name.as_deref() == Some(BASE_ALLOWLIST))
            .unwrap();
        let canonical = kiln_core::canonical::to_vec(&entries).unwrap();
        assert_eq!(al.digest["sha256"], Digest::of(&canonical).hex());
        assert_eq!(
            al.annotations[ANNOTATION_BASE_ALLOWLIST],
            entries.join(",").as_str()
        );
        // The allowlist is recorded with a scratch base too: it governed the build.
        i.base = None;
        i.base_ref = None;
        assert!(
            deps(&i)
                .iter()
                .any(|d| d.name.as_deref() == Some(BASE_ALLOWLIST))
        );
    }

    #[test]
    fn github_identity_and_lineage_env_override() {
        let env = |k: &str| match k {
            "GITHUB_ACTIONS" => Some("true".to_string()),
            "GITHUB_WORKFLOW_REF" => Some("o/r/.github/workflows/rel.yml@refs/tags/v1".to_string()),
            "GITHUB_SHA" => Some("c0ffee".to_string()),
            "GITHUB_REPOSITORY" => Some("o/r".to_string()),
            "KILN_LINEAGE_TRANSFORM" => Some("release".to_string()),
            _ => None,
        };
        let b = BuilderIdentity::detect(&env);
        assert_eq!(
            b.id,
            "https://github.com/o/r/.github/workflows/rel.yml@refs/tags/v1"
        );
        assert_eq!(
            b.source.unwrap().repository.as_deref(),
            Some("https://github.com/o/r")
        );
        let l = Lineage::resolve(
            Lineage {
                source: Some("s".into()),
                transform: Some("t".into()),
                policy_version: None,
            },
            &env,
        );
        assert_eq!(
            (
                l.source.as_deref(),
                l.transform.as_deref(),
                l.policy_version
            ),
            (Some("s"), Some("release"), None)
        );
        assert_eq!(BuilderIdentity::detect(&|_| None).id, LOCAL_BUILDER_ID);
    }

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
