//! `kiln rebuild PROVENANCE`: an independent rebuilder. It works from a provenance alone,
//! as rebuilderd does for distributions: the source repository and commit, kiln.toml's
//! digest, `Cargo.lock` and every crate checksum, the toolchain lock (and the provided
//! toolchain root's digest), `SOURCE_DATE_EPOCH` and the image. It obtains the source,
//! checks that each of those inputs is the one the provenance names, so a difference is
//! named before anything is built, rebuilds without the cache in a fresh build root, and
//! compares every subject's digest with the rebuilt one.
//!
//! It trusts nothing the provenance says without checking it: the source is checked out
//! at the recorded commit, and then every recorded input digest must match the checkout.
//! Verifying the provenance's *signature* is `kiln verify`'s job; a rebuilder answers
//! whether the claimed inputs give the claimed outputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_config::Config;
use kiln_core::Digest;
use kiln_hermetic::CargoLock;
use serde_json::Value;

use crate::context::{BuildOptions, Progress};
use crate::error::BuildError;

type Result<T, E = BuildError> = std::result::Result<T, E>;

/// What to rebuild and where.
#[derive(Debug, Clone)]
pub struct RebuildRequest {
    /// `provenance.intoto.json` (a DSSE envelope) or `provenance.json` (the statement).
    pub provenance: PathBuf,
    /// The source tree to use instead of cloning the recorded repository (required when the
    /// provenance names no repository).
    pub source: Option<PathBuf>,
    /// Work directory: `src/` (the checkout), `root/` (the build root), `out/` (outputs).
    pub work: PathBuf,
}

/// One subject of the provenance, and what the rebuild gave for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectCheck {
    pub name: String,
    pub expected: Digest,
    /// `None`: the rebuild produced nothing of that name.
    pub rebuilt: Option<Digest>,
}

/// The outcome of a rebuild.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub image: String,
    /// The rebuilt image's output directory.
    pub out: PathBuf,
    pub subjects: Vec<SubjectCheck>,
}

impl Rebuilt {
    /// Every subject digest matches.
    pub fn reproduced(&self) -> bool {
        self.subjects.iter().all(|s| s.rebuilt == Some(s.expected))
    }
}

fn bad(message: String, fix: &str) -> BuildError {
    BuildError::Rebuild {
        message,
        fix: fix.to_string(),
    }
}

/// The statement in `path`: a DSSE envelope's payload, or the file itself.
fn statement(path: &Path) -> Result<Value> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(crate::error::io("cannot read", path))?;
    let doc: Value = serde_json::from_slice(&bytes).map_err(|e| {
        bad(
            format!("{shown}: not JSON ({e})"),
            "pass a build's provenance.intoto.json or provenance.json",
        )
    })?;
    let doc = if doc.get("payloadType").is_some() {
        let env = kiln_attest::dsse::Envelope::parse(&bytes, &shown).map_err(|source| {
            BuildError::Attest {
                image: "?".into(),
                source,
            }
        })?;
        let payload = env
            .payload_bytes(&shown)
            .map_err(|source| BuildError::Attest {
                image: "?".into(),
                source,
            })?;
        serde_json::from_slice(&payload).map_err(|e| {
            bad(
                format!("{shown}: the envelope's payload is not JSON ({e})"),
                "pass a build's provenance.intoto.json",
            )
        })?
    } else {
        doc
    };
    let build_type = doc["predicate"]["buildDefinition"]["buildType"]
        .as_str()
        .unwrap_or_default();
    if build_type != kiln_attest::provenance::BUILD_TYPE {
        return Err(bad(
            format!(
                "{shown}: buildType `{build_type}` is not kiln's (`{}`)",
                kiln_attest::provenance::BUILD_TYPE
            ),
            "kiln rebuilds only what kiln built",
        ));
    }
    Ok(doc)
}

fn sha(v: &Value) -> Option<Digest> {
    v["digest"]["sha256"]
        .as_str()
        .and_then(|h| format!("sha256:{h}").parse().ok())
}

