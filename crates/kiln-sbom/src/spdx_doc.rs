//! SPDX 2.3 JSON.
//!
//! Packages: the image (`CONTAINER`), every crate (the built package is `APPLICATION`),
//! every OS package, and the toolchain's tools. Files: every regular file of the image
//! with SHA1 (mandatory in SPDX 2.3) and SHA256. Relationships: the document `DESCRIBES`
//! the image; the image `CONTAINS` its files and OS packages; a binary is
//! `GENERATED_FROM` its crate; crates `DEPENDS_ON` their runtime dependencies, and
//! compile-time-only ones (build dependencies, proc-macros) are `BUILD_DEPENDENCY_OF` the
//! crate that uses them; tools are `BUILD_TOOL_OF` the image.
//!
//! `documentNamespace` is derived from the content (a UUIDv5 of the canonical document
//! without it), `created` is `SOURCE_DATE_EPOCH`: no randomness, no clock.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::SbomInput;
use crate::cargo::{EdgeKind, Source};
use crate::layers::PackageKind;
use crate::license::{self, License};

/// An SPDX identifier (`SPDXRef-[A-Za-z0-9.-]+`) for `kind` and `name`: the name with other
/// characters replaced by `-`, plus a digest suffix whenever that replacement changed it,
/// so distinct names never collide.
fn spdx_id(kind: &str, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean == name {
        format!("SPDXRef-{kind}-{clean}")
    } else {
        let h = kiln_core::Digest::of(name.as_bytes()).hex();
        format!("SPDXRef-{kind}-{}-{}", clean.trim_matches('-'), &h[..12])
    }
}

fn declared(field: Option<&str>) -> String {
    match field.map(license::parse) {
        Some(License::Spdx(e)) => e,
        _ => "NOASSERTION".into(),
    }
}

