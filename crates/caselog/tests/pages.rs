//! Format 2: a case's runs chained page to page over many batches, a
//! format-1 history continued in pages, a reverted batch, and what reading,
//! recovery and `verify` say of a broken chain.

use gridline_caselog::{codec, CaseLog, LogError, MemStore, Store, WriteBatch};
mod common;

use common::accepted;
use gridline_model::{Actor, Case, Event, EventKind, Timestamp};

/// The case's next event: parked at the command centre again.
fn park(case: &mut Case) -> Event {
    let e = Event {
        case: case.id,
        seq: case.last_seq + 1,
        at: Timestamp(case.updated_at.0 + 1),
        actor: Actor::system(),
        kind: EventKind::Waiting { reason: format!("第{}次等待", case.last_seq).into() },
    };
    case.apply(&e).unwrap();
    e
}

struct History {
    store: MemStore,
    log: CaseLog<MemStore>,
    cases: Vec<Case>,
    events: Vec<Vec<Event>>,
}

/// `rounds` batches over `n` cases: the first accepts them all, each later
/// one parks every case whose index is a multiple of the round (so most
/// cases skip batches, and case 0 is in every one).
fn history(n: u32, rounds: u32) -> History {
    let store = MemStore::new();
    let log = CaseLog::open(store.clone(), Some("JD")).unwrap();
    let (mut events, mut cases): (Vec<Vec<Event>>, Vec<Case>) =
        (0..n).map(accepted).map(|(e, c)| (vec![e], c)).unzip();
    let first: Vec<Event> = events.iter().map(|e| e[0].clone()).collect();
    log.write(log.encode(&first, &mut cases).unwrap()).unwrap();
    for round in 1..rounds {
        let mut batch = Vec::new();
        for (i, case) in cases.iter_mut().enumerate() {
            if (i as u32).is_multiple_of(round) {
                let e = park(case);
                events[i].push(e.clone());
                batch.push(e);
            }
        }
        log.write(log.encode(&batch, &mut cases).unwrap()).unwrap();
    }
    log.sync().unwrap();
    History { store, log, cases, events }
}

fn inconsistent(r: Result<impl std::fmt::Debug, LogError>) -> String {
    match r {
        Err(LogError::Inconsistent(m)) => m,
        other => panic!("expected an inconsistency, got {other:?}"),
    }
}

#[test]
fn every_history_reads_back_whole_over_many_batches() {
    let h = history(600, 6);
    for (case, events) in h.cases.iter().zip(&h.events) {
        assert_eq!(&h.log.events(case).unwrap(), events, "case {}", case.no);
    }
    assert!(h.cases[0].stored_page.get() > h.cases[1].stored_page.get(), "case 0 is in the last batch");
    let report = h.log.verify().unwrap();
    assert_eq!(report.cases, 600);
    assert_eq!(report.events, h.events.iter().map(Vec::len).sum::<usize>() as u64);
    let mut back = Vec::new();
    h.log.recover(|c| back.push(c)).unwrap();
    back.sort_by_key(|c| c.no.clone());
    assert_eq!(back, h.cases, "with the page of each one's newest events");
}

#[test]
fn a_format_1_history_goes_on_in_pages() {
    let store = MemStore::new();
    let meta = codec::Meta { format: 1, created_by: "gridline 0.1.0".into(), county: "JD".into() };
    let (first, mut case) = accepted(0);
    let mut b = WriteBatch::default();
    b.put(codec::META_KEY.to_vec(), codec::encode(codec::Kind::Meta, &meta).unwrap());
    b.put(codec::event_key(&case.id, 1), codec::encode_events(std::slice::from_ref(&first)).unwrap());
    b.put(codec::case_key(&case.id), codec::encode(codec::Kind::Case, &case).unwrap());
    store.apply(b).unwrap();
    store.sync().unwrap();
    // Offline tools read it as it is; opening it to write marks it as the
    // format this build writes.
    let read_only = CaseLog::open(store.clone(), None).unwrap();
    assert_eq!(read_only.events(&case).unwrap(), std::slice::from_ref(&first));
    assert_eq!(read_only.verify().unwrap().cases, 1);
    let format = |s: &MemStore| codec::read_meta(&s.get(codec::META_KEY).unwrap().unwrap()).unwrap().format;
    assert_eq!(format(&store), 1);
    let log = CaseLog::open(store.clone(), Some("JD")).unwrap();
    assert_eq!(format(&store), codec::LOG_FORMAT);
    let second = park(&mut case);
    let mut cases = [case];
    log.write(log.encode(std::slice::from_ref(&second), &mut cases).unwrap()).unwrap();
    log.sync().unwrap();
    let [case] = cases;
    assert_ne!(case.stored_page.get(), 0);
    assert_eq!(log.events(&case).unwrap(), [first, second]);
    assert_eq!(log.verify().unwrap().events, 2);
    assert_eq!(log.recover(|_| {}).unwrap(), 1);
}

