//! Keys and values on disk.
//!
//! Keys (one keyspace, so one sled batch covers a case and its events):
//!
//! | key | value |
//! | --- | --- |
//! | `m` `format` | envelope(`Meta`) |
//! | `m` `wal` | the last write-ahead record sled applied (u64 big-endian; `store::APPLIED_KEY`) |
//! | `m` `wal.1` | empty: the write-ahead log has both its files (`store::TWO_FILES_KEY`) |
//! | `c` case id (16 bytes, UUID v7 so time-ordered) | envelope(`CaseAt`: the page of the case's newest events, then the `Case`), or since format 4 envelope(`CaseAtResponder`: the same, then the `Assignment` its response is charged to), or since format 5 envelope(`CaseAtNotes`: the page, the `Case`, its responder, whether that is unknown, then the request ids of its latest notes); format 1 wrote envelope(`Case`), still read, with no page |
//! | `p` page number (8, big-endian) | envelope(`[Run]`): the events of one batch, a run for each case, each naming the page of the case's run before it; stored packed (LZ4) since format 3 |
//! | `e` case id (16) seq (4, big-endian) | format 1 only, still read: envelope(`[Event]`), a run of the case's consecutive events, the first of which has sequence `seq` |
//!
//! A value is an envelope: `version: u8`, `kind: u8`, `crc32: u32 LE` of the
//! payload, then the postcard payload. A reader refuses an unknown version
//! or kind, a bad checksum, or a payload that does not decode to exactly the
//! bytes it was given.

use std::borrow::Cow;

use gridline_model::{Assignment, Case, CaseId, Event, NoteReq};

use crate::store::KeyValue;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The envelope version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// The log's format, in its format record: 2 keeps events in pages, 3
/// stores those pages packed ([`pack_page`]), 4 may hold case records of
/// kind [`Kind::CaseAtResponder`], 5 case records of kind
/// [`Kind::CaseAtNotes`] and events of kind `NotedReq`. This build reads 1
/// to 5 and writes 5 (it marks an older log as 5 when it opens it to write,
/// so an older build refuses the log it cannot read).
pub const LOG_FORMAT: u8 = 5;
/// The first format whose pages sled stores packed: a log marked older
/// holds plain pages only, as the build that wrote it reads them.
pub const PACKED_PAGES_FORMAT: u8 = 3;
/// No value may exceed this: it keeps every value inline in sled's log.
pub const VALUE_MAX_BYTES: usize = 64 * 1024;
/// Bytes a page is filled to, unless one run alone is larger (up to
/// [`VALUE_MAX_BYTES`]). sled splits a leaf once it holds more than sixteen
/// keys and writes a node whose serialized size passes its blob threshold
/// (about 128 KiB at the default segment size) to a file of its own, which
/// it never syncs; seventeen pages of this size and their keys stay
/// inline in its log (docs/storage.md, "Values").
pub const PAGE_FILL_BYTES: usize = 6 * 1024;

pub const META_KEY: &[u8] = b"mformat";
pub const CASE_PREFIX: u8 = b'c';
pub const EVENT_PREFIX: u8 = b'e';
pub const PAGE_PREFIX: u8 = b'p';

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Meta = 1,
    Case = 2,
    // 3 was a single event, before events were stored in runs; never reused.
    /// Format 1: a run of one case's consecutive events, written in one batch.
    Events = 4,
    /// A case record with the page of its newest events.
    CaseAt = 5,
    /// A page: runs of events of a batch, one a case.
    Page = 6,
    /// A page as sled stores it since format 3: the payload of a `Page`,
    /// compressed as an LZ4 block after its length (u32 LE).
    PackedPage = 7,
    /// Since format 4: a case record of a case whose response was judged:
    /// the page, the case, then the assignment its response is charged to
    /// if the case moved on since (`Case::responder`, an `Option`). A
    /// `CaseAt` record of a judged case was written before (see
    /// `Case::responder_unknown`).
    CaseAtResponder = 8,
    /// Since format 5: a case record of a case that remembers notes' request
    /// ids (`Case::note_reqs`): the page, the case, its responder (as in
    /// `CaseAtResponder`), whether that is unknown (`Case::responder_unknown`,
    /// which the kind alone says in the other records), then the ids.
    CaseAtNotes = 9,
}

/// One case's consecutive events in a page, as read. `prev` is the page
/// of the case's run before this one; 0 if there is none (a case from a
/// format-1 log keeps its older events under `e` keys).
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub case: CaseId,
    pub prev: u64,
    pub events: Vec<Event>,
}

/// A run as stored: the case and the page before, then its events'
/// encoding (postcard `[Event]`) as bytes, so that a reader looking for
/// one case's run skips the others without decoding them.
#[derive(Serialize, Deserialize)]
pub struct StoredRun<'a> {
    pub case: CaseId,
    pub prev: u64,
    #[serde(borrow, serialize_with = "as_bytes")]
    events: &'a [u8],
}

/// Writes bytes as one length and a copy (postcard's bytes), which is what
/// a sequence of `u8` is written as too, byte by byte.
fn as_bytes<S: serde::Serializer>(b: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(b)
}