fn purl_ref(purl: &str) -> Value {
    json!({"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl})
}

fn is_url(s: &str) -> bool {
    (s.starts_with("https://") || s.starts_with("http://")) && !s.contains(char::is_whitespace)
}

/// SPDX 2.3 §7.9: SHA1 of the sorted, concatenated SHA1 hex digests of the package's files.
fn verification_code(input: &SbomInput) -> String {
    let mut sums: Vec<&str> = input.layers.files.iter().map(|f| f.sha1.as_str()).collect();
    sums.sort();
    sha1_smol::Sha1::from(sums.concat()).digest().to_string()
}

pub(crate) fn write(input: &SbomInput) -> Vec<u8> {
    let img = &input.image;
    let image_id = spdx_id("Image", &img.name);
    let mut packages: BTreeMap<String, Value> = BTreeMap::new();
    let mut files: BTreeMap<String, Value> = BTreeMap::new();
    let mut rels: Vec<(String, &str, String)> =
        vec![("SPDXRef-DOCUMENT".into(), "DESCRIBES", image_id.clone())];

    packages.insert(
        image_id.clone(),
        json!({
            "SPDXID": image_id,
            "name": img.name,
            "versionInfo": img.manifest_digest.to_string(),
            "downloadLocation": "NOASSERTION",
            // The image's files are listed (and CONTAINed), which SPDX allows only for an
            // analyzed package, which in turn needs the verification code.
            "filesAnalyzed": true,
            "packageVerificationCode": {"packageVerificationCodeValue": verification_code(input)},
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "CONTAINER",
            "checksums": [{"algorithm": "SHA256", "checksumValue": img.manifest_digest.hex()}],
            "externalRefs": [purl_ref(&img.purl())],
        }),
    );

    let crate_id = |key: &str| spdx_id("Crate", key);
    for c in input.crates.crates.values() {
        let id = crate_id(&c.key());
        let download = match c.source {
            Source::CratesIo => format!(
                "https://crates.io/api/v1/crates/{}/{}/download",
                c.name, c.version
            ),
            _ => "NOASSERTION".into(),
        };
        let mut p = json!({
            "SPDXID": id,
            "name": c.name,
            "versionInfo": c.version,
            "downloadLocation": download,
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": declared(c.license.as_deref()),
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": if c.key() == input.crates.root { "APPLICATION" } else { "LIBRARY" },
            "externalRefs": [purl_ref(&c.purl())],
            "comment": format!("cargo scope: {}; source: {}", c.scope.as_str(), match c.source { Source::CratesIo => "crates.io", Source::Workspace => "workspace", Source::Path => "path" }),
        });
        if let Some(sum) = &c.checksum {
            p["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": sum}]);
        }
        if let Some(d) = c.description.as_deref().filter(|d| !d.is_empty()) {
            p["description"] = json!(d);
        }
        if let Some(h) = c
            .homepage
            .as_deref()
            .or(c.repository.as_deref())
            .filter(|h| is_url(h))
        {
            p["homepage"] = json!(h);
        }
        if let Some(r) = c.repository.as_deref().filter(|r| is_url(r)) {
            p["sourceInfo"] = json!(format!("repository: {r}"));
        }
        packages.insert(id.clone(), p);
        for (dep, kind) in &c.deps {
            let d = &input.crates.crates[dep];
            if *kind == EdgeKind::Normal && d.scope.is_runtime() {
                rels.push((id.clone(), "DEPENDS_ON", crate_id(dep)));
            } else {
                rels.push((crate_id(dep), "BUILD_DEPENDENCY_OF", id.clone()));
            }
        }
    }

    let distro = input.layers.distro.as_ref();
    for p in &input.layers.packages {
        let purl = crate::cdx::os_package_purl(p, distro);
        let kind = match p.kind {
            PackageKind::Deb => "Deb",
            PackageKind::Apk => "Apk",
        };
        let id = spdx_id(
            kind,
            &format!(
                "{}-{}-{}",
                p.name,
                p.version,
                p.arch.as_deref().unwrap_or("")
            ),
        );
        let mut v = json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": declared(p.license.as_deref()),
            "copyrightText": "NOASSERTION",
            "externalRefs": [purl_ref(&purl)],
            "comment": format!("from the package database in layer {}", p.layer),
        });
        if let Some(d) = p.description.as_deref().filter(|d| !d.is_empty()) {
            v["description"] = json!(d);
        }
        packages.insert(id.clone(), v);
        rels.push((image_id.clone(), "CONTAINS", id));
    }

    let binaries: BTreeMap<&str, &str> = input
        .binaries
        .iter()
        .map(|b| (b.path.trim_start_matches('/'), b.name.as_str()))
        .collect();
    for f in &input.layers.files {
        let id = spdx_id("File", &f.path);
        let mut v = json!({
            "SPDXID": id,
            "fileName": format!("./{}", f.path),
            "checksums": [
                {"algorithm": "SHA1", "checksumValue": f.sha1},
                {"algorithm": "SHA256", "checksumValue": f.sha256.hex()},
            ],
            "licenseConcluded": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "comment": format!("layer {}, mode {:04o}", f.layer, f.mode),
        });
        if binaries.contains_key(f.path.as_str()) {
            v["fileTypes"] = json!(["BINARY", "APPLICATION"]);
            rels.push((id.clone(), "GENERATED_FROM", crate_id(&input.crates.root)));
        }
        files.insert(id.clone(), v);
        rels.push((image_id.clone(), "CONTAINS", id));
    }

    for t in &input.toolchain.tools {
        let id = spdx_id("Tool", &t.name);
        let mut v = json!({
            "SPDXID": id,
            "name": t.name,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "APPLICATION",
            "comment": format!("pinned by {} ({}){}", input.toolchain.lock_path, input.toolchain.lock_digest, t.lock_key.as_deref().map(|k| format!(", key {k}")).unwrap_or_default()),
        });
        if let Some(ver) = &t.version {
            v["versionInfo"] = json!(ver);
        }
        if let Some(d) = &t.sha256 {
            v["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": d.hex()}]);
        }
        packages.insert(id.clone(), v);
        rels.push((id, "BUILD_TOOL_OF", image_id.clone()));
    }

    rels.sort();
    rels.dedup();
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}@{}", img.name, img.manifest_digest),
        "creationInfo": {
            "created": kiln_core::time::rfc3339(input.sde),
            "creators": [format!("Tool: kiln-{}", crate::KILN_VERSION)],
        },
        "packages": packages.into_values().collect::<Vec<_>>(),
        "files": files.into_values().collect::<Vec<_>>(),
        "relationships": rels.into_iter().map(|(a, r, b)| json!({"spdxElementId": a, "relationshipType": r, "relatedSpdxElement": b})).collect::<Vec<_>>(),
    });
    let unsigned = kiln_core::canonical::to_vec(&doc).expect("the SPDX document serializes");
    doc["documentNamespace"] = json!(format!(
        "https://github.com/kiln-build/kiln/spdx/{}-{}",
        kiln_core::contract::purl::encode(&img.name),
        crate::content_uuid(&unsigned)
    ));
    kiln_core::canonical::to_vec_pretty(&doc).expect("the SPDX document serializes")
}
