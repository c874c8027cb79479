//! The case record: what Gridline knows about one resident's request now.
//!
//! A `Case` is always the fold of its events (`lifecycle`); it is stored
//! beside them so reads never replay history.

use std::sync::atomic::{AtomicU64, Ordering};

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::ids::{CaseId, CaseNo};
use crate::time::Timestamp;

/// Where a case is in its loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// 受理: taken, waiting for (re-)dispatch, at the command centre when routing found nobody.
    Accepted,
    /// 派单: sent to a worker, not yet signed for.
    Dispatched,
    /// 办理: the worker signed for it and is working on it.
    Handling,
    /// 办结: the worker reported it done.
    Closed,
}

impl Status {
    pub const ALL: [Status; 4] = [Status::Accepted, Status::Dispatched, Status::Handling, Status::Closed];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Accepted => "accepted",
            Status::Dispatched => "dispatched",
            Status::Handling => "handling",
            Status::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_open(self) -> bool {
        self != Status::Closed
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Priority {
    #[default]
    Normal,
    Urgent,
    Emergency,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Normal, Priority::Urgent, Priority::Emergency];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::Urgent => "urgent",
            Priority::Emergency => "emergency",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Where the resident says the problem is. Any subset may be given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// WGS-84 longitude and latitude, degrees.
    pub point: Option<(f64, f64)>,
    pub grid: Option<CompactString>,
    pub address: Option<CompactString>,
}

/// What the hotline operator took down. Everything a case starts from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Intake {
    pub text: CompactString,
    pub category: Option<CompactString>,
    pub location: Location,
    pub phone: Option<CompactString>,
    pub name: Option<CompactString>,
    pub channel: Option<CompactString>,
    pub priority: Priority,
    /// The client's request id: the same `req` again returns the same case.
    pub req: Option<CompactString>,
}

/// Who did something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    Admin,
    Supervisor,
    Operator,
    Worker,
    /// The engine itself: routing, deadlines, escalation.
    System,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::Operator => "operator",
            Role::Worker => "worker",
            Role::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Admin, Role::Supervisor, Role::Operator, Role::Worker, Role::System]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// An actor: a role and a name (a worker id for workers, the token's name otherwise).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    pub role: Role,
    pub name: CompactString,
}

impl Actor {
    pub fn system() -> Actor {
        Actor { role: Role::System, name: CompactString::const_new("gridline") }
    }

    /// `worker:W00012`, `operator:op-1`, `system:gridline`.
    pub fn label(&self) -> String {
        format!("{}:{}", self.role.as_str(), self.name)
    }
}

/// The current assignment: which grid, worker and department handle the case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub grid: CompactString,
    pub township: CompactString,
    pub worker: CompactString,
    pub department: Option<CompactString>,
    /// The routing rule that chose it (or `manual`).
    pub rule: CompactString,
}

/// The resident's return visit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feedback {
    pub satisfied: bool,
    pub score: Option<u8>,
    pub text: Option<CompactString>,
    pub at: Timestamp,
}

/// A worker's request for more time, waiting for a supervisor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionRequest {
    pub until: Timestamp,
    pub reason: CompactString,
    pub by: CompactString,
    pub at: Timestamp,
}

/// One case, as of its last event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub id: CaseId,
    pub no: CaseNo,
    pub intake: Intake,
    /// The category the case is handled under (given or inferred).
    pub category: CompactString,
    pub status: Status,
    pub received_at: Timestamp,
    /// Who took the call.
    pub operator: CompactString,
    /// Township of the location, once known (audit groups by it even for waiting cases).
    pub township: Option<CompactString>,
    pub assignment: Option<Assignment>,
    pub due_claim: Option<Timestamp>,
    pub due_close: Option<Timestamp>,
    pub dispatched_at: Option<Timestamp>,
    pub claimed_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub result: Option<CompactString>,
    /// Claimed within the claim limit the first time it was claimed:
    /// `Some(false)` as soon as a claim deadline passes before any claim
    /// (and for good: a return or a new dispatch does not clear it), set at
    /// the first claim otherwise; `None` while neither happened.
    pub responded_on_time: Option<bool>,
    /// Closed within the close limit, the last time it was closed.
    pub closed_on_time: Option<bool>,
    pub overdue_claim: bool,
    pub overdue_close: bool,
    pub escalation_level: u8,
    /// Workers who returned the case: it never goes back to them.
    pub returned_by: Vec<CompactString>,
    pub returns: u32,
    pub reopens: u32,
    /// Boxed: rare, and inline it would take 56 bytes more of every case.
    pub extension: Option<Box<ExtensionRequest>>,
    pub extensions_granted: u32,
    pub feedback: Option<Feedback>,
    /// Why the case waits at the command centre, while it does.
    pub waiting_reason: Option<CompactString>,
    /// Sequence number of the last event applied (the first event is 1).
    pub last_seq: u32,
    pub updated_at: Timestamp,
    /// The assignment the case had when its response was judged (its first
    /// claim, or a claim deadline missed before any claim), kept once the
    /// case moves on (a return, a dispatch to another worker, a reopen):
    /// the audit charges the response to the worker who owed it, not to
    /// whoever holds the case now. `None` while the case has not moved on
    /// since (the assignment is the one). Boxed, as it is rare; the log
    /// stores it beside the case (a record of its own kind).
    #[serde(skip)]
    pub responder: Option<Box<Assignment>>,
    /// Read from a record written before the log kept responders (format 3
    /// or older) with its response judged: whether the case had moved on
    /// since is not known, so no responder is ever kept for it (the one
    /// under which a later move happens need not be the one that
    /// responded), and the audit charges its response to the current
    /// assignment. Where the record came from, not what happened to the case.
    #[serde(skip)]
    pub responder_unknown: bool,
    /// The latest notes written with a request id (`NOTE ... req=`), newest
    /// last, [`NOTE_REQS_KEPT`] at most, since the case was last dispatched
    /// or reopened: a retried `NOTE` (its connection dropped before the
    /// reply) is recognised and not stored twice. Forgotten when the case
    /// closes (a note can follow only a reopening). Boxed, as most cases
    /// have none; the log stores it beside the case (a record of its own
    /// kind), and a fold of the events rebuilds it.
    #[serde(skip)]
    pub note_reqs: Option<Box<Vec<NoteReq>>>,
    /// Where the case log keeps the case's newest events (its page; 0 for
    /// none). The log's business: events leave it alone, and the log
    /// stores it beside the case, not in it.
    #[serde(skip)]
    pub stored_page: StoredPage,
}

