//! A county-wide audit over 1,000,000 cases.
//!
//! `cargo bench --bench audit`. The cases are real records: each is folded
//! through the lifecycle (`Case::from_first` + `apply`) from a deterministic
//! pseudo-random history over a year (waiting, dispatched, claimed late or
//! on time, returned, extended, closed late or on time, visited, reopened),
//! spread over 20 townships, 626 grids, 2,491 workers, 10 departments and 24
//! categories, and held in a `HashMap<CaseId, Case>` as the engine holds
//! them. Each iteration is one `gridline_audit::audit` call, rows included.
//! Results go in `docs/performance.md` (## Audit). `AUDIT_CASES=N` changes
//! the number of cases.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use gridline_audit::{audit, Query};
use gridline_model::{
    Actor, AuditBy, Case, CaseId, CaseNo, Deadline, Event, EventKind, Intake, Role, Timestamp,
};

const CASES_DEFAULT: usize = 1_000_000;
const TOWNSHIPS: usize = 20;
const GRIDS: usize = 626;
const WORKERS: usize = 2_491;
const DEPARTMENTS: usize = 10;
const CATEGORIES: usize = 24;

const MIN_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// 2026-11-24 10:00 at +08:00: "now" for the audit; cases span the year before.
const NOW: Timestamp = Timestamp(1_795_485_600_000);
const OFFSET_MIN: i32 = 480;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// True with probability `pct` percent.
    fn pct(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
    fn ms(&mut self, max_ms: i64) -> i64 {
        (self.next() % max_ms.max(1) as u64) as i64
    }
}

struct Names {
    townships: Vec<String>,
    grids: Vec<String>,
    workers: Vec<String>,
    departments: Vec<String>,
    categories: Vec<String>,
}

impl Names {
    fn new() -> Names {
        let n = |prefix: &str, count: usize, width: usize| -> Vec<String> {
            (0..count).map(|i| format!("{prefix}{i:0width$}")).collect()
        };
        Names {
            townships: n("T", TOWNSHIPS, 2),
            grids: n("G", GRIDS, 4),
            workers: n("W", WORKERS, 5),
            departments: n("D", DEPARTMENTS, 2),
            categories: n("C", CATEGORIES, 2),
        }
    }
}

/// Folds events into one case, asserting the lifecycle accepts each.
struct Fold {
    case: Case,
}

impl Fold {
    fn push(&mut self, at: i64, actor: Actor, kind: EventKind) {
        let e = Event { case: self.case.id, seq: self.case.last_seq + 1, at: Timestamp(at), actor, kind };
        self.case.apply(&e).expect("the synthetic history is a valid lifecycle");
    }

    fn worker(&self) -> Actor {
        Actor { role: Role::Worker, name: self.case.worker().expect("assigned").to_string().into() }
    }
}

