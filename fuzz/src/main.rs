//! `kiln-fuzz [--time SECS] [--seed N] [--list] [TARGET...]`: runs each target (all by
//! default) for SECS seconds (default 10); exits 1 if any crashed, printing where the
//! shrunk input was saved (`target/kiln/fuzz/crashes/<target>/`). `cargo xtask fuzz` runs it.

use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let mut time = 10u64;
    let mut seed = 0u64;
    let mut names = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let num = |v: Option<String>, what: &str| -> Result<u64, String> {
            v.and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{what} needs a whole number"))
        };
        let r = match a.as_str() {
            "--time" => num(args.next(), "--time").map(|v| time = v),
            "--seed" => num(args.next(), "--seed").map(|v| seed = v),
            "--list" => {
                for t in kiln_fuzz::TARGETS {
                    println!("{}", t.name);
                }
                return ExitCode::SUCCESS;
            }
            n if kiln_fuzz::target(n).is_some() => {
                names.push(n.to_string());
                Ok(())
            }
            other => Err(format!(
                "unknown target or option `{other}`; targets: {}",
                kiln_fuzz::TARGETS
                    .iter()
                    .map(|t| t.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        if let Err(e) = r {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    let targets: Vec<_> = if names.is_empty() {
        kiln_fuzz::TARGETS.iter().collect()
    } else {
        names.iter().filter_map(|n| kiln_fuzz::target(n)).collect()
    };
    let repo = kiln_fuzz::fixtures::repo();
    let crashes = kiln_core::contract::ProjectLayout::new(&repo)
        .fuzz_dir()
        .join("crashes");
    let mut failed = 0;
    println!(
        "{:<14} {:>9} {:>6} {:>8}  result",
        "target", "cases", "seeds", "secs"
    );
    for t in targets {
        let o = kiln_fuzz::driver::run(t, Duration::from_secs(time), seed, &repo, Some(&crashes));
        let result = match &o.crash {
            None => "ok".to_string(),
            Some(c) => {
                failed += 1;
                format!(
                    "CRASH ({} bytes, saved to {}): {}",
                    c.input.len(),
                    c.saved
                        .as_ref()
                        .map_or("-".into(), |p| p.display().to_string()),
                    c.message
                )
            }
        };
        println!(
            "{:<14} {:>9} {:>6} {:>8.1}  {result}",
            o.target,
            o.cases,
            o.seeds,
            o.elapsed.as_secs_f64()
        );
    }
    if failed > 0 {
        eprintln!("{failed} target(s) crashed");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
