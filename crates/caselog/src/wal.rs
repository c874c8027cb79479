//! The write-ahead log in front of sled: one file, `wal`, in the data
//! directory. A commit is durable once its record is in this file and the
//! file is `fdatasync`ed: one write and one device flush, with sled's own
//! work (its `apply_batch`, its flush) off the acknowledgement's path.
//!
//! Layout (integers little-endian):
//!
//! | bytes | what |
//! | --- | --- |
//! | 0..8 | magic `GLWAL` and the format version (3) |
//! | 8..16 | `start`: the sequence number the records in this file start at |
//! | 16..24 | `generation`: a random number drawn at every reset |
//! | 24..28 | crc32 of bytes 0..24 |
//! | 28..32 | zero |
//! | then, each at an 8-byte boundary | a record (below) |
//!
//! A record (format 3):
//!
//! | bytes | what |
//! | --- | --- |
//! | 0..4 | payload length (u32) |
//! | 4..8 | crc32 of the generation, then bytes 8.. of the record (its number, head check, zero and payload) |
//! | 8..16 | sequence number (u64) |
//! | 16..20 | head check: crc32 of the generation, the payload length and the sequence number |
//! | 20..24 | zero |
//! | 24.. | payload |
//!
//! Format 2 (files written before 2026-11-28) had no head check: a
//! 16-byte head, the payload at byte 16. Such a file is read as it is
//! and written in format 3 from its next reset (every file is reset
//! before it is written to).
//!
//! A payload is a [`WriteBatch`]'s operations, postcard-encoded. The file
//! is filled with zeros ahead of the records ([`GROW`] bytes at a time,
//! made durable before use), so an `fdatasync` after a record never has
//! file-size metadata to write.
//!
//! Reading stops at the first record that is not intact (short, failing its
//! checksum) or not the next in sequence: the torn tail of a write that was
//! never acknowledged, or records left from before the file was last reset.
//! Those fail their checksum whatever their sequence number, since it
//! covers the generation, which every reset draws anew (the reset at open
//! too, so records left behind a torn one can never be read later). Each
//! record is a whole batch, so a batch is replayed whole or not at all.
//! A record with the next number and a good head check whose length runs
//! past the end of the file cannot be torn (the file is long enough
//! before a record is written): the file was cut short, and `open`
//! reports it. The head check is what tells that from a torn head: a
//! head split across two pages (or sectors) of which only the one with
//! the number reached the disk, beside an older record's bytes read as
//! its length.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::store::{StoreError, WriteBatch};

const MAGIC: &[u8; 8] = b"GLWAL\x00\x00\x03";
/// Format 2's magic, still read.
const MAGIC_V2: &[u8; 8] = b"GLWAL\x00\x00\x02";
const HEADER: u64 = 32;

/// Where a record's parts are, by the file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    /// The bytes before the payload.
    head: usize,
    /// Whether bytes 16..20 hold the head check.
    head_check: bool,
}

const V3: Layout = Layout { head: 24, head_check: true };
const V2: Layout = Layout { head: 16, head_check: false };
/// The file grows by this much, zero-filled, when a write needs room.
pub(crate) const GROW: u64 = 4 << 20;

/// A key, or a value, borrowed: written with postcard as length and bytes.
#[derive(Deserialize)]
struct Bytes<'a>(#[serde(borrow)] &'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

pub(crate) struct Wal {
    file: File,
    /// Where the next record goes.
    end: u64,
    /// Zero-filled and durable up to here.
    len: u64,
    /// The sequence number of the next record.
    next: u64,
    /// Drawn at every reset; every record's checksum covers it.
    generation: u64,
    /// The records' layout, by the format in the file's header.
    layout: Layout,
    /// Records encoded since the last `write`.
    buf: Vec<u8>,
    /// Found at `open`: a damaged record with intact ones after it.
    damage: Option<Damage>,
    /// Tests: `shrink`'s sync fails.
    #[cfg(test)]
    fail_sync: bool,
}

/// A record `open` could not read though intact records follow it: damage
/// to a record already synced, not the torn tail of an unfinished write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Where the damaged record starts, and its number.
    pub at: usize,
    pub record: u64,
    /// Where the first intact record after it starts.
    pub later: usize,
    /// The highest number among the intact records after it.
    pub last: u64,
}

fn io(what: &str, e: std::io::Error) -> StoreError {
    if e.raw_os_error() == Some(28) {
        return StoreError::Full;
    }
    StoreError::Io(format!("{what}: {e}"))
}

fn align(n: u64) -> u64 {
    n.div_ceil(8) * 8
}

/// `fdatasync` of `file`. The tests see each one done (`tests::done`), so
/// a record's sync cannot be dropped without a test failing.
fn sync_data(file: &File) -> std::io::Result<()> {
    file.sync_data()?;
    #[cfg(test)]
    tests::note(file, tests::Did::Synced);
    Ok(())
}

