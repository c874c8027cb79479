//! The engine against the in-memory store: durability barrier, faults,
//! deadlines with a manual clock, recovery.

mod common;

use common::*;
use gridline_caselog::{codec, CaseLog, Faults, Gate};
use gridline_model::{
    Case, CaseId, CaseRef, Command, DurationMs, ErrorCode, EventKind, Intake, Location, Reply, Role, Status,
    Timestamp,
};

#[test]
fn an_ok_means_the_events_are_durable() {
    let rig = Rig::new();
    for i in 0..20 {
        let case = rig.accept_at_grid(&format!("垃圾没人清运 {i}"));
        // The reply came back: the case and its last event must already be durable.
        let stored = rig.store.durable_get(&codec::case_key(&case.id)).expect("the case is durable");
        let stored: Case = codec::decode_case(&stored).unwrap();
        assert_eq!(stored.last_seq, case.last_seq, "with all its events");
        let page =
            rig.store.durable_get(&codec::page_key(stored.stored_page.get())).expect("its page is durable");
        let runs = codec::decode_page(&page).unwrap();
        let run = runs.iter().find(|r| r.events[0].case == case.id).expect("its run");
        assert_eq!(run.events.last().unwrap().seq, case.last_seq);
        assert_eq!(case.status, Status::Dispatched);
    }
}

/// Every worker's open cases as the engine lists them (`PULL worker=`), and
/// where it would route `intake` now and why (which counts open cases):
/// the worker loads, as far as they can be seen from outside.
fn loads(rig: &Rig, intake: &Intake) -> (Vec<(String, Vec<CaseId>)>, String) {
    let sup = caller(Role::Supervisor, "sup");
    let mut pulled = Vec::new();
    for w in &rig.reg.workers {
        let page = gridline_model::Page { limit: Some(1000), after: None };
        let Reply::Cases { cases, next: None } =
            rig.call(&sup, Command::Pull { worker: Some(w.id.clone()), page }).unwrap()
        else {
            panic!("PULL worker={}", w.id)
        };
        if !cases.is_empty() {
            pulled.push((w.id.clone(), cases.iter().map(|c| c.case().id).collect()));
        }
    }
    let intake = Intake { req: None, ..intake.clone() };
    let Reply::Routed(d) = rig.call(&caller(Role::Operator, "operator"), Command::Route(intake)).unwrap()
    else {
        panic!()
    };
    (pulled, format!("{:?} {:?}", d.worker, d.steps))
}

#[test]
fn a_failed_sync_answers_unavailable_and_changes_nothing() {
    let rig = Rig::new();
    let before = rig.accept_at_grid("first");
    let op = caller(Role::Operator, "operator");
    let intake = Intake {
        text: "second".into(),
        location: Location {
            grid: (before.grid().map(str::to_string)).map(Into::into),
            ..Default::default()
        },
        req: Some("r-2".into()),
        ..Default::default()
    };
    let loads_before = loads(&rig, &intake);
    assert_eq!(loads_before.0.len(), 1, "one worker has the first case: {:?}", loads_before.0);
    rig.store.set_faults(Faults { fail_sync_in: Some(1), ..Default::default() });
    let err = rig.call(&op, Command::Accept(intake.clone())).unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
    // Nothing half-applied: every worker's load (the second case would have
    // gone to another worker than the first's: fewer open cases) and the
    // routing that counts them are as before; the request id is checked
    // below, by the retry.
    assert_eq!(loads(&rig, &intake), loads_before, "the loads changed");
    let w = worker(before.worker().unwrap());
    let pulled = match rig.call(&w, Command::Pull { worker: None, page: Default::default() }).unwrap() {
        Reply::Cases { cases, .. } => cases,
        r => panic!("{r:?}"),
    };
    assert!(pulled.iter().all(|c| c.case().intake.text != "second"));
    // Reads still work, and once the fault clears, writes do too; the retry
    // with the same req= makes exactly one case.
    assert_eq!(rig.get(before.no.as_str()).0.id, before.id);
    let again = rig.call(&op, Command::Accept(intake.clone())).unwrap();
    let Reply::Accepted { case, duplicate: false, .. } = again else { panic!("{again:?}") };
    assert_eq!(
        case.case().no.parts().unwrap().1,
        before.no.parts().unwrap().1 + 2,
        "a number is never reused"
    );
    let Reply::Accepted { duplicate: true, case: same, .. } = rig.call(&op, Command::Accept(intake)).unwrap()
    else {
        panic!()
    };
    assert_eq!(same.case().id, case.case().id);
}

#[test]
fn a_full_disk_refuses_writes_but_serves_reads_until_it_clears() {
    let rig = Rig::new();
    let case = rig.accept_at_grid("first");
    rig.store.set_faults(Faults { full: true, ..Default::default() });
    let w = worker(case.worker().unwrap());
    let err = rig.call(&w, Command::Claim { case: CaseRef::Id(case.id) }).unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert_eq!(rig.get(case.no.as_str()).0.status, Status::Dispatched);
    rig.store.set_faults(Faults::default());
    let Reply::Case(c) = rig.call(&w, Command::Claim { case: CaseRef::Id(case.id) }).unwrap() else {
        panic!()
    };
    assert_eq!(c.case().status, Status::Handling);
}

/// A store that cannot read (sled after a failed write of its, until a
/// restart): a GET's history is `unavailable`, a condition of the machine,
/// not `internal` (a bug); once it reads again, so does GET.
#[test]
fn a_store_that_cannot_read_makes_get_unavailable_not_internal() {
    let rig = Rig::new();
    let case = rig.accept_at_grid("unreadable");
    rig.store.set_faults(Faults { fail_reads: true, ..Default::default() });
    let sup = caller(Role::Supervisor, "sup");
    let err = rig.call(&sup, Command::Get { case: CaseRef::Id(case.id) }).unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{err:?}");
    assert!(err.message.contains(case.no.as_str()), "{err:?}");
    rig.store.set_faults(Faults::default());
    assert_eq!(rig.get(case.no.as_str()).0.status, Status::Dispatched);
}

