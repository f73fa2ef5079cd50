//! The provenance, signing and attach step of the pipeline: maps the build's context to
//! [`kiln_attest::provenance::ProvenanceInputs`] and lets kiln-attest write and attach.
//!
//! Runs after the SBOM step (so `sbom.*.json` are subjects and get signed) and before
//! the archives are cut from the layout (so they carry the referrers).

use std::path::Path;

use kiln_attest::attach::Descriptor;
use kiln_attest::keyless::Keyless;
use kiln_attest::provenance::{
    BuilderIdentity, Lineage, LockedCrate, ProvenanceInputs, SourceInfo, VexInput,
};
use kiln_attest::{Signer, SigningKey};

use crate::context::ImageContext;
use crate::error::BuildError;

/// Writes provenance (recording `vex_inputs`, what the VEX step read), signs the evidence
/// and attaches it to the layout.
pub(crate) fn write(ctx: &ImageContext, vex_inputs: Vec<VexInput>) -> Result<(), BuildError> {
    let image = ctx.spec.name.as_str();
    let evidence_err = |source| BuildError::Attest {
        image: image.to_string(),
        source,
    };
    let started = std::time::SystemTime::now();
    let (key, keyless) = signing(ctx)?;
    let signer = match (&key, &keyless) {
        (Some(k), _) => Signer::Key(k),
        (None, Some(k)) => Signer::Keyless(k),
        (None, None) => Signer::Unsigned,
    };
    let inputs = provenance_inputs(ctx, vex_inputs, started);
    let subject = Descriptor {
        media_type: ctx.built.manifest.media_type.clone(),
        digest: ctx.built.manifest.digest,
        size: ctx.built.manifest.size,
        artifact_type: None,
        annotations: Default::default(),
    };
    let written =
        kiln_attest::write(ctx.out, ctx.layout, &subject, inputs, &signer).map_err(evidence_err)?;
    if !written.signed {
        // What a cosign user expects: nothing claims to be signed when it is not.
        eprintln!(
            "kiln: [{image}] note: no signing key: provenance.json is written and attached unsigned; `verify` will report \"no signature\" (sign with --key FILE, $KILN_SIGNING_KEY or --keyless)"
        );
    }
    Ok(())
}

/// How the evidence is signed: with a key (`--key`, else `$KILN_SIGNING_KEY`), keyless
/// (`--keyless`), or neither. The key is read, and its file mode checked, before anything
/// is written, so a bad key costs no half-written evidence.
fn signing(ctx: &ImageContext) -> Result<(Option<SigningKey>, Option<Keyless>), BuildError> {
    let ev = &ctx.opts.evidence;
    signers(&ctx.spec.name, ev.signing_key.as_deref(), ev.keyless)
}

/// [`signing`] for any step that signs (`controls attest` too): `--key`, else
/// `$KILN_SIGNING_KEY`; or `--keyless`; never both.
pub(crate) fn signers(
    image: &str,
    signing_key: Option<&Path>,
    keyless: bool,
) -> Result<(Option<SigningKey>, Option<Keyless>), BuildError> {
    let env_key = std::env::var(kiln_attest::keys::KEY_ENV).ok();
    let key = SigningKey::resolve(signing_key, env_key.as_deref()).map_err(|source| {
        BuildError::Attest {
            image: image.to_string(),
            source,
        }
    })?;
    if !keyless {
        return Ok((key, None));
    }
    if key.is_some() {
        return Err(BuildError::KeyAndKeyless {
            image: image.to_string(),
        });
    }
    // The one reading of KILN_FULCIO_URL / KILN_REKOR_URL / KILN_OIDC_TOKEN: an empty
    // variable is unset, as cosign treats it.
    let keyless = Keyless::from_env(&|k| std::env::var(k).ok());
    Ok((None, Some(keyless)))
}

