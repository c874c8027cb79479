//! What the engine and end-to-end benches share: the shape of an accepted
//! case's writes, sled's raw ceiling for that shape, small helpers.
#![allow(dead_code)]

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gridline_caselog::{codec, CaseLog, MemStore, Store};
use gridline_engine::{EngineConfig, SystemClock};
use gridline_model::{Caller, Case, CaseId, Command, Intake, Location, Priority, Reply, Role, Timestamp};
use gridline_registry::{GridIdx, GridKind, Registry};
use gridline_routing::Router;

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

/// The keys and values one accepted case writes, from a real case through the engine.
pub struct Shape {
    pub case_bytes: usize,
    /// Bytes of its events: one run of them, in a page, and its share of
    /// the page's header.
    pub event_bytes: Vec<usize>,
    /// Events one accepted case records (all in its one run above).
    pub events_per_case: usize,
    /// What packing leaves of a full page of such runs (sled stores pages
    /// packed since format 3): its packed size over its plain one.
    pub page_packing: f64,
}

/// The first `n` of `intakes` accepted through the engine (as `serve`
/// runs it) over an in-memory store: the store, and the cases as their
/// `ACCEPT` replies gave them.
pub fn accept_in_memory(reg: &Arc<Registry>, intakes: &[Intake], n: usize) -> (MemStore, Vec<Case>) {
    let store = MemStore::new();
    let log = CaseLog::open(store.clone(), Some(&reg.county.code)).expect("open");
    let (handle, thread) =
        gridline_engine::start(reg.clone(), log, Arc::new(SystemClock), EngineConfig::default())
            .expect("start");
    let op = Caller { role: Role::Operator, name: "bench".into(), worker: None };
    let mut cases = Vec::new();
    for intake in &intakes[..n.min(intakes.len())] {
        match handle.call(&op, Command::Accept(intake.clone())).expect("accept") {
            Reply::Accepted { case, .. } => cases.push(case.case().clone()),
            r => panic!("ACCEPT answered {r:?}"),
        }
    }
    drop(handle);
    thread.join();
    (store, cases)
}

pub fn measure_shape(reg: &Arc<Registry>, intakes: &[Intake]) -> Shape {
    // With a request id, as the load driver's cases carry one (`req=a-N`),
    // stored in the case record.
    let with_req: Vec<Intake> = intakes
        .iter()
        .take(200)
        .enumerate()
        .map(|(i, x)| Intake { req: Some(format!("a-{i}").into()), ..x.clone() })
        .collect();
    let (store, _) = accept_in_memory(reg, &with_req, 200);
    let (mut case_total, mut cases) = (0, 0);
    for kv in store.scan(&[codec::CASE_PREFIX]) {
        case_total += kv.expect("scan").1.len();
        cases += 1;
    }
    // The pages' bytes, shared out among the cases they hold.
    let (mut page_total, mut events) = (0, Vec::new());
    for kv in store.scan(&[codec::PAGE_PREFIX]) {
        let (_, v) = kv.expect("scan");
        events.extend(codec::decode_page(&v).expect("a page").into_iter().flat_map(|r| r.events));
        page_total += v.len();
    }
    // The same events as one batch writes them, in full pages, packed.
    let full = codec::encode_pages(&events, &mut 1, |_| 0).expect("pages").pages;
    let plain: usize = full.iter().map(|(_, v)| v.len()).sum();
    let packed: usize = full.into_iter().map(|(_, v)| codec::pack_page(v).len()).sum();
    Shape {
        case_bytes: case_total / cases.max(1),
        event_bytes: vec![page_total / cases.max(1)],
        events_per_case: events.len() / cases.max(1),
        page_packing: packed as f64 / plain.max(1) as f64,
    }
}

/// How [`sled_raw`] lays out an accepted case's writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// The case log's format 1: a case record key and a key per run of its
    /// events (one, for an accepted case).
    Keys,
    /// The case log's format 3: a case record key each, while the events
    /// of a whole batch are written together under one page key per page,
    /// filled to the case log's `PAGE_FILL_BYTES` (6 KiB), small enough that
    /// sled keeps a leaf of them inline in its log rather than in a blob
    /// file, and stored packed (the size [`Shape::page_packing`] gives).
    Paged,
}

