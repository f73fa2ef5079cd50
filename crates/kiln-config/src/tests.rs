use super::*;

fn project(toml: &str) -> (tempfile::TempDir, Result<Config>) {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("greeting.txt"), "hi\n").unwrap();
    std::fs::write(d.path().join("Cargo.toml"), "[package]\n").unwrap();
    std::fs::write(d.path().join(FILE_NAME), toml).unwrap();
    let r = Config::load(d.path());
    (d, r)
}

const OK: &str = r#"
[project]
source_date_epoch = 1700000000

[[image]]
name = "hello"
package = "hello"
binaries = ["hello"]
entrypoint = ["/usr/local/bin/hello"]
env = { B = "2", A = "1" }
labels = { "org.example" = "x" }
exposed_ports = ["8080/tcp", "53/udp"]

[[image.files]]
source = "greeting.txt"
path = "/etc/greeting.txt"
mode = 0o600
"#;

#[test]
fn parses_a_complete_file() {
    let (_d, c) = project(OK);
    let c = c.unwrap();
    assert_eq!(c.project.source_date_epoch, Some(1700000000));
    let img = c.image("hello").unwrap();
    assert_eq!(img.bin_dir, "/usr/local/bin");
    assert_eq!(img.files[0].mode, Some(0o600));
    assert_eq!(img.base, Base::Scratch);
    assert_eq!(img.env.keys().collect::<Vec<_>>(), ["A", "B"]);
    assert_eq!(img.tag, None, "the build fills in the package version");
    assert_eq!(c.digest, Digest::of(OK.as_bytes()));
}

fn err(toml: &str) -> String {
    let (_d, c) = project(toml);
    render(&c.unwrap_err())
}

/// The message and, on its own line, the fix: what the CLI prints.
fn render(e: &ConfigError) -> String {
    match kiln_core::Hint::hint(e) {
        Some(fix) => format!("{e}\n  fix: {fix}"),
        None => e.to_string(),
    }
}

#[test]
fn unknown_key_names_key_line_and_file() {
    let e = err(&OK.replace("binaries =", "colour = \"red\"\nbinaries ="));
    assert!(e.contains("kiln.toml"), "{e}");
    assert!(e.contains("colour"), "{e}");
    assert!(e.contains("line 8"), "{e}");
}

#[test]
fn wrong_type_is_an_error() {
    let e = err(&OK.replace("binaries = [\"hello\"]", "binaries = \"hello\""));
    assert!(
        e.contains("line 8") && e.contains("image[0].binaries"),
        "{e}"
    );
}

#[test]
fn malformed_toml_is_an_error() {
    let e = err("[[image]\nname=");
    assert!(e.contains("kiln.toml") && e.contains("line 1"), "{e}");
}

#[test]
fn base_forms() {
    let e = err(&OK.replace("entrypoint", "base = \"ubuntu\"\nentrypoint"));
    assert!(e.contains("scratch"), "{e}");
    let e = err(&OK.replace(
        "entrypoint",
        "base = { layout = \"base\", digest = \"sha256:nothex\" }\nentrypoint",
    ));
    assert!(e.contains("not a digest"), "{e}");
    let e = err(&OK.replace(
        "entrypoint",
        &format!(
            "base = {{ layout = \"nowhere\", digest = \"{}\" }}\nentrypoint",
            Digest::of(b"")
        ),
    ));
    assert!(e.contains("base.layout") && e.contains("index.json"), "{e}");
}

#[test]
fn validation_errors_name_the_field() {
    for (from, to, field) in [
        ("name = \"hello\"", "name = \"Hello!\"", "image[0].name"),
        (
            "path = \"/etc/greeting.txt\"",
            "path = \"etc/greeting.txt\"",
            "files[0].path",
        ),
        (
            "path = \"/etc/greeting.txt\"",
            "path = \"/etc/../x\"",
            "files[0].path",
        ),
        ("mode = 0o600", "mode = 0o17777", "files[0].mode"),
        (
            "source = \"greeting.txt\"",
            "source = \"missing.txt\"",
            "files[0].source",
        ),
        (
            "source = \"greeting.txt\"",
            "source = \"/etc/passwd\"",
            "files[0].source",
        ),
        ("\"53/udp\"", "\"53/icmp\"", "exposed_ports"),
        ("binaries = [\"hello\"]", "binaries = [\"a/b\"]", "binaries"),
        (
            "[[image]]\nname",
            "platform = \"x\"\n[[image]]\nname",
            "unknown field",
        ),
    ] {
        assert!(OK.contains(from), "{from}");
        let e = err(&OK.replace(from, to));
        assert!(e.contains(field), "{to}: {e}");
    }
}

