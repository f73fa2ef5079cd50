//! Running a build hermetically.
//!
//! Three things make a build depend only on its pinned inputs, and this crate owns all three:
//!
//! * [`fetch_locked`]: the one step allowed to use the network, filling a kiln-owned cargo
//!   home with every crates.io crate `Cargo.lock` pins — downloaded by kiln itself (no
//!   `cargo` needed), each checked against the lock's checksum before it is written, from
//!   crates.io or `$KILN_CRATES_DL`; [`check_fetched`] then proves every locked crate is present with the
//!   checksum the lock names, so the build never needs to reach out; [`unpack_verified`]
//!   then unpacks every locked crate from those very archive bytes into a fresh, read-only
//!   directory source that is all cargo compiles (never the cargo home's `registry/src`).
//! * [`Sandbox`]: the build process runs in a fresh network namespace (only a loopback
//!   interface), with `umask 022`, or — only when asked — with no sandbox, which is
//!   recorded. [`RootedSandbox`] goes further: the build runs inside a toolchain root
//!   directory (new user, mount, network and PID namespaces, `pivot_root`), seeing only that
//!   root, the host paths bound in, a fresh `/proc`, `/tmp` and a handful of `/dev` nodes.
//! * [`Hermetic`]: a scrubbed environment (an allowlist), with HOME, CARGO_HOME and TMPDIR
//!   at fixed places under the build root, `TZ=UTC`, `LC_ALL=C.UTF-8` and a resolved
//!   [`SourceDateEpoch`].

mod clock;
mod download;
mod env;
mod lockfile;
mod rooted;
mod sandbox;
mod sde;
mod verified;

pub use clock::{ClockShift, ClockShiftError};
pub use download::{CRATE_LIMIT, CRATES_DL_ENV, CratesDl, Fetched, fetch_locked};
pub use env::{BuildRoot, Hermetic};
pub use lockfile::{CargoLock, FetchError, LockedCrate, check_fetched};
pub use rooted::{Bind, RootedSandbox};
pub use sandbox::{Sandbox, SandboxError, UnknownSandbox};
pub use sde::{SdeError, SdeSource, SourceDateEpoch};
pub use verified::{ArchiveError, SOURCE_NAME, VerifiedSources, unpack_verified};
