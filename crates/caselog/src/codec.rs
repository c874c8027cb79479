//! Keys and values on disk.
//!
//! Keys (one keyspace, so one sled batch covers a case and its events):
//!
//! | key | value |
//! | --- | --- |
//! | `m` `format` | envelope(`Meta`) |
//! | `m` `wal` | the last write-ahead record sled applied (u64 big-endian; `store::APPLIED_KEY`) |
//! | `c` case id (16 bytes, UUID v7 so time-ordered) | envelope(`Case`) |
//! | `e` case id (16) seq (4, big-endian) | envelope(`[Event]`): a run of the case's consecutive events written in one batch (usually one command's), the first of which has sequence `seq` |
//!
//! A value is an envelope: `version: u8`, `kind: u8`, `crc32: u32 LE` of the
//! payload, then the postcard payload. A reader refuses an unknown version
//! or kind, a bad checksum, or a payload that does not decode to exactly the
//! bytes it was given.

use gridline_model::{Case, CaseId, Event};

use crate::store::KeyValue;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The envelope version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// No value may exceed this: it keeps every value inline in sled's log.
pub const VALUE_MAX_BYTES: usize = 64 * 1024;

pub const META_KEY: &[u8] = b"mformat";
pub const CASE_PREFIX: u8 = b'c';
pub const EVENT_PREFIX: u8 = b'e';

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Meta = 1,
    Case = 2,
    // 3 was a single event, before events were stored in runs; never reused.
    /// A run of one case's consecutive events, written in one batch.
    Events = 4,
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
    #[error("unknown format version {0} (this build reads {FORMAT_VERSION})")]
    Version(u8),
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
    let crc = crc32fast::hash(&out[6..]);
    out[2..6].copy_from_slice(&crc.to_le_bytes());
    if out.len() > VALUE_MAX_BYTES {
        return Err(CodecError::TooLarge(out.len()));
    }
    Ok(out)
}

/// A log's format record (under [`META_KEY`]), if it is in the format this
/// build reads: [`CodecError::Version`] for one written by another (newer)
/// build, and any other error for a damaged record.
pub fn read_meta(bytes: &[u8]) -> Result<Meta, CodecError> {
    let meta: Meta = decode(Kind::Meta, bytes)?;
    if meta.format != FORMAT_VERSION {
        return Err(CodecError::Version(meta.format));
    }
    Ok(meta)
}

pub fn decode<T: DeserializeOwned>(kind: Kind, bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() < 6 {
        return Err(CodecError::Short(bytes.len()));
    }
    if bytes[0] != FORMAT_VERSION {
        return Err(CodecError::Version(bytes[0]));
    }
    if bytes[1] != kind as u8 {
        return Err(CodecError::Kind { expected: kind, found: bytes[1] });
    }
    let stored = u32::from_le_bytes(bytes[2..6].try_into().expect("4 bytes"));
    let computed = crc32fast::hash(&bytes[6..]);
    if stored != computed {
        return Err(CodecError::Checksum { stored, computed });
    }
    let (value, rest) =
        postcard::take_from_bytes(&bytes[6..]).map_err(|e| CodecError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::Trailing(rest.len()));
    }
    Ok(value)
}

pub fn encode_case(c: &Case) -> Result<Vec<u8>, CodecError> {
    encode(Kind::Case, c)
}

pub fn encode_events(e: &[Event]) -> Result<Vec<u8>, CodecError> {
    encode(Kind::Events, &e)
}

/// Splits events into runs of consecutive events of the same case: each run
/// is stored under one key, the sequence number of its first event.
fn event_runs(events: &[Event]) -> impl Iterator<Item = &[Event]> {
    events.chunk_by(|a, b| a.case == b.case && a.seq + 1 == b.seq)
}

/// Each run of `events` as stored: its key and value. A run whose value
/// would pass [`VALUE_MAX_BYTES`] is stored as several (halved until each
/// fits), so many events of one case in one batch never make a value too
/// large; an event too large alone is an error (see [`check_fits`]).
pub fn encode_event_runs(events: &[Event]) -> Result<Vec<KeyValue>, CodecError> {
    fn put(run: &[Event], out: &mut Vec<KeyValue>) -> Result<(), CodecError> {
        match encode_events(run) {
            Err(CodecError::TooLarge(_)) if run.len() > 1 => {
                let (a, b) = run.split_at(run.len() / 2);
                put(a, out)?;
                put(b, out)
            }
            r => {
                out.push((event_key(&run[0].case, run[0].seq), r?));
                Ok(())
            }
        }
    }
    let mut out = Vec::new();
    for run in event_runs(events) {
        put(run, &mut out)?;
    }
    Ok(out)
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
    // A run of one event also has its length, a byte.
    for size in [size(case)?, size(event)? + 1] {
        let size = size + HEADER_BYTES;
        if size > VALUE_MAX_BYTES {
            return Err(CodecError::TooLarge(size));
        }
    }
    Ok(())
}

/// An envelope's header: version, kind, checksum.
const HEADER_BYTES: usize = 6;

#[cfg(test)]
mod tests {
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

    #[test]
    fn a_run_too_large_for_one_value_is_stored_as_several() {
        let id = CaseId::new_at(gridline_model::Timestamp(1));
        let events: Vec<Event> = (1..=30)
            .map(|seq| Event {
                case: id,
                seq,
                at: gridline_model::Timestamp(seq as i64),
                actor: gridline_model::Actor::system(),
                kind: gridline_model::EventKind::Noted { text: "长".repeat(4000).into() },
            })
            .collect();
        let runs = encode_event_runs(&events).unwrap();
        assert!(runs.len() > 1);
        let mut back = Vec::new();
        for (k, v) in &runs {
            assert!(v.len() <= VALUE_MAX_BYTES);
            let run: Vec<Event> = decode(Kind::Events, v).unwrap();
            assert_eq!(parse_event_key(k), Some((id, run[0].seq)));
            back.extend(run);
        }
        assert_eq!(back, events);
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
        assert_eq!(parse_event_key(&b), Some((id, 10)));
        assert_eq!(parse_case_key(&case_key(&id)), Some(id));
        assert!(b.starts_with(&events_prefix(&id)));
    }
}