impl StoredRun<'_> {
    /// Decodes the run's events, each of which must be its case's.
    pub fn decode(&self) -> Result<Run, CodecError> {
        let (events, rest): (Vec<Event>, _) =
            postcard::take_from_bytes(self.events).map_err(|e| CodecError::Decode(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CodecError::Trailing(rest.len()));
        }
        if events.is_empty() {
            return Err(CodecError::Decode(format!("an empty run of case {}", self.case)));
        }
        if let Some(e) = events.iter().find(|e| e.case != self.case) {
            return Err(CodecError::Decode(format!(
                "a run of case {} holds an event of case {}",
                self.case, e.case
            )));
        }
        Ok(Run { case: self.case, prev: self.prev, events })
    }
}

/// What the log records about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub format: u8,
    pub created_by: String,
    /// The county code the log was written for; opening it with another county is refused.
    pub county: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("value too short ({0} bytes) for an envelope")]
    Short(usize),
    #[error("unknown envelope version {0} (this build reads {FORMAT_VERSION})")]
    Version(u8),
    #[error("unknown log format {0} (this build reads formats 1 to {LOG_FORMAT})")]
    Format(u8),
    #[error("expected a {expected:?} record, found kind {found}")]
    Kind { expected: Kind, found: u8 },
    #[error("checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum { stored: u32, computed: u32 },
    #[error("payload does not decode: {0}")]
    Decode(String),
    #[error("payload has {0} trailing bytes")]
    Trailing(usize),
    #[error("encoding failed: {0}")]
    Encode(String),
    #[error("value of {0} bytes exceeds the {VALUE_MAX_BYTES}-byte limit")]
    TooLarge(usize),
}

pub fn case_key(id: &CaseId) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(CASE_PREFIX);
    k.extend_from_slice(id.as_bytes());
    k
}

pub fn event_key(id: &CaseId, seq: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(21);
    k.push(EVENT_PREFIX);
    k.extend_from_slice(id.as_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub fn events_prefix(id: &CaseId) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(EVENT_PREFIX);
    k.extend_from_slice(id.as_bytes());
    k
}

pub fn page_key(page: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(PAGE_PREFIX);
    k.extend_from_slice(&page.to_be_bytes());
    k
}

pub fn parse_page_key(k: &[u8]) -> Option<u64> {
    if k.len() != 9 || k[0] != PAGE_PREFIX {
        return None;
    }
    Some(u64::from_be_bytes(k[1..9].try_into().ok()?))
}

/// The case id and sequence of an event key.
pub fn parse_event_key(k: &[u8]) -> Option<(CaseId, u32)> {
    if k.len() != 21 || k[0] != EVENT_PREFIX {
        return None;
    }
    let id = CaseId::from_bytes(k[1..17].try_into().ok()?);
    Some((id, u32::from_be_bytes(k[17..21].try_into().ok()?)))
}

pub fn parse_case_key(k: &[u8]) -> Option<CaseId> {
    if k.len() != 17 || k[0] != CASE_PREFIX {
        return None;
    }
    Some(CaseId::from_bytes(k[1..17].try_into().ok()?))
}

pub fn encode<T: Serialize>(kind: Kind, value: &T) -> Result<Vec<u8>, CodecError> {
    let header = vec![FORMAT_VERSION, kind as u8, 0, 0, 0, 0];
    let mut out = postcard::to_extend(value, header).map_err(|e| CodecError::Encode(e.to_string()))?;
    seal(&mut out);
    if out.len() > VALUE_MAX_BYTES {
        return Err(CodecError::TooLarge(out.len()));
    }
    Ok(out)
}

/// A log's format record (under [`META_KEY`]), if it is in the format this
/// build reads: [`CodecError::Format`] for one written by another (newer)
/// build, and any other error for a damaged record.
pub fn read_meta(bytes: &[u8]) -> Result<Meta, CodecError> {
    let meta: Meta = decode(Kind::Meta, bytes)?;
    if !(1..=LOG_FORMAT).contains(&meta.format) {
        return Err(CodecError::Format(meta.format));
    }
    Ok(meta)
}

pub fn decode<T: DeserializeOwned>(kind: Kind, bytes: &[u8]) -> Result<T, CodecError> {
    decode_borrowed(kind, bytes)
}

/// [`decode`] into a value that may borrow from `bytes`.
pub fn decode_borrowed<'a, T: Deserialize<'a>>(kind: Kind, bytes: &'a [u8]) -> Result<T, CodecError> {
    from_payload(checked_payload(kind, bytes)?)
}

/// Writes the checksum of an envelope's payload into its header.
fn seal(envelope: &mut [u8]) {
    let crc = crc32fast::hash(&envelope[HEADER_BYTES..]);
    envelope[2..6].copy_from_slice(&crc.to_le_bytes());
}

/// The payload of an envelope of `kind`, its version and checksum checked.
fn checked_payload(kind: Kind, bytes: &[u8]) -> Result<&[u8], CodecError> {
    if bytes.len() < HEADER_BYTES {
        return Err(CodecError::Short(bytes.len()));
    }
    if bytes[0] != FORMAT_VERSION {
        return Err(CodecError::Version(bytes[0]));
    }
    if bytes[1] != kind as u8 {
        return Err(CodecError::Kind { expected: kind, found: bytes[1] });
    }
    let stored = u32::from_le_bytes(bytes[2..6].try_into().expect("4 bytes"));
    let computed = crc32fast::hash(&bytes[HEADER_BYTES..]);
    if stored != computed {
        return Err(CodecError::Checksum { stored, computed });
    }
    Ok(&bytes[HEADER_BYTES..])
}

/// A postcard payload decoded to exactly its bytes.
fn from_payload<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, CodecError> {
    let (value, rest) = postcard::take_from_bytes(payload).map_err(|e| CodecError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::Trailing(rest.len()));
    }
    Ok(value)
}

