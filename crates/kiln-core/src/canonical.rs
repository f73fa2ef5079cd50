//! Canonical JSON: object keys sorted by their UTF-8 bytes, no insignificant whitespace,
//! serde_json's shortest number and string forms.
//!
//! Written by hand because serde_json's key order depends on a cargo feature
//! (`preserve_order`) that any crate in the dependency graph can switch on, and types from
//! crates such as oci-spec keep annotations in `HashMap`s. Sorting explicitly here makes
//! the bytes independent of both.

use serde::Serialize;
use serde_json::Value;

/// Serializes `value` to canonical JSON bytes.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let v = serde_json::to_value(value)?;
    let mut out = Vec::with_capacity(256);
    write_value(&v, &mut out);
    Ok(out)
}

/// Canonical JSON followed by a newline, indented two spaces: the form kiln uses for
/// human-facing files (summaries, locks). Still deterministic, still sorted.
pub fn to_vec_pretty<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let v = serde_json::to_value(value)?;
    let mut out = serde_json::to_vec_pretty(&SortedView(&v))?;
    out.push(b'\n');
    Ok(out)
}

/// Serializes a `Value` with its object keys in sorted order whatever the map type.
struct SortedView<'a>(&'a Value);

impl Serialize for SortedView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut map = s.serialize_map(Some(keys.len()))?;
                for k in keys {
                    map.serialize_entry(k, &SortedView(&m[k]))?;
                }
                map.end()
            }
            Value::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(&SortedView(v))?;
                }
                seq.end()
            }
            other => other.serialize(s),
        }
    }
}

fn write_value(v: &Value, out: &mut Vec<u8>) {
    // serde_json::to_writer on a SortedView cannot fail on an in-memory Value.
    serde_json::to_writer(out, &SortedView(v)).expect("serializing a JSON value to memory");
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    #[test]
    fn keys_sorted_at_every_depth_and_compact() {
        let mut inner = HashMap::new();
        for k in ["zeta", "alpha", "mid", "Beta"] {
            inner.insert(k.to_string(), 1);
        }
        let v = serde_json::json!({"b": [ {"y": 1, "x": 2} ], "a": inner});
        let s = String::from_utf8(super::to_vec(&v).unwrap()).unwrap();
        assert_eq!(
            s,
            r#"{"a":{"Beta":1,"alpha":1,"mid":1,"zeta":1},"b":[{"x":2,"y":1}]}"#
        );
    }

    #[test]
    fn pretty_is_sorted_too() {
        let v = serde_json::json!({"b": 1, "a": {"d": 1, "c": 2}});
        let s = String::from_utf8(super::to_vec_pretty(&v).unwrap()).unwrap();
        assert_eq!(
            s,
            "{\n  \"a\": {\n    \"c\": 2,\n    \"d\": 1\n  },\n  \"b\": 1\n}\n"
        );
    }
}
