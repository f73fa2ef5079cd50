//! Reproducibility checking for kiln: is every artifact a function of its inputs alone?
//!
//! * [`rebuild`] makes two builds from scratch, the second under the variations of
//!   `reproducibility/variations.toml` (build path, TZ, locale, umask, user, hostname, CPU
//!   count, environment, PATH, directory order, clock).
//! * [`diff`] pairs the artifacts of two output trees and says where and what differs, by
//!   type (OCI blobs, gzip layers, tar archives, JSON, ELF, bytes); [`explain`] names the
//!   likely cause and the variation that exposed it.
//! * [`report`] computes the ratio (identical artifacts / artifacts, reproducible targets /
//!   targets) and renders report.json, report.md and a self-contained report.html with a
//!   trend chart from the history.
//!
//! The crate is the whole of `kiln repro`; the CLI only parses arguments and writes files.

pub mod diff;
mod error;
pub mod explain;
mod git;
pub mod report;
mod run;
pub mod variations;

pub use diff::{ArtifactDiff, Difference, Verdict};
pub use error::{Error, Result};
pub use explain::{Cause, Hints};
pub use git::GitIdentity;
pub use report::{
    BuildFailure, CompareContext, HistoryLine, Ratio, Ratios, Report, Status, TargetReport,
};
pub use run::{
    RebuildPlan, Rebuilt, Rng, WorkDir, copy_project, enclosing_workspace, now, rebuild, work_dir,
};
pub use variations::{VariationRecord, Variations};
