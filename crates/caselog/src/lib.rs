//! The durable case log: events and case states in an ordered key-value
//! store, with a versioned, checksummed encoding.
//!
//! - [`store`]: the storage trait, the sled implementation (with the fsync
//!   barrier sled 0.34.7 lacks) and an in-memory store that injects faults.
//! - [`codec`]: keys and the versioned envelope around postcard.
//! - [`log`]: [`CaseLog`], what the engine writes through and recovers from.
//!
//! Invariant: this is the only crate that knows sled or the on-disk format.
//! It never decides anything about cases; it stores what it is given and
//! refuses to hand back bytes that fail their checksum.

pub mod codec;
pub mod log;
pub mod store;
mod wal;

pub use codec::CodecError;
pub use log::{CaseLog, Encoded, LogError, Recovery, VerifyReport, RECOVER_CHECK_RECENT};
pub use store::{
    background_priority, Faults, Gate, MemStore, SledStore, Store, StoreError, WriteBatch, BACKGROUND_NICE,
    WAL_FILES,
};
