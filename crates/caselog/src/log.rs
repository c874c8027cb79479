//! The case log: append a batch of events with the cases they produce, make
//! it durable, and get everything back at start.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use gridline_model::{Case, CaseId, Event, Timestamp};
use tracing::{debug, info, warn};

use crate::codec::{self, CodecError, Kind, Meta, LOG_FORMAT, META_KEY};
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
    /// Records judged answered on time (or not yet judged) although a claim
    /// deadline had passed before a return or a reassignment, as versions
    /// before 2026-11-28 folded them (see `verify`).
    pub old_responses: u64,
    /// Records without the assignment their response is charged to, though
    /// the case moved on after it was judged: written by versions before
    /// 2026-11-28 (or since, for a case that had moved on before; see
    /// `verify`). The audit charges their response to the current assignment.
    pub old_responders: u64,
}

/// The differences between a stored record and the replay of its events
/// that the fold of an older version explains (see `verify`): each is
/// accepted, and counted. None can come from damaged bytes, which fail
/// their checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct OlderFold {
    /// Versions before 2026-11-27 let every dispatch set the case's
    /// township to the assigned worker's, so a case a supervisor dispatched
    /// to another township was stored under that one; the replay keeps the
    /// location's.
    township: bool,
    /// Versions before 2026-11-28 judged the response at the first claim
    /// alone, so a case that missed its claim deadline, was returned or
    /// reassigned, and was then claimed in time was stored as answered on
    /// time (or, not yet claimed, as not judged); the replay records the
    /// miss.
    response: bool,
    /// Versions before 2026-11-28 kept no responder (`Case::responder`); a
    /// case whose response was judged then goes on without one for good
    /// (`Case::responder_unknown`), whenever its record is written again.
    responder: bool,
}

/// When builds began to record a missed claim deadline for good
/// (2026-11-28T12:00:00Z; the change was made that morning). A record last
/// written after it was written by such a build.
const RESPONSE_FOLD_SINCE: Timestamp = Timestamp(1_795_867_200_000);

/// What of [`OlderFold`] explains `stored` where it differs from
/// `replayed`, or `None` if something else differs.
fn older_fold(stored: &Case, replayed: &Case) -> Option<OlderFold> {
    let why = OlderFold {
        township: stored.township != replayed.township,
        // Only in a record last written before the new fold was: from
        // then on a build that forgot a miss would be a bug to report. A
        // record carried on from then (judged before responders were kept)
        // keeps the older fold's answer whenever it is written again.
        response: stored.responded_on_time != replayed.responded_on_time
            && replayed.responded_on_time == Some(false)
            && (stored.updated_at < RESPONSE_FOLD_SINCE || stored.responder_unknown),
        responder: stored.responder_unknown && stored.responder.is_none() && replayed.responder.is_some(),
    };
    let explained = Case {
        township: replayed.township.clone(),
        responder: if why.responder { replayed.responder.clone() } else { stored.responder.clone() },
        // Where the record came from, not the case: a replay never knows it.
        responder_unknown: replayed.responder_unknown,
        responded_on_time: if why.response { replayed.responded_on_time } else { stored.responded_on_time },
        ..stored.clone()
    };
    // (Nothing to count when only `responder_unknown` differs: a record
    // judged before responders were kept, of a case that never moved.)
    (explained == *replayed).then_some(why)
}

/// What recovery checks of a recent case: its newest event (sequence
/// number and time) and the page its record names. Ordered by time first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Newest {
    at: Timestamp,
    id: CaseId,
    seq: u32,
    page: u64,
}

/// The `k` most recently changed cases seen so far: kept in a buffer of up
/// to `2k`, cut back to the `k` newest when it fills (linear time overall;
/// a heap cost a sift per case, since cases arrive oldest first).
struct Recent {
    k: usize,
    items: Vec<Newest>,
}

impl Recent {
    fn new(k: usize) -> Recent {
        Recent { k, items: Vec::with_capacity(2 * k) }
    }

