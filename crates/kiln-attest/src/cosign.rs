//! cosign's legacy, tag-based attachments: the `sha256-<hex>.att` image holding the DSSE
//! envelopes and the `sha256-<hex>.sig` image holding a "simple signing" signature, which is
//! where cosign v2 (`cosign verify-attestation`, `cosign verify`) and Sigstore
//! policy-controller look when they do not read OCI 1.1 referrers or bundles.
//!
//! Pure: bytes in, bytes out. The registry push step uploads the returned config, layers
//! and manifest and then sets the tag; nothing here touches the network, the clock or a
//! file. All JSON goes through `kiln_core::canonical`, so the same inputs (and key: RFC 6979
//! signatures) always give the same manifest digest.
//!
//! What cosign writes, and where this module read it (sigstore/cosign unless named):
//!
//! * Tag names: `pkg/oci/remote/remote.go` (`normalize`: `<alg>-<hex><suffix>`, with
//!   `SignatureSuffix` `.sig` and `AttestationSuffix` `.att`) and `specs/SIGNATURE_SPEC.md`
//!   ("Tag-based Discovery": replace `:` with `-`, append `.sig`).
//! * The image: `pkg/oci/empty/empty.go` starts from go-containerregistry's `empty.Image`
//!   with the manifest media type set to `application/vnd.oci.image.manifest.v1+json` and
//!   the config media type to `application/vnd.oci.image.config.v1+json` (Docker types only
//!   under `COSIGN_DOCKER_MEDIA_TYPES`, `pkg/oci/mediatypes.go`); `pkg/oci/mutate/
//!   signatures.go` (`AppendSignatures`) adds one layer per signature with `mutate.Append`,
//!   each descriptor annotated with the signature's annotations, and sets the config's
//!   `created` to the wall clock only when `recordCreationTimestamp` is set (cosign v2's
//!   `--record-creation-timestamp`, default false; older cosign always did).
//! * The config bytes: go-containerregistry `pkg/v1/empty/image.go` (the empty config is
//!   `RootFS{Type: "layers"}`), `pkg/v1/mutate/image.go` (`compute`: every addendum
//!   appends its zero `v1.History` and its layer's `DiffID` to `rootfs.diff_ids`; the
//!   manifest's `mediaType` is set from `mutate.MediaType`), `pkg/v1/config.go` (field
//!   names; `architecture`, `os`, `rootfs`, `config` are always written, and `created` and
//!   `history[].created` are `v1.Time` structs, which Go's `omitempty` never omits: the zero
//!   time marshals as `0001-01-01T00:00:00Z`). So with one layer cosign's config is
//!   `{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":
//!   "0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["sha256:…"]},
//!   "config":{}}`, 233 bytes: the size in `specs/ATTESTATION_SPEC.md`'s example manifest.
//!   kiln writes the same fields and values with its keys sorted (also 233 bytes); nothing
//!   in cosign re-derives the config, it is only fetched by the digest kiln computed.
//! * Layers: `pkg/oci/static/signature.go` (a layer is the payload bytes themselves, digest
//!   = diff id = sha256 of them; its annotations are the options' plus
//!   `dev.cosignproject.cosign/signature` = the base64 signature, `""` for an attestation,
//!   whose signature is inside the envelope) and `pkg/oci/static/options.go` (default layer
//!   media type: simple signing).
//! * `.att`: `cmd/cosign/cli/attest/attest.go` (layer media type `types.DssePayloadType` =
//!   `application/vnd.dsse.envelope.v1+json`, `pkg/types/payload.go`; annotation
//!   `predicateType` = the predicate URI) and `specs/ATTESTATION_SPEC.md` (one attestation
//!   per layer, order not significant). cosign verifies each layer as a DSSE envelope with
//!   no key id restriction (sigstore `pkg/signature/dsse`: `PubKeyID: ""`), so kiln's
//!   `keyid` does not get in the way.
//! * `.sig`: the payload is sigstore/sigstore `pkg/signature/payload/payload.go`
//!   (`SimpleContainerImage`: `critical.identity.docker-reference` = the repository
//!   without tag or digest, `critical.image.docker-manifest-digest`, `critical.type` =
//!   `cosign container image signature`, `optional` = annotations, `null` without any),
//!   whose Go field order happens to be sorted, so canonical JSON gives cosign's own bytes;
//!   layer media type `application/vnd.dev.cosign.simplesigning.v1+json`
//!   (`pkg/types/media.go`; also sigstore-rs `src/cosign/constants.rs`); the signature is
//!   ECDSA over the payload bytes, ASN.1 DER, base64 in the layer annotation
//!   (`specs/SIGNATURE_SPEC.md`). cosign's `SimpleClaimVerifier` (`pkg/cosign/verifiers.go`)
//!   checks `docker-manifest-digest` against the image; `docker-reference` is ignored by
//!   verifiers (`specs/SIGNATURE_SPEC.md`) but kiln still writes the real repository.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kiln_core::{Digest, canonical};
use serde::{Deserialize, Serialize};

