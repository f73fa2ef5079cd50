//! Compliance evidence for one image.
//!
//! - [`pack`]: the **evidence pack**: the files a release's controls are judged on — SBOMs,
//!   provenance and signatures, VEX, the gate's verdict, the scans given, the repro report,
//!   the toolchain lock, the push report — copied into one directory with a `manifest.json`
//!   that lists every file with its sha256, size and role. Same inputs, same bytes; the
//!   directory appears complete or not at all.
//! - [`predicate`]: the control attestation's predicate (`https://kiln.dev/attestations/controls/v1`):
//!   each control's verdict and the evidence it was judged on.
//!
//! The control catalog and the signed control attestation that judge a pack build on it.

pub mod pack;
pub mod predicate;

pub use pack::{Entry, Manifest, PackError, PackInput, Role};
pub use predicate::{ControlResult, ControlsPredicate, PREDICATE_TYPE, Verdict};
