//! End-to-end: the attested build cache. A second build hits and skips the compile with
//! the same image; each input class changing misses; poisoned entries (a swapped output,
//! an untrusted signer) are refused and the build compiles; `kiln cache check` proves an
//! entry equals a build without the cache; builds sharing a store concurrently both land.

use std::path::{Path, PathBuf};

use crate::support::*;

struct Cached {
    project: Project,
    keys: tempfile::TempDir,
    store: tempfile::TempDir,
}

impl Cached {
    fn new() -> Self {
        let project = Project::hello();
        let keys = tempfile::tempdir().unwrap();
        keygen(keys.path());
        Cached {
            project,
            keys,
            store: tempfile::tempdir().unwrap(),
        }
    }
    fn key(&self) -> PathBuf {
        self.keys.path().join("kiln.key")
    }
    /// A build through the cache with no outputs present (else nothing changed would be
    /// answered by the no-op fast path, which `a_noop_*` tests, before the cache is asked).
    fn build_with(&self, key: &Path) -> (String, serde_json::Value) {
        let _ = std::fs::remove_dir_all(self.project.out());
        let o = without_ambient(self.project.kiln())
            .args(["build", "--json", "--cache", "--cache-dir"])
            .arg(self.store.path())
            .arg("--key")
            .arg(key)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        (err, serde_json::from_slice(&o.stdout).unwrap())
    }
    fn build(&self) -> (String, serde_json::Value) {
        self.build_with(&self.key())
    }
    /// A build through the cache that leaves the last outputs in place, with `env` set.
    fn build_again(&self, key: &Path, env: &[(&str, &str)]) -> (String, serde_json::Value) {
        let mut c = without_ambient(self.project.kiln());
        c.args(["build", "--json", "--cache", "--cache-dir"])
            .arg(self.store.path())
            .arg("--key")
            .arg(key)
            .envs(env.iter().copied());
        let o = c.output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        (err, serde_json::from_slice(&o.stdout).unwrap())
    }
}

/// Nothing changed: `build` answers from the last build's record, without detecting the
/// toolchain, compiling or asking the cache, with the same summary. Anything that changes
/// an output byte (a source file, a variable provenance reads, the git commit, the signing
/// key), an output file edited, or a toolchain stamp that no longer holds builds again;
/// and the build after that one is a no-op again. `--no-cache` always builds.
#[test]
fn a_noop_answers_from_the_last_build_until_anything_changes() {
    let c = Cached::new();
    let dir = c.project.path().to_path_buf();
    std::fs::write(dir.join(".gitignore"), "target/\n").unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-q", "-m", "one"]);
    let key = c.key();
    let is_noop = |err: &str| err.contains("cache: no-op");
    let (err, first) = c.build_again(&key, &[]);
    assert!(!is_noop(&err) && err.contains("cache: miss"), "{err}");

    let (err, again) = c.build_again(&key, &[]);
    assert!(is_noop(&err), "nothing changed: {err}");
    let (err, _) = c.build_again(&key, &[]);
    assert!(is_noop(&err), "still nothing changed: {err}");
    assert!(
        !err.contains("compiling") && !err.contains("verifying the toolchain lock"),
        "{err}"
    );
    assert_eq!(first, again, "the no-op prints the last build's summary");

    // Each change builds once (through the cache: the compile inputs are the same), then
    // the same request is a no-op again.
    type Change<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let changes: Vec<Change> = vec![
        (
            "a new source file",
            Box::new(|| std::fs::write(dir.join("NOTES.md"), "notes\n").unwrap()),
        ),
        (
            "the toolchain stamp gone",
            Box::new(|| {
                std::fs::remove_file(dir.join("target/kiln/root/toolchain.verified.json")).unwrap()
            }),
        ),
        (
            "a new git commit",
            Box::new(|| {
                git(&dir, &["commit", "-q", "--allow-empty", "-m", "two"]);
            }),
        ),
    ];
    for (what, change) in changes {
        change();
        let (err, _) = c.build_again(&key, &[]);
        assert!(!is_noop(&err), "{what}: {err}");
        let (err, _) = c.build_again(&key, &[]);
        assert!(is_noop(&err), "{what}, then nothing: {err}");
    }
    // An output edited: the build after it is a full one, which writes it anew.
    let sbom = c.project.out().join("hello/sbom.cdx.json");
    let good = std::fs::read(&sbom).unwrap();
    std::fs::write(&sbom, [good.as_slice(), b" "].concat()).unwrap();
    let (err, _) = c.build_again(&key, &[]);
    assert!(!is_noop(&err), "an output file edited: {err}");
    assert_eq!(std::fs::read(&sbom).unwrap(), good);

    // A variable provenance reads, and another signing key.
    let (err, _) = c.build_again(&key, &[("KILN_LINEAGE_SOURCE", "https://example.org/src")]);
    assert!(!is_noop(&err), "{err}");
    let (err, _) = c.build_again(&key, &[("KILN_LINEAGE_SOURCE", "https://example.org/src")]);
    assert!(is_noop(&err), "{err}");
    let other = tempfile::tempdir().unwrap();
    keygen(other.path());
    let (err, _) = c.build_again(&other.path().join("kiln.key"), &[]);
    assert!(!is_noop(&err), "{err}");

    // --no-cache compiles, whatever the record says.
    let o = without_ambient(c.project.kiln())
        .args(["build", "--no-cache", "--key"])
        .arg(&key)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.contains("compiling hello"),
        "{err}"
    );
}

