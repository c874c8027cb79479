//! Worker choice: handling rules, duty hours, loads, returns, escalation,
//! emergencies; the decision's fields and rule.

mod common;

use common::*;
use gridline_registry::{GridIdx, WorkerKind};
use gridline_routing::{Pool, Via};

fn who(r: &gridline_routing::Routed) -> Option<&str> {
    r.decision.worker.as_deref()
}

#[test]
fn ten_thousand_cases_in_one_grid_spread_evenly_over_its_on_duty_workers() {
    let r = jidong();
    let reg = r.registry();
    // A grid with full-time and part-time workers and at least one part-timer off duty at 10:00.
    let minute = at("10:00").minute_of_day(480);
    let (g, grid) = reg
        .grids
        .iter()
        .enumerate()
        .find(|(_, g)| {
            let ws = || g.workers.iter().map(|&w| reg.worker(w));
            ws().filter(|w| w.on_duty(minute)).count() >= 3
                && ws().any(|w| w.kind == WorkerKind::FullTime)
                && ws().any(|w| w.kind == WorkerKind::PartTime && w.on_duty(minute))
                && ws().any(|w| !w.on_duty(minute))
        })
        .expect("such a grid");
    let (x, y) = r.interior_point(GridIdx(g as u32)).unwrap();
    let case = intake("邻居装修噪音太大", None, point(x, y));
    let mut loads = vec![0u32; reg.workers.len()];
    for _ in 0..10_000 {
        let routed = route_with(r, &case, "10:00", &loads, &[]);
        assert_eq!(routed.grid, Some(GridIdx(g as u32)));
        assert_eq!((routed.decision.rule.as_str(), routed.pool), ("point/grid", Pool::Grid));
        loads[routed.worker.unwrap().ix()] += 1;
    }
    let on: Vec<u32> =
        grid.workers.iter().filter(|&&w| reg.worker(w).on_duty(minute)).map(|w| loads[w.ix()]).collect();
    let off: Vec<u32> =
        grid.workers.iter().filter(|&&w| !reg.worker(w).on_duty(minute)).map(|w| loads[w.ix()]).collect();
    assert_eq!(on.iter().sum::<u32>(), 10_000);
    assert!(on.iter().max().unwrap() - on.iter().min().unwrap() <= 1, "within one case: {on:?}");
    assert!(off.iter().all(|&n| n == 0), "off-duty part-timers get nothing: {off:?}");
}

#[test]
fn fewest_open_cases_then_full_time_then_lowest_index() {
    let t = toy();
    let case = intake("", Some("dispute"), grid("A1"));
    // 10:00: W1 (full-time) and W2 (part-time 08-12) on duty, W3 (18-22) off.
    assert_eq!(who(&route(t, &case, "10:00")), Some("W1"), "equal load: full-time first");
    assert_eq!(who(&route_with(t, &case, "10:00", &loads(t, &[("W1", 1)]), &[])), Some("W2"));
    assert_eq!(who(&route_with(t, &case, "10:00", &loads(t, &[("W1", 3), ("W2", 3)]), &[])), Some("W1"));
    // 19:00: W3 instead of W2; W3 idle, W1 busy.
    assert_eq!(who(&route_with(t, &case, "19:00", &loads(t, &[("W1", 2)]), &[])), Some("W3"));
    // 15:00: only W1, however busy.
    for n in [0, 5, 500] {
        assert_eq!(who(&route_with(t, &case, "15:00", &loads(t, &[("W1", n)]), &[])), Some("W1"));
    }
    // Duty hours are local time: 02:00Z is 10:00 at +08:00.
    let utc = gridline_model::Timestamp::parse("2026-11-24T02:00:00Z", 480).unwrap();
    let l = loads(t, &[("W1", 1)]);
    assert_eq!(
        t.route(&gridline_routing::RouteRequest { intake: &case, at: utc, exclude: &[] }, &l)
            .decision
            .worker
            .as_deref(),
        Some("W2")
    );
}

