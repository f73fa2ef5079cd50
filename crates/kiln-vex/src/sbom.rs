//! The SBOM as the VEX step needs it, read from `sbom.cdx.json` (CycloneDX JSON) rather than
//! through kiln-sbom's Rust API: the file is the contract between the two steps, so any
//! CycloneDX 1.4+ SBOM (kiln's, syft's, trivy's) works here too.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Result, VexError, from_json, read};
use crate::purl::{Designates, Purl};

/// One SBOM component with a purl (components without one cannot be matched to advisories
/// or statements and are left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub bom_ref: String,
    pub name: String,
    pub version: Option<String>,
    /// As written in the SBOM.
    pub purl_text: String,
    pub purl: Purl,
}

/// What VEX needs from an SBOM.
#[derive(Debug, Clone)]
pub struct Sbom {
    /// `specVersion`, reused by `vex.cdx.json` so both documents speak the same version.
    pub spec_version: String,
    /// `serialNumber` (`urn:uuid:...`), the anchor of BOM-Links into this SBOM.
    pub serial_number: Option<String>,
    pub version: u64,
    /// `metadata.component`: the image.
    pub image: Component,
    /// Every component with a purl, sorted by purl then bom-ref.
    pub components: Vec<Component>,
}

#[derive(Deserialize)]
struct RawBom {
    #[serde(rename = "bomFormat")]
    bom_format: String,
    #[serde(rename = "specVersion")]
    spec_version: String,
    #[serde(rename = "serialNumber")]
    serial_number: Option<String>,
    #[serde(default = "one")]
    version: u64,
    metadata: Option<RawMetadata>,
    #[serde(default)]
    components: Vec<RawComponent>,
}

fn one() -> u64 {
    1
}

#[derive(Deserialize)]
struct RawMetadata {
    component: Option<RawComponent>,
}

#[derive(Deserialize)]
struct RawComponent {
    #[serde(rename = "bom-ref")]
    bom_ref: Option<String>,
    name: String,
    version: Option<String>,
    purl: Option<String>,
    #[serde(default)]
    components: Vec<RawComponent>,
}

impl Sbom {
    /// Reads `sbom.cdx.json`.
    pub fn load(path: &Path) -> Result<Sbom> {
        Self::parse(path, &read(path)?)
    }

    /// Parses a CycloneDX JSON SBOM found at `path`.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Sbom> {
        let raw: RawBom = from_json(path, bytes)?;
        if raw.bom_format != "CycloneDX" {
            return Err(VexError::invalid(
                path,
                "bomFormat",
                format!("`{}` is not CycloneDX", raw.bom_format),
                "give the CycloneDX JSON SBOM (sbom.cdx.json)",
            ));
        }
        let image = raw.metadata.and_then(|m| m.component).ok_or_else(|| {
            VexError::invalid(
                path,
                "metadata.component",
                "the SBOM does not say what it describes",
                "use an SBOM whose metadata.component is the image (kiln's sbom.cdx.json)",
            )
        })?;
        let image = component(path, "metadata.component", image)?.ok_or_else(|| {
            VexError::invalid(
                path,
                "metadata.component.purl",
                "the image has no purl",
                "use an SBOM whose metadata.component has a purl (pkg:oci/...)",
            )
        })?;
        let mut components = Vec::new();
        let mut stack: Vec<(String, RawComponent)> = raw
            .components
            .into_iter()
            .enumerate()
            .map(|(i, c)| (format!("components[{i}]"), c))
            .collect();
        while let Some((at, mut c)) = stack.pop() {
            for (i, sub) in std::mem::take(&mut c.components).into_iter().enumerate() {
                stack.push((format!("{at}.components[{i}]"), sub));
            }
            if let Some(c) = component(path, &at, c)? {
                components.push(c);
            }
        }
        components.sort_by(|a, b| (&a.purl_text, &a.bom_ref).cmp(&(&b.purl_text, &b.bom_ref)));
        components.dedup_by(|a, b| a.purl_text == b.purl_text && a.bom_ref == b.bom_ref);
        Ok(Sbom {
            spec_version: raw.spec_version,
            serial_number: raw.serial_number,
            version: raw.version,
            image,
            components,
        })
    }

    /// Components the purl `p` designates (see [`Designates::designates`]).
    pub fn designated<'a>(&'a self, p: &'a Purl) -> impl Iterator<Item = &'a Component> + 'a {
        self.components
            .iter()
            .filter(move |c| p.designates(&c.purl))
    }
}

fn component(path: &Path, at: &str, c: RawComponent) -> Result<Option<Component>> {
    let Some(purl_text) = c.purl else {
        return Ok(None);
    };
    let purl = Purl::parse(&purl_text).map_err(|m| {
        VexError::invalid(
            path,
            format!("{at}.purl"),
            m.to_string(),
            "fix the SBOM generator",
        )
    })?;
    Ok(Some(Component {
        bom_ref: c.bom_ref.unwrap_or_else(|| purl_text.clone()),
        name: c.name,
        version: c.version.or_else(|| purl.version.clone()),
        purl_text,
        purl,
    }))
}
