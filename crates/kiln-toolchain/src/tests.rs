use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kiln_core::Digest;

use crate::*;

fn entry(content: &[u8]) -> FileEntry {
    FileEntry {
        sha256: Digest::of(content),
        size: content.len() as u64,
    }
}

fn sample_lock() -> ToolchainLock {
    let mut files = BTreeMap::new();
    files.insert("sysroot/bin/rustc".to_string(), entry(b"rustc"));
    files.insert(
        "sysroot/lib/rustlib/x86_64-unknown-linux-gnu/lib/libstd-abc.rlib".to_string(),
        entry(b"std"),
    );
    files.insert(
        "cc:/usr/lib/x86_64-linux-gnu/libc.a".to_string(),
        entry(b"libc"),
    );
    ToolchainLock {
        schema: SCHEMA,
        rustup_toolchain: Some("1.94.0-x86_64-unknown-linux-gnu".into()),
        host: "x86_64-unknown-linux-gnu".into(),
        target: "x86_64-unknown-linux-gnu".into(),
        rustc: ToolVersion {
            version: "1.94.0".into(),
            commit_hash: "aaaa".into(),
            commit_date: "2026-01-01".into(),
            llvm_version: Some("21.1.0".into()),
        },
        cargo: ToolVersion {
            version: "1.94.0".into(),
            commit_hash: "bbbb".into(),
            commit_date: "2026-01-01".into(),
            llvm_version: None,
        },
        cc: CcInfo {
            version: "cc (Debian 12.2.0-14) 12.2.0".into(),
            machine: "x86_64-linux-gnu".into(),
        },
        cfg: TargetCfg {
            target: vec!["target_os=\"linux\"".into(), "unix".into()],
            host: vec!["target_os=\"linux\"".into(), "unix".into()],
        },
        files,
    }
}

// ---------------------------------------------------------------------------------------
// This machine

#[test]
fn detect_and_lock_this_machine() {
    let tc = Toolchain::detect(None).expect("detect on this machine");
    assert!(
        tc.rustc.is_absolute() && tc.rustc.starts_with(&tc.sysroot),
        "{tc:?}"
    );
    assert!(tc.cargo.starts_with(&tc.sysroot), "{tc:?}");
    assert!(
        !tc.rustc.to_string_lossy().contains(".cargo/bin"),
        "rustup proxy leaked: {tc:?}"
    );
    assert_eq!(tc.cc, std::fs::canonicalize(&tc.cc).unwrap());
    assert_eq!(tc.target, tc.host);

    let start = Instant::now();
    let lock = tc.lock().expect("lock this machine");
    let took = start.elapsed();
    let total: u64 = lock.files.values().map(|e| e.size).sum();
    eprintln!(
        "locked {} files ({} MB) in {:.2?}; lock digest {}",
        lock.files.len(),
        total / 1_000_000,
        took,
        lock.digest()
    );

    let keys: Vec<&str> = lock.files.keys().map(String::as_str).collect();
    assert!(keys.contains(&"sysroot/bin/rustc"), "{keys:#?}");
    assert!(keys.contains(&"sysroot/bin/cargo"), "{keys:#?}");
    let std_prefix = format!("sysroot/lib/rustlib/{}/lib/libstd-", tc.target);
    assert!(
        keys.iter()
            .any(|k| k.starts_with(&std_prefix) && k.ends_with(".rlib")),
        "{keys:#?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.starts_with("sysroot/lib/librustc_driver")),
        "{keys:#?}"
    );
    assert!(keys.iter().any(|k| k.starts_with("cc:/")), "{keys:#?}");
    assert!(
        keys.iter()
            .any(|k| k.starts_with("cc:/") && k.ends_with("/libc.a")),
        "{keys:#?}"
    );
    assert!(
        keys.contains(&format!("cc:{}", tc.cc.display()).as_str()),
        "cc driver not pinned: {keys:#?}"
    );
    let lld = tc
        .sysroot
        .join(format!("lib/rustlib/{}/bin/rust-lld", tc.host));
    if lld.exists() {
        assert!(keys.contains(&format!("sysroot/lib/rustlib/{}/bin/rust-lld", tc.host).as_str()));
    }
    // Every cc: key is a canonical absolute path; no bare names slipped through.
    for k in keys.iter().filter_map(|k| k.strip_prefix("cc:")) {
        assert_eq!(
            Path::new(k),
            std::fs::canonicalize(k).unwrap(),
            "{k} is not canonical"
        );
    }
    assert!(
        lock.rustc.version.chars().next().unwrap().is_ascii_digit(),
        "{:?}",
        lock.rustc
    );
    assert!(!lock.cc.version.is_empty());

    // Deterministic: a second lock is byte-identical.
    let again = tc.lock().unwrap();
    assert_eq!(lock.to_bytes(), again.to_bytes());
    assert!(lock.verify_against(&again).is_ok());
}