#[test]
fn workers_who_returned_the_case_are_never_chosen() {
    let t = toy();
    let case = intake("", Some("dispute"), grid("A1"));
    let l = loads(t, &[("W2", 9)]);
    assert_eq!(who(&route_with(t, &case, "10:00", &l, &["W1"])), Some("W2"), "busier, but W1 returned it");
    let r = route_with(t, &case, "10:00", &l, &["W1", "W2"]);
    // Nobody left in A1, nor in the community (A2's W4 is off duty at 10:00;
    // D1's W5 stays with the school: a dedicated grid's workers are not in
    // the community's pool): the township, B1's W6.
    assert_eq!((who(&r), r.pool, r.decision.grid.as_deref()), (Some("W6"), Pool::Township, Some("B1")));
    assert_eq!(r.located.map(|g| t.registry().grid(g).code.as_str()), Some("A1"));
    assert_eq!(r.decision.rule, "grid-code/grid/township");
    let why = r.decision.explanation();
    assert!(
        why.contains("nobody available in grid 东风社区第1网格 (3 workers: 1 off duty, 2 returned the case)"),
        "{why}"
    );
    assert!(why.contains("W6 丁一 (full-time) of 红旗村网格") && !why.contains("W5"), "{why}");
    // Unknown ids in the exclusion list are ignored.
    assert_eq!(who(&route_with(t, &case, "10:00", &l, &["W404", ""])), Some("W1"));
}

#[test]
fn nobody_in_the_grid_escalates_to_the_community_then_the_township_then_the_command_centre() {
    let t = toy();
    // A2's only worker, W4, is on duty 20:00-08:00 (past midnight).
    let a2 = intake("", Some("dispute"), grid("A2"));
    assert_eq!(who(&route(t, &a2, "23:30")), Some("W4"));
    assert_eq!(who(&route(t, &a2, "07:59")), Some("W4"));
    let day = route(t, &a2, "08:00");
    assert_eq!((who(&day), day.pool), (Some("W1"), Pool::Community), "W1 of A1, same community");
    assert!(day.decision.steps[2]
        .contains("nobody available in grid 东风社区第2网格 (1 workers: 1 off duty, 0 returned the case)"));
    // B1 (红旗村) has one grid: after W6, the township 甲镇.
    let b1 = intake("", Some("dispute"), grid("B1"));
    let r = route_with(t, &b1, "10:00", &loads(t, &[("W1", 4), ("W2", 2)]), &["W6"]);
    // Not W5 (0 open cases, but D1 is the school's dedicated grid): W2, the least loaded of the rest.
    assert_eq!(
        (who(&r), r.pool, r.decision.rule.as_str()),
        (Some("W2"), Pool::Township, "grid-code/grid/township")
    );
    let why = r.decision.explanation();
    assert!(
        why.contains("community/village 红旗村") && why.contains("W2 甲二 (part-time) of 东风社区第1网格"),
        "{why}"
    );
    // C1 (东风村, 乙乡) has one grid and the township no other: the command centre.
    let c1 = intake("", Some("dispute"), grid("C1"));
    let r = route_with(t, &c1, "10:00", &[], &["W7"]);
    assert_eq!((who(&r), r.pool), (None, Pool::CommandCentre));
    assert_eq!(r.decision.rule, "grid-code/grid/command-centre");
    assert_eq!((r.decision.grid.as_deref(), r.decision.township.as_deref()), (Some("C1"), Some("T2")));
    assert!(r
        .decision
        .explanation()
        .ends_with("nobody available: it waits at 测试县网格协调指挥中心 for manual dispatch"));
    // A dedicated grid asks the grid around it before the rest of the community.
    let d1 = intake("", Some("dispute"), point(100.025, 30.015));
    let r = route_with(t, &d1, "10:00", &loads(t, &[("W1", 5), ("W2", 5)]), &["W5"]);
    assert_eq!(
        (who(&r), r.pool, r.decision.rule.as_str()),
        (Some("W1"), Pool::Parent, "dedicated/grid/parent")
    );
}

