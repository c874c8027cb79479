//! Lifecycle review: deadlines, indexes and audit figures across returns,
//! reassignments and escalation, with a manual clock.

mod common;

use common::*;
use gridline_caselog::{codec, CaseLog, Store};
use gridline_engine::EngineConfig;
use gridline_model::{
    AuditBy, Caller, Case, CaseRef, Command, EventKind, Intake, Location, Reply, Role, Status, Timestamp,
};
use gridline_registry::{GridKind, Registry};

fn sup() -> Caller {
    caller(Role::Supervisor, "sup")
}

impl Rig {
    fn accept(&self, location: Location) -> Case {
        let intake = Intake {
            text: "垃圾没人清运".into(),
            category: Some("sanitation".into()),
            location,
            ..Default::default()
        };
        match self.call(&caller(Role::Operator, "op"), Command::Accept(intake)).unwrap() {
            Reply::Accepted { case, .. } => case.case().clone(),
            r => panic!("unexpected {r:?}"),
        }
    }

    fn case(&self, c: &Case) -> (Case, Vec<gridline_model::Event>) {
        self.get(c.no.as_str())
    }

    fn audit(&self, by: AuditBy) -> Vec<Vec<(String, String)>> {
        match self.call(&sup(), Command::Audit { by, from: None, to: None }).unwrap() {
            Reply::Rows(rows) => rows,
            r => panic!("unexpected {r:?}"),
        }
    }
}

fn field<'a>(row: &'a [(String, String)], key: &str) -> &'a str {
    &row.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no {key} in {row:?}")).1
}

/// A location routing cannot place: the case waits at the command centre.
fn nowhere() -> Location {
    Location { address: Some("火星基地一号".into()), ..Default::default() }
}

fn full_time(reg: &Registry) -> String {
    reg.workers.iter().find(|w| w.grid.is_some() && w.department.is_none()).unwrap().id.clone()
}

impl Rig {
    /// A case placed in a grid whose worker lets the claim deadline pass
    /// (by a minute), after which the worker returns it or, `reassign`, a
    /// supervisor dispatches it to another full-time worker. The case as
    /// accepted, its first worker and the time the move was made.
    fn late_and_moved(&self, reassign: bool) -> (Case, String, Timestamp) {
        let grid = self.reg.grids.iter().find(|g| g.kind != GridKind::Dedicated).unwrap();
        let c = self.accept(Location { grid: Some(grid.code.clone().into()), ..Default::default() });
        assert_eq!(c.status, Status::Dispatched);
        let first = c.worker().unwrap().to_string();
        let late = Timestamp(c.due_claim.unwrap().0 + 60_000);
        self.clock.set(late);
        if reassign {
            self.tick();
            let other =
                self.reg.workers.iter().find(|w| w.id.as_str() != first && w.department.is_none()).unwrap();
            self.call(&sup(), Command::Dispatch { case: CaseRef::Id(c.id), worker: other.id.clone() })
                .unwrap();
        } else {
            self.call(
                &worker(&first),
                Command::Return { case: CaseRef::Id(c.id), reason: "不是我的".into() },
            )
            .unwrap();
        }
        (c, first, late)
    }

    /// A case dispatched by hand to a full-time worker, who has claimed it.
    fn in_hand(&self) -> (Case, String) {
        let c = self.accept(nowhere());
        let w = full_time(&self.reg);
        self.call(&sup(), Command::Dispatch { case: CaseRef::Id(c.id), worker: w.clone() }).unwrap();
        self.call(&worker(&w), Command::Claim { case: CaseRef::Id(c.id) }).unwrap();
        (c, w)
    }
}

/// docs/audit.md: a case never claimed whose claim deadline passed counts
/// against the response rate, and "the flag stays on a case returned after
/// missing its deadline ... so walking away from a late case does not clear
/// it". A return that reaches the engine before its deadline tick must not
/// let the case escape the rate.
#[test]
fn a_late_case_returned_before_the_deadline_tick_still_counts_against_the_response_rate() {
    let rig = Rig::new();
    let c = rig.accept(nowhere());
    assert_eq!(c.status, Status::Accepted, "unplaceable: waits for manual dispatch");
    let w = full_time(&rig.reg);
    rig.call(&sup(), Command::Dispatch { case: CaseRef::Id(c.id), worker: w.clone() }).unwrap();
    let (d, _) = rig.case(&c);
    // Past the claim deadline; the worker walks away before the engine's clock looked.
    rig.clock.set(Timestamp(d.due_claim.unwrap().0 + 60_000));
    let Reply::Case(r) = rig
        .call(&worker(&w), Command::Return { case: CaseRef::Id(c.id), reason: "不是我的".into() })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(r.case().status, Status::Accepted, "nobody else can take it: it waits again");
    let rows = rig.audit(AuditBy::County);
    assert_eq!(field(&rows[0], "response_pct"), "0.0", "one case due, none claimed on time: {rows:?}");
    let (d, events) = rig.case(&c);
    assert!(d.overdue_claim, "{events:?}");
    assert_eq!(rig.tick(), 0, "the missed deadline was recorded once, with the return");
}