/// What provenance records about the build: the image and its binaries, the inputs
/// (kiln.toml, Cargo.lock and every locked crate, the toolchain lock, the base, the VEX
/// inputs), how it was built (sandbox, environment, `SOURCE_DATE_EPOCH`), the source
/// revision, the lineage tags and the builder; wall-clock times only on request.
fn provenance_inputs(
    ctx: &ImageContext,
    vex_inputs: Vec<VexInput>,
    started: std::time::SystemTime,
) -> ProvenanceInputs {
    let env = |k: &str| std::env::var(k).ok();
    let config_lineage = &ctx.config.lineage;
    let lineage = Lineage::resolve(
        Lineage {
            source: config_lineage.source.clone(),
            transform: config_lineage.transform.clone(),
            policy_version: config_lineage.policy_version.clone(),
        },
        &env,
    );
    let timestamps = ctx.opts.evidence.timestamps.then(|| {
        let secs = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        (
            kiln_attest::provenance::rfc3339(secs(started)),
            kiln_attest::provenance::rfc3339(secs(std::time::SystemTime::now())),
        )
    });
    ProvenanceInputs {
        image: ctx.spec.name.clone(),
        tag: ctx.spec.tag().to_string(),
        platform: ctx.spec.platform.clone(),
        manifest_digest: ctx.built.manifest.digest,
        binaries: ctx
            .binaries
            .iter()
            .map(|b| (b.path.clone(), b.sha256))
            .collect(),
        sboms: Vec::new(),
        target: ctx.toolchain_record.target.clone(),
        kiln_toml: ctx.config.digest,
        cargo_lock: ctx.cargo_lock.digest,
        source: git_source(ctx.project),
        lineage,
        sandbox: ctx.sandbox.to_string(),
        environment: ctx.env.env().keys().cloned().collect(),
        source_date_epoch: ctx.sde.value,
        source_date_epoch_source: ctx.sde.source.as_str().to_string(),
        toolchain_lock: ctx.toolchain_record.lock.clone(),
        toolchain_lock_digest: ctx.toolchain_record.lock_digest,
        rustc: ctx.toolchain_record.rustc.clone(),
        crates: ctx
            .cargo_lock
            .crates
            .iter()
            .filter_map(|c| {
                c.checksum.as_ref().map(|sum| LockedCrate {
                    name: c.name.clone(),
                    version: c.version.clone(),
                    sha256: sum.clone(),
                })
            })
            .collect(),
        base: ctx.built.base,
        base_ref: match &ctx.spec.base {
            kiln_config::Base::Layout {
                reference: Some(r), ..
            } => Some(r.to_string()),
            _ => None,
        },
        base_allowlist: ctx.config.policy.base_allowlist.clone(),
        build_cache: ctx.cache.map(|c| (c.entry, c.key, c.signer.clone())),
        toolchain_root: ctx
            .toolchain_root
            .and_then(crate::provided::provenance_record),
        vex_inputs,
        builder: BuilderIdentity::detect(&env),
        kiln_version: env!("CARGO_PKG_VERSION").to_string(),
        timestamps,
    }
}

/// The source repository and commit, when the project is in a git work tree. Absent
/// (not guessed) otherwise; the remote URL is omitted when there is none.
pub(crate) fn git_source(project: &Path) -> Option<SourceInfo> {
    let git = |args: &[&str]| -> Option<String> {
        let out = kiln_core::process::command("git")
            .arg("-C")
            .arg(project)
            .args(args)
            .env_remove("GIT_DIR")
            .output()
            .ok()?;
        let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !s.is_empty()).then_some(s)
    };
    let revision = git(&["rev-parse", "--verify", "HEAD"])?;
    // Credentials embedded in a remote URL must not reach a signed document.
    let repository = git(&["config", "--get", "remote.origin.url"]).map(|u| strip_userinfo(&u));
    Some(SourceInfo {
        repository,
        revision,
    })
}

fn strip_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) if !user.contains('/') => format!("{scheme}://{host}"),
            _ => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_are_stripped_from_remote_urls() {
        assert_eq!(
            super::strip_userinfo("https://tok:x@github.com/o/r.git"),
            "https://github.com/o/r.git"
        );
        assert_eq!(
            super::strip_userinfo("git@github.com:o/r.git"),
            "git@github.com:o/r.git"
        );
    }
}