use crate::attach::MEDIA_TYPE_MANIFEST;
use crate::dsse::{invalid, parse_strict};
use crate::error::Result;
use crate::keys::{PublicKey, SigningKey};

/// The config media type of cosign's signature images (`OCIConfigJSON`).
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Layer media type of one attestation: a DSSE envelope (cosign's `DssePayloadType`).
pub const MEDIA_TYPE_DSSE: &str = "application/vnd.dsse.envelope.v1+json";
/// Layer media type of a simple signing payload.
pub const MEDIA_TYPE_SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature (empty for attestations).
pub const ANNOTATION_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
/// The layer annotation naming an attestation's predicate type.
pub const ANNOTATION_PREDICATE_TYPE: &str = "predicateType";
/// `critical.type` of a cosign simple signing payload.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";
/// Tag suffix of the attestations image.
pub const ATTESTATION_SUFFIX: &str = ".att";
/// Tag suffix of the signatures image.
pub const SIGNATURE_SUFFIX: &str = ".sig";
/// Go's zero `time.Time` as `encoding/json` writes it: what cosign leaves in `created`
/// unless asked to record the wall clock.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// One OCI image (manifest + config + layers) to push under `tag`, in the image's own
/// repository. The manifest names the config and each layer by the digest of exactly
/// these bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagImage {
    pub tag: String,
    pub manifest: Vec<u8>,
    pub config: Vec<u8>,
    /// (media type, bytes), in manifest order.
    pub layers: Vec<(String, Vec<u8>)>,
}

impl TagImage {
    /// The manifest's digest (what the tag will point to).
    pub fn manifest_digest(&self) -> Digest {
        Digest::of(&self.manifest)
    }
}

/// `sha256-<hex>.att`: where cosign looks for the attestations of `image`.
pub fn attestation_tag_name(image: &Digest) -> String {
    tag_name(image, ATTESTATION_SUFFIX)
}

/// `sha256-<hex>.sig`: where cosign looks for the signatures of `image`.
pub fn signature_tag_name(image: &Digest) -> String {
    tag_name(image, SIGNATURE_SUFFIX)
}

fn tag_name(image: &Digest, suffix: &str) -> String {
    format!("sha256-{}{suffix}", image.hex())
}

/// The `.att` image for `image`: one layer per DSSE envelope, given as (envelope JSON
/// bytes, the predicate type of the statement it signs). Layers are sorted by predicate
/// type, then by envelope digest, and exact duplicates are dropped, so the caller's order
/// never changes the bytes. The envelopes are carried as they are (cosign verifies each
/// one itself); an empty slice gives an image without layers, which callers should not push.
pub fn attestation_tag(image: &Digest, envelopes: &[(Vec<u8>, String)]) -> TagImage {
    let mut items: Vec<(&str, Digest, &[u8])> = envelopes
        .iter()
        .map(|(bytes, predicate)| (predicate.as_str(), Digest::of(bytes), bytes.as_slice()))
        .collect();
    items.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    items.dedup_by(|a, b| (a.0, a.1) == (b.0, b.1));
    let layers = items
        .into_iter()
        .map(|(predicate, _, bytes)| Layer {
            media_type: MEDIA_TYPE_DSSE,
            bytes: bytes.to_vec(),
            annotations: BTreeMap::from([
                (ANNOTATION_SIGNATURE.to_string(), String::new()),
                (ANNOTATION_PREDICATE_TYPE.to_string(), predicate.to_string()),
            ]),
        })
        .collect();
    tag_image(attestation_tag_name(image), layers)
}