/// The same with somebody to take the case: a late case returned is
/// dispatched again at once, and one a supervisor reassigns gets a new
/// worker; either way the new round's deadlines are fresh. The response was
/// late all the same, however fast the next worker claims it.
#[test]
fn a_late_response_stays_late_whoever_claims_the_case_after_a_return_or_a_reassignment() {
    for reassign in [false, true] {
        let rig = Rig::new();
        let (c, first, late) = rig.late_and_moved(reassign);
        let (d, events) = rig.case(&c);
        assert_eq!(d.status, Status::Dispatched, "{events:?}");
        let next = d.worker().unwrap().to_string();
        assert_ne!(next, first);
        assert!(!d.overdue_claim && d.due_claim.unwrap() > late, "a fresh round: {events:?}");
        let rows = rig.audit(AuditBy::County);
        assert_eq!(field(&rows[0], "response_pct"), "0.0", "reassign={reassign}: {rows:?}");
        rig.call(&worker(&next), Command::Claim { case: CaseRef::Id(c.id) }).unwrap();
        let (d, events) = rig.case(&c);
        assert_eq!(d.responded_on_time, Some(false), "{events:?}");
        let rows = rig.audit(AuditBy::County);
        assert_eq!(field(&rows[0], "response_pct"), "0.0", "reassign={reassign}: {rows:?}");
    }
}

/// helper-61's review: per worker, the late response is charged to the
/// worker who missed the deadline, not to the one who has the case now
/// (who claimed it at once): walking away from a late case does not clean
/// one's own row. The county's figure is the same; so is the `total` row.
/// The responder survives a restart, and verifies; a record without it
/// (as versions before 2026-11-28 wrote it) verifies too, counted.
#[test]
fn a_late_response_is_charged_to_the_worker_who_missed_it() {
    for reassign in [false, true] {
        let rig = Rig::new();
        let (c, first, _) = rig.late_and_moved(reassign);
        let next = rig.case(&c).0.worker().unwrap().to_string();
        rig.call(&worker(&next), Command::Claim { case: CaseRef::Id(c.id) }).unwrap();
        let check = |rig: &Rig| {
            let rows = rig.audit(AuditBy::Worker);
            let row = |w: &str| {
                rows.iter().find(|r| field(r, "worker") == w).unwrap_or_else(|| panic!("{w}: {rows:?}"))
            };
            let (missed, holder) = (row(&first), row(&next));
            assert_eq!(
                (field(missed, "received"), field(missed, "response_pct")),
                ("0", "0.0"),
                "reassign={reassign}: {rows:?}"
            );
            assert_eq!((field(holder, "received"), field(holder, "response_pct")), ("1", "-"), "{rows:?}");
            let total = rows.last().unwrap();
            assert_eq!((field(total, "received"), field(total, "response_pct")), ("1", "0.0"), "{rows:?}");
        };
        check(&rig);
        let rig = rig.crash_and_restart();
        check(&rig);
        let (d, _) = rig.case(&c);
        assert_eq!(d.responder.as_ref().map(|a| a.worker.as_str()), Some(first.as_str()));
        let store = rig.store.clone();
        drop(rig);
        let verify = || CaseLog::open(store.clone(), None).unwrap().verify().unwrap();
        assert_eq!((verify().cases, verify().old_responders), (1, 0));
        let mut b = gridline_caselog::WriteBatch::default();
        // As a build before 2026-11-28 wrote it (`CaseAt`, no responder).
        let old = Case { responder: None, responder_unknown: true, ..d };
        b.put(codec::case_key(&old.id), codec::encode_case(&old).unwrap());
        store.apply(b).unwrap();
        store.sync().unwrap();
        assert_eq!((verify().cases, verify().old_responders), (1, 1));
    }
}

/// A record as versions before 2026-11-28 folded that history (answered
/// on time: the miss was forgotten at the new dispatch) still verifies,
/// counted; any other difference does not, and neither does the same
/// record last written after the change (a build forgetting the miss then
/// is a bug, not an older fold).
#[test]
fn a_late_response_an_older_version_stored_as_on_time_still_verifies() {
    // 2026-11-24 (ten_am), and 2026-12-01T02:00Z, after the change.
    for (start, older) in [(None, true), (Some(Timestamp(1_796_090_400_000)), false)] {
        let rig = Rig::new();
        if let Some(t) = start {
            rig.clock.set(t);
        }
        let grid = rig.reg.grids.iter().find(|g| g.kind != GridKind::Dedicated).unwrap();
        let c = rig.accept(Location { grid: Some(grid.code.clone().into()), ..Default::default() });
        let first = c.worker().unwrap().to_string();
        rig.clock.set(Timestamp(c.due_claim.unwrap().0 + 60_000));
        rig.tick();
        rig.call(&worker(&first), Command::Return { case: CaseRef::Id(c.id), reason: "不是我的".into() })
            .unwrap();
        let next = rig.case(&c).0.worker().unwrap().to_string();
        rig.call(&worker(&next), Command::Claim { case: CaseRef::Id(c.id) }).unwrap();
        let (d, _) = rig.case(&c);
        assert_eq!(d.responded_on_time, Some(false));
        let store = rig.store.clone();
        drop(rig);
        let verify = || CaseLog::open(store.clone(), None).unwrap().verify();
        let report = verify().unwrap();
        assert_eq!((report.cases, report.old_responses, report.old_townships), (1, 0, 0));
        let put = |case: &Case| {
            let mut b = gridline_caselog::WriteBatch::default();
            b.put(codec::case_key(&case.id), codec::encode_case(case).unwrap());
            store.apply(b).unwrap();
            store.sync().unwrap();
        };
        let old = Case { responded_on_time: Some(true), ..d.clone() };
        put(&old);
        if older {
            let report = verify().unwrap();
            assert_eq!((report.cases, report.old_responses, report.old_townships), (1, 1, 0));
        } else {
            let e = verify().unwrap_err();
            assert!(e.to_string().contains("differs from the replay"), "{e}");
        }
        put(&Case { returns: 7, ..old });
        let e = verify().unwrap_err();
        assert!(e.to_string().contains("differs from the replay"), "{e}");
    }
}

