//! Events: every change to a case, with its time, actor and reason.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::case::{Actor, Intake};
use crate::ids::{CaseId, CaseNo};
use crate::time::Timestamp;

/// Which deadline an `Overdue` event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Deadline {
    Claim,
    Close,
}

impl Deadline {
    pub fn as_str(self) -> &'static str {
        match self {
            Deadline::Claim => "claim",
            Deadline::Close => "close",
        }
    }
}

/// One step in a case's life.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub case: CaseId,
    /// 1 for the first event of a case, then +1 per event.
    pub seq: u32,
    pub at: Timestamp,
    pub actor: Actor,
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum EventKind {
    /// 受理: the hotline took the case.
    Accepted { no: CaseNo, intake: Intake, category: CompactString, township: Option<CompactString> },
    /// 派单: routed (or manually sent) to a worker, with fresh deadlines.
    Dispatched {
        grid: CompactString,
        township: CompactString,
        worker: CompactString,
        department: Option<CompactString>,
        rule: CompactString,
        reason: CompactString,
        due_claim: Timestamp,
        due_close: Timestamp,
    },
    /// Routing found nobody: the case waits at the command centre.
    Waiting { reason: CompactString },
    /// 签收: the worker signed for it.
    Claimed,
    /// 办理: a progress note.
    Noted { text: CompactString },
    /// 退单: "not mine"; back to routing, never to the same worker.
    Returned { reason: CompactString },
    /// 办结: done.
    Closed { result: CompactString },
    /// 回访: the resident's rating.
    Feedback { satisfied: bool, score: Option<u8>, text: Option<CompactString> },
    /// 重办: unsatisfied; the case goes round again.
    Reopened { reason: CompactString },
    /// 延期: a worker asks for more time.
    ExtensionRequested { until: Timestamp, reason: CompactString },
    /// A supervisor decides on the pending extension.
    ExtensionDecided { approved: bool, until: Timestamp, reason: Option<CompactString> },
    /// A deadline passed.
    Overdue { deadline: Deadline, due: Timestamp },
    /// 督办: sent up the chain.
    Escalated { to: CompactString, level: u8, reason: CompactString },
    /// 办理 with the request id its `NOTE` carried (`req=`), so that a retry
    /// is not stored twice (since log format 5; last, as postcard numbers
    /// the variants in order). Shown as `noted`, with its `req`.
    NotedReq { text: CompactString, req: CompactString },
}

impl EventKind {
    /// The word the protocol and the audit use for this kind of event.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Accepted { .. } => "accepted",
            EventKind::Dispatched { .. } => "dispatched",
            EventKind::Waiting { .. } => "waiting",
            EventKind::Claimed => "claimed",
            EventKind::Noted { .. } | EventKind::NotedReq { .. } => "noted",
            EventKind::Returned { .. } => "returned",
            EventKind::Closed { .. } => "closed",
            EventKind::Feedback { .. } => "feedback",
            EventKind::Reopened { .. } => "reopened",
            EventKind::ExtensionRequested { .. } => "extension_requested",
            EventKind::ExtensionDecided { .. } => "extension_decided",
            EventKind::Overdue { .. } => "overdue",
            EventKind::Escalated { .. } => "escalated",
        }
    }
}
