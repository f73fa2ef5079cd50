//! CycloneDX 1.6 / 1.5 JSON, hand-written (see the crate docs for why not cyclonedx-bom).
//!
//! Layout of the document:
//! * `metadata.component`: the image (`pkg:oci/...@sha256:...`, manifest digest as hash);
//!   `metadata.tools.components`: kiln; `metadata.timestamp`: `SOURCE_DATE_EPOCH`.
//! * `components`: one `file` component per regular file of the image's layers (the
//!   binaries among them carry `kiln:binary`), one `library`/`application` per crate (scope
//!   `required` for runtime crates, `excluded` plus `kiln:cargo:scope` = `proc-macro` or
//!   `build` for compile-time-only crates), one `library` per OS package.
//! * `formulation`: the pinned toolchain (rustc, cargo, C driver, linker).
//! * `dependencies`: image → files and OS packages; binary → its package's crate; crate →
//!   its dependencies as cargo resolved them.
//!
//! Everything is sorted; the `serialNumber` is a UUIDv5 of the canonical bytes of the
//! document without it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};

use crate::cargo::{Crate, Source};
use crate::layers::{ImageFile, OsPackage, PackageKind};
use crate::license::{self, License};
use crate::{SbomInput, SpecVersion};
use kiln_core::contract::Purl;

#[derive(Serialize)]
struct Bom {
    #[serde(rename = "$schema")]
    schema: String,
    #[serde(rename = "bomFormat")]
    bom_format: &'static str,
    #[serde(rename = "specVersion")]
    spec_version: &'static str,
    #[serde(rename = "serialNumber", skip_serializing_if = "Option::is_none")]
    serial_number: Option<String>,
    version: u32,
    metadata: Value,
    components: Vec<Value>,
    dependencies: Vec<Dependency>,
    formulation: Vec<Value>,
}

#[derive(Serialize)]
struct Dependency {
    #[serde(rename = "ref")]
    reference: String,
    #[serde(rename = "dependsOn")]
    depends_on: BTreeSet<String>,
}

fn prop(name: &str, value: impl Into<String>) -> Value {
    json!({"name": name, "value": value.into()})
}

/// bom-ref of a file component.
pub(crate) fn file_ref(path: &str) -> String {
    format!("file:/{path}")
}

pub(crate) fn os_package_purl(p: &OsPackage, distro: Option<&crate::layers::Distro>) -> String {
    let arch = p.arch.as_deref().unwrap_or("");
    let dq = distro.map(|d| d.qualifier()).unwrap_or_default();
    match p.kind {
        PackageKind::Deb => {
            let ns = distro
                .map(|d| d.id.as_str())
                .filter(|s| !s.is_empty())
                .unwrap_or("debian");
            Purl::new("deb", &p.name)
                .with_namespace(ns)
                .with_version(&p.version)
                .with_qualifier("arch", arch)
                .with_qualifier("distro", &dq)
                .to_string()
        }
        PackageKind::Apk => {
            let ns = distro
                .map(|d| d.id.as_str())
                .filter(|s| !s.is_empty())
                .unwrap_or("alpine");
            Purl::new("apk", &p.name)
                .with_namespace(ns)
                .with_version(&p.version)
                .with_qualifier("arch", arch)
                .with_qualifier("distro", &dq)
                .to_string()
        }
    }
}

fn licenses(field: Option<&str>, spec: SpecVersion) -> Option<Value> {
    let field = field?;
    let mut v = match license::parse(field) {
        License::Spdx(expr) => json!({"expression": expr}),
        License::Other(text) => json!({"license": {"name": text}}),
    };
    // `acknowledgement` is 1.6-only: the license is what the package declares, not one
    // kiln concluded.
    if spec == SpecVersion::V1_6 {
        match v.get_mut("license") {
            Some(l) => l["acknowledgement"] = json!("declared"),
            None => v["acknowledgement"] = json!("declared"),
        }
    }
    Some(json!([v]))
}