impl Wal {
    /// Opens the file at `path` (creating it, starting at sequence `from`),
    /// and returns it with every intact record's batch and sequence number,
    /// in order. Writing continues after the last intact record.
    pub fn open(path: &Path, from: u64) -> Result<(Wal, Vec<(u64, WriteBatch)>), StoreError> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        // Residents' records: readable and writable by the owner alone
        // (the mode of a file made here; an existing file keeps its own).
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let file = opts.open(path).map_err(|e| io("cannot open the write-ahead log", e))?;
        let mut wal = Wal {
            file,
            end: HEADER,
            len: 0,
            next: from,
            generation: 0,
            layout: V3,
            buf: Vec::new(),
            damage: None,
            #[cfg(test)]
            fail_sync: false,
        };
        let bytes = std::fs::read(path).map_err(|e| io("cannot read the write-ahead log", e))?;
        if bytes.iter().all(|&b| b == 0) {
            // New, or its creation never finished: nothing was ever written
            // to it, so nothing can be owed from it.
            wal.create(from)?;
            if let Some(dir) = path.parent() {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| io("cannot sync the data directory", e))?;
            }
            return Ok((wal, Vec::new()));
        }
        wal.len = bytes.len() as u64;
        let named = |e| match e {
            StoreError::Corrupt(m) => StoreError::Corrupt(format!("{}: {m}", path.display())),
            e => e,
        };
        let (start, generation, l) = parse_header(&bytes).map_err(named)?;
        (wal.generation, wal.layout) = (generation, l);
        let mut records = Vec::new();
        let (mut at, mut next) = (HEADER as usize, start);
        while let Some((len, batch)) = record(l, &bytes, at, next, generation).map_err(named)? {
            records.push((next, batch));
            next += 1;
            at = align((at + l.head + len) as u64) as usize;
        }
        // Each record is written, and fdatasynced, alone: one intact after
        // where reading stopped means the record there was whole when it
        // was synced. It is damaged, not torn; the caller decides whether
        // what lies beyond is still owed.
        let (mut from, mut want) = (at, next);
        while let Some((later, first)) = intact_after(l, &bytes, from, want, generation) {
            let (mut a, mut seq) = (later, first);
            while let Some(len) = intact(l, &bytes, a, seq, generation) {
                seq += 1;
                a = align((a + l.head + len) as u64) as usize;
            }
            let d = wal.damage.get_or_insert(Damage { at, record: next, later, last: seq - 1 });
            d.last = seq - 1;
            (from, want) = (a, seq);
        }
        if wal.damage.is_none() && cut_short(l, &bytes, at, next, generation) {
            // A record is written only where the file is already long
            // enough, its length made durable first: one that runs past the
            // end of the file was whole once, and what lay beyond it is gone.
            // Unless intact records follow it (looked for first): they were
            // written after it, so the file reaches past it and the record's
            // length is damaged, which is reported as damage above.
            return Err(StoreError::Corrupt(format!(
                "{}: record {next} (at byte {at}) runs past the end of the file ({} bytes): the file was cut short, \
                 not torn by a crash, and the acknowledged writes it held from there on are lost; \
                 nothing is replayed and the write-ahead log is left as it is",
                path.display(),
                bytes.len()
            )));
        }
        if let Some(head) = bytes.get(at..at + l.head).filter(|h| h.iter().any(|&b| b != 0)) {
            // Not a clean end: the torn tail of a write that was never
            // acknowledged, or records from before the last reset. The
            // caller resets the log before writing, which draws a new
            // generation, so none of it can be read again. Only the first
            // is news: a record from before the reset lies there after
            // almost every start, and a warning each time would hide it.
            if u64::from_le_bytes(head[8..16].try_into().expect("8 bytes")) == next {
                warn!(file = %path.display(), offset = at, next, "the write-ahead log ends in a torn record (a write cut by a crash, never acknowledged); it is dropped");
            } else {
                debug!(file = %path.display(), offset = at, next, "the write-ahead log's records end here; what follows is from before its last reset");
            }
        }
        wal.end = at as u64;
        wal.next = next;
        Ok((wal, records))
    }

    /// Writes a new file: its header and zeros, in one write, then syncs it.
    fn create(&mut self, from: u64) -> Result<(), StoreError> {
        let mut b = vec![0u8; GROW as usize];
        (self.generation, self.layout) = (fresh_generation(0), V3);
        b[..HEADER as usize].copy_from_slice(&header(MAGIC, from, self.generation));
        self.file.set_len(0).map_err(|e| io("cannot create the write-ahead log", e))?;
        self.file.write_all_at(&b, 0).map_err(|e| io("cannot create the write-ahead log", e))?;
        self.file.sync_all().map_err(|e| io("cannot sync the write-ahead log", e))?;
        (self.len, self.end, self.next) = (GROW, HEADER, from);
        Ok(())
    }

    /// A damaged record `open` found, with intact records after it.
    pub fn damage(&self) -> Option<Damage> {
        self.damage
    }

    /// The sequence number the next record gets.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Bytes of records since the last reset.
    pub fn used(&self) -> u64 {
        self.end - HEADER
    }

    #[cfg(test)]
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// Encodes `batch` as the next record, in memory until `write`. One
    /// record per write: `open` relies on it to tell damage from a torn tail.
    pub fn append(&mut self, batch: &WriteBatch) -> Result<u64, StoreError> {
        assert!(self.buf.is_empty(), "one record per write: write (or drop) the last one first");
        let ops: Vec<(Bytes, Option<Bytes>)> =
            batch.ops.iter().map(|(k, v)| (Bytes(k), v.as_deref().map(Bytes))).collect();
        let (at, l) = (self.buf.len(), self.layout);
        self.buf.resize(at + l.head, 0);
        let mut buf = std::mem::take(&mut self.buf);
        buf = postcard::to_extend(&ops, buf)
            .map_err(|e| StoreError::Io(format!("cannot encode a record: {e}")))?;
        let len = buf.len() - at - l.head;
        let seq = self.next;
        buf[at + 8..at + 16].copy_from_slice(&seq.to_le_bytes());
        if l.head_check {
            let check = head_crc(self.generation, len as u32, seq);
            buf[at + 16..at + 20].copy_from_slice(&check.to_le_bytes());
        }
        let crc = record_crc(self.generation, &buf[at + 8..]);
        buf[at..at + 4].copy_from_slice(&(len as u32).to_le_bytes());
        buf[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        buf.resize(align(buf.len() as u64) as usize, 0);
        self.buf = buf;
        self.next += 1;
        Ok(seq)
    }

    /// Writes the records appended since the last call and makes them
    /// durable. On failure they are dropped, never to be replayed: the
    /// caller must `reset` before the next write.
    pub fn write(&mut self) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.write_inner();
        self.buf.clear();
        r
    }

    fn write_inner(&mut self) -> Result<(), StoreError> {
        let need = self.end + self.buf.len() as u64;
        if need > self.len {
            self.grow(need)?;
        }
        self.file.write_all_at(&self.buf, self.end).map_err(|e| io("cannot write the write-ahead log", e))?;
        #[cfg(test)]
        tests::note(&self.file, tests::Did::Wrote(self.next - 1));
        sync_data(&self.file).map_err(|e| io("cannot sync the write-ahead log", e))?;
        self.end = need;
        Ok(())
    }

    /// Zero-fills the file to at least `len` bytes, durably, ahead of any
    /// record that needs them.
    pub fn reserve(&mut self, len: u64) -> Result<(), StoreError> {
        if len > self.len {
            self.grow(len)?;
        }
        Ok(())
    }

    /// Zero-fills the file to at least `need` bytes and makes its new length
    /// durable. On failure (a full disk) the file is cut back to its length
    /// before, so that a growth that could not finish holds no space.
    fn grow(&mut self, need: u64) -> Result<(), StoreError> {
        let to = need.div_ceil(GROW) * GROW;
        let zeros = vec![0u8; (to - self.len) as usize];
        let r = self
            .file
            .write_all_at(&zeros, self.len)
            .map_err(|e| io("cannot grow the write-ahead log", e))
            .and_then(|()| {
                #[cfg(test)]
                if self.fail_sync {
                    return Err(io("cannot sync the write-ahead log", std::io::Error::from_raw_os_error(28)));
                }
                self.file.sync_all().map_err(|e| io("cannot sync the write-ahead log", e))
            });
        if r.is_err() {
            let _ = self.file.set_len(self.len);
        }
        r?;
        self.len = to;
        Ok(())
    }

    /// Empties the log: records from now on start at sequence `from`, and
    /// everything before is left behind. Only once all of it is durable
    /// elsewhere (or was never acknowledged).
    pub fn reset(&mut self, from: u64) -> Result<(), StoreError> {
        debug_assert!(self.buf.is_empty(), "records appended but not written would be lost");
        let generation = fresh_generation(self.generation);
        self.file
            .write_all_at(&header(MAGIC, from, generation), 0)
            .map_err(|e| io("cannot write the write-ahead log's header", e))?;
        sync_data(&self.file).map_err(|e| io("cannot sync the write-ahead log", e))?;
        (self.end, self.next, self.generation, self.layout) = (HEADER, from, generation, V3);
        Ok(())
    }

    /// Forgets the records appended since the last write (never acknowledged).
    pub fn drop_buffered(&mut self) {
        self.buf.clear();
    }
}