/// One case with a plausible random history, received in the year before `NOW`.
fn synth(rng: &mut Rng, names: &Names, n: usize) -> Case {
    let received = NOW.0 - 1 - rng.ms(365 * DAY_MS);
    let recent = NOW.0 - received < 7 * DAY_MS;
    let worker_ix = rng.below(WORKERS);
    let grid_ix = worker_ix % GRIDS;
    let township = &names.townships[grid_ix % TOWNSHIPS];
    let first = Event {
        case: CaseId::new_at(Timestamp(received)),
        seq: 1,
        at: Timestamp(received),
        actor: Actor { role: Role::Operator, name: "op".into() },
        kind: EventKind::Accepted {
            no: CaseNo::new("JD", Timestamp(received).day_number(OFFSET_MIN), n as u32 % 1_000_000),
            intake: Intake { text: "市民反映问题".into(), ..Intake::default() },
            category: names.categories[rng.below(CATEGORIES)].clone().into(),
            township: Some(township.clone().into()),
        },
    };
    let mut f = Fold { case: Case::from_first(&first).expect("accepted") };
    let sys = Actor::system;
    let mut t = received;
    // 3% of last week's cases wait at the command centre.
    if recent && rng.pct(3) {
        f.push(t, sys(), EventKind::Waiting { reason: "no grid".into() });
        return f.case;
    }
    let department = rng.pct(30).then(|| names.departments[rng.below(DEPARTMENTS)].clone());
    let dispatch = |f: &mut Fold, t: i64, w: usize| {
        f.push(
            t,
            sys(),
            EventKind::Dispatched {
                grid: names.grids[w % GRIDS].clone().into(),
                township: township.clone().into(),
                worker: names.workers[w].clone().into(),
                department: department.clone().map(Into::into),
                rule: "grid".into(),
                reason: "synthetic".into(),
                due_claim: Timestamp(t + 2 * HOUR_MS),
                due_close: Timestamp(t + 72 * HOUR_MS),
            },
        )
    };
    let mut worker_ix = worker_ix;
    dispatch(&mut f, t, worker_ix);
    // 4% are returned and go to another worker.
    if rng.pct(4) {
        t += rng.ms(3 * HOUR_MS) + MIN_MS;
        let w = f.worker();
        f.push(t, w, EventKind::Returned { reason: "not mine".into() });
        worker_ix = (worker_ix + GRIDS) % WORKERS;
        dispatch(&mut f, t, worker_ix);
    }
    let mut rounds = 0;
    loop {
        rounds += 1;
        let due_claim = f.case.due_claim.expect("dispatched").0;
        // Claimed within 3 h (so some late), but 15% of last week's cases and
        // 1% of older ones sit unclaimed.
        let claim_at = t + rng.ms(3 * HOUR_MS) + MIN_MS;
        if !rng.pct(if recent { 85 } else { 99 }) || claim_at >= NOW.0 {
            if due_claim < NOW.0 && rng.pct(80) {
                f.push(
                    due_claim,
                    sys(),
                    EventKind::Overdue { deadline: Deadline::Claim, due: Timestamp(due_claim) },
                );
            }
            return f.case;
        }
        t = claim_at;
        let w = f.worker();
        f.push(t, w.clone(), EventKind::Claimed);
        // 5% ask for more time; 70% of those are approved.
        if rng.pct(5) {
            let until = f.case.due_close.expect("dispatched").0 + 48 * HOUR_MS;
            f.push(
                t + MIN_MS,
                w.clone(),
                EventKind::ExtensionRequested { until: Timestamp(until), reason: "parts".into() },
            );
            let approved = rng.pct(70);
            let supervisor = Actor { role: Role::Supervisor, name: "sup".into() };
            f.push(
                t + 2 * MIN_MS,
                supervisor,
                EventKind::ExtensionDecided { approved, until: Timestamp(until), reason: None },
            );
            t += 2 * MIN_MS;
        }
        // Closing takes up to 4 days (some late); 30% of last week's cases and
        // 2% of older ones are still being handled.
        let close_at = t + rng.ms(96 * HOUR_MS) + MIN_MS;
        let due_close = f.case.due_close.expect("dispatched").0;
        if rng.pct(if recent { 30 } else { 2 }) || close_at >= NOW.0 {
            if due_close < NOW.0 {
                f.push(
                    due_close.max(t),
                    sys(),
                    EventKind::Overdue { deadline: Deadline::Close, due: Timestamp(due_close) },
                );
            }
            return f.case;
        }
        t = close_at;
        f.push(t, w, EventKind::Closed { result: "done".into() });
        // 85% get a return visit a day later; 8% of those are unsatisfied and reopen.
        let visit_at = t + DAY_MS;
        if !rng.pct(85) || visit_at >= NOW.0 {
            return f.case;
        }
        t = visit_at;
        let satisfied = rounds > 1 || !rng.pct(8);
        let operator = Actor { role: Role::Operator, name: "op".into() };
        let score = Some(if satisfied { 5 } else { 2 });
        f.push(t, operator.clone(), EventKind::Feedback { satisfied, score, text: None });
        if satisfied {
            return f.case;
        }
        f.push(t, operator, EventKind::Reopened { reason: "unsatisfied".into() });
        t += HOUR_MS;
        if t >= NOW.0 {
            return f.case;
        }
        dispatch(&mut f, t, worker_ix);
    }
}

fn cases(n: usize) -> HashMap<CaseId, Case> {
    let names = Names::new();
    let mut rng = Rng(0x5EED_0000_0000_0006);
    (0..n).map(|i| synth(&mut rng, &names, i)).map(|c| (c.id, c)).collect()
}

fn bench(c: &mut Criterion) {
    let n = std::env::var("AUDIT_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(CASES_DEFAULT);
    let t0 = Instant::now();
    let cases = cases(n);
    eprintln!("built {} cases through the lifecycle in {:.1?}", cases.len(), t0.elapsed());
    let query = |by| Query { by, from: None, to: None, now: NOW, utc_offset_min: OFFSET_MIN };
    // A look at the figures, so the bench shows plausible numbers.
    for row in audit(cases.values(), &query(AuditBy::County)) {
        eprintln!("{}", row.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
    }
    let mut g = c.benchmark_group(format!("audit_{n}_cases"));
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for by in [AuditBy::County, AuditBy::Township, AuditBy::Worker, AuditBy::Month] {
        let q = query(by);
        g.bench_function(format!("by_{}", by.as_str()), |b| b.iter(|| black_box(audit(cases.values(), &q))));
    }
    let last_month = Query { from: Some(Timestamp(NOW.0 - 30 * DAY_MS)), ..query(AuditBy::Township) };
    g.bench_function("by_township_last_30_days", |b| {
        b.iter(|| black_box(audit(cases.values(), &last_month)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
