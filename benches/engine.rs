//! Accepted cases per second through the engine, against sled's raw ceiling.
//!
//! `cargo bench --bench engine` (a `harness = false` binary). In one run:
//!
//! 1. **group commit**: the engine as `serve` runs it (`EngineConfig::default()`,
//!    up to 1,024 commands per batch) over a `SledStore` in a temp dir, fed by
//!    `ENGINE_SUBMITTERS` threads (32) that each keep `ENGINE_WINDOW` (64)
//!    `ACCEPT`s in flight through `EngineHandle::submit`;
//! 2. **one flush per command**: the same with `batch_commands_max = 1` and
//!    `commit_batches_max = 1`;
//! 3. **no storage**: the same engine over a store that drops everything
//!    (the CPU cost of applying commands: routing, lifecycle, encoding);
//! 4. **sled raw ceiling**: `apply_batch` + `flush` + `fsync(db)` in a loop,
//!    with the keys and value sizes a real accepted case writes (measured
//!    below through `gridline_caselog::codec`), at the engine's batch sizes.
//!
//! Runs 1 and 4 (at 1,024 per batch) are repeated as `ENGINE_PAIRS` (3)
//! back-to-back pairs, and the median of the pairs' ratios is reported:
//! on a shared machine, rates drift by a third within minutes, so only
//! runs made one right after the other make a fair ratio.
//!
//! Knobs: `ENGINE_CASES` (cases for the group-commit runs, 200,000),
//! `ENGINE_SERIAL_CASES` (cases for the one-flush-per-command run, 3,000),
//! `ENGINE_SECS` (time limit of each run, 60). Every run stops at whichever
//! limit comes first and reports what it did. Figures go in
//! `docs/performance.md` (## Engine).

/// The same allocator as the `gridline` binary, so the figures match the server.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use common::{dir_bytes, env_usize, intakes, measure_shape, sled_raw, Layout};

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gridline_caselog::{CaseLog, SledStore, Store, StoreError, WriteBatch};
use gridline_engine::{EngineConfig, ReplyRx, SystemClock};
use gridline_model::{Caller, Command, ErrorCode, Intake, Reply, Role};
use gridline_registry::Registry;
use hdrhistogram::Histogram;

fn operator() -> Caller {
    Caller { role: Role::Operator, name: "bench-operator".into(), worker: None }
}

/// Counts the store's barriers, to report the batch sizes the engine reached.
struct Counting<S> {
    inner: S,
    syncs: Arc<AtomicU64>,
}

impl<S: Store> Store for Counting<S> {
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.inner.apply(batch)
    }
    fn sync(&self) -> Result<(), StoreError> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.inner.sync()
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn scan(&self, prefix: &[u8]) -> Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + '_> {
        self.inner.scan(prefix)
    }
}

/// Keeps nothing: the engine's cost without storage.
struct NullStore;

impl Store for NullStore {
    fn apply(&self, _: WriteBatch) -> Result<(), StoreError> {
        Ok(())
    }
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn get(&self, _: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
    fn scan(&self, _: &[u8]) -> Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + '_> {
        Box::new(std::iter::empty())
    }
}

struct Run {
    cases: usize,
    secs: f64,
    syncs: u64,
    lat: Histogram<u64>,
    busy: u64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.cases as f64 / self.secs
    }
}

/// What every run shares: the registry, the intakes, the submitters.
#[derive(Clone, Copy)]
struct Load<'a> {
    reg: &'a Arc<Registry>,
    intakes: &'a [Intake],
    submitters: usize,
    window: usize,
    limit: Duration,
}

