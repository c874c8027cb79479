//! Audit figures on hand-built cases, computed by hand.
//!
//! Every case is real: built with `Case::from_first` and `apply`, one event
//! at a time, as the engine builds them. Times are hours after
//! 2026-11-01T00:00+08:00 (`h0`); each dispatch gets a claim deadline 2 h
//! later and a close deadline 48 h later. `check` renders the rows as an
//! aligned table and compares it with the expected one.

use gridline_audit::{audit, header, Query};
use gridline_model::{
    Actor, AuditBy, Case, CaseId, CaseNo, Deadline, Event, EventKind, Intake, Role, Row, Timestamp,
};

const HOUR_MS: i64 = 3_600_000;

/// 2026-11-01T00:00:00+08:00.
fn t0() -> Timestamp {
    Timestamp::parse("2026-11-01", 480).unwrap()
}

/// `x` hours after `t0`.
fn h(x: i64) -> Timestamp {
    Timestamp(t0().0 + x * HOUR_MS)
}

/// A case under construction, one lifecycle event at a time.
struct Build {
    case: Case,
}

fn worker(name: &str) -> Actor {
    Actor { role: Role::Worker, name: name.into() }
}

fn supervisor() -> Actor {
    Actor { role: Role::Supervisor, name: "sup".into() }
}

fn operator() -> Actor {
    Actor { role: Role::Operator, name: "op".into() }
}

/// 受理 at `at` (an absolute time).
fn accept_at(n: u32, at: Timestamp, township: Option<&str>, category: &str) -> Build {
    let e = Event {
        case: CaseId::new_at(at),
        seq: 1,
        at,
        actor: operator(),
        kind: EventKind::Accepted {
            no: CaseNo::new("JD", at.day_number(480), n),
            intake: Intake { text: format!("case {n}").into(), ..Intake::default() },
            category: category.into(),
            township: township.map(Into::into),
        },
    };
    Build { case: Case::from_first(&e).unwrap() }
}

/// 受理 at `h(at)`.
fn accept(n: u32, at: i64, township: Option<&str>, category: &str) -> Build {
    accept_at(n, h(at), township, category)
}

impl Build {
    fn event_at(mut self, at: Timestamp, actor: Actor, kind: EventKind) -> Build {
        let e = Event { case: self.case.id, seq: self.case.last_seq + 1, at, actor, kind };
        self.case.apply(&e).unwrap_or_else(|err| panic!("{}: {err}", self.case.no));
        self
    }

    fn event(self, at: i64, actor: Actor, kind: EventKind) -> Build {
        self.event_at(h(at), actor, kind)
    }

    fn worker(&self) -> Actor {
        worker(self.case.worker().expect("assigned"))
    }

    /// 派单 to `worker` in `grid`: claim by `at + 2`, close by `at + 48`.
    fn dispatch(self, at: i64, grid: &str, w: &str, dept: Option<&str>) -> Build {
        let township = self.case.township.clone().unwrap_or_else(|| "T?".into());
        let kind = EventKind::Dispatched {
            grid: grid.into(),
            township,
            worker: w.into(),
            department: dept.map(Into::into),
            rule: "test".into(),
            reason: "test".into(),
            due_claim: h(at + 2),
            due_close: h(at + 48),
        };
        self.event(at, Actor::system(), kind)
    }

    fn claim(self, at: i64) -> Build {
        let w = self.worker();
        self.event(at, w, EventKind::Claimed)
    }

    fn close(self, at: i64) -> Build {
        let w = self.worker();
        self.event(at, w, EventKind::Closed { result: "done".into() })
    }

    fn ret(self, at: i64) -> Build {
        let w = self.worker();
        self.event(at, w, EventKind::Returned { reason: "not mine".into() })
    }

    fn feedback(self, at: i64, satisfied: bool) -> Build {
        self.event(at, operator(), EventKind::Feedback { satisfied, score: Some(4), text: None })
    }

