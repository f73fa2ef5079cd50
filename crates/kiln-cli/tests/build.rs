//! End-to-end runs of `kiln build` on sample projects, checked with real tools.

use crate::support::*;

/// The README's main job: `cargo xtask build` on this repository's kiln.toml builds inside
/// the committed provided toolchain root and produces an image that skopeo inspects and
/// runc runs.
#[test]
fn default_job_builds_an_image_that_runs() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        with_toolroot(kiln(), None)
            .current_dir(repo())
            .args(["build", "--json", "--out"])
            .arg(out_dir.path()),
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let digest = summary["digest"].as_str().unwrap();
    assert_eq!(summary["sandbox"], "root");
    assert_eq!(summary["source_date_epoch"]["source"], "git_commit");

    let image = out_dir.path().join("hello");
    for f in [
        "oci/index.json",
        "oci/oci-layout",
        "image.oci.tar",
        "image.docker.tar",
        "summary.json",
    ] {
        assert!(image.join(f).is_file(), "{f} missing");
    }
    let inspect = run_ok(
        kiln_core::process::command(tool("skopeo"))
            .arg("inspect")
            .arg(format!("oci:{}:0.1.0", image.join("oci").display())),
    );
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect["Digest"], digest);
    assert_eq!(inspect["Architecture"], "amd64");

    let stdout = run_image(&image.join("oci"), "0.1.0");
    assert_eq!(
        stdout.trim(),
        "Hello from a hermetic, reproducible kiln image! (7 words)"
    );
}

/// Two builds in different directories, with different TZ, umask, locale and HOME, give
/// identical bytes for every artifact.
#[test]
fn builds_are_byte_identical_across_directories_and_environments() {
    let a = Project::hello();
    let b = Project::hello();
    run_ok(
        a.kiln()
            .arg("build")
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .env("HOME", a.path()),
    );
    let mut cmd = kiln_core::process::command("/bin/sh");
    cmd.args(["-c", "umask 077 && exec \"$0\" \"$@\""])
        .arg(crate::KILN)
        .arg("-C")
        .arg(b.path())
        .arg("build")
        .env("TZ", "Pacific/Kiritimati")
        .env("LC_ALL", "fr_FR.UTF-8")
        .env("LANG", "de_DE.UTF-8")
        .env("HOME", b.path().join("elsewhere"))
        .env("KILN_IRRELEVANT", "noise");
    run_ok(&mut cmd);
    // umask 077 must not reach the output tree: a shipped layout stays readable.
    for dir in [
        "hello",
        "hello/oci",
        "hello/oci/blobs",
        "hello/oci/blobs/sha256",
    ] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(b.out().join(dir))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(
            mode, 0o755,
            "{dir} has mode {mode:o} after a build under umask 077"
        );
    }
    let ta = read_tree(&a.out());
    let tb = read_tree(&b.out());
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    for (path, bytes) in &ta {
        assert!(bytes == &tb[path], "{path} differs between the two builds");
    }
    // The image itself (plus whatever evidence the build attaches) must be among them.
    for f in [
        "hello/oci/index.json",
        "hello/oci/oci-layout",
        "hello/image.oci.tar",
        "hello/image.docker.tar",
        "hello/summary.json",
    ] {
        assert!(ta.contains_key(f), "{f} missing from {:?}", ta.keys());
    }
    assert!(
        ta.keys()
            .filter(|k| k.starts_with("hello/oci/blobs/sha256/"))
            .count()
            >= 3,
        "{:?}",
        ta.keys()
    );
}

