//! The case log: append a batch of events with the cases they produce, make
//! it durable, and get everything back at start.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use gridline_model::{Case, CaseId, CaseNo, Event, Timestamp};
use tracing::{info, warn};

use crate::codec::{self, CodecError, Kind, Meta, FORMAT_VERSION, META_KEY};
use crate::store::{Store, StoreError, WriteBatch};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("corrupt record at key {key}: {source}")]
    Corrupt { key: String, source: CodecError },
    #[error("inconsistent log: {0}")]
    Inconsistent(String),
    #[error("cannot encode: {0}")]
    Encode(CodecError),
    #[error("no case log here (no format record): not a Gridline data directory")]
    Empty,
    #[error("the data directory belongs to county `{found}`, not `{expected}`")]
    WrongCounty { found: String, expected: String },
}

fn corrupt(key: &[u8], source: CodecError) -> LogError {
    LogError::Corrupt { key: hex(key), source }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// How many of the most recently changed cases recovery checks against their
/// events. A crash can only catch the batches of its last moments (a batch
/// is at most a few thousand cases), and the first start after that crash
/// checks them while they are still the most recent; `verify` checks all.
pub const RECOVER_CHECK_RECENT: usize = 16_384;

/// What a full verification counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub cases: u64,
    pub events: u64,
    pub open: u64,
    pub closed: u64,
    pub bytes_on_disk: Option<u64>,
}

/// The durable log of cases and their events.
pub struct CaseLog<S: Store> {
    store: S,
}

impl<S: Store> CaseLog<S> {
    /// Opens the log of `county`, writing its format record if the store is
    /// new. With `county` `None` (offline tools), opens an existing log of any
    /// county and refuses an empty store.
    pub fn open(store: S, county: Option<&str>) -> Result<CaseLog<S>, LogError> {
        match (store.get(META_KEY)?, county) {
            (Some(bytes), _) => {
                let meta: Meta = codec::decode(Kind::Meta, &bytes).map_err(|e| corrupt(META_KEY, e))?;
                if meta.format != FORMAT_VERSION {
                    return Err(corrupt(META_KEY, CodecError::Version(meta.format)));
                }
                if let Some(county) = county.filter(|c| *c != meta.county) {
                    return Err(LogError::WrongCounty { found: meta.county, expected: county.to_string() });
                }
            }
            (None, None) => return Err(LogError::Empty),
            (None, Some(county)) => {
                let meta = Meta {
                    format: FORMAT_VERSION,
                    created_by: concat!("gridline ", env!("CARGO_PKG_VERSION")).to_string(),
                    county: county.to_string(),
                };
                let mut b = WriteBatch::default();
                b.put(META_KEY.to_vec(), codec::encode(Kind::Meta, &meta).map_err(LogError::Encode)?);
                store.apply(b)?;
                store.sync()?;
                info!(county, "created a new case log");
            }
        }
        Ok(CaseLog { store })
    }