fn crate_component(c: &Crate, root: &str, spec: SpecVersion) -> Value {
    let mut v = json!({
        "type": if c.key() == root { "application" } else { "library" },
        "bom-ref": c.purl(),
        "name": c.name,
        "version": c.version,
        "purl": c.purl(),
        "scope": if c.scope.is_runtime() { "required" } else { "excluded" },
    });
    if let Some(sum) = &c.checksum {
        v["hashes"] = json!([{"alg": "SHA-256", "content": sum}]);
    }
    if let Some(l) = licenses(c.license.as_deref(), spec) {
        v["licenses"] = l;
    }
    if let Some(d) = c.description.as_deref().filter(|d| !d.is_empty()) {
        v["description"] = json!(d);
    }
    let mut refs = Vec::new();
    if let Some(r) = c.repository.as_deref().filter(|r| !r.is_empty()) {
        refs.push(json!({"type": "vcs", "url": r}));
    }
    if let Some(h) = c.homepage.as_deref().filter(|h| !h.is_empty()) {
        refs.push(json!({"type": "website", "url": h}));
    }
    if c.source == Source::CratesIo {
        refs.push(json!({"type": "distribution", "url": format!("https://crates.io/api/v1/crates/{}/{}/download", c.name, c.version)}));
    }
    if !refs.is_empty() {
        v["externalReferences"] = json!(refs);
    }
    let source = match c.source {
        Source::CratesIo => "crates.io",
        Source::Workspace => "workspace",
        Source::Path => "path",
    };
    let mut props = vec![
        prop("kiln:cargo:scope", c.scope.as_str()),
        prop("kiln:cargo:source", source),
    ];
    if let Some(f) = &c.license_file {
        props.push(prop("kiln:cargo:license-file", f.clone()));
    }
    v["properties"] = json!(props);
    v
}

fn file_component(f: &ImageFile, binary: Option<&str>) -> Value {
    let mut props = vec![
        prop("kiln:layer", f.layer.to_string()),
        prop("kiln:file:mode", format!("{:04o}", f.mode)),
        prop("kiln:file:size", f.size.to_string()),
    ];
    if let Some(b) = binary {
        props.push(prop("kiln:binary", b));
    }
    json!({
        "type": "file",
        "bom-ref": file_ref(&f.path),
        "name": format!("/{}", f.path),
        "hashes": [{"alg": "SHA-256", "content": f.sha256.hex()}, {"alg": "SHA-1", "content": f.sha1}],
        "properties": props,
    })
}

fn os_component(p: &OsPackage, distro: Option<&crate::layers::Distro>, spec: SpecVersion) -> Value {
    let purl = os_package_purl(p, distro);
    let mut v = json!({
        "type": "library",
        "bom-ref": purl,
        "name": p.name,
        "version": p.version,
        "purl": purl,
        "properties": [prop("kiln:layer", p.layer.to_string()), prop("kiln:package-db", match p.kind { PackageKind::Deb => "dpkg", PackageKind::Apk => "apk" })],
    });
    if let Some(l) = licenses(p.license.as_deref(), spec) {
        v["licenses"] = l;
    }
    if let Some(d) = p.description.as_deref().filter(|d| !d.is_empty()) {
        v["description"] = json!(d);
    }
    v
}