fn provenance_deps(out: &Path) -> Vec<serde_json::Value> {
    let env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("provenance.intoto.json")).unwrap())
            .unwrap();
    let stmt: serde_json::Value =
        serde_json::from_slice(&base64_decode::decode(env["payload"].as_str().unwrap())).unwrap();
    stmt["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_hit_skips_the_compile_and_gives_the_same_image_and_inputs_miss() {
    let c = Cached::new();
    let (err, first) = c.build();
    assert!(
        err.contains("cache: miss") && err.contains("cache: stored"),
        "{err}"
    );
    assert!(err.contains("compiling hello"), "{err}");
    let out = c.project.out().join("hello");
    assert!(
        !provenance_deps(&out)
            .iter()
            .any(|d| d["name"] == "build-cache"),
        "a compiled build records no cache entry"
    );

    let (err, second) = c.build();
    assert!(
        err.contains("cache: hit") && err.contains("compile skipped"),
        "{err}"
    );
    assert!(!err.contains("compiling hello"), "{err}");
    // The same image, byte for byte; provenance says where the binaries came from.
    assert_eq!(first["digest"], second["digest"]);
    assert_eq!(first["binaries"], second["binaries"]);
    let dep = provenance_deps(&out)
        .into_iter()
        .find(|d| d["name"] == "build-cache")
        .expect("the hit is recorded in resolvedDependencies");
    assert!(
        dep["annotations"]["dev.kiln.cache.key"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(
        dep["annotations"]["dev.kiln.cache.signer"]
            .as_str()
            .is_some()
    );
    // Verify passes on a build from the cache.
    let policy = c.keys.path().join("policy.toml");
    std::fs::write(&policy, "[[keys]]\npath = \"kiln.pub\"\n").unwrap();
    run_ok(
        without_ambient(kiln())
            .arg("verify")
            .arg(&out)
            .arg("--policy")
            .arg(&policy),
    );

    // A source change misses; undoing it hits again. So does SOURCE_DATE_EPOCH.
    let main = c.project.path().join("src/main.rs");
    let orig = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, format!("{orig}\n// changed\n")).unwrap();
    let (err, _) = c.build();
    assert!(
        err.contains("cache: miss") && err.contains("compiling hello"),
        "{err}"
    );
    std::fs::write(&main, &orig).unwrap();
    let (err, _) = c.build();
    assert!(err.contains("cache: hit"), "{err}");
    let o = without_ambient(c.project.kiln())
        .env("SOURCE_DATE_EPOCH", "1700000001")
        .args(["build", "--cache", "--cache-dir"])
        .arg(c.store.path())
        .arg("--key")
        .arg(c.key())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("cache: miss"), "{err}");
    // A file .gitignore'd (and anything under target/) is not an input.
    std::fs::write(c.project.path().join(".gitignore"), "notes.txt\n").unwrap();
    let (err, _) = c.build();
    assert!(
        err.contains("cache: miss"),
        ".gitignore itself is source: {err}"
    );
    std::fs::write(c.project.path().join("notes.txt"), "scratch").unwrap();
    let (err, _) = c.build();
    assert!(err.contains("cache: hit"), "{err}");

    // --no-cache compiles and leaves the store alone.
    let o = without_ambient(c.project.kiln())
        .args(["build", "--no-cache", "--key"])
        .arg(c.key())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && !err.contains("cache:") && err.contains("compiling hello"),
        "{err}"
    );

    // cache check: a build without the cache equals the entry.
    let o = without_ambient(c.project.kiln())
        .args(["cache", "check", "--cache-dir"])
        .arg(c.store.path())
        .arg("--key")
        .arg(c.key())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("holds exactly what a build without the cache compiles"),
        "{err}"
    );
}

