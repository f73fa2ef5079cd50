//! `kiln push`, `kiln pull` and `kiln verify REF`: a built image and all its evidence
//! leave the build machine, and come back into an output directory `verify` checks.
//!
//! What is pushed is the output directory's `oci/` layout as `kiln build` left it: the
//! image and every referrer (Sigstore bundles, SBOMs, VEX, unsigned provenance), plus
//! cosign's legacy tags for readers that do not look for bundles (cosign v2,
//! policy-controller key authorities): `sha256-<hex>.att` with every DSSE envelope, and,
//! given the signing key, `sha256-<hex>.sig` with a simple-signing signature. The tag is
//! the one the signed provenance names, never `latest`.

use std::path::{Path, PathBuf};

use kiln_core::contract::{OutputDir, ProjectLayout, Summary};
use kiln_core::{Digest, Hint, fsx};
use kiln_registry::{Client, Reference, push::TagImage};

/// Why a push or pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Config(#[from] kiln_config::ConfigError),
    #[error(transparent)]
    Summary(#[from] kiln_core::contract::SummaryError),
    #[error("{reference}")]
    Registry {
        reference: String,
        #[source]
        source: kiln_registry::Error,
    },
    #[error(transparent)]
    Reference(#[from] kiln_registry::ReferenceError),
    #[error("image `{image}`: is not built ({} is missing)", path.display())]
    NotBuilt { image: String, path: PathBuf },
    #[error("kiln.toml has {count} images ({names}): which one to push is ambiguous")]
    WhichImage { count: usize, names: String },
    #[error("image `{image}`: refusing to push the tag `latest` ({reference})")]
    Latest { image: String, reference: String },
    #[error(
        "image `{image}` was built and signed as tag `{built}`; {reference} asks for `{requested}`, which the signed provenance does not name"
    )]
    TagMismatch {
        image: String,
        built: String,
        requested: String,
        reference: String,
    },
    #[error("{reference}: names digest {requested}, but image `{image}` is {built}")]
    DigestMismatch {
        image: String,
        reference: String,
        requested: Digest,
        built: Digest,
    },
    #[error("image `{image}`: cosign's legacy tags")]
    Attest {
        image: String,
        #[source]
        source: kiln_attest::Error,
    },
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Hint for PublishError {
    fn hint(&self) -> Option<String> {
        match self {
            PublishError::Config(e) => e.hint(),
            PublishError::Summary(e) => e.hint(),
            PublishError::Registry { source, .. } => source.hint(),
            PublishError::NotBuilt { .. } => {
                Some(format!("build it first with `{}`", kiln_core::cli::cmd("build")))
            }
            PublishError::WhichImage { .. } => Some("choose one with --image NAME".into()),
            PublishError::Latest { .. } => Some(
                "give the image a release tag: `tag = \"1.2.3\"` in its [[image]] of kiln.toml, rebuild, and push REPOSITORY:1.2.3 (or REPOSITORY alone, which takes the built tag)"
                    .into(),
            ),
            PublishError::TagMismatch { built, .. } => Some(format!(
                "push REPOSITORY:{built} (or REPOSITORY alone), or change `tag` in kiln.toml and rebuild"
            )),
            _ => None,
        }
    }
}

fn registry(reference: &Reference) -> impl FnOnce(kiln_registry::Error) -> PublishError + '_ {
    move |source| PublishError::Registry {
        reference: reference.to_string(),
        source,
    }
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PublishError + 'a {
    move |source| PublishError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// How to reach the registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Plain HTTP, for a registry on this machine only.
    pub insecure_http: bool,
    /// Upload chunk size in bytes (`None`: the client's default, 16 MiB).
    pub chunk_size: Option<usize>,
    /// Blobs uploaded at once (`None`: the client's default, 4).
    pub parallel: Option<usize>,
    /// How long one request may stall (`None`: the client's default, 60 s).
    pub timeout: Option<std::time::Duration>,
}

impl RegistryOptions {
    fn client(&self, reference: &Reference, push: bool) -> Result<Client, PublishError> {
        let mut o = kiln_registry::Options {
            insecure_http: self.insecure_http,
            push,
            ..Default::default()
        };
        if let Some(p) = self.parallel {
            o.parallel = p;
        }
        if let Some(t) = self.timeout {
            o.timeout = t;
        }
        if let Some(c) = self.chunk_size {
            o.chunk_size = c;
        }
        Client::new(reference, o).map_err(registry(reference))
    }
}

/// What `kiln push` is asked to do.
#[derive(Debug, Clone)]
pub struct PushOptions {
    pub project: PathBuf,
    /// The image of kiln.toml (`None`: the only one).
    pub image: Option<String>,
    /// Output directory root (default `target/kiln/out`).
    pub out_dir: Option<PathBuf>,
    /// `REGISTRY/REPOSITORY[:TAG]`; without a tag, the built one.
    pub target: String,
    pub registry: RegistryOptions,
    /// Key for cosign's `.sig` simple signing (`None`: no `.sig`).
    pub signing_key: Option<PathBuf>,
    /// Repositories of the same registry to mount blobs from.
    pub mount_from: Vec<String>,
}

