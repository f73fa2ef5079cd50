//! The resolver on a fake workspace and verified crate sources: scopes, features per side, platforms,
//! stale locks. (`crates/kiln-cli/tests/sbom.rs` checks real projects against `cargo tree`.)

use std::path::Path;

use super::*;

const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";

struct Fake {
    _dir: tempfile::TempDir,
    ws: PathBuf,
    home: PathBuf,
}

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A registry crate `name` 1.0.0 with `body` after its `[package]` table.
fn krate(f: &Fake, name: &str, body: &str) {
    write(
        &f.home.join(format!("{name}-1.0.0/Cargo.toml")),
        &format!(
            "[package]\nname = \"{name}\"\nversion = \"1.0.0\"\nlicense = \"MIT\"\ndescription = \"the\\n  {name} crate\"\n{body}"
        ),
    );
}

/// `Cargo.lock` with `app` 0.1.0 (path) and the registry crates, each with its locked
/// dependencies.
fn lock(f: &Fake, packages: &[(&str, &[&str])]) {
    let mut text = String::from("version = 4\n");
    for (name, deps) in packages {
        text.push_str(&format!("\n[[package]]\nname = \"{name}\"\n"));
        if *name == "app" {
            text.push_str("version = \"0.1.0\"\n");
        } else {
            text.push_str(&format!(
                "version = \"1.0.0\"\nsource = \"{CRATES_IO}\"\nchecksum = \"{}\"\n",
                "ab".repeat(32)
            ));
        }
        if !deps.is_empty() {
            let list: Vec<String> = deps.iter().map(|d| format!("\"{d}\"")).collect();
            text.push_str(&format!("dependencies = [{}]\n", list.join(", ")));
        }
    }
    write(&f.ws.join("Cargo.lock"), &text);
}

fn fake(app: &str) -> Fake {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let home = dir.path().join("home");
    write(
        &ws.join("Cargo.toml"),
        &format!("[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n{app}"),
    );
    Fake {
        _dir: dir,
        ws,
        home,
    }
}

fn linux() -> Platform {
    Platform {
        triple: "x86_64-unknown-linux-gnu".into(),
        cfg: vec![
            "unix".into(),
            "target_os=\"linux\"".into(),
            "target_family=\"unix\"".into(),
        ],
    }
}

fn request(f: &Fake, features: &[&str]) -> ResolveRequest {
    ResolveRequest {
        manifest: f.ws.join("Cargo.toml"),
        package: "app".into(),
        target: linux(),
        host: linux(),
        features: features.iter().map(|s| s.to_string()).collect(),
        no_default_features: false,
        sources: CrateSources::Verified(f.home.clone()),
    }
}

fn scopes(r: &Resolution) -> BTreeMap<String, Scope> {
    r.crates
        .values()
        .map(|c| (c.name.clone(), c.scope))
        .collect()
}

/// app → rt (normal) → both; app → pm (proc macro) → pmdep; app → bd (build) → both;
/// `shared` gets feature `x` (switching on optional `extra`) only from the build side;
/// a Windows-only, a dev- and an unused optional dependency are never compiled.
fn project() -> Fake {
    let f = fake(
        r#"[dependencies]
rt = "1"
pm = "1"
shared = "1"
opt = { version = "1", optional = true }
[target.'cfg(windows)'.dependencies]
win = "1"
[build-dependencies]
bd = "1"
[dev-dependencies]
dev = "1"
[features]
default = []
with-opt = ["dep:opt", "shared?/y"]
"#,
    );
    krate(&f, "rt", "[dependencies]\nboth = \"1\"\n");
    krate(
        &f,
        "pm",
        "[lib]\nproc-macro = true\n[dependencies]\npmdep = \"1\"\n",
    );
    krate(&f, "pmdep", "");
    krate(
        &f,
        "bd",
        "[dependencies]\nboth = \"1\"\n[dependencies.shared]\nversion = \"1\"\nfeatures = [\"x\"]\n",
    );
    krate(&f, "both", "[dev-dependencies]\nnever-locked = \"1\"\n");
    krate(
        &f,
        "shared",
        "[dependencies.extra]\nversion = \"1\"\noptional = true\n[dependencies.why]\nversion = \"1\"\noptional = true\n[features]\nx = [\"extra\"]\ny = [\"dep:why\"]\n",
    );
    krate(&f, "extra", "");
    krate(&f, "why", "");
    krate(&f, "opt", "");
    lock(
        &f,
        &[
            (
                "app",
                &["rt", "pm", "shared", "opt", "win", "bd", "dev"][..],
            ),
            ("rt", &["both"]),
            ("pm", &["pmdep"]),
            ("pmdep", &[]),
            ("bd", &["both", "shared"]),
            ("both", &[]),
            ("shared", &["extra", "why"]),
            ("extra", &[]),
            ("why", &[]),
            ("opt", &[]),
            ("win", &[]),
            ("dev", &[]),
        ],
    );
    f
}

