//! Image config, manifest and index: the JSON half of an image.
//!
//! The wire structs here are kiln's own serde types with `BTreeMap`s rather than
//! oci-spec's. Reasons: (1) the base image's config must round-trip fields kiln does not
//! model (`Volumes`, `StopSignal`, `Healthcheck`, ...), which a `#[serde(flatten)]` map
//! keeps and oci-spec's closed structs drop; (2) we need exact control over which empty
//! fields are omitted, so that "unset" always has one encoding; (3) descriptors carry
//! kiln's sha256 [`Digest`] type directly. oci-spec is still used to parse the base
//! image's index and manifests (see `base.rs`), where its validation is welcome.
//! Everything is serialized with [`kiln_core::canonical::to_vec`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kiln_core::Digest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::base::BaseImage;
use crate::error::{Error, Result};
use crate::layer::{Layer, LayerDescriptor};
use crate::layout::{copy_blob_verified, write_blob_bytes, write_blob_stream, write_file_atomic};
use kiln_core::time::rfc3339;

/// The OS/architecture an image runs on (the config's `os`, `architecture`, `variant`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// GOOS-style OS name, e.g. `linux`.
    pub os: String,
    /// GOARCH-style architecture, e.g. `amd64`, `arm64`.
    pub architecture: String,
    /// CPU variant, e.g. `v8` for arm64; omitted when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/<host architecture>` in OCI (GOARCH) spelling: the usual target when kiln
    /// builds images from binaries it just compiled on this machine.
    pub fn host() -> Self {
        let host = kiln_core::contract::platform::host();
        Platform {
            os: host.os.into(),
            architecture: host.architecture.into(),
            variant: host.variant.map(Into::into),
        }
    }

    /// `linux/amd64`, the common fixed target.
    pub fn linux_amd64() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

/// What kiln puts in the image config on top of (or instead of) a base image's. Fields
/// left empty/`None` inherit from the base.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageConfig {
    /// Target platform. Must match the base image's, if any.
    pub platform: Platform,
    /// Replaces the base's entrypoint when set; setting it also drops the base's `Cmd`
    /// (which were arguments for the old entrypoint), as `docker build` does.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the base's `Cmd` when set.
    pub cmd: Option<Vec<String>>,
    /// `KEY=value` entries; a key already in the base is replaced in place, new keys are
    /// appended in the order given.
    pub env: Vec<String>,
    /// Replaces the base's working directory when set.
    pub working_dir: Option<String>,
    /// Replaces the base's user when set.
    pub user: Option<String>,
    /// Merged over the base's labels (kiln wins).
    pub labels: BTreeMap<String, String>,
    /// Added to the base's exposed ports, e.g. `8080/tcp`.
    pub exposed_ports: BTreeSet<String>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
}

impl ImageConfig {
    /// A config with only a platform set.
    pub fn new(platform: Platform) -> Self {
        ImageConfig {
            platform,
            entrypoint: None,
            cmd: None,
            env: Vec::new(),
            working_dir: None,
            user: None,
            labels: BTreeMap::new(),
            exposed_ports: BTreeSet::new(),
            annotations: BTreeMap::new(),
        }
    }
}

/// An image to build: an optional pinned base, kiln's layers (each with the history text
/// that describes it) and config.
#[derive(Debug)]
pub struct Image {
    /// `SOURCE_DATE_EPOCH`: every timestamp in layers and config.
    pub sde: u64,
    /// The verified base image, if any; its layers come first.
    pub base: Option<BaseImage>,
    /// kiln's layers in order, each with its history `created_by` text.
    pub layers: Vec<(Layer, String)>,
    /// Config values.
    pub config: ImageConfig,
}

/// A manifest as referenced from an index: what callers pin and push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestDescriptor {
    /// Digest of the manifest JSON (the image digest).
    pub digest: Digest,
    /// Size of the manifest JSON.
    pub size: u64,
    /// Always [`crate::MEDIA_TYPE_MANIFEST`].
    pub media_type: String,
}

