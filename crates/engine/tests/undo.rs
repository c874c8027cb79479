//! Review of the undo path and the rebuilt indexes: a failed commit leaves
//! every observable index (worker queues and loads, deadlines, OVERDUE,
//! request ids, routing's loads, audit) as it was; a restart rebuilds the
//! same state; every case stays the fold of its events. `SEEDS=40` runs
//! more random histories.

mod common;

use common::*;
use gridline_caselog::{Faults, Gate};
use gridline_model::{
    AuditBy, Caller, CaseRef, Command, DurationMs, ErrorCode, Intake, Location, Page, Reply, Role, Timestamp,
};

fn sup() -> Caller {
    caller(Role::Supervisor, "sup")
}

fn snapshot(rig: &Rig) -> String {
    rig.tick();
    let mut out = String::new();
    for w in &rig.reg.workers {
        let cmd = Command::Pull { worker: Some(w.id.clone()), page: Page { limit: Some(1000), after: None } };
        let Reply::Cases { cases, next } = rig.call(&sup(), cmd).unwrap() else { panic!() };
        for c in cases {
            out += &format!(
                "{} {} {:?} {:?} {:?} {:?} {}\n",
                w.id,
                c.case().no,
                c.case().status,
                c.case().due_claim,
                c.case().due_close,
                c.case().worker(),
                c.case().escalation_level
            );
        }
        assert!(next.is_none());
    }
    let cmd = Command::Overdue { township: None, grid: None, page: Page { limit: Some(1000), after: None } };
    let Reply::Cases { cases, .. } = rig.call(&sup(), cmd).unwrap() else { panic!() };
    for c in cases {
        out += &format!("overdue {}\n", c.case().no);
    }
    for by in [AuditBy::Worker, AuditBy::County] {
        let Reply::Rows(rows) = rig.call(&sup(), Command::Audit { by, from: None, to: None }).unwrap() else {
            panic!()
        };
        out += &format!("{rows:?}\n");
    }
    for g in rig.reg.grids.iter().take(30) {
        let intake = Intake {
            text: "垃圾没人清运".into(),
            category: Some("sanitation".into()),
            location: Location { grid: Some(g.code.clone().into()), ..Default::default() },
            ..Default::default()
        };
        let Reply::Routed(d) = rig.call(&caller(Role::Operator, "op"), Command::Route(intake)).unwrap()
        else {
            panic!()
        };
        out += &format!("{:?} {:?}\n", d.worker, d.steps);
    }
    out
}

fn intake(grid: &str, text: &str, req: &str) -> Intake {
    Intake {
        text: text.into(),
        category: Some("sanitation".into()),
        location: Location { grid: Some(grid.into()), ..Default::default() },
        req: Some(req.into()),
        ..Default::default()
    }
}

/// Eight cases accepted at grids: case 0 claimed, case 1 claimed and
/// closed, case 2 claimed with an extension pending, the rest dispatched.
fn eight_cases_in_several_states(rig: &Rig) -> Vec<gridline_model::Case> {
    let cases: Vec<_> = (0..8).map(|i| rig.accept_at_grid(&format!("c{i}"))).collect();
    let r = |i: usize| CaseRef::Id(cases[i].id);
    let w = |i: usize| worker(cases[i].worker().unwrap());
    rig.call(&w(0), Command::Claim { case: r(0) }).unwrap();
    rig.call(&w(1), Command::Claim { case: r(1) }).unwrap();
    rig.call(&w(1), Command::Close { case: r(1), result: "ok".into() }).unwrap();
    rig.call(&w(2), Command::Claim { case: r(2) }).unwrap();
    let later = Timestamp(cases[2].due_close.unwrap().0 + 86_400_000).rfc3339(480);
    rig.call(&w(2), Command::Extend { case: r(2), until: later, reason: "x".into() }).unwrap();
    cases
}

