//! JSON documents (OCI manifests, configs, indexes): compared as values, path by path
//! (`$.rootfs.diff_ids[0]`), so key order and whitespace are told apart from content.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::explain::{Cause, classify_text};

use super::{Differ, join};

impl Differ<'_> {
    /// Two JSON documents of a pair: compared as values from `$`; if they are equal, only
    /// their serialization differs (key order or whitespace).
    pub(super) fn json_document(
        &mut self,
        loc: &str,
        a: &[u8],
        b: &[u8],
        va: Option<Value>,
        vb: Option<Value>,
    ) {
        let (Some(va), Some(vb)) = (va, vb) else {
            return self.bytes(loc, a, b);
        };
        let before = self.out.len();
        self.json(loc, "$", None, &va, &vb);
        if self.out.len() == before {
            // Same document, other bytes: key order or whitespace.
            self.push(
                join(loc, "$"),
                "same JSON value, different serialization (key order or whitespace)",
                None,
                None,
                Cause::Ordering,
                None,
            );
        }
    }

    /// Two JSON values at `path` (`key` is the object key that holds them, if any).
    fn json(&mut self, loc: &str, path: &str, key: Option<&str>, a: &Value, b: &Value) {
        if a == b {
            return;
        }
        match (a, b) {
            (Value::Object(oa), Value::Object(ob)) => self.json_objects(loc, path, oa, ob),
            (Value::Array(xa), Value::Array(xb)) => self.json_arrays(loc, path, key, xa, xb),
            _ => self.json_scalars(loc, path, key, a, b),
        }
    }

    /// Two objects, key by key in sorted order: a key only one side has, or the values of
    /// a common key.
    fn json_objects(
        &mut self,
        loc: &str,
        path: &str,
        oa: &Map<String, Value>,
        ob: &Map<String, Value>,
    ) {
        let keys: BTreeSet<&String> = oa.keys().chain(ob.keys()).collect();
        for k in keys {
            let p = if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                format!("{path}.{k}")
            } else {
                format!("{path}[{k:?}]")
            };
            match (oa.get(k), ob.get(k)) {
                (Some(x), Some(y)) => self.json(loc, &p, Some(k), x, y),
                (x, y) => {
                    let text = x.or(y).map(Value::to_string).unwrap_or_default();
                    let (cause, var) = crate::explain::classify_token(&text, self.hints);
                    let what = if x.is_some() {
                        "key only in A"
                    } else {
                        "key only in B"
                    };
                    self.push(
                        join(loc, &p),
                        what,
                        x.map(Value::to_string),
                        y.map(Value::to_string),
                        cause,
                        var,
                    );
                }
            }
        }
    }

    /// Two arrays: the same elements in another order, else element by element.
    fn json_arrays(
        &mut self,
        loc: &str,
        path: &str,
        key: Option<&str>,
        xa: &[Value],
        xb: &[Value],
    ) {
        let canon = |v: &[Value]| {
            let mut s: Vec<String> = v.iter().map(Value::to_string).collect();
            s.sort();
            s
        };
        if xa.len() == xb.len() && canon(xa) == canon(xb) {
            self.push(
                join(loc, path),
                "same elements in a different order",
                Some(Value::Array(xa.to_vec()).to_string()),
                Some(Value::Array(xb.to_vec()).to_string()),
                Cause::Ordering,
                None,
            );
            return;
        }
        for i in 0..xa.len().max(xb.len()) {
            let p = format!("{path}[{i}]");
            match (xa.get(i), xb.get(i)) {
                (Some(x), Some(y)) => self.json(loc, &p, key, x, y),
                (x, y) => {
                    let what = if x.is_some() {
                        "element only in A"
                    } else {
                        "element only in B"
                    };
                    self.push(
                        join(loc, &p),
                        what,
                        x.map(Value::to_string),
                        y.map(Value::to_string),
                        Cause::Unknown,
                        None,
                    );
                }
            }
        }
    }

    /// Two differing values that are not both objects or both arrays, with their likely
    /// cause (a `*size`/`length` number is derived from other content).
    fn json_scalars(&mut self, loc: &str, path: &str, key: Option<&str>, a: &Value, b: &Value) {
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let (ta, tb) = (text(a), text(b));
        let findings = classify_text(&ta, &tb, self.hints);
        let sizeish = key
            .is_some_and(|k| k.ends_with("size") || k.ends_with("Size") || k == "length")
            && a.is_number();
        let best = if sizeish {
            (Cause::Derived, None)
        } else {
            findings
                .iter()
                .min_by_key(|f| match f.cause {
                    Cause::Derived => 2,
                    Cause::Unknown => 1,
                    _ => 0,
                })
                .map(|f| (f.cause, f.variation.clone()))
                .unwrap_or((Cause::Unknown, None))
        };
        self.push(
            join(loc, path),
            "value differs",
            Some(ta),
            Some(tb),
            best.0,
            best.1,
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::diff::diff_bytes;
    use crate::diff::fixtures::h;
    use crate::explain::Cause;

    #[test]
    fn json_paths_sorted_with_both_values() {
        let a = br#"{"b":{"created":"2024-01-01T00:00:00Z","n":1},"a":[1,2,3],"size":5}"#;
        let b = br#"{"b":{"created":"2027-01-01T00:00:00Z","n":1},"a":[3,1,2],"size":6}"#;
        let d = diff_bytes(a, b, &h());
        let locs: Vec<(&str, Cause)> = d.iter().map(|d| (d.location.as_str(), d.cause)).collect();
        assert_eq!(
            locs,
            [
                ("$.a", Cause::Ordering),
                ("$.b.created", Cause::Timestamp),
                ("$.size", Cause::Derived)
            ]
        );
        assert_eq!(d[1].a.as_deref(), Some("2024-01-01T00:00:00Z"));
    }
}
