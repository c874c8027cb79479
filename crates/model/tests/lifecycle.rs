//! Property tests of the case lifecycle against a small reference model.
//!
//! The reference model below is written from the contract (the states, what
//! each event needs, and the few flags that gate events), not from
//! `lifecycle.rs`. Random sequences of events of every kind, by random
//! actors at increasing times, with the odd wrong sequence number or wrong
//! case, are fed to both; they must agree on every event, and:
//! - a refused event returns a typed error and leaves the case unchanged;
//! - the status is always one of the four, with the assignment it implies;
//! - `Case::from_events(accepted events)` equals the live case;
//! - nothing panics.

use gridline_model::{
    Actor, Case, CaseId, CaseNo, CompactString, Deadline, Event, EventKind, Intake, Role, Status, Timestamp,
    TransitionError,
};
use proptest::prelude::*;

const WORKERS: [&str; 4] = ["W1", "W2", "W3", "W4"];

/// Why the reference model refuses an event (the variant of `TransitionError` it expects).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    WrongCase,
    OutOfOrder,
    State,
    FeedbackTwice,
    ReopenWithoutComplaint,
    ExtensionPending,
    NoExtension,
    AlreadyOverdue,
    ReturnedBy,
    Score,
}

fn refusal_of(e: &TransitionError) -> Refusal {
    match e {
        TransitionError::WrongCase => Refusal::WrongCase,
        TransitionError::OutOfOrder { .. } => Refusal::OutOfOrder,
        TransitionError::NotAStart(_) | TransitionError::State { .. } => Refusal::State,
        TransitionError::FeedbackTwice => Refusal::FeedbackTwice,
        TransitionError::ReopenWithoutComplaint => Refusal::ReopenWithoutComplaint,
        TransitionError::ExtensionPending => Refusal::ExtensionPending,
        TransitionError::NoExtension => Refusal::NoExtension,
        TransitionError::AlreadyOverdue(_) => Refusal::AlreadyOverdue,
        TransitionError::ReturnedBy(_) => Refusal::ReturnedBy,
        TransitionError::Score(_) => Refusal::Score,
    }
}

/// The lifecycle reduced to what decides which events may happen.
#[derive(Clone, Debug, PartialEq)]
struct Model {
    status: Status,
    last_seq: u32,
    worker: Option<CompactString>,
    returned_by: Vec<CompactString>,
    /// `Some(satisfied)` once feedback is recorded for the current round.
    feedback: Option<bool>,
    extension_pending: bool,
    overdue_claim: bool,
    overdue_close: bool,
}

impl Model {
    fn new() -> Model {
        Model {
            status: Status::Accepted,
            last_seq: 1,
            worker: None,
            returned_by: Vec::new(),
            feedback: None,
            extension_pending: false,
            overdue_claim: false,
            overdue_close: false,
        }
    }

    /// Applies `kind` as event `seq` of the right case (or not); on refusal nothing changes.
    fn step(&mut self, same_case: bool, seq: u32, kind: &EventKind) -> Result<(), Refusal> {
        use Status::*;
        if !same_case {
            return Err(Refusal::WrongCase);
        }
        if seq != self.last_seq + 1 {
            return Err(Refusal::OutOfOrder);
        }
        let s = self.status;
        let assigned = matches!(s, Dispatched | Handling);
        let need = |ok: bool| if ok { Ok(()) } else { Err(Refusal::State) };
        let mut next = self.clone();
        match kind {
            EventKind::Accepted { .. } => need(false)?,
            EventKind::Dispatched { worker, .. } => {
                need(s != Closed)?;
                if self.returned_by.contains(worker) {
                    return Err(Refusal::ReturnedBy);
                }
                next.status = Dispatched;
                next.worker = Some(worker.clone());
                next.extension_pending = false;
                next.overdue_claim = false;
                next.overdue_close = false;
            }
            EventKind::Waiting { .. } => need(s == Accepted)?,
            EventKind::Claimed => {
                need(s == Dispatched)?;
                next.status = Handling;
            }
            EventKind::Noted { .. } | EventKind::NotedReq { .. } => need(assigned)?,
            EventKind::Returned { .. } => {
                need(assigned)?;
                next.returned_by.push(next.worker.take().expect("assigned"));
                next.status = Accepted;
                next.extension_pending = false;
            }
            EventKind::Closed { .. } => {
                need(s == Handling)?;
                next.status = Closed;
                next.feedback = None;
                next.extension_pending = false;
            }
            EventKind::Feedback { satisfied, score, .. } => {
                need(s == Closed)?;
                if self.feedback.is_some() {
                    return Err(Refusal::FeedbackTwice);
                }
                if score.is_some_and(|sc| !(1..=5).contains(&sc)) {
                    return Err(Refusal::Score);
                }
                next.feedback = Some(*satisfied);
            }
            EventKind::Reopened { .. } => {
                need(s == Closed)?;
                if self.feedback != Some(false) {
                    return Err(Refusal::ReopenWithoutComplaint);
                }
                next.status = Accepted;
                next.worker = None;
            }
            EventKind::ExtensionRequested { .. } => {
                need(assigned)?;
                if self.extension_pending {
                    return Err(Refusal::ExtensionPending);
                }
                next.extension_pending = true;
            }
            EventKind::ExtensionDecided { approved, .. } => {
                need(assigned)?;
                if !self.extension_pending {
                    return Err(Refusal::NoExtension);
                }
                next.extension_pending = false;
                if *approved {
                    next.overdue_close = false;
                }
            }
            EventKind::Overdue { deadline: Deadline::Claim, .. } => {
                need(s == Dispatched)?;
                if self.overdue_claim {
                    return Err(Refusal::AlreadyOverdue);
                }
                next.overdue_claim = true;
            }
            EventKind::Overdue { deadline: Deadline::Close, .. } => {
                need(assigned)?;
                if self.overdue_close {
                    return Err(Refusal::AlreadyOverdue);
                }
                next.overdue_close = true;
            }
            EventKind::Escalated { .. } => need(matches!(s, Accepted | Dispatched | Handling))?,
        }
        next.last_seq = seq;
        *self = next;
        Ok(())
    }

