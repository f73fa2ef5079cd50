//! The attested build cache in the pipeline: the key of an image's compile step, the
//! lookup before compiling, the entry stored after.
//!
//! The key ([`kiln_cache::KeyDocument`]) holds what shapes the binaries and nothing that
//! only names where the build ran: absolute paths in rustflags and in the environment are
//! left out (kiln remaps them, and `repro` proves the bytes do not depend on them), so a
//! clone elsewhere hits the same entry. An entry is used only when its attestation
//! verifies with the build's own signing key or one of kiln.toml's `[cache] trusted_keys`;
//! everything refused is reported and the build compiles instead.
//!
//! A registry (`--cache-registry`, `[cache] registry`) is a second tier: on a local miss
//! the entry tagged `kiln-cache-<key hex>` is pulled into the local store (each blob
//! checked against its digest as it arrives) and used only if it verifies there as a local
//! entry would; a freshly stored entry is pushed there (blobs the registry lacks, the
//! manifest by digest, then the tag). The registry only ever speeds a build up: any
//! failure talking to it is a warning naming the registry and the error, and the build
//! goes on with its local store.

use std::path::{Path, PathBuf};

use kiln_attest::{PublicKey, SigningKey};
use kiln_cache::{Hit, KeyDocument, Lookup, Output, Store};
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
    remote: Option<Remote>,
}

/// The registry tier: one repository, an entry per tag [`registry_tag`].
struct Remote {
    client: kiln_registry::Client,
    /// `registry/repository`, for messages.
    name: String,
}

/// The tag of `key`'s entry in a cache registry: `kiln-cache-` and the key digest's 64 hex
/// digits (75 characters; a tag may have 128).
pub(crate) fn registry_tag(key: &Digest) -> String {
    format!("kiln-cache-{}", key.hex())
}

