//! The county's grid registry: who and what Gridline routes cases to.
//!
//! - [`types`]: the registry as checked, indexed data ([`Registry`]).
//! - [`load`]: reading a config directory (`county.toml`, `workers.csv`,
//!   `grids.geojson`) and checking every invariant, with errors that name the
//!   file, the line (or feature) and the field. Nothing is half-loaded.
//! - [`embedded`]: the default registry (Jidong County), compiled into the binary.
//! - [`stats`]: the counts `gridline registry stats` prints.
//! - [`words`]: the one written form keywords and texts are matched in.
//!
//! This crate reads files only when asked to load a directory; it never writes.

pub mod embedded;
pub mod load;
pub mod stats;
pub mod types;
pub mod words;

pub use load::{LoadError, LoadErrors, Sources};
pub use stats::Stats;
pub use types::*;