#[test]
fn duplicate_image_names_rejected() {
    let two = format!("{OK}\n[[image]]\nname = \"hello\"\npackage = \"x\"\nbinaries = [\"x\"]\n");
    assert!(err(&two).contains("defined twice"));
}

#[cfg(unix)]
#[test]
fn symlink_escaping_the_project_is_rejected() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "x").unwrap();
    let d = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), d.path().join("greeting.txt"))
        .unwrap();
    std::fs::write(d.path().join("Cargo.toml"), "[package]\n").unwrap();
    std::fs::write(d.path().join(FILE_NAME), OK).unwrap();
    let e = Config::load(d.path()).unwrap_err().to_string();
    assert!(e.contains("outside the project"), "{e}");
}

#[test]
fn missing_file_says_how_to_fix() {
    let d = tempfile::tempdir().unwrap();
    let e = Config::load(d.path()).unwrap_err();
    // The I/O error is the source, not repeated in the message.
    assert!(!e.to_string().contains("No such file"), "{e}");
    assert!(std::error::Error::source(&e).is_some());
    let e = render(&e);
    assert!(e.contains("kiln.toml") && e.contains("-C DIR"), "{e}");
}

#[test]
fn lineage_table_is_optional_and_strict() {
    let (_d, c) = project(OK);
    assert_eq!(c.unwrap().lineage, Lineage::default());
    let with = format!(
        "{OK}\n[lineage]\nsource = \"https://github.com/o/r\"\ntransform = \"release\"\npolicy_version = \"2\"\n"
    );
    let (_d, c) = project(&with);
    let l = c.unwrap().lineage;
    assert_eq!(
        (
            l.source.as_deref(),
            l.transform.as_deref(),
            l.policy_version.as_deref()
        ),
        (Some("https://github.com/o/r"), Some("release"), Some("2"))
    );
    let (_d, c) = project(&format!("{OK}\n[lineage]\nsorce = \"x\"\n"));
    let e = c.unwrap_err().to_string();
    assert!(e.contains("sorce") && e.contains("line"), "{e}");
}

#[test]
fn binaries_may_be_omitted() {
    // kiln-build fills in the package's [[bin]] targets.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiln.toml");
    std::fs::write(dir.path().join("Cargo.toml"), "[package]\n").unwrap();
    let text = "[[image]]\nname = \"app\"\npackage = \"app\"\n";
    let c = Config::parse(&path, text.as_bytes()).unwrap();
    assert!(c.images[0].binaries.is_empty());
}

/// Everything a build would trip over after compiling is found here, before any work,
/// and the error names the file, the key, its line and the fix.
#[test]
fn late_errors_are_found_by_validation_with_their_line() {
    let two_files = OK.replace(
        "mode = 0o600\n",
        "mode = 0o600\n\n[[image.files]]\nsource = \"greeting.txt\"\npath = \"/etc/greeting.txt\"\n",
    );
    let cases: Vec<(String, &str, usize, &str)> = vec![
        (
            OK.replace("name = \"hello\"", "name = \"..\""),
            "image[0].name",
            6,
            "`..`",
        ),
        (
            OK.replace("name = \"hello\"", "name = \".\""),
            "image[0].name",
            6,
            "`.`",
        ),
        (
            OK.replace("name = \"hello\"", "name = \".kiln-old-1-x\""),
            "image[0].name",
            6,
            "not a valid image name",
        ),
        (
            OK.replace("package =", "manifest = \"/etc/hostname\"\npackage ="),
            "image[0].manifest",
            7,
            "absolute",
        ),
        (
            OK.replace(
                "package =",
                "manifest = \"../elsewhere/Cargo.toml\"\npackage =",
            ),
            "image[0].manifest",
            7,
            "elsewhere",
        ),
        (
            OK.replace(
                "binaries = [\"hello\"]",
                "binaries = [\"hello\", \"hello\"]",
            ),
            "image[0].binaries[1]",
            8,
            "listed twice",
        ),
        (
            OK.replace(
                "binaries = [\"hello\"]",
                "binaries = [\n  \"hello\",\n  \"../../x\",\n]",
            ),
            "image[0].binaries[1]",
            10,
            "not a binary target name",
        ),
        (
            two_files,
            "image[0].files[1].path",
            21,
            "also the path of `image[0].files[0].path`",
        ),
        (
            OK.replace(
                "path = \"/etc/greeting.txt\"",
                "path = \"/usr/local/bin/hello\"",
            ),
            "image[0].files[0].path",
            16,
            "image[0].binaries[0]",
        ),
        (
            OK.replace(
                "path = \"/etc/greeting.txt\"",
                "path = \"/usr/local/bin/hello/x\"",
            ),
            "image[0].files[0].path",
            16,
            "to be a directory",
        ),
        (
            OK.replace("path = \"/etc/greeting.txt\"", "path = \"/usr/local\""),
            "image[0].files[0].path",
            16,
            "needs it to be a directory",
        ),
        (
            OK.replace("package = \"hello\"", "package = \"hel lo\""),
            "image[0].package",
            7,
            "package name",
        ),
        (
            OK.replace("package =", "features = [\"a,b\"]\npackage ="),
            "image[0].features[0]",
            7,
            "feature name",
        ),
    ];
    for (toml, field, line, what) in cases {
        let e = err(&toml);
        for want in [
            "kiln.toml",
            &format!("line {line}:"),
            &format!("key `{field}`"),
            what,
            "fix:",
        ] {
            assert!(e.contains(want), "expected `{want}` in:\n{e}");
        }
    }
    // The manifest must exist (the default, Cargo.toml, too).
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("greeting.txt"), "hi\n").unwrap();
    std::fs::write(d.path().join(FILE_NAME), OK).unwrap();
    let e = Config::load(d.path()).unwrap_err().to_string();
    assert!(
        e.contains("image[0].manifest") && e.contains("Cargo.toml"),
        "{e}"
    );
}

