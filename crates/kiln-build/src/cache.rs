//! The attested build cache in the pipeline: the key of an image's compile step, the
//! lookup before compiling, the entry stored after.
//!
//! The key ([`kiln_cache::KeyDocument`]) holds what shapes the binaries and nothing that
//! only names where the build ran: absolute paths in rustflags and in the environment are
//! left out (kiln remaps them, and `repro` proves the bytes do not depend on them), so a
//! clone elsewhere hits the same entry. An entry is used only when its attestation
//! verifies with the build's own signing key or one of kiln.toml's `[cache] trusted_keys`;
//! everything refused is reported and the build compiles instead.

use std::path::{Path, PathBuf};

use kiln_attest::{PublicKey, SigningKey};
use kiln_cache::{KeyDocument, Lookup, Output, Store};
use kiln_config::ImageSpec;
use kiln_core::Digest;
use kiln_hermetic::Hermetic;

use crate::error::BuildError;

/// An entry the build used.
#[derive(Debug, Clone)]
pub(crate) struct CacheUse {
    pub entry: Digest,
    pub key: Digest,
    /// Key id of the signer.
    pub signer: String,
}

/// The cache as this build uses it.
pub(crate) struct Cache {
    store: Store,
    trusted: Vec<PublicKey>,
    signer: Option<SigningKey>,
}

fn err(image: &str) -> impl Fn(kiln_cache::CacheError) -> BuildError + '_ {
    move |e| BuildError::Cache {
        image: image.to_string(),
        message: e.to_string(),
    }
}

impl Cache {
    /// `None` when the cache is off for this build.
    pub(crate) fn open(
        opts: &crate::BuildOptions,
        config: &kiln_config::Config,
    ) -> Result<Option<Cache>, BuildError> {
        if !opts.cache.unwrap_or(config.cache.enabled) && !opts.cache_check {
            return Ok(None);
        }
        let dir = opts
            .cache_dir
            .clone()
            .or_else(|| config.cache.dir.as_ref().map(|d| config.root.join(d)))
            .or_else(Store::default_dir)
            .ok_or_else(|| BuildError::Cache {
                image: "*".into(),
                message: "no cache directory: set $KILN_CACHE_DIR, [cache] dir or --cache-dir"
                    .into(),
            })?;
        let store = Store::open(&dir).map_err(err("*"))?;
        let (key, _) = crate::attest::signers(
            "*",
            opts.evidence.signing_key.as_deref(),
            opts.evidence.keyless,
        )?;
        let mut trusted: Vec<PublicKey> = key.iter().map(|k| k.public().clone()).collect();
        for k in &config.cache.trusted_keys {
            let p = config.root.join(k);
            trusted.push(PublicKey::load(&p).map_err(|source| BuildError::Attest {
                image: "*".into(),
                source,
            })?);
        }
        Ok(Some(Cache {
            store,
            trusted,
            signer: key,
        }))
    }

    pub(crate) fn dir(&self) -> &Path {
        self.store.dir()
    }