#[test]
fn department_handling_goes_to_the_professionals_covering_the_township() {
    let t = toy();
    let water = |loc| intake("厨房水管漏水", None, loc);
    let r = route(t, &water(grid("A1")), "03:00");
    assert_eq!(
        (who(&r), r.pool, r.decision.rule.as_str()),
        (Some("W8"), Pool::Department, "grid-code/department")
    );
    assert_eq!((r.decision.department.as_deref(), r.decision.grid.as_deref()), (Some("water"), Some("A1")));
    assert_eq!(r.decision.township.as_deref(), Some("T1"));
    assert!(r.decision.steps[2]
        .starts_with("handled by 县水务局 professionals covering 甲镇: W8 水一 (professional)"));
    let r = route(t, &water(point(100.25, 30.02)), "10:00");
    assert_eq!((who(&r), r.decision.rule.as_str()), (Some("W9"), "point/department"));
    // The professional returned it: the command centre, the department still recorded.
    let r = route_with(t, &water(grid("C1")), "10:00", &[], &["W9"]);
    assert_eq!((who(&r), r.decision.department.as_deref()), (None, Some("water")));
    assert_eq!(r.decision.rule, "grid-code/department/command-centre");
    // grid_with_department: the grid's worker leads, the department co-handles.
    let r = route(t, &intake("下水道堵塞", None, grid("B1")), "10:00");
    assert_eq!((who(&r), r.decision.department.as_deref()), (Some("W6"), Some("water")));
    assert_eq!((r.decision.rule.as_str(), r.pool), ("grid-code/grid_with_department", Pool::Grid));
    assert!(
        r.decision.steps[2].starts_with("the grid leads, 县水务局 co-handles: W6"),
        "{:?}",
        r.decision.steps
    );
    // No location at all: nobody, but the category and department are known.
    let r = route(t, &intake("水管漏水", None, Default::default()), "10:00");
    assert_eq!(
        (who(&r), r.decision.category.as_str(), r.decision.department.as_deref()),
        (None, "water", Some("water"))
    );
    assert_eq!((r.decision.rule.as_str(), r.via), ("command-centre", Via::CommandCentre));
}

#[test]
fn emergencies_take_a_free_worker_nearby_else_a_busy_full_time_worker_rather_than_wait() {
    let t = toy();
    let case = intake("", Some("dispute"), grid("A1"));
    let busy = loads(t, &[("W1", 5), ("W2", 4)]);
    // Normal: the least loaded in the grid, W2 (4).
    assert_eq!(who(&route_with(t, &case, "10:00", &busy, &[])), Some("W2"));
    // Emergency: nobody in A1 has fewer than 3 open cases. At 23:30 A2's W4
    // (same community, on duty 20:00-08:00) is free: W4.
    let r = route_with(t, &emergency(case.clone()), "23:30", &busy, &[]);
    assert_eq!((who(&r), r.pool), (Some("W4"), Pool::Community));
    assert!(r
        .decision
        .explanation()
        .contains("emergency: the nearest available worker with fewer than 3 open cases"));
    // At 10:00 W4 is off duty, and W5 of the school's dedicated grid D1 (0
    // open cases) is not asked: the least loaded full-time worker of the
    // grid, W1 (5), over W2 (4), rather than wait.
    let r = route_with(t, &emergency(case.clone()), "10:00", &busy, &[]);
    assert_eq!((who(&r), r.pool, r.decision.rule.as_str()), (Some("W1"), Pool::Grid, "grid-code/grid"));
    assert!(r.decision.explanation().contains("rather than wait"), "{}", r.decision.explanation());
    // A free worker in the grid is still the first choice.
    let r = route_with(t, &emergency(case.clone()), "10:00", &loads(t, &[("W1", 2), ("W2", 1)]), &[]);
    assert_eq!(who(&r), Some("W2"));
    // Only part-timers left: the normal rule, never the command centre while someone is on duty.
    let r = route_with(t, &emergency(case), "10:00", &loads(t, &[("W2", 7)]), &["W1", "W5", "W6"]);
    assert_eq!((who(&r), r.pool), (Some("W2"), Pool::Grid));
}

#[test]
fn short_or_empty_loads_count_as_zero() {
    let t = toy();
    let case = intake("", Some("dispute"), grid("A1"));
    assert_eq!(who(&route_with(t, &case, "10:00", &[], &[])), Some("W1"));
    assert_eq!(who(&route_with(t, &case, "10:00", &[7], &[])), Some("W2"));
}

#[test]
fn any_case_time_works_even_at_the_ends_of_time() {
    let t = toy();
    let case = intake("", Some("dispute"), grid("A1"));
    for ms in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
        let at = gridline_model::Timestamp(ms);
        let r = t.route(&gridline_routing::RouteRequest { intake: &case, at, exclude: &[] }, &[]);
        assert_eq!(r.decision.worker.as_deref(), Some("W1"));
    }
}