impl Load<'_> {
    /// Drives `cases` ACCEPTs through an engine over `store`.
    fn drive<S: Store>(&self, store: S, batch_max: usize, cases: usize) -> Run {
        let Load { reg, intakes, submitters, window, limit } = *self;
        let syncs = Arc::new(AtomicU64::new(0));
        let store = Counting { inner: store, syncs: syncs.clone() };
        let log = CaseLog::open(store, Some(&reg.county.code)).expect("open the case log");
        let opened_syncs = syncs.load(Ordering::Relaxed);
        // One command a batch means one sync a command: no batches share a commit either.
        let commit_batches_max = if batch_max == 1 { 1 } else { EngineConfig::default().commit_batches_max };
        let config =
            EngineConfig { batch_commands_max: batch_max, commit_batches_max, ..EngineConfig::default() };
        let (handle, thread) = gridline_engine::start(reg.clone(), log, Arc::new(SystemClock), config)
            .expect("start the engine");
        let next = AtomicUsize::new(0);
        let busy = AtomicU64::new(0);
        let t0 = Instant::now();
        let lats: Vec<Histogram<u64>> = std::thread::scope(|s| {
            let joins: Vec<_> = (0..submitters)
                .map(|_| {
                    let (handle, next, busy) = (handle.clone(), &next, &busy);
                    s.spawn(move || {
                        let caller = operator();
                        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
                        let mut inflight: VecDeque<(Instant, ReplyRx)> = VecDeque::with_capacity(window);
                        let mut done = false;
                        loop {
                            while !done && inflight.len() < window {
                                let i = next.fetch_add(1, Ordering::Relaxed);
                                if i >= cases || t0.elapsed() > limit {
                                    done = true;
                                    break;
                                }
                                let cmd = Command::Accept(intakes[i % intakes.len()].clone());
                                let sent = Instant::now();
                                loop {
                                    match handle.submit(caller.clone(), cmd.clone()) {
                                        Ok(rx) => {
                                            inflight.push_back((sent, rx));
                                            break;
                                        }
                                        Err(e) if e.code == ErrorCode::Busy => {
                                            busy.fetch_add(1, Ordering::Relaxed);
                                            std::thread::sleep(Duration::from_micros(200));
                                        }
                                        Err(e) => panic!("submit failed: {e:?}"),
                                    }
                                }
                            }
                            let Some((sent, rx)) = inflight.pop_front() else { break };
                            match rx.blocking_recv().expect("the engine answers") {
                                Ok(Reply::Accepted { .. }) => {
                                    let _ = h.record((sent.elapsed().as_micros() as u64).max(1));
                                }
                                other => panic!("ACCEPT failed: {other:?}"),
                            }
                        }
                        h
                    })
                })
                .collect();
            joins.into_iter().map(|j| j.join().expect("submitter")).collect()
        });
        let secs = t0.elapsed().as_secs_f64();
        drop(handle);
        thread.join();
        let mut lat = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        for h in lats {
            lat.add(&h).expect("same bounds");
        }
        Run {
            cases: lat.len() as usize,
            secs,
            syncs: syncs.load(Ordering::Relaxed) - opened_syncs,
            lat,
            busy: busy.load(Ordering::Relaxed),
        }
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // special: keep such runs tiny.
    let quick = !std::env::args().any(|a| a == "--bench");
    let cases = env_usize("ENGINE_CASES", if quick { 2_000 } else { 200_000 });
    let serial_cases = env_usize("ENGINE_SERIAL_CASES", if quick { 200 } else { 3_000 });
    let limit = Duration::from_secs(env_usize("ENGINE_SECS", if quick { 10 } else { 60 }) as u64);
    let submitters = env_usize("ENGINE_SUBMITTERS", 32);
    let window = env_usize("ENGINE_WINDOW", 64);
    let pairs_n = env_usize("ENGINE_PAIRS", if quick { 1 } else { 3 }).max(1);

    let reg = Arc::new(gridline_registry::embedded::jidong().clone());
    let intakes = intakes(&reg);
    let shape = measure_shape(&reg, &intakes);
    let per_case = shape.case_bytes + shape.event_bytes.iter().sum::<usize>();
    println!(
        "# engine bench: {submitters} submitters x {window} in flight; a case writes a {} B case record and {} events in its batch's pages ({} B, stored packed to {:.2} of that); {} B of values per case",
        shape.case_bytes,
        shape.events_per_case,
        shape.event_bytes.iter().sum::<usize>(),
        shape.page_packing,
        per_case
    );
    let events_per_case = shape.events_per_case as f64;

    let tmp = tempfile::tempdir().expect("temp dir");
    // Pairs: the group commit, then sled's raw ceiling at 1,024 per batch,
    // back to back, so that each ratio compares runs made under the same
    // conditions (on a shared machine the rates drift by a third within
    // minutes). The first pair's group-commit run is the one reported in
    // the main table.
    let load = Load { reg: &reg, intakes: &intakes, submitters, window, limit };
    let mut pairs: Vec<(Run, f64)> = Vec::new();
    let mut group_disk = 0;
    for p in 0..pairs_n {
        eprintln!("engine: pair {}: group commit over sled ({cases} cases)...", p + 1);
        let dir = tmp.path().join(format!("group{p}"));
        let run = load.drive(
            SledStore::open(&dir).expect("sled store"),
            EngineConfig::default().batch_commands_max,
            cases,
        );
        if p == 0 {
            group_disk = dir_bytes(&dir);
        }
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!("engine: pair {}: sled raw, 1024 cases per batch...", p + 1);
        let raw_dir = tmp.path().join(format!("pair-raw{p}"));
        let (done, secs) = sled_raw(&raw_dir, &shape, Layout::Paged, 1024, cases, limit);
        let _ = std::fs::remove_dir_all(&raw_dir);
        pairs.push((run, done as f64 / secs));
    }
    let group = pairs.remove(0);
    let (group, first_raw) = (group.0, group.1);
    eprintln!("engine: one flush per command over sled ({serial_cases} cases)...");
    let serial =
        load.drive(SledStore::open(&tmp.path().join("serial")).expect("sled store"), 1, serial_cases);
    eprintln!("engine: no storage ({cases} cases)...");
    let null = load.drive(NullStore, EngineConfig::default().batch_commands_max, cases);

    let group_batch = group.cases as f64 / group.syncs.max(1) as f64;
    let batch_sizes = {
        let mut v = vec![1, group_batch.round().max(1.0) as usize, 1024];
        v.dedup();
        v
    };
    let mut raw = Vec::new();
    for (i, &b) in batch_sizes.iter().enumerate() {
        eprintln!("sled raw: {b} cases per batch...");
        let n = if b == 1 { serial_cases } else { cases };
        let (done, secs) = sled_raw(&tmp.path().join(format!("raw{i}")), &shape, Layout::Paged, b, n, limit);
        raw.push((b, done, secs));
    }
    let raw_rate = |b: usize| raw.iter().find(|r| r.0 == b).map(|r| r.1 as f64 / r.2).unwrap_or(f64::NAN);

    println!();
    println!("| run | cases | seconds | cases/s | events/s | cases per fsync | p50 ms | p99 ms | p999 ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, r) in [
        ("engine, group commit (batch <= 1,024), sled", &group),
        ("engine, one flush per command (batch = 1), sled", &serial),
        ("engine, no storage (CPU only)", &null),
    ] {
        println!(
            "| {name} | {} | {:.2} | {:.0} | {:.0} | {} | {:.2} | {:.2} | {:.2} |",
            r.cases,
            r.secs,
            r.rate(),
            r.rate() * events_per_case,
            if r.syncs > 0 { format!("{:.1}", r.cases as f64 / r.syncs as f64) } else { "-".into() },
            ms(r.lat.value_at_quantile(0.5)),
            ms(r.lat.value_at_quantile(0.99)),
            ms(r.lat.value_at_quantile(0.999)),
        );
    }
    for &(b, done, secs) in &raw {
        let rate = done as f64 / secs;
        println!(
            "| sled raw: apply_batch + flush + fsync, {b} cases per batch | {done} | {secs:.2} | {rate:.0} | {:.0} | {b} | - | - | - |",
            rate * events_per_case
        );
    }
    println!();
    let g = group.rate();
    println!("| ratio | value | target |");
    println!("| --- | ---: | ---: |");
    println!(
        "| group commit / sled raw at the engine's batch size ({}) | {:.2} | >= 0.70 |",
        group_batch.round(),
        g / raw_rate(group_batch.round().max(1.0) as usize)
    );
    println!("| group commit / sled raw at 1,024 per batch | {:.2} | >= 0.70 |", g / raw_rate(1024));
    println!("| one flush per command / sled raw at 1 per batch | {:.2} | |", serial.rate() / raw_rate(1));
    println!("| group commit / one flush per command | {:.1}x | |", g / serial.rate());
    println!("| group commit / no storage | {:.2} | |", g / null.rate());
    println!("| group commit accepted cases/s | {g:.0} | >= 50,000 |");
    if group.cases > 0 {
        println!(
            "| disk bytes per case (sled dir after the group-commit run) | {:.0} | |",
            group_disk as f64 / group.cases as f64
        );
    }
    let ratios: Vec<(f64, f64)> =
        std::iter::once((g, first_raw)).chain(pairs.iter().map(|(r, raw)| (r.rate(), *raw))).collect();
    if ratios.len() > 1 {
        println!();
        println!("| pair (group commit, then sled raw at 1,024 per batch, back to back) | group commit cases/s | sled raw cases/s | ratio |");
        println!("| --- | ---: | ---: | ---: |");
        for (i, (g, raw)) in ratios.iter().enumerate() {
            println!("| {} | {g:.0} | {raw:.0} | {:.2} |", i + 1, g / raw);
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (gs, raws, rs) = (
            median(ratios.iter().map(|r| r.0).collect()),
            median(ratios.iter().map(|r| r.1).collect()),
            median(ratios.iter().map(|r| r.0 / r.1).collect()),
        );
        println!("| median | {gs:.0} | {raws:.0} | {rs:.2} |");
        println!();
        println!("| ratio / figure over the {} pairs | value | target |", ratios.len());
        println!("| --- | ---: | ---: |");
        println!("| median group commit accepted cases/s | {gs:.0} | >= 50,000 |");
        println!("| median group commit / sled raw at 1,024 per batch (per pair) | {rs:.2} | >= 0.70 |");
    }
    if group.busy + serial.busy + null.busy > 0 {
        println!("\n(busy refusals retried: {} / {} / {})", group.busy, serial.busy, null.busy);
    }
}
