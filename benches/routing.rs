//! Routing cost per case over the full embedded Jidong registry.
//!
//! `cargo bench --bench routing`. Each iteration routes one case; the cases
//! cycle through a fixed, deterministic sample (a point inside every grid, an
//! address per grid, a set of real complaint sentences), so the figure is an
//! average over the whole county, not one lucky grid. The output (a
//! `Routed`) is dropped inside the timed loop, so its allocations are paid.
//!
//! Every benchmark runs twice: `wall/...` measures wall-clock time (the
//! figure the target is about), `cpu/...` the thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`), which does not count time the thread spends
//! descheduled, and so stays meaningful on a shared, loaded machine.
//! Results go in `docs/performance.md` (## Routing).
//!
//! `wall/registry/load_embedded`: loading and checking the embedded
//! registry from its sources, as every start does (about 20 ms in a
//! release build on the development machine).

use std::hint::black_box;
use std::sync::Arc;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, Criterion};
use gridline_model::{Intake, Location, Priority, Timestamp};
use gridline_registry::GridIdx;
use gridline_routing::{RouteRequest, Router};

/// 2026-11-24 10:00 at +08:00: part-timers with day windows are on duty.
const AT: Timestamp = Timestamp(1_795_485_600_000);

const TEXTS: [&str; 8] = [
    "我家楼下水管爆了，一直在漏水",
    "小区路灯坏了好几天，晚上出门很不方便",
    "邻居装修噪音太大，晚上十点还在施工",
    "家里暖气不热，屋里才十二度",
    "路边垃圾好几天没人清理了，味道很大",
    "超市卖过期食品，希望有关部门查一查",
    "我想咨询一下养老保险怎么续交",
    "有人在河边钓鱼，想反映一下情况",
];

fn router() -> Router {
    Router::new(Arc::new(gridline_registry::embedded::jidong().clone()))
}

fn point_intakes(r: &Router) -> Vec<Intake> {
    let category = r.registry().category(r.registry().county.general_category).code.clone();
    (0..r.registry().grids.len() as u32)
        .filter_map(|g| r.interior_point(GridIdx(g)))
        .map(|p| Intake {
            text: "市民反映问题".into(),
            category: Some(category.clone().into()),
            location: Location { point: Some(p), ..Location::default() },
            ..Intake::default()
        })
        .collect()
}

fn address_intakes(r: &Router) -> Vec<Intake> {
    let reg = r.registry();
    let category = reg.category(reg.county.general_category).code.clone();
    reg.grids
        .iter()
        .map(|g| {
            let c = reg.community(g.community);
            let t = reg.township(g.township);
            let place = g.keywords.first().cloned().unwrap_or_else(|| g.name.clone());
            Intake {
                text: "市民反映问题".into(),
                category: Some(category.clone().into()),
                location: Location {
                    address: Some(format!("{}{}{}3号楼2单元", t.name, c.name, place).into()),
                    ..Location::default()
                },
                ..Intake::default()
            }
        })
        .collect()
}

fn text_intakes(r: &Router) -> Vec<Intake> {
    let reg = r.registry();
    TEXTS
        .iter()
        .zip(reg.grids.iter().cycle())
        .map(|(t, g)| Intake {
            text: (*t).to_string().into(),
            location: Location { grid: Some(g.code.clone().into()), ..Location::default() },
            ..Intake::default()
        })
        .collect()
}

/// The calling thread's CPU time, in nanoseconds.
struct ThreadCpu(WallTime);

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, formatted like wall-clock durations.
        self.0.formatter()
    }
}

fn bench_cases<M: Measurement + 'static>(
    c: &mut Criterion<M>,
    name: &str,
    r: &Router,
    intakes: &[Intake],
    loads: &[u32],
) {
    let mut i = 0;
    c.bench_function(name, |b| {
        b.iter(|| {
            let intake = &intakes[i % intakes.len()];
            i += 1;
            let req = RouteRequest { intake, at: AT, exclude: &[] };
            black_box(r.route(black_box(&req), loads))
        })
    });
}

fn routing<M: Measurement + 'static>(c: &mut Criterion<M>, prefix: &str) {
    let r = router();
    // Loads as in a busy afternoon: 0..7 open cases, deterministic.
    let loads: Vec<u32> = (0..r.registry().workers.len() as u32).map(|i| (i * 7 + 3) % 8).collect();
    let points = point_intakes(&r);
    let addresses = address_intakes(&r);
    let texts = text_intakes(&r);

    let mut i = 0;
    c.bench_function(&format!("{prefix}/locate/point"), |b| {
        b.iter(|| {
            let intake = &points[i % points.len()];
            i += 1;
            black_box(r.locate(black_box(&intake.location)))
        })
    });
    bench_cases(c, &format!("{prefix}/route/point"), &r, &points, &loads);
    bench_cases(c, &format!("{prefix}/route/address"), &r, &addresses, &loads);
    bench_cases(c, &format!("{prefix}/route/text"), &r, &texts, &loads);
    let urgent: Vec<Intake> =
        points.iter().map(|p| Intake { priority: Priority::Emergency, ..p.clone() }).collect();
    bench_cases(c, &format!("{prefix}/route/point-emergency"), &r, &urgent, &loads);
}

fn wall(c: &mut Criterion) {
    routing(c, "wall");
    let mut g = c.benchmark_group("wall/registry");
    g.sample_size(10);
    g.bench_function("load_embedded", |b| {
        b.iter(|| {
            black_box(gridline_registry::Registry::from_sources(&gridline_registry::embedded::sources()))
                .expect("the embedded registry loads")
        })
    });
    g.finish();
}

fn cpu(c: &mut Criterion<ThreadCpu>) {
    routing(c, "cpu");
}

criterion_group!(wall_clock, wall);
criterion_group! {
    name = thread_cpu;
    config = Criterion::default().with_measurement(ThreadCpu(WallTime));
    targets = cpu
}
criterion_main!(wall_clock, thread_cpu);
