use super::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf()
}

#[test]
fn the_repository_corpus_is_valid_and_covers_the_brief() {
    let c = Corpus::load(&repo().join(CORPUS_FILE)).unwrap();
    assert!(c.projects.len() >= 8, "{}", c.projects.len());
    let covers = c
        .projects
        .iter()
        .flat_map(|p| p.covers.iter())
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    for need in [
        "workspace",
        "build script",
        "cc",
        "jemalloc",
        "proc-macros",
        "optional features",
        "rust-version 1.9",
    ] {
        assert!(covers.contains(need), "nothing covers `{need}`: {covers}");
    }
    assert!(c.projects.iter().any(|p| p.workspace));
    // The projects the test suite runs exist.
    assert_eq!(
        c.select(&["hexyl".into(), "ripgrep".into()]).unwrap().len(),
        2
    );
    let e = c.select(&["nope".into()]).unwrap_err().to_string();
    assert!(
        e.contains("no project `nope`") && e.contains("hexyl"),
        "{e}"
    );
}

#[test]
fn generated_kiln_toml_is_five_lines_and_valid() {
    let c = Corpus::load(&repo().join(CORPUS_FILE)).unwrap();
    for e in &c.projects {
        let t = e.kiln_toml();
        let extra = usize::from(e.workspace) + usize::from(!e.features.is_empty());
        assert_eq!(t.lines().count(), 5 + extra, "{t}");
        let v: toml::Table = t.parse().unwrap();
        assert_eq!(v["image"][0]["package"].as_str(), Some(e.name.as_str()));
    }
}

#[test]
fn bad_entries_name_the_field() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("corpus.toml");
    for (text, want) in [
        (
            "[[project]]\nname = \"a\"\nversion = \"1.0.0\"\nsha256 = \"abc\"\n",
            "project[0].sha256",
        ),
        (
            "[[project]]\nname = \"A b\"\nversion = \"1.0.0\"\nsha256 = \"abc\"\n",
            "project[0].name",
        ),
        (
            "[[project]]\nname = \"a\"\nversion = \"1.0.0\"\nsha256 = \"abc\"\ncolour = 1\n",
            "colour",
        ),
    ] {
        std::fs::write(&p, text).unwrap();
        let e = Corpus::load(&p).unwrap_err().to_string();
        assert!(e.contains(want) && e.contains("corpus.toml"), "{e}");
    }
}

fn crate_file(dir: &Path, entries: &[(&str, &[u8])]) -> PathBuf {
    let path = dir.join("x.crate");
    let f = std::fs::File::create(&path).unwrap();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        f,
        flate2::Compression::fast(),
    ));
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // `append_data` refuses `..`; write the name raw like a hostile archive would.
        let raw = h.as_old_mut();
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
    path
}

fn entry() -> Entry {
    Entry {
        name: "app".into(),
        version: "1.0.0".into(),
        sha256: "0".repeat(64),
        features: vec![],
        workspace: false,
        covers: vec![],
    }
}

