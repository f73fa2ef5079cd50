//! End-to-end: the toolchain root kiln provides. The committed lock
//! (`toolchains/bookworm-rust-1.95.0.lock.json`) is fetched, packed and installed; a build
//! inside it and a build on "another machine" (another project directory, build root,
//! HOME, store, TZ, locale and umask; no rustup; the host's gcc, cc, ld and libgcc hidden)
//! give the same bytes for every artifact, the second root packed afresh to the lock's
//! digest. A changed installed root, a root that cannot be obtained offline and a lock
//! that was never packed are clear errors, and nothing is built.

use std::path::Path;

use crate::support::registry::Registry;
use crate::support::*;

/// Every file under `dir`, by relative path, with its bytes.
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// `kiln ARGS` as another machine would run it: in a private mount namespace where the
/// host's C toolchain (every gcc, cc, c++, as and ld in /usr/bin, and /usr/lib/gcc) and
/// rustup's and cargo's homes are hidden, with `umask 077`, an empty environment but
/// PATH=/usr/bin:/bin, another HOME, TZ and locale.
fn as_another_machine(project: &Project, home: &Path, store: &Path) -> std::process::Command {
    let script = r#"
set -e
for f in /usr/bin/*gcc* /usr/bin/cc /usr/bin/c++ /usr/bin/*-as /usr/bin/as /usr/bin/ld /usr/bin/*-ld /usr/bin/*ld.bfd /usr/bin/*ld.gold; do
  if [ -e "$f" ]; then mount --bind /dev/null "$f"; fi
done
for d in /usr/lib/gcc /root/.rustup /root/.cargo "$REAL_HOME/.rustup" "$REAL_HOME/.cargo"; do
  if [ -d "$d" ]; then mount -t tmpfs none "$d"; fi
done
if command -v gcc >/dev/null 2>&1 && gcc --version >/dev/null 2>&1; then echo "gcc still runs" >&2; exit 99; fi
if command -v rustc >/dev/null 2>&1; then echo "rustc still on PATH" >&2; exit 99; fi
umask 077
exec "$@"
"#;
    let mut c = kiln_core::process::command("unshare");
    c.args([
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        script,
        "sh",
    ])
    .arg(crate::KILN)
    .arg("-C")
    .arg(project.path())
    .env_clear()
    .env("PATH", "/usr/bin:/bin")
    .env("REAL_HOME", std::env::var_os("HOME").unwrap_or_default())
    .env("HOME", home)
    .env("TZ", "Pacific/Chatham")
    .env("LANG", "fr_FR.UTF-8")
    .env("LC_ALL", "fr_FR.UTF-8");
    with_toolroot(c, Some(store))
}

#[test]
fn another_machine_builds_the_same_bytes_inside_the_provided_root() {
    let keys = tempfile::tempdir().unwrap();
    keygen(keys.path());
    let key = keys.path().join("kiln.key");

    // This machine: the shared store (fetched and packed once per machine).
    let a = Project::provided_hello();
    let o = with_toolroot(without_ambient(a.kiln()), None)
        .args(["build", "--json", "--key"])
        .arg(&key)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("toolchain root bookworm-rust-1.95.0") && err.contains("root sandbox"),
        "{err}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["sandbox"], "root", "{summary}");

    // Another machine: its own store, filled by `fetch` (the networked step: the root is
    // packed afresh from its pinned inputs and must reproduce the lock's digests), then
    // an offline build with nothing of the host's toolchain reachable.
    let b = Project::provided_hello();
    let other = tempfile::tempdir().unwrap();
    let (home, store, root) = (
        other.path().join("home"),
        other.path().join("store"),
        other.path().join("build-root"),
    );
    std::fs::create_dir_all(&home).unwrap();
    run_ok(
        with_toolroot(without_ambient(b.kiln()), Some(&store))
            .arg("fetch")
            .arg("--root")
            .arg(&root),
    );
    let o = as_another_machine(&b, &home, &store)
        .args(["build", "--offline", "--root"])
        .arg(&root)
        .arg("--key")
        .arg(&key)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let (fa, fb) = (files(&a.out().join("hello")), files(&b.out().join("hello")));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (path, bytes) in &fa {
        assert!(
            bytes == &fb[path],
            "{path} differs between the two machines"
        );
    }
    // The provenance names the root and its pinned inputs.
    let env: serde_json::Value = serde_json::from_slice(&fa["provenance.intoto.json"]).unwrap();
    let prov: serde_json::Value =
        serde_json::from_slice(&base64_decode::decode(env["payload"].as_str().unwrap())).unwrap();
    let deps = prov["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    let root_dep = deps
        .iter()
        .find(|d| d["name"] == "toolchain-root")
        .expect("a toolchain-root dependency");
    let lock: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo().join(format!("toolchains/{PROVIDED_ROOT}.lock.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        format!("sha256:{}", root_dep["digest"]["sha256"].as_str().unwrap()),
        lock["root"]["manifest"]
    );
    assert!(deps.iter().any(|d| {
        d["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("deb:gcc-12@"))
    }));
    assert!(deps.iter().any(|d| d["name"] == "rust:rustc@1.95.0"));

    // A changed installed root (a file added) is refused before anything runs in it.
    let entry = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("rootfs").is_dir())
        .expect("an installed root");
    std::fs::write(entry.join("rootfs/usr/bin/evil"), "#!/bin/sh\n").unwrap();
    let before = files(&b.out().join("hello"));
    let o = as_another_machine(&b, &home, &store)
        .args(["build", "--offline", "--no-cache", "--root"])
        .arg(&root)
        .arg("--key")
        .arg(&key)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a changed root was used: {err}");
    assert!(err.contains("usr/bin/evil"), "{err}");
    assert!(!err.contains("compiling"), "{err}");
    assert_eq!(files(&b.out().join("hello")), before, "outputs untouched");
}

#[test]
fn a_root_that_cannot_be_had_and_a_lock_never_packed_are_clear_errors() {
    // Offline, with an empty store and an empty download cache: the first missing input
    // is named, with the fix; nothing is built.
    let p = Project::provided_hello();
    let empty = tempfile::tempdir().unwrap();
    let err = run_err(
        with_toolroot(without_ambient(p.kiln()), Some(&empty.path().join("store")))
            .env("KILN_TOOLROOT_CACHE", empty.path().join("cache"))
            .args(["build", "--offline"]),
    );
    assert!(
        err.contains("network is off") && err.contains("kiln fetch"),
        "{err}"
    );
    assert!(p.out_entries().is_empty(), "{:?}", p.out_entries());

    // A pinned lock without `root` (never packed): named, with the command that packs it.
    let lock_path = p
        .path()
        .join(format!("toolchains/{PROVIDED_ROOT}.lock.json"));
    let mut lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&lock_path).unwrap()).unwrap();
    let obj = lock.as_object_mut().unwrap();
    obj.remove("root");
    obj.remove("toolchain");
    std::fs::write(&lock_path, serde_json::to_vec_pretty(&lock).unwrap()).unwrap();
    let err = run_err(with_toolroot(without_ambient(p.kiln()), None).arg("build"));
    assert!(
        err.contains("pinned but not packed") && err.contains("toolchain pack"),
        "{err}"
    );
    assert!(p.out_entries().is_empty());
}

/// `toolchain pack --push` puts the packed root in a registry (a real docker-registry on
/// 127.0.0.1); another machine's `fetch`, with an empty store, an empty download cache and
/// `$KILN_TOOLROOT_REGISTRY`, pulls it by the lock's manifest digest (no input downloaded),
/// verifies it and builds inside it offline.
#[test]
fn a_root_travels_through_a_registry() {
    let reg = Registry::start();
    let repository = format!("{}/toolroots", reg.addr);
    let p = Project::provided_hello();
    let store = tempfile::tempdir().unwrap();
    let o = with_toolroot(without_ambient(p.kiln()), Some(store.path()))
        .args([
            "toolchain",
            "pack",
            "--push",
            &repository,
            "--insecure-http",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("toolchain root pushed to"), "{err}");

    let q = Project::provided_hello();
    let elsewhere = tempfile::tempdir().unwrap();
    let cache = elsewhere.path().join("cache");
    let o = with_toolroot(
        without_ambient(q.kiln()),
        Some(&elsewhere.path().join("store")),
    )
    .env("KILN_TOOLROOT_CACHE", &cache)
    .env("KILN_TOOLROOT_REGISTRY", &repository)
    .env("KILN_TOOLROOT_REGISTRY_INSECURE_HTTP", "1")
    .arg("fetch")
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("toolchain root pulled from"), "{err}");
    let downloaded = std::fs::read_dir(cache.join("sha256"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(downloaded, 0, "no pinned input was downloaded: {err}");
    run_ok(
        with_toolroot(
            without_ambient(q.kiln()),
            Some(&elsewhere.path().join("store")),
        )
        .env("KILN_TOOLROOT_CACHE", &cache)
        .args(["build", "--offline"]),
    );
}
