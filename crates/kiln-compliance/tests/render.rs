//! The PDF report, read by a real PDF reader: poppler's `pdftoppm` renders its first page
//! and `pdftotext` extracts its text (Debian `poppler-utils`, which `cargo xtask test`
//! installs).
//!
//! `KILN_RENDER_SAVE=<dir>` keeps the PDF, the HTML and the page-1 PNG there for a look.

#![allow(clippy::disallowed_methods)] // tests start real tools on purpose

use std::path::Path;
use std::process::Command;

use kiln_compliance::predicate::{AssertionResult, FileRef, PackRef, Tally};
use kiln_compliance::render::{self, ReportHeader};
use kiln_compliance::{ControlResult, ControlsPredicate, Verdict};
use kiln_core::Digest;

fn d(s: &str) -> Digest {
    Digest::of(s.as_bytes())
}

fn sample() -> ControlsPredicate {
    let names = [
        "SBOM present and valid CycloneDX 1.6",
        "Provenance is SLSA v1 and signed",
        "No critical or high vulnerabilities without a VEX statement",
        "Build is reproducible (two builds, same digest)",
        "Toolchain is pinned by a lock file",
        "Image pushed with referrers attached",
    ];
    let controls: Vec<ControlResult> = (0..30)
        .map(|i| {
            let fail = i % 4 == 2;
            ControlResult {
                id: format!("KC-{:02}", i + 1),
                name: names[i % names.len()].to_string(),
                result: if fail { Verdict::Fail } else { Verdict::Pass },
                evidence: vec![
                    FileRef {
                        path: "sbom.cdx.json".into(),
                        sha256: d(&format!("sbom{i}")),
                    },
                    FileRef {
                        path: format!("scans/grype-{i}.sarif"),
                        sha256: d(&format!("scan{i}")),
                    },
                ],
                assertions: vec![AssertionResult {
                    kind: "sarif_no_levels".into(),
                    result: if fail { Verdict::Fail } else { Verdict::Pass },
                    detail: "checked".into(),
                }],
                failures: if fail {
                    vec![
                        format!(
                            "scans/grype-{i}.sarif: 2 results at level \u{201c}error\u{201d}: \
                             CVE-2024-3094 in xz-utils 5.6.0 (no VEX statement covers it), \
                             CVE-2023-4863 in libwebp 1.3.1 \u{2014} fixed in 1.3.2"
                        ),
                        "evidence glob `repro/*.json` matched nothing".to_string(),
                    ]
                } else {
                    vec![]
                },
            }
        })
        .collect();
    let failed = controls
        .iter()
        .filter(|c| c.result == Verdict::Fail)
        .count();
    ControlsPredicate {
        catalog: FileRef {
            path: "compliance/catalog.toml".into(),
            sha256: d("catalog"),
        },
        pack: PackRef {
            manifest_sha256: d("manifest"),
            image: "hello".into(),
            digest: d("image"),
        },
        summary: Tally {
            total: controls.len(),
            passed: controls.len() - failed,
            failed,
        },
        controls,
    }
}

