//! `summary.json` is part of the on-disk contract: its type lives in
//! [`kiln_core::contract::summary`], re-exported here so users of kiln-build's API keep
//! naming it `kiln_build::Summary`.

pub use kiln_core::contract::summary::{
    Artifact, BinaryRecord, LayerRecord, SCHEMA, SdeRecord, Summary, ToolchainRecord, artifacts,
};
