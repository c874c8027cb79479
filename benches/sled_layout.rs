//! What the case log's key layout costs in sled: format 1's (a case record
//! key and a key per run of its events: two keys an accepted case) against
//! format 2's, which packs each batch's events into pages (one key a case,
//! plus one a page of events, filled to 6 KiB as the case log fills them). The measurement that chose
//! format 2 (`docs/performance.md`, `docs/storage.md`).
//!
//! `cargo bench --bench sled_layout`: `LAYOUT_PAIRS` (3) back-to-back pairs
//! of `LAYOUT_CASES` (200,000) accepted cases each, 1,024 per batch, each
//! batch `apply_batch` + `flush` + `fsync(db)` as in the engine bench's raw
//! ceiling, with the value sizes a real accepted case writes.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{dir_bytes, env_usize, intakes, measure_shape, sled_raw, Layout};

fn main() {
    // `cargo test --benches` passes no `--bench`: keep such runs tiny.
    let quick = !std::env::args().any(|a| a == "--bench");
    let pairs = env_usize("LAYOUT_PAIRS", if quick { 1 } else { 3 });
    let cases = env_usize("LAYOUT_CASES", if quick { 2_048 } else { 200_000 });
    let reg = Arc::new(gridline_registry::embedded::jidong().clone());
    let intakes = intakes(&reg);
    let shape = measure_shape(&reg, &intakes);
    let tmp = tempfile::tempdir().expect("a temp dir");
    let limit = Duration::from_secs(60);
    println!("# an accepted case: a {} B record, its events {:?} B", shape.case_bytes, shape.event_bytes);
    println!("| pair | format 1 (two keys a case), cases/s | B a case on disk | format 2 (paged), cases/s | B a case on disk | paged / keys |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for p in 1..=pairs {
        let mut row = Vec::new();
        for layout in [Layout::Keys, Layout::Paged] {
            let dir = tmp.path().join(format!("{p}-{layout:?}"));
            eprintln!("sled_layout: pair {p}, {layout:?}...");
            let (done, secs) = sled_raw(&dir, &shape, layout, 1024, cases, limit);
            row.push((done as f64 / secs, dir_bytes(&dir) / done.max(1) as u64));
            let _ = std::fs::remove_dir_all(&dir);
        }
        let ((k, kb), (g, gb)) = (row[0], row[1]);
        println!("| {p} | {k:.0} | {kb} | {g:.0} | {gb} | {:.2} |", g / k);
    }
}
