//! End-to-end: the build cache shared through a real OCI registry (docker-registry on
//! 127.0.0.1). A build with an empty local store pushes its fresh entry, tagged
//! `kiln-cache-<key hex>`; a second copy of the project with another empty store hits it
//! from the registry with the same image; an entry an attacker rewrote in the registry is
//! refused and the build compiles; a registry nobody answers on is a warning, never a
//! failed build.

use std::path::Path;

use kiln_registry::{BlobSource, Client, Credentials, Options, Reference};

use crate::support::registry::{Registry, free_port};
use crate::support::*;

const TITLE: &str = "org.opencontainers.image.title";

/// `kiln build --json --cache` with `store` as the local store and `registry` as the
/// registry tier, signed with `key`: (stderr, summary). The build must succeed. The last
/// outputs are removed first, so the cache answers, not the no-op fast path.
fn build(
    project: &Project,
    store: &Path,
    registry: &str,
    key: &Path,
) -> (String, serde_json::Value) {
    let _ = std::fs::remove_dir_all(project.out());
    let o = without_ambient(project.kiln())
        .args(["build", "--json", "--cache", "--cache-dir"])
        .arg(store)
        .args([
            "--cache-registry",
            registry,
            "--cache-insecure-http",
            "--key",
        ])
        .arg(key)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    (err, serde_json::from_slice(&o.stdout).unwrap())
}

fn skopeo(args: &[&str], reference: &str) -> serde_json::Value {
    let out = run_ok(
        kiln_core::process::command(tool("skopeo"))
            .args(args)
            .arg("--tls-verify=false")
            .arg(format!("docker://{reference}")),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn entries_travel_through_a_registry_verified_and_a_poisoned_one_is_refused() {
    let keys = tempfile::tempdir().unwrap();
    keygen(keys.path());
    let key = keys.path().join("kiln.key");
    let reg = Registry::start();
    let repo_ref = format!("{}/cache", reg.addr);

    // A: empty store, empty registry: miss in both, compile, store, push.
    let a = Project::hello();
    let a_store = tempfile::tempdir().unwrap();
    let (err, first) = build(&a, a_store.path(), &repo_ref, &key);
    assert!(
        err.contains("cache: miss")
            && err.contains(&format!("cache: miss in registry {repo_ref}:kiln-cache-"))
            && err.contains("compiling hello")
            && err.contains("cache: stored")
            && err.contains("cache: pushed sha256:"),
        "{err}\n{}",
        reg.logs()
    );
    assert!(!err.contains("warning"), "{err}");
    // The registry holds the entry under kiln-cache-<64 hex>: skopeo sees the tag and the
    // artifact manifest.
    let tags = skopeo(&["list-tags"], &repo_ref);
    let tags: Vec<&str> = tags["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let [tag] = tags.as_slice() else {
        panic!("one tag expected: {tags:?}")
    };
    let hex = tag.strip_prefix("kiln-cache-").expect("kiln-cache-<hex>");
    assert!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{tag}"
    );
    let manifest = skopeo(&["inspect", "--raw"], &format!("{repo_ref}:{tag}"));
    assert_eq!(manifest["artifactType"], "application/vnd.kiln.cache.v1");
    assert_eq!(
        manifest["annotations"]["dev.kiln.cache.key"],
        format!("sha256:{hex}")
    );

    // B: another copy of the project, an empty store: the registry's entry, verified,
    // replaces the compile; the same image.
    let b = Project::hello();
    let b_store = tempfile::tempdir().unwrap();
    let (err, second) = build(&b, b_store.path(), &repo_ref, &key);
    assert!(
        err.contains("cache: hit")
            && err.contains(&format!("from registry {repo_ref}:{tag}"))
            && err.contains("compile skipped"),
        "{err}"
    );
    assert!(!err.contains("compiling hello"), "{err}");
    assert_eq!(first["digest"], second["digest"]);
    // It is in B's store now: the next build hits locally, without the registry.
    let (err, third) = build(&b, b_store.path(), &repo_ref, &key);
    assert!(
        err.contains("cache: hit") && !err.contains("from registry"),
        "{err}"
    );
    assert_eq!(first["digest"], third["digest"]);

    // Poison: the registry's entry rewritten by someone with push access, its `hello`
    // layer pointing at other bytes (consistently: digests all match).
    let reference = Reference::parse(&repo_ref).unwrap();
    let client = Client::new(
        &reference,
        Options {
            insecure_http: true,
            credentials: Some(Credentials::Anonymous),
            push: true,
            ..Default::default()
        },
    )
    .unwrap();
    let poison = b"#!/bin/sh\necho pwned\n".to_vec();
    let pd = kiln_core::Digest::of(&poison);
    client
        .push_blob(&pd, poison.len() as u64, BlobSource::Bytes(&poison), &[])
        .unwrap();
    let mut m = manifest.clone();
    for l in m["layers"].as_array_mut().unwrap() {
        if l["annotations"][TITLE] == "hello" {
            l["digest"] = pd.to_string().into();
            l["size"] = poison.len().into();
        }
    }
    let bytes = kiln_core::canonical::to_vec(&m).unwrap();
    client
        .put_manifest(tag, "application/vnd.oci.image.manifest.v1+json", &bytes)
        .unwrap();
    assert_eq!(
        skopeo(&["inspect", "--raw"], &format!("{repo_ref}:{tag}")),
        m
    );

    // C: an empty store, the poisoned registry: refused, compiled, the same image; C's
    // own entry is pushed over the poisoned tag.
    let c = Project::hello();
    let c_store = tempfile::tempdir().unwrap();
    let (err, fourth) = build(&c, c_store.path(), &repo_ref, &key);
    assert!(
        err.contains("cache: refused")
            && err.contains("output hello")
            && err.contains(&format!("from registry {repo_ref}:{tag}")),
        "{err}"
    );
    assert!(
        err.contains("compiling hello") && err.contains("cache: pushed"),
        "{err}"
    );
    assert!(!err.contains("cache: hit"), "{err}");
    assert_eq!(first["digest"], fourth["digest"]);
    // The poisoned entry was never indexed in C's store: the only entry is C's own.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c_store.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        skopeo(&["inspect", "--raw"], &format!("{repo_ref}:{tag}")),
        manifest,
        "C's push put the genuine entry back"
    );
}