#[test]
fn unpack_takes_the_package_directory_and_refuses_escapes() {
    let d = tempfile::tempdir().unwrap();
    let ok = crate_file(
        d.path(),
        &[
            ("app-1.0.0/Cargo.toml", b"[package]\n"),
            ("app-1.0.0/src/main.rs", b"fn main() {}\n"),
        ],
    );
    let dest = d.path().join("out");
    unpack(&ok, &entry(), &dest).unwrap();
    assert!(dest.join("src/main.rs").is_file());
    for bad in ["other-1.0.0/x", "app-1.0.0/../../escape"] {
        let f = crate_file(d.path(), &[(bad, b"x")]);
        let e = unpack(&f, &entry(), &d.path().join("bad"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(bad.trim_start_matches("app-1.0.0/")) || e.contains("outside"),
            "{e}"
        );
        assert!(!d.path().join("escape").exists());
    }
}

#[test]
fn a_crate_whose_digest_differs_from_the_pin_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let f = crate_file(d.path(), &[("app-1.0.0/Cargo.toml", b"[package]\n")]);
    let e = verify(&f, &entry(), Path::new("corpus.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("does not match the pin") && e.contains("app@1.0.0"),
        "{e}"
    );
    let mut good = entry();
    good.sha256 = Digest::of_file(&f).unwrap().hex().to_string();
    verify(&f, &good, Path::new("corpus.toml")).unwrap();
}

#[test]
fn repro_reports_become_verdicts_and_causes() {
    let mut r = ProjectReport {
        name: "app".into(),
        version: "1".into(),
        covers: vec![],
        verdict: String::new(),
        artifacts_identical: 0,
        artifacts_total: 0,
        targets_reproducible: 0,
        targets_total: 0,
        causes: vec![],
        error: None,
        plain_build_seconds: None,
        kiln_build_seconds: None,
        build_overhead: None,
        repro_seconds: None,
        project_dir: String::new(),
        repro_dir: String::new(),
    };
    let ok = serde_json::json!({
        "ratio": {"artifacts": {"numerator": 9, "denominator": 9}, "targets": {"numerator": 1, "denominator": 1}},
        "targets": [{"status": "reproducible", "causes": []}]
    });
    read_repro(&ok, &mut r);
    assert_eq!(r.verdict, "reproducible");
    let bad = serde_json::json!({
        "ratio": {"artifacts": {"numerator": 7, "denominator": 9}, "targets": {"numerator": 0, "denominator": 1}},
        "targets": [{"status": "unreproducible", "causes": [{"cause": "timestamp", "exposed_by": ["clock"]}]}]
    });
    read_repro(&bad, &mut r);
    assert_eq!(r.verdict, "unreproducible");
    assert_eq!(r.causes, ["timestamp (exposed by clock)"]);
    let failed = serde_json::json!({
        "ratio": {"artifacts": {"numerator": 0, "denominator": 0}, "targets": {"numerator": 0, "denominator": 1}},
        "targets": [{"status": "failed_to_build", "error": ["error: linking failed"], "causes": []}]
    });
    read_repro(&failed, &mut r);
    assert_eq!(r.verdict, "failed");
    assert_eq!(r.error.as_deref(), Some("error: linking failed"));
}

/// `obtain` against the real crates.io: the pinned bytes are kept; a pin the registry's
/// bytes do not match is refused naming the crate and the corpus, and nothing is kept.
#[test]
fn obtain_downloads_the_pinned_crate_and_refuses_other_bytes() {
    let work = tempfile::tempdir().unwrap();
    let corpus = repo().join(CORPUS_FILE);
    // testdata/hello's one dependency, as its Cargo.lock pins it.
    let mut entry = Entry {
        name: "itoa".into(),
        version: "1.0.19".into(),
        sha256: "3bd1574e617a9a6c1f8f8181bd7e841e1f20e4277607ef28945765188d6284d4".into(),
        features: vec![],
        workspace: false,
        covers: vec![],
    };
    let kept = obtain(&entry, &corpus, work.path()).unwrap();
    assert_eq!(kept, work.path().join("crates/itoa-1.0.19.crate"));
    assert_eq!(Digest::of_file(&kept).unwrap().hex(), entry.sha256);
    // Kept: found again without the network (a pin it no longer matches is re-fetched).
    assert_eq!(obtain(&entry, &corpus, work.path()).unwrap(), kept);

    let other = tempfile::tempdir().unwrap();
    entry.sha256 = "00".repeat(32);
    let e = obtain(&entry, &corpus, other.path()).unwrap_err();
    assert!(matches!(e, CorpusError::Checksum { .. }), "{e}");
    let msg = e.to_string();
    for want in [
        "itoa@1.0.19",
        "corpus.toml",
        "https://static.crates.io/crates/itoa/",
    ] {
        assert!(msg.contains(want), "{want}: {msg}");
    }
    assert!(
        !other.path().join("crates/itoa-1.0.19.crate").exists(),
        "bytes that do not match the pin are never kept"
    );
}
