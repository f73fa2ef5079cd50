//! Bad input: each case fails with a message naming the file, the field and the fix, exits
//! non-zero, and leaves nothing under target/kiln/out.

use crate::support::*;

#[track_caller]
fn fails(p: &Project, extra: &[&str], expect: &[&str]) {
    let err = run_err(p.kiln().arg("build").args(extra));
    for e in expect {
        assert!(err.contains(e), "expected `{e}` in:\n{err}");
    }
    assert!(!err.contains("panicked"), "kiln panicked:\n{err}");
    // These projects have no `cargo xtask` alias: nothing may send the user there.
    assert!(
        !err.contains("cargo xtask"),
        "suggests `cargo xtask`:\n{err}"
    );
    assert!(
        p.out_entries().is_empty(),
        "a failed build left {:?}",
        p.out_entries()
    );
}

#[test]
fn malformed_kiln_toml() {
    let p = Project::hello();
    std::fs::write(p.path().join("kiln.toml"), "[[image]\nname = ").unwrap();
    fails(&p, &[], &["kiln.toml", "line 1"]);
}

#[test]
fn unknown_key_in_kiln_toml() {
    let p = Project::hello();
    std::fs::write(
        p.path().join("kiln.toml"),
        HELLO_TOML.replace("binaries =", "binarys = [\"x\"]\nbinaries ="),
    )
    .unwrap();
    fails(&p, &[], &["kiln.toml", "image[0].binarys", "line 7"]);
}

#[test]
fn missing_toolchain_lock() {
    let p = Project::hello();
    std::fs::remove_dir_all(p.path().join("toolchains")).unwrap();
    fails(
        &p,
        &[],
        &[
            "toolchain lock",
            "does not exist",
            // A project without kiln's `cargo xtask` alias is told the `kiln` command.
            "kiln toolchain lock",
        ],
    );
}

#[test]
fn toolchain_lock_that_does_not_match() {
    let p = Project::hello();
    let lock = p
        .path()
        .join(format!("toolchains/{}.lock.json", host_target()));
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&lock).unwrap()).unwrap();
    let key = v["files"]
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.contains("libstd"))
        .unwrap()
        .clone();
    v["files"][&key]["sha256"] =
        serde_json::Value::String(kiln_core::Digest::of(b"another std").to_string());
    std::fs::write(&lock, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    fails(&p, &[], &["does not match", &key, "kiln toolchain lock"]);
}

#[test]
fn crate_missing_from_the_fetched_cache_offline() {
    let p = Project::hello();
    fails(
        &p,
        &["--offline"],
        &["itoa@1.0.19", "missing", "kiln fetch"],
    );
}

#[test]
fn extra_file_symlink_escaping_the_project() {
    let p = Project::hello();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "not yours").unwrap();
    std::fs::remove_file(p.path().join("greeting.txt")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), p.path().join("greeting.txt"))
        .unwrap();
    fails(
        &p,
        &[],
        &["image[0].files[0].source", "outside the project"],
    );
}

/// A base layout pinned by the wrong digest is refused; with the right digest its layers
/// are reused byte for byte.
#[test]
fn base_layout_pinned_by_digest() {
    let base = Project::hello();
    let base_summary = base.build();
    let base_layout = base.out().join("hello/oci");
    let base_digest = base_summary["digest"].as_str().unwrap();

    let p = Project::hello();
    copy_tree(&base_layout, &p.path().join("base"));
    let with_base = |digest: &str| {
        HELLO_TOML.replace("binaries = [\"hello\"]", &format!("binaries = [\"hello\"]\nbase = {{ layout = \"base\", digest = \"{digest}\" }}\ntag = \"v1\""))
    };
    let wrong = kiln_core::Digest::of(b"not the base").to_string();
    std::fs::write(p.path().join("kiln.toml"), with_base(&wrong)).unwrap();
    fails(&p, &[], &[&wrong, "base"]);

    std::fs::write(p.path().join("kiln.toml"), with_base(base_digest)).unwrap();
    let s = p.build();
    assert_eq!(s["base"], base_summary["digest"]);
    assert_eq!(
        s["layers"][0], base_summary["layers"][0],
        "base layer must be reused byte for byte"
    );
    assert_eq!(s["layers"].as_array().unwrap().len(), 2);
    let stdout = run_image(&p.out().join("hello/oci"), "v1");
    assert!(stdout.contains("Hello from a hermetic"), "{stdout}");
}

#[test]
fn missing_cargo_lock() {
    let p = Project::hello();
    std::fs::remove_file(p.path().join("Cargo.lock")).unwrap();
    fails(&p, &[], &["Cargo.lock", "cargo generate-lockfile"]);
}