#[test]
fn an_unreachable_registry_is_a_warning_and_a_bad_reference_an_error() {
    let keys = tempfile::tempdir().unwrap();
    keygen(keys.path());
    let key = keys.path().join("kiln.key");
    let p = Project::hello();
    let store = tempfile::tempdir().unwrap();
    // Nothing listens on the port.
    let down = format!("127.0.0.1:{}/cache", free_port());
    let (err, _) = build(&p, store.path(), &down, &key);
    assert!(
        err.contains(&format!(
            "warning: cache registry {down}: cannot look up kiln-cache-"
        )) && err.contains(&format!(
            "warning: cache registry {down}: cannot push kiln-cache-"
        )),
        "{err}"
    );
    assert!(
        err.contains("compiling hello") && err.contains("cache: stored"),
        "{err}"
    );
    // The local entry still serves the next build (the registry still down).
    let (err, _) = build(&p, store.path(), &down, &key);
    assert!(err.contains("cache: hit"), "{err}");

    // kiln.toml's `[cache] registry` is the same tier (here with --cache-insecure-http);
    // a tagged one is refused naming the key.
    let toml = |r: &str| format!("{HELLO_TOML}\n[cache]\nenabled = true\nregistry = \"{r}\"\n");
    let q = Project::from_testdata("hello", &toml(&down));
    let o = without_ambient(q.kiln())
        .args(["build", "--cache-insecure-http", "--cache-dir"])
        .arg(store.path())
        .arg("--key")
        .arg(&key)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.contains(&format!("warning: cache registry {down}")),
        "{err}"
    );
    let q = Project::from_testdata("hello", &toml(&format!("{down}:v1")));
    let err = run_err(without_ambient(q.kiln()).arg("build"));
    assert!(
        err.contains("cache.registry") && err.contains("has a tag or digest"),
        "{err}"
    );

    // A tagged reference, and plain HTTP to a remote registry: refused before compiling.
    for (r, want) in [
        (format!("{down}:v1"), "has a tag or digest"),
        ("registry.example.com/cache".to_string(), "plain HTTP"),
    ] {
        let err = run_err(
            without_ambient(p.kiln())
                .args(["build", "--cache", "--cache-dir"])
                .arg(store.path())
                .args(["--cache-registry", &r, "--cache-insecure-http"]),
        );
        assert!(
            err.contains(want) && !err.contains("compiling"),
            "{r}: {err}"
        );
    }
}