/// The `.sig` image for `image` pushed to `repository` (`registry/path`, no tag or
/// digest, e.g. `ghcr.io/acme/app`: cosign's `docker-reference`): one simple signing
/// payload, signed by `key` (ECDSA P-256, SHA-256, DER, RFC 6979: deterministic).
pub fn signature_tag(image: &Digest, repository: &str, key: &SigningKey) -> TagImage {
    let payload = simple_signing_payload(image, repository);
    let signature = key.sign(&payload);
    signature_image(image, payload, &B64.encode(signature))
}

/// Checks a `.sig` image as cosign would, and more strictly: it is `image`'s signature
/// tag, the manifest names exactly these config and layer bytes, the one layer is a
/// simple signing payload whose signature verifies with `key`, and the signed payload
/// claims `image` in `repository`.
pub fn verify_signature_tag(
    img: &TagImage,
    image: &Digest,
    repository: &str,
    key: &PublicKey,
) -> Result<()> {
    let file = img.tag.as_str();
    let expected_tag = signature_tag_name(image);
    if img.tag != expected_tag {
        return Err(invalid(
            file,
            format!("tag is not the signature tag of {image} (`{expected_tag}`)"),
        ));
    }
    let manifest = check_image(img)?;
    let [layer] = manifest.layers.as_slice() else {
        return Err(invalid(
            file,
            format!(
                "expected exactly one signature layer, found {}",
                manifest.layers.len()
            ),
        ));
    };
    if layer.media_type != MEDIA_TYPE_SIMPLE_SIGNING {
        return Err(invalid(
            file,
            format!(
                "layer media type is `{}`, expected `{MEDIA_TYPE_SIMPLE_SIGNING}`",
                layer.media_type
            ),
        ));
    }
    let b64 = layer.annotations.get(ANNOTATION_SIGNATURE).ok_or_else(|| {
        invalid(
            file,
            format!("layer has no `{ANNOTATION_SIGNATURE}` annotation"),
        )
    })?;
    let signature = B64
        .decode(b64)
        .map_err(|e| invalid(file, format!("signature is not base64 ({e})")))?;
    let payload = &img.layers[0].1;
    if !key.verify(payload, &signature) {
        return Err(invalid(
            file,
            format!(
                "signature does not verify with key {} over the payload",
                key.keyid()
            ),
        ));
    }
    // Only now is the payload's content worth reading: it is what the key signed.
    let claim: SimpleSigning = parse_strict(payload, file)?;
    if claim.critical.kind != SIGNATURE_TYPE {
        return Err(invalid(
            file,
            format!(
                "critical.type is `{}`, expected `{SIGNATURE_TYPE}`",
                claim.critical.kind
            ),
        ));
    }
    let digest = &claim.critical.image.docker_manifest_digest;
    if *digest != image.to_string() {
        return Err(invalid(
            file,
            format!("signed docker-manifest-digest is {digest}, expected {image}"),
        ));
    }
    let reference = &claim.critical.identity.docker_reference;
    if reference != repository {
        return Err(invalid(
            file,
            format!("signed docker-reference is `{reference}`, expected `{repository}`"),
        ));
    }
    Ok(())
}

/// cosign's simple signing payload for `image` in `repository`, byte for byte what
/// `payload.Cosign{...}.MarshalJSON()` gives without annotations.
fn simple_signing_payload(image: &Digest, repository: &str) -> Vec<u8> {
    canonical::to_vec(&SimpleSigning {
        critical: Critical {
            identity: Identity {
                docker_reference: repository.to_string(),
            },
            image: ImageClaim {
                docker_manifest_digest: image.to_string(),
            },
            kind: SIGNATURE_TYPE.to_string(),
        },
        optional: None,
    })
    .expect("simple signing payload serializes")
}