#[test]
fn a_reverted_batch_leaves_no_page_behind() {
    let h = history(50, 2);
    let before = h.cases[0].clone();
    let mut cases = [before.clone()];
    let e = park(&mut cases[0]);
    let encoded = h.log.encode_events(&[e], |_| before.stored_page.get()).unwrap();
    let pages = encoded.pages.clone();
    let mut batch = encoded.batch;
    cases[0].stored_page.set(encoded.newest[0].1);
    h.log.put_case(&mut batch, &cases[0]).unwrap();
    h.log.write(batch).unwrap();
    assert_eq!(h.log.events(&cases[0]).unwrap().len(), 3);
    h.log.revert(pages.clone(), [(before.id, Some(&before))]).unwrap();
    h.log.sync().unwrap();
    // An orphan page would fail verify: it holds events past the page the
    // restored record names.
    h.log.verify().unwrap();
    for p in pages {
        let m = inconsistent(
            h.log.events(&Case { stored_page: gridline_model::StoredPage::new(p), ..before.clone() }),
        );
        assert!(m.contains("not stored"), "page {p}: {m}");
    }
    assert_eq!(h.log.events(&before).unwrap(), h.events[0]);
    let mut back = Vec::new();
    h.log.recover(|c| back.push(c)).unwrap();
    assert!(back.contains(&before));
}

#[test]
fn a_broken_chain_is_reported_by_reading_recovery_and_verify() {
    // A record naming a page that holds none of its events.
    let h = history(300, 3);
    let wrong = h.cases[1].clone();
    wrong.stored_page.set(h.cases[0].stored_page.get());
    assert_ne!(wrong.stored_page.get(), h.cases[1].stored_page.get());
    let m = inconsistent(h.log.events(&wrong));
    assert!(m.contains(wrong.no.as_str()) && m.contains("no events in page"), "{m}");
    let mut b = WriteBatch::default();
    h.log.put_case(&mut b, &wrong).unwrap();
    h.log.write(b).unwrap();
    let m = inconsistent(h.log.recover(|_| {}));
    assert!(m.contains(wrong.no.as_str()), "{m}");
    let m = inconsistent(h.log.verify());
    assert!(m.contains(wrong.no.as_str()), "{m}");

    // A page in the middle of a chain gone: case 0 was in every batch.
    let h = history(300, 3);
    let last = h.store.get(&codec::page_key(h.cases[0].stored_page.get())).unwrap().unwrap();
    let middle = codec::run_of(&last, &h.cases[0].id).unwrap().unwrap().prev;
    assert_ne!(middle, 0);
    let mut b = WriteBatch::default();
    b.remove(codec::page_key(middle));
    h.log.write(b).unwrap();
    let m = inconsistent(h.log.events(&h.cases[0]));
    assert!(m.contains(&format!("names page {middle}, which is not stored")), "{m}");
    let m = inconsistent(h.log.verify());
    assert!(m.contains("follows page"), "{m}");

    // A record ahead of its newest run.
    let h = history(300, 2);
    let mut ahead = h.cases[0].clone();
    ahead.last_seq += 1;
    let mut b = WriteBatch::default();
    h.log.put_case(&mut b, &ahead).unwrap();
    h.log.write(b).unwrap();
    let m = inconsistent(h.log.recover(|_| {}));
    assert!(m.contains(ahead.no.as_str()) && m.contains("is at event 3"), "{m}");
    let m = inconsistent(h.log.verify());
    assert!(m.contains(ahead.no.as_str()) && m.contains("differs from the replay"), "{m}");
}

/// Format-1 cases (records naming page 0, events under `e` keys) and
/// format-2 cases sharing pages, in one log.
fn mixed() -> (CaseLog<MemStore>, Vec<Case>) {
    let store = MemStore::new();
    let meta = codec::Meta { format: 1, created_by: "gridline 0.1.0".into(), county: "JD".into() };
    let mut b = WriteBatch::default();
    b.put(codec::META_KEY.to_vec(), codec::encode(codec::Kind::Meta, &meta).unwrap());
    let mut cases = Vec::new();
    for i in 0..20 {
        let (first, case) = accepted(i);
        b.put(codec::event_key(&case.id, 1), codec::encode_events(std::slice::from_ref(&first)).unwrap());
        b.put(codec::case_key(&case.id), codec::encode(codec::Kind::Case, &case).unwrap());
        cases.push(case);
    }
    store.apply(b).unwrap();
    let log = CaseLog::open(store, Some("JD")).unwrap();
    // Half the format-1 cases go on in pages; 40 new cases start in them.
    let (firsts, new): (Vec<Event>, Vec<Case>) = (20..60).map(accepted).unzip();
    cases.extend(new);
    let mut events = firsts;
    for case in cases.iter_mut().take(10) {
        events.push(park(case));
    }
    for case in cases.iter_mut().skip(20).step_by(2) {
        events.push(park(case));
    }
    log.write(log.encode(&events, &mut cases).unwrap()).unwrap();
    // A second page, for cases 0 to 4 and 40 on.
    let events: Vec<Event> =
        cases.iter_mut().enumerate().filter(|(i, _)| *i < 5 || *i >= 40).map(|(_, c)| park(c)).collect();
    log.write(log.encode(&events, &mut cases).unwrap()).unwrap();
    log.sync().unwrap();
    assert_eq!(
        [
            cases[0].stored_page.get(),
            cases[5].stored_page.get(),
            cases[20].stored_page.get(),
            cases[59].stored_page.get()
        ],
        [2, 1, 1, 2]
    );
    assert!(cases[..10].iter().chain(&cases[20..]).all(|c| c.stored_page.get() != 0));
    assert!(cases[10..20].iter().all(|c| c.stored_page.get() == 0));
    (log, cases)
}

