//! Commands: what a client asks of Gridline, already parsed and typed.
//!
//! The protocol crate turns lines into these; the server answers the
//! session-level ones (`Auth`, `Ping`, `Help`, `Quit`, `Token`) and hands the
//! rest to the engine.

use std::fmt;

use crate::case::{Intake, Role};
use crate::ids::{CaseId, CaseNo};

/// A case as a client names it: by id or by case number.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CaseRef {
    Id(CaseId),
    No(CaseNo),
}

impl CaseRef {
    /// A UUID is an id; anything else is taken as a case number, in
    /// capitals (a number's letters, the county's code, are capitals: one
    /// read out over the phone may be typed in lower case).
    pub fn parse(s: &str) -> CaseRef {
        match s.parse::<CaseId>() {
            Ok(id) if s.len() == 36 => CaseRef::Id(id),
            _ => CaseRef::No(CaseNo(s.to_ascii_uppercase().into())),
        }
    }
}

impl fmt::Display for CaseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaseRef::Id(id) => id.fmt(f),
            CaseRef::No(no) => no.fmt(f),
        }
    }
}

/// Paging for list replies: at most `limit` items after the cursor `after`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub limit: Option<u32>,
    pub after: Option<String>,
}

/// How an audit groups its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditBy {
    County,
    Township,
    Grid,
    Department,
    Worker,
    Category,
    Month,
}

impl AuditBy {
    pub const ALL: [AuditBy; 7] = [
        AuditBy::County,
        AuditBy::Township,
        AuditBy::Grid,
        AuditBy::Department,
        AuditBy::Worker,
        AuditBy::Category,
        AuditBy::Month,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditBy::County => "county",
            AuditBy::Township => "township",
            AuditBy::Grid => "grid",
            AuditBy::Department => "department",
            AuditBy::Worker => "worker",
            AuditBy::Category => "category",
            AuditBy::Month => "month",
        }
    }

    pub fn parse(s: &str) -> Option<AuditBy> {
        AuditBy::ALL.into_iter().find(|b| b.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Auth {
        token: String,
    },
    Accept(Intake),
    Route(Intake),
    Pull {
        worker: Option<String>,
        page: Page,
    },
    Claim {
        case: CaseRef,
    },
    Note {
        case: CaseRef,
        text: String,
        /// The worker's request id: a retry with the same one is not stored
        /// again (see [`crate::Case::note_reqs`]).
        req: Option<String>,
    },
    Return {
        case: CaseRef,
        reason: String,
    },
    Close {
        case: CaseRef,
        result: String,
    },
    Feedback {
        case: CaseRef,
        satisfied: bool,
        score: Option<u8>,
        text: Option<String>,
    },
    /// A worker asks for time until `until` (a time as the protocol writes it).
    Extend {
        case: CaseRef,
        until: String,
        reason: String,
    },
    /// A supervisor approves or refuses the pending extension.
    DecideExtension {
        case: CaseRef,
        approve: bool,
        reason: Option<String>,
    },
    Dispatch {
        case: CaseRef,
        worker: String,
    },
    Get {
        case: CaseRef,
    },
    Overdue {
        township: Option<String>,
        grid: Option<String>,
        page: Page,
    },
    Audit {
        by: AuditBy,
        from: Option<String>,
        to: Option<String>,
    },
    Token {
        role: Role,
        worker: Option<String>,
        name: Option<String>,
    },
    /// Withdraws the token named `name`: it no longer authenticates, and
    /// connections that used it are logged out at their next request.
    Revoke {
        name: String,
    },
    /// The server's acknowledgement latency since start or the last reset.
    Stats {
        reset: bool,
    },
    Ping,
    Help,
    Quit,
}

impl Command {
    /// The verb as written on the wire.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Auth { .. } => "AUTH",
            Command::Accept(_) => "ACCEPT",
            Command::Route(_) => "ROUTE",
            Command::Pull { .. } => "PULL",
            Command::Claim { .. } => "CLAIM",
            Command::Note { .. } => "NOTE",
            Command::Return { .. } => "RETURN",
            Command::Close { .. } => "CLOSE",
            Command::Feedback { .. } => "FEEDBACK",
            Command::Extend { .. } | Command::DecideExtension { .. } => "EXTEND",
            Command::Dispatch { .. } => "DISPATCH",
            Command::Get { .. } => "GET",
            Command::Overdue { .. } => "OVERDUE",
            Command::Audit { .. } => "AUDIT",
            Command::Token { .. } => "TOKEN",
            Command::Revoke { .. } => "REVOKE",
            Command::Stats { .. } => "STATS",
            Command::Ping => "PING",
            Command::Help => "HELP",
            Command::Quit => "QUIT",
        }
    }

    /// Whether the command changes the log (and so waits for the disk).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Command::Accept(_)
                | Command::Claim { .. }
                | Command::Note { .. }
                | Command::Return { .. }
                | Command::Close { .. }
                | Command::Feedback { .. }
                | Command::Extend { .. }
                | Command::DecideExtension { .. }
                | Command::Dispatch { .. }
        )
    }
}

/// Who is asking: the role of the token and, for workers, their worker id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    pub role: Role,
    pub name: String,
    pub worker: Option<String>,
}