    /// Unsatisfied feedback and the reopen it causes.
    fn complain(self, at: i64) -> Build {
        self.feedback(at, false).event(at, operator(), EventKind::Reopened { reason: "unsatisfied".into() })
    }

    fn overdue(self, at: i64, deadline: Deadline) -> Build {
        self.event(at, Actor::system(), EventKind::Overdue { deadline, due: h(at) })
    }

    fn extend(self, asked: i64, decided: i64, until: i64, approved: bool) -> Build {
        let w = self.worker();
        self.event(asked, w, EventKind::ExtensionRequested { until: h(until), reason: "parts".into() }).event(
            decided,
            supervisor(),
            EventKind::ExtensionDecided { approved, until: h(until), reason: None },
        )
    }

    fn done(self) -> Case {
        self.case
    }
}

/// The hand-built county. `now` is `h100`. Per case: group keys, then what
/// it adds to the figures (closure in hours; resp = in the response rate's
/// denominator, and whether on time).
fn county() -> Vec<Case> {
    vec![
        // A  T1 G1 W1 -     heating  closed on time (h10 <= h48), 10 h; resp on time; satisfied
        accept(1, 0, Some("T1"), "heating")
            .dispatch(0, "G1", "W1", None)
            .claim(1)
            .close(10)
            .feedback(11, true)
            .done(),
        // B  T1 G1 W2 -     heating  claimed late (h5 > h3); closed late at h60 (> h49), unsatisfied,
        //    reopened, re-dispatched to W2, closed again on time (h70 <= h110): closed, 69 h,
        //    on time (the last close), reopened, no visit since the re-close
        accept(2, 1, Some("T1"), "heating")
            .dispatch(1, "G1", "W1", None)
            .claim(5)
            .close(60)
            .complain(61)
            .dispatch(62, "G1", "W2", None)
            .claim(63)
            .close(70)
            .done(),
        // C  T1 G2 W2 water roads    never claimed, flagged claim-overdue at h4 and escalated:
        //    open, overdue; resp late
        accept(3, 2, Some("T1"), "roads")
            .dispatch(2, "G2", "W2", Some("water"))
            .overdue(4, Deadline::Claim)
            .event(
                4,
                Actor::system(),
                EventKind::Escalated { to: "L1".into(), level: 1, reason: "late".into() },
            )
            .done(),
        // D  T2 G3 W3 water heating  claimed on time, flagged close-overdue at h68: open, overdue
        accept(4, 20, Some("T2"), "heating")
            .dispatch(20, "G3", "W3", Some("water"))
            .claim(21)
            .overdue(68, Deadline::Close)
            .done(),
        // E  T2 G3 W3 -     roads    claimed on time, due to close h138: open, not overdue
        accept(5, 90, Some("T2"), "roads").dispatch(90, "G3", "W3", None).claim(91).done(),
        // F  T2 G3 W4 -     roads    returned by W3, re-dispatched to W4, first claim h33 <= h34,
        //    closed h40 (<= h80): 10 h on time; satisfied; returned
        accept(6, 30, Some("T2"), "roads")
            .dispatch(30, "G3", "W3", None)
            .ret(31)
            .dispatch(32, "G3", "W4", None)
            .claim(33)
            .close(40)
            .feedback(41, true)
            .done(),
        // G  -  -  -  -     roads    no township, waiting at the command centre: open, never dispatched
        accept(7, 96, None, "roads")
            .event(96, Actor::system(), EventKind::Waiting { reason: "no grid".into() })
            .done(),
        // H  T2 G3 W4 -     heating  not claimed, claim deadline h97 < h100 but no overdue event yet:
        //    open, overdue (by the clock); resp late
        accept(8, 95, Some("T2"), "heating").dispatch(95, "G3", "W4", None).done(),
        // I  T1 G2 W2 water heating  close due h88, extension to h120 approved: open, not overdue
        accept(9, 40, Some("T1"), "heating")
            .dispatch(40, "G2", "W2", Some("water"))
            .claim(41)
            .extend(80, 85, 120, true)
            .done(),
        // J  T1 G2 W2 water roads    close due h89, extension to h120 refused: open, overdue at h100
        accept(10, 41, Some("T1"), "roads")
            .dispatch(41, "G2", "W2", Some("water"))
            .claim(42)
            .extend(80, 85, 120, false)
            .done(),
        // K  T1 G1 W1 -     heating  received 2026-10-30T18:00+08:00 (h-30), closed h-10: 20 h on time
        accept(11, -30, Some("T1"), "heating").dispatch(-30, "G1", "W1", None).claim(-29).close(-10).done(),
        // L  T2 G3 W3 water roads    flagged close-overdue at h58, closed late at h70: 60 h, not on
        //    time; satisfied
        accept(12, 10, Some("T2"), "roads")
            .dispatch(10, "G3", "W3", Some("water"))
            .claim(11)
            .overdue(58, Deadline::Close)
            .close(70)
            .feedback(71, true)
            .done(),
        // M  T1 G1 W1 -     heating  closed on time h60, unsatisfied, reopened, back to W1, claimed:
        //    open (handling, due h114), not overdue; resp on time (first claim h51 <= h52);
        //    closed once, reopened; the unsatisfied visit counts
        accept(13, 50, Some("T1"), "heating")
            .dispatch(50, "G1", "W1", None)
            .claim(51)
            .close(60)
            .complain(65)
            .dispatch(66, "G1", "W1", None)
            .claim(67)
            .done(),
    ]
}

