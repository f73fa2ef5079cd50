//! The one place tests start real tools and make sample projects.
//!
//! Tools are found on PATH (or in the virtualenv `cargo xtask test` makes, named by
//! `$KILN_TOOLS_BIN`); a missing tool fails the test with the command that installs it —
//! tests never skip.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod registry;

/// kiln's source tree: the nearest ancestor of the test crate with a `Cargo.lock` and
/// `testdata/` (this module serves both kiln-cli's and xtask's tests, at different depths).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| d.join("Cargo.lock").is_file() && d.join("testdata").is_dir())
        .expect("the test crate is inside kiln's source tree")
        .to_path_buf()
}

/// The provided toolchain root the repository pins (and `Project::provided_hello` uses).
pub const PROVIDED_ROOT: &str = "bookworm-rust-1.95.0";

/// `cmd` with the provided-root store at `store` (default: one shared by every test run,
/// `target/kiln/tools/toolroot-store`) and the download cache shared with kiln-toolroot's
/// tests (`target/kiln/tools/toolroot-cache`, `$KILN_TOOLROOT_CACHE` when set), so a root is
/// downloaded once per machine.
pub fn with_toolroot(mut c: Command, store: Option<&Path>) -> Command {
    let tools = repo().join("target/kiln/tools");
    let cache = std::env::var_os("KILN_TOOLROOT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools.join("toolroot-cache"));
    c.env("KILN_TOOLROOT_CACHE", cache).env(
        "KILN_TOOLROOT_STORE",
        store.map_or_else(|| tools.join("toolroot-store"), Path::to_path_buf),
    );
    c
}

/// The kiln CLI under test: the binary the including test crate names in its `KILN`
/// constant (`kiln` for kiln-cli's tests, `xtask` for the developer tasks').
pub fn kiln() -> Command {
    let mut c = kiln_core::process::command(crate::KILN);
    c.env_remove("SOURCE_DATE_EPOCH");
    c
}

/// `cmd` without CI, ambient signing, lineage or registry settings of the machine the
/// tests run on (on GitHub Actions the builder id would be the workflow's; a developer's
/// `~/.docker/config.json` must not log the tests in), so results do not depend on where
/// they run.
pub fn without_ambient(mut c: Command) -> Command {
    for v in [
        "GITHUB_ACTIONS",
        "KILN_SIGNING_KEY",
        "KILN_LINEAGE_SOURCE",
        "KILN_LINEAGE_TRANSFORM",
        "KILN_LINEAGE_POLICY_VERSION",
        "KILN_REGISTRY_TOKEN",
        "KILN_REGISTRY_USERNAME",
        "KILN_REGISTRY_PASSWORD",
        "KILN_PUSH_CHUNK_SIZE",
        "KILN_PUSH_PARALLEL",
        "KILN_REGISTRY_TIMEOUT",
    ] {
        c.env_remove(v);
    }
    c.env(
        "DOCKER_CONFIG",
        std::env::temp_dir().join("kiln-test-no-docker-config"),
    );
    c
}

/// Path of a required tool; panics with how to install it when absent.
pub fn tool(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("KILN_TOOLS_BIN")
        .map(|p| vec![PathBuf::from(p)])
        .unwrap_or_default();
    dirs.push(repo().join("target/kiln/tools/venv/bin"));
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    dirs.extend(["/usr/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not installed: run the tests with `cargo xtask test`, which installs it"))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A tool that needs root (runc, umoci unpack): run directly as root, else via `sudo -n`.
pub fn privileged(name: &str) -> Command {
    let path = tool(name);
    if is_root() {
        kiln_core::process::command(path)
    } else {
        let mut c = kiln_core::process::command("sudo");
        c.arg("-n").arg(path);
        c
    }
}

/// Runs `cmd`, panicking with its output unless it succeeds.
#[track_caller]
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd` expecting failure; returns its stderr.
#[track_caller]
pub fn run_err(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded but should have failed:\n{stderr}"
    );
    stderr
}

pub fn host_target() -> String {
    let out = run_ok(kiln_core::process::command("rustc").arg("-vV"));
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap()
        .to_string()
}

/// This machine's host toolchain lock (`toolchains/<target>.lock.json`), made once per test
/// process by `kiln toolchain lock` in a scratch project. The tests of the host-toolchain
/// mode build with whatever toolchain the machine has, checked against a lock of that very
/// machine: the committed host lock pins kiln's development machines, not a CI runner, and
/// what every machine builds the same way is the provided root (`PROVIDED_ROOT`), whose
/// committed lock is used as is.
pub fn host_lock() -> &'static [u8] {
    static LOCK: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    LOCK.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("kiln-test-host-lock-")
            .tempdir()
            .unwrap();
        copy_tree(&repo().join("testdata/hello"), dir.path());
        std::fs::write(dir.path().join("kiln.toml"), HELLO_TOML).unwrap();
        run_ok(kiln().arg("-C").arg(dir.path()).args(["toolchain", "lock"]));
        let lock = format!("toolchains/{}.lock.json", host_target());
        std::fs::read(dir.path().join(&lock)).unwrap_or_else(|e| panic!("{lock}: {e}"))
    })
}

/// Writes [`host_lock`] into `project`'s `toolchains/`.
pub fn write_host_lock(project: &Path) {
    let lock = project.join(format!("toolchains/{}.lock.json", host_target()));
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, host_lock()).unwrap();
}

/// A throw-away copy of `testdata/hello` as a kiln project of its own, with this machine's
/// host toolchain lock ([`host_lock`]).
pub struct Project {
    pub dir: tempfile::TempDir,
}

pub const HELLO_TOML: &str = r#"[project]
source_date_epoch = 1700000000

[[image]]
name = "hello"
package = "hello"
binaries = ["hello"]
labels = { "org.example.test" = "yes" }

[[image.files]]
source = "greeting.txt"
path = "/etc/hello/greeting.txt"
"#;

impl Project {
    pub fn hello() -> Self {
        Self::from_testdata("hello", HELLO_TOML)
    }

    pub fn from_testdata(name: &str, kiln_toml: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("kiln-test-")
            .tempdir()
            .unwrap();
        copy_tree(&repo().join("testdata").join(name), dir.path());
        std::fs::write(dir.path().join("kiln.toml"), kiln_toml).unwrap();
        write_host_lock(dir.path());
        Project { dir }
    }

    /// kiln's own default-job layout: `kiln.toml` at the root of a Cargo workspace (a member
    /// `tool` that is never built) whose image is `testdata/hello`, a package the workspace
    /// excludes. The hello copy gets a build script that embeds `git rev-parse HEAD` and
    /// fails without it; the project is a git repository (one commit, an `origin`).
    pub fn hello_in_workspace() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("kiln-test-ws-")
            .tempdir()
            .unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("Cargo.toml"),
            "[workspace]\nresolver = \"2\"\nmembers = [\"tool\"]\nexclude = [\"testdata\"]\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("tool/src")).unwrap();
        std::fs::write(
            root.join("tool/Cargo.toml"),
            "[package]\nname = \"tool\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .unwrap();
        std::fs::write(root.join("tool/src/main.rs"), "fn main() {}\n").unwrap();
        let hello = root.join("testdata/hello");
        copy_tree(&repo().join("testdata/hello"), &hello);
        std::fs::write(
            hello.join("build.rs"),
            r#"fn main() {
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().expect("git runs");
    assert!(out.status.success(), "the build must see the project's git commit: {out:?}");
    let rev = String::from_utf8(out.stdout).unwrap();
    println!("cargo::rustc-env=HELLO_GIT_REV={}", rev.trim());
}
"#,
        )
        .unwrap();
        let main = std::fs::read_to_string(hello.join("src/main.rs")).unwrap();
        std::fs::write(
            hello.join("src/main.rs"),
            format!("{main}\n#[used]\nstatic GIT_REV: &str = env!(\"HELLO_GIT_REV\");\n"),
        )
        .unwrap();
        std::fs::write(
            root.join("kiln.toml"),
            HELLO_TOML
                .replace(
                    "package = \"hello\"",
                    "manifest = \"testdata/hello/Cargo.toml\"\npackage = \"hello\"",
                )
                .replace("\"greeting.txt\"", "\"testdata/hello/greeting.txt\""),
        )
        .unwrap();
        write_host_lock(root);
        std::fs::write(root.join(".gitignore"), "target/\n").unwrap();
        git(root, &["init", "-q", "-b", "main"]);
        git(root, &["add", "."]);
        git(root, &["commit", "-q", "-m", "sample"]);
        git(
            root,
            &[
                "remote",
                "add",
                "origin",
                "https://example.invalid/kiln-test.git",
            ],
        );
        Project { dir }
    }

    /// testdata/hello built inside the committed provided toolchain root
    /// (`toolchains/bookworm-rust-1.95.0.lock.json`).
    pub fn provided_hello() -> Self {
        let p = Self::from_testdata(
            "hello",
            &HELLO_TOML.replacen(
                "[project]\n",
                &format!("[project]\ntoolchain_root = \"{PROVIDED_ROOT}\"\n"),
                1,
            ),
        );
        let lock = format!("toolchains/{PROVIDED_ROOT}.lock.json");
        std::fs::copy(repo().join(&lock), p.path().join(&lock))
            .unwrap_or_else(|e| panic!("{lock}: {e}"));
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn out(&self) -> PathBuf {
        self.path().join("target/kiln/out")
    }

    /// kiln on this project, with the shared provided-root store and download cache
    /// ([`with_toolroot`]; only a build inside a root reads them).
    pub fn kiln(&self) -> Command {
        let mut c = with_toolroot(kiln(), None);
        c.arg("-C").arg(self.path());
        c
    }

    pub fn build(&self) -> serde_json::Value {
        let out = run_ok(self.kiln().args(["build", "--json"]));
        serde_json::from_slice(&out.stdout).expect("build --json prints JSON")
    }

    /// Files under target/kiln/out (to prove a failed build wrote nothing).
    pub fn out_entries(&self) -> Vec<String> {
        match std::fs::read_dir(self.out()) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// Runs git in `dir` with a fixed identity and dates, panicking on failure; its stdout.
#[track_caller]
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = run_ok(
        kiln_core::process::command("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "kiln test")
            .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
            .env("GIT_COMMITTER_NAME", "kiln test")
            .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
            .env("GIT_AUTHOR_DATE", "@1700000000 +0000")
            .env("GIT_COMMITTER_DATE", "@1700000000 +0000"),
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "target" {
            continue;
        }
        let ty = e.file_type().unwrap();
        if ty.is_dir() {
            copy_tree(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// All regular files under `dir` with their bytes, by relative path.
pub fn read_tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, d: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(base, &e.path(), out);
            } else {
                let rel = e.path().strip_prefix(base).unwrap().display().to_string();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    let mut out = Default::default();
    walk(dir, dir, &mut out);
    out
}

/// Unpacks `layout:ref` with umoci and runs it with runc; returns the container's stdout.
pub fn run_image(layout: &Path, reference: &str) -> String {
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("bundle");
    run_ok(
        privileged("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{reference}", layout.display()))
            .arg(&bundle),
    );
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["process"]["terminal"] = serde_json::Value::Bool(false);
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let name = format!("kiln-test-{}", std::process::id());
    let out = run_ok(
        privileged("runc")
            .arg("run")
            .arg(&name)
            .current_dir(&bundle),
    );
    let _ = privileged("runc").args(["delete", "-f", &name]).output();
    let _ = privileged("rm").arg("-rf").arg(&bundle).output();
    String::from_utf8(out.stdout).unwrap()
}

/// The Python of the virtualenv `cargo xtask test` makes (validators, verifiers, peers).
pub fn venv_python() -> PathBuf {
    let bin = std::env::var_os("KILN_TOOLS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/kiln/tools/venv/bin"));
    let py = bin.join("python3");
    assert!(
        py.is_file(),
        "{} is missing: run the tests with `cargo xtask test`, which creates it",
        py.display()
    );
    py
}

/// Runs a Python snippet in the tools virtualenv with `args` as `sys.argv[1:]`.
#[track_caller]
pub fn python(script: &str, args: &[&std::ffi::OsStr]) -> Output {
    run_ok(
        kiln_core::process::command(venv_python())
            .arg("-c")
            .arg(script)
            .args(args),
    )
}

/// `@sigstore/verify` on key-signed Sigstore bundles (no transparency log), node args:
/// `PUBLIC_KEY_PEM KEY_HINT BUNDLE...`; prints `verified F` or `REJECTED F why` per file and
/// exits 1 if any was rejected.
pub const SIGSTORE_VERIFY_KEYED: &str = r#"
import fs from 'node:fs';
import crypto from 'node:crypto';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { bundleFromJSON } from '@sigstore/bundle';
const [pub, hint, ...files] = process.argv.slice(2);
const der = crypto.createPublicKey(fs.readFileSync(pub)).export({ type: 'spki', format: 'der' });
const tm = toTrustMaterial({ certificateAuthorities: [], timestampAuthorities: [], tlogs: [], ctlogs: [] }, { [hint]: { rawBytes: der } });
const v = new Verifier(tm, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
let failed = 0;
for (const f of files) {
  const json = JSON.parse(fs.readFileSync(f, 'utf8'));
  try { v.verify(toSignedEntity(bundleFromJSON(json))); console.log('verified', f); }
  catch (e) { console.log('REJECTED', f, e.message); failed++; }
}
process.exit(failed ? 1 : 0);
"#;

/// `node_modules` of the npm packages `cargo xtask test` installs.
pub fn node_modules() -> PathBuf {
    let nm = std::env::var_os("KILN_TOOLS_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/kiln/tools/node/node_modules"));
    assert!(
        nm.is_dir(),
        "{} is missing: run the tests with `cargo xtask test`, which installs it",
        nm.display()
    );
    nm
}

/// Runs an ES-module Node.js snippet that can import the installed npm packages.
#[track_caller]
pub fn node(script: &str, args: &[&std::ffi::OsStr]) -> Output {
    let nm = node_modules();
    // A module file inside the tools prefix, so bare imports resolve to its node_modules.
    let file = tempfile::Builder::new()
        .prefix(".kiln-test-")
        .suffix(".mjs")
        .tempfile_in(nm.parent().unwrap())
        .unwrap();
    std::fs::write(file.path(), script).unwrap();
    run_ok(
        kiln_core::process::command("node")
            .arg(file.path())
            .args(args),
    )
}

/// A local Sigstore: `testdata/sigstore-mock/server.mjs` serving @sigstore/mock's Fulcio
/// and Rekor, and a GitHub-Actions-style OIDC token service, on 127.0.0.1. Its trust
/// material (Fulcio root PEM, Rekor and CT log public keys) is in `info`. Killed on drop;
/// it also exits by itself when its stdin (this process) goes away.
pub struct SigstoreMock {
    child: std::process::Child,
    pub info: serde_json::Value,
}

impl SigstoreMock {
    pub fn start() -> Self {
        use std::io::BufRead;
        let nm = node_modules();
        let mut child = kiln_core::process::command("node")
            .arg(repo().join("testdata/sigstore-mock/server.mjs"))
            .arg(&nm)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run node (Node.js 20 is needed): {e}"));
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let info: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                let _ = child.kill();
                panic!("the Sigstore mock did not start ({e}); it printed: {line:?}")
            }
        };
        SigstoreMock { child, info }
    }

    /// A string field of the trust material (`url`, `fulcio_root_pem`, `token_url`, ...).
    pub fn get(&self, field: &str) -> &str {
        self.info[field]
            .as_str()
            .unwrap_or_else(|| panic!("the Sigstore mock printed no `{field}`"))
    }

    pub fn url(&self) -> &str {
        self.get("url")
    }
}

impl Drop for SigstoreMock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a minimal OCI layout at `dir` whose one image has `layers` (uncompressed tars, as
/// given) and returns its manifest digest: a base image made by hand, e.g. from the
/// hostile layers of `testdata/layers`.
pub fn raw_base_layout(dir: &Path, layers: &[Vec<u8>]) -> kiln_core::Digest {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = kiln_core::Digest::of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).unwrap();
        d
    };
    let descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": put(l).to_string(), "size": l.len()}))
        .collect();
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| kiln_core::Digest::of(l).to_string())
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}}))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(&config).to_string(), "size": config.len()},
        "layers": descs}))
    .unwrap();
    let md = put(&manifest);
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": manifest.len()}]}))
        .unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    md
}

/// Adds the triage statements of `testdata/vex/hello` and the OSV advisories of
/// `testdata/osv/hello` (made-up TEST DATA) to a hello project, so its build writes VEX.
pub fn add_vex(p: &Project) {
    std::fs::create_dir_all(p.path().join("vex")).unwrap();
    std::fs::copy(
        repo().join("testdata/vex/hello/statements.toml"),
        p.path().join("vex/statements.toml"),
    )
    .unwrap();
    copy_tree(
        &repo().join("testdata/osv/hello"),
        &p.path().join("advisories"),
    );
}

/// `kiln keygen --out DIR/kiln`: DIR/kiln.key and DIR/kiln.pub; returns the key id.
pub fn keygen(dir: &Path) -> String {
    let out = run_ok(kiln().arg("keygen").arg("--out").arg(dir.join("kiln")));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains("PRIVATE KEY"),
        "keygen printed key material: {text}"
    );
    text.lines()
        .find_map(|l| l.strip_prefix("keyid "))
        .unwrap()
        .to_string()
}

/// Minimal standard base64 decoding for reading envelope payloads in the test.
pub mod base64_decode {
    pub fn decode(s: &str) -> Vec<u8> {
        let val = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64"),
        } as u32;
        let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
        let mut out = Vec::new();
        for chunk in bytes.chunks(4) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &c)| acc | (val(c) << (18 - 6 * i)));
            out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
        }
        out
    }
}