impl Wal {
    /// Gives back the file beyond `max` bytes (never its header), if no
    /// record lies there. `shrink(0)` of an empty log cuts it to its
    /// header: at a clean close, when the zeros ahead of records serve no
    /// one (a record written later grows the file first).
    pub fn shrink(&mut self, max: u64) -> Result<(), StoreError> {
        let max = max.max(HEADER);
        if self.len > max && self.end <= max && self.buf.is_empty() {
            self.file.set_len(max).map_err(|e| io("cannot shrink the write-ahead log", e))?;
            // The file ends here now, durably or not: a record beyond it
            // must grow it first (zeros, synced), or a write cut short
            // there would look like a file cut short at the next start.
            self.len = max;
            #[cfg(test)]
            if self.fail_sync {
                return Err(io("cannot sync the write-ahead log", std::io::Error::from_raw_os_error(5)));
            }
            self.file.sync_all().map_err(|e| io("cannot sync the write-ahead log", e))?;
        }
        Ok(())
    }
}

/// Whether the file at `path` is missing, or holds zeros (or nothing)
/// where its header would be.
pub(crate) fn headerless(path: &Path) -> Result<bool, StoreError> {
    use std::io::Read;
    let mut head = Vec::with_capacity(HEADER as usize);
    match File::open(path) {
        Ok(f) => {
            f.take(HEADER).read_to_end(&mut head).map_err(|e| io("cannot read the write-ahead log", e))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(io("cannot open the write-ahead log", e)),
    };
    Ok(head.iter().all(|&b| b == 0))
}

fn header(magic: &[u8; 8], start: u64, generation: u64) -> [u8; HEADER as usize] {
    let mut h = [0u8; HEADER as usize];
    h[..8].copy_from_slice(magic);
    h[8..16].copy_from_slice(&start.to_le_bytes());
    h[16..24].copy_from_slice(&generation.to_le_bytes());
    let crc = crc32fast::hash(&h[..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A number unlike `previous`, not predictable from outside the process
/// (std's per-process random hash keys, and the clock).
fn fresh_generation(previous: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(previous);
    h.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
    );
    match h.finish() {
        g if g == previous => g.wrapping_add(1),
        g => g,
    }
}

/// A record's head check: over the generation, its payload length and its
/// sequence number, so that a head is known whole without its payload.
fn head_crc(generation: u64, len: u32, seq: u64) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&generation.to_le_bytes());
    h.update(&len.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.finalize()
}

/// A record's checksum: over the generation, then its sequence number and payload.
fn record_crc(generation: u64, seq_and_payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&generation.to_le_bytes());
    h.update(seq_and_payload);
    h.finalize()
}

/// The header's `(start, generation)`, and its records' layout.
fn parse_header(b: &[u8]) -> Result<(u64, u64, Layout), StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("the write-ahead log's header {what}"));
    if b.len() < HEADER as usize {
        return Err(corrupt("is cut short"));
    }
    if &b[..5] != b"GLWAL" {
        return Err(corrupt("is not a Gridline write-ahead log's"));
    }
    let layout = match &b[..8] {
        m if m == MAGIC => V3,
        m if m == MAGIC_V2 => V2,
        _ => {
            return Err(corrupt(&format!(
                "has format version {} (this build reads {} and {})",
                b[7], MAGIC_V2[7], MAGIC[7]
            )))
        }
    };
    let crc = u32::from_le_bytes(b[24..28].try_into().expect("4 bytes"));
    if crc != crc32fast::hash(&b[..24]) {
        return Err(corrupt("fails its checksum"));
    }
    let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    Ok((word(8), word(16), layout))
}