#[test]
fn a_failed_apply_in_a_batch_with_other_commands_fails_them_all_and_keeps_state() {
    let rig = Rig::new();
    let case = rig.accept_at_grid("first");
    rig.store.set_faults(Faults { fail_apply_in: Some(1), ..Default::default() });
    let w = worker(case.worker().unwrap());
    assert_eq!(
        rig.call(&w, Command::Claim { case: CaseRef::Id(case.id) }).unwrap_err().code,
        ErrorCode::Unavailable
    );
    let (c, events) = rig.get(case.no.as_str());
    assert_eq!(c.status, Status::Dispatched);
    assert_eq!(events.len() as u32, c.last_seq);
}

/// Replies share the engine's copy of a case; one already given out keeps
/// showing the case as it was when it was answered.
#[test]
fn a_reply_keeps_the_case_as_it_was_answered() {
    let rig = Rig::new();
    let case = rig.accept_at_grid("shared");
    let w = worker(case.worker().unwrap());
    let Reply::Cases { cases: pulled, .. } =
        rig.call(&w, Command::Pull { worker: None, page: Default::default() }).unwrap()
    else {
        panic!()
    };
    let Reply::Case(claimed) = rig.call(&w, Command::Claim { case: CaseRef::Id(case.id) }).unwrap() else {
        panic!()
    };
    let Reply::Case(closed) =
        rig.call(&w, Command::Close { case: CaseRef::Id(case.id), result: "done".into() }).unwrap()
    else {
        panic!()
    };
    assert_eq!(pulled[0].case().status, Status::Dispatched);
    assert_eq!(claimed.case().status, Status::Handling);
    assert_eq!(closed.case().status, Status::Closed);
    assert_eq!(closed.case().last_seq, claimed.case().last_seq + 1);
    let (now, _) = rig.get(case.no.as_str());
    assert_eq!(now.status, Status::Closed);
}

#[test]
fn roles_and_ownership_are_enforced() {
    let rig = Rig::new();
    let case = rig.accept_at_grid("first");
    let other = rig.reg.workers.iter().find(|w| Some(w.id.as_str()) != case.worker()).unwrap();
    let e = rig.call(&worker(&other.id), Command::Claim { case: CaseRef::Id(case.id) }).unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden);
    let e = rig
        .call(
            &caller(Role::Operator, "operator"),
            Command::Close { case: CaseRef::Id(case.id), result: "x".into() },
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden);
    // Phones are masked for the worker, not for the operator who took the call.
    // The history's first event shows the phone the same way.
    let phones = |reply: Reply| {
        let Reply::Detail { case: seen, events, .. } = reply else { panic!() };
        let EventKind::Accepted { intake, .. } = &events[0].kind else { panic!() };
        (seen.phone().map(String::from), intake.phone.as_ref().map(|p| p.to_string()))
    };
    let seen = phones(
        rig.call(&worker(case.worker().unwrap()), Command::Get { case: CaseRef::Id(case.id) }).unwrap(),
    );
    assert_eq!(seen, (Some("138****5678".into()), Some("138****5678".into())));
    let seen = phones(
        rig.call(&caller(Role::Operator, "operator"), Command::Get { case: CaseRef::Id(case.id) }).unwrap(),
    );
    assert_eq!(seen, (Some("13812345678".into()), Some("13812345678".into())));
    // So does a worker's PULL.
    let Reply::Cases { cases, .. } = rig
        .call(&worker(case.worker().unwrap()), Command::Pull { worker: None, page: Default::default() })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(cases[0].phone().as_deref(), Some("138****5678"));
    // Their own case, closed: its state refuses (conflict), not its owner;
    // another worker is still refused as not theirs.
    let mine = worker(case.worker().unwrap());
    let r = CaseRef::Id(case.id);
    rig.call(&mine, Command::Claim { case: r.clone() }).unwrap();
    rig.call(&mine, Command::Close { case: r.clone(), result: "修好了".into() }).unwrap();
    for cmd in
        [Command::Claim { case: r.clone() }, Command::Note { case: r.clone(), text: "x".into(), req: None }]
    {
        let e = rig.call(&mine, cmd).unwrap_err();
        assert_eq!(e.code, ErrorCode::Conflict, "{e:?}");
        assert!(e.message.contains(" is closed"), "{}", e.message);
    }
    let e = rig.call(&worker(&other.id), Command::Claim { case: r }).unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden);
    // What a client sent comes back in an error clipped to 32 characters.
    let long = "长".repeat(200);
    let sup = caller(Role::Supervisor, "sup");
    for cmd in [
        Command::Get { case: CaseRef::No(gridline_model::CaseNo(long.as_str().into())) },
        Command::Pull { worker: Some(long.clone()), page: Default::default() },
    ] {
        let e = rig.call(&sup, cmd).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound, "{e:?}");
        assert!(e.message.contains(&format!("`{}…`", "长".repeat(32))), "{}", e.message);
        assert!(e.message.chars().count() < 64, "{}", e.message);
    }
}