fn query(by: AuditBy) -> Query {
    Query { by, from: None, to: None, now: h(100), utc_offset_min: 480 }
}

/// Renders rows as a table: the group left-aligned, figures right-aligned.
fn render(rows: &[Row]) -> String {
    let Some(first) = rows.first() else { return "(no rows)\n".into() };
    let head: Vec<String> = first.iter().map(|(k, _)| k.clone()).collect();
    let mut table = vec![head];
    table.extend(rows.iter().map(|r| r.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>()));
    let widths: Vec<usize> =
        (0..table[0].len()).map(|i| table.iter().map(|r| r[i].chars().count()).max().unwrap()).collect();
    let mut out = String::new();
    for r in &table {
        let cells: Vec<String> =
            r.iter()
                .enumerate()
                .map(|(i, c)| {
                    if i == 0 {
                        format!("{c:<w$}", w = widths[i])
                    } else {
                        format!("{c:>w$}", w = widths[i])
                    }
                })
                .collect();
        out.push_str(cells.join(" ").trim_end());
        out.push('\n');
    }
    out
}

/// Strips the common indentation and the blank lines around an expected table.
fn dedent(s: &str) -> String {
    let lines: Vec<&str> = s.lines().skip_while(|l| l.trim().is_empty()).collect();
    let end = lines.iter().rposition(|l| !l.trim().is_empty()).map_or(0, |i| i + 1);
    let lines = &lines[..end];
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    lines.iter().map(|l| format!("{}\n", l.get(indent..).unwrap_or("").trim_end())).collect()
}

fn check(cases: &[Case], q: &Query, expect: &str) {
    let rows = audit(cases.iter(), q);
    let keys = header(q.by);
    for r in &rows {
        let got: Vec<&str> = r.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(got, keys, "every row has the same keys in the same order");
    }
    // The result does not depend on the order the cases come in.
    assert_eq!(audit(cases.iter().rev(), q), rows, "order of cases changed the rows");
    let got = render(&rows);
    let want = dedent(expect);
    assert!(got == want, "\n--- expected\n{want}--- got\n{got}");
}

// Column abbreviations in the comments: rec disp clo open ovd | p50 p90 max (h) |
// resp res sat ontime ret reopen (%).

