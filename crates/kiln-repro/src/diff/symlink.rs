//! Symlinks are entries of their own, never followed: compared by target, or reported as
//! a link on one side and a regular file on the other.

use crate::explain::{Cause, classify_text};

use super::Differ;
use super::scan::Scanned;

impl Differ<'_> {
    /// Two entries of the same name, at least one a symlink: compared by target.
    pub(super) fn symlinks(&mut self, loc: &str, a: &Scanned, b: &Scanned) {
        let target = |s: &Scanned| {
            if s.link {
                String::from_utf8_lossy(&s.head).into_owned()
            } else {
                "(a regular file)".to_string()
            }
        };
        let (ta, tb) = (target(a), target(b));
        if a.link && b.link {
            let cause = classify_text(&ta, &tb, self.hints)
                .into_iter()
                .map(|f| f.cause)
                .find(|c| *c != Cause::Unknown)
                .unwrap_or(Cause::Unknown);
            self.push(
                loc.to_string(),
                "symlink target differs",
                Some(ta),
                Some(tb),
                cause,
                None,
            );
        } else {
            let what = if a.link {
                "a symlink in A, a regular file in B"
            } else {
                "a regular file in A, a symlink in B"
            };
            self.push(
                loc.to_string(),
                what,
                Some(ta),
                Some(tb),
                Cause::Unknown,
                None,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::diff::fixtures::h;
    use crate::diff::{ArtifactDiff, Verdict, diff_dirs};

    #[test]
    fn symlinks_are_entries_compared_by_target() {
        let d = tempfile::tempdir().unwrap();
        for side in ["a", "b"] {
            let t = d.path().join(side);
            std::fs::create_dir_all(&t).unwrap();
            std::fs::write(t.join("same.txt"), "same").unwrap();
            std::os::unix::fs::symlink("same.txt", t.join("alias")).unwrap();
        }
        // B: an extra symlink loop, a link whose target differs, a file that is a link.
        std::os::unix::fs::symlink("loop", d.path().join("b/loop")).unwrap();
        std::os::unix::fs::symlink("x", d.path().join("a/moved")).unwrap();
        std::os::unix::fs::symlink("y", d.path().join("b/moved")).unwrap();
        std::fs::write(d.path().join("a/kind"), "file").unwrap();
        std::os::unix::fs::symlink("same.txt", d.path().join("b/kind")).unwrap();
        let diffs = diff_dirs(&d.path().join("a"), &d.path().join("b"), &h()).unwrap();
        let by: BTreeMap<&str, &ArtifactDiff> =
            diffs.iter().map(|x| (x.path.as_str(), x)).collect();
        assert_eq!(
            by.keys().copied().collect::<Vec<_>>(),
            ["alias", "kind", "loop", "moved", "same.txt"]
        );
        assert_eq!(by["alias"].verdict, Verdict::Identical);
        assert_eq!(by["alias"].kind, "symlink");
        assert_eq!(by["loop"].verdict, Verdict::OnlyInB);
        assert_eq!(by["loop"].kind, "symlink");
        assert_eq!(by["moved"].verdict, Verdict::Different);
        let m = &by["moved"].differences[0];
        assert_eq!(
            (m.what.as_str(), m.a.as_deref(), m.b.as_deref()),
            ("symlink target differs", Some("x"), Some("y"))
        );
        assert_eq!(by["kind"].verdict, Verdict::Different);
        assert_eq!(
            by["kind"].differences[0].what,
            "a regular file in A, a symlink in B"
        );
    }
}