#[test]
fn the_whole_loop_with_return_and_reopen() {
    let rig = Rig::new();
    let case = rig.accept_at_grid("垃圾好几天没人清运");
    let first = case.worker().unwrap().to_string();
    let r = CaseRef::Id(case.id);
    // Returned: never back to the same worker.
    let Reply::Case(c) = rig
        .call(&worker(&first), Command::Return { case: r.clone(), reason: "不是我的网格".into() })
        .unwrap()
    else {
        panic!()
    };
    let second = c.case().worker().expect("routed again").to_string();
    assert_ne!(second, first);
    assert_eq!(c.case().returned_by, vec![first.clone()]);
    let w = worker(&second);
    rig.call(&w, Command::Claim { case: r.clone() }).unwrap();
    rig.call(&w, Command::Note { case: r.clone(), text: "到现场".into(), req: None }).unwrap();
    rig.call(&w, Command::Close { case: r.clone(), result: "已清运".into() }).unwrap();
    rig.clock.advance(DurationMs::hours(1));
    let op = caller(Role::Operator, "operator");
    let Reply::Case(c) = rig
        .call(
            &op,
            Command::Feedback {
                case: r.clone(),
                satisfied: false,
                score: Some(2),
                text: Some("没解决".into()),
            },
        )
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(c.case().status, Status::Dispatched, "reopened and dispatched again");
    assert_eq!(c.case().reopens, 1);
    assert!(c.case().due_claim.unwrap() > case.due_claim.unwrap(), "a reopened case gets new deadlines");
    let (_, events) = rig.get(case.no.as_str());
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "accepted",
            "dispatched",
            "returned",
            "dispatched",
            "claimed",
            "noted",
            "closed",
            "feedback",
            "reopened",
            "dispatched"
        ]
    );
    // Every event says when, who, and (where it applies) why.
    assert!(events.iter().all(|e| e.at >= case.received_at && !e.actor.name.is_empty()));
}

#[test]
fn deadlines_escalate_and_extensions_move_them() {
    let rig = Rig::new();
    let case = rig.accept_at_grid("垃圾没人清运");
    let r = CaseRef::Id(case.id);
    let claim_limit = case.due_claim.unwrap().since(case.received_at);
    rig.clock.advance(DurationMs(claim_limit.0 + 1000));
    assert_eq!(rig.tick(), 2, "overdue + escalated to the community lead");
    let (c, events) = rig.get(case.no.as_str());
    assert!(c.overdue_claim);
    assert_eq!(c.escalation_level, 1);
    let EventKind::Escalated { level: 1, to, .. } = &events.last().unwrap().kind else {
        panic!("{events:?}")
    };
    assert!(!to.is_empty());
    // Another claim limit: the township's lead; then the command centre.
    rig.clock.advance(claim_limit);
    assert_eq!(rig.tick(), 1);
    rig.clock.advance(claim_limit);
    assert_eq!(rig.tick(), 1);
    let (c, events) = rig.get(case.no.as_str());
    assert_eq!(c.escalation_level, 3);
    let EventKind::Escalated { to, .. } = &events.last().unwrap().kind else { panic!() };
    assert_eq!(to, &rig.reg.county.command_centre);
    assert_eq!(rig.tick(), 0, "nothing more until the close deadline");

    // Extension: refused leaves the deadline, approved moves it.
    let w = worker(c.worker().unwrap());
    rig.call(&w, Command::Claim { case: r.clone() }).unwrap();
    let due = c.due_close.unwrap();
    let later = Timestamp(due.0 + 86_400_000).rfc3339(480);
    rig.call(&w, Command::Extend { case: r.clone(), until: later.clone(), reason: "等配件".into() }).unwrap();
    let sup = caller(Role::Supervisor, "sup");
    rig.call(&sup, Command::DecideExtension { case: r.clone(), approve: false, reason: None }).unwrap();
    assert_eq!(rig.get(case.no.as_str()).0.due_close, Some(due));
    // A mistyped year is refused, naming the field and the furthest time:
    // granted, it would keep the case off every overdue list for good.
    let now = gridline_engine::Clock::now(&*rig.clock);
    for far in [Timestamp(now.0 + 367 * 86_400_000), Timestamp(now.0 + 36 * 365 * 86_400_000)] {
        let e = rig
            .call(&w, Command::Extend { case: r.clone(), until: far.rfc3339(480), reason: "等配件".into() })
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest, "{e:?}");
        assert!(e.message.starts_with("until: at most 366 days ahead (until "), "{}", e.message);
    }
    assert!(rig.get(case.no.as_str()).0.extension.is_none(), "nothing asked for");
    // Nor is one approved: a request from before the limit, or one the
    // clock has since been set back from (here 100 days), is refused.
    let far = Timestamp(now.0 + 300 * 86_400_000);
    rig.call(&w, Command::Extend { case: r.clone(), until: far.rfc3339(480), reason: "等配件".into() })
        .unwrap();
    rig.clock.set(Timestamp(now.0 - 100 * 86_400_000));
    let e = rig
        .call(&sup, Command::DecideExtension { case: r.clone(), approve: true, reason: None })
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Conflict, "{e:?}");
    assert!(e.message.contains("more than 366 days ahead"), "{}", e.message);
    rig.call(&sup, Command::DecideExtension { case: r.clone(), approve: false, reason: None }).unwrap();
    rig.clock.set(now);
    assert_eq!(rig.get(case.no.as_str()).0.due_close, Some(due));
    rig.call(&w, Command::Extend { case: r.clone(), until: later, reason: "等配件".into() }).unwrap();
    rig.call(&sup, Command::DecideExtension { case: r.clone(), approve: true, reason: None }).unwrap();
    let moved = rig.get(case.no.as_str()).0.due_close.unwrap();
    assert_eq!(moved, Timestamp(due.0 + 86_400_000));
    // Past the old deadline nothing happens; past the new one, overdue.
    rig.clock.set(Timestamp(due.0 + 1000));
    assert_eq!(rig.tick(), 0);
    rig.clock.set(moved);
    assert_eq!(rig.tick(), 0, "a deadline is met at its very millisecond");
    rig.clock.set(Timestamp(moved.0 + 1000));
    assert_eq!(rig.tick(), 1);
    assert!(rig.get(case.no.as_str()).0.overdue_close);
    let Reply::Cases { cases, .. } =
        rig.call(&sup, Command::Overdue { township: None, grid: None, page: Default::default() }).unwrap()
    else {
        panic!()
    };
    assert_eq!(cases.len(), 1);
}