// ---------------------------------------------------------------------------------------
// Lock file format

#[test]
fn write_read_round_trip_and_digest_is_file_bytes() {
    let d = tempfile::tempdir().unwrap();
    let path = default_lock_path(d.path(), "x86_64-unknown-linux-gnu");
    assert_eq!(
        path,
        d.path()
            .join("toolchains/x86_64-unknown-linux-gnu.lock.json")
    );
    let lock = sample_lock();
    lock.write(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes, lock.to_bytes());
    assert_eq!(lock.digest(), Digest::of(&bytes));
    assert!(bytes.ends_with(b"}\n"));
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("\"sha256\": \"sha256:"), "{text}");
    assert!(
        !text.contains("llvm_version\": null"),
        "absent LLVM version must be omitted: {text}"
    );
    // Keys sorted: cargo before cc before cfg before files before host.
    let pos = |s: &str| text.find(s).unwrap();
    assert!(
        pos("\"cargo\"") < pos("\"cc\"")
            && pos("\"cc\"") < pos("\"cfg\"")
            && pos("\"cfg\"") < pos("\"files\"")
            && pos("\"files\"") < pos("\"host\": \"")
    );
    assert_eq!(ToolchainLock::read(&path).unwrap(), lock);
    // The digest changes with the content.
    let mut other = lock.clone();
    other.rustc.version = "1.95.0".into();
    assert_ne!(other.digest(), lock.digest());
}

/// The error as the CLI shows it: the message, its sources, then the fix on its own line.
fn shown(e: &Error) -> String {
    let mut out = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        out.push_str(&format!(": {c}"));
        cur = c.source();
    }
    if let Some(fix) = kiln_core::Hint::hint(e) {
        out.push_str(&format!("\n  fix: {fix}"));
    }
    out
}

#[test]
fn missing_lock_says_how_to_create_it() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("toolchains/none.lock.json");
    let err = ToolchainLock::read(&path).unwrap_err();
    assert!(matches!(err, Error::LockMissing { .. }), "{err:?}");
    let msg = shown(&err);
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains(&crate::relock_command()),
        "{msg}"
    );
}

#[test]
fn malformed_lock_names_path_serde_message_and_fix() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("bad.lock.json");
    std::fs::write(&path, b"{\n  \"schema\": 1,\n  \"host\": \n").unwrap();
    let err = ToolchainLock::read(&path).unwrap_err();
    assert!(matches!(err, Error::LockMalformed { .. }), "{err:?}");
    assert!(
        !err.to_string().contains("line 4"),
        "the source is not repeated: {err}"
    );
    let msg = shown(&err);
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("line 4"), "serde position missing: {msg}");
    assert!(msg.contains(&crate::relock_command()), "{msg}");

    // Well-formed JSON of the wrong shape.
    std::fs::write(&path, b"[1, 2]").unwrap();
    assert!(matches!(
        ToolchainLock::read(&path),
        Err(Error::LockMalformed { .. })
    ));
    let mut v = serde_json::to_value(sample_lock()).unwrap();
    v["files"]["sysroot/bin/rustc"]["sha256"] = "sha256:nothex".into();
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let msg = shown(&ToolchainLock::read(&path).unwrap_err());
    assert!(msg.contains("sha256:nothex"), "{msg}");
}