/// The first intact record after byte `from` numbered `next` or later,
/// with its offset and number: a record of this generation that `open`
/// did not reach. Records from before the last reset have lower numbers
/// (numbers only grow) and fail their checksum besides.
fn intact_after(l: Layout, b: &[u8], from: usize, next: u64, generation: u64) -> Option<(usize, u64)> {
    // No more records than the rest of the file could hold can follow, so
    // payload bytes (timestamps, say) rarely pass for a number.
    let most = next + (b.len().saturating_sub(from) / (l.head + 1)) as u64;
    (align(from as u64 + 8) as usize..b.len().saturating_sub(l.head)).step_by(8).find_map(|at| {
        let len = u32::from_le_bytes(b[at..at + 4].try_into().ok()?) as usize;
        let seq = u64::from_le_bytes(b[at + 8..at + 16].try_into().ok()?);
        // Cheap tests first: nearly every offset fails them.
        if len == 0 || seq < next || seq > most {
            return None;
        }
        intact(l, b, at, seq, generation).map(|_| (at, seq))
    })
}

/// The payload length of the record at `at`, if it is whole: sequence
/// number `seq`, written under `generation`, its checksum right.
fn intact(l: Layout, b: &[u8], at: usize, seq: u64, generation: u64) -> Option<usize> {
    let head = b.get(at..at + l.head)?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[4..8].try_into().ok()?);
    if u64::from_le_bytes(head[8..16].try_into().ok()?) != seq {
        return None;
    }
    let body = b.get(at + 8..at + l.head + len)?;
    (record_crc(generation, body) == crc).then_some(len)
}

