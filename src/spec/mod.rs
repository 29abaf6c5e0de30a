//! The spec hierarchy: layers of values and how they merge.
//!
//! An environment's values come from three layers, lowest first: the release
//! channel's spec, the user input spec (`values.yaml`) and the custom resource
//! spec (`pinned.yaml`). [`merge`] folds them into one value and records, for
//! every leaf, which layer, file and line set it ([`Provenance`]); [`explain`]
//! shows how one key came to be. The rules:
//!
//! - maps merge recursively; a scalar from a higher layer replaces the lower one;
//! - lists are replaced whole;
//! - `null` in a higher layer deletes the key (JSON merge patch, RFC 7386);
//! - a map meeting a scalar: the higher layer wins.
//!
//! This module does no IO: layers are parsed from text the caller read.

mod credentials;
mod known;
mod layer;
mod merge;
pub mod references;
mod schema;

pub use credentials::{PlaintextCredential, plaintext_credentials};
pub use known::{KnownKeys, Seg, UnknownKey, UnknownKeys, unknown_keys, unknown_path};
pub use layer::{Layer, LayerKind, SpecError};
pub use merge::{Explanation, Merged, Origin, Provenance, explain, merge};
pub use schema::{ValuesSchema, Violation, compile as compile_schema, declared_keys};