#[test]
fn unknown_fields_are_errors_at_every_level() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("x.lock.json");
    let base = serde_json::to_value(sample_lock()).unwrap();
    let mut top = base.clone();
    top["bogus_top"] = 1.into();
    let mut nested = base.clone();
    nested["rustc"]["bogus_rustc"] = "x".into();
    let mut entry = base.clone();
    entry["files"]["sysroot/bin/rustc"]["bogus_entry"] = true.into();
    for (v, field) in [
        (top, "bogus_top"),
        (nested, "bogus_rustc"),
        (entry, "bogus_entry"),
    ] {
        std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        let err = ToolchainLock::read(&path).unwrap_err();
        let msg = shown(&err);
        assert!(matches!(err, Error::LockMalformed { .. }), "{err:?}");
        assert!(
            msg.contains(field) && msg.contains(&path.display().to_string()),
            "{msg}"
        );
    }
    // A missing field is an error too.
    let mut missing = base;
    missing.as_object_mut().unwrap().remove("cc");
    std::fs::write(&path, serde_json::to_vec(&missing).unwrap()).unwrap();
    let msg = shown(&ToolchainLock::read(&path).unwrap_err());
    assert!(msg.contains("missing field `cc`"), "{msg}");
}

#[test]
fn other_schema_is_reported_as_such() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("x.lock.json");
    let mut v = serde_json::to_value(sample_lock()).unwrap();
    v["schema"] = 4.into();
    v["new_pins"] = serde_json::json!({});
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let err = ToolchainLock::read(&path).unwrap_err();
    assert!(matches!(err, Error::UnsupportedSchema { .. }), "{err:?}");
    assert!(err.to_string().contains("schema 4"), "{err}");
}

#[test]
fn a_schema_2_lock_is_refused_with_the_relock_command() {
    // Schema 2 did not record the rustup toolchain: reading one must say so and how to
    // re-pin, not report its missing field.
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("x.lock.json");
    let mut v = serde_json::to_value(sample_lock()).unwrap();
    v["schema"] = 2.into();
    v.as_object_mut().unwrap().remove("rustup_toolchain");
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let msg = shown(&ToolchainLock::read(&path).unwrap_err());
    assert!(
        msg.contains("schema 2")
            && msg.contains("rustup toolchain")
            && msg.contains(&crate::relock_command()),
        "{msg}"
    );
}

#[test]
fn the_rustup_toolchain_is_the_sysroot_directory_under_toolchains() {
    use std::path::Path;
    assert_eq!(
        crate::toolchain::rustup_name(Path::new(
            "/root/.rustup/toolchains/1.95.0-x86_64-unknown-linux-gnu"
        ))
        .as_deref(),
        Some("1.95.0-x86_64-unknown-linux-gnu")
    );
    assert_eq!(crate::toolchain::rustup_name(Path::new("/usr")), None);
    assert_eq!(crate::toolchain::rustup_name(Path::new("/")), None);
}

#[test]
fn a_different_rustup_toolchain_is_a_difference() {
    let lock = sample_lock();
    let mut other = lock.clone();
    other.rustup_toolchain = Some("nightly-x86_64-unknown-linux-gnu".into());
    let m = lock.verify_against(&other).unwrap_err();
    assert!(
        m.to_string().contains(
            "rustup toolchain: lock 1.94.0-x86_64-unknown-linux-gnu, found nightly-x86_64-unknown-linux-gnu"
        ),
        "{m}"
    );
}

// ---------------------------------------------------------------------------------------
// Verification