    /// The key document of `spec`'s compile step.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn key(
        &self,
        spec: &ImageSpec,
        project: &Path,
        toolchain_lock: Digest,
        cargo_lock: &kiln_hermetic::CargoLock,
        target: &str,
        env: &Hermetic,
        sde: u64,
    ) -> Result<KeyDocument, BuildError> {
        let name = spec.name.as_str();
        let io = |what: &str, p: &Path| {
            let p = p.to_path_buf();
            let what = what.to_string();
            move |e: std::io::Error| BuildError::Cache {
                image: name.to_string(),
                message: format!("{what} {}: {e}", p.display()),
            }
        };
        let source_tree =
            kiln_cache::source_tree_digest(project).map_err(io("cannot hash", project))?;
        let crates = cargo_lock
            .crates
            .iter()
            .filter_map(|p| {
                p.checksum
                    .as_ref()
                    .map(|c| (p.name.clone(), p.version.clone(), c.clone()))
            })
            .collect();
        // Flags and variables as the compiler sees them, minus the machine's paths:
        // `--remap-path-prefix=FROM=TO` keeps its TO, a variable whose value is an
        // absolute path keeps its name.
        let vars = env.env();
        let rustflags = vars
            .get("CARGO_ENCODED_RUSTFLAGS")
            .map(|f| {
                f.split('\u{1f}')
                    .map(|flag| match flag.strip_prefix("--remap-path-prefix=") {
                        Some(m) => format!(
                            "--remap-path-prefix=<path>={}",
                            m.rsplit_once('=').map(|(_, to)| to).unwrap_or_default()
                        ),
                        None => flag.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let environment = vars
            .iter()
            .filter(|(k, _)| k.as_str() != "CARGO_ENCODED_RUSTFLAGS")
            .map(|(k, v)| {
                if v.starts_with('/') {
                    k.clone()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        let image = serde_json::json!({
            "package": spec.package,
            "manifest": spec.manifest,
            "binaries": spec.binaries,
        });
        Ok(KeyDocument {
            schema: kiln_cache::KEY_SCHEMA.to_string(),
            kiln_version: env!("CARGO_PKG_VERSION").to_string(),
            toolchain_lock,
            cargo_lock: cargo_lock.digest,
            crates,
            source_tree,
            image,
            target: target.to_string(),
            profile: "release".into(),
            features: spec.features.clone(),
            no_default_features: spec.no_default_features,
            rustflags,
            environment,
            source_date_epoch: sde,
        })
    }

    /// The binaries of a verified entry for `key`, written into `release` (mode 0755), or
    /// `None` (a miss, or every candidate refused: each reason is printed).
    pub(crate) fn restore(
        &self,
        spec: &ImageSpec,
        key: &KeyDocument,
        release: &Path,
    ) -> Result<Option<CacheUse>, BuildError> {
        let name = spec.name.as_str();
        let d = key.key();
        match self.store.get(key, &self.trusted).map_err(err(name))? {
            Lookup::Miss => {
                eprintln!("kiln: [{name}] cache: miss ({d})");
                Ok(None)
            }
            Lookup::Refused(why) => {
                for w in &why {
                    eprintln!("kiln: [{name}] cache: refused {w}");
                }
                Ok(None)
            }
            Lookup::Hit(hit) => {
                let names: Vec<&str> = hit.files.iter().map(|(n, _, _)| n.as_str()).collect();
                let want: Vec<&str> = spec.binaries.iter().map(String::as_str).collect();
                if names != want {
                    eprintln!(
                        "kiln: [{name}] cache: refused entry {}: holds {names:?}, the image needs {want:?}",
                        hit.entry.manifest_digest
                    );
                    return Ok(None);
                }
                kiln_core::fsx::create_dir_all(release).map_err(|e| BuildError::Cache {
                    image: name.into(),
                    message: format!("cannot create {}: {e}", release.display()),
                })?;
                for p in hit.extract(release).map_err(err(name))? {
                    set_executable(&p).map_err(|e| BuildError::Cache {
                        image: name.into(),
                        message: format!("{}: {e}", p.display()),
                    })?;
                }
                eprintln!(
                    "kiln: [{name}] cache: hit {} (signed by key {}), compile skipped",
                    hit.entry.manifest_digest, hit.signer
                );
                Ok(Some(CacheUse {
                    entry: hit.entry.manifest_digest,
                    key: d,
                    signer: hit.signer,
                }))
            }
        }
    }

    /// Stores the freshly compiled binaries under `key`, signed with the build's key (a
    /// keyless or unsigned build stores nothing: an entry nobody signed is never used).
    pub(crate) fn store(
        &self,
        spec: &ImageSpec,
        key: &KeyDocument,
        release: &Path,
    ) -> Result<(), BuildError> {
        let name = spec.name.as_str();
        let Some(signer) = &self.signer else {
            eprintln!(
                "kiln: [{name}] cache: not stored: entries are signed with a key (--key FILE or $KILN_SIGNING_KEY)"
            );
            return Ok(());
        };
        let outputs: Vec<Output> = spec
            .binaries
            .iter()
            .map(|b| Output {
                name: b.clone(),
                path: release.join(b),
            })
            .collect();
        let e = self.store.put(key, &outputs, signer).map_err(err(name))?;
        eprintln!(
            "kiln: [{name}] cache: stored {} in {}",
            e.manifest_digest,
            self.store.dir().display()
        );
        Ok(())
    }

    /// `kiln cache check`: the entry for `key` must exist, verify, and hold exactly the
    /// binaries this build just compiled without it.
    pub(crate) fn check(
        &self,
        spec: &ImageSpec,
        key: &KeyDocument,
        release: &Path,
    ) -> Result<Digest, BuildError> {
        let name = spec.name.as_str();
        let fail = |message: String| BuildError::CacheCheck {
            image: name.to_string(),
            message,
        };
        let hit = match self.store.get(key, &self.trusted).map_err(err(name))? {
            Lookup::Hit(h) => h,
            Lookup::Miss => return Err(fail(format!("no entry has the key {}", key.key()))),
            Lookup::Refused(why) => return Err(fail(why.join("; "))),
        };
        for (bin, _, want) in &hit.files {
            let p: PathBuf = release.join(bin);
            let got = Digest::of_file(&p).map_err(|e| fail(format!("{}: {e}", p.display())))?;
            if &got != want {
                return Err(fail(format!(
                    "{bin}: the build without the cache gives {got}, the entry {} holds {want}",
                    hit.entry.manifest_digest
                )));
            }
        }
        eprintln!(
            "kiln: [{name}] cache check: entry {} holds exactly what a build without the cache compiles ({} binaries)",
            hit.entry.manifest_digest,
            hit.files.len()
        );
        Ok(hit.entry.manifest_digest)
    }
}

fn set_executable(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
}