pub(crate) fn write(input: &SbomInput, spec: SpecVersion) -> Vec<u8> {
    let image_ref = input.image.purl();
    let distro = input.layers.distro.as_ref();
    let mut components: BTreeMap<String, Value> = BTreeMap::new();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    deps.insert(image_ref.clone(), BTreeSet::new());

    // Files (binaries among them).
    let binaries: BTreeMap<&str, &str> = input
        .binaries
        .iter()
        .map(|b| (b.path.trim_start_matches('/'), b.name.as_str()))
        .collect();
    let root_purl = input.crates.root().purl();
    for f in &input.layers.files {
        let r = file_ref(&f.path);
        let bin = binaries.get(f.path.as_str()).copied();
        components.insert(r.clone(), file_component(f, bin));
        deps.entry(image_ref.clone()).or_default().insert(r.clone());
        let d = deps.entry(r).or_default();
        if bin.is_some() {
            d.insert(root_purl.clone());
        }
    }
    // Crates.
    for c in input.crates.crates.values() {
        let r = c.purl();
        components.insert(r.clone(), crate_component(c, &input.crates.root, spec));
        let d = deps.entry(r).or_default();
        for k in c.deps.keys() {
            d.insert(input.crates.crates[k].purl());
        }
    }
    // OS packages.
    for p in &input.layers.packages {
        let r = os_package_purl(p, distro);
        components.insert(r.clone(), os_component(p, distro, spec));
        deps.entry(image_ref.clone()).or_default().insert(r.clone());
        deps.entry(r).or_default();
    }

    let img = &input.image;
    let mut image_props = vec![
        prop("kiln:image:config-digest", img.config_digest.to_string()),
        prop("kiln:image:platform", img.platform.clone()),
        prop("kiln:image:tag", img.tag.clone()),
    ];
    if let Some(b) = &img.base {
        image_props.push(prop("kiln:image:base", b.to_string()));
    }
    let metadata = json!({
        "timestamp": kiln_core::time::rfc3339(input.sde),
        "tools": {"components": [{
            "type": "application",
            "bom-ref": format!("tool:kiln@{}", crate::KILN_VERSION),
            "name": "kiln",
            "version": crate::KILN_VERSION,
            "externalReferences": [{"type": "vcs", "url": "https://github.com/kiln-build/kiln"}],
        }]},
        "component": {
            "type": "container",
            "bom-ref": image_ref,
            "name": img.name,
            "version": img.manifest_digest.to_string(),
            "purl": image_ref,
            "hashes": [{"alg": "SHA-256", "content": img.manifest_digest.hex()}],
            "properties": image_props,
        },
        "properties": [
            prop("cdx:reproducible", "true"),
            prop("kiln:source-date-epoch", input.sde.to_string()),
        ],
    });

    let tc = &input.toolchain;
    let tools: Vec<Value> = tc
        .tools
        .iter()
        .map(|t| {
            let mut v = json!({"type": "application", "bom-ref": format!("toolchain:{}", t.name), "name": t.name});
            if let Some(ver) = &t.version {
                v["version"] = json!(ver);
            }
            if let Some(d) = &t.sha256 {
                v["hashes"] = json!([{"alg": "SHA-256", "content": d.hex()}]);
            }
            if let Some(k) = &t.lock_key {
                v["properties"] = json!([prop("kiln:toolchain:lock-key", k.clone())]);
            }
            v
        })
        .collect();
    let formulation = vec![json!({
        "bom-ref": "formulation:toolchain",
        "components": tools,
        "properties": [
            prop("kiln:toolchain:lock", tc.lock_path.clone()),
            prop("kiln:toolchain:lock-digest", tc.lock_digest.to_string()),
            prop("kiln:toolchain:target", tc.target.clone()),
            prop("kiln:cargo:profile", "release"),
        ],
    })];

    let mut bom = Bom {
        schema: format!(
            "http://cyclonedx.org/schema/bom-{}.schema.json",
            spec.as_str()
        ),
        bom_format: "CycloneDX",
        spec_version: spec.as_str(),
        serial_number: None,
        version: 1,
        metadata,
        components: components.into_values().collect(),
        dependencies: deps
            .into_iter()
            .map(|(reference, depends_on)| Dependency {
                reference,
                depends_on,
            })
            .collect(),
        formulation,
    };
    // The serial number names the content: a UUIDv5 of the canonical bytes without it.
    let unsigned = kiln_core::canonical::to_vec(&bom).expect("the BOM serializes");
    bom.serial_number = Some(format!("urn:uuid:{}", crate::content_uuid(&unsigned)));
    kiln_core::canonical::to_vec_pretty(&bom).expect("the BOM serializes")
}
