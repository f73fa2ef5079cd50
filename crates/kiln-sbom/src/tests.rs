use std::collections::BTreeMap;

use kiln_core::Digest;

use super::*;
use crate::cargo::{Crate, EdgeKind, Resolution, Scope, Source};
use crate::layers::{ImageFile, LayerScan, OsPackage, PackageKind};

fn krate(name: &str, scope: Scope, deps: &[(&str, EdgeKind)]) -> Crate {
    Crate {
        name: name.into(),
        version: "1.0.0".into(),
        scope,
        source: if name == "app" {
            Source::Workspace
        } else {
            Source::CratesIo
        },
        checksum: (name != "app").then(|| Digest::of(name.as_bytes()).hex()),
        license: Some("MIT/Apache-2.0".into()),
        license_file: None,
        description: Some(format!("the {name} crate")),
        repository: Some(format!("https://example.com/{name}")),
        homepage: None,
        proc_macro: false,
        deps: deps
            .iter()
            .map(|(n, k)| (format!("{n}@1.0.0"), *k))
            .collect(),
    }
}

pub(crate) fn input() -> SbomInput {
    let layer = Digest::of(b"layer");
    let crates: BTreeMap<String, Crate> = [
        krate(
            "app",
            Scope::Runtime,
            &[("itoa", EdgeKind::Normal), ("autocfg", EdgeKind::Build)],
        ),
        krate("itoa", Scope::Runtime, &[]),
        krate("autocfg", Scope::Build, &[]),
    ]
    .into_iter()
    .map(|c| (c.key(), c))
    .collect();
    SbomInput {
        image: ImageInfo {
            name: "app".into(),
            tag: "latest".into(),
            manifest_digest: Digest::of(b"manifest"),
            config_digest: Digest::of(b"config"),
            platform: "linux/amd64".into(),
            base: None,
        },
        sde: 1_700_000_000,
        binaries: vec![BinaryInfo {
            name: "app".into(),
            path: "/usr/local/bin/app".into(),
            sha256: Digest::of(b"ELF"),
        }],
        crates: Resolution {
            root: "app@1.0.0".into(),
            crates,
            lock_path: "/p/Cargo.lock".into(),
        },
        layers: LayerScan {
            files: vec![ImageFile {
                path: "usr/local/bin/app".into(),
                sha256: Digest::of(b"ELF"),
                sha1: "0".repeat(40),
                size: 3,
                mode: 0o755,
                layer,
            }],
            packages: vec![OsPackage {
                kind: PackageKind::Deb,
                name: "libc6".into(),
                version: "1:2.36".into(),
                arch: Some("amd64".into()),
                license: None,
                description: None,
                layer,
            }],
            distro: Some(layers::Distro {
                id: "debian".into(),
                version_id: Some("12".into()),
                version_codename: None,
            }),
        },
        toolchain: ToolchainInfo {
            lock_path: "toolchains/x.lock.json".into(),
            lock_digest: Digest::of(b"lock"),
            target: "x86_64-unknown-linux-gnu".into(),
            tools: vec![ToolInfo {
                name: "rustc".into(),
                version: Some("1.95.0".into()),
                sha256: Some(Digest::of(b"rustc")),
                lock_key: Some("sysroot/bin/rustc".into()),
            }],
        },
    }
}