/// Rebuilds what `req.provenance` describes; see the module docs.
pub fn rebuild(req: &RebuildRequest, progress: &dyn Progress) -> Result<Rebuilt> {
    let shown = req.provenance.display().to_string();
    let doc = statement(&req.provenance)?;
    let def = &doc["predicate"]["buildDefinition"];
    let ext = &def["externalParameters"];
    let image = ext["image"].as_str().unwrap_or_default().to_string();
    let sde = def["internalParameters"]["sourceDateEpoch"]["value"]
        .as_u64()
        .ok_or_else(|| {
            bad(
                format!("{shown}: no internalParameters.sourceDateEpoch.value"),
                "pass a provenance kiln wrote",
            )
        })?;
    let deps: Vec<Value> = def["resolvedDependencies"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let dep = |name: &str| deps.iter().find(|d| d["name"] == name);

    // The source: the given tree, else a clone of the recorded repository at its commit.
    let source = match &req.source {
        Some(s) => s.clone(),
        None => {
            let src = dep("source")
                .and_then(|d| d["uri"].as_str())
                .and_then(|u| u.strip_prefix("git+"))
                .and_then(|u| u.rsplit_once('@'))
                .ok_or_else(|| {
                    bad(
                        format!(
                            "{shown}: the source dependency names no git repository and commit"
                        ),
                        "pass --source DIR with the project's source tree",
                    )
                })?;
            checkout(src.0, src.1, &req.work.join("src"), progress)?
        }
    };

    // Every recorded input must be the checkout's, named when it is not. A build inside a
    // provided root names it (`--toolchain-root` may have chosen it over kiln.toml).
    let root_name = dep(kiln_attest::provenance::TOOLCHAIN_ROOT).and_then(|d| {
        d["annotations"][kiln_attest::provenance::ANNOTATION_TOOLROOT_NAME]
            .as_str()
            .map(str::to_string)
    });
    let mut config = Config::load(&source)?;
    if let Some(n) = &root_name {
        config.project.toolchain_root = Some(n.clone());
        config.project.toolchain_lock = None;
    }
    let mut differ = Vec::new();
    if let Some(want) = ext["kilnToml"]["sha256"].as_str()
        && config.digest.hex() != want
    {
        differ.push(format!(
            "kiln.toml: provenance sha256:{want}, source {}",
            config.digest
        ));
    }
    let spec = config.image(&image)?;
    let cargo_lock = CargoLock::for_manifest(&config.resolve(&spec.manifest))?;
    if let Some(want) = dep(kiln_core::contract::layout::CARGO_LOCK).and_then(sha)
        && want != cargo_lock.digest
    {
        differ.push(format!(
            "Cargo.lock: provenance {want}, source {}",
            cargo_lock.digest
        ));
    }
    let locked: BTreeMap<String, String> = cargo_lock
        .crates
        .iter()
        .filter_map(|c| {
            c.checksum
                .clone()
                .map(|s| (format!("{}@{}", c.name, c.version), s))
        })
        .collect();
    for d in deps.iter().filter(|d| {
        d["uri"]
            .as_str()
            .is_some_and(|u| u.starts_with("pkg:cargo/"))
    }) {
        let name = d["name"].as_str().unwrap_or_default();
        let want = d["digest"]["sha256"].as_str().unwrap_or_default();
        match locked.get(name) {
            Some(have) if have == want => {}
            Some(have) => differ.push(format!(
                "crate {name}: provenance sha256 {want}, Cargo.lock {have}"
            )),
            None => differ.push(format!("crate {name}: not in the source's Cargo.lock")),
        }
    }
    let tc_dep = deps.iter().find(|d| {
        d["name"]
            .as_str()
            .is_some_and(|n| n.starts_with(kiln_core::contract::layout::TOOLCHAINS_DIR))
    });
    if let Some(d) = tc_dep {
        let rel = d["name"].as_str().unwrap_or_default();
        let file = source.join(rel);
        // The digest a build records: a provided root's lock or the host lock, as parsed.
        let have = if config.project.toolchain_root.is_some() {
            kiln_toolroot::RootLock::read(&file)
                .ok()
                .map(|l| l.digest())
        } else {
            kiln_toolchain::ToolchainLock::read(&file)
                .ok()
                .map(|l| l.digest())
        };
        match (sha(d), have) {
            (Some(want), Some(have)) if want == have => {}
            (want, have) => differ.push(format!(
                "toolchain lock {rel}: provenance {}, source {}",
                want.map_or("?".into(), |w| w.to_string()),
                have.map_or("missing".into(), |h| h.to_string())
            )),
        }
    }
    if let Some(d) = dep(kiln_attest::provenance::TOOLCHAIN_ROOT) {
        let have = config
            .project
            .toolchain_root
            .as_ref()
            .and_then(|n| {
                kiln_toolroot::RootLock::read(&crate::provided::lock_path(&config.root, n)).ok()
            })
            .and_then(|l| l.root.map(|r| r.manifest));
        if sha(d) != have {
            differ.push(format!(
                "toolchain-root: provenance {}, source {}",
                sha(d).map_or("?".into(), |w| w.to_string()),
                have.map_or("none".into(), |h| h.to_string())
            ));
        }
    }
    if !differ.is_empty() {
        return Err(bad(
            format!(
                "{shown}: the source does not have the inputs the provenance records:\n  {}",
                differ.join("\n  ")
            ),
            "rebuild from the commit the provenance names; a difference in a recorded input means the provenance does not describe this source",
        ));
    }

    // The build: offline once fetched, no cache, a fresh root, the recorded epoch.
    let mut opts = BuildOptions::new(&source);
    opts.images = vec![image.clone()];
    opts.sde_env = Some(sde.to_string());
    opts.root_dir = Some(req.work.join("root"));
    opts.out_dir = Some(req.work.join("out"));
    opts.cache = Some(false);
    opts.toolchain_root = root_name;
    if def["internalParameters"]["sandbox"] == "none" {
        opts.sandbox = kiln_hermetic::Sandbox::None;
    }
    progress.step(&image, "rebuilding from the provenance's inputs");
    let summaries = crate::pipeline::build(&opts, progress)?;
    let summary = summaries
        .into_iter()
        .find(|s| s.image == image)
        .ok_or_else(|| {
            bad(
                format!("the rebuild produced no image `{image}`"),
                "report this",
            )
        })?;
    let out = req.work.join("out").join(&image);

    // Compare every subject.
    let subjects = doc["subject"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|s| {
            let name = s["name"].as_str()?.to_string();
            let expected = sha(s)?;
            let rebuilt = if name == format!("{image}:{}", summary.ref_name) {
                Some(summary.digest)
            } else if let Some(b) = summary.binaries.iter().find(|b| b.path == name) {
                Some(b.sha256)
            } else {
                Digest::of_file(&out.join(&name)).ok()
            };
            Some(SubjectCheck {
                name,
                expected,
                rebuilt,
            })
        })
        .collect();
    Ok(Rebuilt {
        image,
        out,
        subjects,
    })
}

/// `git clone` of `repo` into `dir` (replacing it), checked out at `commit`.
fn checkout(repo: &str, commit: &str, dir: &Path, progress: &dyn Progress) -> Result<PathBuf> {
    progress.step("*", &format!("cloning {repo} at {commit}"));
    let _ = std::fs::remove_dir_all(dir);
    let git = |args: &[&str], cwd: Option<&Path>| -> Result<()> {
        let mut c = kiln_core::process::command("git");
        if let Some(d) = cwd {
            c.arg("-C").arg(d);
        }
        c.args(args).env_remove("GIT_DIR");
        let out = c
            .output()
            .map_err(crate::error::io("cannot run git in", dir))?;
        if !out.status.success() {
            return Err(bad(
                format!(
                    "git {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                "check the repository is reachable and holds the commit, or pass --source DIR",
            ));
        }
        Ok(())
    };
    let dir_str = dir.display().to_string();
    git(&["clone", "--quiet", "--no-checkout", repo, &dir_str], None)?;
    git(&["checkout", "--quiet", "--detach", commit], Some(dir))?;
    Ok(dir.to_path_buf())
}