/// `EngineConfig::escalation_levels`: "Escalation steps after a missed claim
/// deadline". With none configured a missed deadline is flagged, not escalated.
#[test]
fn no_escalation_levels_means_no_escalation() {
    let rig = Rig::with(EngineConfig { escalation_levels: 0, ..EngineConfig::default() });
    let grid = rig.reg.grids.iter().find(|g| g.kind != GridKind::Dedicated).unwrap();
    let c = rig.accept(Location { grid: Some(grid.code.clone().into()), ..Default::default() });
    rig.clock.set(Timestamp(c.due_claim.unwrap().0 + 1000));
    rig.tick();
    let (d, events) = rig.case(&c);
    assert!(d.overdue_claim);
    assert!(!events.iter().any(|e| matches!(e.kind, EventKind::Escalated { .. })), "{events:?}");
    assert_eq!(d.escalation_level, 0);
}

/// docs/audit.md (township): "the township of its location, known from
/// intake, before dispatch". A supervisor's dispatch to a grid worker of
/// another township must not move the case to that township.
#[test]
fn a_manual_dispatch_to_another_township_keeps_the_case_in_its_own() {
    let rig = Rig::new();
    let grid = rig.reg.grids.iter().find(|g| g.kind != GridKind::Dedicated).unwrap();
    let c = rig.accept(Location { grid: Some(grid.code.clone().into()), ..Default::default() });
    let home = c.township.clone().unwrap();
    let far = rig
        .reg
        .workers
        .iter()
        .find(|w| {
            w.department.is_none()
                && w.grid.is_some_and(|g| rig.reg.township(rig.reg.grid(g).township).code != home)
        })
        .unwrap();
    rig.call(&sup(), Command::Dispatch { case: CaseRef::Id(c.id), worker: far.id.clone() }).unwrap();
    let (d, _) = rig.case(&c);
    assert_eq!(d.township.as_deref(), Some(home.as_str()), "the location did not move");
    let far_township = d.assignment.as_ref().unwrap().township.clone();
    assert_ne!(far_township, home);
    let store = rig.store.clone();
    drop(rig);
    let report = CaseLog::open(store.clone(), None).unwrap().verify().unwrap();
    assert_eq!((report.cases, report.old_townships), (1, 0));

    // A record as versions before 2026-11-27 wrote it, with the worker's
    // township, still verifies (counted); any other difference does not.
    let old = Case { township: Some(far_township), ..d.clone() };
    let put = |case: &Case| {
        let mut b = gridline_caselog::WriteBatch::default();
        b.put(codec::case_key(&case.id), codec::encode_case(case).unwrap());
        store.apply(b).unwrap();
        store.sync().unwrap();
    };
    put(&old);
    let report = CaseLog::open(store.clone(), None).unwrap().verify().unwrap();
    assert_eq!((report.cases, report.old_townships), (1, 1));
    put(&Case { returns: 7, ..old });
    let e = CaseLog::open(store.clone(), None).unwrap().verify().unwrap_err();
    assert!(e.to_string().contains("differs from the replay"), "{e}");
}

/// A supervisor's DISPATCH to a grid worker keeps the department that
/// co-handles the category, as routing set it: a late sanitation case
/// moved to another worker of its grid stays in urban management's audit
/// row. A professional handles a case in its grid, so a case located only
/// to its township is refused, naming the township.
#[test]
fn a_manual_dispatch_keeps_the_co_handling_department() {
    let rig = Rig::new();
    let grid = rig.reg.grids.iter().find(|g| g.kind != GridKind::Dedicated).unwrap();
    let c = rig.accept(Location { grid: Some(grid.code.clone().into()), ..Default::default() });
    let a = c.assignment.clone().expect("routed to the grid");
    assert_eq!(a.department.as_deref(), Some("urban"), "{a:?}");
    let gi = rig.reg.grid_idx(&grid.code).unwrap();
    let other = rig.reg.workers.iter().find(|w| w.grid == Some(gi) && w.id != a.worker.as_str()).unwrap();
    rig.call(&sup(), Command::Dispatch { case: CaseRef::Id(c.id), worker: other.id.clone() }).unwrap();
    let d = rig.case(&c).0.assignment.unwrap();
    assert_eq!((d.worker.as_str(), d.department.as_deref()), (other.id.as_str(), Some("urban")));
    let rows = rig.audit(AuditBy::Department);
    assert_eq!(field(&rows[0], "department"), "urban", "{rows:?}");

    let c = rig.accept(Location { address: Some("鸡东镇".into()), ..Default::default() });
    assert_eq!((c.status, c.township.as_deref()), (Status::Accepted, Some("JDZ")));
    let pro = rig.reg.workers.iter().find(|w| w.department.is_some()).unwrap();
    let e =
        rig.call(&sup(), Command::Dispatch { case: CaseRef::Id(c.id), worker: pro.id.clone() }).unwrap_err();
    assert_eq!(e.code.as_str(), "conflict", "{e:?}");
    assert!(e.message.contains("located only to its township (JDZ)"), "{e:?}");
    // A case with no known location has a township once a grid worker was
    // sent it, and keeps it after a return: still not located (helper-64).
    let c = rig.accept(nowhere());
    let w = full_time(&rig.reg);
    rig.call(&sup(), Command::Dispatch { case: CaseRef::Id(c.id), worker: w.clone() }).unwrap();
    rig.call(&worker(&w), Command::Return { case: CaseRef::Id(c.id), reason: "不是我的".into() }).unwrap();
    assert!(rig.case(&c).0.township.is_some());
    let e =
        rig.call(&sup(), Command::Dispatch { case: CaseRef::Id(c.id), worker: pro.id.clone() }).unwrap_err();
    assert!(e.message.contains("has no known location"), "{e:?}");
}