/// A failure talking to the cache registry: never fatal, never silent.
fn warn(image: &str, remote: &Remote, what: &str, e: &dyn std::fmt::Display) {
    eprintln!(
        "kiln: [{image}] warning: cache registry {}: {what}: {e} (the build goes on without it)",
        remote.name
    );
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
        if !opts.cache_enabled(config) && !opts.cache_check {
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
        let remote = Self::remote(opts, config, key.is_some())?;
        Ok(Some(Cache {
            store,
            trusted,
            signer: key,
            remote,
        }))
    }

    /// The registry tier, if one is configured. A malformed reference, or plain HTTP to a
    /// registry not on this machine, is an error; credentials that cannot be read are a
    /// warning (the build uses its local store only).
    fn remote(
        opts: &crate::BuildOptions,
        config: &kiln_config::Config,
        push: bool,
    ) -> Result<Option<Remote>, BuildError> {
        let Some(r) = opts
            .cache_registry
            .as_deref()
            .or(config.cache.registry.as_deref())
        else {
            return Ok(None);
        };
        let bad = |message: String| BuildError::Cache {
            image: "*".into(),
            message,
        };
        let reference = kiln_config::check_cache_registry(r)
            .map_err(|m| bad(format!("cache registry: {m}")))?;
        if opts.cache_insecure_http && !reference.is_loopback() {
            return Err(bad(format!(
                "cache registry {}: plain HTTP (--cache-insecure-http) is allowed only for a registry on this machine (127.0.0.1, localhost, [::1])",
                reference.repository_name()
            )));
        }
        let name = reference.repository_name();
        let o = kiln_registry::Options {
            insecure_http: opts.cache_insecure_http,
            push,
            ..Default::default()
        };
        match kiln_registry::Client::new(&reference, o) {
            Ok(client) => Ok(Some(Remote { client, name })),
            Err(e) => {
                eprintln!(
                    "kiln: warning: cache registry {name}: {e} (the build uses the local store only)"
                );
                Ok(None)
            }
        }
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
    /// `None` (a miss, or every candidate refused: each reason is printed). The local
    /// store first, then the registry, if any.
    pub(crate) fn restore(
        &self,
        spec: &ImageSpec,
        key: &KeyDocument,
        release: &Path,
    ) -> Result<Option<CacheUse>, BuildError> {
        let name = spec.name.as_str();
        let d = key.key();
        let hit = match self.store.get(key, &self.trusted).map_err(err(name))? {
            Lookup::Hit(hit) => (hit, String::new()),
            Lookup::Miss => {
                eprintln!("kiln: [{name}] cache: miss ({d})");
                match self.pull_from_registry(name, key)? {
                    Some(h) => h,
                    None => return Ok(None),
                }
            }
            Lookup::Refused(why) => {
                for w in &why {
                    eprintln!("kiln: [{name}] cache: refused {w}");
                }
                match self.pull_from_registry(name, key)? {
                    Some(h) => h,
                    None => return Ok(None),
                }
            }
        };
        let (hit, from) = hit;
        let names: Vec<&str> = hit.files.iter().map(|(n, _, _)| n.as_str()).collect();
        let want: Vec<&str> = spec.binaries.iter().map(String::as_str).collect();
        if names != want {
            eprintln!(
                "kiln: [{name}] cache: refused entry {}{from}: holds {names:?}, the image needs {want:?}",
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
            "kiln: [{name}] cache: hit {}{from} (signed by key {}), compile skipped",
            hit.entry.manifest_digest, hit.signer
        );
        Ok(Some(CacheUse {
            entry: hit.entry.manifest_digest,
            key: d,
            signer: hit.signer,
        }))
    }

    /// The registry's entry for `key`, pulled into the local store and verified there, with
    /// ` from registry REF` for messages; `None` (each reason printed) when there is no
    /// registry, no entry, it is refused, or the registry cannot be reached (a warning).
    fn pull_from_registry(
        &self,
        name: &str,
        key: &KeyDocument,
    ) -> Result<Option<(Hit, String)>, BuildError> {
        let Some(r) = &self.remote else {
            return Ok(None);
        };
        let tag = registry_tag(&key.key());
        let at = format!("{}:{tag}", r.name);
        let m = match r.client.get_manifest(&tag) {
            Ok(Some(m)) => m,
            Ok(None) => {
                eprintln!("kiln: [{name}] cache: miss in registry {at}");
                return Ok(None);
            }
            Err(e) => {
                warn(name, r, &format!("cannot look up {tag}"), &e);
                return Ok(None);
            }
        };
        let mut fetch = |d: &Digest,
                         size: u64,
                         f: &mut std::fs::File|
         -> kiln_registry::Result<()> { r.client.pull_blob(d, size, f) };
        let imported = self
            .store
            .import(key, &self.trusted, &m.bytes, &mut fetch)
            .map_err(err(name))?;
        match imported {
            Err(e) => {
                warn(name, r, &format!("cannot fetch {tag}"), &e);
                Ok(None)
            }
            Ok(Lookup::Hit(hit)) => Ok(Some((hit, format!(" from registry {at}")))),
            Ok(Lookup::Refused(why)) => {
                for w in &why {
                    eprintln!("kiln: [{name}] cache: refused {w} (from registry {at})");
                }
                Ok(None)
            }
            Ok(Lookup::Miss) => Ok(None),
        }
    }

    /// Pushes the stored entry `entry` to the registry, if any: blobs it lacks, the
    /// manifest by digest, then the tag (so the tag never names an incomplete entry).
    fn push(&self, name: &str, key: &KeyDocument, entry: &Digest) -> Result<(), BuildError> {
        let Some(r) = &self.remote else {
            return Ok(());
        };
        let (manifest, blobs) = self.store.export(entry).map_err(err(name))?;
        let tag = registry_tag(&key.key());
        let pushed = (|| -> kiln_registry::Result<usize> {
            let mut uploaded = 0;
            for (d, size, path) in &blobs {
                let how =
                    r.client
                        .push_blob(d, *size, kiln_registry::BlobSource::File(path), &[])?;
                if how != kiln_registry::BlobPush::Present {
                    uploaded += 1;
                }
            }
            let media_type = kiln_registry::client::MEDIA_TYPE_OCI_MANIFEST;
            r.client
                .put_manifest(&entry.to_string(), media_type, &manifest)?;
            r.client.put_manifest(&tag, media_type, &manifest)?;
            Ok(uploaded)
        })();
        match pushed {
            Ok(uploaded) => eprintln!(
                "kiln: [{name}] cache: pushed {entry} to {}:{tag} ({uploaded} of {} blobs uploaded)",
                r.name,
                blobs.len()
            ),
            Err(e) => warn(name, r, &format!("cannot push {tag}"), &e),
        }
        Ok(())
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
        self.push(name, key, &e.manifest_digest)
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
        // The local store, else the registry (an entry pulled from it is checked too).
        let hit = match self.store.get(key, &self.trusted).map_err(err(name))? {
            Lookup::Hit(h) => h,
            Lookup::Miss => match self.pull_from_registry(name, key)? {
                Some((h, _)) => h,
                None => return Err(fail(format!("no entry has the key {}", key.key()))),
            },
            Lookup::Refused(why) => match self.pull_from_registry(name, key)? {
                Some((h, _)) => h,
                None => return Err(fail(why.join("; "))),
            },
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