#[test]
fn verify_reports_changed_missing_extra_and_versions() {
    let lock = sample_lock();
    assert_eq!(lock.verify_against(&lock.clone()), Ok(()));

    let mut actual = lock.clone();
    let std_key = "sysroot/lib/rustlib/x86_64-unknown-linux-gnu/lib/libstd-abc.rlib";
    actual.files.insert(std_key.into(), entry(b"patched std"));
    actual.files.remove("cc:/usr/lib/x86_64-linux-gnu/libc.a");
    actual
        .files
        .insert("cc:/usr/lib/x86_64-linux-gnu/libm.a".into(), entry(b"libm"));
    actual.rustc.version = "1.95.0".into();
    actual.rustc.llvm_version = None;

    let m = lock.verify_against(&actual).unwrap_err();
    assert_eq!(
        m.differences,
        vec![
            Difference::Field {
                field: "rustc version",
                lock: "1.94.0".into(),
                found: "1.95.0".into()
            },
            Difference::Field {
                field: "rustc LLVM version",
                lock: "21.1.0".into(),
                found: "(none)".into()
            },
            Difference::Changed {
                key: std_key.into(),
                lock: entry(b"std"),
                found: entry(b"patched std")
            },
            Difference::Missing {
                key: "cc:/usr/lib/x86_64-linux-gnu/libc.a".into(),
                lock: entry(b"libc")
            },
            Difference::Extra {
                key: "cc:/usr/lib/x86_64-linux-gnu/libm.a".into(),
                found: entry(b"libm")
            },
        ]
    );
    let msg = Mismatch {
        lock_path: Some("toolchains/x86_64-unknown-linux-gnu.lock.json".into()),
        ..m
    }
    .to_string();
    let expected = format!(
        "toolchain lock toolchains/x86_64-unknown-linux-gnu.lock.json does not match this machine:\n\
         \x20 rustc version: lock 1.94.0, found 1.95.0\n\
         \x20 rustc LLVM version: lock 21.1.0, found (none)\n\
         \x20 changed  {std_key} (lock {}, 3 bytes; found {}, 11 bytes)\n\
         \x20 missing  cc:/usr/lib/x86_64-linux-gnu/libc.a\n\
         \x20 extra    cc:/usr/lib/x86_64-linux-gnu/libm.a\n\
         If this toolchain change is intended, re-pin it with: {}",
        Digest::of(b"std"),
        Digest::of(b"patched std"),
        crate::relock_command(),
    );
    assert_eq!(msg, expected);
}

