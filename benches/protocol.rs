//! What formatting replies costs the server's connection tasks.
//!
//! `cargo bench --bench protocol`: a `PULL` reply of 20 real dispatched
//! cases (accepted through the engine over an in-memory store), formatted
//! into a reused buffer as the server does. The lifecycle profile in
//! `docs/performance.md` found reply formatting among the server's larger
//! costs; this measures it alone.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use gridline_model::{CaseView, Reply};
use gridline_protocol::{write_reply, FormatCtx};

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

criterion_group!(benches, bench);
criterion_main!(benches);