/// The blob of the cached `hello` binary in the store (the layer titled `hello`).
fn cached_binary(store: &Path) -> PathBuf {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    let entry = &index["manifests"][0]["digest"];
    let hex = |d: &serde_json::Value| {
        d.as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string()
    };
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(store.join("blobs/sha256").join(hex(entry))).unwrap(),
    )
    .unwrap();
    let layer = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["annotations"]["org.opencontainers.image.title"] == "hello")
        .unwrap()
        .clone();
    store.join("blobs/sha256").join(hex(&layer["digest"]))
}

#[test]
fn poisoned_entries_are_refused_and_the_build_compiles() {
    let c = Cached::new();
    let (_, clean) = c.build();
    // The cached binary swapped for other bytes (an attacker with write access to the
    // store): refused, compiled, the same image as before.
    let blob = cached_binary(c.store.path());
    std::fs::write(&blob, b"#!/bin/sh\necho pwned\n").unwrap();
    let (err, rebuilt) = c.build();
    assert!(
        err.contains("cache: refused") && err.contains("hello"),
        "{err}"
    );
    assert!(err.contains("compiling hello"), "{err}");
    assert_eq!(clean["digest"], rebuilt["digest"]);
    // cache check fails on a poisoned entry too.
    std::fs::write(cached_binary(c.store.path()), b"poison").unwrap();
    let o = without_ambient(c.project.kiln())
        .args(["cache", "check", "--cache-dir"])
        .arg(c.store.path())
        .arg("--key")
        .arg(c.key())
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("cache check failed"));

    // An entry signed by a key this build does not trust: refused (then replaced by this
    // build's own entry), never used.
    let other = tempfile::tempdir().unwrap();
    keygen(other.path());
    let (err, _) = c.build_with(&other.path().join("kiln.key"));
    assert!(
        err.contains("cache: refused") && err.contains("not trusted"),
        "{err}"
    );
    assert!(err.contains("compiling hello"), "{err}");
    let (err, _) = c.build();
    assert!(
        err.contains("cache: refused") && err.contains("not trusted"),
        "{err}"
    );
}

#[test]
fn concurrent_builds_sharing_a_store_both_land() {
    let a = Cached::new();
    let b = Project::hello();
    std::fs::write(b.path().join("extra.txt"), "another source tree").unwrap();
    let spawn = |p: &Project| {
        without_ambient(p.kiln())
            .args(["build", "--cache", "--cache-dir"])
            .arg(a.store.path())
            .arg("--key")
            .arg(a.key())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (ca, cb) = (spawn(&a.project), spawn(&b));
    for child in [ca, cb] {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.store.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
    let (err, _) = a.build();
    assert!(err.contains("cache: hit"), "{err}");
}

/// The image spec's compile inputs reach the key (a feature turned on misses), and so does
/// any edit of a project file, kiln.toml included: a build script may read any of them.
#[test]
fn features_and_project_file_edits_change_the_key() {
    let toml = |extra: &str| {
        format!(
            "[project]\nsource_date_epoch = 1700000000\n\n[[image]]\nname = \"features\"\npackage = \"features\"\nbinaries = [\"features\"]\n{extra}"
        )
    };
    let p = Project::from_testdata("features", &toml(""));
    let keys = tempfile::tempdir().unwrap();
    keygen(keys.path());
    let store = tempfile::tempdir().unwrap();
    let build = || {
        let _ = std::fs::remove_dir_all(p.out());
        let o = without_ambient(p.kiln())
            .args(["build", "--cache", "--cache-dir"])
            .arg(store.path())
            .arg("--key")
            .arg(keys.path().join("kiln.key"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        err
    };
    assert!(build().contains("cache: miss"));
    assert!(build().contains("cache: hit"));
    std::fs::write(p.path().join("kiln.toml"), toml("features = [\"fast\"]\n")).unwrap();
    let e = build();
    assert!(
        e.contains("cache: miss") && e.contains("compiling features"),
        "{e}"
    );
    std::fs::write(p.path().join("kiln.toml"), toml("labels = { a = \"b\" }\n")).unwrap();
    // kiln.toml is in the source tree, so any edit to it misses too (conservative): the
    // key's source-tree digest covers every file cargo could read.
    let e = build();
    assert!(e.contains("cache: miss"), "{e}");
    let e = build();
    assert!(e.contains("cache: hit"), "{e}");
}