    /// Encodes `events` and the resulting `cases` as one batch (checksummed envelopes).
    pub fn encode<'a>(
        &self,
        events: &[Event],
        cases: impl IntoIterator<Item = &'a Case>,
    ) -> Result<WriteBatch, LogError> {
        let mut b = WriteBatch::default();
        for run in codec::event_runs(events) {
            let first = &run[0];
            b.put(
                codec::event_key(&first.case, first.seq),
                codec::encode_events(run).map_err(LogError::Encode)?,
            );
        }
        for c in cases {
            b.put(codec::case_key(&c.id), codec::encode_case(c).map_err(LogError::Encode)?);
        }
        Ok(b)
    }

    /// Makes an encoded batch visible, atomically. Not yet durable.
    pub fn write(&self, batch: WriteBatch) -> Result<(), LogError> {
        Ok(self.store.apply(batch)?)
    }

    /// Undoes a `write` whose sync failed: removes its events and restores
    /// the cases as they were (`None`: the case did not exist).
    pub fn revert<'a>(
        &self,
        events: &[Event],
        previous: impl IntoIterator<Item = (CaseId, Option<&'a Case>)>,
    ) -> Result<(), LogError> {
        let mut b = WriteBatch::default();
        for run in codec::event_runs(events) {
            b.remove(codec::event_key(&run[0].case, run[0].seq));
        }
        for (id, c) in previous {
            match c {
                Some(c) => b.put(codec::case_key(&id), codec::encode_case(c).map_err(LogError::Encode)?),
                None => b.remove(codec::case_key(&id)),
            }
        }
        self.store.apply(b)?;
        Ok(())
    }

    /// The durability barrier: returns once everything appended is on disk.
    pub fn sync(&self) -> Result<(), LogError> {
        Ok(self.store.sync()?)
    }

    /// One case's events, in order, each checked.
    pub fn events(&self, id: &CaseId) -> Result<Vec<Event>, LogError> {
        let mut out = Vec::new();
        for r in self.store.scan(&codec::events_prefix(id)) {
            let (k, v) = r?;
            out.extend(codec::decode::<Vec<Event>>(Kind::Events, &v).map_err(|e| corrupt(&k, e))?);
        }
        Ok(out)
    }

    /// Loads every case for the engine to rebuild its state from, checking
    /// each record's checksum, and, for the `RECOVER_CHECK_RECENT` most
    /// recently changed cases (the only ones a crash can have caught
    /// mid-commit), that the case's last event is stored, matches, and is the
    /// newest. `verify` replays every history.
    pub fn recover(&self, mut each: impl FnMut(Case)) -> Result<u64, LogError> {
        // The most recent cases seen so far: a min-heap on their update time.
        let mut recent: BinaryHeap<Reverse<(Timestamp, CaseId, u32, CaseNo)>> = BinaryHeap::new();
        let mut n = 0;
        for r in self.store.scan(&[codec::CASE_PREFIX]) {
            let (k, v) = r?;
            let case: Case = codec::decode(Kind::Case, &v).map_err(|e| corrupt(&k, e))?;
            if codec::parse_case_key(&k) != Some(case.id) {
                return Err(LogError::Inconsistent(format!(
                    "case record under key {} has id {}",
                    hex(&k),
                    case.id
                )));
            }
            if recent.len() < RECOVER_CHECK_RECENT
                || recent.peek().is_some_and(|Reverse(r)| r.0 < case.updated_at)
            {
                recent.push(Reverse((case.updated_at, case.id, case.last_seq, case.no.clone())));
                if recent.len() > RECOVER_CHECK_RECENT {
                    recent.pop();
                }
            }
            n += 1;
            each(case);
        }
        for Reverse((at, id, seq, no)) in recent {
            self.check_last_event(&id, &no, seq, at)?;
        }
        Ok(n)
    }

    fn check_last_event(
        &self,
        id: &CaseId,
        no: &CaseNo,
        last_seq: u32,
        at: Timestamp,
    ) -> Result<(), LogError> {
        let Some((k, v)) = self.store.last(&codec::events_prefix(id))? else {
            return Err(LogError::Inconsistent(format!("case {no} ({id}) has no events")));
        };
        let run: Vec<Event> = codec::decode(Kind::Events, &v).map_err(|e| corrupt(&k, e))?;
        match run.last() {
            Some(ev) if ev.case == *id && ev.seq == last_seq && ev.at == at => Ok(()),
            Some(ev) if ev.seq > last_seq => Err(LogError::Inconsistent(format!(
                "case {no} has an event after its last recorded one ({last_seq})"
            ))),
            _ => Err(LogError::Inconsistent(format!(
                "case {no} ({id}) is at event {last_seq} but its newest stored event is not that one"
            ))),
        }
    }

    /// Reads everything: every envelope, every history replayed through the
    /// lifecycle and compared with the stored case; no orphan events.
    pub fn verify(&self) -> Result<VerifyReport, LogError> {
        let mut stored: HashMap<CaseId, Case> = HashMap::new();
        for r in self.store.scan(&[codec::CASE_PREFIX]) {
            let (k, v) = r?;
            let case: Case = codec::decode(Kind::Case, &v).map_err(|e| corrupt(&k, e))?;
            stored.insert(case.id, case);
        }
        let mut report = VerifyReport { bytes_on_disk: self.store.size_on_disk(), ..Default::default() };
        let mut current: Option<Case> = None;
        let mut finish = |c: Option<Case>, report: &mut VerifyReport| -> Result<(), LogError> {
            let Some(c) = c else { return Ok(()) };
            let Some(s) = stored.remove(&c.id) else {
                return Err(LogError::Inconsistent(format!(
                    "events of case {} ({}) but no case record",
                    c.no, c.id
                )));
            };
            if s != c {
                return Err(LogError::Inconsistent(format!(
                    "case {} ({}) differs from the replay of its {} events",
                    c.no, c.id, c.last_seq
                )));
            }
            report.cases += 1;
            if c.status.is_open() {
                report.open += 1
            } else {
                report.closed += 1
            }
            Ok(())
        };
        for r in self.store.scan(&[codec::EVENT_PREFIX]) {
            let (k, v) = r?;
            let run: Vec<Event> = codec::decode(Kind::Events, &v).map_err(|e| corrupt(&k, e))?;
            let first = run.first().map(|e| (e.case, e.seq));
            if first.is_none() || codec::parse_event_key(&k) != first {
                return Err(LogError::Inconsistent(format!(
                    "events under key {} do not start there",
                    hex(&k)
                )));
            }
            for event in run {
                report.events += 1;
                match current.as_mut() {
                    Some(c) if c.id == event.case => c.apply(&event).map_err(|e| {
                        LogError::Inconsistent(format!("case {} event {}: {e}", c.no, event.seq))
                    })?,
                    _ => {
                        finish(current.take(), &mut report)?;
                        current = Some(Case::from_first(&event).map_err(|e| {
                            LogError::Inconsistent(format!("case {} event {}: {e}", event.case, event.seq))
                        })?);
                    }
                }
            }
        }
        finish(current.take(), &mut report)?;
        if let Some((id, c)) = stored.into_iter().next() {
            warn!(case = %id, "case record without events");
            return Err(LogError::Inconsistent(format!("case {} ({id}) has a record but no events", c.no)));
        }
        Ok(report)
    }
}