#[test]
fn county_wide() {
    // rec 13; disp 12 (all but G); clo A B F K L = 5; open 8; ovd C D H J = 4
    // closure sorted [10 10 20 60 69] (A F K L B), n = 5:
    //   p50 rank ceil(2.5) = 3 -> 20.0; p90 rank ceil(4.5) = 5 -> 69.0; max 69.0
    // resp: denominator = 12 dispatched (C, H never claimed but past the claim deadline);
    //   on time A D E F I J K L M = 9 -> 9/12 = 75.0
    // res: closed at least once A B F K L M = 6, not reopened A F K L = 4 -> 66.7
    // sat: latest visits A F L (yes) B M (no; B's re-close cleared the record's, the reopen
    //      tells it was a no) -> 3/5 = 60.0
    // ontime: closed on time A B F K = 4 over closed 5 + overdue 4 = 9 -> 44.4
    // ret: F / 12 dispatched -> 8.3; reopen: B M over closed once A B F K L M = 6 -> 33.3
    check(
        &county(),
        &query(AuditBy::County),
        "
        county received dispatched closed open overdue closure_p50_h closure_p90_h closure_max_h response_pct resolution_pct satisfaction_pct on_time_pct return_pct reopen_pct
        county       13         12      5    8       4          20.0          69.0          69.0         75.0           66.7             60.0        44.4        8.3       33.3
        ",
    );
}

#[test]
fn by_township() {
    // -:  G alone: received, open, nothing else to measure
    // T1: A B C I J K M = 7, all dispatched; clo A B K = 3; open 4; ovd C J = 2
    //     closure [10 20 69]: p50 rank 2 -> 20.0, p90 rank ceil(2.7) = 3 -> 69.0
    //     resp on time A I J K M = 5/7 = 71.4; res A K / A B K M = 2/4 = 50.0; sat A yes B M no = 1/3 = 33.3
    //     ontime A B K = 3/(3 + 2) = 60.0; ret 0/7; reopen B M / A B K M = 2/4 = 50.0
    // T2: D E F H L = 5, all dispatched; clo F L = 2; open 3; ovd D H = 2
    //     closure [10 60]: p50 rank 1 -> 10.0, p90 rank ceil(1.8) = 2 -> 60.0
    //     resp D E F L = 4/5 = 80.0; res 2/2; sat F L = 2/2
    //     ontime F = 1/(2 + 2) = 25.0; ret F = 1/5 = 20.0; reopen 0/2
    // total: the county row above
    check(
        &county(),
        &query(AuditBy::Township),
        "
        township received dispatched closed open overdue closure_p50_h closure_p90_h closure_max_h response_pct resolution_pct satisfaction_pct on_time_pct return_pct reopen_pct
        -               1          0      0    1       0             -             -             -            -              -                -           -          -          -
        T1              7          7      3    4       2          20.0          69.0          69.0         71.4           50.0             33.3        60.0        0.0       50.0
        T2              5          5      2    3       2          10.0          60.0          60.0         80.0          100.0            100.0        25.0       20.0        0.0
        total          13         12      5    8       4          20.0          69.0          69.0         75.0           66.7             60.0        44.4        8.3       33.3
        ",
    );
}

#[test]
fn by_grid() {
    // Grouped by the current assignment: G (waiting) is `-`.
    // G1: A B K M; clo A B K; open M, not overdue; closure [10 20 69] -> 20.0 69.0 69.0
    //     resp A K M = 3/4 = 75.0; res A K / A B K M = 2/4; sat A yes B M no = 1/3; ontime 3/(3 + 0) = 100.0
    //     ret 0/4; reopen B M / A B K M = 2/4
    // G2: C I J, none closed; ovd C J; resp I J = 2/3 = 66.7; ontime 0/(0 + 2) = 0.0; reopen -
    // G3: D E F H L, as T2
    check(
        &county(),
        &query(AuditBy::Grid),
        "
        grid  received dispatched closed open overdue closure_p50_h closure_p90_h closure_max_h response_pct resolution_pct satisfaction_pct on_time_pct return_pct reopen_pct
        -            1          0      0    1       0             -             -             -            -              -                -           -          -          -
        G1           4          4      3    1       0          20.0          69.0          69.0         75.0           50.0             33.3       100.0        0.0       50.0
        G2           3          3      0    3       2             -             -             -         66.7              -                -         0.0        0.0          -
        G3           5          5      2    3       2          10.0          60.0          60.0         80.0          100.0            100.0        25.0       20.0        0.0
        total       13         12      5    8       4          20.0          69.0          69.0         75.0           66.7             60.0        44.4        8.3       33.3
        ",
    );
}