/// A supervisor's DISPATCH naming the worker handling the case is
/// refused: it would have thrown away the claim and an approved
/// extension for fresh deadlines.
#[test]
fn a_dispatch_to_the_worker_who_has_the_case_is_refused() {
    let rig = Rig::new();
    let (c, w) = rig.in_hand();
    let until = Timestamp(rig.case(&c).0.due_close.unwrap().0 + 86_400_000);
    let ask =
        Command::Extend { case: CaseRef::Id(c.id), until: until.rfc3339(480), reason: "要等配件".into() };
    rig.call(&worker(&w), ask).unwrap();
    rig.call(&sup(), Command::DecideExtension { case: CaseRef::Id(c.id), approve: true, reason: None })
        .unwrap();
    let (before, events) = rig.case(&c);
    assert_eq!((before.status, before.due_close), (Status::Handling, Some(until)));
    let e = rig.call(&sup(), Command::Dispatch { case: CaseRef::Id(c.id), worker: w.clone() }).unwrap_err();
    assert_eq!(e.code.as_str(), "conflict", "{e:?}");
    assert!(e.message.contains("already being handled by"), "{e:?}");
    let (after, events_after) = rig.case(&c);
    assert_eq!((after, events_after.len()), (before, events.len()), "nothing changed");

    // Dispatched, not yet claimed: dispatching it to the same worker again
    // gives them a fresh claim deadline (nothing of theirs is lost).
    let c2 = rig.accept(nowhere());
    rig.call(&sup(), Command::Dispatch { case: CaseRef::Id(c2.id), worker: w.clone() }).unwrap();
    let first = rig.case(&c2).0.due_claim.unwrap();
    rig.clock.set(Timestamp(first.0 + 60_000));
    rig.call(&sup(), Command::Dispatch { case: CaseRef::Id(c2.id), worker: w.clone() }).unwrap();
    let again = rig.case(&c2).0;
    assert_eq!(
        (again.status, again.due_claim),
        (Status::Dispatched, Some(Timestamp(first.0 + 60_000 + (first.0 - c2.received_at.0))))
    );
    // To another worker, it is reassigned as before.
    let other =
        rig.reg.workers.iter().find(|x| x.grid.is_some() && x.department.is_none() && x.id != w).unwrap();
    rig.call(&sup(), Command::Dispatch { case: CaseRef::Id(c2.id), worker: other.id.clone() }).unwrap();
    assert_eq!(rig.case(&c2).0.assignment.unwrap().worker, other.id.as_str());
}

/// Escalation goes up the chain: a community lead who is the case's own
/// worker (the one who missed the deadline) is passed over for the
/// township's lead.
#[test]
fn escalation_passes_over_a_lead_who_is_the_late_worker() {
    let rig = Rig::new();
    let reg = rig.reg.clone();
    let (com, lead) = reg
        .communities
        .iter()
        .find_map(|com| {
            let lead = com.lead?;
            let g = reg.worker(lead).grid?;
            (reg.grid(g).community == reg.community_idx(&com.code)?).then_some((com, reg.worker(lead)))
        })
        .expect("a community whose lead works one of its grids");
    let c = rig.accept(nowhere());
    rig.call(&sup(), Command::Dispatch { case: CaseRef::Id(c.id), worker: lead.id.clone() }).unwrap();
    let (d, _) = rig.case(&c);
    rig.clock.set(Timestamp(d.due_claim.unwrap().0 + 1000));
    rig.tick();
    let (_, events) = rig.case(&c);
    let to = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Escalated { to, level: 1, .. } => Some(to.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("escalated at level 1: {events:?}"));
    assert_ne!(to, lead.id, "not to the worker who missed the deadline ({})", com.name);
    let t = reg.township(com.township);
    let expected = t.lead.map_or_else(|| t.code.clone(), |w| reg.worker(w).id.clone());
    assert_eq!(to, expected, "the township's lead is next");
}

/// An extension whose requested time has passed before a supervisor looks
/// at it cannot be granted (the new close deadline would be missed at
/// once); it can still be refused. The worker cannot ask again: the close
/// deadline has passed too, and an extension is asked for before it.
#[test]
fn an_extension_whose_time_has_passed_is_refused_not_granted() {
    let rig = Rig::new();
    let (c, w) = rig.in_hand();
    let (d, _) = rig.case(&c);
    let until = Timestamp(d.due_close.unwrap().0 + 3_600_000);
    let ask = |until: Timestamp| Command::Extend {
        case: CaseRef::Id(c.id),
        until: until.rfc3339(480),
        reason: "等配件".into(),
    };
    rig.call(&worker(&w), ask(until)).unwrap();
    rig.clock.set(Timestamp(until.0 + 60_000));
    let decide = |approve| Command::DecideExtension { case: CaseRef::Id(c.id), approve, reason: None };
    let e = rig.call(&sup(), decide(true)).unwrap_err();
    assert_eq!(e.code, gridline_model::ErrorCode::Conflict, "{e:?}");
    assert!(e.message.contains("has passed"), "{}", e.message);
    rig.call(&sup(), decide(false)).unwrap();
    let later = Timestamp(until.0 + 2 * 3_600_000);
    let e = rig.call(&worker(&w), ask(later)).unwrap_err();
    assert_eq!(e.code, gridline_model::ErrorCode::Conflict, "{e:?}");
    assert!(e.message.contains("must be asked for before it"), "{}", e.message);
    assert_eq!(rig.case(&c).0.due_close, d.due_close, "nothing moved");
}