    /// The live case says the same as the model.
    fn agrees_with(&self, c: &Case) -> Result<(), TestCaseError> {
        prop_assert_eq!(c.status, self.status);
        prop_assert_eq!(c.last_seq, self.last_seq);
        prop_assert_eq!(c.worker(), self.worker.as_deref());
        prop_assert_eq!(&c.returned_by, &self.returned_by);
        prop_assert_eq!(c.returns as usize, self.returned_by.len());
        prop_assert_eq!(c.extension.is_some(), self.extension_pending);
        prop_assert_eq!(c.overdue_claim, self.overdue_claim);
        prop_assert_eq!(c.overdue_close, self.overdue_close);
        if c.status == Status::Closed {
            prop_assert_eq!(c.feedback.as_ref().map(|f| f.satisfied), self.feedback);
        }
        Ok(())
    }
}

/// What must hold of any case, whatever happened to it.
fn invariants(c: &Case) -> Result<(), TestCaseError> {
    prop_assert!(Status::ALL.contains(&c.status));
    match c.status {
        Status::Accepted => prop_assert!(c.assignment.is_none()),
        Status::Dispatched | Status::Handling => {
            prop_assert!(c.assignment.is_some());
            prop_assert!(c.due_claim.is_some() && c.due_close.is_some());
        }
        Status::Closed => prop_assert!(c.closed_at.is_some() && c.result.is_some()),
    }
    if c.extension.is_some() {
        prop_assert!(matches!(c.status, Status::Dispatched | Status::Handling));
    }
    if let Some(w) = c.worker() {
        if c.status != Status::Closed {
            prop_assert!(!c.returned_by.iter().any(|r| r == w), "assigned to a worker who returned it");
        }
    }
    if c.status == Status::Handling {
        prop_assert!(c.claimed_at.is_some() && c.responded_on_time.is_some());
    }
    Ok(())
}

fn case_id() -> CaseId {
    CaseId::from_bytes([0x01, 0x9a, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 1])
}

fn other_case_id() -> CaseId {
    CaseId::from_bytes([0x01, 0x9a, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 2])
}

fn first_event(at: Timestamp) -> Event {
    Event {
        case: case_id(),
        seq: 1,
        at,
        actor: Actor { role: Role::Operator, name: "op-1".into() },
        kind: EventKind::Accepted {
            no: CaseNo::new("JD", 20260922, 1),
            intake: Intake { text: "供暖不热".into(), ..Intake::default() },
            category: "heating".into(),
            township: Some("鸡东镇".into()),
        },
    }
}

fn worker() -> impl Strategy<Value = String> {
    proptest::sample::select(WORKERS.to_vec()).prop_map(str::to_string)
}

fn ts() -> impl Strategy<Value = Timestamp> {
    (1_790_000_000_000i64..1_791_000_000_000).prop_map(Timestamp)
}

fn reason() -> impl Strategy<Value = String> {
    proptest::sample::select(vec!["不属于本网格", "wait", "", "配件"]).prop_map(str::to_string)
}

