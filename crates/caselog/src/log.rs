//! The case log: append a batch of events with the cases they produce, make
//! it durable, and get everything back at start.

use std::collections::HashMap;

use gridline_model::{Case, CaseId, Event, Timestamp};
use tracing::{debug, info, warn};

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
    /// Records whose township is the one a dispatch set under the fold of
    /// versions before 2026-11-27 (see `verify`).
    pub old_townships: u64,
}

/// Whether `stored` differs from `replayed` in its township alone.
///
/// Versions before 2026-11-27 let every dispatch set the case's township
/// to the assigned worker's, so a case a supervisor dispatched to another
/// township was stored under that one; the replay now keeps the
/// location's. Such a record is accepted (and counted): a township-only
/// difference cannot come from damaged bytes, which fail their checksum.
fn township_only(stored: &Case, replayed: &Case) -> bool {
    stored.township != replayed.township
        && *replayed == Case { township: replayed.township.clone(), ..stored.clone() }
}

/// The `k` most recently changed cases seen so far, as `(updated_at, id,
/// last_seq)`: kept in a buffer of up to `2k`, cut back to the `k` newest
/// when it fills (linear time overall; a heap cost a sift per case, since
/// cases arrive oldest first).
struct Recent {
    k: usize,
    items: Vec<(Timestamp, CaseId, u32)>,
}

impl Recent {
    fn new(k: usize) -> Recent {
        Recent { k, items: Vec::with_capacity(2 * k) }
    }

    fn push(&mut self, item: (Timestamp, CaseId, u32)) {
        self.items.push(item);
        if self.items.len() >= 2 * self.k {
            self.cut();
        }
    }

    fn cut(&mut self) {
        if self.items.len() > self.k {
            let drop = self.items.len() - self.k;
            self.items.select_nth_unstable(drop);
            self.items.drain(..drop);
        }
    }

    fn into_vec(mut self) -> Vec<(Timestamp, CaseId, u32)> {
        self.cut();
        self.items
    }
}

/// Where recovery puts the cases it reads.
pub trait Recovery {
    type Output;
    /// Takes one stored case; cases come in id order.
    fn push(&mut self, case: Case);
    /// Runs once every case is in.
    fn finish(self) -> Self::Output;
}

/// Stored pairs handed from the recovery reader to the decoding side: one
/// buffer a chunk rather than two allocations a pair.
#[derive(Default)]
struct Raw {
    bytes: Vec<u8>,
    /// Where each pair's key and value end in `bytes`.
    ends: Vec<(usize, usize)>,
}

impl Raw {
    const PAIRS: usize = 512;

    fn push(&mut self, k: &[u8], v: &[u8]) {
        if self.bytes.capacity() == 0 {
            self.bytes.reserve(Raw::PAIRS * 320);
            self.ends.reserve(Raw::PAIRS);
        }
        self.bytes.extend_from_slice(k);
        let k_end = self.bytes.len();
        self.bytes.extend_from_slice(v);
        self.ends.push((k_end, self.bytes.len()));
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut start = 0;
        self.ends.iter().map(move |&(k_end, v_end)| {
            let pair = (&self.bytes[start..k_end], &self.bytes[k_end..v_end]);
            start = v_end;
            pair
        })
    }
}

enum Chunk {
    Raw(Raw),
    Decoded(Vec<Case>),
}