#[test]
fn a_restart_recovers_exactly_what_was_acknowledged() {
    let rig = Rig::new();
    let mut acked = Vec::new();
    for i in 0..30 {
        acked.push(rig.accept_at_grid(&format!("case {i}")));
    }
    let w = worker(acked[0].worker().unwrap());
    rig.call(&w, Command::Claim { case: CaseRef::Id(acked[0].id) }).unwrap();
    let rig = rig.crash_and_restart();
    for c in &acked {
        let (got, events) = rig.get(c.no.as_str());
        assert_eq!(got.id, c.id);
        assert_eq!(events.len() as u32, got.last_seq);
    }
    assert_eq!(rig.get(acked[0].no.as_str()).0.status, Status::Handling);
    // Numbering continues after the highest number of the day.
    let next = rig.accept_at_grid("after restart");
    assert_eq!(next.no.parts().unwrap().1, 31);
}

/// Submits an operator's ACCEPT in the grid of `near`, without waiting.
fn submit_accept(
    engine: &gridline_engine::EngineHandle,
    near: &Case,
    text: &str,
    req: &str,
) -> gridline_engine::ReplyRx {
    let intake = Intake {
        text: text.into(),
        location: Location { grid: (near.grid().map(str::to_string)).map(Into::into), ..Default::default() },
        req: Some(req.into()),
        ..Default::default()
    };
    engine.submit(caller(Role::Operator, "operator"), Command::Accept(intake)).unwrap()
}

#[test]
fn a_failed_sync_fails_every_batch_behind_it_and_keeps_the_rest_consistent() {
    let rig = Rig::new();
    let first = rig.accept_at_grid("before");
    rig.store.set_faults(Faults { fail_sync_in: Some(1), ..Default::default() });
    let engine = rig.engine.as_ref().unwrap();
    let pending: Vec<_> =
        (0..400).map(|i| submit_accept(engine, &first, &format!("批量 {i}"), &format!("b-{i}"))).collect();
    let mut acked = Vec::new();
    let mut failed = 0;
    for rx in pending {
        match rx.blocking_recv().unwrap() {
            Ok(Reply::Accepted { case, .. }) => acked.push(case),
            Err(e) => {
                assert_eq!(e.code, ErrorCode::Unavailable);
                failed += 1;
            }
            Ok(r) => panic!("{r:?}"),
        }
    }
    assert!(failed > 0, "the injected failure hit no command");
    for c in &acked {
        assert!(
            rig.store.durable_get(&codec::case_key(&c.case().id)).is_some(),
            "acknowledged but not durable"
        );
    }
    let sup = caller(Role::Supervisor, "sup");
    let Reply::Rows(rows) =
        rig.call(&sup, Command::Audit { by: gridline_model::AuditBy::County, from: None, to: None }).unwrap()
    else {
        panic!()
    };
    let received = rows[0].iter().find(|(k, _)| k == "received").unwrap().1.clone();
    assert_eq!(received, (acked.len() + 1).to_string(), "memory holds exactly the acknowledged cases");
    // And after a crash, exactly those are there.
    let rig = rig.crash_and_restart();
    let Reply::Rows(rows) =
        rig.call(&sup, Command::Audit { by: gridline_model::AuditBy::County, from: None, to: None }).unwrap()
    else {
        panic!()
    };
    assert_eq!(rows[0].iter().find(|(k, _)| k == "received").unwrap().1, received);
}

#[test]
fn a_read_pipelined_behind_a_write_sees_its_events() {
    let rig = Rig::new();
    let grid = rig.reg.grids[0].code.clone();
    let engine = rig.engine.as_ref().unwrap();
    let op = caller(Role::Operator, "operator");
    let intake = Intake {
        text: "管道".into(),
        location: Location { grid: Some(grid.into()), ..Default::default() },
        ..Default::default()
    };
    let a = engine.submit(op.clone(), Command::Accept(intake)).unwrap();
    let no = format!("JD-{}-000001", ten_am().day_number(480));
    let g = engine.submit(op, Command::Get { case: CaseRef::parse(&no) }).unwrap();
    let Ok(Reply::Accepted { case, .. }) = a.blocking_recv().unwrap() else { panic!() };
    let Ok(Reply::Detail { case: seen, events, .. }) = g.blocking_recv().unwrap() else { panic!() };
    assert_eq!(seen.case().id, case.case().id);
    assert_eq!(events.len() as u32, seen.case().last_seq, "every event of the case, stored or not yet");
}

#[test]
fn long_notes_pipelined_on_one_case_do_not_fail_other_commands() {
    let rig = Rig::new();
    let case = rig.accept_at_grid("噪音扰民");
    let engine = rig.engine.as_ref().unwrap();
    let w = worker(case.worker().unwrap());
    // 40 notes of 4,000 characters (12 KB each) in one batch: their events,
    // one run of one case, are far more than one stored value may hold.
    let note = "吵".repeat(4000);
    let notes: Vec<_> = (0..40)
        .map(|_| {
            engine.submit(
                w.clone(),
                Command::Note { case: CaseRef::parse(&case.no.0), text: note.clone(), req: None },
            )
        })
        .collect::<Result<_, _>>()
        .unwrap();
    let accepts: Vec<_> =
        (0..50).map(|i| submit_accept(engine, &case, "路灯坏了", &format!("n-{i}"))).collect();
    for rx in notes.into_iter().chain(accepts) {
        let r = rx.blocking_recv().unwrap();
        assert!(r.is_ok(), "{r:?}");
    }
    assert_eq!(rig.get(&case.no.0).1.len() as u32, case.last_seq + 40);
    let rig = rig.crash_and_restart();
    assert_eq!(rig.get(&case.no.0).1.len() as u32, case.last_seq + 40, "every note, after a crash too");
    let report = CaseLog::open(rig.store.clone(), None).unwrap().verify().unwrap();
    assert_eq!(report.cases, 51);
}