/// 延期 is asked for within the time limit. An extension asked for after
/// the close deadline passed would, once approved, count the late case as
/// closed on time (docs/audit.md); it is refused, and the case stays
/// overdue. One asked for in time may be approved after the deadline: the
/// worker asked when they should have.
#[test]
fn an_extension_is_asked_for_before_the_close_deadline() {
    let rig = Rig::new();
    let (c, w) = rig.in_hand();
    let (d, _) = rig.case(&c);
    let due = d.due_close.unwrap();
    let r = CaseRef::Id(c.id);
    let ask = |until: Timestamp| Command::Extend {
        case: r.clone(),
        until: until.rfc3339(480),
        reason: "等配件".into(),
    };
    // At the very millisecond of the deadline it is still in time.
    rig.clock.set(due);
    let until = Timestamp(due.0 + 86_400_000);
    rig.call(&worker(&w), ask(until)).unwrap();
    rig.call(&sup(), Command::DecideExtension { case: r.clone(), approve: false, reason: None }).unwrap();
    rig.clock.set(Timestamp(due.0 + 1));
    let e = rig.call(&worker(&w), ask(until)).unwrap_err();
    assert_eq!(e.code, gridline_model::ErrorCode::Conflict, "{e:?}");
    assert!(e.message.contains("has passed"), "{}", e.message);
    let (d, events) = rig.case(&c);
    assert!(d.overdue_close && d.extension.is_none(), "{events:?}");
    rig.call(&worker(&w), Command::Close { case: r, result: "已修好".into() }).unwrap();
    assert_eq!(rig.case(&c).0.closed_on_time, Some(false));
}

/// CONTRACT.md's glossary: escalate (督办) is "overdue: sent up the chain".
/// A case in hand past its close deadline is flagged and escalated one step
/// further than it had gone; nothing more happens at later ticks.
#[test]
fn a_missed_close_deadline_is_escalated_once() {
    let rig = Rig::new();
    let (c, w) = rig.in_hand();
    let (d, _) = rig.case(&c);
    assert_eq!((d.status, d.escalation_level), (Status::Handling, 0));
    rig.clock.set(Timestamp(d.due_close.unwrap().0 + 1000));
    rig.tick();
    let (d, events) = rig.case(&c);
    assert!(d.overdue_close);
    assert_eq!(d.escalation_level, 1, "{events:?}");
    let reason = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Escalated { level: 1, reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("escalated: {events:?}"));
    assert!(reason.starts_with("not closed by its deadline"), "{reason}");
    rig.clock.set(Timestamp(d.due_close.unwrap().0 + 30 * 86_400_000));
    assert_eq!(rig.tick(), 0, "once");
    // A case escalated for a late claim goes one step further when it is
    // closed late too.
    let c = rig.accept(nowhere());
    rig.call(&sup(), Command::Dispatch { case: CaseRef::Id(c.id), worker: w.clone() }).unwrap();
    let (d, _) = rig.case(&c);
    rig.clock.set(Timestamp(d.due_claim.unwrap().0 + 1000));
    rig.tick();
    rig.call(&worker(&w), Command::Claim { case: CaseRef::Id(c.id) }).unwrap();
    let (d, _) = rig.case(&c);
    assert_eq!(d.escalation_level, 1);
    rig.clock.set(Timestamp(d.due_close.unwrap().0 + 1000));
    rig.tick();
    let (d, events) = rig.case(&c);
    assert_eq!(d.escalation_level, 2, "{events:?}");
}

/// docs/protocol.md (EXTEND): an approved extension is a new close deadline;
/// missing it marks the case overdue and escalates it one step again, even
/// after the first close deadline was missed and escalated.
#[test]
fn missing_the_deadline_an_extension_granted_escalates_again() {
    let rig = Rig::new();
    let (c, w) = rig.in_hand();
    let (d, _) = rig.case(&c);
    // Asked for in time, approved only after the deadline passed (and was
    // flagged and escalated).
    let due = d.due_close.unwrap();
    let until = Timestamp(due.0 + 86_400_000);
    let r = CaseRef::Id(c.id);
    let ask = Command::Extend { case: r.clone(), until: until.rfc3339(480), reason: "等配件".into() };
    rig.call(&worker(&w), ask).unwrap();
    rig.clock.set(Timestamp(due.0 + 1000));
    rig.tick();
    assert_eq!((rig.case(&c).0.escalation_level, rig.case(&c).0.overdue_close), (1, true));
    rig.call(&sup(), Command::DecideExtension { case: r, approve: true, reason: None }).unwrap();
    let (d, _) = rig.case(&c);
    assert_eq!((d.due_close, d.overdue_close, d.escalation_level), (Some(until), false, 1));
    rig.clock.set(Timestamp(until.0 + 1000));
    rig.tick();
    let (d, events) = rig.case(&c);
    assert!(d.overdue_close);
    assert_eq!(d.escalation_level, 2, "{events:?}");
}

