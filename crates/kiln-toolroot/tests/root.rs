//! The default toolchain root, for real: pinned from the live Rust dist server and Debian
//! mirror, fetched (into a cache shared between runs: `$KILN_TOOLROOT_CACHE`, else
//! `<workspace>/target/kiln/tools/toolroot-cache`), packed twice (the digests must agree),
//! installed into a store, and then used as `/` — in a user and mount namespace without
//! network, through `chroot` — to compile and run a static C program, a static Rust
//! program and a `cargo build --offline`. Needs the network and unprivileged user
//! namespaces (`unshare --user --map-root-user`); it fails, never skips, without them.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use kiln_core::contract::layout::{ProjectLayout, toolroot};
use kiln_toolroot::{PinRequest, RootDir, RootLock, Store, fetch, pack, pin};

/// 2026-04-16, the day Rust 1.95.0's dist files were published.
const SDE: u64 = 1_776_297_600;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn cache_dir() -> PathBuf {
    match std::env::var_os("KILN_TOOLROOT_CACHE") {
        Some(d) => PathBuf::from(d),
        None => ProjectLayout::new(workspace())
            .tools_dir()
            .join("toolroot-cache"),
    }
}

/// Runs `script` with `root` as `/`, the host directory `work` mounted at `/tmp`, the
/// host's `/dev` and `/proc` bound in, no network.
fn in_root(root: &Path, work: &Path, script: &str) -> Output {
    const OUTER: &str = r#"set -eu
R="$1"; W="$2"
mount --rbind /dev "$R/dev"
mount --rbind /proc "$R/proc"
mount --bind "$W" "$R/tmp"
exec chroot "$R" /bin/sh -euc "$3"
"#;
    kiln_core::process::command("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--mount",
            "--net",
            "sh",
            "-c",
            OUTER,
            "sh",
        ])
        .arg(root)
        .arg(work)
        .arg(script)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/usr/sbin:/sbin:/bin")
        .env("HOME", "/tmp")
        .env("CARGO_HOME", "/tmp/cargo-home")
        .env("TMPDIR", "/tmp")
        .env("LANG", "C")
        .output()
        .expect("unshare runs (util-linux)")
}

fn ok(o: &Output, what: &str) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{what} failed ({}):\nstdout:\n{out}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Whether an ELF file has a program interpreter (is dynamically linked).
fn has_interp(path: &Path) -> bool {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..4], b"\x7fELF", "{} is not ELF", path.display());
    assert_eq!(b[4], 2, "64-bit ELF expected");
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) == 3 // PT_INTERP
    })
}

/// Apparent bytes and number of regular files under `dir`.
fn size_of(dir: &Path) -> (u64, u64) {
    let mut bytes = 0;
    let mut files = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                bytes += m.len();
                files += 1;
            }
        }
    }
    (bytes, files)
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