/// How many of a case's latest notes with a request id it remembers (see
/// [`Case::note_reqs`]).
pub const NOTE_REQS_KEPT: usize = 8;

/// A note written with a request id: who wrote it, the id, and a hash of
/// its text (a retry must carry the same text).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteReq {
    pub actor: Actor,
    pub req: CompactString,
    pub text_hash: u64,
}

impl NoteReq {
    /// FNV-1a over the text's bytes: stable across builds and restarts, as
    /// a fold of the events rebuilds it.
    pub fn hash_text(text: &str) -> u64 {
        text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    }
}

impl Case {
    /// The note `actor` wrote with request id `req`, if the case still remembers it.
    pub fn note_req(&self, actor: &Actor, req: &str) -> Option<&NoteReq> {
        self.note_reqs.as_deref()?.iter().find(|n| n.actor == *actor && n.req == req)
    }
}

/// A case's page in the log, which the log sets through a shared
/// reference: the engine's copy of a case may be shared with replies on
/// their way out, and the log names the page once the batch is encoded,
/// after those replies were made. Only the engine and the log use it;
/// no reply shows it.
#[derive(Default)]
pub struct StoredPage(AtomicU64);

impl StoredPage {
    pub fn new(page: u64) -> StoredPage {
        StoredPage(AtomicU64::new(page))
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, page: u64) {
        self.0.store(page, Ordering::Relaxed)
    }
}

impl Clone for StoredPage {
    fn clone(&self) -> StoredPage {
        StoredPage::new(self.get())
    }
}

impl PartialEq for StoredPage {
    fn eq(&self, other: &StoredPage) -> bool {
        self.get() == other.get()
    }
}

impl std::fmt::Debug for StoredPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

impl Case {
    pub fn worker(&self) -> Option<&str> {
        self.assignment.as_ref().map(|a| a.worker.as_str())
    }

    pub fn grid(&self) -> Option<&str> {
        self.assignment.as_ref().map(|a| a.grid.as_str())
    }

    /// The deadline the case is racing now, if any.
    pub fn next_due(&self) -> Option<Timestamp> {
        match self.status {
            Status::Dispatched => self.due_claim,
            Status::Handling => self.due_close,
            _ => None,
        }
    }
}

/// `13812345678` -> `138****5678` (a mobile number: its first three and
/// last four digits); a shorter number shows its last four only
/// (`84251234` -> `****1234`), so that at least half of it is hidden; one
/// of under eight characters is hidden whole.
pub fn mask_phone(p: &str) -> String {
    if p.is_ascii() {
        // One byte a character: no list of characters to collect.
        let n = p.len();
        if n < 8 {
            return "*".repeat(n);
        }
        let head = if n >= 11 { 3 } else { 0 };
        let mut s = String::with_capacity(n);
        s.push_str(&p[..head]);
        s.extend(std::iter::repeat_n('*', n - 4 - head));
        s.push_str(&p[n - 4..]);
        return s;
    }
    let chars: Vec<char> = p.chars().collect();
    let n = chars.len();
    if n < 8 {
        return "*".repeat(n);
    }
    let head: String = if n >= 11 { chars[..3].iter().collect() } else { String::new() };
    let tail: String = chars[n - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(n - 4 - head.chars().count()))
}

#[cfg(test)]
mod tests {
    /// The engine holds every case in an `Arc`: with its two counters it
    /// must stay within mimalloc's 768-byte size class, or each of a
    /// million cases takes 128 bytes more (the next class is 896).
    #[test]
    fn a_shared_case_fits_in_768_bytes() {
        let shared = std::mem::size_of::<super::Case>() + 2 * std::mem::size_of::<usize>();
        assert!(shared <= 768, "Arc<Case> allocates {shared} bytes");
    }

    #[test]
    fn masks_phones() {
        assert_eq!(super::mask_phone("13812345678"), "138****5678");
        assert_eq!(super::mask_phone("12345"), "*****");
        assert_eq!(super::mask_phone("84251234"), "****1234", "a landline shows half at most");
        assert_eq!(super::mask_phone("0467123456"), "******3456");
        assert_eq!(super::mask_phone("+8613812345678"), "+86*******5678");
        // Not ASCII: counted in characters, not bytes.
        assert_eq!(super::mask_phone("１３８１２３４５６７８"), "１３８****５６７８");
        assert_eq!(super::mask_phone("电话１２３４"), "******");
        assert_eq!(super::mask_phone("分机84251234"), "******1234");
    }
}
