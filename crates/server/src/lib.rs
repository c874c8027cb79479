//! The TCP server: connections, authentication, limits and shutdown.
//!
//! - [`auth`]: tokens and the token file.
//! - [`codec`](crate::codec): splitting bytes into bounded lines.
//! - [`server`](crate::server): accepting, limits, per-connection pipelining,
//!   graceful shutdown.
//!
//! Invariants: the server never changes a case itself (the engine does);
//! replies leave in request order; every buffer and queue here is bounded.

pub mod auth;
mod codec;
mod server;

pub use server::{run, Gate, HeldReplies, ServerConfig};