#[test]
fn a_command_that_would_make_a_case_too_large_to_store_is_refused_alone() {
    let rig = Rig::new();
    let case = rig.accept_at_grid("漏水");
    let engine = rig.engine.as_ref().unwrap();
    let w = worker(case.worker().unwrap());
    let no = CaseRef::parse(&case.no.0);
    rig.call(&w, Command::Claim { case: no.clone() }).unwrap();
    let huge = "水".repeat(30_000);
    let before = submit_accept(engine, &case, "之前", "big-1");
    let close = engine.submit(w.clone(), Command::Close { case: no.clone(), result: huge }).unwrap();
    let after = submit_accept(engine, &case, "之后", "big-2");
    let e = close.blocking_recv().unwrap().unwrap_err();
    assert_eq!(e.code, ErrorCode::TooLarge, "{e:?}");
    assert!(e.message.contains(case.no.0.as_str()), "{}", e.message);
    for rx in [before, after] {
        assert!(matches!(rx.blocking_recv().unwrap(), Ok(Reply::Accepted { .. })));
    }
    let r = rig.call(&w, Command::Close { case: no, result: "已修好".into() }).unwrap();
    assert!(matches!(r, Reply::Case(c) if c.case().status == Status::Closed));
}

#[test]
fn a_read_behind_a_write_that_fails_sees_the_history_without_it() {
    let rig = Rig::new();
    let case = rig.accept_at_grid("路灯不亮");
    let engine = rig.engine.as_ref().unwrap();
    let w = worker(case.worker().unwrap());
    rig.store.set_faults(Faults { fail_sync_in: Some(1), ..Default::default() });
    let claim = engine.submit(w.clone(), Command::Claim { case: CaseRef::parse(&case.no.0) }).unwrap();
    let get = engine.submit(w, Command::Get { case: CaseRef::parse(&case.no.0) }).unwrap();
    assert_eq!(claim.blocking_recv().unwrap().unwrap_err().code, ErrorCode::Unavailable);
    let Ok(Reply::Detail { case: seen, events, .. }) = get.blocking_recv().unwrap() else { panic!() };
    assert_eq!((seen.case().status, seen.case().last_seq), (Status::Dispatched, case.last_seq));
    let seqs: Vec<u32> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=case.last_seq).collect::<Vec<_>>(),
        "the history as it stands, not the undone claim"
    );
    assert_eq!(rig.get(&case.no.0).1.len() as u32, case.last_seq);
}

#[test]
fn batches_queued_behind_a_slow_sync_share_a_commit_and_fail_together() {
    let rig = Rig::new();
    let first = rig.accept_at_grid("before");
    // Every sync waits at a gate; the second one from now fails.
    let gate = Gate::new();
    rig.store.set_faults(Faults {
        hold_sync: Some(gate.clone()),
        fail_sync_in: Some(2),
        ..Default::default()
    });
    let engine = rig.engine.as_ref().unwrap();
    let accept = |i: usize| submit_accept(engine, &first, &format!("排队 {i}"), &format!("q-{i}"));
    // One command starts the first sync, held at the gate; the rest arrive
    // behind it and queue. The engine hands them to the syncer within
    // microseconds: the pause before the gate opens leaves it a thousandfold.
    let head = accept(0);
    wait_until("the first sync waits at the gate", || gate.waiting() == 1);
    let queued: Vec<_> = (1..=6).map(accept).collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    gate.open();
    let head = head.blocking_recv().unwrap();
    assert!(matches!(head, Ok(Reply::Accepted { .. })), "{head:?}");
    for rx in queued {
        let e = rx.blocking_recv().unwrap().expect_err("its commit failed");
        assert_eq!(e.code, ErrorCode::Unavailable);
    }
    // The failed commit wrote several batches; every one is undone, in
    // memory and in the store, and the log takes writes again.
    rig.store.set_faults(Faults::default());
    let after = rig.accept_at_grid("after");
    assert_eq!(after.no.parts().unwrap().1, 9, "numbers of failed cases are not reissued");
    let sup = caller(Role::Supervisor, "sup");
    let count = |rig: &Rig| -> String {
        let Reply::Rows(rows) = rig
            .call(&sup, Command::Audit { by: gridline_model::AuditBy::County, from: None, to: None })
            .unwrap()
        else {
            panic!()
        };
        rows[0].iter().find(|(k, _)| k == "received").unwrap().1.clone()
    };
    assert_eq!(count(&rig), "3");
    let rig = rig.crash_and_restart();
    assert_eq!(count(&rig), "3", "after a crash, exactly the acknowledged cases");
    let report = CaseLog::open(rig.store.clone(), None).unwrap().verify().unwrap();
    assert_eq!(report.cases, 3);
}