#[test]
fn failed_batch_restores_every_index() {
    let rig = Rig::new();
    let op = caller(Role::Operator, "op");
    // Some claimed, one closed, one with a pending extension, time past some deadlines.
    let cases = eight_cases_in_several_states(&rig);
    let r = |i: usize| CaseRef::Id(cases[i].id);
    let w = |i: usize| worker(cases[i].worker().unwrap());
    let claim_limit = cases[3].due_claim.unwrap().since(cases[3].received_at);
    rig.clock.advance(DurationMs(claim_limit.0 / 2));
    rig.tick();
    let before = snapshot(&rig);

    let gate = Gate::new();
    rig.store.set_faults(Faults { hold_sync: Some(gate.clone()), ..Default::default() });
    let engine = rig.engine.as_ref().unwrap();
    let grid = cases[0].grid().unwrap().to_string();
    let mut rx = Vec::new();
    rx.push(engine.submit(op.clone(), Command::Accept(intake(&grid, "new", "n1"))).unwrap());
    wait_until("first sync held", || gate.waiting() == 1);
    rx.push(engine.submit(w(3), Command::Return { case: r(3), reason: "no".into() }).unwrap());
    rx.push(engine.submit(w(0), Command::Close { case: r(0), result: "done".into() }).unwrap());
    rx.push(
        engine
            .submit(op.clone(), Command::Feedback { case: r(1), satisfied: false, score: None, text: None })
            .unwrap(),
    );
    rx.push(
        engine.submit(sup(), Command::DecideExtension { case: r(2), approve: true, reason: None }).unwrap(),
    );
    let other = rig
        .reg
        .workers
        .iter()
        .find(|x| x.grid.is_some() && x.department.is_none() && Some(x.id.as_str()) != cases[4].worker())
        .unwrap();
    rx.push(engine.submit(sup(), Command::Dispatch { case: r(4), worker: other.id.clone() }).unwrap());
    rx.push(engine.submit(op.clone(), Command::Accept(intake(&grid, "new", "n1"))).unwrap());
    rig.clock.advance(DurationMs(claim_limit.0));
    let t = {
        let e = engine.clone();
        std::thread::spawn(move || e.tick())
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    rig.store.set_faults(Faults {
        fail_sync_in: Some(1),
        hold_sync: Some(gate.clone()),
        ..Default::default()
    });
    gate.open();
    for x in rx {
        let r = x.blocking_recv().unwrap();
        assert_eq!(r.unwrap_err().code, ErrorCode::Unavailable);
    }
    let _ = t.join();
    rig.store.set_faults(Faults::default());
    rig.clock.advance(DurationMs(-claim_limit.0));
    let after = snapshot(&rig);
    assert_eq!(before, after);
    let rig = rig.crash_and_restart();
    let restarted = snapshot(&rig);
    assert_eq!(before, restarted);
    // Retry: one case, a fresh number.
    let Reply::Accepted { case, duplicate: false, .. } =
        rig.call(&op, Command::Accept(intake(&grid, "new", "n1"))).unwrap()
    else {
        panic!()
    };
    let Reply::Accepted { case: c2, duplicate: true, .. } =
        rig.call(&op, Command::Accept(intake(&grid, "new", "n1"))).unwrap()
    else {
        panic!()
    };
    assert_eq!(case.case().id, c2.case().id);
}

#[test]
fn successful_lifecycle_memory_equals_restart() {
    let rig = Rig::new();
    let op = caller(Role::Operator, "op");
    let cases = eight_cases_in_several_states(&rig);
    let r = |i: usize| CaseRef::Id(cases[i].id);
    let w = |i: usize| worker(cases[i].worker().unwrap());
    let claim_limit = cases[3].due_claim.unwrap().since(cases[3].received_at);
    rig.clock.advance(DurationMs(claim_limit.0 + 1000));
    rig.tick();
    rig.call(&w(3), Command::Return { case: r(3), reason: "no".into() }).unwrap();
    rig.call(&w(0), Command::Close { case: r(0), result: "done".into() }).unwrap();
    rig.call(&op, Command::Feedback { case: r(1), satisfied: false, score: None, text: None }).unwrap();
    rig.call(&sup(), Command::DecideExtension { case: r(2), approve: true, reason: None }).unwrap();
    let other = rig
        .reg
        .workers
        .iter()
        .find(|x| x.grid.is_some() && x.department.is_none() && Some(x.id.as_str()) != cases[4].worker())
        .unwrap();
    rig.call(&sup(), Command::Dispatch { case: r(4), worker: other.id.clone() }).unwrap();
    rig.clock.advance(DurationMs(claim_limit.0 * 3));
    rig.tick();
    let before = snapshot(&rig);
    for c in &cases {
        let (got, events) = rig.get(c.no.as_str());
        let mut folded = gridline_model::Case::from_events(&events).unwrap().unwrap();
        folded.stored_page = got.stored_page.clone();
        assert_eq!(got, folded);
    }
    let rig = rig.crash_and_restart();
    assert_eq!(before, snapshot(&rig));
    assert_eq!(rig.tick(), 0);
}

#[test]
/// Keyset paging: a case claimed between pages moves to its close deadline
/// and may be listed again, but none is skipped.
fn pull_pages_with_claims_between() {
    let rig = Rig::new();
    let first = rig.accept_at_grid("c0");
    let w = worker(first.worker().unwrap());
    let mut mine = vec![first.id];
    for i in 1..12 {
        rig.clock.advance(DurationMs(60_000));
        let c = rig.accept_at_grid(&format!("c{i}"));
        if c.worker() == first.worker() {
            mine.push(c.id);
        }
    }
    let mut seen = Vec::new();
    let mut after = None;
    let mut k = 0;
    loop {
        let Reply::Cases { cases, next } = rig
            .call(&w, Command::Pull { worker: None, page: Page { limit: Some(2), after: after.take() } })
            .unwrap()
        else {
            panic!()
        };
        for c in &cases {
            seen.push(c.case().id);
        }
        // Claim everything on this page: a case dispatched to the worker is
        // claimed; one claimed on an earlier page and listed again (now at
        // its close deadline) is refused, as a case in hand already.
        for c in &cases {
            let r = rig.call(&w, Command::Claim { case: CaseRef::Id(c.case().id) });
            match c.case().status {
                gridline_model::Status::Dispatched => {
                    let Ok(Reply::Case(got)) = &r else { panic!("claim of {}: {r:?}", c.case().no) };
                    assert_eq!(got.case().status, gridline_model::Status::Handling);
                }
                _ => assert!(
                    matches!(&r, Err(e) if e.code == ErrorCode::Conflict),
                    "claim of {} ({:?}) again: {r:?}",
                    c.case().no,
                    c.case().status
                ),
            }
        }
        k += 1;
        if k > 50 {
            panic!("loop")
        }
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    for id in &mine {
        assert!(seen.contains(id));
    }
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn random_run(seed: u64) {
    let mut rig = Rig::new();
    let mut rng = Lcg(seed);
    let op = caller(Role::Operator, "op");
    let grids: Vec<String> = rig
        .reg
        .grids
        .iter()
        .filter(|g| g.kind != gridline_registry::GridKind::Dedicated)
        .take(4)
        .map(|g| g.code.clone())
        .collect();
    let mut ids: Vec<gridline_model::CaseId> = Vec::new();
    for step in 0..300 {
        let fail = rng.below(8) == 0;
        let before = if fail { Some(snapshot(&rig)) } else { None };
        if fail {
            rig.store.set_faults(Faults { fail_sync_in: Some(1), ..Default::default() });
        }
        let pick = rng.below(12);
        let case = if ids.is_empty() { None } else { Some(ids[rng.below(ids.len())]) };
        let cur = case.map(|id| match rig.call(&sup(), Command::Get { case: CaseRef::Id(id) }).unwrap() {
            Reply::Detail { case, .. } => case,
            _ => panic!(),
        });
        let res = match (pick, &cur) {
            (0..=2, _) | (_, None) => {
                let g = &grids[rng.below(grids.len())];
                let req = format!("r{}", rng.below(40));
                let text = format!("t{}", rng.below(3));
                let r = rig.call(&op, Command::Accept(intake(g, &text, &req)));
                if let Ok(Reply::Accepted { case, .. }) = &r {
                    if !ids.contains(&case.case().id) {
                        ids.push(case.case().id);
                    }
                }
                r
            }
            (3, Some(c)) if rng.below(2) == 0 => rig.call(
                &worker(c.case().worker().unwrap_or("W00001")),
                Command::Claim { case: CaseRef::Id(c.case().id) },
            ),
            (3, Some(c)) => rig.call(
                &worker(c.case().worker().unwrap_or("W00001")),
                Command::Note {
                    case: CaseRef::Id(c.case().id),
                    text: format!("n{}", rng.below(2)),
                    req: Some(format!("q{}", rng.below(12))),
                },
            ),
            (4, Some(c)) => rig.call(
                &worker(c.case().worker().unwrap_or("W00001")),
                Command::Close { case: CaseRef::Id(c.case().id), result: "ok".into() },
            ),
            (5, Some(c)) => rig.call(
                &worker(c.case().worker().unwrap_or("W00001")),
                Command::Return { case: CaseRef::Id(c.case().id), reason: "no".into() },
            ),
            (6, Some(c)) => rig.call(
                &op,
                Command::Feedback {
                    case: CaseRef::Id(c.case().id),
                    satisfied: rng.below(2) == 0,
                    score: None,
                    text: None,
                },
            ),
            (7, Some(c)) => {
                let until =
                    Timestamp(c.case().due_close.map_or(0, |d| d.0) + 3_600_000 * (1 + rng.below(48) as i64))
                        .rfc3339(480);
                rig.call(
                    &worker(c.case().worker().unwrap_or("W00001")),
                    Command::Extend { case: CaseRef::Id(c.case().id), until, reason: "x".into() },
                )
            }
            (8, Some(c)) => rig.call(
                &sup(),
                Command::DecideExtension {
                    case: CaseRef::Id(c.case().id),
                    approve: rng.below(2) == 0,
                    reason: None,
                },
            ),
            (9, Some(c)) => {
                let w = &rig.reg.workers[rng.below(rig.reg.workers.len())];
                rig.call(&sup(), Command::Dispatch { case: CaseRef::Id(c.case().id), worker: w.id.clone() })
            }
            (10, _) => {
                rig.clock.advance(DurationMs(60_000 * (1 + rng.below(240) as i64)));
                Ok(Reply::Fields(vec![]))
            }
            _ => {
                let n = rig.tick();
                Ok(Reply::Fields(vec![("n".into(), n.to_string())]))
            }
        };
        if let Some(before) = before {
            rig.store.set_faults(Faults::default());
            // A fault not consumed (a refusal or a read) is cleared; otherwise nothing changed.
            if matches!(&res, Err(e) if e.code == ErrorCode::Unavailable) || pick >= 10 {
                let after = snapshot(&rig);
                if pick < 10 || pick == 11 {
                    // A failed command, or a tick at the clock of the
                    // snapshot's own tick (nothing due): nothing changed.
                    assert_eq!(before, after, "seed {seed} step {step} pick {pick}");
                } else {
                    // The clock moved with a sync fault armed and cleared
                    // unused, and the snapshot's tick wrote what came due:
                    // what the engine holds is what the log holds.
                    rig = rig.crash_and_restart();
                    assert_eq!(after, snapshot(&rig), "seed {seed} step {step} pick {pick}: restart");
                }
            }
        }
        if step % 100 == 99 {
            rig.tick();
            let snap = snapshot(&rig);
            for id in &ids {
                let Reply::Detail { case: got, events, .. } =
                    rig.call(&sup(), Command::Get { case: CaseRef::Id(*id) }).unwrap()
                else {
                    panic!()
                };
                let mut folded = gridline_model::Case::from_events(&events).unwrap().unwrap();
                folded.stored_page = got.case().stored_page.clone();
                assert_eq!(*got.case(), folded, "seed {seed} step {step}");
            }
            rig = rig.crash_and_restart();
            assert_eq!(snap, snapshot(&rig), "seed {seed} step {step}: restart");
        }
    }
}

#[test]
fn random_runs() {
    let n: u64 = std::env::var("SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    for seed in 1..=n {
        random_run(seed);
    }
}

fn county(rx: gridline_engine::ReplyRx) -> Vec<gridline_model::Row> {
    match rx.blocking_recv().unwrap().unwrap() {
        Reply::Rows(rows) => rows,
        other => panic!("not rows: {other:?}"),
    }
}

/// An `AUDIT` is folded off the engine thread from a snapshot its batch
/// took: it sees the writes before it in the same batch, and when the batch
/// fails it is taken again from the rolled-back state.
#[test]
fn audit_sees_its_batch_and_is_taken_again_when_the_batch_fails() {
    let rig = Rig::new();
    let op = caller(Role::Operator, "op");
    let cases = eight_cases_in_several_states(&rig);
    let grid = cases[0].grid().unwrap().to_string();
    let audit = || Command::Audit { by: AuditBy::County, from: None, to: None };
    let received = |rows: &[gridline_model::Row]| {
        rows[0].iter().find(|(k, _)| k == "received").map(|(_, v)| v.clone()).unwrap()
    };
    let before = county(rig.engine.as_ref().unwrap().submit(sup(), audit()).unwrap());
    assert_eq!(received(&before), "8");

    // Held behind one sync, an ACCEPT and an AUDIT meet in one batch.
    let gate = Gate::new();
    rig.store.set_faults(Faults { hold_sync: Some(gate.clone()), ..Default::default() });
    let engine = rig.engine.as_ref().unwrap();
    let first = engine.submit(op.clone(), Command::Accept(intake(&grid, "one", "a1"))).unwrap();
    wait_until("first sync held", || gate.waiting() == 1);
    let second = engine.submit(op.clone(), Command::Accept(intake(&grid, "two", "a2"))).unwrap();
    let seen = engine.submit(sup(), audit()).unwrap();
    wait_until("both taken", || engine.queued() == 0);
    gate.open();
    assert!(first.blocking_recv().unwrap().is_ok());
    assert!(second.blocking_recv().unwrap().is_ok());
    let rows = county(seen);
    assert_eq!(received(&rows), "10");

    // The same, with the second batch's sync failing: the AUDIT is answered
    // from the state without its ACCEPT.
    let gate = Gate::new();
    rig.store.set_faults(Faults { hold_sync: Some(gate.clone()), ..Default::default() });
    let first = engine.submit(op.clone(), Command::Accept(intake(&grid, "three", "a3"))).unwrap();
    wait_until("first sync held again", || gate.waiting() == 1);
    let failed = engine.submit(op.clone(), Command::Accept(intake(&grid, "four", "a4"))).unwrap();
    let seen = engine.submit(sup(), audit()).unwrap();
    // Taken into a batch: the failure below reaches it whenever it comes.
    wait_until("both taken", || engine.queued() == 0);
    rig.store.set_faults(Faults {
        fail_sync_in: Some(1),
        hold_sync: Some(gate.clone()),
        ..Default::default()
    });
    gate.open();
    assert_eq!(first.blocking_recv().unwrap().unwrap_err().code, ErrorCode::Unavailable);
    assert_eq!(failed.blocking_recv().unwrap().unwrap_err().code, ErrorCode::Unavailable);
    let rows = county(seen);
    assert_eq!(received(&rows), "10");
    rig.store.set_faults(Faults::default());
}
