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