#[test]
fn overdue_by_township_and_grid_lists_exactly_their_cases_and_pages_through_them() {
    let mut rig = Rig::new();
    let op = caller(Role::Operator, "operator");
    // Three cases in each of six grids, spread over the townships.
    let grids: Vec<String> = {
        let mut seen = std::collections::HashSet::new();
        rig.reg
            .grids
            .iter()
            .filter(|g| g.kind != gridline_registry::GridKind::Dedicated && seen.insert(g.township))
            .take(6)
            .map(|g| g.code.clone())
            .collect()
    };
    let mut cases = Vec::new();
    for g in &grids {
        for i in 0..3 {
            let intake = Intake {
                text: format!("{g} {i}").into(),
                location: Location { grid: Some(g.clone().into()), ..Default::default() },
                ..Default::default()
            };
            match rig.call(&op, Command::Accept(intake)).unwrap() {
                Reply::Accepted { case, .. } => cases.push(case),
                r => panic!("{r:?}"),
            }
        }
    }
    // One of them claimed in time: it races its close deadline, not yet due.
    let w = worker(cases[0].case().worker().unwrap());
    rig.call(&w, Command::Claim { case: CaseRef::Id(cases[0].case().id) }).unwrap();
    let limit = cases[1].case().due_claim.unwrap().since(cases[1].case().received_at);
    rig.clock.advance(DurationMs(limit.0 + 1000));
    rig.tick();

    let sup = caller(Role::Supervisor, "sup");
    // Every page of OVERDUE with these filters, two at a time.
    let list = |rig: &Rig, township: Option<String>, grid: Option<String>| -> Vec<CaseId> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = gridline_model::Page { limit: Some(2), after: after.take() };
            let cmd = Command::Overdue { township: township.clone(), grid: grid.clone(), page };
            let Reply::Cases { cases, next } = rig.call(&sup, cmd).unwrap() else { panic!() };
            out.extend(cases.iter().map(|c| c.case().id));
            match next {
                Some(n) => after = Some(n),
                None => return out,
            }
        }
    };
    for round in 0..2 {
        let all = list(&rig, None, None);
        assert_eq!(all.len(), cases.len() - 1, "round {round}: all but the claimed case are overdue");
        for c in &cases {
            let township = c.case().township.clone().unwrap();
            let grid = c.case().grid().unwrap().to_string();
            let in_township: Vec<CaseId> = cases
                .iter()
                .filter(|x| {
                    x.case().id != cases[0].case().id
                        && x.case().township.as_deref() == Some(township.as_str())
                })
                .map(|x| x.case().id)
                .collect();
            let mut got = list(&rig, Some(township.to_string()), None);
            got.sort();
            let mut want = in_township.clone();
            want.sort();
            assert_eq!(got, want, "round {round}: township {township}");
            let mut got = list(&rig, None, Some(grid.clone()));
            got.sort();
            let mut want: Vec<CaseId> = cases
                .iter()
                .filter(|x| x.case().id != cases[0].case().id && x.case().grid() == Some(grid.as_str()))
                .map(|x| x.case().id)
                .collect();
            want.sort();
            assert_eq!(got, want, "round {round}: grid {grid}");
            // Both filters: the grid's cases, if the grid is in the township.
            assert_eq!(list(&rig, Some(township.to_string()), Some(grid.clone())).len(), want.len());
        }
        // A cursor at or past now (a deadline not yet due, or any a client
        // makes up) is an empty page for OVERDUE; for PULL, one past every
        // deadline is, and one at now lists only what is due later.
        let far = format!("{}.{}", i64::MAX, CaseId(uuid::Uuid::max()));
        let now = format!("{}.{}", gridline_engine::Clock::now(&*rig.clock).0, CaseId(uuid::Uuid::nil()));
        for after in [far, now] {
            let page = gridline_model::Page { limit: Some(2), after: Some(after.clone()) };
            let cmd = Command::Overdue { township: None, grid: None, page: page.clone() };
            assert!(
                matches!(rig.call(&sup, cmd), Ok(Reply::Cases { cases, next: None }) if cases.is_empty()),
                "OVERDUE after {after}"
            );
            let cmd = Command::Pull { worker: Some(cases[0].case().worker().unwrap().into()), page };
            let r = rig.call(&sup, cmd);
            if after.starts_with(&i64::MAX.to_string()) {
                // Past every deadline: past the end of any worker's list.
                assert!(
                    matches!(&r, Ok(Reply::Cases { cases, next: None }) if cases.is_empty()),
                    "PULL after {after}: {r:?}"
                );
            } else {
                // A worker's list goes on past now (cases not yet due):
                // only what is due later than the cursor.
                let Ok(Reply::Cases { cases: listed, .. }) = &r else { panic!("PULL after {after}: {r:?}") };
                let now = gridline_engine::Clock::now(&*rig.clock);
                for c in listed {
                    let due = match c.case().status {
                        Status::Dispatched => c.case().due_claim,
                        _ => c.case().due_close,
                    };
                    assert!(due.is_some_and(|d| d >= now), "PULL after {after} lists {:?}", c.case().no);
                }
            }
        }
        // The indexes are rebuilt from the log at start: the same answers.
        rig = rig.crash_and_restart();
    }
}

#[test]
fn a_case_whose_address_names_only_its_township_is_audited_under_that_township() {
    let rig = Rig::new();
    let intake = Intake {
        text: "路灯坏了".into(),
        location: Location {
            address: Some("鸡东镇，具体位置说不清".into()), ..Default::default()
        },
        ..Default::default()
    };
    let Reply::Accepted { case, .. } =
        rig.call(&caller(Role::Operator, "op"), Command::Accept(intake)).unwrap()
    else {
        panic!()
    };
    // No grid: it waits at the command centre, but its township is known.
    assert_eq!((case.case().status, case.case().township.as_deref()), (Status::Accepted, Some("JDZ")));
    let sup = caller(Role::Supervisor, "sup");
    let Reply::Rows(rows) = rig
        .call(&sup, Command::Audit { by: gridline_model::AuditBy::Township, from: None, to: None })
        .unwrap()
    else {
        panic!()
    };
    let labels: Vec<&str> = rows.iter().map(|r| r[0].1.as_str()).collect();
    assert_eq!(labels, ["JDZ", "total"]);
}