/// The `.sig` image of `image` carrying `payload` and the base64 signature `b64sig`.
fn signature_image(image: &Digest, payload: Vec<u8>, b64sig: &str) -> TagImage {
    tag_image(
        signature_tag_name(image),
        vec![Layer {
            media_type: MEDIA_TYPE_SIMPLE_SIGNING,
            bytes: payload,
            annotations: BTreeMap::from([(ANNOTATION_SIGNATURE.to_string(), b64sig.to_string())]),
        }],
    )
}

struct Layer {
    media_type: &'static str,
    bytes: Vec<u8>,
    annotations: BTreeMap<String, String>,
}

/// `empty.Image` plus one `mutate.Append` addendum per layer, without a creation time.
fn tag_image(tag: String, layers: Vec<Layer>) -> TagImage {
    let descriptors: Vec<Descriptor> = layers
        .iter()
        .map(|l| Descriptor {
            media_type: l.media_type.to_string(),
            digest: Digest::of(&l.bytes),
            size: l.bytes.len() as u64,
            annotations: l.annotations.clone(),
        })
        .collect();
    let config = canonical::to_vec(&SignatureConfig::for_layers(
        descriptors.iter().map(|d| d.digest).collect(),
    ))
    .expect("config serializes");
    let manifest = Manifest {
        schema_version: 2,
        media_type: MEDIA_TYPE_MANIFEST.to_string(),
        config: Descriptor {
            media_type: MEDIA_TYPE_CONFIG.to_string(),
            digest: Digest::of(&config),
            size: config.len() as u64,
            annotations: BTreeMap::new(),
        },
        layers: descriptors,
    };
    TagImage {
        tag,
        manifest: canonical::to_vec(&manifest).expect("manifest serializes"),
        config,
        layers: layers
            .into_iter()
            .map(|l| (l.media_type.to_string(), l.bytes))
            .collect(),
    }
}

/// Parses `img`'s manifest and config strictly and checks they describe exactly its
/// bytes: config and layer digests, sizes and media types, and `rootfs.diff_ids` = the
/// layer digests.
fn check_image(img: &TagImage) -> Result<Manifest> {
    let file = img.tag.as_str();
    let manifest: Manifest = parse_strict(&img.manifest, file)?;
    if manifest.schema_version != 2 || manifest.media_type != MEDIA_TYPE_MANIFEST {
        return Err(invalid(
            file,
            format!("not an OCI image manifest (schemaVersion 2, `{MEDIA_TYPE_MANIFEST}`)"),
        ));
    }
    let c = &manifest.config;
    if c.media_type != MEDIA_TYPE_CONFIG
        || c.digest != Digest::of(&img.config)
        || c.size != img.config.len() as u64
    {
        return Err(invalid(
            file,
            "config descriptor does not describe the config blob",
        ));
    }
    if manifest.layers.len() != img.layers.len() {
        return Err(invalid(
            file,
            format!(
                "manifest names {} layers, the image has {}",
                manifest.layers.len(),
                img.layers.len()
            ),
        ));
    }
    for (i, (d, (media_type, bytes))) in manifest.layers.iter().zip(&img.layers).enumerate() {
        if d.media_type != *media_type
            || d.digest != Digest::of(bytes)
            || d.size != bytes.len() as u64
        {
            return Err(invalid(
                file,
                format!("layer {i}: descriptor does not describe the layer blob"),
            ));
        }
    }
    let config: SignatureConfig = parse_strict(&img.config, file)?;
    let expected = SignatureConfig::for_layers(manifest.layers.iter().map(|d| d.digest).collect());
    if config != expected {
        return Err(invalid(
            file,
            "config is not cosign's signature image config for these layers",
        ));
    }
    Ok(manifest)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: String,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// go-containerregistry's `v1.ConfigFile` as `empty.Image` + `mutate.Append` leave it:
/// only the fields Go always writes, with zero values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureConfig {
    architecture: String,
    created: String,
    history: Vec<History>,
    os: String,
    rootfs: RootFs,
    config: EmptyObject,
}

