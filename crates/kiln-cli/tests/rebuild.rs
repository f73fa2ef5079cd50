//! End-to-end: `kiln rebuild PROVENANCE`. A signed build inside the provided toolchain root,
//! from a git checkout, is rebuilt from its provenance alone (the repository cloned at the
//! recorded commit, a fresh build root, no cache): every subject is reproduced. A
//! provenance with one crate checksum or the toolchain root's digest altered is refused
//! naming what differs, before anything is built; one claiming another image digest is
//! rebuilt and reported as not reproduced.

use std::path::Path;

use crate::support::*;

/// The statement inside a DSSE envelope.
fn statement(envelope: &Path) -> serde_json::Value {
    let env: serde_json::Value = serde_json::from_slice(&std::fs::read(envelope).unwrap()).unwrap();
    serde_json::from_slice(&base64_decode::decode(env["payload"].as_str().unwrap())).unwrap()
}

fn rebuild(provenance: &Path, work: &Path) -> std::process::Output {
    with_toolroot(without_ambient(kiln()), None)
        .arg("rebuild")
        .arg(provenance)
        .arg("--work")
        .arg(work)
        .output()
        .unwrap()
}

#[test]
fn a_release_is_rebuilt_from_its_provenance_and_an_altered_one_names_what_differs() {
    let p = Project::provided_hello();
    let dir = p.path();
    std::fs::write(dir.join(".gitignore"), "target/\n").unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "release"]);
    git(
        dir,
        &["remote", "add", "origin", &dir.display().to_string()],
    );
    let keys = tempfile::tempdir().unwrap();
    keygen(keys.path());
    run_ok(
        with_toolroot(without_ambient(p.kiln()), None)
            .args(["build", "--key"])
            .arg(keys.path().join("kiln.key")),
    );
    let envelope = p.out().join("hello/provenance.intoto.json");

    let work = tempfile::tempdir().unwrap();
    let o = rebuild(&envelope, work.path());
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        err.contains("cloning"),
        "the source came from the repository: {err}"
    );
    assert!(out.contains("reproduced: 4/4 subjects"), "{out}");

    // Altered inputs: refused before building, each named.
    let stmt = statement(&envelope);
    let altered = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut s = stmt.clone();
        edit(&mut s);
        let f = work.path().join("altered.json");
        std::fs::write(&f, serde_json::to_vec(&s).unwrap()).unwrap();
        let o = rebuild(&f, &work.path().join("again"));
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let deps = |s: &mut serde_json::Value| -> Vec<serde_json::Value> {
        s["predicate"]["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .unwrap()
            .clone()
    };
    let set_dep = |s: &mut serde_json::Value, pick: &dyn Fn(&serde_json::Value) -> bool| {
        let mut d = deps(s);
        let i = d.iter().position(pick).expect("the dependency");
        d[i]["digest"]["sha256"] = serde_json::Value::String("ab".repeat(32));
        s["predicate"]["buildDefinition"]["resolvedDependencies"] = serde_json::Value::Array(d);
    };
    let (ok, _, err) = altered(&|s| {
        set_dep(s, &|d| {
            d["name"].as_str().is_some_and(|n| n.starts_with("itoa@"))
        })
    });
    assert!(
        !ok && err.contains("crate itoa@") && !err.contains("compiling"),
        "{err}"
    );
    let (ok, _, err) = altered(&|s| set_dep(s, &|d| d["name"] == "toolchain-root"));
    assert!(!ok && err.contains("toolchain-root: provenance"), "{err}");

    // A subject the inputs do not give: rebuilt, and reported.
    let (ok, out, err) = altered(&|s| {
        s["subject"][0]["digest"]["sha256"] = serde_json::Value::String("cd".repeat(32));
    });
    assert!(!ok, "{out}\n{err}");
    assert!(
        out.contains("not reproduced: 3/4") && out.contains("DIFFERS"),
        "{out}"
    );
}