/// Every kind of event, with arguments drawn from small pools so that the
/// interesting cases (returned worker, bad score, double overdue) come up.
fn kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        1 => Just(EventKind::Accepted {
            no: CaseNo::new("JD", 20260922, 2),
            intake: Intake::default(),
            category: "water".into(),
            township: None,
        }),
        4 => (worker(), ts(), ts(), any::<bool>()).prop_map(|(worker, due_claim, due_close, dept)| {
            EventKind::Dispatched {
                grid: format!("G-{worker}").into(),
                township: "鸡东镇".into(),
                worker: worker.into(),
                department: dept.then(|| "heating".into()),
                rule: "point".into(),
                reason: "nearest".into(),
                due_claim,
                due_close,
            }
        }),
        1 => reason().prop_map(|reason| EventKind::Waiting { reason: reason.into() }),
        4 => Just(EventKind::Claimed),
        2 => reason().prop_map(|text| EventKind::Noted { text: text.into() }),
        2 => (reason(), 0u8..12).prop_map(|(text, r)| EventKind::NotedReq { text: text.into(), req: format!("n{r}").into() }),
        2 => reason().prop_map(|reason| EventKind::Returned { reason: reason.into() }),
        3 => reason().prop_map(|result| EventKind::Closed { result: result.into() }),
        3 => (any::<bool>(), proptest::option::of(0u8..=6), proptest::option::of(reason()))
            .prop_map(|(satisfied, score, text)| EventKind::Feedback { satisfied, score, text: text.map(Into::into) }),
        2 => reason().prop_map(|reason| EventKind::Reopened { reason: reason.into() }),
        2 => (ts(), reason()).prop_map(|(until, reason)| EventKind::ExtensionRequested { until, reason: reason.into() }),
        2 => (any::<bool>(), ts(), proptest::option::of(reason()))
            .prop_map(|(approved, until, reason)| EventKind::ExtensionDecided { approved, until, reason: reason.map(Into::into) }),
        2 => (prop_oneof![Just(Deadline::Claim), Just(Deadline::Close)], ts())
            .prop_map(|(deadline, due)| EventKind::Overdue { deadline, due }),
        1 => (0u8..4).prop_map(|level| EventKind::Escalated { to: "鸡东镇".into(), level, reason: "late".into() }),
    ]
}

fn actor() -> impl Strategy<Value = Actor> {
    let role = proptest::sample::select(vec![
        Role::Admin,
        Role::Supervisor,
        Role::Operator,
        Role::Worker,
        Role::System,
    ]);
    (role, worker()).prop_map(|(role, name)| Actor { role, name: name.into() })
}

/// How an event is addressed: mostly right, sometimes the wrong seq or case.
#[derive(Clone, Copy, Debug)]
enum Addressing {
    Right,
    /// `seq = last_seq + d`, for `d` other than 1.
    SeqAfterLast(i64),
    OtherCase,
}

fn addressing() -> impl Strategy<Value = Addressing> {
    prop_oneof![
        18 => Just(Addressing::Right),
        1 => prop_oneof![Just(0i64), Just(2), Just(-1), Just(-1_000)].prop_map(Addressing::SeqAfterLast),
        1 => Just(Addressing::OtherCase),
    ]
}

#[derive(Clone, Debug)]
struct Step {
    kind: EventKind,
    actor: Actor,
    after_ms: i64,
    addressing: Addressing,
}

fn step() -> impl Strategy<Value = Step> {
    (kind(), actor(), 0i64..3 * 3_600_000, addressing())
        .prop_map(|(kind, actor, after_ms, addressing)| Step { kind, actor, after_ms, addressing })
}

