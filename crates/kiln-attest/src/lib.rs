//! Evidence a verifier can check: who built what, from which inputs.
//!
//! * [`provenance`]: an in-toto Statement v1 with a SLSA provenance v1 predicate (own
//!   serde types: the `in-toto` crate only speaks v0.1), deterministic by default.
//! * [`keys`]: ECDSA P-256 keys (PKCS#8 PEM), keyid = hex sha256 of the SPKI DER.
//! * [`dsse`]: DSSE envelopes (PAE, DER signatures, RFC 6979) and Sigstore bundles v0.3.
//! * [`attach`]: OCI 1.1 referrers in the image layout.
//! * [`cosign`]: cosign's legacy `sha256-<hex>.att` / `.sig` tag images, as bytes for the
//!   registry push.
//! * [`evidence::write`]: the pipeline step tying them together.
//! * [`policy`] and [`verify`](mod@verify): the checks an admission controller makes, one line per
//!   rule.
//! * [`keyless`]: Sigstore keyless signing (Fulcio certificate, Rekor entry) and the
//!   verification of certificate bundles.
//!
//! This crate depends only on `kiln-core`: kiln-build hands it plain values
//! ([`provenance::ProvenanceInputs`]) and the paths of the staging output and layout.

pub mod attach;
pub mod cosign;
pub mod dsse;
mod error;
pub mod evidence;
pub mod keyless;
pub mod keys;
mod outputs;
pub mod policy;
pub mod provenance;
pub mod verify;

pub use error::{Error, Result};
pub use evidence::{Signer, Written, write};
pub use keys::{KeyPair, PublicKey, SigningKey, keygen};
pub use policy::Policy;
pub use verify::{Check, Options, Report, verify, verify_with};

#[cfg(test)]
mod tests;