#[test]
fn scopes_follow_edge_kinds_and_features_follow_sides() {
    let f = project();
    let r = resolve(&request(&f, &[])).unwrap();
    let s = scopes(&r);
    let expected: BTreeMap<String, Scope> = [
        ("app", Scope::Runtime),
        ("rt", Scope::Runtime),
        ("both", Scope::Runtime),
        ("shared", Scope::Runtime),
        ("pm", Scope::ProcMacro),
        ("pmdep", Scope::ProcMacro),
        ("bd", Scope::Build),
        // Switched on by `bd`'s request for `shared/x`: only in the build script's copy.
        ("extra", Scope::Build),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(s, expected);
    assert_eq!(r.root().source, Source::Workspace);
    assert_eq!(r.root().deps.get("bd@1.0.0"), Some(&EdgeKind::Build));
    assert_eq!(r.root().deps.get("rt@1.0.0"), Some(&EdgeKind::Normal));
    let rt = &r.crates["rt@1.0.0"];
    assert_eq!(rt.checksum.as_deref(), Some("ab".repeat(32).as_str()));
    assert_eq!(rt.license.as_deref(), Some("MIT"));
    assert_eq!(rt.description.as_deref(), Some("the rt crate"));
    assert!(r.crates["pm@1.0.0"].proc_macro);
    assert_eq!(r.lock_path, f.ws.join("Cargo.lock").canonicalize().unwrap());
}

#[test]
fn a_feature_switches_on_an_optional_and_a_weak_dependency_feature() {
    let f = project();
    let s = scopes(&resolve(&request(&f, &["with-opt"])).unwrap());
    assert_eq!(s.get("opt"), Some(&Scope::Runtime));
    // `shared?/y`: `shared` is on (not optional here), so `y` and its `why` are too.
    assert_eq!(s.get("why"), Some(&Scope::Runtime));
}

#[test]
fn resolver_1_unifies_host_and_target_features() {
    let f = project();
    let manifest = std::fs::read_to_string(f.ws.join("Cargo.toml"))
        .unwrap()
        .replace("edition = \"2021\"", "edition = \"2018\"");
    write(&f.ws.join("Cargo.toml"), &manifest);
    // Resolver 1 also takes features from dev- and other platforms' dependencies, so it
    // reads their manifests (resolver 2 never does: the other tests lack them).
    krate(&f, "dev", "");
    krate(&f, "win", "");
    let s = scopes(&resolve(&request(&f, &[])).unwrap());
    assert!(!s.contains_key("dev") && !s.contains_key("win"), "{s:?}");
    assert_eq!(
        s.get("extra"),
        Some(&Scope::Runtime),
        "resolver 1 compiles one `shared` with the build side's features"
    );
}

#[test]
fn a_dependency_the_lock_lacks_is_a_stale_lock() {
    let f = project();
    let manifest = std::fs::read_to_string(f.ws.join("Cargo.toml"))
        .unwrap()
        .replace("rt = \"1\"\n", "rt = \"1\"\nnew = \"1\"\n");
    write(&f.ws.join("Cargo.toml"), &manifest);
    let e = resolve(&request(&f, &[])).unwrap_err();
    let e = format!("{e}\n  fix: {}", kiln_core::Hint::hint(&e).unwrap());
    assert!(
        e.contains("Cargo.lock is stale") && e.contains("`new`") && e.contains("cargo update"),
        "{e}"
    );
}

#[test]
fn a_crate_missing_from_the_verified_sources_is_named() {
    let f = project();
    std::fs::remove_dir_all(f.home.join("pmdep-1.0.0")).unwrap();
    let e = resolve(&request(&f, &[])).unwrap_err();
    let e = format!("{e}\n  fix: {}", kiln_core::Hint::hint(&e).unwrap());
    assert!(
        e.contains("pmdep@1.0.0") && e.contains("verified") && e.contains("kiln build"),
        "{e}"
    );
}

/// Outside kiln's builds (`bench sbom`), the manifests come from what cargo unpacked in a
/// cargo home's `registry/src/<index>/`.
#[test]
fn a_cargo_home_is_read_from_registry_src() {
    let f = project();
    let home = f.home.with_file_name("cargo-home");
    let src = home.join("registry/src/index.crates.io-0000");
    std::fs::create_dir_all(src.parent().unwrap()).unwrap();
    std::fs::rename(&f.home, &src).unwrap();
    let mut req = request(&f, &[]);
    req.sources = CrateSources::CargoHome(home.clone());
    let r = resolve(&req).unwrap();
    assert_eq!(r.crates["rt@1.0.0"].scope, Scope::Runtime);
    std::fs::remove_dir_all(src.join("pmdep-1.0.0")).unwrap();
    let e = resolve(&req).unwrap_err();
    let e = format!("{e}\n  fix: {}", kiln_core::Hint::hint(&e).unwrap());
    assert!(
        e.contains("pmdep@1.0.0") && e.contains("registry/src") && e.contains("cargo xtask fetch"),
        "{e}"
    );
}

#[test]
fn an_unknown_package_is_named() {
    let f = project();
    let mut req = request(&f, &[]);
    req.package = "nope".into();
    let e = resolve(&req).unwrap_err().to_string();
    assert!(e.contains("`nope`"), "{e}");
}

#[test]
fn a_path_patch_replaces_the_registry_crate() {
    let f = fake("[dependencies]\nrt = \"1\"\n[patch.crates-io]\nrt = { path = \"vendor/rt\" }\n");
    write(
        &f.ws.join("vendor/rt/Cargo.toml"),
        "[package]\nname = \"rt\"\nversion = \"1.0.0\"\nlicense = \"0BSD\"\n[dependencies]\nboth = \"1\"\n",
    );
    krate(&f, "both", "");
    let text = format!(
        "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\"rt\"]\n\n\
         [[package]]\nname = \"both\"\nversion = \"1.0.0\"\nsource = \"{CRATES_IO}\"\nchecksum = \"{}\"\n\n\
         [[package]]\nname = \"rt\"\nversion = \"1.0.0\"\ndependencies = [\"both\"]\n",
        "cd".repeat(32)
    );
    write(&f.ws.join("Cargo.lock"), &text);
    let r = resolve(&request(&f, &[])).unwrap();
    let rt = &r.crates["rt@1.0.0"];
    assert_eq!(
        (rt.source.clone(), rt.license.as_deref()),
        (Source::Path, Some("0BSD"))
    );
    assert_eq!(rt.checksum, None);
    assert_eq!(r.crates["both@1.0.0"].scope, Scope::Runtime);
}