#[test]
fn by_worker() {
    // W1: A K M; clo A K; closure [10 20]: p50 rank 1 -> 10.0, p90 rank 2 -> 20.0
    //     resp A K M on time, and B's late claim, W1's though B is W2's now = 3/4 = 75.0
    //     res A K / A K M = 2/3 = 66.7; sat A yes M no = 50.0; ontime 2/2; reopen M / A K M = 1/3 = 33.3
    // W2: B C I J (B went to W2 after its reopen); clo B (69 h); ovd C J
    //     resp I J on time, C late = 2/3 = 66.7 (B's response was W1's); res 0/1 (B reopened);
    //     sat B no = 0/1 (its latest visit, before the reopen)
    //     ontime B = 1/(1 + 2) = 33.3; reopen B = 1/1
    // W3: D E L; clo L (60 h, late); ovd D; resp 3/3; res 1/1; sat 1/1; ontime 0/(1 + 1) = 0.0
    // W4: F H; clo F (10 h); ovd H; resp F = 1/2; ontime 1/(1 + 1) = 50.0; ret F = 1/2 = 50.0
    //     (F was returned by W3 but is W4's now: the return rate follows the current assignment;
    //     its response too, as W3 returned it before its claim deadline)
    check(
        &county(),
        &query(AuditBy::Worker),
        "
        worker received dispatched closed open overdue closure_p50_h closure_p90_h closure_max_h response_pct resolution_pct satisfaction_pct on_time_pct return_pct reopen_pct
        -             1          0      0    1       0             -             -             -            -              -                -           -          -          -
        W1            3          3      2    1       0          10.0          20.0          20.0         75.0           66.7             50.0       100.0        0.0       33.3
        W2            4          4      1    3       2          69.0          69.0          69.0         66.7            0.0              0.0        33.3        0.0      100.0
        W3            3          3      1    2       1          60.0          60.0          60.0        100.0          100.0            100.0         0.0        0.0        0.0
        W4            2          2      1    1       1          10.0          10.0          10.0         50.0          100.0            100.0        50.0       50.0        0.0
        total        13         12      5    8       4          20.0          69.0          69.0         75.0           66.7             60.0        44.4        8.3       33.3
        ",
    );
}

#[test]
fn by_department() {
    // -:     A B E F G H K M = 8 (no department, or waiting); disp 7 (not G); clo A B F K = 4
    //        open E G H M; ovd H; closure [10 10 20 69]: p50 rank 2 -> 10.0, p90 rank ceil(3.6) = 4 -> 69.0
    //        resp A E F K M = 5/7 = 71.4; res A F K / A B F K M = 3/5 = 60.0; sat A F yes, B M no = 2/4 = 50.0
    //        ontime A B F K = 4/(4 + 1) = 80.0; ret F = 1/7 = 14.3; reopen B M / A B F K M = 2/5 = 40.0
    // water: C D I J L = 5; clo L (60 h, late); ovd C D J = 3; resp D I J L = 4/5 = 80.0
    //        res 1/1; sat 1/1; ontime 0/(1 + 3) = 0.0; ret 0/5; reopen 0/1
    check(
        &county(),
        &query(AuditBy::Department),
        "
        department received dispatched closed open overdue closure_p50_h closure_p90_h closure_max_h response_pct resolution_pct satisfaction_pct on_time_pct return_pct reopen_pct
        -                 8          7      4    4       1          10.0          69.0          69.0         71.4           60.0             50.0        80.0       14.3       40.0
        water             5          5      1    4       3          60.0          60.0          60.0         80.0          100.0            100.0         0.0        0.0        0.0
        total            13         12      5    8       4          20.0          69.0          69.0         75.0           66.7             60.0        44.4        8.3       33.3
        ",
    );
}

