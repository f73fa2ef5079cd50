//! Crash safety: builds SIGKILLed at seeded random moments. After each kill `out/` holds the
//! old or the new complete output (never a mix, never nothing); the next build succeeds and
//! removes what the killed ones left behind.
//!
//! `KILN_CRASH_KILLS` sets the number of kills (default 12; raise it for a longer run),
//! `KILN_CRASH_SEED` the seed of the kill moments (printed, to replay a failure).

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::*;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

/// xorshift64*: a seeded sequence of fractions in [0, 1).
struct Moments(u64);

impl Moments {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What `out/` holds besides the image directory.
fn leftovers(p: &Project) -> Vec<String> {
    let mut v: Vec<String> = p
        .out_entries()
        .into_iter()
        .filter(|e| e != "hello")
        .collect();
    v.sort();
    v
}

#[test]
fn killed_builds_leave_old_or_new_output_and_no_leftovers() {
    let kills = env_u64("KILN_CRASH_KILLS", 12);
    let seed = env_u64("KILN_CRASH_SEED", 0x6b69_6c6e_6372_6173);
    eprintln!("crash test: {kills} kills, KILN_CRASH_SEED={seed}");
    let mut moments = Moments(seed.max(1));

    let p = Project::hello();
    let greeting = p.path().join("greeting.txt");
    let variants = [
        "Hello from build A\n",
        "Hello from build B, which differs\n",
    ];
    // A reference output per variant (the crates are fetched and compiled once, here).
    let mut reference: Vec<BTreeMap<String, Vec<u8>>> = Vec::new();
    let mut full = Duration::ZERO;
    for v in variants {
        std::fs::write(&greeting, v).unwrap();
        let t = Instant::now();
        p.build();
        full = t.elapsed();
        reference.push(read_tree(&p.out().join("hello")));
    }
    assert!(reference[0] != reference[1]);
    let which = |tree: &BTreeMap<String, Vec<u8>>| reference.iter().position(|r| r == tree);

    let mut seen_leftovers = 0;
    for i in 0..kills {
        let variant = (i % 2) as usize;
        std::fs::write(&greeting, variants[variant]).unwrap();
        // Half the kills anywhere in a build; half while the output is being assembled
        // (from the moment a staging directory appears in out/: evidence, archives, the
        // swap into place).
        let u = moments.next();
        let assembling = i % 2 == 1;
        let delay = if assembling {
            full.mul_f64(0.3 * u)
        } else {
            full.mul_f64(1.1 * u)
        };
        let before = leftovers(&p);
        let mut child = p
            .kiln()
            .arg("build")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        if assembling {
            let t = Instant::now();
            while t.elapsed() < full * 3
                && child.try_wait().unwrap().is_none()
                && leftovers(&p).iter().all(|l| before.contains(l))
            {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        std::thread::sleep(delay);
        // The whole group: kiln, cargo, rustc, as a crash or an OOM kill of the job would.
        // SAFETY: signalling a process group we created.
        unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
        child.wait().unwrap();

        let tree = read_tree(&p.out().join("hello"));
        let got = which(&tree);
        assert!(
            got.is_some(),
            "kill {i} after {delay:?}: out/hello is neither complete output ({} files: {:?})",
            tree.len(),
            tree.keys().collect::<Vec<_>>()
        );
        let left = leftovers(&p);
        seen_leftovers += left.len();
        for l in &left {
            assert!(
                l.starts_with(".hello.staging-") || l.starts_with(".kiln-old-"),
                "kill {i}: unexpected entry {l} in out/"
            );
        }
    }
    eprintln!("crash test: {seen_leftovers} leftover dir(s) seen after kills");

    // The next build succeeds, gives the reference bytes and leaves nothing else behind.
    std::fs::write(&greeting, variants[0]).unwrap();
    p.build();
    assert_eq!(which(&read_tree(&p.out().join("hello"))), Some(0));
    assert_eq!(
        leftovers(&p),
        Vec::<String>::new(),
        "leftovers after a clean build"
    );
    let root: Vec<String> = std::fs::read_dir(p.path().join("target/kiln/root"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(
        root.is_empty(),
        "partial trees left in the build root: {root:?}"
    );
}
