//! Why two artifacts differ: heuristics that turn a difference into a likely cause.
//!
//! The diff engine finds *where* bytes differ; this module looks at *what* differs — the
//! tokens only one side has — and names the usual suspects: a timestamp, a build path, an
//! ordering, a value from the environment, randomness, the toolchain. A digest that
//! changed because something it covers changed is `derived`, not a cause of its own, so a
//! report points at the one layer that differs rather than at the ten files naming it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The likely cause of a difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    Timestamp,
    BuildPath,
    Ordering,
    /// The build machine's host name.
    Hostname,
    Environment,
    Randomness,
    Toolchain,
    /// A digest, size or offset that changed because content it covers changed.
    Derived,
    Unknown,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Timestamp => "timestamp",
            Cause::BuildPath => "build path",
            Cause::Ordering => "ordering",
            Cause::Hostname => "hostname",
            Cause::Environment => "environment",
            Cause::Randomness => "randomness",
            Cause::Toolchain => "toolchain",
            Cause::Derived => "derived",
            Cause::Unknown => "unknown",
        }
    }

    /// A root cause is one a developer fixes at its source; derived differences go away
    /// with it.
    pub fn is_root(self) -> bool {
        self != Cause::Derived
    }

    /// The variations that can expose this cause (`rebuild` = any second build from
    /// scratch; `toolchain` = a different machine, as between two CI runners).
    pub fn exposed_by(self) -> &'static [&'static str] {
        match self {
            Cause::Timestamp => &["clock", "rebuild"],
            Cause::BuildPath => &["build_path"],
            Cause::Ordering => &["file_order", "rebuild"],
            Cause::Hostname => &["hostname"],
            Cause::Environment => &["tz", "locale", "umask", "user", "env", "path", "cpus"],
            Cause::Randomness => &["rebuild"],
            Cause::Toolchain => &["toolchain"],
            Cause::Derived | Cause::Unknown => &[],
        }
    }
}

/// What the classifier knows about the two builds (empty when comparing trees built
/// elsewhere: then any differing absolute path counts as a build path).
#[derive(Debug, Clone, Default)]
pub struct Hints {
    /// Directories of either build (project copies, build roots).
    pub build_dirs: Vec<String>,
    /// Values the second build's environment was given, by variation name.
    pub env_values: Vec<(String, String)>,
    /// Unix time of the run; 10-digit numbers within years of it read as timestamps.
    pub now: u64,
    /// The host names of the two builds (a token holding one is a leaked host name).
    pub host_names: Vec<String>,
    /// When each build ran, `(start, end)` in Unix seconds, on the clock the build saw
    /// (shifted for a build under faketime): integers and numbers within these windows
    /// are build times, however encoded.
    pub build_times: Vec<(u64, u64)>,
    /// Names of the project's files and directories: a permutation of these is a
    /// directory order, a permutation of other words a per-process hash order.
    pub source_names: std::collections::BTreeSet<String>,
    /// How far a gzip stream is inflated to compare it (default 2 GiB); past it, two
    /// differing streams are "too large to compare".
    pub max_inflate: Option<u64>,
}

impl Hints {
    /// Is `v` (seconds, or milliseconds) within a build's time window (with a margin)?
    pub fn is_build_time(&self, v: u64) -> bool {
        const MARGIN: u64 = 300;
        self.build_times.iter().any(|&(lo, hi)| {
            let within = |x: u64| x >= lo.saturating_sub(MARGIN) && x <= hi + MARGIN;
            within(v) || (v > 1_000_000_000_000 && within(v / 1000))
        })
    }

    pub fn inflate_limit(&self) -> u64 {
        self.max_inflate.unwrap_or(crate::diff::MAX_INFLATE)
    }
}

/// One explained part of a difference: a cause with the tokens that show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub cause: Cause,
    /// The variation that matched, when the evidence names one (an environment value).
    pub variation: Option<String>,
    pub a: Vec<String>,
    pub b: Vec<String>,
}