#[test]
fn by_category() {
    // heating: A B D H I K M = 7; clo A B K; ovd D H; closure [10 20 69] -> 20.0 69.0 69.0
    //          resp A D I K M = 5/7 = 71.4; res A K / A B K M = 2/4 = 50.0; sat A yes B M no = 1/3 = 33.3
    //          ontime A B K = 3/(3 + 2) = 60.0; ret 0/7; reopen B M / A B K M = 2/4
    // roads:   C E F G J L = 6; disp 5 (not G); clo F L; ovd C J; closure [10 60] -> 10.0 60.0 60.0
    //          resp E F J L = 4/5 = 80.0; res 2/2; sat 2/2; ontime F = 1/(2 + 2) = 25.0
    //          ret F = 1/5 = 20.0; reopen 0/2
    check(
        &county(),
        &query(AuditBy::Category),
        "
        category received dispatched closed open overdue closure_p50_h closure_p90_h closure_max_h response_pct resolution_pct satisfaction_pct on_time_pct return_pct reopen_pct
        heating         7          7      3    4       2          20.0          69.0          69.0         71.4           50.0             33.3        60.0        0.0       50.0
        roads           6          5      2    4       2          10.0          60.0          60.0         80.0          100.0            100.0        25.0       20.0        0.0
        total          13         12      5    8       4          20.0          69.0          69.0         75.0           66.7             60.0        44.4        8.3       33.3
        ",
    );
}

#[test]
fn by_month() {
    // At +08:00, K (2026-10-30T18:00) is October, the other 12 November.
    // 2026-10: K alone: closed on time in 20 h; no visit; reopen 0/1
    // 2026-11: 12 received, 11 dispatched; clo A B F L = 4; open 8; ovd 4
    //          closure [10 10 60 69]: p50 rank 2 -> 10.0, p90 rank ceil(3.6) = 4 -> 69.0
    //          resp 9 - K = 8/11 = 72.7; res A F L / A B F L M = 3/5 = 60.0; sat A F L / A B F L M = 3/5 = 60.0
    //          ontime A B F = 3/(4 + 4) = 37.5; ret 1/11 = 9.1; reopen B M / A B F L M = 2/5 = 40.0
    check(
        &county(),
        &query(AuditBy::Month),
        "
        month   received dispatched closed open overdue closure_p50_h closure_p90_h closure_max_h response_pct resolution_pct satisfaction_pct on_time_pct return_pct reopen_pct
        2026-10        1          1      1    0       0          20.0          20.0          20.0        100.0          100.0                -       100.0        0.0        0.0
        2026-11       12         11      4    8       4          10.0          69.0          69.0         72.7           60.0             60.0        37.5        9.1       40.0
        total         13         12      5    8       4          20.0          69.0          69.0         75.0           66.7             60.0        44.4        8.3       33.3
        ",
    );
}

#[test]
fn months_are_local() {
    // 2026-10-31T20:00Z is 2026-11-01T04:00 at +08:00 but still October at UTC.
    let at = Timestamp::parse("2026-10-31T20:00Z", 480).unwrap();
    let cases = [accept_at(1, at, Some("T1"), "heating").done()];
    let mut q = query(AuditBy::Month);
    let month = |q: &Query| audit(cases.iter(), q)[0][0].1.clone();
    assert_eq!(month(&q), "2026-11");
    q.utc_offset_min = 0;
    assert_eq!(month(&q), "2026-10");
}