/// Whether `c`'s record is a [`Kind::CaseAtResponder`]: its response was
/// judged and its record says whose it is.
fn keeps_responder(c: &Case) -> bool {
    c.responder.is_some() || (c.responded_on_time.is_some() && !c.responder_unknown)
}

/// A case record: the page of its newest events, then the case (and, once
/// its response is judged, the responder's assignment if the case moved on:
/// [`Kind::CaseAtResponder`]).
pub fn encode_case(c: &Case) -> Result<Vec<u8>, CodecError> {
    if let Some(notes) = c.note_reqs.as_deref() {
        let page = c.stored_page.get();
        encode(Kind::CaseAtNotes, &(page, c, c.responder.as_deref(), c.responder_unknown, notes))
    } else if keeps_responder(c) {
        encode(Kind::CaseAtResponder, &(c.stored_page.get(), c, c.responder.as_deref()))
    } else {
        encode(Kind::CaseAt, &(c.stored_page.get(), c))
    }
}

/// A case record of any format (a format-1 record has no page: 0).
pub fn decode_case(bytes: &[u8]) -> Result<Case, CodecError> {
    let mut case = match bytes.get(1) {
        Some(k) if *k == Kind::CaseAtNotes as u8 => {
            let (page, mut case, responder, unknown, notes): (
                u64,
                Case,
                Option<Assignment>,
                bool,
                Vec<NoteReq>,
            ) = decode(Kind::CaseAtNotes, bytes)?;
            case.stored_page.set(page);
            case.responder = responder.map(Box::new);
            case.responder_unknown = unknown;
            case.note_reqs = Some(Box::new(notes));
            return Ok(case);
        }
        Some(k) if *k == Kind::CaseAtResponder as u8 => {
            let (page, mut case, responder): (u64, Case, Option<Assignment>) =
                decode(Kind::CaseAtResponder, bytes)?;
            case.stored_page.set(page);
            case.responder = responder.map(Box::new);
            return Ok(case);
        }
        Some(k) if *k == Kind::Case as u8 => decode::<Case>(Kind::Case, bytes)?,
        _ => {
            let (page, case): (u64, Case) = decode(Kind::CaseAt, bytes)?;
            case.stored_page.set(page);
            case
        }
    };
    // Written before responders were kept: whether a judged case moved on
    // since is not known.
    case.responder_unknown = case.responded_on_time.is_some();
    Ok(case)
}

/// Format 1's run of one case's events, as tests write old logs with.
pub fn encode_events(e: &[Event]) -> Result<Vec<u8>, CodecError> {
    encode(Kind::Events, &e)
}

/// The payload of a page, plain or packed: its envelope checked, a packed
/// one unpacked. Read its runs with [`page_runs`].
pub fn page_payload(bytes: &[u8]) -> Result<Cow<'_, [u8]>, CodecError> {
    if bytes.get(1) != Some(&(Kind::PackedPage as u8)) {
        return checked_payload(Kind::Page, bytes).map(Cow::Borrowed);
    }
    let packed = checked_payload(Kind::PackedPage, bytes)?;
    let Some((len, block)) = packed.split_first_chunk::<4>() else {
        return Err(CodecError::Short(bytes.len()));
    };
    let len = u32::from_le_bytes(*len) as usize;
    if len > VALUE_MAX_BYTES {
        return Err(CodecError::TooLarge(len));
    }
    let plain = lz4_flex::block::decompress(block, len)
        .map_err(|e| CodecError::Decode(format!("a packed page does not unpack: {e}")))?;
    if plain.len() != len {
        return Err(CodecError::Decode(format!(
            "a packed page unpacks to {} bytes, not the {len} it names",
            plain.len()
        )));
    }
    Ok(Cow::Owned(plain))
}

/// A page's runs, their events not yet decoded, from its [`page_payload`].
pub fn page_runs(payload: &[u8]) -> Result<Vec<StoredRun<'_>>, CodecError> {
    from_payload(payload)
}

/// A page's runs, decoded.
pub fn decode_page(bytes: &[u8]) -> Result<Vec<Run>, CodecError> {
    page_runs(&page_payload(bytes)?)?.iter().map(StoredRun::decode).collect()
}