/// The batch's deadline tick runs after its commands (and, under a
/// backlog, batches later): a command that moves the case or its deadline
/// before the tick saw a miss records the miss first. Approving an
/// extension an hour after the close deadline passed, a claim after the
/// claim deadline, a close after the close deadline: each leaves the
/// overdue and escalated events the tick would have written, once.
#[test]
fn a_deadline_missed_before_the_tick_saw_it_is_recorded_by_the_command_that_moves_it() {
    let sys_kinds = |events: &[gridline_model::Event]| -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Overdue { deadline, .. } => Some(format!("overdue:{}", deadline.as_str())),
                EventKind::Escalated { level, .. } => Some(format!("escalated:{level}")),
                _ => None,
            })
            .collect()
    };
    // Approval.
    let rig = Rig::new();
    let (c, w) = rig.in_hand();
    let r = CaseRef::Id(c.id);
    let due = rig.case(&c).0.due_close.unwrap();
    let until = Timestamp(due.0 + 48 * 3_600_000);
    let ask = Command::Extend { case: r.clone(), until: until.rfc3339(480), reason: "等配件".into() };
    rig.call(&worker(&w), ask).unwrap();
    rig.clock.set(Timestamp(due.0 + 3_600_000));
    rig.call(&sup(), Command::DecideExtension { case: r, approve: true, reason: None }).unwrap();
    let (d, events) = rig.case(&c);
    assert_eq!(sys_kinds(&events), ["overdue:close", "escalated:1"], "{events:?}");
    assert_eq!((d.due_close, d.overdue_close, d.escalation_level), (Some(until), false, 1));
    assert_eq!(rig.tick(), 0, "recorded once");

    // Claim, then close, each late.
    let rig = Rig::new();
    let c = rig.accept(nowhere());
    let w = full_time(&rig.reg);
    let r = CaseRef::Id(c.id);
    rig.call(&sup(), Command::Dispatch { case: r.clone(), worker: w.clone() }).unwrap();
    let (d, _) = rig.case(&c);
    rig.clock.set(Timestamp(d.due_claim.unwrap().0 + 60_000));
    rig.call(&worker(&w), Command::Claim { case: r.clone() }).unwrap();
    rig.clock.set(Timestamp(d.due_close.unwrap().0 + 60_000));
    rig.call(&worker(&w), Command::Close { case: r, result: "已处理".into() }).unwrap();
    let (d, events) = rig.case(&c);
    assert_eq!(
        sys_kinds(&events),
        ["overdue:claim", "escalated:1", "overdue:close", "escalated:2"],
        "{events:?}"
    );
    assert_eq!((d.status, d.responded_on_time, d.closed_on_time), (Status::Closed, Some(false), Some(false)));
    assert_eq!(rig.tick(), 0, "recorded once");
}

/// A deadline event the log cannot take (the case's record, at the size
/// limit, grows a byte when `last_seq` reaches 128) must leave the case as
/// it was: the case in memory may not run ahead of its stored events.
#[test]
fn a_deadline_event_refused_as_too_large_leaves_the_case_as_its_events_say() {
    let rig = Rig::new();
    // The longest texts the protocol takes (4,000 characters), in 4-byte characters.
    let long = |n: usize| "𠀀".repeat(n);
    let intake = Intake {
        text: long(4000).into(),
        category: Some("sanitation".into()),
        location: Location { address: Some(long(256).into()), ..Default::default() },
        name: Some(long(256).into()),
        channel: Some(long(256).into()),
        ..Default::default()
    };
    let Reply::Accepted { case: c, .. } =
        rig.call(&caller(Role::Operator, "op"), Command::Accept(intake)).unwrap()
    else {
        panic!()
    };
    let w = full_time(&rig.reg);
    let me = worker(&w);
    let id = CaseRef::Id(c.case().id);
    rig.call(&sup(), Command::Dispatch { case: id.clone(), worker: w.clone() }).unwrap();
    rig.call(&me, Command::Claim { case: id.clone() }).unwrap();
    rig.call(&me, Command::Close { case: id.clone(), result: long(4000) }).unwrap();
    let op = caller(Role::Operator, "op");
    let fb = Command::Feedback { case: id.clone(), satisfied: false, score: None, text: Some(long(4000)) };
    rig.call(&op, fb).unwrap();
    rig.call(&sup(), Command::Dispatch { case: id.clone(), worker: w.clone() }).unwrap();
    rig.call(&me, Command::Claim { case: id.clone() }).unwrap();
    // Notes up to event 126; the extension request is event 127.
    let (d, _) = rig.case(c.case());
    for _ in d.last_seq..126 {
        rig.call(&me, Command::Note { case: id.clone(), text: "在办".into(), req: None }).unwrap();
    }
    let (d, _) = rig.case(c.case());
    assert_eq!(d.last_seq, 126);
    let until = Timestamp(d.due_close.unwrap().0 + 86_400_000);
    // The reason that brings the record to exactly the limit at event 127.
    let now = gridline_engine::Clock::now(&*rig.clock);
    let with = |reason: &str| Case {
        extension: Some(Box::new(gridline_model::case::ExtensionRequest {
            until,
            reason: reason.into(),
            by: w.as_str().into(),
            at: now,
        })),
        last_seq: 127,
        updated_at: now,
        ..d.clone()
    };
    let small = gridline_model::Event {
        case: c.case().id,
        seq: 127,
        at: now,
        actor: me_actor(&w),
        kind: EventKind::Claimed,
    };
    let fits = |n4: usize, n1: usize| codec::check_fits(&with(&(long(n4) + &"a".repeat(n1))), &small).is_ok();
    let n4 = (0..=4000).rev().find(|&n| fits(n, 0)).unwrap();
    assert!(n4 < 4000, "the record can reach the limit");
    let n1 = (0..=4000 - n4).rev().find(|&n| fits(n4, n)).unwrap();
    let reason = long(n4) + &"a".repeat(n1);
    assert!(reason.chars().count() <= 4000);
    let ask = Command::Extend { case: id.clone(), until: until.rfc3339(480), reason };
    rig.call(&me, ask).unwrap();
    let (d, _) = rig.case(c.case());
    assert_eq!(d.last_seq, 127);
    // Past the close deadline: the overdue event (128) would not fit.
    rig.clock.set(Timestamp(d.due_close.unwrap().0 + 1000));
    rig.tick();
    let r = rig.call(&sup(), Command::Get { case: id.clone() });
    let Ok(Reply::Detail { case, events, .. }) = r else { panic!("GET: {r:?}") };
    assert_eq!(events.len() as u32, case.case().last_seq, "the case ran ahead of its events");
    let replayed = Case::from_events(&events).unwrap().unwrap();
    assert_eq!(Case { stored_page: case.case().stored_page.clone(), ..replayed }, *case.case());
}

fn me_actor(w: &str) -> gridline_model::Actor {
    gridline_model::Actor { role: Role::Worker, name: w.into() }
}

