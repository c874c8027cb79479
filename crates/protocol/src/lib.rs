//! Gridline's line protocol: pure parsing and formatting of requests and
//! replies. No IO, no clock; besides the server, the only code that knows
//! the wire format. `docs/protocol.md` is the reference.
//!
//! - [`parse_request`] / [`format_request`]: a request line to a
//!   [`Command`](gridline_model::Command) and back.
//! - [`write_reply`] / [`write_error`]: a [`Reply`](gridline_model::Reply)
//!   or an [`Error`](gridline_model::Error) to lines.
//! - [`parse_reply_line`]: a reply line to a [`ReplyLine`], for clients,
//!   tests and the load driver.
//! - [`HELP`] / [`help_reply`]: the verb list.
//! - [`limits`]: per-value limits the parser enforces and the server's defaults.

mod help;
mod lex;
pub mod limits;
mod reply;
mod request;

pub use help::{help_reply, Usage, HELP};
pub use lex::{is_bare, is_invisible, is_key, write_quoted, write_value};
pub use reply::{
    overdue_word, parse_reply_line, warn_at, write_error, write_reply, Fields, FormatCtx, ParseError,
    ReplyCode, ReplyLine,
};
pub use request::{format_request, parse_request, verbs};