/// Runs `steps` against both the case and the model, checks they agree, and
/// returns what happened to each step.
fn run(steps: &[Step]) -> Result<Vec<Result<(), Refusal>>, TestCaseError> {
    let mut at = Timestamp(1_790_000_000_000);
    let first = first_event(at);
    let mut case = Case::from_first(&first).expect("a valid first event");
    let mut model = Model::new();
    let mut log = vec![first];
    let mut outcomes = Vec::new();
    invariants(&case)?;
    model.agrees_with(&case)?;
    for (i, s) in steps.iter().enumerate() {
        at = Timestamp(at.0 + s.after_ms);
        let next = case.last_seq + 1;
        let (target, seq) = match s.addressing {
            Addressing::Right => (case_id(), next),
            Addressing::SeqAfterLast(d) => (case_id(), (case.last_seq as i64 + d).max(0) as u32),
            Addressing::OtherCase => (other_case_id(), next),
        };
        let event = Event { case: target, seq, at, actor: s.actor.clone(), kind: s.kind.clone() };
        let before = case.clone();
        let checked = case.check(&event);
        let applied = case.apply(&event);
        let expected = model.step(target == case_id(), seq, &event.kind);
        prop_assert_eq!(&checked, &applied, "check and apply disagree at step {}", i);
        outcomes.push(expected);
        match (&applied, expected) {
            (Ok(()), Ok(())) => log.push(event),
            (Err(e), Err(r)) => {
                prop_assert_eq!(
                    refusal_of(e),
                    r,
                    "step {}: {:?} refused for the wrong reason: {}",
                    i,
                    event.kind,
                    e
                );
                prop_assert_eq!(&case, &before, "step {}: a refused event changed the case", i);
            }
            (got, want) => {
                return Err(TestCaseError::fail(format!(
                    "step {i}: {:?} in {:?}: case says {got:?}, model says {want:?}",
                    event.kind, before.status
                )))
            }
        }
        invariants(&case)?;
        model.agrees_with(&case)?;
    }
    let rebuilt = Case::from_events(&log).expect("the accepted events replay").expect("a first event");
    prop_assert_eq!(rebuilt, case);
    Ok(outcomes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn lifecycle_matches_the_reference_model(steps in proptest::collection::vec(step(), 0..80)) {
        run(&steps)?;
    }

    #[test]
    fn only_accepted_with_seq_1_starts_a_case(kind in kind(), seq in 0u32..3) {
        let mut e = first_event(Timestamp(0));
        e.kind = kind;
        e.seq = seq;
        let starts = matches!(e.kind, EventKind::Accepted { .. }) && seq == 1;
        prop_assert_eq!(Case::from_first(&e).is_ok(), starts);
    }
}

/// Guards the property against going vacuous: over a fixed sample of
/// random walks, every kind of event (but a second `accepted`) is accepted
/// at least once and refused at least once.
#[test]
fn random_walks_reach_every_transition() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeMap;

    let mut runner = TestRunner::deterministic();
    let walks = proptest::collection::vec(step(), 40..80);
    let mut seen: BTreeMap<(&str, bool), u32> = BTreeMap::new();
    for _ in 0..200 {
        let steps = walks.new_tree(&mut runner).unwrap().current();
        let outcomes = run(&steps).unwrap();
        for (s, o) in steps.iter().zip(outcomes) {
            *seen.entry((s.kind.name(), o.is_ok())).or_default() += 1;
        }
    }
    for name in [
        "dispatched",
        "waiting",
        "claimed",
        "noted",
        "returned",
        "closed",
        "feedback",
        "reopened",
        "extension_requested",
        "extension_decided",
        "overdue",
        "escalated",
    ] {
        assert!(seen.contains_key(&(name, true)), "no walk accepted `{name}`: {seen:?}");
        assert!(seen.contains_key(&(name, false)), "no walk refused `{name}`: {seen:?}");
    }
    assert!(!seen.contains_key(&("accepted", true)));
}

// Regression tests: named sequences the property covers, kept explicit.

fn steps(kinds: Vec<EventKind>) -> Vec<Step> {
    kinds
        .into_iter()
        .map(|kind| Step {
            kind,
            actor: Actor { role: Role::Worker, name: "W1".into() },
            after_ms: 60_000,
            addressing: Addressing::Right,
        })
        .collect()
}

fn dispatch_to(w: &str) -> EventKind {
    EventKind::Dispatched {
        grid: "G1".into(),
        township: "鸡东镇".into(),
        worker: w.into(),
        department: None,
        rule: "point".into(),
        reason: "nearest".into(),
        due_claim: Timestamp(1_790_000_100_000),
        due_close: Timestamp(1_790_100_000_000),
    }
}

const OK: Result<(), Refusal> = Ok(());

fn no(r: Refusal) -> Result<(), Refusal> {
    Err(r)
}

#[test]
fn full_loop_with_return_and_reopen() {
    let feedback = |satisfied| EventKind::Feedback { satisfied, score: Some(3), text: None };
    let got = run(&steps(vec![
        dispatch_to("W1"),
        EventKind::Returned { reason: "not mine".into() },
        dispatch_to("W1"),
        dispatch_to("W2"),
        EventKind::Claimed,
        EventKind::Closed { result: "done".into() },
        EventKind::Reopened { reason: "no feedback yet".into() },
        feedback(false),
        feedback(true),
        EventKind::Reopened { reason: "unsatisfied".into() },
        dispatch_to("W1"),
        dispatch_to("W3"),
        EventKind::Claimed,
        EventKind::Closed { result: "done again".into() },
        feedback(true),
        EventKind::Reopened { reason: "satisfied after all".into() },
    ]))
    .unwrap();
    let want = [
        OK,
        OK,
        no(Refusal::ReturnedBy),
        OK,
        OK,
        OK,
        no(Refusal::ReopenWithoutComplaint),
        OK,
        no(Refusal::FeedbackTwice),
        OK,
        no(Refusal::ReturnedBy),
        OK,
        OK,
        OK,
        OK,
        no(Refusal::ReopenWithoutComplaint),
    ];
    assert_eq!(got, want);
}

