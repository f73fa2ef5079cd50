//! ELF binaries: compared section by section, a differing section explained by the
//! strings only one side has, or by a build time stored as an integer.

use std::collections::{BTreeMap, BTreeSet};

use crate::explain::{Cause, classify_text};

use super::bytes::{string_delta, strings};
use super::scan::both;
use super::{Differ, join};

impl Differ<'_> {
    /// Build times stored as 64-bit integers (seconds or milliseconds, little- or
    /// big-endian) where the two sides' bytes differ: `value @offset` of each side's.
    fn time_integers(&self, a: &[u8], b: &[u8]) -> Option<(String, String)> {
        if self.hints.build_times.is_empty() {
            return None;
        }
        let scan = |x: &[u8], other: &[u8]| -> Vec<String> {
            let same_len = x.len() == other.len();
            let mut found = Vec::new();
            let mut i = 0;
            while i + 8 <= x.len() && found.len() < 4 {
                let w: [u8; 8] = x[i..i + 8].try_into().expect("8 bytes");
                if same_len && other[i..i + 8] == w {
                    i += 1;
                    continue;
                }
                let hit = [u64::from_le_bytes(w), u64::from_be_bytes(w)]
                    .into_iter()
                    .find(|&v| v >= 1_000_000_000 && self.hints.is_build_time(v));
                match hit {
                    Some(v) => {
                        found.push(format!("{v} @{i:#x}"));
                        i += 8;
                    }
                    None => i += 1,
                }
            }
            found
        };
        let (fa, fb) = (scan(a, b), scan(b, a));
        (!fa.is_empty() || !fb.is_empty()).then(|| (fa.join(" "), fb.join(" ")))
    }

    /// Two ELF binaries, section by section; see [`Differ::elf_section`]. What no section
    /// explains is judged last, once it is known whether any root cause was found.
    pub(super) fn elf(&mut self, loc: &str, a: &[u8], b: &[u8]) {
        let (Ok(fa), Ok(fb)) = (object::File::parse(a), object::File::parse(b)) else {
            return self.bytes(loc, a, b);
        };
        let (sa, sb) = (secs(&fa), secs(&fb));
        let names: BTreeSet<&String> = sa.keys().chain(sb.keys()).collect();
        let mut strs = section_strings(&names, &sa, &sb);
        let mut unexplained = Vec::new();
        let mut root_found = false;
        for name in names {
            let at = join(loc, &format!("ELF section {name}"));
            match (sa.get(name), sb.get(name)) {
                (Some(x), Some(y)) if x.data == y.data && x.size == y.size => {}
                (Some(x), Some(y)) => {
                    let strs = strs.remove(name);
                    if let Some(u) = self.elf_section(at, name, x, y, strs, &mut root_found) {
                        unexplained.push(u);
                    }
                }
                (x, _) => {
                    let what = if x.is_some() {
                        "section only in A"
                    } else {
                        "section only in B"
                    };
                    self.push(
                        at,
                        what,
                        None,
                        None,
                        Cause::Toolchain,
                        Some("toolchain".into()),
                    );
                }
            }
        }
        for (at, what, exec, same_size) in unexplained {
            // Code and address tables change when data they point into moves: a
            // consequence, once a root cause is known. Alone, equal-size data that differs
            // without any differing string is most often a random value.
            let cause = if root_found {
                Cause::Derived
            } else if !exec && same_size {
                Cause::Randomness
            } else {
                Cause::Unknown
            };
            self.push(at, what, None, None, cause, None);
        }
    }

    /// One section both sides have that differs: a build ID is derived from the rest; a
    /// build time stored as an integer and the strings only one side has (data sections)
    /// explain it. Returns the section when nothing did, for [`Differ::elf`] to judge once
    /// all sections are seen; sets `root_found` when a root cause was found.
    fn elf_section<'s>(
        &mut self,
        at: String,
        name: &str,
        x: &Sec<'s>,
        y: &Sec<'s>,
        strs: Option<(Vec<&'s str>, Vec<&'s str>)>,
        root_found: &mut bool,
    ) -> Option<Unexplained> {
        if name == ".note.gnu.build-id" {
            self.push(
                at,
                "build ID differs (a hash of the rest of the binary)",
                Some(hex_of(x.data)),
                Some(hex_of(y.data)),
                Cause::Derived,
                None,
            );
            return None;
        }
        let first = x
            .data
            .iter()
            .zip(y.data)
            .position(|(p, q)| p != q)
            .unwrap_or(x.data.len().min(y.data.len()));
        let what = format!(
            "section differs from offset {first} ({} vs {} bytes)",
            x.size, y.size
        );
        let mut explained = false;
        if let Some((ia, ib)) = self.time_integers(x.data, y.data) {
            *root_found = true;
            explained = true;
            self.push(
                at.clone(),
                "integer timestamp: a build time stored as a 64-bit integer",
                Some(ia),
                Some(ib),
                Cause::Timestamp,
                None,
            );
        }
        if !x.exec {
            let (xs, ys) = strs.unwrap_or_else(|| (strings(x.data, 6), strings(y.data, 6)));
            explained |= self.elf_strings(&at, name, &xs, &ys, root_found);
        }
        (!explained).then_some((at, what, x.exec, x.size == y.size))
    }

    /// The strings of a data section only one side has, classified; an unexplained one is
    /// the toolchain's in `.comment` and a consequence next to a string that changed
    /// length. Returns whether any was found.
    fn elf_strings(
        &mut self,
        at: &str,
        name: &str,
        xs: &[&str],
        ys: &[&str],
        root_found: &mut bool,
    ) -> bool {
        let (oa, ob) = string_delta(xs, ys);
        if oa.is_empty() && ob.is_empty() {
            return false;
        }
        let findings = classify_text(&oa.join("\n"), &ob.join("\n"), self.hints);
        let toolchain = name == ".comment";
        // Once a string in this section changed length, the bytes next to
        // other strings move too; an unexplained neighbour is a consequence.
        let shifted = findings.iter().any(|f| {
            matches!(
                f.cause,
                Cause::BuildPath
                    | Cause::Timestamp
                    | Cause::Randomness
                    | Cause::Hostname
                    | Cause::Environment
            )
        });
        let mut explained = false;
        for f in findings {
            let cause = match f.cause {
                Cause::Unknown if toolchain => Cause::Toolchain,
                Cause::Unknown if shifted => Cause::Derived,
                c => c,
            };
            *root_found |= cause.is_root() && cause != Cause::Unknown;
            explained = true;
            self.push(
                at.to_string(),
                format!("embedded strings: {}", cause.as_str()),
                Some(f.a.join(" ")),
                Some(f.b.join(" ")),
                cause,
                f.variation,
            );
        }
        explained
    }
}