/// The run of case `id` in a page, decoding no other.
pub fn run_of(bytes: &[u8], id: &CaseId) -> Result<Option<Run>, CodecError> {
    page_runs(&page_payload(bytes)?)?.iter().find(|r| r.case == *id).map(StoredRun::decode).transpose()
}

/// A page as sled stores it: `Page` envelope `bytes` packed into a
/// `PackedPage` one (about 2.2 times smaller for the county's texts),
/// unless packing would not make it smaller. Anything else, and a page
/// whose checksum fails (readers will report it), is returned as it is.
pub fn pack_page(bytes: Vec<u8>) -> Vec<u8> {
    let Ok(payload) = checked_payload(Kind::Page, &bytes) else { return bytes };
    let len = payload.len() as u32;
    let mut out =
        Vec::with_capacity(HEADER_BYTES + 4 + lz4_flex::block::get_maximum_output_size(payload.len()));
    out.extend_from_slice(&[FORMAT_VERSION, Kind::PackedPage as u8, 0, 0, 0, 0]);
    out.extend_from_slice(&len.to_le_bytes());
    out.resize(out.capacity(), 0);
    let Ok(n) = lz4_flex::block::compress_into(payload, &mut out[HEADER_BYTES + 4..]) else { return bytes };
    out.truncate(HEADER_BYTES + 4 + n);
    if out.len() >= bytes.len() {
        return bytes;
    }
    seal(&mut out);
    out
}

/// What [`encode_pages`] made of a batch's events.
#[derive(Debug, Default)]
pub struct Paged {
    /// Each page's key and value, in page order.
    pub pages: Vec<KeyValue>,
    /// The page that holds each case's newest event, in the order the
    /// cases first appear in the batch.
    pub newest: Vec<(CaseId, u64)>,
}

/// A page's envelope header and the length of its list of runs.
const PAGE_OVERHEAD: usize = HEADER_BYTES + 5;
/// A stored run's bytes besides its events': the case id (17), the page
/// before (up to 10), the events' length (up to 3) and count (1).
const RUN_OVERHEAD: usize = 31;

/// Packs a batch's events into pages numbered on from `*next` (which ends
/// one past the last page written): one run a case, in the order the cases
/// first appear, each naming the case's page before it (`prev`, 0 for
/// none). A run too large for one page is split, halved until each part
/// fits, and its parts chained in order; a page never holds two runs of one
/// case. An event too large alone is an error (see [`check_fits`]).
pub fn encode_pages(
    events: &[Event],
    next: &mut u64,
    prev: impl Fn(&CaseId) -> u64,
) -> Result<Paged, CodecError> {
    let mut index: std::collections::HashMap<CaseId, usize> = std::collections::HashMap::new();
    let mut runs: Vec<Vec<&Event>> = Vec::new();
    for e in events {
        let i = *index.entry(e.case).or_insert_with(|| {
            runs.push(Vec::new());
            runs.len() - 1
        });
        runs[i].push(e);
    }
    let mut pager = Pager { next, out: Paged::default(), body: Vec::new(), count: 0, events: Vec::new() };
    for run in &runs {
        let id = run[0].case;
        let mut last = prev(&id);
        pager.put(run, &mut last)?;
        pager.out.newest.push((id, last));
    }
    pager.seal();
    Ok(pager.out)
}

struct Pager<'a> {
    next: &'a mut u64,
    out: Paged,
    /// The runs of the page being filled, encoded; it will be page `*next`.
    body: Vec<u8>,
    count: usize,
    /// The events of the run being added, encoded (reused).
    events: Vec<u8>,
}

impl Pager<'_> {
    /// Adds one case's events, following the case's page `*last`, and sets
    /// `*last` to the page of its newest event.
    fn put(&mut self, run: &[&Event], last: &mut u64) -> Result<(), CodecError> {
        let encode = |e| CodecError::Encode(format!("{e}"));
        self.events.clear();
        self.events = postcard::to_extend(run, std::mem::take(&mut self.events)).map_err(encode)?;
        // Written straight after the page's runs, and taken back if it does
        // not belong in this page.
        let start = self.body.len();
        let stored = StoredRun { case: run[0].case, prev: *last, events: &self.events };
        self.body = postcard::to_extend(&stored, std::mem::take(&mut self.body)).map_err(encode)?;
        let len = self.body.len() - start;
        if len + PAGE_OVERHEAD > VALUE_MAX_BYTES {
            self.body.truncate(start);
            if run.len() == 1 {
                return Err(CodecError::TooLarge(len + PAGE_OVERHEAD));
            }
            let (a, b) = run.split_at(run.len() / 2);
            self.put(a, last)?;
            return self.put(b, last);
        }
        if self.count > 0 && (self.body.len() + PAGE_OVERHEAD > PAGE_FILL_BYTES || *last == *self.next) {
            let bytes = self.body.split_off(start);
            self.seal();
            self.body.extend_from_slice(&bytes);
        }
        self.count += 1;
        *last = *self.next;
        Ok(())
    }

    /// Writes out the page being filled, if it holds anything.
    fn seal(&mut self) {
        if self.count == 0 {
            return;
        }
        let mut v = Vec::with_capacity(PAGE_OVERHEAD + self.body.len());
        v.extend_from_slice(&[FORMAT_VERSION, Kind::Page as u8, 0, 0, 0, 0]);
        // postcard's length of a sequence: LEB128.
        let mut n = self.count;
        while n >= 0x80 {
            v.push((n as u8) | 0x80);
            n >>= 7;
        }
        v.push(n as u8);
        v.extend_from_slice(&self.body);
        seal(&mut v);
        self.out.pages.push((page_key(*self.next), v));
        *self.next += 1;
        self.body.clear();
        self.count = 0;
    }
}

