//! The fallback for text and binary files no format differ understands: the first
//! differing offset, and the printable strings only one side has, classified.

use std::collections::HashMap;

use crate::explain::{Cause, tokens};

use super::{Differ, join};

fn printable(c: u8) -> bool {
    (0x20..0x7f).contains(&c) || c == b'\t'
}

/// The printable runs of at least `min` bytes, borrowed from `b`.
pub(super) fn strings(b: &[u8], min: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && !printable(b[i]) {
            i += 1;
        }
        let start = i;
        while i < b.len() && printable(b[i]) {
            i += 1;
        }
        // Printable bytes are ASCII, so always UTF-8.
        if i > start
            && i - start >= min
            && let Ok(s) = std::str::from_utf8(&b[start..i])
        {
            out.push(s);
        }
    }
    out
}

/// Strings only one side has (as multisets), each side in its own order.
pub(super) fn string_delta<'s>(a: &[&'s str], b: &[&'s str]) -> (Vec<&'s str>, Vec<&'s str>) {
    // Only looked up, never iterated: the order of the output is that of `a` and `b`.
    let mut count: HashMap<&str, i64> = HashMap::with_capacity(a.len().max(b.len()));
    for s in a {
        *count.entry(s).or_default() += 1;
    }
    for s in b {
        *count.entry(s).or_default() -= 1;
    }
    let mut left = count.clone();
    let mut only_a = Vec::new();
    for s in a {
        let c = left.get_mut(s).expect("counted");
        if *c > 0 {
            *c -= 1;
            only_a.push(*s);
        }
    }
    let mut left = count;
    let mut only_b = Vec::new();
    for s in b {
        let c = left.get_mut(s).expect("counted");
        if *c < 0 {
            *c += 1;
            only_b.push(*s);
        }
    }
    (only_a, only_b)
}

impl Differ<'_> {
    pub(super) fn bytes(&mut self, loc: &str, a: &[u8], b: &[u8]) {
        let first = a
            .iter()
            .zip(b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        let (sa, sb) = string_delta(&strings(a, 4), &strings(b, 4));
        let found = !(sa.is_empty() && sb.is_empty())
            && self.text_findings(loc, "strings differ", &sa.join("\n"), &sb.join("\n"));
        if !found {
            let cause = if a.len() == b.len() && std::str::from_utf8(a).is_err() {
                Cause::Randomness
            } else {
                Cause::Unknown
            };
            self.push(
                join(loc, &format!("offset {first}")),
                format!(
                    "bytes differ from offset {first} ({} vs {} bytes)",
                    a.len(),
                    b.len()
                ),
                None,
                None,
                cause,
                None,
            );
        }
    }
}

/// Token-level helper re-exported for the report: the printable strings a file holds.
pub fn printable_tokens(b: &[u8]) -> Vec<String> {
    strings(b, 6)
        .iter()
        .flat_map(|s| {
            tokens(s)
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::diff_bytes;
    use crate::diff::fixtures::h;

    #[test]
    fn bytes_without_strings_report_offset() {
        let d = diff_bytes(&[0, 1, 2, 3, 0xff], &[0, 1, 9, 3, 0xff], &h());
        assert_eq!(d.len(), 1);
        assert!(d[0].what.contains("offset 2"), "{d:?}");
    }

    #[test]
    fn printable_runs_and_their_delta() {
        assert_eq!(
            strings(b"ab\0abcd\x01\tefgh ij\xffxyz", 4),
            ["abcd", "\tefgh ij"]
        );
        assert_eq!(strings(b"abcd", 4), ["abcd"]);
        assert!(strings(b"", 1).is_empty());
        let (a, b) = string_delta(&["x", "y", "x", "z"], &["x", "z", "w"]);
        // The first occurrences are the surplus: each side keeps its own order.
        assert_eq!((a, b), (vec!["x", "y"], vec!["w"]));
    }
}