/// `EngineConfig::list_items_max` of 0 panicked in `clamp` at the first
/// `PULL`: a list reply holds at least one item whatever the limit.
#[test]
fn a_list_limit_of_zero_lists_one_item_rather_than_panicking() {
    let rig = Rig::with(EngineConfig { list_items_max: 0, ..EngineConfig::default() });
    let grid = rig.reg.grids.iter().find(|g| g.kind != GridKind::Dedicated).unwrap();
    let c = rig.accept(Location { grid: Some(grid.code.clone().into()), ..Default::default() });
    let pull = Command::Pull { worker: Some(c.worker().unwrap().to_string()), page: Default::default() };
    match rig.call(&sup(), pull) {
        Ok(Reply::Cases { cases, .. }) => assert_eq!(cases.len(), 1),
        r => panic!("{r:?}"),
    }
}

/// CONTRACT.md: `GET` is for the operator, the supervisor and "its
/// worker", whatever the case's state: the worker who closed a case still
/// reads it (its return visit, say); another worker does not.
#[test]
fn its_worker_reads_a_case_after_closing_it_and_no_other_worker_does() {
    let rig = Rig::new();
    let (c, w) = rig.in_hand();
    let get = || Command::Get { case: CaseRef::Id(c.id) };
    rig.call(&worker(&w), Command::Close { case: CaseRef::Id(c.id), result: "已修好".into() }).unwrap();
    assert!(matches!(rig.call(&worker(&w), get()).unwrap(), Reply::Detail { .. }));
    let other = rig.reg.workers.iter().find(|x| x.id.as_str() != w).unwrap();
    let e = rig.call(&worker(&other.id), get()).unwrap_err();
    assert_eq!(e.code, gridline_model::ErrorCode::Forbidden, "{e:?}");
}

/// The clock stepped back (NTP, a time set by hand) between two commands:
/// the case's history still runs forwards, the later event taking its
/// case's last time, so no claim is stamped before its dispatch.
#[test]
fn a_clock_stepped_back_does_not_turn_a_case_s_history_around() {
    let rig = Rig::new();
    let c = rig.accept(nowhere());
    let w = full_time(&rig.reg);
    rig.call(&sup(), Command::Dispatch { case: CaseRef::Id(c.id), worker: w.clone() }).unwrap();
    let (d, _) = rig.case(&c);
    let dispatched = d.dispatched_at.unwrap();
    rig.clock.set(Timestamp(dispatched.0 - 3_600_000));
    rig.call(&worker(&w), Command::Claim { case: CaseRef::Id(c.id) }).unwrap();
    let (d, events) = rig.case(&c);
    assert_eq!(d.claimed_at, Some(dispatched), "{events:?}");
    assert!(events.windows(2).all(|p| p[0].at <= p[1].at), "{events:?}");
}

/// A supervisor's PULL without `worker=` is the county's whole queue:
/// every dispatched or handling case, whoever has it, earliest deadline
/// first; a case waiting at the command centre has no deadline and is not
/// in it.
#[test]
fn a_supervisor_pulls_every_worker_s_cases_earliest_deadline_first() {
    let rig = Rig::new();
    let grids: Vec<_> = rig.reg.grids.iter().filter(|g| g.kind != GridKind::Dedicated).take(3).collect();
    let mut placed = Vec::new();
    for g in &grids {
        placed.push(rig.accept(Location { grid: Some(g.code.clone().into()), ..Default::default() }));
        rig.clock.advance(gridline_model::DurationMs(1_000));
    }
    let waiting = rig.accept(nowhere());
    // The last one claimed: its deadline is now the close one, the latest.
    let last = placed[2].clone();
    rig.call(&worker(last.worker().unwrap()), Command::Claim { case: CaseRef::Id(last.id) }).unwrap();
    let Reply::Cases { cases, next: None } =
        rig.call(&sup(), Command::Pull { worker: None, page: Default::default() }).unwrap()
    else {
        panic!("one page")
    };
    let ids: Vec<_> = cases.iter().map(|c| c.case().id).collect();
    assert_eq!(ids, vec![placed[0].id, placed[1].id, last.id], "earliest deadline first");
    assert!(!ids.contains(&waiting.id));
    let workers: std::collections::BTreeSet<_> = cases.iter().map(|c| c.case().worker().unwrap()).collect();
    assert_eq!(workers.len(), 3, "every worker's cases");
}

/// A case claimed by its first worker and returned, now dispatched to a
/// second: the rig, the case as accepted, the first worker, the case now,
/// the second worker.
fn claimed_and_returned() -> (Rig, Case, String, Case, String) {
    let rig = Rig::new();
    let grid = rig.reg.grids.iter().find(|g| g.kind != GridKind::Dedicated).unwrap();
    let c = rig.accept(Location { grid: Some(grid.code.clone().into()), ..Default::default() });
    let a = c.worker().unwrap().to_string();
    rig.call(&worker(&a), Command::Claim { case: CaseRef::Id(c.id) }).unwrap();
    rig.call(&worker(&a), Command::Return { case: CaseRef::Id(c.id), reason: "x".into() }).unwrap();
    let (d, _) = rig.case(&c);
    let b = d.worker().unwrap().to_string();
    (rig, c, a, d, b)
}

/// Writes `case`'s record as a build from before responders were kept did:
/// a `CaseAt` record (kind 5), its response judged, its responder unknown.
fn write_as_before_responders(store: &gridline_caselog::MemStore, case: Case) {
    let old = Case { responder: None, responder_unknown: true, ..case };
    let bytes = codec::encode_case(&old).unwrap();
    assert_eq!(bytes[1], 5);
    let mut wb = gridline_caselog::WriteBatch::default();
    wb.put(codec::case_key(&old.id), bytes);
    store.apply(wb).unwrap();
    store.sync().unwrap();
}