/// What [`Image::write_layout`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltImage {
    /// The manifest (image digest).
    pub manifest: ManifestDescriptor,
    /// Digest of the config JSON (docker's "image ID").
    pub config_digest: Digest,
    /// All layers: the base's first, then kiln's.
    pub layers: Vec<LayerDescriptor>,
    /// The base image's manifest digest, if there was a base.
    pub base: Option<Digest>,
}

// ---- wire types -------------------------------------------------------------------------

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct ConfigFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RunConfig>,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RunConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Fields kiln does not model (Volumes, StopSignal, ...), carried over from a base.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".into(),
            diff_ids: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub schema_version: u32,
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: String,
    manifests: Vec<Descriptor>,
}

fn canonical<T: Serialize>(v: &T, field: &'static str) -> Result<Vec<u8>> {
    kiln_core::canonical::to_vec(v).map_err(|e| Error::Config {
        field,
        what: e.to_string(),
    })
}

// ---- building ---------------------------------------------------------------------------

impl Image {
    /// Writes the image into the OCI layout directory `dir` (created if needed):
    /// kiln's layers as gzip blobs, the base's layers copied and re-verified, then config,
    /// manifest, `index.json` (one entry, annotated with `ref_name`) and `oci-layout`.
    /// `dir` is expected to be a fresh staging directory; an existing `index.json` is
    /// replaced, not merged.
    pub fn write_layout(&self, dir: &Path, ref_name: &str) -> Result<BuiltImage> {
        validate_ref_name(ref_name)?;
        let mut config = self.merged_config()?;
        let mut descriptors = Vec::new();

        if let Some(base) = &self.base {
            for l in base.layers() {
                copy_blob_verified(base.layout(), dir, &l.digest, l.size)?;
                descriptors.push(l.clone());
            }
        }
        let created = rfc3339(self.sde);
        for (layer, created_by) in &self.layers {
            let d = write_blob_stream(
                dir,
                |w| layer.write_gzip(self.sde, w),
                |d: &LayerDescriptor| d.digest,
            )?;
            config.rootfs.diff_ids.push(d.diff_id);
            config.history.push(History {
                created: Some(created.clone()),
                created_by: Some(created_by.clone()),
                ..History::default()
            });
            descriptors.push(d);
        }

        let config_bytes = canonical(&config, "config")?;
        let (config_digest, config_size) = write_blob_bytes(dir, &config_bytes)?;

        let mut annotations = self.config.annotations.clone();
        if let Some(base) = &self.base {
            annotations
                .entry("org.opencontainers.image.base.digest".into())
                .or_insert_with(|| base.digest().to_string());
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: crate::MEDIA_TYPE_MANIFEST.into(),
            config: Descriptor {
                media_type: crate::MEDIA_TYPE_CONFIG.into(),
                digest: config_digest,
                size: config_size,
                annotations: BTreeMap::new(),
                platform: None,
            },
            layers: descriptors
                .iter()
                .map(|l| Descriptor {
                    media_type: l.media_type.clone(),
                    digest: l.digest,
                    size: l.size,
                    annotations: BTreeMap::new(),
                    platform: None,
                })
                .collect(),
            annotations,
        };
        let manifest_bytes = canonical(&manifest, "manifest")?;
        let (manifest_digest, manifest_size) = write_blob_bytes(dir, &manifest_bytes)?;

        let index = Index {
            schema_version: 2,
            media_type: crate::MEDIA_TYPE_INDEX.into(),
            manifests: vec![Descriptor {
                media_type: crate::MEDIA_TYPE_MANIFEST.into(),
                digest: manifest_digest,
                size: manifest_size,
                annotations: BTreeMap::from([(crate::ANNOTATION_REF_NAME.into(), ref_name.into())]),
                platform: Some(self.config.platform.clone()),
            }],
        };
        write_file_atomic(&dir.join("index.json"), &canonical(&index, "index")?)?;
        write_file_atomic(
            &dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;

        Ok(BuiltImage {
            manifest: ManifestDescriptor {
                digest: manifest_digest,
                size: manifest_size,
                media_type: crate::MEDIA_TYPE_MANIFEST.into(),
            },
            config_digest,
            layers: descriptors,
            base: self.base.as_ref().map(|b| b.digest()),
        })
    }

    /// The config before kiln's layers are appended: the base's (if any) with kiln's
    /// fields applied.
    pub(crate) fn merged_config(&self) -> Result<ConfigFile> {
        let c = &self.config;
        let p = &c.platform;
        if p.os.is_empty() || p.architecture.is_empty() {
            return Err(Error::Config {
                field: "platform",
                what: "os and architecture must be set (e.g. linux/amd64)".into(),
            });
        }
        let mut cfg = match &self.base {
            Some(base) => {
                let b = base.config().clone();
                if b.os != p.os || b.architecture != p.architecture {
                    return Err(Error::Config {
                        field: "platform",
                        what: format!(
                            "the base image is {}/{} but the image is being built for {}/{}; \
                             pin a base manifest for the target platform",
                            b.os, b.architecture, p.os, p.architecture
                        ),
                    });
                }
                b
            }
            None => ConfigFile::default(),
        };
        cfg.created = Some(rfc3339(self.sde));
        cfg.os = p.os.clone();
        cfg.architecture = p.architecture.clone();
        if p.variant.is_some() {
            cfg.variant = p.variant.clone();
        }
        if cfg.rootfs.kind.is_empty() {
            cfg.rootfs.kind = "layers".into();
        }

        let mut rc = cfg.config.take().unwrap_or_default();
        if let Some(ep) = &c.entrypoint {
            rc.entrypoint = Some(ep.clone());
            rc.cmd = None;
        }
        if let Some(cmd) = &c.cmd {
            rc.cmd = Some(cmd.clone());
        }
        if !c.env.is_empty() {
            let mut env = rc.env.take().unwrap_or_default();
            for e in &c.env {
                let Some((key, _)) = e.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                    return Err(Error::Config {
                        field: "Env",
                        what: format!("`{e}` is not of the form KEY=value"),
                    });
                };
                match env
                    .iter_mut()
                    .find(|x| x.split_once('=').map(|(k, _)| k) == Some(key))
                {
                    Some(slot) => slot.clone_from(e),
                    None => env.push(e.clone()),
                }
            }
            rc.env = Some(env);
        }
        if c.working_dir.is_some() {
            rc.working_dir.clone_from(&c.working_dir);
        }
        if c.user.is_some() {
            rc.user.clone_from(&c.user);
        }
        if !c.labels.is_empty() {
            let labels = rc.labels.get_or_insert_with(BTreeMap::new);
            labels.extend(c.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if !c.exposed_ports.is_empty() {
            let ports = rc.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in &c.exposed_ports {
                ports.insert(p.clone(), Value::Object(Default::default()));
            }
        }
        // Omit empties consistently: an empty list/map is the same as unset.
        if rc.env.as_ref().is_some_and(Vec::is_empty) {
            rc.env = None;
        }
        if rc.labels.as_ref().is_some_and(BTreeMap::is_empty) {
            rc.labels = None;
        }
        if rc.exposed_ports.as_ref().is_some_and(BTreeMap::is_empty) {
            rc.exposed_ports = None;
        }
        if rc.working_dir.as_deref() == Some("") {
            rc.working_dir = None;
        }
        if rc.user.as_deref() == Some("") {
            rc.user = None;
        }
        rc.extra.retain(|_, v| !v.is_null());
        cfg.config = (rc != RunConfig::default()).then_some(rc);
        Ok(cfg)
    }
}

/// Ref names follow the OCI image layout grammar (alphanumerics and `-._:@/+`); kiln also
/// refuses empty ones, since `oci:DIR:` would not select the image.
fn validate_ref_name(r: &str) -> Result<()> {
    let ok = !r.is_empty()
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:@/+".contains(&b))
        && r.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::Config {
            field: "org.opencontainers.image.ref.name",
            what: format!(
                "`{r}` is not a valid ref name; use letters, digits and `-._:@/+`, \
                 starting with a letter or digit (e.g. `latest` or `1.2.0`)"
            ),
        })
    }
}