/// `$KILN_SIGNING_KEY` holding a private key's base64 without its PEM armour: refused, and
/// no 8-character piece of the key reaches stderr (it used to be taken as a path and the
/// whole key printed in "cannot read signing key ...").
#[test]
fn signing_key_env_without_armour_is_never_echoed() {
    let p = Project::hello();
    let keys = tempfile::tempdir().unwrap();
    run_ok(kiln().arg("keygen").arg("--out").arg(keys.path().join("k")));
    let pem = std::fs::read_to_string(keys.path().join("k.key")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let err = run_err(
        p.kiln()
            .arg("build")
            .env("KILN_SIGNING_KEY", &body)
            .env_remove("GITHUB_ACTIONS"),
    );
    assert!(err.contains("KILN_SIGNING_KEY"), "{err}");
    for w in body.as_bytes().windows(8) {
        let w = std::str::from_utf8(w).unwrap();
        assert!(!err.contains(w), "key material {w:?} echoed in:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(p.out_entries().is_empty(), "{:?}", p.out_entries());
}

#[test]
fn wrong_package_is_found_in_cargo_lock_before_fetching() {
    let p = Project::hello();
    std::fs::write(
        p.path().join("kiln.toml"),
        HELLO_TOML.replace("package = \"hello\"", "package = \"helo\""),
    )
    .unwrap();
    // Before any fetch: the cargo home stays empty.
    fails(
        &p,
        &[],
        &["image[0].package", "`helo`", "use one of: hello"],
    );
    assert!(
        !p.path()
            .join("target/kiln/root/cargo-home/registry")
            .exists(),
        "fetched before checking the package"
    );
}

#[test]
fn rust_version_above_the_pinned_toolchain_names_both_and_the_lock_command() {
    let p = Project::hello();
    let manifest = p.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let text = text.replacen("[package]\n", "[package]\nrust-version = \"1.999\"\n", 1);
    std::fs::write(&manifest, text).unwrap();
    let err = run_err(p.kiln().arg("build"));
    for e in [
        "package `hello` needs rustc 1.999",
        "the pinned toolchain is rustc 1.95.0",
        "kiln toolchain lock",
    ] {
        assert!(err.contains(e), "expected `{e}` in:\n{err}");
    }
    // Said before compiling: nothing of hello was built.
    assert!(!err.contains("Compiling"), "{err}");
}

/// A base image with a hostile layer (testdata/layers: `..` path, a write through an
/// escaping symlink, a hard link to a file no layer provides, a device node): the build
/// fails before compiling, naming the layer digest, the entry and the reason, and writes
/// nothing. (It used to succeed, and the SBOM listed `/../../../../tmp/...`.)
#[test]
fn hostile_base_layers_are_refused() {
    let layers = repo().join("testdata/layers");
    let ok = std::fs::read(layers.join("ok-normalized.tar")).unwrap();
    for (file, entry, reason) in [
        ("hostile-dotdot.tar", "../../../../tmp/kiln-escape", "`..`"),
        (
            "hostile-symlink.tar",
            "etc/cron.d/evil",
            "outside the image's root",
        ),
        (
            "hostile-hardlink.tar",
            "etc/shadow-copy",
            "hard link to `/etc/shadow`",
        ),
        ("hostile-device.tar", "dev/mem", "character device"),
    ] {
        let p = Project::hello();
        let bad = std::fs::read(layers.join(file)).unwrap();
        let digest = raw_base_layout(&p.path().join("base"), &[ok.clone(), bad.clone()]);
        std::fs::write(
            p.path().join("kiln.toml"),
            HELLO_TOML.replace(
                "binaries = [\"hello\"]",
                &format!(
                    "binaries = [\"hello\"]\nbase = {{ layout = \"base\", digest = \"{digest}\" }}"
                ),
            ),
        )
        .unwrap();
        fails(
            &p,
            &[],
            &[
                &kiln_core::Digest::of(&bad).to_string(),
                &format!("entry `{entry}`"),
                reason,
            ],
        );
    }
}

/// Mistakes in kiln.toml that used to surface only after compiling (or never) are found
/// before any work: nothing is fetched, compiled or written (no target/kiln at all), and
/// the error names the file, the key, its line and the fix.
#[test]
fn invalid_config_fails_before_any_work() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("testdata/hello/Cargo.toml"),
        outside.path().join("Cargo.toml"),
    )
    .unwrap();
    let abs_manifest = format!(
        "manifest = \"{}\"\npackage =",
        outside.path().join("Cargo.toml").display()
    );
    let extra_file =
        "\n[[image.files]]\nsource = \"greeting.txt\"\npath = \"/usr/local/bin/hello\"\n";
    let cases: Vec<(String, &[&str])> = vec![
        (
            HELLO_TOML.replace("name = \"hello\"", "name = \"..\""),
            &["image[0].name", "line 5", "`..`", "fix:"],
        ),
        (
            HELLO_TOML.replace("name = \"hello\"", "name = \".\""),
            &["image[0].name", "line 5", "fix:"],
        ),
        (
            HELLO_TOML.replace("package =", &abs_manifest),
            &["image[0].manifest", "line 6", "absolute", "fix:"],
        ),
        (
            HELLO_TOML.replace("[\"hello\"]", "[\"hello\", \"hello\"]"),
            &["image[0].binaries[1]", "line 7", "listed twice", "fix:"],
        ),
        (
            format!("{HELLO_TOML}{extra_file}"),
            &[
                "image[0].files[1].path",
                "line 16",
                "image[0].binaries[0]",
                "fix:",
            ],
        ),
    ];
    for (toml, expect) in cases {
        let p = Project::hello();
        std::fs::write(p.path().join("kiln.toml"), &toml).unwrap();
        let mut want = vec!["kiln.toml"];
        want.extend_from_slice(expect);
        fails(&p, &[], &want);
        assert!(
            !p.path().join("target/kiln").exists(),
            "work was done before the config error:\n{toml}"
        );
        let parent = p.path().join("target");
        assert!(!parent.exists(), "{} was created", parent.display());
    }
}