#[test]
fn window_is_from_inclusive_to_exclusive() {
    // from h0, to h40: A (h0, on the lower bound) B C D F L are in; I (h40, on the upper
    // bound) and K (h-30) are out, as are E G H J M (received after h40).
    // rec 6, disp 6; clo A B F L = 4; open C D; ovd C D = 2
    // closure [10 10 60 69] -> p50 rank 2 = 10.0, p90 rank 4 = 69.0
    // resp A D F L = 4/6 = 66.7; res A F L / A B F L = 3/4 = 75.0; sat A F L yes, B no = 3/4 = 75.0
    // ontime A B F = 3/(4 + 2) = 50.0; ret F = 1/6 = 16.7; reopen B / A B F L = 1/4 = 25.0
    let q = Query { from: Some(h(0)), to: Some(h(40)), ..query(AuditBy::County) };
    check(
        &county(),
        &q,
        "
        county received dispatched closed open overdue closure_p50_h closure_p90_h closure_max_h response_pct resolution_pct satisfaction_pct on_time_pct return_pct reopen_pct
        county        6          6      4    2       2          10.0          69.0          69.0         66.7           75.0             75.0        50.0       16.7       25.0
        ",
    );
    // Nothing in the window, no rows (the CLI says so).
    let q = Query { from: Some(h(200)), ..query(AuditBy::Township) };
    check(&county(), &q, "(no rows)");
}

#[test]
fn deadlines_are_judged_at_now() {
    // H: claim due h97, no overdue event. At h97 exactly it is not late yet (an event at
    // the deadline is on time); a minute later it is overdue and counts against the
    // response rate.
    let cases = [accept(1, 95, Some("T2"), "heating").dispatch(95, "G3", "W4", None).done()];
    let at = |now: Timestamp| Query { now, ..query(AuditBy::County) };
    check(
        &cases,
        &at(h(97)),
        "
        county received dispatched closed open overdue closure_p50_h closure_p90_h closure_max_h response_pct resolution_pct satisfaction_pct on_time_pct return_pct reopen_pct
        county        1          1      0    1       0             -             -             -            -              -                -           -        0.0          -
        ",
    );
    check(
        &cases,
        &at(Timestamp(h(97).0 + 60_000)),
        "
        county received dispatched closed open overdue closure_p50_h closure_p90_h closure_max_h response_pct resolution_pct satisfaction_pct on_time_pct return_pct reopen_pct
        county        1          1      0    1       1             -             -             -          0.0              -                -         0.0        0.0          -
        ",
    );
}

#[test]
fn claims_and_closes_at_the_deadline_are_on_time() {
    // Claimed at h2 (= due), closed at h48 (= due): on time both; closure 48.0 h.
    // Returned after its claim deadline passed unclaimed (flagged): waiting again, not
    // overdue (no deadline while waiting) but it still counts against the response rate.
    let on_the_dot =
        accept(1, 0, Some("T1"), "heating").dispatch(0, "G1", "W1", None).claim(2).close(48).done();
    let returned_late = accept(2, 0, Some("T1"), "heating")
        .dispatch(0, "G1", "W1", None)
        .overdue(2, Deadline::Claim)
        .ret(3)
        .done();
    // rec 2, disp 2, clo 1, open 1, ovd 0; resp 1/2 = 50.0; res 1/1; ontime 1/(1 + 0);
    // ret 1/2 = 50.0; reopen 0/1
    check(
        &[on_the_dot, returned_late],
        &query(AuditBy::County),
        "
        county received dispatched closed open overdue closure_p50_h closure_p90_h closure_max_h response_pct resolution_pct satisfaction_pct on_time_pct return_pct reopen_pct
        county        2          2      1    1       0          48.0          48.0          48.0         50.0          100.0                -       100.0       50.0        0.0
        ",
    );
}

