//! Telling file types apart: what an artifact is diffed as (gzip, ELF, tar, JSON, text,
//! bytes), from its first bytes where they decide it.

use serde_json::Value;

/// [`kind_of`] for the kinds a file's first [`HEAD`] bytes decide (when the file is at
/// least that long); `None` when the whole file is needed.
pub(super) fn kind_of_head(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if head.starts_with(b"\x7fELF") {
        Some("elf")
    } else if is_tar(head) {
        Some("tar")
    } else {
        None
    }
}

fn is_tar(b: &[u8]) -> bool {
    b.len() >= 512 && &b[257..262] == b"ustar"
}

fn is_json(b: &[u8]) -> bool {
    matches!(
        b.iter().find(|c| !c.is_ascii_whitespace()),
        Some(b'{') | Some(b'[')
    )
}

/// The type an artifact is diffed as.
pub fn kind_of(b: &[u8]) -> &'static str {
    sniff(b).0
}

/// [`kind_of`], and for JSON the parsed document (so it is parsed once).
pub(super) fn sniff(b: &[u8]) -> (&'static str, Option<Value>) {
    if let Some(k) = kind_of_head(b) {
        return (k, None);
    }
    if is_json(b)
        && let Ok(v) = serde_json::from_slice::<Value>(b)
    {
        ("json", Some(v))
    } else if std::str::from_utf8(b).is_ok() {
        ("text", None)
    } else {
        ("bytes", None)
    }
}
