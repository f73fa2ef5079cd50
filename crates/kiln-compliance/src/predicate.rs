//! The control attestation's predicate (`https://kiln.dev/attestations/controls/v1`): the
//! types live in the on-disk contract, `kiln_core::contract::controls`, because `verify`
//! (kiln-attest) reads what this crate writes.

pub use kiln_core::contract::controls::*;