/// A request id is the operator's own: another operator's `req=` of the same
/// text is a different request, and one operator's `req=` reused for a
/// different request is refused rather than answered with the first case.
#[test]
fn request_ids_are_per_operator_and_a_reused_one_must_be_the_same_request() {
    let rig = Rig::new();
    let grid = rig.accept_at_grid("first").grid().unwrap().to_string();
    let intake = |text: &str| Intake {
        text: text.into(),
        location: Location { grid: Some(grid.as_str().into()), ..Default::default() },
        req: Some("1".into()),
        ..Default::default()
    };
    let (a, b) = (caller(Role::Operator, "seat-a"), caller(Role::Operator, "seat-b"));
    let accepted = |r: Result<Reply, gridline_model::Error>| match r.unwrap() {
        Reply::Accepted { case, duplicate, .. } => (case, duplicate),
        r => panic!("{r:?}"),
    };
    let (first, dup) = accepted(rig.call(&a, Command::Accept(intake("路灯不亮"))));
    assert!(!dup);
    let (other, dup) = accepted(rig.call(&b, Command::Accept(intake("水管漏水"))));
    assert!(!dup, "seat-b's req=1 is its own request");
    assert_ne!(other.case().id, first.case().id);
    assert_eq!(other.case().intake.text, "水管漏水");
    // The retry: the same request again is the same case.
    let (again, dup) = accepted(rig.call(&a, Command::Accept(intake("路灯不亮"))));
    assert!(dup);
    assert_eq!(again.case().id, first.case().id);
    // The same id for a different request: refused, naming the case.
    let err = rig.call(&a, Command::Accept(intake("噪音扰民"))).unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err:?}");
    assert!(
        err.message.contains(first.case().no.as_str()) && err.message.contains("req=1"),
        "{}",
        err.message
    );
    // Rebuilt at start the same way.
    let rig = rig.crash_and_restart();
    let (again, dup) = accepted(rig.call(&b, Command::Accept(intake("水管漏水"))));
    assert!(dup);
    assert_eq!(again.case().id, other.case().id);
    assert_eq!(rig.call(&b, Command::Accept(intake("路灯不亮"))).unwrap_err().code, ErrorCode::Conflict);
    // A category named by another of its names is the same request
    // (helper-62: `category=供水` after `category=water` was refused);
    // another category is not.
    let with = |category: &str| Intake {
        category: Some(category.into()),
        req: Some("2".into()),
        ..intake("停水了")
    };
    let (water, _) = accepted(rig.call(&a, Command::Accept(with("water"))));
    for name in ["供水", "water"] {
        let (again, dup) = accepted(rig.call(&a, Command::Accept(with(name))));
        assert!(dup, "{name}");
        assert_eq!(again.case().id, water.case().id);
    }
    assert_eq!(rig.call(&a, Command::Accept(with("heating"))).unwrap_err().code, ErrorCode::Conflict);
}

/// REVOKE's promise: once the engine says a token is revoked, no request
/// made with it is carried out any more. A request the server handed over
/// before is done (and answered) first; one that reaches the engine after,
/// having passed the server's own check a moment before the revocation,
/// is refused, read or write.
#[test]
fn after_a_revocation_no_request_of_the_token_is_carried_out() {
    let rig = Rig::new();
    let case = rig.accept_at_grid("撤销之前");
    let w = worker(case.worker().unwrap());
    let engine = rig.engine.as_ref().unwrap();
    let note = |text: &str| Command::Note { case: CaseRef::Id(case.id), text: text.into(), req: None };
    let before = engine.submit(w.clone(), note("before")).unwrap();
    engine.revoke(&w.name).unwrap();
    let mut before = before;
    let answered = before.try_recv().expect("answered before the revocation returned");
    assert!(answered.is_ok(), "{answered:?}");
    for cmd in [
        note("after"),
        Command::Get { case: CaseRef::Id(case.id) },
        Command::Claim { case: CaseRef::Id(case.id) },
    ] {
        let e = rig.call(&w, cmd).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthenticated, "{e:?}");
        assert!(e.message.contains("revoked"), "{e:?}");
    }
    // Other tokens are untouched, and the case holds the one note.
    let Reply::Detail { events, .. } =
        rig.call(&caller(Role::Supervisor, "sup"), Command::Get { case: CaseRef::Id(case.id) }).unwrap()
    else {
        panic!()
    };
    let notes = events.iter().filter(|e| matches!(e.kind, gridline_model::EventKind::Noted { .. })).count();
    assert_eq!(notes, 1);
}

/// With a clock that moves only when told, the engine does not look at
/// deadlines at a moment of its own choosing: a test that moves the clock
/// past a deadline and then ticks counts that tick's events, however long
/// it takes between the two. (The engine used to wake within a second and
/// write them itself, a race that failed the escalation test now and then.)
#[test]
fn with_a_manual_clock_deadlines_fire_only_when_told() {
    let rig = Rig::new();
    let case = rig.accept_at_grid("等一等");
    rig.clock.set(Timestamp(case.due_claim.unwrap().0 + 1000));
    // Longer than the engine's longest wait between looks at its timers.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(rig.tick(), 2, "overdue + escalated, written by this tick");
}

/// A clock that moves on by `step` ms at every reading, as a real one does
/// between two readings.
struct Stepping {
    ms: std::sync::atomic::AtomicI64,
    step: std::sync::atomic::AtomicI64,
}

impl gridline_engine::Clock for Stepping {
    fn now(&self) -> Timestamp {
        use std::sync::atomic::Ordering::SeqCst;
        Timestamp(self.ms.fetch_add(self.step.load(SeqCst), SeqCst))
    }
    fn passes_by_itself(&self) -> bool {
        false
    }
}

