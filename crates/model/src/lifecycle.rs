//! The lifecycle as a pure state machine: `apply` folds one event into a
//! case or says, with a typed error, why the event cannot happen now.
//!
//! ```text
//!            Accepted ──dispatch──> Dispatched ──claim──> Handling ──close──> Closed
//!               ^  │ waiting            │   ^               │                 │
//!               │  └──────┘             │   └─reassign──────┤                 │
//!               └──────── return ───────┴───────────────────┘                 │
//!               └──────── reopen (feedback: not satisfied) ───────────────────┘
//! ```

use crate::case::{Assignment, Case, ExtensionRequest, Feedback, NoteReq, Status, NOTE_REQS_KEPT};
use crate::event::{Deadline, Event, EventKind};

/// Why an event cannot be applied to a case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("event {got} out of order: the case is at event {last}")]
    OutOfOrder { last: u32, got: u32 },
    #[error("event belongs to another case")]
    WrongCase,
    #[error("a case starts with `accepted`; this one starts with `{0}`")]
    NotAStart(&'static str),
    #[error("cannot {action} a case that is {status}")]
    State { action: &'static str, status: &'static str },
    #[error("feedback was already recorded for this round")]
    FeedbackTwice,
    #[error("a reopen must follow unsatisfied feedback")]
    ReopenWithoutComplaint,
    #[error("an extension is already waiting for a decision")]
    ExtensionPending,
    #[error("no extension is waiting for a decision")]
    NoExtension,
    #[error("the {0} deadline was already reported overdue")]
    AlreadyOverdue(&'static str),
    #[error("the case was returned by {0}; it cannot go back to them")]
    ReturnedBy(String),
    #[error("score must be 1 to 5, got {0}")]
    Score(u8),
}

fn state(action: &'static str, status: Status) -> TransitionError {
    TransitionError::State { action, status: status.as_str() }
}

impl Case {
    /// Starts a case from its first event.
    pub fn from_first(event: &Event) -> Result<Case, TransitionError> {
        let EventKind::Accepted { no, intake, category, township } = &event.kind else {
            return Err(TransitionError::NotAStart(event.kind.name()));
        };
        if event.seq != 1 {
            return Err(TransitionError::OutOfOrder { last: 0, got: event.seq });
        }
        Ok(Case {
            id: event.case,
            no: no.clone(),
            intake: intake.clone(),
            category: category.clone(),
            status: Status::Accepted,
            received_at: event.at,
            operator: event.actor.name.clone(),
            township: township.clone(),
            assignment: None,
            due_claim: None,
            due_close: None,
            dispatched_at: None,
            claimed_at: None,
            closed_at: None,
            result: None,
            responded_on_time: None,
            closed_on_time: None,
            overdue_claim: false,
            overdue_close: false,
            escalation_level: 0,
            returned_by: Vec::new(),
            returns: 0,
            reopens: 0,
            extension: None,
            extensions_granted: 0,
            feedback: None,
            waiting_reason: None,
            last_seq: 1,
            updated_at: event.at,
            responder: None,
            responder_unknown: false,
            note_reqs: None,
            stored_page: Default::default(),
        })
    }

    /// Rebuilds a case from its whole history.
    pub fn from_events<'a>(
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Result<Option<Case>, TransitionError> {
        let mut it = events.into_iter();
        let Some(first) = it.next() else { return Ok(None) };
        let mut case = Case::from_first(first)?;
        for e in it {
            case.apply(e)?;
        }
        Ok(Some(case))
    }

    /// The case is about to leave its assignment: if its response was
    /// judged under it, and no earlier one was kept, keep it as the
    /// responder's (see [`Case::responder`]).
    fn keep_responder(&mut self) {
        if self.responder.is_none() && self.responded_on_time.is_some() && !self.responder_unknown {
            self.responder = self.assignment.clone().map(Box::new);
        }
    }

    /// Checks that `event` may happen now, without changing anything.
    pub fn check(&self, event: &Event) -> Result<(), TransitionError> {
        self.clone().apply(event)
    }

    /// Folds one event into the case. On error the case is unchanged.
    pub fn apply(&mut self, event: &Event) -> Result<(), TransitionError> {
        if event.case != self.id {
            return Err(TransitionError::WrongCase);
        }
        // checked: a case read back with a corrupt `last_seq` must not overflow.
        if self.last_seq.checked_add(1) != Some(event.seq) {
            return Err(TransitionError::OutOfOrder { last: self.last_seq, got: event.seq });
        }
        let s = self.status;
        match &event.kind {
            EventKind::Accepted { .. } => return Err(state("accept again", s)),
            EventKind::Dispatched {
                grid, township, worker, department, rule, due_claim, due_close, ..
            } => {
                if s == Status::Closed {
                    return Err(state("dispatch", s));
                }
                if self.returned_by.iter().any(|w| w == worker) {
                    return Err(TransitionError::ReturnedBy(worker.to_string()));
                }
                if self.assignment.as_ref().is_some_and(|a| a.worker != *worker) {
                    self.keep_responder();
                }
                self.status = Status::Dispatched;
                self.assignment = Some(Assignment {
                    grid: grid.clone(),
                    township: township.clone(),
                    worker: worker.clone(),
                    department: department.clone(),
                    rule: rule.clone(),
                });
                // The case's township is its location's (docs/audit.md); a
                // dispatch supplies it only when the location gave none. A
                // supervisor's dispatch to a worker of another township does
                // not move the case (the assignment says whose it is).
                if self.township.is_none() {
                    self.township = Some(township.clone());
                }
                self.due_claim = Some(*due_claim);
                self.due_close = Some(*due_close);
                self.dispatched_at = Some(event.at);
                self.overdue_claim = false;
                self.overdue_close = false;
                self.escalation_level = 0;
                self.waiting_reason = None;
                self.extension = None;
            }
            EventKind::Waiting { reason } => {
                if s != Status::Accepted {
                    return Err(state("park at the command centre", s));
                }
                self.waiting_reason = Some(reason.clone());
            }
            EventKind::Claimed => {
                if s != Status::Dispatched {
                    return Err(state("claim", s));
                }
                self.status = Status::Handling;
                // The response is judged once: at the first claim, or
                // earlier by a missed claim deadline (see `Overdue`).
                if self.responded_on_time.is_none() {
                    self.responded_on_time = Some(self.due_claim.is_none_or(|d| event.at <= d));
                }
                self.claimed_at.get_or_insert(event.at);
            }
            EventKind::Noted { .. } => {
                if !matches!(s, Status::Dispatched | Status::Handling) {
                    return Err(state("add a note to", s));
                }
            }
            EventKind::NotedReq { text, req } => {
                if !matches!(s, Status::Dispatched | Status::Handling) {
                    return Err(state("add a note to", s));
                }
                let kept = self.note_reqs.get_or_insert_with(Default::default);
                if kept.len() == NOTE_REQS_KEPT {
                    kept.remove(0);
                }
                kept.push(NoteReq {
                    actor: event.actor.clone(),
                    req: req.clone(),
                    text_hash: NoteReq::hash_text(text),
                });
            }
            EventKind::Returned { .. } => {
                if !matches!(s, Status::Dispatched | Status::Handling) {
                    return Err(state("return", s));
                }
                self.keep_responder();
                let a = self.assignment.take().expect("dispatched cases have an assignment");
                self.returned_by.push(a.worker);
                self.returns += 1;
                self.status = Status::Accepted;
                self.due_claim = None;
                self.due_close = None;
                self.extension = None;
            }
            EventKind::Closed { result } => {
                if s != Status::Handling {
                    return Err(state("close", s));
                }
                self.status = Status::Closed;
                self.closed_at = Some(event.at);
                self.result = Some(result.clone());
                self.closed_on_time = Some(self.due_close.is_none_or(|d| event.at <= d));
                self.extension = None;
                self.feedback = None;
                // No note can follow until a reopening, and a retry of one
                // from before the close is refused by state; kept, the ids
                // would cost every closed case their bytes for good.
                self.note_reqs = None;
            }
            EventKind::Feedback { satisfied, score, text } => {
                if s != Status::Closed {
                    return Err(state("record feedback on", s));
                }
                if self.feedback.is_some() {
                    return Err(TransitionError::FeedbackTwice);
                }
                if let Some(sc) = score {
                    if !(1..=5).contains(sc) {
                        return Err(TransitionError::Score(*sc));
                    }
                }
                self.feedback =
                    Some(Feedback { satisfied: *satisfied, score: *score, text: text.clone(), at: event.at });
            }
            EventKind::Reopened { .. } => {
                if s != Status::Closed {
                    return Err(state("reopen", s));
                }
                if !matches!(&self.feedback, Some(f) if !f.satisfied) {
                    return Err(TransitionError::ReopenWithoutComplaint);
                }
                self.status = Status::Accepted;
                self.reopens += 1;
                self.keep_responder();
                self.assignment = None;
                self.due_claim = None;
                self.due_close = None;
                self.closed_on_time = None;
            }
            EventKind::ExtensionRequested { until, reason } => {
                if !matches!(s, Status::Dispatched | Status::Handling) {
                    return Err(state("extend", s));
                }
                if self.extension.is_some() {
                    return Err(TransitionError::ExtensionPending);
                }
                self.extension = Some(Box::new(ExtensionRequest {
                    until: *until,
                    reason: reason.clone(),
                    by: event.actor.name.clone(),
                    at: event.at,
                }));
            }
            EventKind::ExtensionDecided { approved, until, .. } => {
                if !matches!(s, Status::Dispatched | Status::Handling) {
                    return Err(state("decide an extension of", s));
                }
                if self.extension.take().is_none() {
                    return Err(TransitionError::NoExtension);
                }
                if *approved {
                    self.due_close = Some(*until);
                    self.overdue_close = false;
                    self.extensions_granted += 1;
                }
            }
            EventKind::Overdue { deadline, .. } => match deadline {
                Deadline::Claim => {
                    if s != Status::Dispatched {
                        return Err(state("mark claim overdue", s));
                    }
                    if self.overdue_claim {
                        return Err(TransitionError::AlreadyOverdue("claim"));
                    }
                    self.overdue_claim = true;
                    // A first response already late stays late, whoever
                    // claims the case after a return or a reassignment
                    // (which clear the flag) and however fast.
                    if self.claimed_at.is_none() {
                        self.responded_on_time.get_or_insert(false);
                    }
                }
                Deadline::Close => {
                    if !matches!(s, Status::Dispatched | Status::Handling) {
                        return Err(state("mark close overdue", s));
                    }
                    if self.overdue_close {
                        return Err(TransitionError::AlreadyOverdue("close"));
                    }
                    self.overdue_close = true;
                }
            },
            EventKind::Escalated { level, .. } => {
                // Handling: a missed close deadline (older versions escalated
                // missed claim deadlines only).
                if !matches!(s, Status::Accepted | Status::Dispatched | Status::Handling) {
                    return Err(state("escalate", s));
                }
                self.escalation_level = *level;
            }
        }
        self.last_seq = event.seq;
        self.updated_at = event.at;
        Ok(())
    }
}
