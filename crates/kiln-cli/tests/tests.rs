//! kiln's end-to-end tests: the installed `kiln` binary run on copies of `testdata/`
//! projects, its output checked by the real tools a user has. One test binary (as
//! ripgrep's `tests/tests.rs`), so the suite links once; the modules:
//!
//! - `support`    — the one place tests start real tools and make sample projects
//! - `build`      — `kiln build`: the default job, two builds in different conditions;
//!   skopeo/umoci/runc/podman accept and run the image
//! - `bad_input`  — every bad input names file, field and fix; nothing written
//! - `sandbox`    — the build has no network; the opt-out is recorded
//! - `cargo_home` — a poisoned cargo home or crate archive never reaches the binary
//! - `crash`      — SIGKILLed builds leave the old or the new output, never a mix
//! - `evidence`   — `evidence pack`: every file hashed with its role, reproducible, bad input
//! - `controls`   — `controls attest`: signed, attached, HTML/PDF; `verify` requires it;
//!   tampering with the pack; `evidence audit`
//! - `sbom`       — CycloneDX/SPDX validated, equal to `cargo tree`, peers agree
//! - `vex`        — CSAF/OpenVEX/CycloneDX VEX validated; the gate
//! - `attest`     — signed provenance and evidence, independent verifiers
//! - `keyless`    — Sigstore keyless signing against a local Fulcio/Rekor
//! - `registry`   — the push tests' helpers proved on real tools: docker-registry, skopeo,
//!   curl through the fault-injecting proxy
//! - `tamper`     — every byte of the output flipped or rewritten: `verify` fails
//! - `push`       — push to a real registry, pull back byte for byte, `verify REF`; faults
//!   injected between; a tampered registry fails verification
//! - `repro`      — `kiln repro` on a reproducible and a deliberately unreproducible project
//! - `provided`   — builds inside the provided toolchain root: another machine (no rustup, no
//!   host gcc) gives the same bytes; a changed root, an unobtainable one, an unpacked lock
//! - `rebuild`    — `kiln rebuild PROVENANCE` reproduces a release; altered inputs are named

/// The binary under test (see `support::kiln`).
const KILN: &str = env!("CARGO_BIN_EXE_kiln");

mod support;

mod attest;
mod bad_input;
mod build;
mod cache;
mod cache_registry;
mod cargo_home;
mod controls;
mod crash;
mod evidence;
mod keyless;
mod provided;
mod push;
mod rebuild;
mod registry;
mod repro;
mod sandbox;
mod sbom;
mod tamper;
mod vex;