/// Pushes one built image and its evidence; writes `push.json` beside it.
pub fn push(
    opts: &PushOptions,
    progress: &dyn crate::Progress,
) -> Result<kiln_registry::push::Report, PublishError> {
    let config = kiln_config::Config::load(&opts.project)?;
    let image = match &opts.image {
        // An unknown name is kiln.toml's error (it lists the images), not "not built".
        Some(n) => config.image(n)?,
        None => match config.images.as_slice() {
            [one] => one,
            many => {
                return Err(PublishError::WhichImage {
                    count: many.len(),
                    names: many
                        .iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        },
    };
    let out = match &opts.out_dir {
        Some(d) => OutputDir::new(d.join(&image.name)),
        None => ProjectLayout::new(&opts.project).output(&image.name),
    };
    let summary_path = out.summary();
    if !summary_path.is_file() {
        return Err(PublishError::NotBuilt {
            image: image.name.clone(),
            path: summary_path,
        });
    }
    let summary = Summary::read(&summary_path)?;
    let mut target = Reference::parse(&opts.target)?;
    let requested = target
        .tag
        .clone()
        .unwrap_or_else(|| summary.ref_name.clone());
    if requested == "latest" {
        return Err(PublishError::Latest {
            image: image.name.clone(),
            reference: target.with_tag(&requested).to_string(),
        });
    }
    if requested != summary.ref_name {
        return Err(PublishError::TagMismatch {
            image: image.name.clone(),
            built: summary.ref_name.clone(),
            requested,
            reference: target.to_string(),
        });
    }
    if let Some(d) = target.digest
        && d != summary.digest
    {
        return Err(PublishError::DigestMismatch {
            image: image.name.clone(),
            reference: target.to_string(),
            requested: d,
            built: summary.digest,
        });
    }
    target = target.with_tag(&requested);

    let extra = legacy_tags(&out, &summary, &target, opts.signing_key.as_deref())?;
    let client = opts.registry.client(&target, true)?;
    let step = |m: &str| progress.step(&image.name, &format!("push: {m}"));
    step(&format!("to {target}"));
    let report = kiln_registry::push::push(
        &client,
        &kiln_registry::push::Request {
            layout: &out.oci(),
            image: summary.digest,
            tag: &requested,
            mount_from: &opts.mount_from,
            extra: &extra,
        },
        &step,
    )
    .map_err(registry(&target))?;
    let path = out.file(kiln_core::contract::layout::file::PUSH);
    fsx::write_atomic(&path, &report.to_json()).map_err(io("cannot write", &path))?;
    Ok(report)
}

/// cosign's legacy tags: `.att`, the attestations image the signed build put in the layout
/// (`kind` = `dev.cosignproject.cosign/atts`; `verify` checks it against the envelopes),
/// pushed as it is; and, with a key, `.sig` (simple signing of the image digest for
/// `target`'s repository), which names the repository and so is made here.
fn legacy_tags(
    out: &OutputDir,
    summary: &Summary,
    target: &Reference,
    key: Option<&Path>,
) -> Result<Vec<TagImage>, PublishError> {
    let reg = |source| PublishError::Registry {
        reference: target.to_string(),
        source,
    };
    let layout = kiln_registry::oci::Layout::open(&out.oci()).map_err(reg)?;
    let mut tags = Vec::new();
    let atts = layout.index.manifests.iter().find(|d| {
        d.annotations
            .get(kiln_registry::oci::ANNOTATION_COSIGN_KIND)
            .map(String::as_str)
            == Some(kiln_registry::oci::COSIGN_KIND_ATTS)
    });
    if let Some(d) = atts {
        let manifest = layout.read_blob(&d.digest).map_err(reg)?;
        let m = kiln_registry::oci::Manifest::parse(&manifest, "cosign attestations manifest")
            .map_err(reg)?;
        let blobs = m
            .blobs()
            .map(|b| layout.read_blob(&b.digest))
            .collect::<Result<Vec<_>, _>>()
            .map_err(reg)?;
        tags.push(TagImage {
            tag: kiln_attest::cosign::attestation_tag_name(&summary.digest),
            manifest,
            blobs,
            what: "cosign attestations (.att)".into(),
        });
    }
    if let Some(k) = key {
        let attest = |source| PublishError::Attest {
            image: summary.image.clone(),
            source,
        };
        let key = kiln_attest::SigningKey::load(k).map_err(attest)?;
        tags.push(tag_image(
            kiln_attest::cosign::signature_tag(&summary.digest, &target.repository_name(), &key),
            "cosign signature (.sig)",
        ));
    }
    Ok(tags)
}

fn tag_image(t: kiln_attest::cosign::TagImage, what: &str) -> TagImage {
    let mut blobs = vec![t.config];
    blobs.extend(t.layers.into_iter().map(|(_, b)| b));
    TagImage {
        tag: t.tag,
        manifest: t.manifest,
        blobs,
        what: what.to_string(),
    }
}

/// What `kiln pull` fetched.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pulled {
    pub dir: PathBuf,
    #[serde(flatten)]
    pub registry: kiln_registry::pull::Pulled,
    /// Evidence files written beside `oci/`.
    pub files: Vec<String>,
}

/// Pulls `reference` (tag or digest) and its evidence into `dest` as an output directory
/// (`oci/` plus the attached files beside it). `dest` appears complete or not at all.
pub fn pull(
    reference: &str,
    dest: &Path,
    opts: &RegistryOptions,
    progress: &dyn Fn(&str),
) -> Result<Pulled, PublishError> {
    let r = Reference::parse(reference)?;
    let client = opts.client(&r, false)?;
    let staging = fsx::StagingDir::new(dest).map_err(io("cannot create", dest))?;
    let layout = OutputDir::new(staging.path()).oci();
    let pulled =
        kiln_registry::pull::pull(&client, &layout, None, progress).map_err(registry(&r))?;
    let files =
        kiln_attest::attach::unpack(staging.path()).map_err(|source| PublishError::Attest {
            image: r.to_string(),
            source,
        })?;
    let dir = staging.commit().map_err(io("cannot write", dest))?;
    Ok(Pulled {
        dir,
        registry: pulled,
        files,
    })
}

/// What `kiln verify REF` found.
pub struct RemoteReport {
    /// `tag X → digest`, when a tag was resolved.
    pub resolved: Option<String>,
    pub report: kiln_attest::Report,
}

/// `kiln verify REF`: pulls `reference` and its referrers into a temporary directory and
/// runs every check `verify` runs on an output directory (as a registry copy), plus
/// cosign's `.sig` when the registry has one: its simple-signing payload must name this
/// image and verify with a key the policy trusts.
///
/// With `pack`, the evidence pack is checked too (`kiln_compliance::audit::release_checks`):
/// whole, its control attestation the one attached to this image in the registry.
pub fn verify(
    reference: &str,
    policy: &kiln_attest::Policy,
    opts: &RegistryOptions,
    pack: Option<&Path>,
    progress: &dyn Fn(&str),
) -> Result<RemoteReport, PublishError> {
    let tmp = tempfile::tempdir().map_err(io("cannot create", &std::env::temp_dir()))?;
    let dest = tmp.path().join("image");
    let pulled = pull(reference, &dest, opts, progress)?;
    let mut report = kiln_attest::verify_with(
        &dest,
        policy,
        &kiln_attest::Options {
            reference: None,
            registry_copy: true,
        },
    );
    if let Some(sig) = &pulled.registry.signature {
        let r = check_signature_tag(sig, &pulled.registry.image, reference, policy);
        report.checks.push(kiln_attest::Check {
            rule: "cosign signature (.sig)".into(),
            pass: r.is_ok(),
            detail: r.unwrap_or_else(|e| e),
        });
        report.ok = report.checks.iter().all(|c| c.pass);
    }
    if let Some(pack) = pack {
        report.checks.extend(kiln_compliance::audit::release_checks(
            pack,
            policy,
            Some(&pulled.registry.image),
            Some(&dest),
        ));
        report.ok = report.checks.iter().all(|c| c.pass);
    }
    Ok(RemoteReport {
        resolved: pulled.registry.resolved.clone(),
        report,
    })
}

/// The `.sig` must verify with one of the policy's keys and name `image`. Its
/// `docker-reference` names the repository kiln pushed to; like cosign, a different one
/// (a mirror) is reported, not refused.
fn check_signature_tag(
    sig: &kiln_registry::pull::TagBytes,
    image: &Digest,
    reference: &str,
    policy: &kiln_attest::Policy,
) -> Result<String, String> {
    let img = kiln_attest::cosign::TagImage {
        tag: sig.tag.clone(),
        manifest: sig.manifest.clone(),
        config: sig.config.clone(),
        layers: sig.layers.clone(),
    };
    let claimed = sig
        .layers
        .first()
        .and_then(|(_, b)| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| {
            v["critical"]["identity"]["docker-reference"]
                .as_str()
                .map(String::from)
        })
        .ok_or_else(|| format!("{}: not a simple-signing payload", sig.tag))?;
    let mut why = Vec::new();
    for (path, key) in &policy.keys {
        match kiln_attest::cosign::verify_signature_tag(&img, image, &claimed, key) {
            Ok(()) => {
                let here = Reference::parse(reference)
                    .map(|r| r.repository_name())
                    .unwrap_or_default();
                let note = if here == claimed {
                    String::new()
                } else {
                    format!(" (it names {claimed}, pulled from {here})")
                };
                return Ok(format!(
                    "{}: simple signing of {image} by key {} ({}){note}",
                    sig.tag,
                    key.keyid(),
                    path.display()
                ));
            }
            Err(e) => why.push(e.to_string()),
        }
    }
    Err(if why.is_empty() {
        format!("{}: the policy names no key to check it with", sig.tag)
    } else {
        why.join("; ")
    })
}