/// skopeo reads the layout and both archives and round-trips layout → archive → layout
/// without changing the manifest; podman loads the docker-archive and runs it.
#[test]
fn skopeo_and_podman_accept_layout_and_archives() {
    let p = Project::hello();
    let summary = p.build();
    let digest = summary["digest"].as_str().unwrap().to_string();
    let img = p.out().join("hello");
    let skopeo = || kiln_core::process::command(tool("skopeo"));
    let raw = |reference: String| {
        let out = run_ok(skopeo().args(["inspect", "--raw", &reference]));
        format!("sha256:{}", sha256_hex(&out.stdout))
    };
    assert_eq!(
        raw(format!("oci:{}:0.1.0", img.join("oci").display())),
        digest
    );
    assert_eq!(
        raw(format!(
            "oci-archive:{}:0.1.0",
            img.join("image.oci.tar").display()
        )),
        digest
    );
    // docker-archive: skopeo synthesizes a manifest from the config and names the layers
    // by their uncompressed digests (the config's diff_ids).
    let out = run_ok(skopeo().args([
        "inspect",
        &format!("docker-archive:{}", img.join("image.docker.tar").display()),
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["Layers"],
        summary["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["diff_id"].clone())
            .collect::<serde_json::Value>()
    );

    let work = tempfile::tempdir().unwrap();
    // `podman load` takes the docker-archive and runs it.
    let podman = |args: &[&str]| {
        let mut c = privileged("podman");
        c.arg("--root")
            .arg(work.path().join("podman-root"))
            .arg("--runroot")
            .arg(work.path().join("podman-run"));
        c.args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "--runtime",
            "runc",
        ]);
        c.args(args);
        c
    };
    let loaded = run_ok(&mut podman(&[
        "load",
        "-i",
        &img.join("image.docker.tar").display().to_string(),
    ]));
    assert!(
        String::from_utf8_lossy(&loaded.stdout).contains("hello:0.1.0"),
        "{loaded:?}"
    );
    let ran = run_ok(&mut podman(&[
        "run",
        "--rm",
        "--network=none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "localhost/hello:0.1.0",
    ]));
    assert!(
        String::from_utf8_lossy(&ran.stdout).contains("Hello from a hermetic"),
        "{ran:?}"
    );
    let _ = privileged("rm")
        .arg("-rf")
        .arg(work.path().join("podman-root"))
        .arg(work.path().join("podman-run"))
        .output();

    let archive = work.path().join("copy.tar");
    let back = work.path().join("back");
    run_ok(skopeo().args([
        "copy",
        &format!("oci:{}:0.1.0", img.join("oci").display()),
        &format!("oci-archive:{}:0.1.0", archive.display()),
    ]));
    run_ok(skopeo().args([
        "copy",
        &format!("oci-archive:{}:0.1.0", archive.display()),
        &format!("oci:{}:again", back.display()),
    ]));
    assert_eq!(raw(format!("oci:{}:again", back.display())), digest);
}

fn sha256_hex(bytes: &[u8]) -> String {
    kiln_core::Digest::of(bytes).hex()
}

#[test]
fn dash_c_locks_and_builds_with_the_projects_own_toolchain() {
    // The project asks for `stable` by name; kiln runs from this repository, whose
    // rust-toolchain.toml (and the RUSTUP_TOOLCHAIN rustup hands `cargo test`) say 1.95.0.
    let p = Project::hello();
    std::fs::write(
        p.path().join("rust-toolchain.toml"),
        "[toolchain]\nchannel = \"stable\"\n",
    )
    .unwrap();
    run_ok(p.kiln().current_dir(repo()).args(["toolchain", "lock"]));
    let lock_path = p
        .path()
        .join(format!("toolchains/{}.lock.json", host_target()));
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&lock_path).unwrap()).unwrap();
    assert_eq!(
        lock["rustup_toolchain"],
        format!("stable-{}", host_target()),
        "the lock must record the project's rustup toolchain"
    );
    let vv = run_ok(
        kiln_core::process::command("rustc")
            .arg("-vV")
            .env("RUSTUP_TOOLCHAIN", "stable")
            .env_remove("RUSTUP_TOOLCHAIN_SOURCE"),
    );
    let vv = String::from_utf8(vv.stdout).unwrap();
    let release = vv
        .lines()
        .find_map(|l| l.strip_prefix("release: "))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(lock["rustc"]["version"], release.as_str());
    // Building from outside the project selects the pinned toolchain: no drift.
    let summary = p.build();
    assert_eq!(summary["toolchain"]["rustc"], release.as_str());
}

/// `[policy] base_allowlist`: a base layout whose `ref` the allowlist does not admit is
/// refused when kiln.toml is loaded, before anything is fetched, compiled or written, naming
/// the base and the policy; one it admits builds, and provenance records the base's `ref`
/// and which allowlist admitted it.
#[test]
fn base_allowlist_refuses_before_any_work_and_provenance_records_it() {
    let p = Project::hello();
    let layer = std::fs::read(repo().join("testdata/layers/ok-normalized.tar")).unwrap();
    let digest = raw_base_layout(&p.path().join("base"), &[layer]);
    let reference = "registry.example.com/approved/base:1.0";
    let toml = |allow: &[String]| {
        let list: Vec<String> = allow.iter().map(|a| format!("\"{a}\"")).collect();
        format!(
            "{}\n[policy]\nbase_allowlist = [{}]\n",
            HELLO_TOML.replace(
                "binaries = [\"hello\"]",
                &format!(
                    "binaries = [\"hello\"]\nbase = {{ layout = \"base\", digest = \"{digest}\", ref = \"{reference}\" }}"
                ),
            ),
            list.join(", ")
        )
    };

    std::fs::write(
        p.path().join("kiln.toml"),
        toml(&["registry.example.com/other/*".to_string()]),
    )
    .unwrap();
    let err = run_err(without_ambient(p.kiln()).arg("build"));
    for want in [
        "kiln.toml",
        "image[0].base.ref",
        &format!("{reference}@{digest}"),
        "policy.base_allowlist",
        "fix:",
    ] {
        assert!(err.contains(want), "expected `{want}` in:\n{err}");
    }
    assert!(!err.contains("Compiling"), "{err}");
    assert!(
        !p.out().join("hello").exists(),
        "a refused build wrote output"
    );
    assert!(
        !p.path().join("target").exists(),
        "work was done before the policy refused the base"
    );

    let allow = vec![
        format!("ghcr.io/acme/base@{digest}"),
        "registry.example.com/approved/*".to_string(),
    ];
    std::fs::write(p.path().join("kiln.toml"), toml(&allow)).unwrap();
    run_ok(without_ambient(p.kiln()).arg("build"));
    let prov: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.out().join("hello/provenance.json")).unwrap())
            .unwrap();
    let deps = prov["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    let named = |n: &str| {
        deps.iter()
            .find(|d| d["name"] == n)
            .unwrap_or_else(|| panic!("no `{n}` among {deps:#?}"))
    };
    let base = named("base-image");
    assert_eq!(base["digest"]["sha256"], digest.hex());
    assert_eq!(base["annotations"]["dev.kiln.base.ref"], reference);
    let list = named("base-allowlist");
    let canonical = kiln_core::canonical::to_vec(&allow).unwrap();
    assert_eq!(
        list["digest"]["sha256"],
        kiln_core::Digest::of(&canonical).hex()
    );
    assert_eq!(
        list["annotations"]["dev.kiln.base.allowlist"],
        allow.join(",")
    );
}
