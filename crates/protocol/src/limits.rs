//! The protocol's limits. The parser enforces the per-value ones; the
//! server enforces the rest and may make them configurable (these are the
//! documented defaults, see `docs/protocol.md`).

/// Longest free-text value (`text`, `reason`, `result`), in characters.
pub const TEXT_MAX_CHARS: usize = 4_000;

/// Longest value of any other field, in characters.
pub const VALUE_MAX_CHARS: usize = 256;

/// Largest `limit=` the parser accepts.
pub const PAGE_LIMIT_MAX: u32 = 1_000;

/// Page size when a list request gives no `limit=` (server default).
pub const PAGE_LIMIT_DEFAULT: u32 = 100;

/// Longest request line in bytes, its terminator (LF or CRLF) excluded
/// (server default): a longer line gets `ERR too_large` and the server
/// closes the connection.
pub const LINE_MAX_BYTES_DEFAULT: usize = 8 * 1024;

/// Idle time after which the server closes a connection (server default).
pub const IDLE_TIMEOUT_SECS_DEFAULT: u64 = 300;

/// Concurrent connections; one more gets `ERR busy` and a close (server default).
pub const CONNECTIONS_MAX_DEFAULT: usize = 1_024;

/// Connections one token may hold authenticated at once; an `AUTH` past it
/// gets `ERR busy` and leaves the connection unauthenticated (server
/// default). A quarter of [`CONNECTIONS_MAX_DEFAULT`], so one token alone
/// leaves 768 slots to the others; four times the most the project's own
/// load drivers open with one token (`simulate --connections` 64, the
/// end-to-end bench's 32).
pub const CONNECTIONS_PER_TOKEN_MAX_DEFAULT: usize = 256;

/// Bytes of replies one connection may hold unsent before the server stops
/// reading its requests (server default).
pub const REPLY_BYTES_MAX_DEFAULT: usize = 4 * 1024 * 1024;
/// Bytes of replies all connections together may hold unsent before the
/// server takes no more reads (server default).
pub const HELD_REPLY_BYTES_MAX_DEFAULT: usize = 256 * 1024 * 1024;