impl SignatureConfig {
    fn for_layers(diff_ids: Vec<Digest>) -> Self {
        SignatureConfig {
            architecture: String::new(),
            created: GO_ZERO_TIME.to_string(),
            history: diff_ids
                .iter()
                .map(|_| History {
                    created: GO_ZERO_TIME.to_string(),
                })
                .collect(),
            os: String::new(),
            rootfs: RootFs {
                kind: "layers".to_string(),
                diff_ids,
            },
            config: EmptyObject {},
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct History {
    created: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RootFs {
    #[serde(rename = "type")]
    kind: String,
    diff_ids: Vec<Digest>,
}

/// `{}`: the zero `v1.Config`, all of whose fields are `omitempty`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyObject {}

/// sigstore's `payload.SimpleContainerImage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimpleSigning {
    critical: Critical,
    /// Always written: `null` when there are no annotations, as Go writes a nil map.
    optional: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Critical {
    identity: Identity,
    image: ImageClaim,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Identity {
    docker_reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ImageClaim {
    docker_manifest_digest: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsse::Envelope;
    use serde_json::Value;

    const REPO: &str = "ghcr.io/acme/app";

    fn image() -> Digest {
        Digest::of(b"an image manifest")
    }

    fn json(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    fn envelope(key: &SigningKey, predicate: &str) -> (Vec<u8>, String) {
        let stmt = format!(r#"{{"predicateType":"{predicate}"}}"#);
        let env = Envelope::sign(stmt.as_bytes(), key);
        (canonical::to_vec(&env).unwrap(), predicate.to_string())
    }

    #[test]
    fn tag_names_follow_cosigns_digest_encoding() {
        let d: Digest = "sha256:97fc222cee7991b5b061d4d4afdb5f3428fcb0c9054e1690313786befa1e4e36"
            .parse()
            .unwrap();
        // The example of specs/SIGNATURE_SPEC.md, "Tag-based Discovery".
        assert_eq!(
            signature_tag_name(&d),
            "sha256-97fc222cee7991b5b061d4d4afdb5f3428fcb0c9054e1690313786befa1e4e36.sig"
        );
        assert_eq!(
            attestation_tag_name(&d),
            "sha256-97fc222cee7991b5b061d4d4afdb5f3428fcb0c9054e1690313786befa1e4e36.att"
        );
    }

    #[test]
    fn attestation_image_has_cosigns_shape() {
        let k = SigningKey::generate();
        let slsa = envelope(&k, "https://slsa.dev/provenance/v1");
        let vex = envelope(&k, "https://openvex.dev/ns/v0.2.0");
        let img = attestation_tag(&image(), &[slsa.clone(), vex.clone()]);
        assert_eq!(img.tag, attestation_tag_name(&image()));

        let m = json(&img.manifest);
        assert_eq!(m["schemaVersion"], 2);
        assert_eq!(m["mediaType"], MEDIA_TYPE_MANIFEST);
        assert_eq!(m["config"]["mediaType"], MEDIA_TYPE_CONFIG);
        assert_eq!(
            m["config"]["digest"],
            Digest::of(&img.config).to_string().as_str()
        );
        assert_eq!(m["config"]["size"], img.config.len());
        assert!(m["config"].get("annotations").is_none());

        // Sorted by predicate type: openvex before slsa.
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        for (desc, (want, (media_type, bytes))) in
            layers.iter().zip([&vex, &slsa].iter().zip(&img.layers))
        {
            assert_eq!(bytes, &want.0);
            assert_eq!(media_type, MEDIA_TYPE_DSSE);
            assert_eq!(desc["mediaType"], MEDIA_TYPE_DSSE);
            assert_eq!(desc["digest"], Digest::of(bytes).to_string().as_str());
            assert_eq!(desc["size"], bytes.len());
            let ann = desc["annotations"].as_object().unwrap();
            assert_eq!(ann.len(), 2, "{ann:?}");
            assert_eq!(ann[ANNOTATION_SIGNATURE], "");
            assert_eq!(ann[ANNOTATION_PREDICATE_TYPE], want.1.as_str());
        }

        // The config cosign's empty.Image + mutate.Append leaves: diff_ids = layer
        // digests, one zero-time history entry per layer, no wall clock anywhere.
        let c = json(&img.config);
        let diff_ids: Vec<&str> = c["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let digests: Vec<&str> = layers
            .iter()
            .map(|l| l["digest"].as_str().unwrap())
            .collect();
        assert_eq!(diff_ids, digests);
        assert_eq!(c["rootfs"]["type"], "layers");
        assert_eq!(c["created"], GO_ZERO_TIME);
        assert_eq!(
            c["history"],
            serde_json::json!([{"created": GO_ZERO_TIME}, {"created": GO_ZERO_TIME}])
        );
        assert_eq!(c["architecture"], "");
        assert_eq!(c["os"], "");
        assert_eq!(c["config"], serde_json::json!({}));
        assert_eq!(c.as_object().unwrap().len(), 6);
    }

    #[test]
    fn one_layer_config_is_the_233_bytes_of_the_attestation_spec() {
        let k = SigningKey::generate();
        let img = attestation_tag(&image(), &[envelope(&k, "https://slsa.dev/provenance/v1")]);
        // specs/ATTESTATION_SPEC.md's example manifest: config size 233.
        assert_eq!(img.config.len(), 233);
        let diff = Digest::of(&img.layers[0].1);
        assert_eq!(
            String::from_utf8(img.config).unwrap(),
            format!(
                r#"{{"architecture":"","config":{{}},"created":"0001-01-01T00:00:00Z","history":[{{"created":"0001-01-01T00:00:00Z"}}],"os":"","rootfs":{{"diff_ids":["{diff}"],"type":"layers"}}}}"#
            )
        );
    }

    #[test]
    fn attestation_image_is_deterministic_whatever_the_input_order() {
        let k = SigningKey::generate();
        let a = envelope(&k, "https://slsa.dev/provenance/v1");
        let b = envelope(&k, "https://cyclonedx.org/bom");
        let c = envelope(&k, "https://openvex.dev/ns/v0.2.0");
        let one = attestation_tag(&image(), &[a.clone(), b.clone(), c.clone()]);
        let two = attestation_tag(&image(), &[c.clone(), a.clone(), b.clone(), a.clone()]);
        assert_eq!(one, two);
        assert_eq!(one.layers.len(), 3);
        assert_ne!(
            one.manifest_digest(),
            attestation_tag(&image(), &[a, b]).manifest_digest()
        );
        assert_ne!(
            one.manifest,
            attestation_tag(&Digest::of(b"other"), &[c]).manifest
        );
    }

    #[test]
    fn simple_signing_payload_is_cosigns_bytes() {
        let d = image();
        let p = simple_signing_payload(&d, REPO);
        assert_eq!(
            String::from_utf8(p).unwrap(),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"{REPO}"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
    }

    #[test]
    fn signature_image_shape_and_determinism() {
        let k = SigningKey::generate();
        let img = signature_tag(&image(), REPO, &k);
        assert_eq!(img, signature_tag(&image(), REPO, &k));
        assert_eq!(img.tag, signature_tag_name(&image()));
        assert_eq!(img.layers.len(), 1);
        let (media_type, payload) = &img.layers[0];
        assert_eq!(media_type, MEDIA_TYPE_SIMPLE_SIGNING);
        assert_eq!(payload, &simple_signing_payload(&image(), REPO));

        let m = json(&img.manifest);
        assert_eq!(m["mediaType"], MEDIA_TYPE_MANIFEST);
        assert_eq!(m["config"]["mediaType"], MEDIA_TYPE_CONFIG);
        let desc = &m["layers"][0];
        assert_eq!(desc["mediaType"], MEDIA_TYPE_SIMPLE_SIGNING);
        assert_eq!(desc["digest"], Digest::of(payload).to_string().as_str());
        let ann = desc["annotations"].as_object().unwrap();
        assert_eq!(ann.len(), 1);
        let sig = B64
            .decode(ann[ANNOTATION_SIGNATURE].as_str().unwrap())
            .unwrap();
        // ASN.1 DER: a SEQUENCE of two INTEGERs.
        assert_eq!(sig[0], 0x30);
        assert!(k.public().verify(payload, &sig));
        assert!(!k.public().verify(b"{\"critical\":{}}", &sig));
        let c = json(&img.config);
        assert_eq!(c["rootfs"]["diff_ids"][0], desc["digest"]);
        assert_eq!(c["history"].as_array().unwrap().len(), 1);

        // Another repository or image: another payload, another manifest.
        assert_ne!(
            img.manifest,
            signature_tag(&image(), "ghcr.io/acme/other", &k).manifest
        );
        assert_ne!(
            img.manifest,
            signature_tag(&Digest::of(b"x"), REPO, &k).manifest
        );
    }

    #[test]
    fn verify_signature_tag_accepts_its_own_and_names_every_failure() {
        let k = SigningKey::generate();
        let other = SigningKey::generate();
        let d = image();
        let img = signature_tag(&d, REPO, &k);
        verify_signature_tag(&img, &d, REPO, k.public()).unwrap();

        let err = |img: &TagImage, d: &Digest, repo: &str, key: &PublicKey| {
            verify_signature_tag(img, d, repo, key)
                .unwrap_err()
                .to_string()
        };

        // The wrong key.
        let e = err(&img, &d, REPO, other.public());
        assert!(e.contains("does not verify"), "{e}");

        // A changed payload, manifest and config rebuilt around it, old signature kept.
        let b64 = json(&img.manifest)["layers"][0]["annotations"][ANNOTATION_SIGNATURE]
            .as_str()
            .unwrap()
            .to_string();
        let forged = signature_image(&d, simple_signing_payload(&d, "ghcr.io/evil/app"), &b64);
        let e = err(&forged, &d, "ghcr.io/evil/app", k.public());
        assert!(e.contains("does not verify"), "{e}");

        // A validly signed payload for another image, under this image's tag.
        let elsewhere = Digest::of(b"another image");
        let payload = simple_signing_payload(&elsewhere, REPO);
        let sig = B64.encode(k.sign(&payload));
        let replayed = signature_image(&d, payload, &sig);
        let e = err(&replayed, &d, REPO, k.public());
        assert!(
            e.contains("docker-manifest-digest") && e.contains(&elsewhere.to_string()),
            "{e}"
        );

        // Verified against another digest: the tag itself is wrong.
        let e = err(&img, &elsewhere, REPO, k.public());
        assert!(e.contains("not the signature tag"), "{e}");

        // Another repository than the one signed.
        let e = err(&img, &d, "ghcr.io/acme/other", k.public());
        assert!(e.contains("docker-reference"), "{e}");

        // A layer blob that is not what the manifest names.
        let mut swapped = img.clone();
        swapped.layers[0].1 = simple_signing_payload(&elsewhere, REPO);
        let e = err(&swapped, &d, REPO, k.public());
        assert!(e.contains("does not describe the layer blob"), "{e}");

        // A config that is not the one named.
        let mut bad_config = img.clone();
        bad_config.config = b"{}".to_vec();
        let e = err(&bad_config, &d, REPO, k.public());
        assert!(e.contains("config descriptor"), "{e}");

        // An attestation image is not a signature image.
        let att = attestation_tag(&d, &[envelope(&k, "https://slsa.dev/provenance/v1")]);
        let att = TagImage {
            tag: signature_tag_name(&d),
            ..att
        };
        let e = err(&att, &d, REPO, k.public());
        assert!(e.contains(MEDIA_TYPE_SIMPLE_SIGNING), "{e}");
    }
}
