//! OCI layouts: a blob is named by its digest, which differs whenever its content does, so
//! blobs are paired across the two trees by their role (`manifests[0]/layers[1]`), found by
//! walking each layout from its index.json.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

/// Names each blob of every OCI layout under `dir` by its role, walking from index.json:
/// `manifests[i]`, then `config` and `layers[j]` of each manifest, nested indexes too.
/// The files it reads whole (index.json, JSON blobs) are kept in `read`, by relative path.
pub(super) fn blob_roles(
    dir: &Path,
    files: &[String],
    read: &mut BTreeMap<String, Vec<u8>>,
) -> BTreeMap<String, String> {
    let mut roles = BTreeMap::new();
    for layout in files.iter().filter_map(|f| f.strip_suffix("oci-layout")) {
        let base = dir.join(layout);
        let Ok(index) = std::fs::read(base.join("index.json")) else {
            continue;
        };
        let parsed = serde_json::from_slice::<Value>(&index);
        read.insert(format!("{layout}index.json"), index);
        let Ok(index) = parsed else {
            continue;
        };
        let mut queue: Vec<(String, Value)> = vec![(String::new(), index)];
        while let Some((role, doc)) = queue.pop() {
            let mut children = Vec::new();
            if let Some(m) = doc.get("manifests").and_then(Value::as_array) {
                children.extend(
                    m.iter()
                        .enumerate()
                        .map(|(i, d)| (format!("manifests[{i}]"), d)),
                );
            }
            if let Some(c) = doc.get("config") {
                children.push(("config".into(), c));
            }
            for key in ["layers", "blobs"] {
                if let Some(l) = doc.get(key).and_then(Value::as_array) {
                    children.extend(
                        l.iter()
                            .enumerate()
                            .map(|(i, d)| (format!("{key}[{i}]"), d)),
                    );
                }
            }
            for (name, desc) in children {
                let Some(hex) = desc
                    .get("digest")
                    .and_then(Value::as_str)
                    .and_then(|d| d.strip_prefix("sha256:"))
                else {
                    continue;
                };
                let rel = format!("{layout}blobs/sha256/{hex}");
                if roles.contains_key(&rel) || !files.contains(&rel) {
                    continue;
                }
                let child_role = if role.is_empty() {
                    name
                } else {
                    format!("{role}/{name}")
                };
                roles.insert(rel.clone(), format!("{layout}blobs/{child_role}"));
                if let Some(bytes) = read_if_json(&base.join(format!("blobs/sha256/{hex}"))) {
                    if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                        queue.push((child_role, v));
                    }
                    read.insert(rel, bytes);
                }
            }
        }
    }
    roles
}

/// The bytes of `path` if it can be read and starts with `{`; a layer is not read past its
/// first byte.
fn read_if_json(path: &Path) -> Option<Vec<u8>> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut first = [0u8; 1];
    f.read_exact(&mut first).ok()?;
    if first[0] != b'{' {
        return None;
    }
    let mut bytes = first.to_vec();
    f.read_to_end(&mut bytes).ok()?;
    Some(bytes)
}