/// Whether `case` and `event` can each be stored: their values within
/// [`VALUE_MAX_BYTES`]. Checked as each event is applied, so that a case
/// that grew too large (long texts in many fields) refuses the command
/// that would make it so, rather than failing the whole batch it is in.
pub fn check_fits(case: &Case, event: &Event) -> Result<(), CodecError> {
    fn size<T: Serialize>(v: &T) -> Result<usize, CodecError> {
        postcard::serialize_with_flavor(v, postcard::ser_flavors::Size::default())
            .map_err(|e| CodecError::Encode(e.to_string()))
    }
    // A record also has its page (up to 10 bytes) and the responder's
    // assignment, if any; a page of one event also has the run's case,
    // page before and lengths.
    let responder = match (keeps_responder(case), case.note_reqs.as_deref()) {
        (_, Some(notes)) => size(&case.responder.as_deref())? + 1 + size(&notes)?,
        (true, None) => size(&case.responder.as_deref())?,
        (false, None) => 0,
    };
    for size in [size(case)? + responder + 10 + HEADER_BYTES, size(event)? + RUN_OVERHEAD + PAGE_OVERHEAD] {
        if size > VALUE_MAX_BYTES {
            return Err(CodecError::TooLarge(size));
        }
    }
    Ok(())
}