/// A command reads the clock once: the check that its case's claim
/// deadline has not passed and the time of its claim agree. With a reading
/// for each, a claim at the deadline's very millisecond was stamped a
/// moment after it: late, with no missed deadline recorded.
#[test]
fn a_command_judges_and_stamps_at_one_time() {
    use std::sync::atomic::Ordering::SeqCst;
    let reg = registry();
    let clock = std::sync::Arc::new(Stepping { ms: ten_am().0.into(), step: 0.into() });
    let log = CaseLog::open(gridline_caselog::MemStore::new(), Some(&reg.county.code)).unwrap();
    let (engine, thread) =
        gridline_engine::start(reg.clone(), log, clock.clone(), gridline_engine::EngineConfig::default())
            .unwrap();
    let grid = reg.grids.iter().find(|g| g.kind != gridline_registry::GridKind::Dedicated).unwrap();
    let intake = Intake {
        text: "垃圾没人清运".into(),
        category: Some("sanitation".into()),
        location: Location { grid: Some(grid.code.clone().into()), ..Default::default() },
        ..Default::default()
    };
    let Reply::Accepted { case, .. } =
        engine.call(&caller(Role::Operator, "operator"), Command::Accept(intake)).unwrap()
    else {
        panic!()
    };
    let case = case.case().clone();
    let due = case.due_claim.unwrap();
    clock.ms.store(due.0, SeqCst);
    clock.step.store(1, SeqCst);
    let Reply::Case(c) =
        engine.call(&worker(case.worker().unwrap()), Command::Claim { case: CaseRef::Id(case.id) }).unwrap()
    else {
        panic!()
    };
    let c = c.case();
    assert_eq!(
        (c.responded_on_time, c.overdue_claim),
        (Some(true), false),
        "claimed at {:?}, due {due:?}",
        c.claimed_at
    );
    drop(engine);
    thread.join();
}

/// `NOTE ... req=`: a retry (the reply lost with its connection) is not
/// stored twice, before or after a restart; the same id with another text
/// is refused; a case remembers its latest `NOTE_REQS_KEPT` ids.
#[test]
fn a_retried_note_is_stored_once() {
    use gridline_model::{EventKind, NOTE_REQS_KEPT};
    let rig = Rig::new();
    let case = rig.accept_at_grid("路灯不亮");
    let w = worker(case.worker().unwrap());
    let note = |text: &str, req: &str| Command::Note {
        case: CaseRef::Id(case.id),
        text: text.into(),
        req: Some(req.into()),
    };
    let notes = |rig: &Rig| -> Vec<String> {
        let (_, events) = rig.get(case.no.as_str());
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::NotedReq { text, req } => Some(format!("{req}:{text}")),
                EventKind::Noted { text } => Some(text.to_string()),
                _ => None,
            })
            .collect()
    };
    for _ in 0..3 {
        let Reply::Case(c) = rig.call(&w, note("到现场", "n-1")).unwrap() else { panic!() };
        assert_eq!(c.case().last_seq, 3, "accepted, dispatched, one note");
    }
    assert_eq!(notes(&rig), ["n-1:到现场"]);
    let e = rig.call(&w, note("另一条", "n-1")).unwrap_err();
    assert_eq!(e.code, ErrorCode::Conflict, "{e:?}");
    assert!(e.message.contains("req=n-1") && e.message.contains(case.no.as_str()), "{e:?}");
    // Without req= every NOTE is a new one, as before.
    rig.call(&w, Command::Note { case: CaseRef::Id(case.id), text: "到现场".into(), req: None }).unwrap();
    rig.call(&w, Command::Note { case: CaseRef::Id(case.id), text: "到现场".into(), req: None }).unwrap();
    assert_eq!(notes(&rig).len(), 3);

    // Remembered across a restart: the case record keeps the ids.
    let rig = rig.crash_and_restart();
    rig.call(&w, note("到现场", "n-1")).unwrap();
    assert_eq!(notes(&rig).len(), 3);
    let (c, _) = rig.get(case.no.as_str());
    assert_eq!(c.note_reqs.as_ref().map(|n| n.len()), Some(1));

    // The latest NOTE_REQS_KEPT are kept: the first is forgotten after that many more.
    for i in 0..NOTE_REQS_KEPT {
        rig.call(&w, note("进展", &format!("m-{i}"))).unwrap();
    }
    let (c, _) = rig.get(case.no.as_str());
    let kept: Vec<&str> = c.note_reqs.as_ref().unwrap().iter().map(|n| n.req.as_str()).collect();
    assert_eq!(kept.len(), NOTE_REQS_KEPT);
    assert_eq!(kept[0], "m-0");
    rig.call(&w, note("进展", &format!("m-{}", NOTE_REQS_KEPT - 1))).unwrap();
    assert_eq!(notes(&rig).len(), 3 + NOTE_REQS_KEPT);
    rig.call(&w, note("到现场", "n-1")).unwrap();
    assert_eq!(notes(&rig).len(), 4 + NOTE_REQS_KEPT, "forgotten: stored again");
    // The state in memory is the fold of the events, and what a restart reads.
    let (c, events) = rig.get(case.no.as_str());
    let mut folded = gridline_model::Case::from_events(&events).unwrap().unwrap();
    folded.stored_page = c.stored_page.clone();
    assert_eq!(c, folded);
    let rig = rig.crash_and_restart();
    assert_eq!(rig.get(case.no.as_str()).0, c);

    // Closing forgets the ids: a closed case carries no bytes for them, and a
    // retry from before the close is refused by the case's state.
    rig.call(&w, Command::Claim { case: CaseRef::Id(case.id) }).unwrap();
    rig.call(&w, Command::Close { case: CaseRef::Id(case.id), result: "修好了".into() }).unwrap();
    assert_eq!(rig.get(case.no.as_str()).0.note_reqs, None);
    assert_eq!(rig.call(&w, note("到现场", "n-1")).unwrap_err().code, ErrorCode::Conflict);
    let rig = rig.crash_and_restart();
    assert_eq!(rig.get(case.no.as_str()).0.note_reqs, None);
}