/// `OK` with a base layout (its `index.json` made) pinned by `D1`, `base_extra` added to
/// the base table (`, ref = "..."`) and `tail` appended (a `[policy]` table).
fn with_base(base_extra: &str, tail: &str) -> (tempfile::TempDir, Result<Config>) {
    let toml = format!(
        "{}{tail}",
        OK.replace(
            "entrypoint",
            &format!("base = {{ layout = \"base\", digest = \"{D1}\"{base_extra} }}\nentrypoint"),
        )
    );
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("base")).unwrap();
    std::fs::write(d.path().join("base/index.json"), "{}").unwrap();
    std::fs::write(d.path().join("greeting.txt"), "hi\n").unwrap();
    std::fs::write(d.path().join("Cargo.toml"), "[package]\n").unwrap();
    std::fs::write(d.path().join(FILE_NAME), toml).unwrap();
    let r = Config::load(d.path());
    (d, r)
}

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn policy(entries: &[&str]) -> String {
    let list: Vec<String> = entries.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "\n[policy]\nbase_allowlist = [\n  {},\n]\n",
        list.join(",\n  ")
    )
}

#[track_caller]
fn assert_refused(r: (tempfile::TempDir, Result<Config>), field: &str, wants: &[&str]) {
    let e = render(&r.1.unwrap_err());
    for want in [&format!("key `{field}`"), "kiln.toml", "line ", "fix:"]
        .into_iter()
        .chain(wants.iter().copied())
    {
        assert!(e.contains(want), "expected `{want}` in:\n{e}");
    }
}

#[test]
fn base_ref_and_allowlist_that_admit_the_base_load() {
    // A tag, with the pinned digest filled in for the check; the prefix entry admits it.
    let (_d, c) = with_base(
        ", ref = \"registry.example.com/approved/base:1.2\"",
        &policy(&[
            &format!("ghcr.io/acme/base@{D2}"),
            "registry.example.com/approved/*",
        ]),
    );
    let c = c.unwrap();
    assert_eq!(
        c.policy.base_allowlist,
        [
            format!("ghcr.io/acme/base@{D2}"),
            "registry.example.com/approved/*".to_string()
        ]
    );
    assert!(c.policy.allowlist().is_some());
    let Base::Layout { reference, .. } = &c.images[0].base else {
        panic!("{:?}", c.images[0].base)
    };
    let r = reference.as_ref().unwrap();
    assert_eq!(r.to_string(), "registry.example.com/approved/base:1.2");
    assert_eq!(
        c.images[0].base.pinned_reference().unwrap().to_string(),
        format!("registry.example.com/approved/base:1.2@{D1}")
    );
    // An exact entry, and a ref carrying the (same) digest.
    let (_d, c) = with_base(
        &format!(", ref = \"ghcr.io/acme/base:3@{D1}\""),
        &policy(&[&format!("ghcr.io/acme/base@{D1}")]),
    );
    c.unwrap();
    // No allowlist: no ref needed, and a ref is only checked for `latest` and its digest.
    let (_d, c) = with_base("", "");
    let c = c.unwrap();
    assert_eq!(c.policy, PolicyConfig::default());
    assert!(c.policy.allowlist().is_none());
    assert_eq!(c.images[0].base.pinned_reference(), None);
    let (_d, c) = with_base(", ref = \"debian:12\"", "");
    c.unwrap();
    // Scratch needs no ref even with an allowlist.
    let (_d, c) = project(&format!(
        "{OK}{}",
        policy(&["registry.example.com/approved/*"])
    ));
    c.unwrap();
}

