//! The driver: proptest generates inputs (random bytes, or a valid seed with a few
//! structured mutations), runs the target on each, and on a panic shrinks the input to a
//! small one and saves it.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use crate::Target;

/// What one run found.
#[derive(Debug)]
pub struct Outcome {
    pub target: &'static str,
    pub cases: u64,
    pub seeds: usize,
    pub elapsed: Duration,
    /// The smallest crashing input found, the panic message, and where it was saved.
    pub crash: Option<Crash>,
}

#[derive(Debug)]
pub struct Crash {
    pub input: Vec<u8>,
    pub message: String,
    pub saved: Option<PathBuf>,
}

/// Reads the target's seed files (files, or directories walked recursively in sorted
/// order) and adds its generated seeds.
pub fn seeds(t: &Target, repo: &Path) -> Vec<Vec<u8>> {
    fn walk(p: &Path, out: &mut Vec<Vec<u8>>) {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect();
            entries.sort();
            for e in entries {
                walk(&e, out);
            }
        } else if let Ok(b) = std::fs::read(p)
            && b.len() <= 1 << 20
        {
            out.push(b);
        }
    }
    let mut out = Vec::new();
    for s in t.seeds {
        walk(&repo.join(s), &mut out);
    }
    out.extend((t.generated)());
    if out.is_empty() {
        out.push(Vec::new());
    }
    out
}

/// One structured change to an input; positions are taken modulo its length.
#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Insert(Index, Vec<u8>),
    Token(Index, Index, bool),
    Delete(Index, u8),
    Truncate(Index),
    Splice(Index, Index, Index),
    Repeat(Index, u8, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        1 => (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        3 => (any::<Index>(), any::<Index>(), any::<bool>())
            .prop_map(|(i, t, r)| Mutation::Token(i, t, r)),
        1 => (any::<Index>(), 1u8..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(s, a, b)| Mutation::Splice(s, a, b)),
        1 => (any::<Index>(), 1u8..32, 2u8..16).prop_map(|(i, n, k)| Mutation::Repeat(i, n, k)),
    ]
}

fn at(i: &Index, len: usize) -> usize {
    if len == 0 { 0 } else { i.index(len + 1) }
}

fn apply(mut v: Vec<u8>, m: &Mutation, seeds: &[Vec<u8>], dict: &[&str]) -> Vec<u8> {
    match m {
        Mutation::FlipBit(i, b) if !v.is_empty() => {
            let p = i.index(v.len());
            v[p] ^= 1 << b;
        }
        Mutation::SetByte(i, b) if !v.is_empty() => {
            let p = i.index(v.len());
            v[p] = *b;
        }
        Mutation::Insert(i, bytes) => {
            let p = at(i, v.len());
            v.splice(p..p, bytes.iter().copied());
        }
        Mutation::Token(i, t, replace) if !dict.is_empty() => {
            let tok = dict[t.index(dict.len())].as_bytes();
            let p = at(i, v.len());
            let end = if *replace {
                (p + tok.len()).min(v.len())
            } else {
                p
            };
            v.splice(p..end, tok.iter().copied());
        }
        Mutation::Delete(i, n) if !v.is_empty() => {
            let p = i.index(v.len());
            let end = (p + *n as usize).min(v.len());
            v.drain(p..end);
        }
        Mutation::Truncate(i) => {
            let p = at(i, v.len());
            v.truncate(p);
        }
        Mutation::Splice(s, a, b) => {
            let other = &seeds[s.index(seeds.len())];
            let (x, y) = (at(a, other.len()), at(b, other.len()));
            let (x, y) = (x.min(y), x.max(y).min(x + 4096));
            let p = at(a, v.len());
            v.splice(p..p, other[x..y].iter().copied());
        }
        Mutation::Repeat(i, n, k) if !v.is_empty() => {
            let p = i.index(v.len());
            let end = (p + *n as usize).min(v.len());
            let chunk: Vec<u8> = v[p..end].to_vec();
            for _ in 1..*k {
                v.splice(end..end, chunk.iter().copied());
            }
        }
        _ => {}
    }
    v
}

fn inputs(seeds: Arc<Vec<Vec<u8>>>, dict: &'static [&'static str]) -> BoxedStrategy<Vec<u8>> {
    let n = seeds.len();
    let s1 = seeds.clone();
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..512),
        1 => (0..n).prop_map(move |i| s1[i].clone()),
        8 => (0..n, proptest::collection::vec(mutation(), 1..6)).prop_map(move |(i, ms)| {
            ms.iter().fold(seeds[i].clone(), |v, m| apply(v, m, &seeds, dict))
        }),
    ]
    .boxed()
}