fn tool(name: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` is not installed (Debian package poppler-utils): run the tests with \
         `cargo xtask test`, which installs it"
    );
    Command::new(name)
}

fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(
        png.len() > 24 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG"
    );
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn a_pdf_reader_renders_the_report_and_finds_every_control() {
    let pred = sample();
    let digest = pred.pack.digest.to_string();
    let header = ReportHeader {
        subject: "hello:0.1.0",
        digest: &digest,
        signer: Some("key 5f2c9a0d1e7b"),
        statement_sha256: Some(
            "sha256:9b2f8c1d0e3a4b5c6d7e8f90112233445566778899aabbccddeeff0011223344",
        ),
    };
    let pdf = render::pdf(&header, &pred);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("controls.pdf");
    std::fs::write(&file, &pdf).unwrap();

    // Page 1 as a PNG, at 60 dpi.
    let prefix = dir.path().join("page");
    let out = tool("pdftoppm")
        .args(["-png", "-r", "60", "-f", "1", "-l", "1"])
        .arg(&file)
        .arg(&prefix)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pdftoppm: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // pdftoppm pads the page number to the page count's width: page-1.png, page-01.png.
    let pngs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    assert_eq!(pngs.len(), 1, "{pngs:?}");
    let png = std::fs::read(&pngs[0]).unwrap();
    // A4 at 60 dpi is 496 x 702 pixels; a page of text and coloured cells is not tiny.
    assert_eq!(png_size(&png), (496, 702));
    assert!(png.len() > 10_000, "{} bytes", png.len());
    assert!(
        out.stderr.is_empty(),
        "pdftoppm complained: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every control and its verdict, as a reader extracts the text.
    let out = tool("pdftotext")
        .arg("-layout")
        .arg(&file)
        .arg("-")
        .output()
        .unwrap();
    assert!(out.status.success(), "pdftotext: {}", out.status);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Control attestation \u{2014} hello:0.1.0"),
        "{text}"
    );
    assert!(text.contains("30 controls: 23 passed, 7 failed"), "{text}");
    for c in &pred.controls {
        assert!(text.contains(&c.id), "{} missing from:\n{text}", c.id);
    }
    assert!(text.contains("FAIL") && text.contains("PASS"));
    assert!(text.contains("CVE-2024-3094") && text.contains("matched nothing"));
    assert!(
        text.contains("\u{201c}error\u{201d}"),
        "curly quotes survive"
    );
    let pages = text.matches('\u{c}').count();
    assert!(pages > 1, "{pages} pages");
    assert!(text.contains(&format!("page {pages} of {pages}")), "{text}");

    if let Some(keep) = std::env::var_os("KILN_RENDER_SAVE") {
        let keep = Path::new(&keep);
        std::fs::create_dir_all(keep).unwrap();
        std::fs::copy(&file, keep.join("controls.pdf")).unwrap();
        std::fs::copy(&pngs[0], keep.join("page1.png")).unwrap();
        std::fs::write(keep.join("controls.html"), render::html(&header, &pred)).unwrap();
    }
}

/// A control whose failures fill more than a page continues on the next, and a reader
/// finds every one of them (and the control after it).
#[test]
fn a_control_longer_than_a_page_is_continued_not_cut() {
    let mut pred = sample();
    pred.controls.truncate(3);
    pred.controls[2].failures = (0..90)
        .map(|i| {
            format!(
                "failure {i:03}: scans/grype.sarif result {i} at level error in \
                 vendor/some/deeply/nested/path/{}.rs",
                "x".repeat(i % 40)
            )
        })
        .collect();
    pred.controls.push(ControlResult {
        id: "KC-LAST".into(),
        ..pred.controls[0].clone()
    });
    let digest = pred.pack.digest.to_string();
    let header = ReportHeader {
        subject: "hello:0.1.0",
        digest: &digest,
        signer: None,
        statement_sha256: None,
    };
    let pdf = render::pdf(&header, &pred);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("long.pdf");
    std::fs::write(&file, &pdf).unwrap();
    let out = tool("pdftotext").arg(&file).arg("-").output().unwrap();
    assert!(out.status.success(), "pdftotext: {}", out.status);
    let text = String::from_utf8(out.stdout).unwrap();
    for i in 0..90 {
        assert!(
            text.contains(&format!("failure {i:03}:")),
            "failure {i} missing"
        );
    }
    assert!(text.contains("(continued)") && text.contains("KC-LAST"));
    let pages = text.matches('\u{c}').count();
    assert!(pages >= 3, "{pages} pages");
    if let Some(keep) = std::env::var_os("KILN_RENDER_SAVE") {
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&file, Path::new(&keep).join("long.pdf")).unwrap();
    }
}
