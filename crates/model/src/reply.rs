//! Replies and errors, before the protocol writes them as text.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::case::{mask_phone, Case};
use crate::decision::Decision;
use crate::event::Event;

/// The contract's error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadRequest,
    UnknownVerb,
    Unauthenticated,
    Forbidden,
    NotFound,
    /// The case's state does not allow that transition.
    Conflict,
    TooLarge,
    Busy,
    /// Storage cannot take writes.
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::BadRequest,
        ErrorCode::UnknownVerb,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::TooLarge,
        ErrorCode::Busy,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownVerb => "unknown_verb",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Busy => "busy",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// An `ERR` reply: a code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

/// How much of what a client sent an error message quotes.
pub const ECHO_MAX_CHARS: usize = 32;

/// At most [`ECHO_MAX_CHARS`] of what a client sent, for error messages: a
/// reply should not carry a client's 8 KiB line back to it.
pub fn clip(s: &str) -> String {
    let mut it = s.chars();
    let head: String = it.by_ref().take(ECHO_MAX_CHARS).collect();
    if it.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error { code, message: message.into() }
    }
    pub fn bad_request(m: impl Into<String>) -> Error {
        Error::new(ErrorCode::BadRequest, m)
    }
    pub fn forbidden(m: impl Into<String>) -> Error {
        Error::new(ErrorCode::Forbidden, m)
    }
    /// `forbidden`, in the one wording every verb uses for a role it refuses.
    pub fn not_allowed(verb: &str, role: crate::case::Role) -> Error {
        Error::forbidden(format!("{verb} is not allowed for role {}", role.as_str()))
    }
    pub fn not_found(m: impl Into<String>) -> Error {
        Error::new(ErrorCode::NotFound, m)
    }
    pub fn conflict(m: impl Into<String>) -> Error {
        Error::new(ErrorCode::Conflict, m)
    }
    pub fn unavailable(m: impl Into<String>) -> Error {
        Error::new(ErrorCode::Unavailable, m)
    }
    pub fn internal(m: impl Into<String>) -> Error {
        Error::new(ErrorCode::Internal, m)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}

/// One row of a table reply (`AUDIT`): ordered key/value pairs.
pub type Row = Vec<(String, String)>;

/// A case as one caller may see it. It shares the engine's copy of the
/// case rather than copying it; the resident's phone is shown masked unless
/// the caller may see it whole. There is no `Deref` to [`Case`] on purpose:
/// the case's own `intake.phone` is the whole number, so whatever shows a
/// case asks [`phone`](Self::phone).
#[derive(Clone, Debug, PartialEq)]
pub struct CaseView {
    case: Arc<Case>,
    reveal_phone: bool,
}

impl CaseView {
    pub fn new(case: Arc<Case>, reveal_phone: bool) -> CaseView {
        CaseView { case, reveal_phone }
    }

    /// The case. Its `intake.phone` is not masked: show [`phone`](Self::phone).
    pub fn case(&self) -> &Case {
        &self.case
    }

    /// The phone as this caller may see it.
    pub fn phone(&self) -> Option<Cow<'_, str>> {
        let p = self.case.intake.phone.as_deref()?;
        Some(if self.reveal_phone { Cow::Borrowed(p) } else { Cow::Owned(mask_phone(p)) })
    }

    pub fn reveals_phone(&self) -> bool {
        self.reveal_phone
    }
}

/// Something a reply holds while it lives, and lets go when it is dropped
/// (made into its reply's bytes, or dropped unread): a `GET`'s share of the
/// server's bound on the replies it holds, taken when its history is
/// loaded. Not part of what the reply says: clones hold nothing, and every
/// two compare equal.
#[derive(Default)]
pub struct Hold(Option<Box<dyn std::any::Any + Send + Sync>>);

impl Hold {
    pub fn new(held: impl std::any::Any + Send + Sync) -> Hold {
        Hold(Some(Box::new(held)))
    }
}

impl Clone for Hold {
    fn clone(&self) -> Hold {
        Hold(None)
    }
}

impl PartialEq for Hold {
    fn eq(&self, _: &Hold) -> bool {
        true
    }
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Hold(held)" } else { "Hold(none)" })
    }
}

/// A successful reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `OK key=value ...`
    Fields(Vec<(String, String)>),
    /// A new (or, with `duplicate`, an earlier) case and how it was routed.
    Accepted { case: CaseView, decision: Decision, duplicate: bool },
    /// `ROUTE`: the decision alone.
    Routed(Decision),
    /// A write that changed a case: the case as it is now.
    Case(CaseView),
    /// `GET`: the case and its events, and what the reply holds while it
    /// lives (the server's count of the history's bytes: see [`Hold`]).
    Detail { case: CaseView, events: Vec<Event>, hold: Hold },
    /// `PULL`, `OVERDUE`: a page of cases; `next` is the cursor for the next page.
    Cases { cases: Vec<CaseView>, next: Option<String> },
    /// `AUDIT`: table rows.
    Rows(Vec<Row>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
