//! Compliance evidence for one image.
//!
//! - [`pack`]: the **evidence pack**: the files a release's controls are judged on — SBOMs,
//!   provenance and signatures, VEX, the gate's verdict, the scans given, the repro report,
//!   the toolchain lock, the push report — copied into one directory with a `manifest.json`
//!   that lists every file with its sha256, size and role. Same inputs, same bytes; the
//!   directory appears complete or not at all.
//! - [`predicate`]: the control attestation's predicate (`https://kiln.dev/attestations/controls/v1`):
//!   each control's verdict and the evidence it was judged on.
//! - [`render`]: the control attestation as a report a person reads: one self-contained
//!   HTML file or a paginated PDF, deterministically (same input, same bytes).
//! - [`catalog`]: the control catalog (`compliance/control_catalog.yaml`), read strictly:
//!   controls, their evidence globs and their assertions.
//! - [`evaluate`](mod@evaluate): a catalog judging a pack (checked whole first): the predicate above.
//!
//! The signed control attestation that judges a pack builds on them.

mod assertions;
pub mod attest;
pub mod audit;
pub mod catalog;
pub mod evaluate;
pub mod pack;
pub mod predicate;
pub mod render;

pub use catalog::{Assertion, Catalog, CatalogError, Control};
pub use evaluate::{EvaluateError, evaluate};
pub use pack::{Entry, Manifest, PackError, PackInput, Role};
pub use predicate::{ControlResult, ControlsPredicate, PREDICATE_TYPE, Verdict};
