//! Recovery: every stored case comes back once, and a case whose record is
//! ahead of its stored events, or damaged, stops the start with its number
//! or key.

use gridline_caselog::{codec, CaseLog, LogError, MemStore, Recovery, WriteBatch, RECOVER_CHECK_RECENT};
mod common;

use common::accepted;
use gridline_model::{Case, Event};

fn log_with(n: u32) -> (CaseLog<MemStore>, Vec<Case>) {
    let log = CaseLog::open(MemStore::new(), Some("JD")).unwrap();
    let mut cases = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let (events, mut batch): (Vec<Event>, Vec<Case>) = chunk.iter().map(|&i| accepted(i)).unzip();
        log.write(log.encode(&events, &mut batch).unwrap()).unwrap();
        cases.extend(batch);
    }
    log.sync().unwrap();
    (log, cases)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn every_case_comes_back_once_in_key_order() {
    // More cases than recovery checks against their events, in many chunks.
    let n = RECOVER_CHECK_RECENT as u32 + 3_000;
    let (log, cases) = log_with(n);
    let mut got = Vec::new();
    assert_eq!(log.recover(|c| got.push(c)).unwrap(), n as u64);
    assert_eq!(got, cases);
}

#[test]
fn a_record_ahead_of_its_events_is_reported_by_case_number() {
    // Enough older cases that the set of recent ones is cut back before
    // the damaged case, the newest, arrives.
    let n = 2 * RECOVER_CHECK_RECENT as u32 + 100;
    let (log, _) = log_with(n);
    let (event, mut case) = accepted(n);
    // The record claims a second event that was never stored.
    case.last_seq = 2;
    let mut b = WriteBatch::default();
    b.put(codec::event_key(&case.id, 1), codec::encode_events(&[event]).unwrap());
    b.put(codec::case_key(&case.id), codec::encode_case(&case).unwrap());
    log.write(b).unwrap();
    let err = log.recover(|_| {}).unwrap_err();
    let LogError::Inconsistent(msg) = err else { panic!("expected an inconsistency, got {err:?}") };
    assert!(msg.contains(&format!("JD-20260101-{:06}", n + 1)), "{msg}");
    assert!(msg.contains("is at event 2"), "{msg}");
}

#[test]
fn a_record_without_events_is_reported() {
    let (log, _) = log_with(10);
    let (_, case) = accepted(10);
    let mut b = WriteBatch::default();
    b.put(codec::case_key(&case.id), codec::encode_case(&case).unwrap());
    log.write(b).unwrap();
    let err = log.recover(|_| {}).unwrap_err().to_string();
    assert!(err.contains("JD-20260101-000011") && err.contains("has no events"), "{err}");
}

#[test]
fn a_damaged_record_stops_recovery_with_its_key() {
    let (log, cases) = log_with(2_000);
    let key = codec::case_key(&cases[1_500].id);
    let mut v = codec::encode_case(&cases[1_500]).unwrap();
    let last = v.len() - 1;
    v[last] ^= 0x55;
    let mut b = WriteBatch::default();
    b.put(key.clone(), v);
    log.write(b).unwrap();
    let err = log.recover(|_| {}).unwrap_err();
    assert!(matches!(&err, LogError::Corrupt { key: k, .. } if *k == hex(&key)), "{err:?}");
}

/// Takes cases slowly at first, so that the reader finds the hand-over
/// queue full and decodes chunks itself.
struct Slow {
    got: Vec<Case>,
}

impl Recovery for Slow {
    type Output = Vec<Case>;
    fn push(&mut self, case: Case) {
        if self.got.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        self.got.push(case);
    }
    fn finish(self) -> Vec<Case> {
        self.got
    }
}

#[test]
fn cases_the_reader_decodes_itself_come_back_in_order_too() {
    let (log, cases) = log_with(20_000);
    let (n, got) = log.recover_into(Slow { got: Vec::new() }).unwrap();
    assert_eq!(n, 20_000);
    assert_eq!(got, cases);
}

#[test]
fn a_damaged_record_the_reader_decodes_stops_recovery_with_its_key() {
    let (log, cases) = log_with(20_000);
    let key = codec::case_key(&cases[15_000].id);
    let mut v = codec::encode_case(&cases[15_000]).unwrap();
    v[8] ^= 0x55;
    let mut b = WriteBatch::default();
    b.put(key.clone(), v);
    log.write(b).unwrap();
    let err = log.recover_into(Slow { got: Vec::new() }).map(|_| ()).unwrap_err();
    assert!(matches!(&err, LogError::Corrupt { key: k, .. } if *k == hex(&key)), "{err:?}");
}