/// Whether the record at `at` has a whole head with the number `seq` yet
/// runs past the end of the file. A torn write never looks so (the file
/// is long enough before a record is written, and a torn head fails its
/// check); records from before a reset have lower numbers. In format 2,
/// which has no head check, the number alone is taken for a whole head.
fn cut_short(l: Layout, b: &[u8], at: usize, seq: u64, generation: u64) -> bool {
    let Some(head) = b.get(at..at + l.head) else { return false };
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
    let whole = !l.head_check
        || u32::from_le_bytes(head[16..20].try_into().expect("4 bytes")) == head_crc(generation, len, seq);
    len > 0
        && whole
        && u64::from_le_bytes(head[8..16].try_into().expect("8 bytes")) == seq
        && at + l.head + len as usize > b.len()
}

/// The intact record at `at` with sequence number `seq`, written under
/// `generation`: its payload length and batch. One that passes its
/// checksum but does not decode was written so: refused, not taken for
/// the torn end of the log.
fn record(
    l: Layout,
    b: &[u8],
    at: usize,
    seq: u64,
    generation: u64,
) -> Result<Option<(usize, WriteBatch)>, StoreError> {
    let Some(len) = intact(l, b, at, seq, generation) else { return Ok(None) };
    let ops: Vec<(Bytes, Option<Bytes>)> =
        postcard::from_bytes(&b[at + l.head..at + l.head + len]).map_err(|e| {
            StoreError::Corrupt(format!(
                "record {seq} (at byte {at}) passes its checksum but cannot be decoded ({e}); \
                 nothing is replayed and the write-ahead log is left as it is"
            ))
        })?;
    Ok(Some((
        len,
        WriteBatch { ops: ops.into_iter().map(|(k, v)| (k.0.to_vec(), v.map(|v| v.0.to_vec()))).collect() },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::os::unix::fs::MetadataExt;

    /// What was done to a write-ahead log file.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Did {
        /// The record with this number was written (not yet synced).
        Wrote(u64),
        /// The file was `fdatasync`ed.
        Synced,
    }

    /// A file, by device and inode.
    type FileId = (u64, u64);

    thread_local! {
        /// What this thread did to write-ahead log files, in order.
        static DONE: RefCell<Vec<(FileId, Did)>> = const { RefCell::new(Vec::new()) };
    }

    fn id_of(m: std::fs::Metadata) -> FileId {
        (m.dev(), m.ino())
    }

    pub(super) fn note(file: &File, did: Did) {
        let id = id_of(file.metadata().expect("the write-ahead log's metadata"));
        DONE.with(|d| d.borrow_mut().push((id, did)));
    }

    /// What this thread did to write-ahead log files since the last call.
    fn done() -> Vec<(FileId, Did)> {
        DONE.with(|d| std::mem::take(&mut *d.borrow_mut()))
    }

    /// Whether `done` holds record `seq` written to `file` and, after that,
    /// a data sync of `file`.
    fn synced_after_written(done: &[(FileId, Did)], file: FileId, seq: u64) -> bool {
        done.iter()
            .position(|d| *d == (file, Did::Wrote(seq)))
            .is_some_and(|at| done[at + 1..].contains(&(file, Did::Synced)))
    }

    fn batch(i: u8) -> WriteBatch {
        let mut b = WriteBatch::default();
        b.put(vec![b'c', i], vec![i; 100 + i as usize]);
        b.remove(vec![b'e', i]);
        b
    }

    fn same(a: &WriteBatch, b: &WriteBatch) -> bool {
        a.ops == b.ops
    }

    /// A new log at `p` with records 1..=n (`batch(i)` each, written and
    /// synced one by one), closed; where each record starts.
    fn records_1_to(p: &Path, n: u8) -> Vec<u64> {
        let (mut w, _) = Wal::open(p, 1).unwrap();
        let mut at = Vec::new();
        for i in 1..=n {
            at.push(w.end);
            w.append(&batch(i)).unwrap();
            w.write().unwrap();
        }
        at
    }

    #[test]
    fn records_come_back_in_order_and_writing_continues_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wal");
        let (mut w, got) = Wal::open(&p, 7).unwrap();
        assert!(got.is_empty());
        for i in 0..3 {
            w.append(&batch(i)).unwrap();
            w.write().unwrap();
        }
        w.append(&batch(3)).unwrap();
        w.write().unwrap();
        drop(w);
        let (mut w, got) = Wal::open(&p, 1).unwrap();
        assert_eq!(got.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![7, 8, 9, 10]);
        assert!(got.iter().enumerate().all(|(i, (_, b))| same(b, &batch(i as u8))));
        assert_eq!(w.next(), 11);
        w.append(&batch(4)).unwrap();
        w.write().unwrap();
        drop(w);
        assert_eq!(Wal::open(&p, 1).unwrap().1.len(), 5);
    }

    /// A record is written only where the file is already long enough (its
    /// length made durable first), so one that runs past the end of the
    /// file is not a torn write: the file was cut short, and what lay
    /// beyond (acknowledged records, maybe) is gone. Reported, not dropped.
    #[test]
    fn a_record_cut_short_by_the_end_of_the_file_is_reported_not_taken_for_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wal");
        let at3 = records_1_to(&p, 4)[2];
        // Cut inside record 3: records 3 and 4 were synced, so acknowledged.
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(at3 + 40).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let err = Wal::open(&p, 1).map(|_| ()).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.contains(&p.display().to_string())
                && m.contains("record 3") && m.contains(&format!("byte {at3}")) && m.contains("cut short")),
            "{err:?}"
        );
        assert_eq!(std::fs::read(&p).unwrap(), bytes, "the file is left as it was");
    }

    /// A head split across two pages (or sectors) of a file reused after
    /// a reset, where the write of the next record reached the disk only in
    /// the page with its number: the length and checksum are an older
    /// record's bytes, and read as a length past the end of the file. That
    /// record was never acknowledged (its sync never returned): a torn
    /// tail, dropped, not a file cut short.
    #[test]
    fn a_torn_head_whose_length_runs_past_the_end_is_a_torn_tail_not_a_file_cut_short() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wal");
        let at3 = records_1_to(&p, 3)[2] as usize;
        let mut bytes = std::fs::read(&p).unwrap();
        // An older record's text where the length and checksum were.
        bytes[at3..at3 + 8].copy_from_slice(b"abcd\xff\xff\xff\x7f");
        std::fs::write(&p, &bytes).unwrap();
        let (w, got) = Wal::open(&p, 1).expect("a torn head is not a file cut short");
        assert_eq!(got.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [1, 2]);
        assert_eq!((w.next(), w.damage()), (3, None));
    }

    /// Logs written by the builds before the head check (format 2) are
    /// read as they are, and written in format 3 from their next reset.
    #[test]
    fn a_log_in_format_2_is_read_and_written_in_format_3_after_its_reset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wal");
        let (mut w, _) = Wal::open(&p, 5).unwrap();
        w.file.write_all_at(&header(MAGIC_V2, 5, w.generation), 0).unwrap();
        w.layout = V2;
        for i in 0..3 {
            w.append(&batch(i)).unwrap();
            w.write().unwrap();
        }
        let end = w.end;
        drop(w);
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..8], MAGIC_V2);
        let (first, generation) = (HEADER as usize, u64::from_le_bytes(bytes[16..24].try_into().unwrap()));
        assert!(intact(V2, &bytes, first, 5, generation).is_some(), "a 16-byte head");
        assert!(intact(V3, &bytes, first, 5, generation).is_none());
        assert!(end > HEADER);
        let (mut w, got) = Wal::open(&p, 1).unwrap();
        assert_eq!(got.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [5, 6, 7]);
        assert!(got.iter().enumerate().all(|(i, (_, b))| same(b, &batch(i as u8))));
        assert_eq!(w.layout, V2);
        // A file cut short is still told from a torn tail in format 2.
        let cut = dir.path().join("cut");
        std::fs::write(&cut, &bytes[..(HEADER as usize + 40)]).unwrap();
        assert!(
            matches!(Wal::open(&cut, 1).map(|_| ()), Err(StoreError::Corrupt(m)) if m.contains("cut short"))
        );
        w.reset(8).unwrap();
        w.append(&batch(9)).unwrap();
        w.write().unwrap();
        drop(w);
        let (w, got) = Wal::open(&p, 1).unwrap();
        assert_eq!((w.layout, got.len(), got[0].0), (V3, 1, 8));
        assert_eq!(&std::fs::read(&p).unwrap()[..8], MAGIC);
    }

    /// A record that passes its checksum but does not decode was written
    /// so (a bug, not a crash): refused, never dropped as a torn tail.
    #[test]
    fn a_record_that_passes_its_checksum_but_does_not_decode_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wal");
        let (mut w, _) = Wal::open(&p, 1).unwrap();
        w.append(&batch(1)).unwrap();
        w.write().unwrap();
        let (at, generation) = (w.end, w.generation);
        drop(w);
        let payload = [0xffu8; 5];
        let mut r = vec![0u8; V3.head];
        r[..4].copy_from_slice(&5u32.to_le_bytes());
        r[8..16].copy_from_slice(&2u64.to_le_bytes());
        r[16..20].copy_from_slice(&head_crc(generation, 5, 2).to_le_bytes());
        r.extend_from_slice(&payload);
        let crc = record_crc(generation, &r[8..]);
        r[4..8].copy_from_slice(&crc.to_le_bytes());
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(&r, at).unwrap();
        let err = Wal::open(&p, 1).map(|_| ()).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.contains("record 2") && m.contains("cannot be decoded")
                && m.contains(&p.display().to_string())),
            "{err:?}"
        );
    }

    #[test]
    fn a_torn_tail_is_dropped_and_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wal");
        let (mut w, _) = Wal::open(&p, 1).unwrap();
        for i in 0..4 {
            w.append(&batch(i)).unwrap();
            w.write().unwrap();
        }
        let end = w.end;
        drop(w);
        // Damage the last record's payload: a write cut short.
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[end as usize - 20] ^= 0xff;
        std::fs::write(&p, &bytes).unwrap();
        let (mut w, got) = Wal::open(&p, 1).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(w.next(), 4);
        w.append(&batch(9)).unwrap();
        w.write().unwrap();
        drop(w);
        let (_, got) = Wal::open(&p, 1).unwrap();
        assert_eq!(got.len(), 4);
        assert!(same(&got[3].1, &batch(9)));
    }

    #[test]
    fn records_from_before_a_reset_are_never_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wal");
        let (mut w, _) = Wal::open(&p, 1).unwrap();
        for i in 0..5 {
            w.append(&batch(i)).unwrap();
            w.write().unwrap();
        }
        w.reset(6).unwrap();
        // One short record where longer ones were: the old ones after it
        // are intact but from before the reset.
        let mut small = WriteBatch::default();
        small.remove(vec![b'x']);
        w.append(&small).unwrap();
        w.write().unwrap();
        drop(w);
        let (w, got) = Wal::open(&p, 1).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 6);
        assert_eq!(w.next(), 7);
    }

    /// Each record is written and synced alone, so an intact record after
    /// a bad one means the bad one had been synced: damage, not a torn
    /// tail. Whether its bytes were flipped or its head zeroed (which looks
    /// like the clean end of the log), `open` reports it with the last
    /// intact number after it, and leaves the file as it was.
    #[test]
    fn a_damaged_record_with_intact_ones_after_it_is_reported_not_dropped() {
        // A length past the end of the file (its top byte flipped) with
        // intact records after it: they were written after it, so the file
        // was not cut there.
        for (what, damage) in
            [("a flipped byte", 20usize), ("a zeroed head", usize::MAX), ("a huge length", 3)]
        {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("wal");
            let (mut w, _) = Wal::open(&p, 7).unwrap();
            let at7 = w.end as usize;
            let mut at8 = 0;
            for i in 1..=3 {
                w.append(&batch(i)).unwrap();
                w.write().unwrap();
                if i == 1 {
                    at8 = w.end as usize;
                }
            }
            drop(w);
            let mut bytes = std::fs::read(&p).unwrap();
            if damage == usize::MAX {
                bytes[at7..at7 + V3.head].fill(0);
            } else {
                bytes[at7 + damage] ^= 0xff;
            }
            std::fs::write(&p, &bytes).unwrap();
            let (w, got) = Wal::open(&p, 7).unwrap();
            assert!(got.is_empty(), "{what}");
            assert_eq!(w.damage(), Some(Damage { at: at7, record: 7, later: at8, last: 9 }), "{what}");
            drop(w);
            assert_eq!(std::fs::read(&p).unwrap(), bytes, "{what}: the file is left as it was");
        }
        // A torn tail is not damage.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wal");
        let (mut w, _) = Wal::open(&p, 1).unwrap();
        w.append(&batch(1)).unwrap();
        w.write().unwrap();
        let end = w.end as usize;
        drop(w);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[end - 20] ^= 0xff;
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(Wal::open(&p, 1).unwrap().0.damage(), None);
    }

    /// A file cut inside the padding after its last record (a copy cut
    /// short, say): the record is whole, and reading it does not panic.
    #[test]
    fn a_file_cut_inside_the_padding_after_its_last_record_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wal");
        let (mut w, _) = Wal::open(&p, 1).unwrap();
        w.append(&batch(1)).unwrap();
        w.write().unwrap();
        drop(w);
        // Cut where the payload ends, before its padding to 8 bytes.
        let bytes = std::fs::read(&p).unwrap();
        let len = u32::from_le_bytes(bytes[HEADER as usize..][..4].try_into().unwrap()) as u64;
        assert_ne!(len % 8, 0, "the record needs padding for this test");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(HEADER + V3.head as u64 + len)
            .unwrap();
        let (w, got) = Wal::open(&p, 1).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(w.damage(), None);
    }

    #[test]
    fn a_damaged_header_is_reported_not_guessed_at() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wal");
        drop(Wal::open(&p, 1).unwrap());
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[9] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        let err = Wal::open(&p, 1).map(|_| ()).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.contains("checksum") && m.contains(&p.display().to_string())),
            "{err:?}"
        );
    }

    /// `shrink` cut the file but its sync failed (warned, and writing goes
    /// on): a record past the new end must still grow the file first, its
    /// length made durable, as `open` relies on to tell a write cut short
    /// (dropped) from a file cut short (refused).
    #[test]
    fn a_growth_that_fails_holds_no_space_and_the_next_one_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wal");
        let (mut w, _) = Wal::open(&p, 1).unwrap();
        assert_eq!(w.file_len(), GROW);
        w.fail_sync = true;
        assert!(w.reserve(2 * GROW).is_err());
        w.fail_sync = false;
        assert_eq!((w.file_len(), std::fs::metadata(&p).unwrap().len()), (GROW, GROW));
        w.reserve(2 * GROW).unwrap();
        assert_eq!((w.file_len(), std::fs::metadata(&p).unwrap().len()), (2 * GROW, 2 * GROW));
    }

    #[test]
    fn a_record_past_a_shrink_whose_sync_failed_grows_the_file_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wal");
        let (mut w, _) = Wal::open(&p, 1).unwrap();
        let mut big = WriteBatch::default();
        big.put(b"k".to_vec(), vec![7; 60_000]);
        while w.file_len() < 3 * GROW {
            w.append(&big).unwrap();
            w.write().unwrap();
        }
        w.reset(w.next()).unwrap();
        w.fail_sync = true;
        assert!(w.shrink(GROW).is_err());
        w.fail_sync = false;
        assert_eq!(
            w.file_len(),
            std::fs::metadata(&p).unwrap().len(),
            "what the writer believes is the file's length"
        );
        while w.used() < GROW {
            w.append(&big).unwrap();
            w.write().unwrap();
        }
        assert_eq!(w.file_len(), std::fs::metadata(&p).unwrap().len());
    }

    #[test]
    fn the_file_grows_zero_filled_as_records_need_room() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wal");
        let (mut w, _) = Wal::open(&p, 1).unwrap();
        assert_eq!(w.file_len(), GROW);
        let mut big = WriteBatch::default();
        big.put(b"k".to_vec(), vec![7; 60_000]);
        for _ in 0..80 {
            w.append(&big).unwrap();
            w.write().unwrap();
        }
        assert_eq!(w.file_len(), 2 * GROW);
        // records in the way: nothing to give back
        w.shrink(GROW).unwrap();
        assert_eq!(w.file_len(), 2 * GROW);
        drop(w);
        let (mut w, got) = Wal::open(&p, 1).unwrap();
        assert_eq!(got.len(), 80);
        w.reset(81).unwrap();
        w.shrink(GROW).unwrap();
        assert_eq!((w.file_len(), std::fs::metadata(&p).unwrap().len()), (GROW, GROW));
        w.append(&big).unwrap();
        w.write().unwrap();
        drop(w);
        assert_eq!(Wal::open(&p, 1).unwrap().1.len(), 1);
    }

    /// A record is durable when `write` returns: its bytes were written
    /// and then its file `fdatasync`ed, before the return. The same for a
    /// commit through the store: `Store::sync` writes the commit's record
    /// on the calling thread, and returns once it is synced.
    #[test]
    fn a_record_is_synced_before_its_write_returns() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wal");
        let (mut w, _) = Wal::open(&p, 1).unwrap();
        let file = id_of(std::fs::metadata(&p).unwrap());
        for i in 1..=3 {
            done();
            let seq = w.append(&batch(i)).unwrap();
            assert_eq!(done(), [], "append writes nothing");
            w.write().unwrap();
            let done = done();
            assert!(synced_after_written(&done, file, seq), "record {seq}: {done:?}");
        }

        let dir = tempfile::tempdir().unwrap();
        let s = crate::store::SledStore::open(dir.path()).unwrap();
        let files: Vec<FileId> = crate::store::WAL_FILES
            .iter()
            .map(|f| id_of(std::fs::metadata(dir.path().join(f)).unwrap()))
            .collect();
        for i in 1..=3 {
            done();
            crate::store::Store::apply(&s, batch(i)).unwrap();
            crate::store::Store::sync(&s).unwrap();
            let done = done();
            let (at, seq) = done
                .iter()
                .find_map(|(f, d)| match d {
                    Did::Wrote(seq) => Some((*f, *seq)),
                    Did::Synced => None,
                })
                .unwrap_or_else(|| panic!("commit {i}: no record written: {done:?}"));
            assert!(files.contains(&at), "commit {i}: written to another file than the log's: {done:?}");
            assert!(synced_after_written(&done, at, seq), "commit {i}, record {seq}: {done:?}");
        }
    }
}