thread_local! {
    static FUZZING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Panics inside a target are expected findings: record their message instead of
/// printing it for every shrinking step. Other panics go to the previous hook.
fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if FUZZING.with(Cell::get) {
                let msg = format!("{info}");
                LAST_PANIC.with(|l| *l.borrow_mut() = msg);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `t` for about `time` (the last batch and any shrinking may add a little), with the
/// random stream from `seed`. Crashes are saved under `crash_dir/<target>/` when given.
pub fn run(
    t: &'static Target,
    time: Duration,
    seed: u64,
    repo: &Path,
    crash_dir: Option<&Path>,
) -> Outcome {
    install_hook();
    let seeds = Arc::new(seeds(t, repo));
    let n_seeds = seeds.len();
    let strategy = inputs(seeds, t.dictionary);
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(t.name.len() as u64).to_le_bytes());
    for (i, b) in t.name.bytes().enumerate() {
        key[16 + i % 16] ^= b;
    }
    let config = Config {
        cases: 64,
        failure_persistence: None,
        max_shrink_iters: 4096,
        max_shrink_time: 30_000,
        ..Config::default()
    };
    // A runner counts its successes and stops at `cases`: one runner per batch, each with
    // the next RNG forked from one seeded stream.
    let mut master = TestRunner::new_with_rng(
        config.clone(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &key),
    );
    let start = Instant::now();
    let cases = Cell::new(0u64);
    let mut crash = None;
    FUZZING.with(|f| f.set(true));
    while start.elapsed() < time {
        let mut runner = TestRunner::new_with_rng(config.clone(), master.new_rng());
        let result = runner.run(&strategy, |data| {
            cases.set(cases.get() + 1);
            let r = std::panic::catch_unwind(|| (t.run)(&data));
            match r {
                Ok(()) => Ok(()),
                Err(_) => Err(TestCaseError::fail(LAST_PANIC.with(|l| l.borrow().clone()))),
            }
        });
        if let Err(e) = result {
            let (message, input) = match e {
                TestError::Fail(why, input) => (why.to_string(), minimize(t, input)),
                TestError::Abort(why) => (why.to_string(), Vec::new()),
            };
            let saved = crash_dir.and_then(|d| save(d, t.name, &input));
            crash = Some(Crash {
                input,
                message,
                saved,
            });
            break;
        }
    }
    FUZZING.with(|f| f.set(false));
    Outcome {
        target: t.name,
        cases: cases.get(),
        seeds: n_seeds,
        elapsed: start.elapsed(),
        crash,
    }
}

/// proptest shrinks the choices that made an input (which seed, which mutations), not the
/// seed's own bytes: remove chunks, largest first, while the target still panics.
fn minimize(t: &Target, mut input: Vec<u8>) -> Vec<u8> {
    let crashes = |d: &[u8]| std::panic::catch_unwind(|| (t.run)(d)).is_err();
    let start = Instant::now();
    let mut chunk = input.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        while i < input.len() && start.elapsed() < Duration::from_secs(30) {
            let mut shorter = input.clone();
            shorter.drain(i..(i + chunk).min(input.len()));
            if crashes(&shorter) {
                input = shorter;
            } else {
                i += chunk;
            }
        }
        if chunk == 1 || start.elapsed() >= Duration::from_secs(30) {
            return input;
        }
        chunk = chunk.div_ceil(2);
    }
}

fn save(dir: &Path, target: &str, input: &[u8]) -> Option<PathBuf> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).ok()?;
    let p = d.join(format!("crash-{}", kiln_core::Digest::of(input).hex()));
    std::fs::write(&p, input).ok()?;
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planted(data: &[u8]) {
        if data.windows(2).any(|w| w == b"{}") {
            panic!("planted bug: empty object");
        }
    }

    fn seed() -> Vec<Vec<u8>> {
        vec![br#"{"a": [1, 2, 3]}"#.to_vec()]
    }

    static PLANTED: Target = Target {
        name: "planted",
        run: planted,
        seeds: &[],
        generated: seed,
        dictionary: &["{}", "["],
    };

    /// The driver finds a planted panic, reports its message and shrinks the input.
    #[test]
    fn finds_and_shrinks_a_planted_crash() {
        let o = run(&PLANTED, Duration::from_secs(20), 0, Path::new("."), None);
        let c = o.crash.expect("the planted panic is found");
        assert!(c.message.contains("planted bug"), "{}", c.message);
        assert!(
            c.input.windows(2).any(|w| w == b"{}") && c.input.len() <= 16,
            "not shrunk: {:?}",
            String::from_utf8_lossy(&c.input)
        );
    }
}