#[test]
fn extensions_and_overdue() {
    let until = Timestamp(1_800_000_000_000);
    let got = run(&steps(vec![
        EventKind::ExtensionDecided { approved: true, until, reason: None },
        dispatch_to("W1"),
        EventKind::Overdue { deadline: Deadline::Claim, due: Timestamp(0) },
        EventKind::Overdue { deadline: Deadline::Claim, due: Timestamp(0) },
        EventKind::Claimed,
        EventKind::Overdue { deadline: Deadline::Claim, due: Timestamp(0) },
        EventKind::Overdue { deadline: Deadline::Close, due: Timestamp(0) },
        EventKind::ExtensionRequested { until, reason: "parts".into() },
        EventKind::ExtensionRequested { until, reason: "parts".into() },
        EventKind::ExtensionDecided { approved: true, until, reason: None },
        EventKind::ExtensionDecided { approved: false, until, reason: None },
        EventKind::Overdue { deadline: Deadline::Close, due: until },
        EventKind::Escalated { to: "鸡东镇".into(), level: 1, reason: "late".into() },
        EventKind::Returned { reason: "not mine".into() },
        EventKind::Escalated { to: "鸡东镇".into(), level: 1, reason: "waiting".into() },
        EventKind::Waiting { reason: "nobody on duty".into() },
    ]))
    .unwrap();
    let want = [
        no(Refusal::State),
        OK,
        OK,
        no(Refusal::AlreadyOverdue),
        OK,
        no(Refusal::State),
        OK,
        OK,
        no(Refusal::ExtensionPending),
        OK,
        no(Refusal::NoExtension),
        OK,
        OK, // escalated while in hand: the close deadline was missed
        OK,
        OK,
        OK,
    ];
    assert_eq!(got, want);
}

#[test]
fn bad_scores_and_wrong_addressing_leave_the_case_alone() {
    let mut s = steps(vec![
        dispatch_to("W1"),
        EventKind::Claimed,
        EventKind::Closed { result: "done".into() },
        EventKind::Feedback { satisfied: true, score: Some(0), text: None },
        EventKind::Feedback { satisfied: true, score: Some(6), text: None },
        EventKind::Noted { text: "late note".into() },
        EventKind::Feedback { satisfied: true, score: Some(5), text: None },
        EventKind::Accepted {
            no: CaseNo::new("JD", 20260922, 9),
            intake: Intake::default(),
            category: "water".into(),
            township: None,
        },
    ]);
    s[1].addressing = Addressing::OtherCase;
    s.insert(2, Step { addressing: Addressing::SeqAfterLast(0), ..s[1].clone() });
    s.insert(3, Step { addressing: Addressing::SeqAfterLast(2), ..s[1].clone() });
    s.insert(4, Step { addressing: Addressing::Right, ..s[1].clone() });
    let got = run(&s).unwrap();
    let want = [
        OK,
        no(Refusal::WrongCase),
        no(Refusal::OutOfOrder),
        no(Refusal::OutOfOrder),
        OK,
        OK,
        no(Refusal::Score),
        no(Refusal::Score),
        no(Refusal::State),
        OK,
        no(Refusal::State),
    ];
    assert_eq!(got, want);
}

/// Found by reading, not by the walk (it needs 4 billion events): a case
/// whose `last_seq` is at the top of its range (a corrupt record, say) used
/// to overflow `last_seq + 1` and panic instead of refusing the event.
#[test]
fn last_seq_at_the_top_refuses_instead_of_overflowing() {
    let mut case = Case::from_first(&first_event(Timestamp(0))).unwrap();
    case.last_seq = u32::MAX;
    let before = case.clone();
    let e = Event {
        case: case_id(),
        seq: 0,
        at: Timestamp(1),
        actor: Actor::system(),
        kind: EventKind::Waiting { reason: "x".into() },
    };
    assert_eq!(case.apply(&e), Err(TransitionError::OutOfOrder { last: u32::MAX, got: 0 }));
    assert_eq!(case, before);
}