/// A section no evidence explained: where, what, whether it is code, whether both sides
/// are the same size.
type Unexplained = (String, String, bool, bool);

/// The printable strings of every section both sides have that differs and holds data
/// (what [`Differ::elf_section`] compares), side A's here and side B's on a second thread
/// (pure, so nothing else changes).
fn section_strings<'s, 'n>(
    names: &BTreeSet<&'n String>,
    sa: &BTreeMap<String, Sec<'s>>,
    sb: &BTreeMap<String, Sec<'s>>,
) -> BTreeMap<&'n String, (Vec<&'s str>, Vec<&'s str>)> {
    let compared: Vec<(&String, &Sec, &Sec)> = names
        .iter()
        .filter_map(|n| Some((*n, sa.get(*n)?, sb.get(*n)?)))
        .filter(|(_, x, y)| !x.exec && (x.data != y.data || x.size != y.size))
        .collect();
    let (strs_a, strs_b) = both(
        || {
            compared
                .iter()
                .map(|(_, x, _)| strings(x.data, 6))
                .collect::<Vec<_>>()
        },
        || {
            compared
                .iter()
                .map(|(_, _, y)| strings(y.data, 6))
                .collect::<Vec<_>>()
        },
    );
    compared
        .iter()
        .map(|(n, _, _)| *n)
        .zip(strs_a.into_iter().zip(strs_b))
        .collect()
}

struct Sec<'d> {
    data: &'d [u8],
    exec: bool,
    size: u64,
}

/// The sections of an ELF file by name, with their bytes (none for NOBITS).
fn secs<'d>(f: &object::File<'d>) -> BTreeMap<String, Sec<'d>> {
    use object::{Object, ObjectSection, SectionFlags, SectionKind};
    let mut m = BTreeMap::new();
    for s in f.sections() {
        let name = s.name().unwrap_or("?").to_string();
        let exec = matches!(s.kind(), SectionKind::Text)
            || matches!(s.flags(), SectionFlags::Elf { sh_flags } if sh_flags & u64::from(object::elf::SHF_EXECINSTR) != 0);
        let data = if s.kind() == SectionKind::UninitializedData {
            &[][..]
        } else {
            s.data().unwrap_or(&[])
        };
        m.insert(
            name,
            Sec {
                data,
                exec,
                size: s.size(),
            },
        );
    }
    m
}

fn hex_of(b: &[u8]) -> String {
    b.iter()
        .rev()
        .take(20)
        .rev()
        .map(|x| format!("{x:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::fixtures::h;
    use crate::explain::Hints;

    #[test]
    fn build_times_stored_as_integers_are_timestamps() {
        let hints = Hints {
            build_times: vec![
                (1_795_000_000, 1_795_000_100),
                (1_889_700_000, 1_889_700_090),
            ],
            ..h()
        };
        let mut d = Differ {
            hints: &hints,
            out: Vec::new(),
        };
        let mut a = vec![0x90u8; 64];
        let mut b = a.clone();
        a[16..24].copy_from_slice(&1_795_000_042u64.to_le_bytes());
        b[16..24].copy_from_slice(&1_889_700_042u64.to_le_bytes());
        assert_eq!(
            d.time_integers(&a, &b),
            Some(("1795000042 @0x10".into(), "1889700042 @0x10".into()))
        );
        // Milliseconds, big-endian.
        a[32..40].copy_from_slice(&1_795_000_042_123u64.to_be_bytes());
        assert!(
            d.time_integers(&a, &b)
                .unwrap()
                .0
                .contains("1795000042123 @0x20")
        );
        // Equal bytes are not a difference; other integers are not times.
        assert_eq!(d.time_integers(&a, &a), None);
        let mut c = vec![0u8; 64];
        c[8..16].copy_from_slice(&1_700_000_000u64.to_le_bytes());
        assert_eq!(d.time_integers(&c, &[1u8; 64]), None);
        d.out.clear();
    }
}