#[test]
fn recovery_reports_each_inconsistency_by_the_case_it_is_in() {
    let (log, cases) = mixed();
    assert_eq!(log.recover(|_| {}).unwrap(), 60);
    log.verify().unwrap();
    let damaged = |case: &Case| {
        let mut b = WriteBatch::default();
        log.put_case(&mut b, case).unwrap();
        log.write(b).unwrap();
        let m = inconsistent(log.recover(|_| {}));
        let mut b = WriteBatch::default();
        log.put_case(&mut b, &cases[cases.iter().position(|c| c.id == case.id).unwrap()]).unwrap();
        log.write(b).unwrap();
        assert!(m.contains(case.no.as_str()), "{m}");
        m
    };
    for i in [0, 4, 5, 9, 12, 19, 20, 31, 39, 40, 58, 59] {
        // A record ahead of its newest event, and one behind it.
        let ahead = Case { last_seq: cases[i].last_seq + 1, ..cases[i].clone() };
        let m = damaged(&ahead);
        assert!(m.contains(&format!("is at event {}", ahead.last_seq)), "case {i}: {m}");
        if cases[i].last_seq > 1 {
            let behind = Case { last_seq: cases[i].last_seq - 1, ..cases[i].clone() };
            let m = damaged(&behind);
            assert!(m.contains("has an event after its last recorded one"), "case {i}: {m}");
        }
        // A record naming a page not stored, and one naming a page that
        // holds other cases' runs but not its own.
        let nowhere = Case { stored_page: gridline_model::StoredPage::new(1_000), ..cases[i].clone() };
        let m = damaged(&nowhere);
        assert!(m.contains("names page 1000, which is not stored"), "case {i}: {m}");
        // (Every case in pages has a run in page 1; cases 0 to 4 and 40 on, in 2.)
        if (5..40).contains(&i) {
            let elsewhere = Case { stored_page: gridline_model::StoredPage::new(2), ..cases[i].clone() };
            let m = damaged(&elsewhere);
            assert!(m.contains("no events in page 2"), "case {i}: {m}");
        }
        // A format-2 record that says it has no page (format 1's).
        if cases[i].stored_page.get() != 0 && i >= 20 {
            let m = damaged(&Case { stored_page: gridline_model::StoredPage::new(0), ..cases[i].clone() });
            assert!(m.contains("has no events"), "case {i}: {m}");
        }
    }
    assert_eq!(log.recover(|_| {}).unwrap(), 60);
    // A page several cases name, gone: one of them is named.
    let mut b = WriteBatch::default();
    b.remove(codec::page_key(1));
    log.write(b).unwrap();
    let m = inconsistent(log.recover(|_| {}));
    assert!(m.contains("names page 1, which is not stored"), "{m}");
    assert!(cases.iter().any(|c| c.stored_page.get() == 1 && m.contains(c.no.as_str())), "{m}");
}

/// Many batches of many cases through sled: every page of them is stored
/// inline in sled's log, none in a blob file of its own (which sled writes
/// for a leaf of values too large together, and never syncs).
#[test]
fn pages_are_small_enough_that_sled_writes_no_blob_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = gridline_caselog::SledStore::open(dir.path()).unwrap();
    let log = CaseLog::open(store, Some("JD")).unwrap();
    let (mut pages, mut bytes) = (0, 0);
    for batch in 0..20u32 {
        let (events, mut cases): (Vec<Event>, Vec<Case>) =
            (batch * 2000..(batch + 1) * 2000).map(accepted).unzip();
        let encoded = log.encode(&events, &mut cases).unwrap();
        for (k, v) in &encoded.ops {
            if k[0] == codec::PAGE_PREFIX {
                pages += 1;
                bytes += v.as_ref().map_or(0, Vec::len);
            }
        }
        log.write(encoded).unwrap();
        log.sync().unwrap();
    }
    // Enough full pages for several of sled's leaves.
    assert!(bytes > 40 * codec::PAGE_FILL_BYTES, "{pages} pages of {bytes} bytes");
    drop(log);
    let blobs = std::fs::read_dir(dir.path().join("blobs")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(blobs, 0, "sled wrote {blobs} blob files");
}