/// Splits text into the tokens the heuristics look at: runs of characters that make up
/// paths, numbers, words and digests.
pub fn tokens(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for t in s.split(|c: char| {
        !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | ':' | '+'))
    }) {
        let t = t.trim_end_matches(['.', ':']);
        // Rust string data is not NUL-terminated, so a path often follows a word directly.
        match HOST_DIRS
            .iter()
            .filter_map(|h| t.find(h))
            .filter(|&i| i > 0 && !t[..i].contains('/'))
            .min()
        {
            Some(i) => out.extend([&t[..i], &t[i..]]),
            None if !t.is_empty() => out.push(t),
            None => {}
        }
    }
    out
}

fn is_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Does the token contain a sha256 digest (a content address)?
fn has_digest(t: &str) -> bool {
    let b = t.as_bytes();
    let mut run = 0;
    for &c in b {
        if c.is_ascii_digit() || (b'a'..=b'f').contains(&c) {
            run += 1;
            if run >= 64 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// A decimal run of 10 or 13 digits, or a hex run of 8 to 16 digits (optionally `0x`),
/// whose value is a build time of this run.
fn has_build_time(t: &str, hints: &Hints) -> bool {
    if hints.build_times.is_empty() {
        return false;
    }
    let dec = t
        .split(|c: char| !c.is_ascii_digit())
        .filter(|d| d.len() == 10 || d.len() == 13)
        .filter_map(|d| d.parse::<u64>().ok());
    let hex = t
        .split(|c: char| !c.is_ascii_hexdigit())
        .map(|h| h.strip_prefix("0x").unwrap_or(h))
        .filter(|h| (8..=16).contains(&h.len()))
        .filter_map(|h| u64::from_str_radix(h, 16).ok());
    dec.chain(hex).any(|v| hints.is_build_time(v))
}

fn looks_like_time(t: &str, now: u64) -> bool {
    // A 10-digit run (optionally with a fraction) within 30 years of now.
    let digits: Vec<&str> = t
        .split(|c: char| !c.is_ascii_digit())
        .filter(|d| d.len() == 10)
        .collect();
    if digits.iter().any(|d| {
        d.parse::<u64>()
            .is_ok_and(|v| v.abs_diff(now) < 30 * 366 * 86400)
    }) {
        return true;
    }
    // ISO 8601 dates and times: 2024-05-01, 12:34:56.
    let b = t.as_bytes();
    let date = b.windows(10).any(|w| {
        w[..4].iter().all(u8::is_ascii_digit)
            && w[4] == b'-'
            && w[5..7].iter().all(u8::is_ascii_digit)
            && w[7] == b'-'
            && w[8..].iter().all(u8::is_ascii_digit)
    });
    let time = b.windows(8).any(|w| {
        w[..2].iter().all(u8::is_ascii_digit)
            && w[2] == b':'
            && w[3..5].iter().all(u8::is_ascii_digit)
            && w[5] == b':'
            && w[6..].iter().all(u8::is_ascii_digit)
    });
    date || time
}

const HOST_DIRS: &[&str] = &[
    "/tmp/",
    "/home/",
    "/root/",
    "/build/",
    "/var/",
    "/usr/src/",
    "/runner/",
    "/github/",
    "/work/",
    "/opt/",
    "/nix/build",
];

fn looks_like_build_path(t: &str, hints: &Hints) -> bool {
    if hints
        .build_dirs
        .iter()
        .any(|d| !d.is_empty() && t.contains(d.as_str()))
    {
        return true;
    }
    t.find('/').is_some_and(|i| {
        HOST_DIRS.iter().any(|h| t[i..].starts_with(h)) && t[i..].matches('/').count() >= 3
    })
}

fn looks_random(t: &str) -> bool {
    // A long hex run that is not a 64-digit digest, or a long mixed alphanumeric token.
    if t.len() >= 16 && is_hex(t) {
        return true;
    }
    let alnum = t.len() >= 20 && t.bytes().all(|b| b.is_ascii_alphanumeric());
    alnum
        && t.bytes().any(|b| b.is_ascii_digit())
        && t.bytes().any(|b| b.is_ascii_uppercase())
        && t.bytes().any(|b| b.is_ascii_lowercase())
}

fn uuid_version(t: &str) -> Option<u8> {
    let b = t.as_bytes();
    b.windows(36).find_map(|w| {
        let dashes = [8, 13, 18, 23].iter().all(|&i| w[i] == b'-');
        let hex = w
            .iter()
            .enumerate()
            .all(|(i, c)| [8, 13, 18, 23].contains(&i) || c.is_ascii_hexdigit());
        (dashes && hex).then(|| w[14].wrapping_sub(b'0'))
    })
}

/// Every cause a single token shows (a token may glue a timestamp to a random value, as
/// adjacent string constants do in a binary).
pub fn classify_token_all(t: &str, hints: &Hints) -> Vec<(Cause, Option<String>)> {
    let (cause, var) = classify_token(t, hints);
    if !matches!(cause, Cause::Timestamp | Cause::BuildPath) {
        return vec![(cause, var)];
    }
    let mut out = vec![(cause, var)];
    // What is left once the path and the epoch (with its fraction) are taken out.
    let mut rest = t.to_string();
    if let Some(i) = rest.find('/') {
        rest.truncate(i);
    }
    let b = rest.as_bytes().to_vec();
    if let Some(i) =
        (0..b.len().saturating_sub(9)).find(|&i| b[i..i + 10].iter().all(u8::is_ascii_digit))
    {
        let mut end = i + 10;
        if b.get(end) == Some(&b'.') {
            end += 1;
            let frac_end = (end..b.len().min(end + 9))
                .find(|&j| !b[j].is_ascii_digit())
                .unwrap_or(b.len().min(end + 9));
            end = frac_end;
        }
        rest = format!("{}{}", &rest[..i], &rest[end..]);
    }
    let mut run = 0usize;
    let mut longest = 0usize;
    for c in rest.bytes() {
        run = if c.is_ascii_digit() || (b'a'..=b'f').contains(&c) {
            run + 1
        } else {
            0
        };
        longest = longest.max(run);
    }
    if longest >= 16 {
        out.push((Cause::Randomness, None));
    }
    out
}

/// Whether token `t` carries host name `h`: anywhere in it for a name of 3 characters or
/// more; a shorter one (`ci`, `b1`) only as a whole word of it, or every token holding
/// those letters (`circle`, `b12`) would be blamed on the host name.
fn names_host(t: &str, h: &str) -> bool {
    if h.is_empty() {
        return false;
    }
    if h.len() >= 3 {
        return t.contains(h);
    }
    t.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .any(|w| w == h)
}

/// Classifies a single token that only one side has.
pub fn classify_token(t: &str, hints: &Hints) -> (Cause, Option<String>) {
    if hints.host_names.iter().any(|h| names_host(t, h)) {
        return (Cause::Hostname, Some("hostname".into()));
    }
    if has_build_time(t, hints) {
        return (Cause::Timestamp, None);
    }
    for (var, value) in &hints.env_values {
        if value.len() >= 3 && t.contains(value.as_str()) {
            return (Cause::Environment, Some(var.clone()));
        }
    }
    // Content hashes (sha256 runs; exactly sha1- or md5-long hex) and name-based UUIDs
    // (v3/v5, hashed from content) follow from other changes; a v4 UUID is random.
    if has_digest(t) || (is_hex(t) && matches!(t.len(), 32 | 40 | 128)) {
        return (Cause::Derived, None);
    }
    match uuid_version(t) {
        Some(3 | 5) => return (Cause::Derived, None),
        Some(4) => return (Cause::Randomness, None),
        _ => {}
    }
    if looks_like_build_path(t, hints) {
        return (Cause::BuildPath, Some("build_path".into()));
    }
    if looks_like_time(t, hints.now) {
        return (Cause::Timestamp, None);
    }
    if looks_random(t) {
        return (Cause::Randomness, None);
    }
    (Cause::Unknown, None)
}

/// Explains how text `a` differs from text `b` (two JSON strings, two runs of printable
/// bytes). Tokens only one side has are classified one by one; when both sides have the
/// same tokens in a different order, that is an ordering difference.
pub fn classify_text(a: &str, b: &str, hints: &Hints) -> Vec<Finding> {
    let ta = tokens(a);
    let tb = tokens(b);
    if ta == tb {
        return if a == b {
            Vec::new()
        } else {
            vec![Finding {
                cause: Cause::Unknown,
                variation: None,
                a: vec![a.into()],
                b: vec![b.into()],
            }]
        };
    }
    let mut count: BTreeMap<&str, i64> = BTreeMap::new();
    for t in &ta {
        *count.entry(t).or_default() += 1;
    }
    for t in &tb {
        *count.entry(t).or_default() -= 1;
    }
    let mut by_cause: BTreeMap<(Cause, Option<String>), Finding> = BTreeMap::new();
    let mut explained = std::collections::BTreeSet::new();
    for (side, list) in [(0, &ta), (1, &tb)] {
        for t in list.iter() {
            let c = count[t];
            if (side == 0 && c <= 0) || (side == 1 && c >= 0) {
                continue;
            }
            explained.insert(*t);
            for (cause, variation) in classify_token_all(t, hints) {
                let f = by_cause
                    .entry((cause, variation.clone()))
                    .or_insert_with(|| Finding {
                        cause,
                        variation,
                        a: Vec::new(),
                        b: Vec::new(),
                    });
                let v = if side == 0 { &mut f.a } else { &mut f.b };
                if !v.iter().any(|x| x == t) {
                    v.push(t.to_string());
                }
            }
        }
    }
    // An unexplained word glued, on the other side, to an explained token (adjacent
    // constants) is not a difference of its own: drop it from `unknown` and from the order.
    let glued =
        |t: &str, other: &[String]| t.len() >= 3 && other.iter().any(|o| o != t && o.contains(t));
    if let Some(unknown) = by_cause.get(&(Cause::Unknown, None)).cloned() {
        let known_a: Vec<String> = by_cause
            .iter()
            .filter(|(k, _)| k.0 != Cause::Unknown)
            .flat_map(|(_, f)| f.a.clone())
            .collect();
        let known_b: Vec<String> = by_cause
            .iter()
            .filter(|(k, _)| k.0 != Cause::Unknown)
            .flat_map(|(_, f)| f.b.clone())
            .collect();
        let a: Vec<String> = unknown
            .a
            .into_iter()
            .filter(|t| !glued(t, &known_b))
            .collect();
        let b: Vec<String> = unknown
            .b
            .into_iter()
            .filter(|t| !glued(t, &known_a))
            .collect();
        if a.is_empty() && b.is_empty() {
            by_cause.remove(&(Cause::Unknown, None));
        } else {
            by_cause.insert(
                (Cause::Unknown, None),
                Finding {
                    cause: Cause::Unknown,
                    variation: None,
                    a,
                    b,
                },
            );
        }
    }
    // What is left after removing the unequal tokens: same tokens, maybe another order.
    let rest_a: Vec<&str> = ta
        .iter()
        .copied()
        .filter(|t| !explained.contains(t))
        .collect();
    let rest_b: Vec<&str> = tb
        .iter()
        .copied()
        .filter(|t| !explained.contains(t))
        .collect();
    if rest_a != rest_b {
        let first = rest_a
            .iter()
            .zip(&rest_b)
            .position(|(x, y)| x != y)
            .unwrap_or(0);
        let window = |v: &[&str]| v[first.min(v.len())..(first + 8).min(v.len())].join(" ");
        // Which order: the directory's (the permuted items are the project's file names)
        // or a per-process hash order (other words, as a HashMap iterates its keys). Not
        // knowing the project's files (comparing trees built elsewhere), say ordering.
        let moved: Vec<&str> = rest_a
            .iter()
            .zip(&rest_b)
            .filter(|(x, y)| x != y)
            .flat_map(|(x, y)| [*x, *y])
            .collect();
        let file_names = moved
            .iter()
            .filter(|t| {
                t.split(['/', ',', ' '])
                    .any(|part| hints.source_names.contains(part))
            })
            .count();
        let (cause, variation) = if hints.source_names.is_empty() {
            (Cause::Ordering, None)
        } else if file_names * 2 >= moved.len().max(1) {
            (Cause::Ordering, Some("file_order".to_string()))
        } else {
            (Cause::Randomness, None)
        };
        let f = by_cause
            .entry((cause, variation.clone()))
            .or_insert_with(|| Finding {
                cause,
                variation,
                a: Vec::new(),
                b: Vec::new(),
            });
        f.a.push(window(&rest_a));
        f.b.push(window(&rest_b));
    }
    by_cause.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints() -> Hints {
        Hints {
            build_dirs: vec!["/tmp/r/a".into(), "/tmp/r/b-x".into()],
            env_values: vec![("locale".into(), "fr_FR.UTF-8".into())],
            now: 1_763_600_000,
            ..Default::default()
        }
    }

    fn causes(a: &str, b: &str) -> Vec<Cause> {
        classify_text(a, b, &hints())
            .into_iter()
            .map(|f| f.cause)
            .collect()
    }

    #[test]
    fn each_cause() {
        assert_eq!(
            causes(
                "built 1763600001.000000001 ok",
                "built 1763600011.000000002 ok"
            ),
            [Cause::Timestamp]
        );
        assert_eq!(causes("at 2024-01-02", "at 2027-01-02"), [Cause::Timestamp]);
        assert_eq!(
            causes("src /tmp/r/a/project/x", "src /tmp/r/b-x/project/x"),
            [Cause::BuildPath]
        );
        assert_eq!(
            causes("/home/alice/src/kiln/x.rs", "/home/bob/work/kiln/x.rs"),
            [Cause::BuildPath]
        );
        assert_eq!(
            causes("order alpha,bravo,charlie", "order charlie,alpha,bravo"),
            [Cause::Ordering]
        );
        assert_eq!(
            causes("seed 9f3a1c0d22e4b5a6", "seed 0b7e55aa13c2f9d1"),
            [Cause::Randomness]
        );
        assert_eq!(
            causes("lang de_DE.UTF-8", "lang fr_FR.UTF-8"),
            [Cause::Environment, Cause::Unknown]
        );
        let d1 = format!("sha256:{}", "a".repeat(64));
        let d2 = format!("sha256:{}", "b".repeat(64));
        assert_eq!(causes(&d1, &d2), [Cause::Derived]);
        assert!(causes("same", "same").is_empty());
    }

    #[test]
    fn glued_constants_are_split_by_cause() {
        let a = "x 1795358770.6132140331ff246c156c10cb0golf,delta,charlie,echo,alpha,foxtrot/tmp/r/a/project";
        let b = "x 1795358791.803254938d796db72b75f76f2alpha,echo,charlie,delta,foxtrot,golf/tmp/r/b-x/project";
        let mut c = causes(a, b);
        c.sort();
        assert_eq!(
            c,
            [
                Cause::Timestamp,
                Cause::BuildPath,
                Cause::Ordering,
                Cause::Randomness
            ]
        );
        assert_eq!(
            causes(
                "urn:uuid:d0179761-3be2-5603-b6bd-33b6597255fe",
                "urn:uuid:9eabf4ac-4beb-5535-aff3-57026f4c3b34"
            ),
            [Cause::Derived]
        );
        assert_eq!(
            causes(
                "300941ab5468dec3197e7f3336a44951f47407b1",
                "a50a4cfdfd8ea99e035b8e1d864ab4ae411b1e57"
            ),
            [Cause::Derived]
        );
    }

    #[test]
    fn mixed_run_gives_every_cause() {
        let a =
            "unrepro 1763600001.000000001 seed=9f3a1c0d22e4b5a6 order=a1,b2,c3 /tmp/r/a/project";
        let b =
            "unrepro 1763600013.000000001 seed=0b7e55aa13c2f9d1 order=c3,a1,b2 /tmp/r/b-x/project";
        let mut c = causes(a, b);
        c.sort();
        assert_eq!(
            c,
            [
                Cause::Timestamp,
                Cause::BuildPath,
                Cause::Ordering,
                Cause::Randomness
            ]
        );
    }

    fn run_hints() -> Hints {
        Hints {
            host_names: vec!["buildbox-7".into(), "kiln-repro-host".into()],
            build_times: vec![
                (1_795_000_000, 1_795_000_100),
                (1_889_700_000, 1_889_700_090),
            ],
            source_names: ["Cargo.toml", "build.rs", "main.rs", "src", "note.txt"]
                .map(String::from)
                .into(),
            ..hints()
        }
    }

    fn run_causes(a: &str, b: &str) -> Vec<(Cause, Option<String>)> {
        classify_text(a, b, &run_hints())
            .into_iter()
            .map(|f| (f.cause, f.variation))
            .collect()
    }

    #[test]
    fn a_short_host_name_is_named_only_as_a_whole_word() {
        let hints = Hints {
            host_names: vec!["ci".into(), "b1".into()],
            ..hints()
        };
        assert_eq!(classify_token("ci", &hints).0, Cause::Hostname);
        assert_eq!(classify_token("user@ci:/work", &hints).0, Cause::Hostname);
        assert_eq!(classify_token("host=b1", &hints).0, Cause::Hostname);
        assert_ne!(classify_token("circle", &hints).0, Cause::Hostname);
        assert_ne!(classify_token("b12", &hints).0, Cause::Hostname);
    }

    #[test]
    fn a_leaked_host_name_is_hostname_not_environment() {
        assert_eq!(
            run_causes("built on buildbox-7", "built on kiln-repro-host"),
            [(Cause::Hostname, Some("hostname".into()))]
        );
        assert_eq!(Cause::Hostname.exposed_by(), ["hostname"]);
        assert!(!Cause::Environment.exposed_by().contains(&"hostname"));
    }

    #[test]
    fn build_times_are_timestamps_in_decimal_hex_and_milliseconds() {
        // Hex seconds and decimal milliseconds of the two build windows.
        let (ha, hb) = (
            format!("{:x}", 1_795_000_050u64),
            format!("{:x}", 1_889_700_010u64),
        );
        assert_eq!(
            run_causes(&format!("t=0x{ha}"), &format!("t=0x{hb}")),
            [(Cause::Timestamp, None)]
        );
        assert_eq!(
            run_causes("ms 1795000050123", "ms 1889700010456"),
            [(Cause::Timestamp, None)]
        );
    }

    #[test]
    fn a_hash_order_is_randomness_and_a_directory_order_is_file_order() {
        assert_eq!(
            run_causes(
                "order alpha,bravo,charlie,delta",
                "order charlie,alpha,delta,bravo"
            ),
            [(Cause::Randomness, None)]
        );
        assert_eq!(
            run_causes(
                "files build.rs,main.rs,note.txt",
                "files note.txt,build.rs,main.rs"
            ),
            [(Cause::Ordering, Some("file_order".into()))]
        );
        // Not knowing the project's files (trees built elsewhere): ordering.
        assert_eq!(
            causes("order alpha,bravo,charlie", "order charlie,alpha,bravo"),
            [Cause::Ordering]
        );
    }
}