fn parse(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn cyclonedx_is_deterministic_and_content_addressed() {
    let a = cyclonedx(&input(), SpecVersion::V1_6);
    assert_eq!(a, cyclonedx(&input(), SpecVersion::V1_6));
    let doc = parse(&a);
    let serial = doc["serialNumber"].as_str().unwrap();
    assert!(
        serial.starts_with("urn:uuid:") && serial.as_bytes()[9 + 14] == b'5',
        "{serial} is a v5 UUID"
    );
    let mut other = input();
    other.sde += 1;
    let b = parse(&cyclonedx(&other, SpecVersion::V1_6));
    assert_ne!(
        b["serialNumber"], doc["serialNumber"],
        "different content, different serial"
    );
    assert_eq!(doc["metadata"]["timestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(
        doc["metadata"]["component"]["purl"],
        format!(
            "pkg:oci/app@sha256%3A{}?arch=amd64&tag=latest",
            Digest::of(b"manifest").hex()
        )
    );
}

#[test]
fn cyclonedx_content() {
    let doc = parse(&cyclonedx(&input(), SpecVersion::V1_6));
    let comps = doc["components"].as_array().unwrap();
    let by_ref = |r: &str| {
        comps
            .iter()
            .find(|c| c["bom-ref"] == r)
            .unwrap_or_else(|| panic!("{r} missing"))
    };
    let itoa = by_ref("pkg:cargo/itoa@1.0.0");
    assert_eq!(itoa["scope"], "required");
    assert_eq!(itoa["licenses"][0]["expression"], "MIT OR Apache-2.0");
    assert_eq!(itoa["licenses"][0]["acknowledgement"], "declared");
    assert_eq!(itoa["hashes"][0]["content"], Digest::of(b"itoa").hex());
    assert_eq!(by_ref("pkg:cargo/autocfg@1.0.0")["scope"], "excluded");
    assert_eq!(
        by_ref("pkg:deb/debian/libc6@1%3A2.36?arch=amd64&distro=debian-12")["type"],
        "library"
    );
    let deps = doc["dependencies"].as_array().unwrap();
    let dep = |r: &str| deps.iter().find(|d| d["ref"] == r).unwrap()["dependsOn"].clone();
    assert_eq!(
        dep("file:/usr/local/bin/app"),
        serde_json::json!(["pkg:cargo/app@1.0.0"])
    );
    assert_eq!(
        dep("pkg:cargo/app@1.0.0"),
        serde_json::json!(["pkg:cargo/autocfg@1.0.0", "pkg:cargo/itoa@1.0.0"])
    );
    let refs: Vec<&str> = comps
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap())
        .collect();
    assert!(refs.is_sorted(), "components sorted by bom-ref");
    assert_eq!(doc["formulation"][0]["components"][0]["name"], "rustc");
    let v15 = parse(&cyclonedx(&input(), SpecVersion::V1_5));
    assert_eq!(v15["specVersion"], "1.5");
    assert!(
        !String::from_utf8(cyclonedx(&input(), SpecVersion::V1_5))
            .unwrap()
            .contains("acknowledgement"),
        "1.6-only field left out of 1.5"
    );
}

#[test]
fn spdx_content() {
    let a = spdx(&input());
    assert_eq!(a, spdx(&input()));
    let doc = parse(&a);
    assert_eq!(doc["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        doc["creationInfo"]["creators"][0],
        format!("Tool: kiln-{KILN_VERSION}")
    );
    let rels = doc["relationships"].as_array().unwrap();
    let has = |a: &str, r: &str, b: &str| {
        rels.iter().any(|x| {
            x["spdxElementId"].as_str().unwrap().contains(a)
                && x["relationshipType"] == r
                && x["relatedSpdxElement"].as_str().unwrap().contains(b)
        })
    };
    assert!(has("Crate-autocfg", "BUILD_DEPENDENCY_OF", "Crate-app"));
    assert!(has("Crate-app", "DEPENDS_ON", "Crate-itoa"));
    assert!(has("DOCUMENT", "DESCRIBES", "Image-app"));
    let f = &doc["files"][0];
    assert_eq!(f["fileName"], "./usr/local/bin/app");
    for id in doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .chain(doc["files"].as_array().unwrap())
        .map(|p| p["SPDXID"].as_str().unwrap())
    {
        assert!(
            id.strip_prefix("SPDXRef-")
                .unwrap()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'),
            "{id}"
        );
    }
}

#[test]
fn spec_flag() {
    assert_eq!(SpecVersion::parse(None).unwrap(), SpecVersion::V1_6);
    assert_eq!(SpecVersion::parse(Some("1.5")).unwrap(), SpecVersion::V1_5);
    let e = SpecVersion::parse(Some("1.4")).unwrap_err().to_string();
    assert!(
        e.contains("--sbom-spec") && e.contains("1.4") && e.contains("1.5") && e.contains("1.6"),
        "{e}"
    );
}
