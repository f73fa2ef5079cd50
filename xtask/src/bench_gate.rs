//! `cargo xtask bench gate`: the gate on a large scanner output. A deterministic SARIF of
//! `--results` results (250,000 by default; trivy's shape: one rule per vulnerability,
//! results naming their package by `purl` property, some by `ruleId` only, some packages
//! not in the SBOM) against a generated SBOM of `--components` crates, plus OSV advisories
//! whose aliases chain the SARIF ids together. The gate runs as this executable's own
//! `gate` command, in a child process, so wall time and peak RSS come from `wait4(2)`
//! exactly as in `bench image` (the helpers are shared with [`crate::bench`]).
//! Figures, not a test: nothing here is asserted.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kiln_core::contract::ProjectLayout;

use crate::bench::run_measured_accepting;

/// Arguments of `bench gate`.
#[derive(clap::Args, Debug, Clone)]
pub struct GateBenchArgs {
    /// SARIF results to generate.
    #[arg(long, default_value_t = 250_000)]
    pub results: usize,
    /// Crates in the generated SBOM.
    #[arg(long, default_value_t = 2_000)]
    pub components: usize,
    /// Runs (the machine may be shared: look at the spread).
    #[arg(long, default_value_t = 2)]
    pub runs: u32,
    /// Where to put the inputs and gate.json (default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn gate(args: &GateBenchArgs) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("kiln-bench-gate-")
        .tempdir()?;
    let root = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let project = root.join("project");
    let out = root.join("out");
    generate(&project, &out, args.results, args.components)?;
    let sarif = project.join("scan.sarif.json");
    let sarif_mib = std::fs::metadata(&sarif)?.len() as f64 / (1 << 20) as f64;
    println!(
        "bench gate: {} SARIF results ({sarif_mib:.1} MiB), {} SBOM crates, {} OSV advisories",
        args.results, args.components, ADVISORIES
    );
    let exe = std::env::current_exe().context("locating the current executable")?;
    println!(
        "{:<6} {:>10} {:>14} {:>6}",
        "run", "wall (s)", "peak RSS (MiB)", "exit"
    );
    for run in 1..=args.runs {
        let mut cmd = kiln_core::process::command(&exe);
        cmd.arg("-C")
            .arg(&project)
            .arg("gate")
            .arg("--out")
            .arg(&out)
            .arg("--sarif")
            .arg(&sarif)
            .stdout(std::process::Stdio::null());
        for i in 0..ADVISORIES {
            cmd.arg("--osv").arg(project.join(format!("osv/{i}.json")));
        }
        // 0 passed, 1 blocked: both are a finished gate.
        let m = run_measured_accepting(cmd, &[0, 1])?;
        println!(
            "{run:<6} {:>10.2} {:>14.1} {:>6}",
            m.wall.as_secs_f64(),
            m.max_rss_kib as f64 / 1024.0,
            m.code
        );
    }
    let report = out.join("hello").join(kiln_vex::GATE_FILE);
    println!(
        "gate.json: {:.1} MiB",
        std::fs::metadata(&report)?.len() as f64 / (1 << 20) as f64
    );
    Ok(())
}

/// OSV advisories generated next to the SARIF; each aliases two SARIF ids.
const ADVISORIES: usize = 200;

/// Seeded xorshift64*: the same inputs on every run and machine.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

fn generate(project: &Path, out: &Path, results: usize, components: usize) -> Result<()> {
    let w = |p: &Path, bytes: &[u8]| -> Result<()> {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display()))
    };
    let crate_name = |i: usize| format!("crate{i:05}");
    w(
        &ProjectLayout::new(project).kiln_toml(),
        b"[[image]]\nname = \"hello\"\nmanifest = \"Cargo.toml\"\npackage = \"hello\"\nbinaries = [\"hello\"]\n",
    )?;
    w(
        &project.join("Cargo.toml"),
        b"[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )?;
    let comps: Vec<serde_json::Value> = (0..components)
        .map(|i| {
            let purl = format!("pkg:cargo/{}@1.0.{}", crate_name(i), i % 7);
            serde_json::json!({"type": "library", "bom-ref": purl, "name": crate_name(i),
                "version": format!("1.0.{}", i % 7), "purl": purl})
        })
        .collect();
    let sbom = serde_json::json!({
        "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
        "serialNumber": "urn:uuid:00000000-0000-5000-8000-000000000000",
        "metadata": {"component": {"type": "container", "bom-ref": "pkg:oci/hello", "name": "hello",
            "purl": "pkg:oci/hello@sha256%3A00"}},
        "components": comps,
    });
    w(
        &out.join("hello").join(kiln_vex::SBOM_FILE),
        &serde_json::to_vec(&sbom)?,
    )?;

    // One vulnerability per 5 results on average; a tenth of the packages are not in the SBOM.
    let vulns = (results / 5).max(1);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Streamed, one rule and one result at a time: the benchmark process must stay small,
    // since a forked child's peak RSS as wait4 reports it starts from its parent's.
    let mut f = std::io::BufWriter::new(std::fs::File::create(project.join("scan.sarif.json"))?);
    f.write_all(br#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"bench","rules":["#)?;
    for v in 0..vulns {
        let level = ["error", "warning", "note"][v % 3];
        if v > 0 {
            f.write_all(b",")?;
        }
        serde_json::to_writer(
            &mut f,
            &serde_json::json!({
                "id": format!("CVE-2099-{v}"),
                "shortDescription": {"text": format!("generated vulnerability {v}")},
                "defaultConfiguration": {"level": level},
                "properties": {"security-severity": format!("{}.{}", v % 10, v % 7)},
            }),
        )?;
    }
    f.write_all(br#"]}},"results":["#)?;
    for i in 0..results {
        let v = rng.below(vulns);
        let c = rng.below(components + components / 10);
        let purl = if c < components {
            format!("pkg:cargo/{}@1.0.{}", crate_name(c), c % 7)
        } else {
            format!("pkg:cargo/absent{c}@0.1.0")
        };
        let mut r = serde_json::json!({
            "ruleId": format!("CVE-2099-{v}"),
            "level": "error",
            "message": {"text": format!("result {i}")},
            "properties": {"purl": purl},
        });
        if i % 2 == 0 {
            r["ruleIndex"] = serde_json::json!(v);
        }
        if i > 0 {
            f.write_all(b",")?;
        }
        serde_json::to_writer(&mut f, &r)?;
    }
    f.write_all(b"]}]}")?;
    f.flush()?;
    drop(f);

    // Advisories chaining SARIF ids: GHSA-i aliases CVE-a and CVE-b, for a component.
    for i in 0..ADVISORIES {
        let (a, b) = (rng.below(vulns), rng.below(vulns));
        let c = rng.below(components);
        let doc = serde_json::json!({
            "schema_version": "1.6.0", "id": format!("GHSA-bench-{i:04}"),
            "modified": "2026-01-01T00:00:00Z",
            "aliases": [format!("CVE-2099-{a}"), format!("CVE-2099-{b}")],
            "affected": [{"package": {"ecosystem": "crates.io", "name": crate_name(c)},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}],
        });
        w(
            &project.join(format!("osv/{i}.json")),
            &serde_json::to_vec(&doc)?,
        )?;
    }
    Ok(())
}