    fn push(&mut self, item: Newest) {
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

    fn into_vec(mut self) -> Vec<Newest> {
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
    let case = codec::decode_case(v).map_err(|e| corrupt(k, e))?;
    if codec::parse_case_key(k) != Some(case.id) {
        return Err(LogError::Inconsistent(format!("case record under key {} has id {}", hex(k), case.id)));
    }
    Ok(case)
}

/// The durable log of cases and their events.
pub struct CaseLog<S: Store> {
    store: S,
    /// The number the next page written gets (written by one thread, the engine's).
    next_page: AtomicU64,
}

/// A batch encoded by [`CaseLog::encode_events`]: its pages, which the
/// records of the cases it touched are to be added to (`put_case`).
#[derive(Debug, Default)]
pub struct Encoded {
    pub batch: WriteBatch,
    /// The numbers of its pages (for `revert`).
    pub pages: Range<u64>,
    /// The page of each touched case's newest event, for its record.
    pub newest: Vec<(CaseId, u64)>,
}

impl<S: Store> CaseLog<S> {
    /// Opens the log of `county`, writing its format record if the store is
    /// new. With `county` `None` (offline tools), opens an existing log of any
    /// county and refuses an empty store.
    pub fn open(store: S, county: Option<&str>) -> Result<CaseLog<S>, LogError> {
        let put_meta = |meta: &Meta| -> Result<(), LogError> {
            let mut b = WriteBatch::default();
            b.put(META_KEY.to_vec(), codec::encode(Kind::Meta, meta).map_err(LogError::Encode)?);
            store.apply(b)?;
            Ok(store.sync()?)
        };
        match (store.get(META_KEY)?, county) {
            (Some(bytes), _) => {
                let mut meta = codec::read_meta(&bytes).map_err(|e| corrupt(META_KEY, e))?;
                if let Some(county) = county.filter(|c| *c != meta.county) {
                    return Err(LogError::WrongCounty { found: meta.county, expected: county.to_string() });
                }
                // Opened to write (offline tools pass no county): what is
                // written from now on is this build's format (pages in sled
                // packed), which a build that reads only older ones must
                // refuse.
                if county.is_some() && meta.format < LOG_FORMAT {
                    info!(
                        from = meta.format,
                        to = LOG_FORMAT,
                        "marking the case log as the format this build writes"
                    );
                    meta.format = LOG_FORMAT;
                    put_meta(&meta)?;
                }
            }
            (None, None) => return Err(LogError::Empty),
            (None, Some(county)) => {
                let meta = Meta {
                    format: LOG_FORMAT,
                    created_by: concat!("gridline ", env!("CARGO_PKG_VERSION")).to_string(),
                    county: county.to_string(),
                };
                put_meta(&meta)?;
                info!(county, "created a new case log");
            }
        }
        let next_page = match store.last(&[codec::PAGE_PREFIX])? {
            Some((k, _)) => {
                codec::parse_page_key(&k)
                    .ok_or_else(|| corrupt(&k, CodecError::Decode("not a page key".into())))?
                    + 1
            }
            None => 1,
        };
        Ok(CaseLog { store, next_page: AtomicU64::new(next_page) })
    }

    /// The county code the log was written for (its format record).
    pub fn county(&self) -> Result<String, LogError> {
        let bytes = self.store.get(META_KEY)?.ok_or(LogError::Empty)?;
        Ok(codec::read_meta(&bytes).map_err(|e| corrupt(META_KEY, e))?.county)
    }

    /// Encodes a batch's `events` in pages (checksummed envelopes), each
    /// case's run naming its page before (`prev`: the case's
    /// `stored_page`). The records of the cases they touch are added with
    /// [`put_case`](Self::put_case), once each case's `stored_page` is set
    /// to its entry in `newest`.
    pub fn encode_events(
        &self,
        events: &[Event],
        prev: impl Fn(&CaseId) -> u64,
    ) -> Result<Encoded, LogError> {
        let first = self.next_page.load(Ordering::Relaxed);
        let mut next = first;
        let paged = codec::encode_pages(events, &mut next, prev).map_err(LogError::Encode)?;
        self.next_page.store(next, Ordering::Relaxed);
        let mut batch = WriteBatch::default();
        for (k, v) in paged.pages {
            batch.put(k, v);
        }
        Ok(Encoded { batch, pages: first..next, newest: paged.newest })
    }

    /// [`encode_events`](Self::encode_events) and the records of `cases`
    /// (those the events touch, each given its `stored_page`), for callers
    /// that hold the cases in a slice.
    pub fn encode(&self, events: &[Event], cases: &mut [Case]) -> Result<WriteBatch, LogError> {
        let prev: HashMap<CaseId, u64> = cases.iter().map(|c| (c.id, c.stored_page.get())).collect();
        let mut e = self.encode_events(events, |id| prev.get(id).copied().unwrap_or(0))?;
        let at: HashMap<CaseId, u64> = e.newest.iter().copied().collect();
        for c in cases.iter_mut() {
            if let Some(&page) = at.get(&c.id) {
                c.stored_page.set(page);
                self.put_case(&mut e.batch, c)?;
            }
        }
        Ok(e.batch)
    }

    /// Adds `case`'s record to a batch.
    pub fn put_case(&self, batch: &mut WriteBatch, case: &Case) -> Result<(), LogError> {
        batch.put(codec::case_key(&case.id), codec::encode_case(case).map_err(LogError::Encode)?);
        Ok(())
    }

    /// Stages an encoded batch, atomically. Not yet durable: see `sync`.
    pub fn write(&self, batch: WriteBatch) -> Result<(), LogError> {
        self.store.admit()?;
        Ok(self.store.apply(batch)?)
    }

    /// Undoes a `write` whose sync failed: removes its pages and restores
    /// the cases as they were (`None`: the case did not exist). Page
    /// numbers are not given again.
    pub fn revert<'a>(
        &self,
        pages: Range<u64>,
        previous: impl IntoIterator<Item = (CaseId, Option<&'a Case>)>,
    ) -> Result<(), LogError> {
        let mut b = WriteBatch::default();
        for page in pages {
            b.remove(codec::page_key(page));
        }
        for (id, c) in previous {
            match c {
                Some(c) => self.put_case(&mut b, c)?,
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

    /// One case's events, in order, each checked: those of a format-1 log
    /// under `e` keys, then its runs in pages, from `case.stored_page` back.
    pub fn events(&self, case: &Case) -> Result<Vec<Event>, LogError> {
        let mut out = Vec::new();
        for r in self.store.scan(&codec::events_prefix(&case.id)) {
            let (k, v) = r?;
            out.extend(codec::decode::<Vec<Event>>(Kind::Events, &v).map_err(|e| corrupt(&k, e))?);
        }
        let mut runs = Vec::new();
        let mut page = case.stored_page.get();
        while page != 0 {
            let run = self.run_in(page, case)?;
            if run.prev >= page {
                return Err(self.inconsistent(
                    case,
                    &format!("has a run in page {page} that follows page {}", run.prev),
                ));
            }
            page = run.prev;
            runs.push(run.events);
        }
        out.extend(runs.into_iter().rev().flatten());
        Ok(out)
    }

    /// The run of `case` in `page`.
    fn run_in(&self, page: u64, case: &Case) -> Result<codec::Run, LogError> {
        let k = codec::page_key(page);
        let Some(v) = self.store.get(&k)? else {
            return Err(self.inconsistent(case, &format!("names page {page}, which is not stored")));
        };
        codec::run_of(&v, &case.id)
            .map_err(|e| corrupt(&k, e))?
            .ok_or_else(|| self.inconsistent(case, &format!("has no events in page {page}")))
    }

    fn inconsistent(&self, case: &Case, what: &str) -> LogError {
        LogError::Inconsistent(format!("case {} ({}) {what}", case.no, case.id))
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
                recent.push(Newest {
                    at: case.updated_at,
                    id: case.id,
                    seq: case.last_seq,
                    page: case.stored_page.get(),
                });
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
            let mut recent = recent.into_vec();
            // Cases that share a page one after the other: each page is read once.
            recent.sort_unstable_by_key(|r| r.page);
            let checker = std::thread::Builder::new()
                .name("gridline-recover".into())
                .spawn_scoped(s, move || -> Result<(), LogError> {
                    for cases in recent.chunk_by(|a, b| a.page == b.page) {
                        self.check_last_events(cases)?;
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

    /// Whether each case's newest stored event is its `last_seq`th, at
    /// `updated_at`: the last of its run in the page its record names (the
    /// same for every one of `cases`), or, for a case with no page, the
    /// last of its format-1 runs.
    fn check_last_events(&self, cases: &[Newest]) -> Result<(), LogError> {
        let inconsistent = |id: &CaseId, what: &str| -> LogError {
            let no = self
                .store
                .get(&codec::case_key(id))
                .ok()
                .flatten()
                .and_then(|v| codec::decode_case(&v).ok())
                .map_or_else(|| "?".to_string(), |c| c.no.to_string());
            LogError::Inconsistent(format!("case {no} ({id}) {what}"))
        };
        let Some(&Newest { page, .. }) = cases.first() else { return Ok(()) };
        let stored = if page == 0 {
            None
        } else {
            let k = codec::page_key(page);
            match self.store.get(&k)? {
                Some(v) => Some((k, v)),
                None => {
                    return Err(inconsistent(
                        &cases[0].id,
                        &format!("names page {page}, which is not stored"),
                    ))
                }
            }
        };
        let payload = match &stored {
            Some((k, v)) => codec::page_payload(v).map_err(|e| corrupt(k, e))?,
            None => Default::default(),
        };
        let runs = match &stored {
            Some((k, _)) => codec::page_runs(&payload).map_err(|e| corrupt(k, e))?,
            None => Vec::new(),
        };
        for &Newest { at, id, seq: last_seq, .. } in cases {
            let events: Vec<Event> = match &stored {
                None => {
                    let Some((k, v)) = self.store.last(&codec::events_prefix(&id))? else {
                        return Err(inconsistent(&id, "has no events"));
                    };
                    codec::decode(Kind::Events, &v).map_err(|e| corrupt(&k, e))?
                }
                Some((k, _)) => match runs.iter().find(|r| r.case == id) {
                    Some(run) => run.decode().map_err(|e| corrupt(k, e))?.events,
                    None => return Err(inconsistent(&id, &format!("has no events in page {page}"))),
                },
            };
            match events.last() {
                Some(ev) if ev.case == id && ev.seq == last_seq && ev.at == at => {}
                Some(ev) if ev.seq > last_seq => {
                    return Err(inconsistent(
                        &id,
                        &format!("has an event after its last recorded one ({last_seq})"),
                    ))
                }
                _ => {
                    return Err(inconsistent(
                        &id,
                        &format!("is at event {last_seq} but its newest stored event is not that one"),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Reads everything: every envelope, every history replayed through the
    /// lifecycle and compared with the stored case, every case's runs
    /// chained page to page up to the page its record names; no orphan
    /// events.
    pub fn verify(&self) -> Result<VerifyReport, LogError> {
        let mut stored: HashMap<CaseId, Case> = HashMap::new();
        for r in self.store.scan(&[codec::CASE_PREFIX]) {
            let (k, v) = r?;
            let case = decode_case(&k, &v)?;
            stored.insert(case.id, case);
        }
        let mut report = VerifyReport::default();
        // The replay of a case whose history goes on in pages, and the page
        // of its last run read (0: none yet).
        let mut going: HashMap<CaseId, (Case, u64)> = HashMap::new();
        // The replay `c` reached `page`: if that is the page its record
        // names, compare the two; if not, its history goes on.
        fn finish(
            stored: &mut HashMap<CaseId, Case>,
            going: &mut HashMap<CaseId, (Case, u64)>,
            c: Case,
            page: u64,
            report: &mut VerifyReport,
        ) -> Result<(), LogError> {
            let Some(s) = stored.get(&c.id) else {
                return Err(LogError::Inconsistent(format!(
                    "events of case {} ({}) but no case record",
                    c.no, c.id
                )));
            };
            if s.stored_page.get() != page {
                going.insert(c.id, (c, page));
                return Ok(());
            }
            let s = stored.remove(&c.id).expect("looked up above");
            c.stored_page.set(page);
            if s != c {
                let Some(why) = older_fold(&s, &c) else {
                    return Err(LogError::Inconsistent(format!(
                        "case {} ({}) differs from the replay of its {} events",
                        c.no, c.id, c.last_seq
                    )));
                };
                report.old_townships += u64::from(why.township);
                report.old_responses += u64::from(why.response);
                report.old_responders += u64::from(why.responder);
            }
            report.cases += 1;
            if c.status.is_open() {
                report.open += 1
            } else {
                report.closed += 1
            }
            Ok(())
        }
        let fold =
            |case: Option<Case>, events: Vec<Event>, report: &mut VerifyReport| -> Result<Case, LogError> {
                let mut it = events.into_iter();
                let mut case = match case {
                    Some(c) => c,
                    None => {
                        let first = it.next().expect("runs are not empty");
                        report.events += 1;
                        Case::from_first(&first).map_err(|e| {
                            LogError::Inconsistent(format!("case {} event {}: {e}", first.case, first.seq))
                        })?
                    }
                };
                // Every event is the case's: `StoredRun::decode` refuses
                // others in a page, and `Case::apply` (`WrongCase`) one in
                // a format-1 run, whose first event is checked against its key.
                for event in it {
                    report.events += 1;
                    case.apply(&event).map_err(|e| {
                        LogError::Inconsistent(format!("case {} event {}: {e}", case.no, event.seq))
                    })?;
                }
                Ok(case)
            };
        // Format 1: each case's runs under `e` keys, in order, before any page.
        let mut current: Option<Case> = None;
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
            let same = current.as_ref().filter(|c| Some(c.id) == first.map(|f| f.0)).is_some();
            if !same {
                if let Some(c) = current.take() {
                    finish(&mut stored, &mut going, c, 0, &mut report)?;
                }
            }
            current = Some(fold(current.take(), run, &mut report)?);
        }
        if let Some(c) = current.take() {
            finish(&mut stored, &mut going, c, 0, &mut report)?;
        }
        for r in self.store.scan(&[codec::PAGE_PREFIX]) {
            let (k, v) = r?;
            let Some(page) = codec::parse_page_key(&k).filter(|p| *p != 0) else {
                return Err(LogError::Inconsistent(format!(
                    "a page under key {} that names no page",
                    hex(&k)
                )));
            };
            for run in codec::decode_page(&v).map_err(|e| corrupt(&k, e))? {
                let id = run.case;
                let (case, before) = match going.remove(&id) {
                    Some((c, before)) => (Some(c), before),
                    None if stored.contains_key(&id) => (None, 0),
                    None => {
                        return Err(LogError::Inconsistent(format!(
                            "page {page} holds events of case {id}, which has no record or whose record names an \
                             earlier page"
                        )))
                    }
                };
                if run.prev != before {
                    return Err(LogError::Inconsistent(format!(
                        "page {page} holds a run of case {id} that follows page {}, but its run before is in page \
                         {before}",
                        run.prev
                    )));
                }
                let case = fold(case, run.events, &mut report)?;
                finish(&mut stored, &mut going, case, page, &mut report)?;
            }
        }
        if let Some((_, (c, page))) = going.into_iter().next() {
            let named = stored.get(&c.id).map_or(0, |s| s.stored_page.get());
            return Err(LogError::Inconsistent(format!(
                "case {} ({}) names page {named} for its newest events, but they end in page {page}",
                c.no, c.id
            )));
        }
        if let Some((id, c)) = stored.into_iter().next() {
            warn!(case = %id, "case record without events");
            return Err(LogError::Inconsistent(format!("case {} ({id}) has a record but no events", c.no)));
        }
        Ok(report)
    }
}