/// An envelope's header: version, kind, checksum.
const HEADER_BYTES: usize = 6;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_and_rejects_damage() {
        let meta = Meta { format: 1, created_by: "test".into(), county: "JD".into() };
        let bytes = encode(Kind::Meta, &meta).unwrap();
        assert_eq!(decode::<Meta>(Kind::Meta, &bytes).unwrap(), meta);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode::<Meta>(Kind::Meta, &bad).is_err(), "flipped byte {i} went unnoticed");
        }
        assert!(matches!(decode::<Meta>(Kind::Meta, &bytes[..3]), Err(CodecError::Short(3))));
        assert!(matches!(decode::<Meta>(Kind::Case, &bytes), Err(CodecError::Kind { .. })));
    }

    /// The first event of case `id`.
    pub(crate) fn accepted(id: CaseId) -> Event {
        Event {
            case: id,
            seq: 1,
            at: gridline_model::Timestamp(1),
            actor: gridline_model::Actor::system(),
            kind: gridline_model::EventKind::Accepted {
                intake: gridline_model::Intake::default(),
                no: gridline_model::CaseNo("JD-20261124-000001".into()),
                category: "c".into(),
                township: None,
            },
        }
    }

    pub(crate) fn noted(id: CaseId, seq: u32, text: &str) -> Event {
        Event {
            case: id,
            seq,
            at: gridline_model::Timestamp(seq as i64),
            actor: gridline_model::Actor::system(),
            kind: gridline_model::EventKind::Noted { text: text.into() },
        }
    }

    #[test]
    fn a_run_too_large_for_one_page_is_split_and_chained() {
        let id = CaseId::new_at(gridline_model::Timestamp(1));
        let events: Vec<Event> = (1..=30).map(|seq| noted(id, seq, &"长".repeat(4000))).collect();
        let mut next = 7;
        let paged = encode_pages(&events, &mut next, |_| 3).unwrap();
        assert!(paged.pages.len() > 1);
        assert_eq!(next, 7 + paged.pages.len() as u64);
        let mut back = Vec::new();
        let mut prev = 3;
        for (k, v) in &paged.pages {
            assert!(v.len() <= VALUE_MAX_BYTES);
            let runs = decode_page(v).unwrap();
            assert_eq!(runs.len(), 1, "one case, one run a page");
            assert_eq!(runs[0].prev, prev);
            prev = parse_page_key(k).unwrap();
            back.extend(runs.into_iter().flat_map(|r| r.events));
        }
        assert_eq!(back, events);
        assert_eq!(paged.newest, vec![(id, next - 1)]);
    }

    #[test]
    fn a_batch_of_many_cases_is_packed_into_full_pages_one_run_a_case() {
        // 400 cases of two events each, interleaved as a batch writes them.
        let ids: Vec<CaseId> = (0..400).map(|i| CaseId::new_at(gridline_model::Timestamp(i))).collect();
        let mut events: Vec<Event> = ids.iter().map(|&id| noted(id, 4, "短")).collect();
        events.extend(ids.iter().map(|&id| noted(id, 5, &"x".repeat(300))));
        let mut next = 1;
        let paged = encode_pages(&events, &mut next, |id| if *id == ids[0] { 0 } else { 900 }).unwrap();
        assert!(paged.pages.len() >= 2, "{} pages", paged.pages.len());
        let mut seen = std::collections::HashMap::new();
        for (k, v) in &paged.pages {
            let page = parse_page_key(k).unwrap();
            let runs = decode_page(v).unwrap();
            // Full: the next run (about 370 bytes) did not fit.
            assert!(
                v.len() + 400 > PAGE_FILL_BYTES || page == next - 1,
                "page {page} holds {} bytes",
                v.len()
            );
            assert!(v.len() <= PAGE_FILL_BYTES);
            for r in runs {
                let id = r.events[0].case;
                assert_eq!(r.prev, if id == ids[0] { 0 } else { 900 });
                assert_eq!(r.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
                assert!(seen.insert(id, page).is_none(), "two runs of one case");
            }
        }
        assert_eq!(seen.len(), 400);
        assert_eq!(paged.newest.len(), 400);
        assert_eq!(paged.newest[0].0, ids[0], "in the order cases first appear");
        assert!(paged.newest.iter().all(|(id, page)| seen[id] == *page));
    }

    #[test]
    fn one_case_s_run_is_read_from_a_page_without_the_others() {
        let ids: Vec<CaseId> = (0..50).map(|i| CaseId::new_at(gridline_model::Timestamp(i))).collect();
        let events: Vec<Event> = ids.iter().map(|&id| noted(id, 2, "记录")).collect();
        let mut next = 1;
        let paged = encode_pages(&events, &mut next, |_| 0).unwrap();
        let [(_, page)] = &paged.pages[..] else { panic!("one page") };
        let runs = decode_page(page).unwrap();
        assert_eq!(runs.iter().map(|r| r.case).collect::<Vec<_>>(), ids);
        let run = run_of(page, &ids[7]).unwrap().unwrap();
        assert_eq!((run.case, run.prev, run.events), (ids[7], 0, vec![events[7].clone()]));
        assert_eq!(run_of(page, &CaseId::new_at(gridline_model::Timestamp(99))).unwrap(), None);
        // An event filed under another case's run is refused.
        let foreign =
            StoredRun { case: ids[0], prev: 0, events: &postcard::to_allocvec(&[&events[1]][..]).unwrap() };
        assert!(
            matches!(foreign.decode(), Err(CodecError::Decode(m)) if m.contains("holds an event of case"))
        );
    }

    /// A full page of the county's kind of text: Chinese notes, case ids.
    fn full_page() -> (Vec<CaseId>, Vec<u8>) {
        let ids: Vec<CaseId> = (0..200).map(|i| CaseId::new_at(gridline_model::Timestamp(i))).collect();
        let events: Vec<Event> = ids.iter().map(|&id| noted(id, 2, "路灯坏了好几天，晚上很黑")).collect();
        let mut next = 1;
        let paged = encode_pages(&events, &mut next, |_| 0).unwrap();
        (ids, paged.pages.into_iter().next().unwrap().1)
    }

    #[test]
    fn a_packed_page_reads_back_as_the_plain_one() {
        let (ids, plain) = full_page();
        let packed = pack_page(plain.clone());
        assert_eq!(packed[1], Kind::PackedPage as u8);
        assert!(packed.len() * 2 < plain.len(), "{} bytes packed from {}", packed.len(), plain.len());
        assert_eq!(decode_page(&packed).unwrap(), decode_page(&plain).unwrap());
        assert_eq!(run_of(&packed, &ids[9]).unwrap(), run_of(&plain, &ids[9]).unwrap());
        assert_eq!(pack_page(packed.clone()), packed, "packed once");
        // What packing would not shrink, and what is not a page, stay as they are.
        let id = CaseId::new_at(gridline_model::Timestamp(1));
        let mut x = 0x9e37_79b9u32;
        let noise: String = (0..3000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                char::from_u32(0x4e00 + x % 20000).unwrap()
            })
            .collect();
        let mut next = 1;
        let lone = encode_pages(&[noted(id, 2, &noise)], &mut next, |_| 0).unwrap().pages.remove(0).1;
        assert_eq!(pack_page(lone.clone()), lone);
        let meta =
            encode(Kind::Meta, &Meta { format: 3, created_by: "t".into(), county: "JD".into() }).unwrap();
        assert_eq!(pack_page(meta.clone()), meta);
        // A page whose checksum fails is left for readers to report.
        let mut torn = plain.clone();
        torn[100] ^= 1;
        assert_eq!(pack_page(torn.clone()), torn);
    }

    #[test]
    fn a_damaged_packed_page_is_an_error_never_a_panic() {
        let (_, plain) = full_page();
        let packed = pack_page(plain);
        let mut flipped = packed.clone();
        flipped[40] ^= 0x10;
        assert!(matches!(decode_page(&flipped), Err(CodecError::Checksum { .. })));
        // Damage a checksum cannot see (as if written so): every byte of the
        // block changed in turn, the checksum made to match.
        for at in HEADER_BYTES..packed.len() {
            for bits in [0x01, 0x80, 0xff] {
                let mut v = packed.clone();
                v[at] ^= bits;
                let _ = decode_page(&resealed(v));
            }
        }
        // A length past the limit is refused before anything is allocated.
        let mut huge = packed.clone();
        huge[HEADER_BYTES..HEADER_BYTES + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_page(&resealed(huge)), Err(CodecError::TooLarge(u32::MAX as usize)));
        // A length that is not what the block unpacks to.
        let mut short = packed.clone();
        let len = u32::from_le_bytes(short[HEADER_BYTES..HEADER_BYTES + 4].try_into().unwrap());
        short[HEADER_BYTES..HEADER_BYTES + 4].copy_from_slice(&(len + 1).to_le_bytes());
        assert!(
            matches!(decode_page(&resealed(short)), Err(CodecError::Decode(m)) if m.contains("unpacks to"))
        );
        assert!(matches!(decode_page(&packed[..HEADER_BYTES + 2]), Err(CodecError::Checksum { .. })));
        assert!(matches!(
            decode_page(&resealed(packed[..HEADER_BYTES + 2].to_vec())),
            Err(CodecError::Short(_))
        ));
    }

    /// `bytes` with its envelope's checksum made to match, as if written so.
    fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
        seal(&mut bytes);
        bytes
    }

    proptest::proptest! {
        /// Whatever a packed page holds, reading it is a result, never a
        /// panic, and never more than the 64 KiB a page may unpack to.
        #[test]
        fn any_packed_page_reads_as_runs_or_an_error(
            len in proptest::prop_oneof![0u32..=70_000, proptest::prelude::any::<u32>()],
            block in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        ) {
            let mut v = vec![FORMAT_VERSION, Kind::PackedPage as u8, 0, 0, 0, 0];
            v.extend_from_slice(&len.to_le_bytes());
            v.extend_from_slice(&block);
            if let Ok(plain) = page_payload(&resealed(v)) {
                proptest::prop_assert_eq!(plain.len(), len as usize);
                let _ = page_runs(&plain);
            }
        }

        /// A real packed page with any byte changed, the checksum made to match.
        #[test]
        fn a_packed_page_changed_anywhere_reads_or_errs(at in 0usize..10_000, bits in 1u8..=255) {
            let (_, plain) = full_page();
            let mut packed = pack_page(plain);
            let at = HEADER_BYTES + at % (packed.len() - HEADER_BYTES);
            packed[at] ^= bits;
            let _ = decode_page(&resealed(packed));
        }
    }

    #[test]
    fn a_run_s_bytes_read_back_as_written_at_every_length() {
        // serde writes `&[u8]` as a sequence of u8 (a varint length, then
        // one byte each); postcard's borrowed bytes read the same.
        let id = CaseId::new_at(gridline_model::Timestamp(1));
        for len in [0, 1, 127, 128, 129, 16_383, 16_384, 16_385, 65_535, 65_536, 65_537, 2_097_151, 2_097_152]
        {
            let events: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            for prev in [0, 1, 127, 128, u64::MAX] {
                let bytes = postcard::to_allocvec(&StoredRun { case: id, prev, events: &events }).unwrap();
                let lenlen = |n: u64| (1..10).find(|b| n >> (7 * b) == 0).unwrap_or(10);
                assert_eq!(bytes.len(), 17 + lenlen(prev) + lenlen(len as u64) + len, "{len} {prev}");
                let (back, rest): (StoredRun<'_>, _) = postcard::take_from_bytes(&bytes).unwrap();
                assert!(rest.is_empty());
                assert_eq!((back.case, back.prev, back.events), (id, prev, &events[..]));
            }
        }
    }

    #[test]
    fn an_event_that_fits_is_paged_whatever_its_size_and_prev() {
        let id = CaseId::new_at(gridline_model::Timestamp(1));
        let first = accepted(id);
        let case = Case::from_first(&first).unwrap();
        let size = |e: &Event| postcard::to_allocvec(e).unwrap().len();
        let (mut checked, mut refused) = (0, 0);
        for (unit, seq) in [("x", 2), ("长", 2), ("x", u32::MAX), ("长", u32::MAX)] {
            // The longest text whose event fits, found from above and below,
            // then every text a few bytes either side, padded with "x".
            let base = noted(id, seq, "");
            let room = VALUE_MAX_BYTES - RUN_OVERHEAD - PAGE_OVERHEAD - size(&base);
            let n = room / unit.len();
            for k in n.saturating_sub(4)..=n + 2 {
                for pad in 0..unit.len() + 3 {
                    let text = unit.repeat(k) + &"x".repeat(pad);
                    let mut e = noted(id, seq, &text);
                    e.at = gridline_model::Timestamp(i64::MIN);
                    let fits = check_fits(&case, &e).is_ok();
                    refused += usize::from(!fits);
                    for prev in [0, 1, 127, 128, 16_383, 16_384, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
                        let mut next = prev.saturating_add(1).min(u64::MAX - 1);
                        let r = encode_pages(std::slice::from_ref(&e), &mut next, |_| prev);
                        if fits {
                            let paged =
                                r.unwrap_or_else(|err| panic!("{} bytes, prev {prev}: {err}", size(&e)));
                            let [(_, page)] = &paged.pages[..] else { panic!("one page") };
                            assert!(page.len() <= VALUE_MAX_BYTES);
                            let run = run_of(page, &id).unwrap().unwrap();
                            assert_eq!((run.prev, &run.events[..]), (prev, std::slice::from_ref(&e)));
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(
            checked > 100 && refused > 10,
            "{checked} paged, {refused} refused: the search straddles the limit"
        );
    }

    #[test]
    fn an_event_too_large_for_a_page_is_an_error() {
        let id = CaseId::new_at(gridline_model::Timestamp(1));
        let mut next = 1;
        let big = noted(id, 1, &"x".repeat(VALUE_MAX_BYTES));
        assert!(matches!(encode_pages(&[big], &mut next, |_| 0), Err(CodecError::TooLarge(_))));
    }

    #[test]
    fn a_case_record_keeps_its_page_and_a_format_1_record_still_reads() {
        let id = CaseId::new_at(gridline_model::Timestamp(1));
        let first = accepted(id);
        let case = Case::from_first(&first).unwrap();
        case.stored_page.set(300);
        assert_eq!(decode_case(&encode_case(&case).unwrap()).unwrap(), case);
        let old = encode(Kind::Case, &case).unwrap();
        assert_eq!(
            decode_case(&old).unwrap(),
            Case { stored_page: gridline_model::StoredPage::new(0), ..case }
        );
    }

    #[test]
    fn a_case_that_remembers_notes_keeps_them_and_what_it_knows_of_its_responder() {
        let id = CaseId::new_at(gridline_model::Timestamp(1));
        let mut case = Case::from_first(&accepted(id)).unwrap();
        case.stored_page.set(42);
        case.note_reqs = Some(Box::new(vec![NoteReq {
            actor: gridline_model::Actor { role: gridline_model::Role::Worker, name: "W00003".into() },
            req: "n-1".into(),
            text_hash: NoteReq::hash_text("到现场"),
        }]));
        // Judged under a record from before responders were kept, and
        // judged with its responder known and kept.
        case.responded_on_time = Some(true);
        for (unknown, responder) in [(true, None), (false, None), (false, case.assignment.clone())] {
            let case =
                Case { responder_unknown: unknown, responder: responder.map(Box::new), ..case.clone() };
            let bytes = encode_case(&case).unwrap();
            assert_eq!(bytes[1], Kind::CaseAtNotes as u8);
            assert_eq!(decode_case(&bytes).unwrap(), case);
        }
    }

    #[test]
    fn a_case_s_remembered_notes_count_towards_its_record_s_size() {
        let id = CaseId::new_at(gridline_model::Timestamp(1));
        let first = |text: String| {
            let mut e = accepted(id);
            if let gridline_model::EventKind::Accepted { intake, .. } = &mut e.kind {
                intake.text = text.into();
            }
            e
        };
        // The longest text whose case record fits.
        let mut len = VALUE_MAX_BYTES;
        let (case, event) = loop {
            let e = first("x".repeat(len));
            let c = Case::from_first(&e).unwrap();
            if check_fits(&c, &e).is_ok() {
                break (c, e);
            }
            len -= 1;
        };
        let mut noted = case.clone();
        noted.note_reqs = Some(Box::new(vec![NoteReq {
            actor: gridline_model::Actor { role: gridline_model::Role::Worker, name: "W00003".into() },
            req: "r".into(),
            text_hash: 0,
        }]));
        assert!(matches!(check_fits(&noted, &event), Err(CodecError::TooLarge(_))));
        noted.note_reqs = None;
        assert_eq!(check_fits(&noted, &event), Ok(()));
    }

    #[test]
    fn a_too_large_event_or_case_does_not_fit() {
        let id = CaseId::new_at(gridline_model::Timestamp(1));
        let accepted = |text: String| Event {
            case: id,
            seq: 1,
            at: gridline_model::Timestamp(1),
            actor: gridline_model::Actor::system(),
            kind: gridline_model::EventKind::Accepted {
                intake: gridline_model::Intake { text: text.into(), ..Default::default() },
                no: gridline_model::CaseNo("JD-20261124-000001".into()),
                category: "c".into(),
                township: None,
            },
        };
        let small = accepted("x".into());
        assert_eq!(check_fits(&Case::from_first(&small).unwrap(), &small), Ok(()));
        let big = accepted("x".repeat(VALUE_MAX_BYTES));
        let case = Case::from_first(&big).unwrap();
        assert!(matches!(check_fits(&case, &big), Err(CodecError::TooLarge(_))));
        assert!(matches!(check_fits(&case, &small), Err(CodecError::TooLarge(_))), "the case alone");
    }

    #[test]
    fn keys_order_events_by_sequence() {
        let id = CaseId::new_at(gridline_model::Timestamp(1));
        let a = event_key(&id, 2);
        let b = event_key(&id, 10);
        assert!(a < b);
        assert!(page_key(255) < page_key(256));
        assert_eq!(parse_page_key(&page_key(256)), Some(256));
        assert_eq!(parse_event_key(&b), Some((id, 10)));
        assert_eq!(parse_case_key(&case_key(&id)), Some(id));
        assert!(b.starts_with(&events_prefix(&id)));
    }
}