#[test]
fn closure_percentiles_are_nearest_rank() {
    // Ten cases closed after 1, 2, ..., 10 hours and 1 minute (so hours round to x.0).
    // p50: rank ceil(5) = 5 -> 5.0; p90: rank ceil(9) = 9 -> 9.0; max 10.0
    let closed_after = |n: u32, minutes: i64| {
        let b = accept(n, 0, Some("T1"), "heating").dispatch(0, "G1", "W1", None).claim(1);
        let at = Timestamp(h(0).0 + minutes * 60_000);
        let w = b.worker();
        b.event_at(at, w, EventKind::Closed { result: "done".into() }).done()
    };
    let mut cases: Vec<Case> = (1..=10).map(|i| closed_after(i as u32, i * 60 + 1)).collect();
    check(
        &cases,
        &query(AuditBy::County),
        "
        county received dispatched closed open overdue closure_p50_h closure_p90_h closure_max_h response_pct resolution_pct satisfaction_pct on_time_pct return_pct reopen_pct
        county       10         10     10    0       0           5.0           9.0          10.0        100.0          100.0                -       100.0        0.0        0.0
        ",
    );
    // Add one closed after 63 min (1.05 h, prints 1.1): sorted [1.0 1.1 2.0 ... 10.0], n = 11:
    // p50 rank 6 -> 5.0; p90 rank 10 -> 9.0; max 10.0. Closed after 62 min it would print 1.0.
    cases.push(closed_after(11, 63));
    check(
        &cases,
        &query(AuditBy::County),
        "
        county received dispatched closed open overdue closure_p50_h closure_p90_h closure_max_h response_pct resolution_pct satisfaction_pct on_time_pct return_pct reopen_pct
        county       11         11     11    0       0           5.0           9.0          10.0        100.0          100.0                -       100.0        0.0        0.0
        ",
    );
    // Only that one by itself: every percentile is 1.1.
    check(
        &cases[10..],
        &query(AuditBy::County),
        "
        county received dispatched closed open overdue closure_p50_h closure_p90_h closure_max_h response_pct resolution_pct satisfaction_pct on_time_pct return_pct reopen_pct
        county        1          1      1    0       0           1.1           1.1           1.1        100.0          100.0                -       100.0        0.0        0.0
        ",
    );
}

#[test]
fn a_case_without_a_location_takes_the_township_of_its_first_dispatch() {
    // Accepted with no township; a supervisor dispatches it to T2's worker W3, who returns
    // it; it is dispatched again to T1's W1. Its township is T2 (the first dispatch's)
    // throughout; its grid and worker follow the current assignment.
    let to = |b: Build, at: i64, township: &str, grid: &str, w: &str| {
        let kind = EventKind::Dispatched {
            grid: grid.into(),
            township: township.into(),
            worker: w.into(),
            department: None,
            rule: "manual".into(),
            reason: "test".into(),
            due_claim: h(at + 2),
            due_close: h(at + 48),
        };
        b.event(at, supervisor(), kind)
    };
    let waiting = accept(1, 0, None, "roads").done();
    let b = to(accept(2, 0, None, "roads"), 1, "T2", "G3", "W3");
    let returned = b.ret(2).done();
    let b = to(accept(3, 0, None, "roads"), 1, "T2", "G3", "W3").ret(2);
    let moved = to(b, 3, "T1", "G1", "W1").done();
    let q = query(AuditBy::Township);
    let labels = |cases: &[Case], by: AuditBy| -> Vec<String> {
        cases.iter().map(|c| gridline_audit::group_of(c, &Query { by, ..q.clone() })).collect()
    };
    let cases = [waiting, returned, moved];
    assert_eq!(labels(&cases, AuditBy::Township), ["-", "T2", "T2"]);
    assert_eq!(labels(&cases, AuditBy::Grid), ["-", "-", "G1"]);
    assert_eq!(labels(&cases, AuditBy::Worker), ["-", "-", "W1"]);
}
