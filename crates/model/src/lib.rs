//! Gridline's domain model, shared by every other crate.
//!
//! - [`time`]: timestamps in milliseconds, civil dates at the county's offset.
//! - [`ids`]: case ids (UUID v7) and case numbers (`JD-20261124-000123`).
//! - [`case`]: the case record, its status, priority, intake and actors.
//! - [`event`]: every change to a case as an event.
//! - [`lifecycle`]: the pure state machine folding events into cases.
//! - [`command`]: typed client commands.
//! - [`decision`]: a routing decision and its explanation.
//! - [`reply`]: replies and the contract's error codes.
//!
//! This crate does no IO and knows neither the wire format nor the disk format.

pub mod case;
pub mod command;
pub mod decision;
pub mod event;
pub mod ids;
pub mod lifecycle;
pub mod reply;
pub mod time;

pub use case::{
    Actor, Assignment, Case, Intake, Location, NoteReq, Priority, Role, Status, StoredPage, NOTE_REQS_KEPT,
};
pub use command::{AuditBy, Caller, CaseRef, Command, Page};
pub use compact_str::{format_compact, CompactString, ToCompactString};
pub use decision::{CategorySource, Decision};
pub use event::{Deadline, Event, EventKind};
pub use ids::{CaseId, CaseNo};
pub use lifecycle::TransitionError;
pub use reply::{CaseView, Error, ErrorCode, Hold, Reply, Row};
pub use time::{DurationMs, Timestamp};