/// helper-64's review: a record written before responders were kept, of a
/// case that had moved on after its response was judged, does not say
/// whose the response was. After the upgrade the case moves again: no
/// responder is made up from the assignment it leaves (that one did not
/// respond), the response follows the current assignment as documented,
/// and `verify` accepts the record, counted.
#[test]
fn a_case_judged_before_responders_were_kept_never_gets_a_wrong_one() {
    for how in ["dispatch", "return", "reopen"] {
        let (rig, c, a, d, b) = claimed_and_returned();
        let (store, clock) = (rig.store.clone(), rig.clock.clone());
        drop(rig);
        write_as_before_responders(&store, d);
        let rig = Rig::on(store.clone(), clock, EngineConfig::default());
        let holder = match how {
            "dispatch" => {
                let other = rig
                    .reg
                    .workers
                    .iter()
                    .find(|w| w.id.as_str() != a && w.id.as_str() != b && w.department.is_none())
                    .unwrap();
                rig.call(&sup(), Command::Dispatch { case: CaseRef::Id(c.id), worker: other.id.clone() })
                    .unwrap();
                other.id.to_string()
            }
            "return" => {
                rig.call(&worker(&b), Command::Claim { case: CaseRef::Id(c.id) }).unwrap();
                rig.call(&worker(&b), Command::Return { case: CaseRef::Id(c.id), reason: "y".into() })
                    .unwrap();
                rig.case(&c).0.worker().map(String::from).unwrap_or_else(|| "-".into())
            }
            _ => {
                rig.call(&worker(&b), Command::Claim { case: CaseRef::Id(c.id) }).unwrap();
                rig.call(&worker(&b), Command::Close { case: CaseRef::Id(c.id), result: "done".into() })
                    .unwrap();
                let fb =
                    Command::Feedback { case: CaseRef::Id(c.id), satisfied: false, score: None, text: None };
                rig.call(&caller(Role::Operator, "op"), fb).unwrap();
                rig.case(&c).0.worker().map(String::from).unwrap_or_else(|| "-".into())
            }
        };
        let (d, events) = rig.case(&c);
        assert!(d.responder.is_none() && d.responder_unknown, "{how}: {events:?}");
        let rows = rig.audit(AuditBy::Worker);
        let row = rows.iter().find(|r| field(r, "worker") == holder).unwrap_or_else(|| panic!("{rows:?}"));
        assert_eq!(field(row, "response_pct"), "100.0", "{how}: the current assignment's: {rows:?}");
        assert_eq!(rows.len(), 2, "{how}: no row for a made-up responder: {rows:?}");
        drop(rig);
        let report = CaseLog::open(store.clone(), None).unwrap().verify().unwrap();
        assert_eq!((report.cases, report.old_responders), (1, 1), "{how}");
    }
}

/// Two operators calling the resident back: the second FEEDBACK, once the
/// first reopened the case, is told so (helper-62's review: it read
/// "cannot record feedback on a case that is dispatched").
#[test]
fn a_second_return_visit_on_a_reopened_case_says_it_was_reopened() {
    let rig = Rig::new();
    let (c, w) = rig.in_hand();
    rig.call(&worker(&w), Command::Close { case: CaseRef::Id(c.id), result: "修好了".into() }).unwrap();
    let op = caller(Role::Operator, "op");
    let visit = || Command::Feedback { case: CaseRef::Id(c.id), satisfied: false, score: None, text: None };
    rig.call(&op, visit()).unwrap();
    let e = rig.call(&op, visit()).unwrap_err();
    assert_eq!(e.code.as_str(), "conflict", "{e:?}");
    assert!(e.message.contains("was reopened by the return visit recorded at"), "{e:?}");
}

/// A format-4 `CaseAt` record of a judged case (responder
/// unknown) gets a NOTE with req= (written as kind 9), restarts, moves on,
/// restarts, and verifies; and a case judged with its responder known
/// (kind 8) keeps it through kind 9.
#[test]
fn a_case_that_remembers_notes_keeps_what_it_knows_of_its_responder_across_restarts() {
    for old_record in [true, false] {
        let (rig, c, _, d, b) = claimed_and_returned();
        let (store, clock) = (rig.store.clone(), rig.clock.clone());
        drop(rig);
        if old_record {
            write_as_before_responders(&store, d);
        }
        let rig = Rig::on(store.clone(), clock, EngineConfig::default());
        rig.call(&worker(&b), Command::Claim { case: CaseRef::Id(c.id) }).unwrap();
        let note = Command::Note { case: CaseRef::Id(c.id), text: "t".into(), req: Some("r1".into()) };
        rig.call(&worker(&b), note.clone()).unwrap();
        let rig = rig.crash_and_restart();
        let (d, _) = rig.case(&c);
        assert_eq!(d.responder_unknown, old_record, "after kind 9 restart");
        assert!(d.note_reqs.is_some());
        assert_eq!(d.responder.is_some(), !old_record);
        rig.call(&worker(&b), note).unwrap();
        rig.call(&worker(&b), Command::Return { case: CaseRef::Id(c.id), reason: "y".into() }).unwrap();
        let rig = rig.crash_and_restart();
        let (d, events) = rig.case(&c);
        assert_eq!(events.iter().filter(|e| matches!(e.kind, EventKind::NotedReq { .. })).count(), 1);
        assert_eq!(d.responder_unknown, old_record);
        assert_eq!(d.responder.is_some(), !old_record);
        let store = rig.store.clone();
        drop(rig);
        let report = CaseLog::open(store.clone(), None).unwrap().verify().unwrap();
        assert_eq!((report.cases, report.old_responders), (1, u64::from(old_record)), "old={old_record}");
    }
}
