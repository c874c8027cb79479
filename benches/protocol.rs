//! What formatting replies costs the server's connection tasks.
//!
//! `cargo bench --bench protocol`: a `PULL` reply of 20 real dispatched
//! cases (accepted through the engine over an in-memory store), formatted
//! into a reused buffer as the server does. The lifecycle profile in
//! `docs/performance.md` found reply formatting among the server's larger
//! costs; this measures it alone.
//!
//! `parse/ping_40000_fields`: parsing a `PING` line of 40,000 distinct
//! fields and one repeated (refused as a duplicate), as a connection
//! thread may have to before `AUTH` with `--line-bytes-max` raised. It
//! took 3 s when each key was checked against every earlier one; linear,
//! it takes milliseconds.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use gridline_model::{CaseView, Reply};
use gridline_protocol::{parse_request, write_reply, FormatCtx};

/// Twenty cases as the engine leaves them after `ACCEPT`: routed and dispatched.
fn cases() -> Vec<gridline_model::Case> {
    let reg = Arc::new(gridline_registry::embedded::jidong().clone());
    common::accept_in_memory(&reg, &common::intakes(&reg), 20).1
}

fn bench(c: &mut Criterion) {
    // As a worker sees them: phones masked as they are written.
    let views = cases().into_iter().map(|c| CaseView::new(Arc::new(c), false)).collect();
    let reply = Reply::Cases { cases: views, next: Some("JD-20261124-000021".into()) };
    let ctx = FormatCtx { utc_offset_min: 480, warn_at_percent: 80 };
    let mut out = String::with_capacity(64 * 1024);
    c.bench_function("format/pull_20_cases", |b| {
        b.iter(|| {
            out.clear();
            write_reply(&mut out, black_box(&reply), &ctx);
            black_box(out.len())
        })
    });
}

fn parse(c: &mut Criterion) {
    let mut line = String::from("PING");
    for i in 0..40_000 {
        line.push_str(&format!(" k{i}=1"));
    }
    line.push_str(" k7=2");
    let mut g = c.benchmark_group("parse");
    g.sample_size(10);
    g.bench_function("ping_40000_fields", |b| b.iter(|| black_box(parse_request(black_box(&line)).is_err())));
    g.finish();
}

criterion_group!(benches, bench, parse);
criterion_main!(benches);