/// One stored case record, checked: envelope, checksum, and the id its key names.
fn decode_case(k: &[u8], v: &[u8]) -> Result<Case, LogError> {
    let case: Case = codec::decode(Kind::Case, v).map_err(|e| corrupt(k, e))?;
    if codec::parse_case_key(k) != Some(case.id) {
        return Err(LogError::Inconsistent(format!("case record under key {} has id {}", hex(k), case.id)));
    }
    Ok(case)
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
                let meta = codec::read_meta(&bytes).map_err(|e| corrupt(META_KEY, e))?;
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

    /// The county code the log was written for (its format record).
    pub fn county(&self) -> Result<String, LogError> {
        let bytes = self.store.get(META_KEY)?.ok_or(LogError::Empty)?;
        Ok(codec::read_meta(&bytes).map_err(|e| corrupt(META_KEY, e))?.county)
    }

    /// Encodes `events` and the resulting `cases` as one batch (checksummed envelopes).
    pub fn encode<'a>(
        &self,
        events: &[Event],
        cases: impl IntoIterator<Item = &'a Case>,
    ) -> Result<WriteBatch, LogError> {
        let mut b = WriteBatch::default();
        for (k, v) in codec::encode_event_runs(events).map_err(LogError::Encode)? {
            b.put(k, v);
        }
        for c in cases {
            b.put(codec::case_key(&c.id), codec::encode_case(c).map_err(LogError::Encode)?);
        }
        Ok(b)
    }

    /// Stages an encoded batch, atomically. Not yet durable: see `sync`.
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
        // Every key a run of them may have been stored under (a long run is
        // stored as several); removing one that is not there is harmless.
        for e in events {
            b.remove(codec::event_key(&e.case, e.seq));
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
    pub fn recover(&self, each: impl FnMut(Case)) -> Result<u64, LogError> {
        struct Each<F>(F);
        impl<F: FnMut(Case)> Recovery for Each<F> {
            type Output = ();
            fn push(&mut self, case: Case) {
                (self.0)(case)
            }
            fn finish(self) {}
        }
        self.recover_into(Each(each)).map(|(n, ())| n)
    }

    /// [`recover`](Self::recover) into `into`, returning the number of cases
    /// and what `into` finishes as.
    ///
    /// Two threads share the work: a reader scans the stored records and
    /// hands them over in chunks, raw; this thread decodes them and gives
    /// each case to `into`. When this thread falls behind (the hand-over
    /// queue is full), the reader decodes the chunk itself. Once every case
    /// is read, `into.finish()` runs here while a second thread checks the
    /// recent cases' events.
    pub fn recover_into<R: Recovery>(&self, mut into: R) -> Result<(u64, R::Output), LogError> {
        let t0 = std::time::Instant::now();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(4);
        std::thread::scope(|s| {
            let reader = std::thread::Builder::new()
                .name("gridline-recover".into())
                .spawn_scoped(s, move || -> Result<(), LogError> {
                    let mut chunk = Raw::default();
                    // Hands a full chunk over, or, when the other side is
                    // behind, decodes it first. `false`: the other side stopped.
                    let send = |full: Raw| -> Result<bool, LogError> {
                        let back = match tx.try_send(Chunk::Raw(full)) {
                            Ok(()) => return Ok(true),
                            Err(std::sync::mpsc::TrySendError::Full(Chunk::Raw(back))) => back,
                            // The decoding side stopped at a bad record: it reports that.
                            Err(_) => return Ok(false),
                        };
                        let cases = back.pairs().map(|(k, v)| decode_case(k, v)).collect::<Result<_, _>>()?;
                        Ok(tx.send(Chunk::Decoded(cases)).is_ok())
                    };
                    // Whether to go on: the other side still takes chunks, and no error.
                    let mut going = Ok(true);
                    self.store.for_each(&[codec::CASE_PREFIX], &mut |k, v| {
                        chunk.push(k, v);
                        if chunk.len() == Raw::PAIRS {
                            going = send(std::mem::take(&mut chunk));
                        }
                        matches!(going, Ok(true))
                    })?;
                    if going? && !chunk.is_empty() {
                        send(chunk)?;
                    }
                    Ok(())
                })
                .map_err(|e| LogError::Inconsistent(format!("cannot start the recovery thread: {e}")))?;
            let mut recent = Recent::new(RECOVER_CHECK_RECENT);
            let mut n = 0;
            let mut take = |case: Case| {
                recent.push((case.updated_at, case.id, case.last_seq));
                n += 1;
                into.push(case);
            };
            let decoded = (|| -> Result<(), LogError> {
                for chunk in rx {
                    match chunk {
                        Chunk::Raw(raw) => {
                            for (k, v) in raw.pairs() {
                                take(decode_case(k, v)?);
                            }
                        }
                        Chunk::Decoded(cases) => cases.into_iter().for_each(&mut take),
                    }
                }
                Ok(())
            })();
            // A read error ends the scan early: report it, not what it caused.
            reader.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            decoded?;
            let scanned = t0.elapsed();
            let recent = recent.into_vec();
            let checker = std::thread::Builder::new()
                .name("gridline-recover".into())
                .spawn_scoped(s, move || -> Result<(), LogError> {
                    for (at, id, seq) in recent {
                        self.check_last_event(&id, seq, at)?;
                    }
                    Ok(())
                })
                .map_err(|e| LogError::Inconsistent(format!("cannot start the recovery thread: {e}")))?;
            let out = into.finish();
            let finished = t0.elapsed();
            checker.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            debug!(
                cases = n,
                scan_ms = scanned.as_millis() as u64,
                finish_ms = (finished - scanned).as_millis() as u64,
                check_wait_ms = (t0.elapsed() - finished).as_millis() as u64,
                "read every case record"
            );
            Ok((n, out))
        })
    }

    fn check_last_event(&self, id: &CaseId, last_seq: u32, at: Timestamp) -> Result<(), LogError> {
        let inconsistent = |what: &str| -> LogError {
            let no = self
                .store
                .get(&codec::case_key(id))
                .ok()
                .flatten()
                .and_then(|v| codec::decode::<Case>(Kind::Case, &v).ok())
                .map_or_else(|| "?".to_string(), |c| c.no.to_string());
            LogError::Inconsistent(format!("case {no} ({id}) {what}"))
        };
        let Some((k, v)) = self.store.last(&codec::events_prefix(id))? else {
            return Err(inconsistent("has no events"));
        };
        let run: Vec<Event> = codec::decode(Kind::Events, &v).map_err(|e| corrupt(&k, e))?;
        match run.last() {
            Some(ev) if ev.case == *id && ev.seq == last_seq && ev.at == at => Ok(()),
            Some(ev) if ev.seq > last_seq => {
                Err(inconsistent(&format!("has an event after its last recorded one ({last_seq})")))
            }
            _ => Err(inconsistent(&format!(
                "is at event {last_seq} but its newest stored event is not that one"
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
        let mut report = VerifyReport::default();
        let mut current: Option<Case> = None;
        let mut finish = |c: Option<Case>, report: &mut VerifyReport| -> Result<(), LogError> {
            let Some(c) = c else { return Ok(()) };
            let Some(s) = stored.remove(&c.id) else {
                return Err(LogError::Inconsistent(format!(
                    "events of case {} ({}) but no case record",
                    c.no, c.id
                )));
            };
            let same = s == c;
            if !same && !township_only(&s, &c) {
                return Err(LogError::Inconsistent(format!(
                    "case {} ({}) differs from the replay of its {} events",
                    c.no, c.id, c.last_seq
                )));
            }
            if !same {
                report.old_townships += 1;
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