/// sled 0.34.7 alone, configured as `SledStore` does: `cases_per_batch`
/// cases (a case record and its events each) per atomic batch, then flush
/// and fsync of the db file.
pub fn sled_raw(
    dir: &Path,
    shape: &Shape,
    layout: Layout,
    cases_per_batch: usize,
    cases: usize,
    limit: Duration,
) -> (usize, f64) {
    let db =
        sled::Config::new().path(dir).flush_every_ms(None).cache_capacity(256 << 20).open().expect("sled");
    let file = File::open(dir.join("db")).expect("db file");
    let case_value = vec![0x5a; shape.case_bytes];
    let event_values: Vec<Vec<u8>> = shape.event_bytes.iter().map(|&n| vec![0xa5; n]).collect();
    let events: Vec<u8> = event_values.concat();
    let mut ms = 1_795_485_600_000i64;
    let (mut done, mut page_no, t0) = (0, 0u64, Instant::now());
    while done < cases && t0.elapsed() < limit {
        let mut b = sled::Batch::default();
        let mut page = Vec::new();
        let mut put_page = |b: &mut sled::Batch, page: &mut Vec<u8>| {
            page_no += 1;
            // Stored packed, as the case log stores it.
            page.truncate((page.len() as f64 * shape.page_packing).ceil() as usize);
            b.insert(codec::page_key(page_no), std::mem::take(page));
        };
        for _ in 0..cases_per_batch {
            ms += 1;
            let id = CaseId::new_at(Timestamp(ms));
            match layout {
                Layout::Keys => {
                    for (seq, v) in event_values.iter().enumerate() {
                        b.insert(codec::event_key(&id, seq as u32 + 1), v.clone());
                    }
                }
                Layout::Paged => {
                    if !page.is_empty() && page.len() + events.len() > codec::PAGE_FILL_BYTES {
                        put_page(&mut b, &mut page);
                    }
                    page.extend_from_slice(&events);
                }
            }
            b.insert(codec::case_key(&id), case_value.clone());
        }
        if !page.is_empty() {
            put_page(&mut b, &mut page);
        }
        db.apply_batch(b).expect("apply_batch");
        db.flush().expect("flush");
        file.sync_all().expect("fsync");
        done += cases_per_batch;
    }
    (done, t0.elapsed().as_secs_f64())
}

pub fn dir_bytes(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

pub const TEXTS: [(&str, &str); 8] = [
    ("water", "家里水管爆了，一直在漏水，楼下也被淹了"),
    ("heating", "暖气不热，屋里只有十几度，老人受不了"),
    ("street_lighting", "路口的路灯坏了好几天，晚上很黑"),
    ("sanitation", "垃圾好几天没人清运，味道很大"),
    ("neighbour_dispute", "楼上邻居装修噪音太大，影响休息"),
    ("market_food_safety", "超市卖过期食品，要求处理"),
    ("", "家门口的井盖丢了，很危险"),
    ("", "想反映一下小区物业的问题"),
];

/// A deterministic sample of intakes: a point inside every non-dedicated grid,
/// texts with and without a category, a few urgent cases.
pub fn intakes(reg: &Arc<Registry>) -> Vec<Intake> {
    let router = Router::new(reg.clone());
    let mut out = Vec::new();
    for (g, grid) in reg.grids.iter().enumerate() {
        if grid.kind == GridKind::Dedicated {
            continue;
        }
        let Some(p) = router.interior_point(GridIdx(g as u32)) else { continue };
        let (cat, text) = TEXTS[g % TEXTS.len()];
        out.push(Intake {
            text: text.into(),
            category: ((!cat.is_empty()).then(|| cat.to_string())).map(Into::into),
            location: Location { point: Some(p), ..Location::default() },
            phone: Some(format!("138{:08}", g * 7919 % 100_000_000).into()),
            priority: if g % 10 == 0 { Priority::Urgent } else { Priority::Normal },
            ..Intake::default()
        });
    }
    out
}