#[test]
fn the_default_root_compiles_c_and_rust_inside_itself() {
    let cache = cache_dir();
    let t = Instant::now();
    let lock = pin(&PinRequest::new("1.95.0")).expect("pin the default root");
    let t_pin = t.elapsed();
    let names: Vec<&str> = lock
        .debian
        .packages
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    for want in [
        "gcc-12",
        "cpp-12",
        "libc6-dev",
        "libc6",
        "libgcc-12-dev",
        "binutils",
        "dash",
    ] {
        assert!(
            names.contains(&want),
            "{want} missing from the closure {names:?}"
        );
    }
    assert!(!names.contains(&"dpkg"), "dpkg is left out");
    let comps: Vec<&str> = lock
        .rust
        .components
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        comps,
        ["rustc", "cargo", "rust-std-x86_64-unknown-linux-gnu"]
    );
    let pinned_bytes: u64 = lock.debian.packages.iter().map(|p| p.size).sum::<u64>()
        + lock
            .rust
            .components
            .iter()
            .filter_map(|c| c.size)
            .sum::<u64>();

    let t = Instant::now();
    let inputs = fetch(&lock, &cache, None, &[]).expect("fetch");
    let t_fetch = t.elapsed();
    assert_eq!(inputs.len(), lock.debian.packages.len() + 3);

    let work = tempfile::Builder::new()
        .prefix("kiln-toolroot-test-")
        .tempdir()
        .unwrap();
    let t = Instant::now();
    let a = pack(&lock, &inputs, &work.path().join("oci-a"), SDE).expect("pack");
    let t_pack = t.elapsed();
    let b = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| pack(&lock, &inputs, &work.path().join("oci-b"), SDE))
        .expect("second pack");
    assert_eq!(a.digests(), b.digests(), "two packs of one lock differ");

    let mut pinned = lock.clone();
    pinned.root = Some(a.digests());
    let lock_path = cache.join(toolroot::lock_file(&lock.name));
    pinned.write(&lock_path).unwrap();
    assert_eq!(RootLock::read(&lock_path).unwrap(), pinned);

    let store = Store::at(work.path().join("store"));
    let t = Instant::now();
    let root = store.install(&a, &a.digests()).expect("install");
    let t_install = t.elapsed();
    let t = Instant::now();
    assert_eq!(store.get(&a.digests()).unwrap().as_ref(), Some(&root));
    let t_get = t.elapsed();
    let (root_bytes, root_files) = size_of(&root.path);
    let (layout_bytes, _) = size_of(&a.layout);

    eprintln!(
        "toolchain root {}: {} packages + 3 Rust components ({:.1} MiB pinned), lock {}\n  \
         manifest {}\n  tree {}\n  \
         pin {:.1}s, fetch {:.1}s ({} downloaded), pack {:.1}s, install {:.1}s, get (stamped) {:.3}s\n  \
         fetch+pack+install {:.1}s (cold when fetch downloaded every input)\n  \
         store: {:.1} MiB in {} files; layout: {:.1} MiB",
        lock.name,
        lock.debian.packages.len(),
        mib(pinned_bytes),
        lock_path.display(),
        a.manifest,
        a.tree,
        t_pin.as_secs_f64(),
        t_fetch.as_secs_f64(),
        inputs.downloaded(),
        t_pack.as_secs_f64(),
        t_install.as_secs_f64(),
        t_get.as_secs_f64(),
        (t_fetch + t_pack + t_install).as_secs_f64(),
        mib(root_bytes),
        root_files,
        mib(layout_bytes),
    );

    prove_it_works(&root, work.path());
}

fn prove_it_works(root: &RootDir, work: &Path) {
    let w = work.join("sandbox-tmp");
    std::fs::create_dir_all(w.join("proj/src")).unwrap();
    std::fs::write(
        w.join("hello.c"),
        "#include <stdio.h>\nint main(void) { printf(\"hello from C\\n\"); return 0; }\n",
    )
    .unwrap();
    std::fs::write(
        w.join("hello.rs"),
        "fn main() { println!(\"hello from Rust\"); }\n",
    )
    .unwrap();
    std::fs::write(
        w.join("proj/Cargo.toml"),
        "[package]\nname = \"proj\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\n",
    )
    .unwrap();
    std::fs::write(
        w.join("proj/src/main.rs"),
        "fn main() { println!(\"hello from cargo\"); }\n",
    )
    .unwrap();

    let o = in_root(
        &root.path,
        &w,
        &format!(
            "{cc} --version; {rustc} -vV; {rustc} --print sysroot; {cargo} --version",
            cc = root.cc().display(),
            rustc = root.rustc().display(),
            cargo = root.cargo().display()
        ),
    );
    let versions = ok(&o, "tool versions inside the root");
    eprintln!("inside the root:\n{versions}");
    assert!(
        versions.contains("gcc-12") || versions.contains("(Debian 12."),
        "{versions}"
    );
    assert!(versions.contains("release: 1.95.0"), "{versions}");
    assert!(
        versions.lines().any(|l| l == "/usr/local"),
        "sysroot: {versions}"
    );

    let o = in_root(
        &root.path,
        &w,
        "cd /tmp && cc -static -O2 -o hello-c hello.c && ./hello-c",
    );
    assert_eq!(ok(&o, "static C hello"), "hello from C\n");
    assert!(!has_interp(&w.join("hello-c")), "hello-c is not static");

    let o = in_root(
        &root.path,
        &w,
        "cd /tmp && rustc -C target-feature=+crt-static -C linker=cc -o hello-rs hello.rs && ./hello-rs",
    );
    assert_eq!(ok(&o, "static Rust hello"), "hello from Rust\n");
    assert!(!has_interp(&w.join("hello-rs")), "hello-rs is not static");

    let o = in_root(
        &root.path,
        &w,
        "cd /tmp/proj && cargo build --offline && ./target/debug/proj",
    );
    assert_eq!(ok(&o, "cargo build --offline"), "hello from cargo\n");
    assert!(
        has_interp(&w.join("proj/target/debug/proj")),
        "a default cargo build links dynamically against the root's glibc"
    );

    // Nothing of the root changed by being used.
    assert!(
        Store::at(root.path.parent().unwrap().parent().unwrap())
            .get(&root.digests)
            .unwrap()
            .is_some()
    );
}
