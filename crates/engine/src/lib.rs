//! The engine: the single writer.
//!
//! One thread owns every case. Connections hand it commands over a bounded
//! channel ([`EngineHandle::submit`]); it drains a batch, applies each
//! command through the lifecycle and the router, writes the batch's events
//! and cases to the case log in one atomic batch, syncs once, and only then
//! replies (group commit). A failed write or sync rolls the batch back in
//! memory and in the store, answers `unavailable`, and keeps serving reads.
//!
//! - [`clock`]: wall clock or manual clock.
//! - [`state`](crate::state): cases and their derived indexes.
//! - [`engine`](crate::engine): the thread, batching, commit and rollback.
//! - [`commands`](crate::commands): one handler per command.
//!
//! Invariants: nothing outside this thread mutates a case; no reply to a
//! write leaves before the sync that covers it; memory never runs ahead of
//! the log.

pub mod clock;
mod commands;
mod engine;
pub mod latency;
mod state;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{
    start, CommitStats, EngineConfig, EngineHandle, EngineThread, HistoryGate, HistoryRoom, ReplyRx,
    StartError,
};