#[test]
fn verify_catches_same_size_content_change_and_every_field() {
    let lock = sample_lock();
    let mut actual = lock.clone();
    actual
        .files
        .insert("sysroot/bin/rustc".into(), entry(b"RUSTC"));
    let m = lock.verify_against(&actual).unwrap_err();
    assert_eq!(m.differences.len(), 1);
    let line = m.differences[0].to_string();
    assert!(
        line.starts_with("changed  sysroot/bin/rustc (lock sha256:") && !line.contains("bytes"),
        "{line}"
    );

    type Edit = (&'static str, fn(&mut ToolchainLock));
    let edits: [Edit; 8] = [
        ("host", |l| l.host = "aarch64-unknown-linux-gnu".into()),
        ("target", |l| l.target = "x86_64-unknown-linux-musl".into()),
        ("rustc commit-hash", |l| l.rustc.commit_hash = "cccc".into()),
        ("rustc commit-date", |l| {
            l.rustc.commit_date = "2026-02-02".into()
        }),
        ("cargo version", |l| l.cargo.version = "1.95.0".into()),
        ("cargo commit-hash", |l| l.cargo.commit_hash = "dddd".into()),
        ("cc version", |l| l.cc.version = "clang 18".into()),
        ("cc machine", |l| l.cc.machine = "aarch64-linux-gnu".into()),
    ];
    for (field, edit) in edits {
        let mut actual = lock.clone();
        edit(&mut actual);
        let m = lock.verify_against(&actual).unwrap_err();
        assert!(
            matches!(&m.differences[..], [Difference::Field { field: f, .. }] if *f == field),
            "{field}: {:?}",
            m.differences
        );
    }
}

#[test]
fn long_mismatch_lists_are_truncated() {
    let lock = sample_lock();
    let mut actual = lock.clone();
    for i in 0..30 {
        actual
            .files
            .insert(format!("cc:/usr/lib/extra{i:02}.a"), entry(b"x"));
    }
    let msg = lock.verify_against(&actual).unwrap_err().to_string();
    assert_eq!(
        msg.lines().filter(|l| l.starts_with("  extra")).count(),
        20,
        "{msg}"
    );
    assert!(
        msg.contains("cc:/usr/lib/extra19.a") && !msg.contains("cc:/usr/lib/extra20.a"),
        "{msg}"
    );
    assert!(msg.contains("  ... and 10 more\n"), "{msg}");
    assert!(
        msg.starts_with("toolchain lock does not match this machine:\n"),
        "{msg}"
    );
    assert!(
        msg.ends_with(&format!("re-pin it with: {}", crate::relock_command())),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------
// A fake toolchain in a tempdir: exact keys, symlinks, cross targets, end-to-end verify.

#[cfg(unix)]
mod fake {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    const HOST: &str = "x86_64-unknown-linux-gnu";

    fn file(root: &Path, rel: &str, content: &[u8]) -> PathBuf {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    fn script(root: &Path, rel: &str, body: &str) -> PathBuf {
        let p = file(root, rel, format!("#!/bin/sh\n{body}").as_bytes());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    struct Fake {
        _dir: tempfile::TempDir,
        root: PathBuf,
        tc: Toolchain,
    }

    fn fake() -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let sys = root.join("sysroot");
        let vv = |name: &str, extra: &str| {
            format!(
                "echo '{name} 1.95.0 (0123456 2026-04-14)'\necho 'binary: {name}'\necho 'commit-hash: 0123456789'\n\
                 echo 'commit-date: 2026-04-14'\necho 'host: {HOST}'\necho 'release: 1.95.0'\n{extra}"
            )
        };
        let rustc = script(
            &sys,
            "bin/rustc",
            &format!(
                "if [ \"$1 $2 $3\" = '--print cfg --target' ]; then\n\
                 case \"$4\" in wasm32-*) echo 'target_arch=\"wasm32\"';; \
                 *) echo 'unix'; echo 'target_os=\"linux\"';; esac; exit 0; fi\n{}",
                vv("rustc", "echo 'LLVM version: 22.1.2'\n")
            ),
        );
        let cargo = script(&sys, "bin/cargo", &vv("cargo", ""));
        file(&sys, "bin/rustdoc", b"not pinned");
        file(&sys, "lib/librustc_driver-abc123.so", b"driver");
        file(&sys, "lib/libLLVM.so.22.1-rust-1.95.0-stable", b"llvm");
        file(
            &sys,
            "lib/libunrelated.so",
            b"a system library in a distro sysroot",
        );
        let tlib = format!("lib/rustlib/{HOST}/lib");
        file(&sys, &format!("{tlib}/libstd-0011.rlib"), b"std");
        file(&sys, &format!("{tlib}/libcore-0022.rlib"), b"core");
        file(&sys, &format!("{tlib}/self-contained/crt1.o"), b"sc crt1");
        symlink(
            "libcore-0022.rlib",
            sys.join(format!("{tlib}/libcore-link.rlib")),
        )
        .unwrap();
        symlink("does-not-exist", sys.join(format!("{tlib}/dangling.rlib"))).unwrap();
        symlink("self-contained", sys.join(format!("{tlib}/dirlink"))).unwrap();
        file(&sys, &format!("lib/rustlib/{HOST}/bin/rust-lld"), b"lld");
        file(
            &sys,
            &format!("lib/rustlib/{HOST}/bin/gcc-ld/ld.lld"),
            b"ld.lld wrapper",
        );
        file(&sys, "lib/rustlib/etc/gdb_lookup.py", b"not pinned");
        file(
            &sys,
            "lib/rustlib/wasm32-unknown-unknown/lib/libstd-0033.rlib",
            b"wasm std",
        );

        file(&root, "c/lib/libc.a", b"libc");
        file(&root, "c/lib/crt1.o", b"crt1");
        symlink(root.join("c/lib/crt1.o"), root.join("c/crt1-link.o")).unwrap();
        script(&root, "c/bin/ld", "exit 0\n");
        let cc = script(
            &root,
            "c/bin/gcc-12",
            &format!(
                r#"R={root}
case "$1" in
  --version) echo "fakecc (Fake) 12.2.0"; echo "Copyright";;
  -dumpmachine) echo x86_64-linux-gnu;;
  -print-prog-name=ld) echo "$R/c/bin/ld";;
  -print-prog-name=*) echo "/nonexistent/${{1#-print-prog-name=}}";;
  -print-file-name=libc.a) echo "$R/c/lib/libc.a";;
  -print-file-name=crt1.o) echo "$R/c/crt1-link.o";;
  -print-file-name=*) echo "${{1#-print-file-name=}}";;
  *) exit 1;;