#[test]
fn a_malformed_allowlist_entry_is_refused() {
    assert_refused(
        with_base(
            ", ref = \"registry.example.com/approved/base:1\"",
            &policy(&["registry.example.com/approved/*", "debian:12"]),
        ),
        "policy.base_allowlist[1]",
        &["`debian:12` names no digest", "registry/org/*"],
    );
    assert_refused(
        project(&format!("{OK}{}", policy(&["Bad Name/*"]))),
        "policy.base_allowlist[0]",
        &["Bad Name"],
    );
    // Strict like the rest: unknown keys in [policy] are errors naming key and line.
    let e = err(&format!("{OK}\n[policy]\nbase_alowlist = []\n"));
    assert!(
        e.contains("policy.base_alowlist") && e.contains("line 20"),
        "{e}"
    );
}

#[test]
fn a_base_outside_the_allowlist_is_refused() {
    for (reference, entries) in [
        (
            "quay.io/other/base:1".to_string(),
            vec!["registry.example.com/approved/*".to_string()],
        ),
        // Right repository, but the entry pins another digest than the layout's.
        (
            "ghcr.io/acme/base:1".to_string(),
            vec![format!("ghcr.io/acme/base@{D2}")],
        ),
    ] {
        let entries: Vec<&str> = entries.iter().map(String::as_str).collect();
        assert_refused(
            with_base(&format!(", ref = \"{reference}\""), &policy(&entries)),
            "image[0].base.ref",
            &[
                &format!("`{reference}@{D1}` is not in the base-image allowlist"),
                "policy.base_allowlist",
            ],
        );
    }
}

#[test]
fn a_base_without_ref_is_refused_when_an_allowlist_is_set() {
    assert_refused(
        with_base("", &policy(&["registry.example.com/approved/*"])),
        "image[0].base",
        &["policy.base_allowlist is set", "no `ref`", "add ref ="],
    );
}

#[test]
fn a_latest_or_untagged_ref_is_refused_with_or_without_an_allowlist() {
    for (reference, why) in [
        ("registry.example.com/approved/base:latest", "tag `latest`"),
        ("registry.example.com/approved/base", "no tag and no digest"),
    ] {
        for tail in ["".to_string(), policy(&["registry.example.com/approved/*"])] {
            assert_refused(
                with_base(&format!(", ref = \"{reference}\""), &tail),
                "image[0].base.ref",
                &[why, reference],
            );
        }
    }
    // `latest` with a digest is still `latest`.
    assert_refused(
        with_base(&format!(", ref = \"ghcr.io/acme/base:latest@{D1}\""), ""),
        "image[0].base.ref",
        &["tag `latest`"],
    );
    // A malformed ref is a parse error naming the base and `ref`.
    let (_d, c) = with_base(", ref = \"Not A Ref\"", "");
    let e = c.unwrap_err().to_string();
    assert!(
        e.contains("kiln.toml") && e.contains("image[0].base") && e.contains("ref:"),
        "{e}"
    );
}

#[test]
fn a_ref_whose_digest_is_not_the_pinned_one_is_refused() {
    assert_refused(
        with_base(&format!(", ref = \"ghcr.io/acme/base:1@{D2}\""), ""),
        "image[0].base.ref",
        &[&format!("names {D2}, but base.digest pins {D1}")],
    );
}

#[test]
fn the_image_tag_latest_is_refused() {
    assert_refused(
        project(&OK.replace("package =", "tag = \"latest\"\npackage =")),
        "image[0].tag",
        &[
            "`latest`",
            "set tag to a version, or omit it to use the package version",
        ],
    );
    let (_d, c) = project(&OK.replace("package =", "tag = \"1.0.0\"\npackage ="));
    assert_eq!(c.unwrap().images[0].tag.as_deref(), Some("1.0.0"));
}

#[test]
fn compliance_table_is_strict_and_its_files_must_exist() {
    let (_d, c) = project(&format!(
        "{OK}\n[compliance]\npack = true\nscans = [\"greeting.txt\"]\ncatalog = \"greeting.txt\"\n"
    ));
    let c = c.unwrap();
    assert!(c.compliance.pack);
    assert_eq!(
        c.compliance.catalog.as_deref(),
        Some(Path::new("greeting.txt"))
    );
    let e = err(&format!(
        "{OK}\n[compliance]\npack = true\nscans = [\"missing.sarif\"]\n"
    ));
    assert!(
        e.contains("compliance.scans[0]")
            && e.contains("missing.sarif is not a file in the project"),
        "{e}"
    );
    let e = err(&format!("{OK}\n[compliance]\ncatalog = \"greeting.txt\"\n"));
    assert!(
        e.contains("compliance.pack") && e.contains("set `pack = true`"),
        "{e}"
    );
    let e = err(&format!(
        "{OK}\n[compliance]\npack = true\ncatlog = \"x\"\n"
    ));
    assert!(e.contains("catlog"), "{e}");
}