esac
"#,
                root = root.display()
            ),
        );
        let tc = Toolchain {
            sysroot: sys,
            rustc,
            cargo,
            cc,
            host: HOST.into(),
            target: HOST.into(),
            rustup_toolchain: None,
        };
        Fake {
            _dir: dir,
            root,
            tc,
        }
    }

    fn expected_keys(root: &Path, extra_sysroot: &[&str]) -> Vec<String> {
        let t = format!("sysroot/lib/rustlib/{HOST}");
        let mut v: Vec<String> = vec![
            "sysroot/bin/rustc".into(),
            "sysroot/bin/cargo".into(),
            "sysroot/lib/librustc_driver-abc123.so".into(),
            "sysroot/lib/libLLVM.so.22.1-rust-1.95.0-stable".into(),
            format!("{t}/lib/libstd-0011.rlib"),
            format!("{t}/lib/libcore-0022.rlib"),
            format!("{t}/lib/libcore-link.rlib"),
            format!("{t}/lib/self-contained/crt1.o"),
            format!("{t}/bin/rust-lld"),
            format!("{t}/bin/gcc-ld/ld.lld"),
            format!("cc:{}/c/bin/gcc-12", root.display()),
            format!("cc:{}/c/bin/ld", root.display()),
            format!("cc:{}/c/lib/libc.a", root.display()),
            format!("cc:{}/c/lib/crt1.o", root.display()),
        ];
        v.extend(extra_sysroot.iter().map(|s| s.to_string()));
        v.sort();
        v
    }

    #[test]
    fn fake_sysroot_gives_exactly_the_expected_keys() {
        let f = fake();
        let lock = f.tc.lock().unwrap();
        let keys: Vec<String> = lock.files.keys().cloned().collect();
        assert_eq!(keys, expected_keys(&f.root, &[]));
        // A symlink is pinned by its target's content.
        assert_eq!(
            lock.files[&format!("sysroot/lib/rustlib/{HOST}/lib/libcore-link.rlib")],
            entry(b"core")
        );
        assert_eq!(
            lock.files[&format!("cc:{}/c/lib/crt1.o", f.root.display())],
            entry(b"crt1")
        );
        assert_eq!(lock.rustc.version, "1.95.0");
        assert_eq!(lock.rustc.commit_hash, "0123456789");
        assert_eq!(lock.rustc.llvm_version.as_deref(), Some("22.1.2"));
        assert_eq!(lock.cargo.llvm_version, None);
        assert_eq!(
            lock.cc,
            CcInfo {
                version: "fakecc (Fake) 12.2.0".into(),
                machine: "x86_64-linux-gnu".into()
            }
        );
        assert_eq!(
            lock.cfg,
            TargetCfg {
                target: vec!["target_os=\"linux\"".into(), "unix".into()],
                host: vec!["target_os=\"linux\"".into(), "unix".into()],
            },
            "sorted `rustc --print cfg` lines"
        );
        assert_eq!(lock.to_bytes(), f.tc.lock().unwrap().to_bytes());
    }

    #[test]
    fn cross_target_pins_both_std_libraries() {
        let f = fake();
        let tc = Toolchain {
            target: "wasm32-unknown-unknown".into(),
            ..f.tc.clone()
        };
        let lock = tc.lock().unwrap();
        let keys: Vec<String> = lock.files.keys().cloned().collect();
        assert_eq!(
            keys,
            expected_keys(
                &f.root,
                &["sysroot/lib/rustlib/wasm32-unknown-unknown/lib/libstd-0033.rlib"]
            )
        );
        assert_eq!(lock.target, "wasm32-unknown-unknown");
        assert_eq!(lock.cfg.target, ["target_arch=\"wasm32\""]);
        assert_eq!(lock.cfg.host, ["target_os=\"linux\"", "unix"]);

        let missing = Toolchain {
            target: "aarch64-apple-darwin".into(),
            ..f.tc.clone()
        };
        let err = missing.lock().unwrap_err();
        assert!(matches!(err, Error::TargetNotInstalled { .. }), "{err:?}");
        assert!(
            shown(&err).contains("rustup target add aarch64-apple-darwin"),
            "{err}"
        );

        let evil = Toolchain {
            target: "../../etc".into(),
            ..f.tc.clone()
        };
        assert!(matches!(evil.lock(), Err(Error::BadTarget { .. })));
    }

    /// The stamp answers only while the lock and every pinned file are untouched: a file
    /// rewritten with the same size and its mtime restored is caught (its ctime moved),
    /// and the full verification then refuses it.
    #[test]
    fn the_stamp_skips_rehashing_only_while_nothing_changed() {
        let f = fake();
        let path = default_lock_path(&f.root, HOST);
        f.tc.lock().unwrap().write(&path).unwrap();
        let stamp = f.root.join("root/toolchain.verified.json");
        std::fs::create_dir_all(stamp.parent().unwrap()).unwrap();
        let (lock, stamped) = f.tc.verify_stamped(&path, &stamp).unwrap();
        assert!(!stamped, "the first verification is a full one");
        assert!(stamp.is_file());
        let (again, stamped) = f.tc.verify_stamped(&path, &stamp).unwrap();
        assert!(stamped);
        assert_eq!(again.digest(), lock.digest());

        // Same size, same mtime, other bytes.
        let std_file =
            f.tc.sysroot
                .join(format!("lib/rustlib/{HOST}/lib/libstd-0011.rlib"));
        let meta = std::fs::metadata(&std_file).unwrap();
        let len = meta.len() as usize;
        let mtime = meta.modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&std_file, vec![b'x'; len]).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&std_file)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let err = f.tc.verify_stamped(&path, &stamp).unwrap_err();
        assert!(matches!(err, Error::Mismatch(_)), "{err:?}");

        // A changed lock file is never answered by the stamp either.
        let f = fake();
        let path = default_lock_path(&f.root, HOST);
        f.tc.lock().unwrap().write(&path).unwrap();
        let stamp = f.root.join("stamp.json");
        f.tc.verify_stamped(&path, &stamp).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.push(b'\n');
        std::fs::write(&path, &bytes).unwrap();
        let (_, stamped) = f.tc.verify_stamped(&path, &stamp).unwrap();
        assert!(!stamped, "a changed lock file is verified in full");
    }

    #[test]
    fn verify_end_to_end_detects_a_patched_file() {
        let f = fake();
        let path = default_lock_path(&f.root, HOST);
        f.tc.lock().unwrap().write(&path).unwrap();
        let verified = f.tc.verify(&path).unwrap();
        assert_eq!(
            verified.digest(),
            Digest::of(&std::fs::read(&path).unwrap())
        );

        let std_key = format!("sysroot/lib/rustlib/{HOST}/lib/libstd-0011.rlib");
        std::fs::write(f.tc.sysroot.join(&std_key["sysroot/".len()..]), b"patched").unwrap();
        std::fs::remove_file(f.root.join("c/lib/libc.a")).unwrap();
        let err = f.tc.verify(&path).unwrap_err();
        let Error::Mismatch(m) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(m.lock_path.as_deref(), Some(path.as_path()));
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "toolchain lock {} does not match this machine:\n",
                path.display()
            )),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("  changed  {std_key} (lock sha256:")),
            "{msg}"
        );
        assert!(
            msg.contains(&format!(
                "  missing  cc:{}/c/lib/libc.a\n",
                f.root.display()
            )),
            "{msg}"
        );
        assert!(
            msg.ends_with(&format!("re-pin it with: {}", crate::relock_command())),
            "{msg}"
        );
    }

    #[test]
    fn broken_tools_give_errors_naming_the_command() {
        let f = fake();
        let bad = script(&f.root, "c/bin/badcc", "echo 'boom' >&2\nexit 3\n");
        let err = Toolchain {
            cc: bad.clone(),
            ..f.tc.clone()
        }
        .lock()
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, Error::CommandFailed { .. }) && msg.contains(&bad.display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("boom"), "{msg}");

        let norelease = script(&f.root, "sysroot2/rustc", &format!("echo 'host: {HOST}'\n"));
        let err = Toolchain {
            rustc: norelease,
            ..f.tc.clone()
        }
        .lock()
        .unwrap_err();
        assert!(err.to_string().contains("no `release:` line"), "{err}");

        let err = Toolchain {
            cargo: f.root.join("nope/cargo"),
            ..f.tc.clone()
        }
        .lock()
        .unwrap_err();
        assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
    }
}

/// Two digests that agree on their first 63 hex digits are printed so that they differ
/// (they used to be cut to the same 16-digit prefix and look identical).
#[test]
fn changed_file_digests_are_printed_in_full() {
    let mut a = [0x5au8; 32];
    let lock = FileEntry {
        sha256: Digest::from_bytes(a),
        size: 10,
    };
    a[31] = 0x5b;
    let found = FileEntry {
        sha256: Digest::from_bytes(a),
        size: 10,
    };
    let line = Difference::Changed {
        key: "sysroot/lib/libstd.rlib".into(),
        lock,
        found,
    }
    .to_string();
    assert!(
        line.contains(&lock.sha256.to_string()) && line.contains(&found.sha256.to_string()),
        "{line}"
    );
}
