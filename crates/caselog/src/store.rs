//! Where the log's bytes live: sled on disk, or memory in tests.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tracing::{info, warn};

use crate::codec;
use crate::wal::Wal;

/// A storage failure. `Full` and `Io` make the engine answer `unavailable`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("storage is full")]
    Full,
    #[error("storage is corrupt: {0}")]
    Corrupt(String),
    #[error("storage is in a format this build does not read: {0}")]
    Unsupported(String),
}

/// Puts and removes applied together, all or nothing.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((key, Some(value)));
    }
    pub fn remove(&mut self, key: Vec<u8>) {
        self.ops.push((key, None));
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

pub type KeyValue = (Vec<u8>, Vec<u8>);

/// An ordered key-value store with atomic batches and an explicit durability barrier.
/// Shared by the engine's threads: its syncer writes each commit, the engine
/// thread writes the undo of a failed one, and recovery and the history
/// thread (`GET`'s events) read.
///
/// `apply` stages a batch; only a successful `sync` after it makes it
/// durable. Reads see a staged batch at once ([`MemStore`]) or once it is
/// synced ([`SledStore`]); callers must not rely on either. After a failed
/// `sync`, whether the batch survives a crash is unknown.
pub trait Store: Send + Sync + 'static {
    /// Whether a new write may be taken now: `Err(Full)` while the store
    /// lacks the room it keeps (see [`SledStore::keep_free`]). The log asks
    /// before each commit's write; an undo batch (`CaseLog::revert`) does
    /// not ask, since it must go through.
    fn admit(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError>;
    fn sync(&self) -> Result<(), StoreError>;
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every pair whose key starts with `prefix`, in key order.
    fn scan(&self, prefix: &[u8]) -> Box<dyn Iterator<Item = Result<KeyValue, StoreError>> + '_>;
    /// Calls `f` with every pair whose key starts with `prefix`, in key
    /// order, lent rather than copied; stops when `f` returns `false`.
    fn for_each(&self, prefix: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), StoreError> {
        for r in self.scan(prefix) {
            let (k, v) = r?;
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }
    /// The pair with the greatest key starting with `prefix`.
    fn last(&self, prefix: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        self.scan(prefix).last().transpose()
    }
}

/// What to do about a damaged log: docs/storage.md, "Backups".
const RESTORE: &str = "restore the data directory from a backup (docs/storage.md, \"Backups\")";

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn sled_err(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Corruption { .. } => StoreError::Corrupt(e.to_string()),
        sled::Error::Io(ref ioe) if ioe.raw_os_error() == Some(libc_enospc()) => StoreError::Full,
        ref e if locked(e) => StoreError::Io(
            "the log is locked by another process (a server, or an audit or verify reading it: is one running on this data directory?)".into(),
        ),
        other => io(other),
    }
}

/// What a caught panic said.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown".into())
}

/// Runs a read of sled's. sled 0.34.7 panics on some damage in its file
/// (a page it cannot find: "cannot find pid … in view_for_key") instead
/// of returning an error; that is reported as damage, like its own
/// `Corruption`, not as a panic of ours.
fn guarded<T>(read: impl FnOnce() -> sled::Result<T>) -> Result<T, StoreError> {
    match quietly(read) {
        Ok(r) => r.map_err(sled_err),
        Err(p) => Err(StoreError::Corrupt(format!(
            "sled cannot read the log ({}); the file is damaged",
            panic_message(&*p)
        ))),
    }
}

/// A scan of sled's whose every step is [`guarded`]; it ends after the
/// first error.
struct GuardedIter {
    iter: sled::Iter,
    failed: bool,
}

impl Iterator for GuardedIter {
    type Item = Result<KeyValue, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let r = guarded(|| self.iter.next().transpose()).transpose()?;
        self.failed = r.is_err();
        Some(r.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }
}

/// Whether sled could not take its file's lock (another process, or a
/// store of this one still closing). sled reports it as an `Other` I/O
/// error naming the lock.
fn locked(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(ioe)
        if ioe.kind() == std::io::ErrorKind::WouldBlock || ioe.to_string().contains("could not acquire lock"))
}

const fn libc_enospc() -> i32 {
    28
}

/// sled 0.34.7 behind a write-ahead log.
///
/// A commit (`apply`, then `sync`) is a record in the log, made durable
/// with one `fdatasync`; only then is the batch handed to a thread that
/// applies it to sled. sled's own work, its `apply_batch` and its flush, is
/// off the acknowledgement's path. Every batch sled applies also records
/// its record's sequence number (under [`APPLIED_KEY`]), so at open the
/// records sled lost in a crash are exactly those above that number, and
/// they are applied again, in order.
///
/// The log has two files. When the one being written holds more than
/// its checkpoint size ([`CHECKPOINT_BYTES`] unless opened with another) of
/// records, the next commit goes to the other one,
/// and a checkpoint thread makes sled durable up to the last record of the
/// first (sled's flush, which writes with `sync_file_range` on Linux (sled
/// issue #1452) and so neither persists the file's size nor flushes the
/// disk's cache, then `fsync` of sled's file and of the blob files sled
/// wrote and never syncs), after which that file may be written over. So a checkpoint never holds up a commit, unless sled falls
/// so far behind that the file being written passes
/// four times that before the other one's checkpoint is done.
/// Reads wait until every synced batch is applied, so they see everything
/// acknowledged.
pub struct SledStore {
    db: sled::Db,
    files: Arc<SledFiles>,
    log: Mutex<Log>,
    progress: Arc<(Mutex<Progress>, Condvar)>,
    applier: Option<(SyncSender<Numbered>, JoinHandle<()>)>,
    checkpointer: Option<(Sender<u64>, JoinHandle<()>)>,
    /// Bytes of records in a file past which the log moves to the other.
    checkpoint_bytes: u64,
    /// The free space kept on the log's filesystem (see [`SledStore::keep_free`]).
    space: Mutex<Space>,
}

/// What the last look at the log's filesystem found.
struct Space {
    dir: std::path::PathBuf,
    /// Writes are refused while fewer bytes than this are free.
    keep: u64,
    /// When it was last looked at, and whether it was short then.
    checked: Option<(std::time::Instant, bool)>,
}

/// How long one look at the free space holds: a commit does not pay a
/// `statvfs` each; between two looks sled grows by far less than the room
/// kept.
const SPACE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// A synced batch and its record's sequence number.
type Numbered = (u64, WriteBatch);

/// At most this many queued records go into one of sled's batches (as many
/// as may wait for the applier).
const MERGE_MAX: u64 = APPLY_QUEUE as u64;

/// The key under which sled keeps the sequence number of the last record it applied.
pub const APPLIED_KEY: &[u8] = b"mwal";
/// Present once the log has both files: written at the first start of a
/// build with two (which creates `wal.1` and syncs its directory first) and
/// made durable before any record can go to `wal.1`. From then on a
/// `wal.1` missing or without a header may have held acknowledged records,
/// as `wal` may once `m wal` exists.
pub const TWO_FILES_KEY: &[u8] = b"mwal.1";
/// Bytes of records past which, by default, the log moves on to its other
/// file (once that one's records are durable in sled) and has sled made
/// durable up to the last record of this one, in the background. Past four
/// times that, the next commit waits for the other file's checkpoint rather
/// than writing on.
pub const CHECKPOINT_BYTES: u64 = 4 << 20;
/// How long sled's writes go without a flush and fsync, at most, when no
/// checkpoint comes (light traffic fills a log file only after hours).
/// Between checkpoints sled counts its writes stable once
/// `sync_file_range` returns, and may then reuse the space of pages it
/// rewrote (docs/storage.md, "What it assumes of the disk"); this bounds
/// how long they stay so.
const IDLE_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);
/// Synced batches waiting for sled at most; a sync waits beyond that.
const APPLY_QUEUE: usize = 8;
/// How long `open` waits for sled's file lock before calling the log locked.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// The write-ahead log's two files, in the data directory; `wal` is the
/// one written first after every start.
pub const WAL_FILES: [&str; 2] = ["wal", "wal.1"];

struct Log {
    /// The file records are written to.
    wal: Wal,
    /// The other file. Its records, up to `spare_last`, are durable in sled
    /// or being made so; it is written over only once they are.
    spare: Wal,
    spare_last: u64,
    /// The writes of every `apply` since the last `sync`, in order: one
    /// record at the next sync. One record per write and `fdatasync` is what
    /// lets a start tell a damaged record (an intact one follows it) from
    /// a torn tail (nothing intact follows).
    pending: Option<WriteBatch>,
    /// A write failed: the log must be reset before the next write.
    broken: bool,
    /// A checkpoint failed: every write fails with this until a restart.
    dead: Option<StoreError>,
}

#[derive(Default)]
struct Progress {
    handed: u64,
    applied: u64,
    /// The sequence number of the last record sled applied.
    applied_seq: u64,
    /// Records up to this number are durable in sled (flushed and fsynced
    /// after sled applied them).
    durable: u64,
    /// sled failed to apply a batch.
    failed: Option<StoreError>,
    /// A checkpoint in the background failed.
    checkpoint_failed: Option<StoreError>,
}

impl SledStore {
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        SledStore::open_with(path, CHECKPOINT_BYTES)
    }

    /// Opens with `checkpoint_bytes` of records in a log file (at least 1 MiB)
    /// before the log moves to its other one.
    pub fn open_with(path: &Path, checkpoint_bytes: u64) -> Result<SledStore, StoreError> {
        let checkpoint_bytes = checkpoint_bytes.max(1 << 20);
        // The log holds residents' records: its directory is its owner's
        // alone (0700) when made here. (sled makes its files with the
        // default mode: the caller's umask decides theirs.)
        let mut dir = std::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
        dir.create(path).map_err(io)?;
        remove_unfinished_snapshots(path)?;
        let config = sled::Config::new().path(path).flush_every_ms(None).cache_capacity(256 << 20);
        // sled panics on some kinds of damage (a truncated file, say) instead
        // of returning an error: catch that, quietly, and report it as damage.
        let open_here = || {
            quietly(|| config.open()).map_err(|p| {
                StoreError::Corrupt(format!(
                    "sled cannot open the log in {} ({}): its files are damaged or truncated; {RESTORE}",
                    path.display(),
                    panic_message(&*p)
                ))
            })
        };
        // sled's I/O threads write its log and free its old pages, off the
        // acknowledgement's path like the applier; they inherit the nice
        // value of the thread that starts their pool. So open, and start the
        // pool, from a thread at the applier's background priority (the
        // calling thread waits; nothing else runs meanwhile).
        let open = || {
            std::thread::scope(|s| {
                let opener = std::thread::Builder::new().name("gridline-open".into()).spawn_scoped(s, || {
                    background_priority();
                    let db = open_here();
                    if let Ok(Ok(db)) = &db {
                        start_sled_io(db);
                    }
                    db
                });
                match opener {
                    Ok(t) => t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                    Err(_) => open_here(),
                }
            })
        };
        // sled lets go of its file lock only when the last of its threads
        // drops its handle, a moment after a store in this process closed:
        // a lock still held is waited for, briefly, before it is an error.
        let t0 = std::time::Instant::now();
        let db = loop {
            match open()? {
                Err(e) if locked(&e) && t0.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                // sled reads a damaged `conf` (its checksum fails) as one
                // written by a sled before 0.29; every Gridline log was
                // written by 0.34.7.
                Err(sled::Error::Unsupported(m)) => {
                    return Err(StoreError::Corrupt(format!(
                        "sled cannot read its settings file {} ({m}): it is damaged; {RESTORE}",
                        path.join("conf").display()
                    )))
                }
                Err(e @ sled::Error::Corruption { .. }) => {
                    return Err(StoreError::Corrupt(format!(
                        "sled cannot open the log in {} ({e}): its files are damaged; {RESTORE}",
                        path.display()
                    )))
                }
                r => break r.map_err(sled_err)?,
            }
        };
        let file = File::open(path.join("db")).map_err(|e| {
            StoreError::Io(format!("cannot open sled's file {}: {e}", path.join("db").display()))
        })?;
        let file =
            Arc::new(SledFiles { db: file, blobs: path.join("blobs"), synced: Mutex::new(HashMap::new()) });
        // A log in a format this build does not read (a newer Gridline
        // wrote it): refuse it before its write-ahead log is replayed or
        // reset, so that the build that wrote it finds it as it left it.
        // The log's format as sled holds it (0: none yet), which decides
        // whether the pages sled is given are packed (see `sled_batch`).
        let mut format = 0;
        if let Some(meta) = guarded(|| db.get(codec::META_KEY))? {
            format = readable_format(path, &meta, "")?.unwrap_or(0);
        }
        let written = guarded(|| db.get(APPLIED_KEY))?;
        let applied = match &written {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("sled's applied-record number is damaged".into()))?,
            ),
            None => 0,
        };
        // `m wal` is first written once both files exist, their directory
        // synced, so from then on `wal` always has a header; `wal.1` does
        // once `m wal.1` exists too (a log last written by a build with one
        // file has `m wal` only, and gets its `wal.1` now).
        let two_files = guarded(|| db.get(TWO_FILES_KEY))?.is_some();
        for (name, needed) in [(WAL_FILES[0], written.is_some()), (WAL_FILES[1], two_files)] {
            let file = path.join(name);
            if needed && crate::wal::headerless(&file)? {
                return Err(StoreError::Corrupt(format!(
                    "{}: the write-ahead log is missing or has no header (zeros), yet sled has applied records up to {applied} through its files: \
                     the acknowledged records after that it may have held are lost; nothing is replayed and nothing is created",
                    file.display()
                )));
            }
        }
        // Both files' records that sled does not hold, in order; numbers
        // issued run up to the larger of the files' next numbers.
        let (mut wals, mut records, mut issued) = (Vec::new(), Vec::new(), applied + 1);
        for name in WAL_FILES {
            let file = path.join(name);
            if written.is_some() && !two_files && name == WAL_FILES[1] && crate::wal::headerless(&file)? {
                warn!(file = %file.display(), "the second write-ahead log file is missing or has no header: created anew (as expected only of a log last written by a build with one file)");
            }
            let (wal, recs) = Wal::open(&file, applied + 1)?;
            if let Some(d) = wal.damage() {
                // Records after the damaged one were acknowledged; those
                // sled does not hold could not be replayed.
                if d.last > applied {
                    return Err(StoreError::Corrupt(format!(
                        "{}: record {} (at byte {}) is damaged, yet the records after it are intact (from byte {}, up to record {}), and sled holds the batches only up to record {applied}: \
                         acknowledged writes would be lost, so nothing is replayed and the write-ahead log is left as it is",
                        file.display(),
                        d.record,
                        d.at,
                        d.later,
                        d.last
                    )));
                }
                warn!(file = %file.display(), record = d.record, at = d.at, last = d.last, "a write-ahead log record is damaged, but sled holds it and every record after it durably: nothing is lost");
            }
            issued = issued.max(wal.next());
            records.extend(recs.into_iter().filter(|r| r.0 > applied));
            wals.push(wal);
        }
        // Make the directory entries durable (sled's files, both log
        // files, the log's own directory), at every start, not only at the
        // one that creates them: a kill between a file's creation and its
        // directory's sync would leave the next start believing the entry
        // durable, and a power loss after that start acknowledged writes
        // could drop it. Two fsyncs of a directory a start.
        sync_dir(path)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        records.sort_unstable_by_key(|r| r.0);
        // Each file's numbers only grow: one number twice is in both files.
        if let Some(w) = records.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(StoreError::Corrupt(format!(
                "{} and {} both hold record {} (one file copied over the other?): numbers are issued once, so one of them is not \
                 what this log wrote; nothing is replayed and the write-ahead log is left as it is",
                path.join(WAL_FILES[0]).display(),
                path.join(WAL_FILES[1]).display(),
                w[0].0
            )));
        }
        let numbers = records.iter().map(|r| r.0).chain(std::iter::once(issued));
        if let Some((expect, seq)) = (applied + 1..).zip(numbers).find(|(expect, seq)| seq != expect) {
            return Err(StoreError::Corrupt(format!(
                "sled holds the batches up to record {applied}, but the write-ahead log lacks the next ones: records {expect} to {} are lost",
                seq - 1
            )));
        }
        // A newer Gridline marks a log as its format with a record: one
        // that sled never applied refuses the start as sled's would.
        for (seq, batch) in &records {
            for (k, v) in &batch.ops {
                if let (true, Some(v)) = (k.as_slice() == codec::META_KEY, v) {
                    readable_format(path, v, &format!(" in record {seq} of the write-ahead log"))?;
                }
            }
        }
        let replayed = records.len();
        for (seq, batch) in records {
            guarded(|| db.apply_batch(sled_batch(batch, seq, &mut format)))?;
        }
        if replayed > 0 {
            info!(replayed, "applied the write-ahead log's records that sled had not stored");
        }
        // Whatever sled holds now may be only in the page cache: make it
        // durable before the log that could rebuild it is emptied. Numbers
        // are never issued twice: sled may already have applied numbers the
        // log no longer holds (a checkpoint cut short after sled's fsync).
        let (mut spare, mut wal) = (wals.pop().expect("two files"), wals.pop().expect("two files"));
        // Both files exist and their directory is synced: say so, durably
        // with the checkpoint below, before any record goes to `wal.1`.
        if !two_files {
            guarded(|| db.insert(TWO_FILES_KEY, &[]))?;
        }
        make_durable(&db, &file, &mut wal, issued, checkpoint_bytes)?;
        // Each file at its working length now, rather than when the first
        // records need the room: growing writes zeros and fsyncs on a
        // commit's path (14-24 ms in a paced run's first second). At most
        // two growth steps each: a larger checkpoint size (up to 1 GiB)
        // would otherwise write gigabytes of zeros at every start.
        let reserve = (checkpoint_bytes + crate::wal::GROW).min(2 * crate::wal::GROW);
        for w in [&mut wal, &mut spare] {
            if let Err(e) = w.reserve(reserve) {
                warn!(error = %e, "cannot grow the write-ahead log ahead of its records; it grows as they need room");
            }
        }
        let durable = issued - 1;
        let progress = Arc::new((
            Mutex::new(Progress { applied_seq: durable, durable, ..Progress::default() }),
            Condvar::new(),
        ));
        let (tx, rx) = std::sync::mpsc::sync_channel::<Numbered>(APPLY_QUEUE);
        let (apply_db, apply_progress) = (db.clone(), progress.clone());
        let join = std::thread::Builder::new()
            .name("gridline-apply".into())
            .spawn(move || {
                background_priority();
                apply_all(&apply_db, rx, &apply_progress, format)
            })
            .map_err(|e| {
                StoreError::Io(format!("cannot start the thread that applies commits to sled: {e}"))
            })?;
        let applier = Some((tx, join));
        let (ckpt_tx, ckpt_rx) = std::sync::mpsc::channel::<u64>();
        let (ckpt_db, ckpt_progress) = (db.clone(), progress.clone());
        let ckpt_file = file.clone();
        let ckpt_join = std::thread::Builder::new()
            .name("gridline-ckpt".into())
            .spawn(move || {
                background_priority();
                checkpoint_all(&ckpt_db, &ckpt_file, ckpt_rx, &ckpt_progress)
            })
            .map_err(|e| StoreError::Io(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(SledStore {
            db,
            files: file,
            log: Mutex::new(Log {
                wal,
                spare,
                spare_last: durable,
                pending: None,
                broken: false,
                dead: None,
            }),
            progress,
            applier,
            checkpointer: Some((ckpt_tx, ckpt_join)),
            checkpoint_bytes,
            space: Mutex::new(Space {
                dir: path.to_path_buf(),
                keep: 2 * checkpoint_bytes + (64 << 20),
                checked: None,
            }),
        })
    }

    /// Waits until sled has applied every synced batch.
    fn caught_up(&self) -> Result<(), StoreError> {
        let (lock, cv) = &*self.progress;
        let mut p = lock.lock().expect("progress lock");
        while p.applied < p.handed && p.failed.is_none() {
            p = cv.wait(p).expect("progress lock");
        }
        match &p.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Whether the records up to `seq` are durable in sled; if `wait`,
    /// waits until they are.
    fn durable(&self, seq: u64, wait: bool) -> Result<bool, StoreError> {
        let (lock, cv) = &*self.progress;
        let mut p = lock.lock().expect("progress lock");
        loop {
            if let Some(e) = p.failed.as_ref().or(p.checkpoint_failed.as_ref()) {
                return Err(e.clone());
            }
            if p.durable >= seq || !wait {
                return Ok(p.durable >= seq);
            }
            p = cv.wait(p).expect("progress lock");
        }
    }

    /// Makes sled durable up to every synced batch and empties the log.
    /// A failure is final for this process: after a failed fsync the kernel
    /// may have dropped pages it will not report again, so the log, which
    /// may be their only durable copy, is never emptied again; writes fail
    /// until a restart applies it again.
    fn checkpoint(&self, log: &mut Log) -> Result<(), StoreError> {
        let next = log.wal.next();
        let r = self
            .caught_up()
            .and_then(|()| make_durable(&self.db, &self.files, &mut log.wal, next, self.checkpoint_bytes));
        match r {
            Ok(()) => {
                log.broken = false;
                let (lock, cv) = &*self.progress;
                let mut p = lock.lock().expect("progress lock");
                p.durable = p.durable.max(next - 1);
                cv.notify_all();
            }
            Err(ref e) => self.die(log, e),
        }
        r
    }

    fn die(&self, log: &mut Log, e: &StoreError) {
        tracing::error!(error = %e, "checkpoint failed; writes are refused until a restart");
        log.dead = Some(StoreError::Io(format!("{e}; writes are refused until the server restarts")));
    }

    /// Moves writing on to the other file, whose records sled holds
    /// durably, and has the checkpoint thread make this one's durable.
    fn rotate(&self, log: &mut Log) -> Result<(), StoreError> {
        let next = log.wal.next();
        if let Err(e) = log.spare.reset(next) {
            self.die(log, &e);
            return Err(e);
        }
        // A file that grew while sled lagged gives the space back: after
        // the reset, since its records reach as far as it grew (it grows
        // only as records need room), so `shrink` finds none in the way
        // only once they are left behind.
        if let Err(e) = log.spare.shrink(self.checkpoint_bytes + crate::wal::GROW) {
            warn!(error = %e, "cannot shrink the write-ahead log");
        }
        std::mem::swap(&mut log.wal, &mut log.spare);
        log.spare_last = next - 1;
        if let Some((tx, _)) = &self.checkpointer {
            // Only a failure stops the checkpoint thread, and it reports that.
            let _ = tx.send(next - 1);
        }
        Ok(())
    }

    fn log(&self) -> Result<std::sync::MutexGuard<'_, Log>, StoreError> {
        let mut log = self.log.lock().expect("log lock");
        if log.dead.is_none() {
            // One look at the threads behind the log: sled failed to apply
            // (writes stop until a restart), or a checkpoint failed (final).
            let p = self.progress.0.lock().expect("progress lock");
            if let Some(e) = &p.failed {
                return Err(e.clone());
            }
            if let Some(e) = p.checkpoint_failed.clone() {
                drop(p);
                self.die(&mut log, &e);
            }
        }
        if let Some(e) = &log.dead {
            return Err(e.clone());
        }
        if log.broken {
            // After a failed write the log's tail is unknown: start afresh
            // (the failed records, numbered below the new start and written
            // under another generation, are never replayed).
            self.checkpoint(&mut log)?;
        }
        Ok(log)
    }
}

thread_local! {
    /// Set while this thread runs something whose panic is caught and reported.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, catching a panic without the panic hook's message, on this
/// thread only: the process-wide hook is wrapped once, and other threads'
/// panics are reported as before.
fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    static WRAP: std::sync::Once = std::sync::Once::new();
    WRAP.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info)
            }
        }));
    });
    // Restored, not cleared: a guarded read inside another stays quiet.
    let was = QUIET.with(|q| q.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    r
}

/// The format of the format record `meta` (`None`: unreadable, left to
/// the case log to report), or the refusal of a log in a format this build
/// does not read or in a newer envelope (a newer Gridline wrote it): its
/// write-ahead log is then neither replayed nor reset. `whence` says where
/// the record is, when not in sled.
fn readable_format(path: &Path, meta: &[u8], whence: &str) -> Result<Option<u8>, StoreError> {
    match codec::read_meta(meta) {
        Ok(m) => Ok(Some(m.format)),
        Err(codec::CodecError::Format(v)) => Err(StoreError::Unsupported(format!(
            "{}: the case log is in format {v}{whence}, and this build of Gridline reads formats 1 to {} (did \
             a newer Gridline write it?); its write-ahead log was neither replayed nor reset",
            path.display(),
            codec::LOG_FORMAT
        ))),
        // A newer envelope around the format record: as newer a log.
        Err(codec::CodecError::Version(v)) => Err(StoreError::Unsupported(format!(
            "{}: the case log's format record{whence} is in envelope version {v}, and this build of Gridline \
             reads version {} (did a newer Gridline write it?); its write-ahead log was neither \
             replayed nor reset",
            path.display(),
            codec::FORMAT_VERSION
        ))),
        _ => Ok(None),
    }
}

/// sled's flush and an fsync of its file, then an empty log whose records
/// start at `next`, a number after every one issued so far (the log's and
/// sled's own): `m wal` says so, since numbers sled never applied below it
/// belong to records that failed to be written and are owed nothing. A file
/// that grew past `checkpoint_bytes` and a little while sled lagged gives
/// the space back.
fn make_durable(
    db: &sled::Db,
    file: &SledFiles,
    wal: &mut Wal,
    next: u64,
    checkpoint_bytes: u64,
) -> Result<(), StoreError> {
    guarded(|| db.insert(APPLIED_KEY, &(next - 1).to_be_bytes()))?;
    flush(db, file)?;
    wal.reset(next)?;
    if let Err(e) = wal.shrink(checkpoint_bytes + crate::wal::GROW) {
        warn!(error = %e, "cannot shrink the write-ahead log");
    }
    Ok(())
}

/// What sled's flush leaves to be made durable: its file, which it writes
/// with `sync_file_range` (sled issue #1452), and its blob files, which it
/// never syncs at all.
struct SledFiles {
    db: File,
    /// sled's directory of blob files: it writes there, each to a new file
    /// named by its log sequence number, every value and every tree node
    /// whose serialized size passes its blob threshold (about 128 KiB at the
    /// default segment size). The log keeps its values below that, and its
    /// pages to 6 KiB, but a leaf of up to seventeen large values (case
    /// records, or pages of one long run, near 64 KiB) passes it when sled
    /// rewrites the leaf whole.
    blobs: std::path::PathBuf,
    /// The blob files found and synced by earlier flushes that still
    /// exist, each with its length when it was synced. sled appends a blob
    /// in three writes after creating it, and a checkpoint in the background
    /// may list the directory in between (the applier goes on meanwhile):
    /// a file longer now than when synced is synced again.
    synced: Mutex<HashMap<OsString, u64>>,
}

impl SledFiles {
    /// fsync of every blob file not synced before, or grown since, then of
    /// their directory if there were any; the number of files synced. sled
    /// writes a blob before the log entry that points to it, so after its
    /// flush every blob the flushed log needs is there, whole, to be found.
    /// A blob sled removed meanwhile (one it replaced) is skipped.
    fn sync_blobs(&self) -> Result<usize, StoreError> {
        let blob_err = |e: std::io::Error| {
            StoreError::Io(format!("cannot fsync sled's blob files in {}: {e}", self.blobs.display()))
        };
        let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(d) => d,
            // sled creates the directory as it opens; none, no blobs.
            Err(e) if gone(&e) => return Ok(0),
            Err(e) => return Err(blob_err(e)),
        };
        let mut synced = self.synced.lock().expect("blob set lock");
        let mut seen = HashMap::with_capacity(synced.len());
        let mut new = 0;
        for entry in entries {
            let entry = entry.map_err(blob_err)?;
            let name = entry.file_name();
            let len = match entry.metadata() {
                Ok(m) => m.len(),
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(blob_err(e)),
            };
            let len = match synced.get(&name) {
                Some(&was) if was == len => len,
                _ => {
                    let f = match File::open(self.blobs.join(&name)) {
                        Ok(f) => f,
                        Err(e) if gone(&e) => continue,
                        Err(e) => return Err(blob_err(e)),
                    };
                    // Its length before the fsync: every byte below it is
                    // covered; sled only ever appends to a blob.
                    let len = f.metadata().map_err(blob_err)?.len();
                    f.sync_all().map_err(blob_err)?;
                    new += 1;
                    len
                }
            };
            seen.insert(name, len);
        }
        if new > 0 {
            File::open(&self.blobs).and_then(|d| d.sync_all()).map_err(blob_err)?;
        }
        *synced = seen;
        Ok(new)
    }
}

/// sled's flush, then an fsync of its file and of the blob files it wrote.
fn flush(db: &sled::Db, files: &SledFiles) -> Result<(), StoreError> {
    db.flush().map_err(sled_err)?;
    files.db.sync_all().map_err(|e| StoreError::Io(format!("cannot fsync sled's file: {e}")))?;
    files.sync_blobs()?;
    Ok(())
}

/// The sled batch of `batch`, recording that record `seq` is applied.
/// Pages are stored packed ([`codec::pack_page`]) once the log is marked
/// as a format that packs them: `format` is the log's format as of this
/// batch (0: no format record), and follows a format record the batch
/// writes. A format-2 log's records replayed at open, before it is marked
/// 3 (or when it never is), stay plain, so that a format-2 build still
/// reads every page of a log marked 2. The write-ahead log holds pages as
/// written, and this runs on the applier, off the path of the
/// acknowledgement.
fn sled_batch(batch: WriteBatch, seq: u64, format: &mut u8) -> sled::Batch {
    let mut b = sled::Batch::default();
    add_to_sled_batch(&mut b, batch, seq, format);
    b
}

/// Adds a record's writes to `b`, in order, after whatever it holds: a key
/// written again keeps its last value, as if the records were applied one
/// after the other (`sled::Batch` is a map), and `m wal` says `seq`.
fn add_to_sled_batch(b: &mut sled::Batch, batch: WriteBatch, seq: u64, format: &mut u8) {
    for (k, v) in batch.ops {
        match v {
            Some(v) if k == codec::META_KEY => {
                *format = codec::read_meta(&v).map_or(0, |m| m.format);
                b.insert(k, v)
            }
            Some(v) if *format >= codec::PACKED_PAGES_FORMAT && k.first() == Some(&codec::PAGE_PREFIX) => {
                b.insert(k, codec::pack_page(v))
            }
            Some(v) => b.insert(k, v),
            None => b.remove(k),
        }
    }
    b.insert(APPLIED_KEY, &seq.to_be_bytes());
}

/// Should a store thread panic, readers and writers hear of it instead of waiting forever.
struct OnPanic<'a>(&'a (Mutex<Progress>, Condvar), &'static str);

impl Drop for OnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut p = self.0 .0.lock().unwrap_or_else(|p| p.into_inner());
            p.failed = Some(StoreError::Io(format!(
                "sled panicked {}; the write-ahead log holds every commit: restart the server",
                self.1
            )));
            self.0 .1.notify_all();
        }
    }
}

/// Starts sled's pool of I/O threads from the calling thread, if no
/// thread of this process started it yet: sled 0.34.7 starts it (seven
/// threads that live as long as the process, more on demand) on its first
/// use, from whichever thread that is, and its threads inherit that thread's
/// nice value. Its one public use of the pool is `flush_async`, which hands
/// the pool a flush: this polls that once and lets the flush finish on its
/// own (it writes nothing that is not already in sled's buffers).
fn start_sled_io(db: &sled::Db) {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = std::task::Waker::from(Arc::new(Noop));
    let mut flush = std::pin::pin!(db.flush_async());
    let _ = std::future::Future::poll(flush.as_mut(), &mut std::task::Context::from_waker(&waker));
}

/// The nice value of the applier and the checkpointer (and sled's I/O threads).
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's priority: the applier and the checkpointer
/// are off the acknowledgement's path, so where cores are few they should
/// yield to the threads a reply waits for (the connections, the engine, the
/// syncer). They still get every cycle the others leave, and sled's I/O
/// threads, started from them or from the thread that opens sled (see
/// [`SledStore::open_with`]), inherit the value. (The engine's audit thread
/// takes it too.) On Linux a nice value belongs to one thread; elsewhere
/// this does nothing.
pub fn background_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on the calling thread; no memory is shared.
        let r =
            unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, BACKGROUND_NICE) };
        if r != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a store thread's priority");
        }
    }
}

/// The applier thread: applies synced batches to sled, in order, until the
/// store closes or sled fails (then it applies nothing more: the log keeps
/// the rest, and the next start applies it). `format` is the log's format
/// as sled holds it once the log is replayed (see [`sled_batch`]).
fn apply_all(
    db: &sled::Db,
    batches: Receiver<Numbered>,
    progress: &(Mutex<Progress>, Condvar),
    mut format: u8,
) {
    let _guard = OnPanic(progress, "applying a committed batch");
    let (lock, cv) = progress;
    for (seq, b) in batches.iter() {
        // Records that queued while sled applied the last go in as one
        // atomic batch (sled still holds a prefix of the records): one
        // `apply_batch` instead of several, and a case written by several
        // of them (its accept, claim, close...) is written once.
        let mut merged = sled::Batch::default();
        add_to_sled_batch(&mut merged, b, seq, &mut format);
        let (mut count, mut last) = (1u64, seq);
        while count < MERGE_MAX {
            let Ok((seq, b)) = batches.try_recv() else { break };
            add_to_sled_batch(&mut merged, b, seq, &mut format);
            (count, last) = (count + 1, seq);
        }
        let r = db.apply_batch(merged);
        let mut p = lock.lock().expect("progress lock");
        match r {
            Ok(()) => {
                p.applied += count;
                p.applied_seq = last;
            }
            Err(e) => {
                tracing::error!(error = %e, "sled cannot apply a committed batch; writes stop until a restart");
                p.failed = Some(StoreError::Io(format!(
                    "sled cannot apply a committed batch ({e}); it is in the write-ahead log: restart the server"
                )));
            }
        }
        cv.notify_all();
        if p.failed.is_some() {
            return;
        }
    }
}

/// The checkpoint thread: for each number it is sent, once sled has
/// applied that record, makes sled durable (with everything applied before
/// the flush) and says so in `durable`. When no number came for
/// [`IDLE_FLUSH`] and sled applied records since the last flush, it makes
/// sled durable all the same. After a failure it does nothing more: the
/// next write reports it, and the log is never emptied again.
fn checkpoint_all(
    db: &sled::Db,
    file: &SledFiles,
    upto: Receiver<u64>,
    progress: &(Mutex<Progress>, Condvar),
) {
    let _guard = OnPanic(progress, "making a checkpoint");
    let (lock, cv) = progress;
    loop {
        let want = match upto.recv_timeout(IDLE_FLUSH) {
            Ok(want) => Some(want),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let covered = {
            let mut p = lock.lock().expect("progress lock");
            while want.is_some_and(|want| p.applied_seq < want) && p.failed.is_none() {
                p = cv.wait(p).expect("progress lock");
            }
            if p.failed.is_some() {
                return;
            }
            if want.is_none() && p.applied_seq <= p.durable {
                continue;
            }
            p.applied_seq
        };
        let r = flush(db, file);
        let mut p = lock.lock().expect("progress lock");
        match r {
            Ok(()) => p.durable = p.durable.max(covered),
            Err(e) => p.checkpoint_failed = Some(e),
        }
        cv.notify_all();
        if p.checkpoint_failed.is_some() {
            return;
        }
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // The applier first: the checkpoint thread may wait for it.
        if let Some((tx, join)) = self.applier.take() {
            drop(tx);
            let _ = join.join();
        }
        if let Some((tx, join)) = self.checkpointer.take() {
            drop(tx);
            let _ = join.join();
        }
        // sled failed to apply a batch, or a checkpoint in the background
        // failed (after a failed fsync the kernel may have dropped pages it
        // will not report again, so the log is never emptied in this
        // process, though no write came after to hear of it).
        let failed = self
            .progress
            .0
            .lock()
            .map(|p| p.failed.is_some() || p.checkpoint_failed.is_some())
            .unwrap_or(true);
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        // Staged but never synced, so never acknowledged (an undo batch, say).
        log.pending = None;
        if !failed && log.dead.is_none() {
            // A clean stop leaves both files empty (the other one reset
            // too: its records are durable in sled) and cut to their
            // headers; if this fails, the next start replays the log.
            let log = &mut *log;
            let r = self
                .checkpoint(log)
                .and_then(|()| log.spare.reset(log.wal.next()))
                .and_then(|()| log.wal.shrink(0))
                .and_then(|()| log.spare.shrink(0));
            match r {
                Ok(()) => {}
                Err(e) => {
                    warn!(error = %e, "cannot checkpoint the case log at close; the next start replays the write-ahead log")
                }
            }
        }
    }
}

/// Removes the snapshot files sled did not finish writing, unless another
/// process has sled open in `path`.
///
/// sled writes a snapshot of its page table as it opens, to
/// `snap.<lsn>.generating`, syncs it and renames it to `snap.<lsn>`; at the
/// next open it reads the newest `snap.*` file, a `.generating` one too
/// (sled issue #1527). A crash while it writes one leaves a torn file that
/// made every later open fail as corrupt. An unfinished snapshot holds
/// nothing the log does not: without it sled reads more of its log, from
/// the snapshot before it (removed only after the rename) or from the
/// start. sled's lock on `db` (an exclusive `flock`) is taken first, so the
/// snapshot of a process opening the log right now is left alone; its
/// open then reports the lock.
fn remove_unfinished_snapshots(path: &Path) -> Result<(), StoreError> {
    use std::os::fd::AsRawFd;
    let db = match File::open(path.join("db")) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::Io(format!("cannot open {}: {e}", path.join("db").display()))),
    };
    // SAFETY: flock on a descriptor `db` owns; closing it releases the lock.
    if unsafe { libc::flock(db.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Ok(());
    }
    for entry in std::fs::read_dir(path).map_err(io)? {
        let name = entry.map_err(io)?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("snap.") && name.ends_with(".generating") {
            let file = path.join(name);
            warn!(file = %file.display(), "removing a snapshot sled did not finish writing (a crash during its open); sled reads its log instead");
            std::fs::remove_file(&file)
                .map_err(|e| StoreError::Io(format!("cannot remove {}: {e}", file.display())))?;
        }
    }
    Ok(())
}

fn sync_dir(p: &Path) -> Result<(), StoreError> {
    File::open(p).and_then(|d| d.sync_all()).map_err(io)
}

impl SledStore {
    /// Refuses new writes ([`Store::admit`]: `StoreError::Full`, which the
    /// engine answers with `unavailable`) while fewer than `bytes` are free on the log's
    /// filesystem; by default twice the checkpoint size and 64 MiB. sled
    /// grows its file behind the acknowledgements, on the applier, and an
    /// error of its (a full disk) stays until it is opened again: refusing
    /// writes before the disk is full keeps sled from meeting it, so that
    /// writes resume once space is freed, without a restart.
    pub fn keep_free(&self, bytes: u64) {
        let mut space = self.space.lock().expect("space lock");
        space.keep = bytes;
        space.checked = None;
    }

    /// Whether the log's filesystem has less free space than it keeps; says
    /// so in the log when that changes.
    fn short_of_space(&self) -> bool {
        let mut space = self.space.lock().expect("space lock");
        if let Some((at, short)) = space.checked {
            if at.elapsed() < SPACE_CHECK_EVERY {
                return short;
            }
        }
        // A filesystem that cannot be asked is not taken to be full.
        let free = free_bytes(&space.dir).unwrap_or(u64::MAX);
        let short = free < space.keep;
        let was = space.checked.is_some_and(|(_, s)| s);
        if short && !was {
            tracing::error!(
                dir = %space.dir.display(),
                free_mib = free >> 20,
                keep_mib = space.keep >> 20,
                "the case log's disk is nearly full: writes are refused until space is freed"
            );
        } else if was && !short {
            info!(dir = %space.dir.display(), free_mib = free >> 20, "space freed on the case log's disk: writes resume");
        }
        space.checked = Some((std::time::Instant::now(), short));
        short
    }
}

/// Bytes free to an unprivileged writer on the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: a zeroed statvfs is a valid place for statvfs to write to,
    // and `path` is a NUL-terminated string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

impl Store for SledStore {
    fn admit(&self) -> Result<(), StoreError> {
        if self.short_of_space() {
            return Err(StoreError::Full);
        }
        Ok(())
    }

    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut log = self.log()?;
        match &mut log.pending {
            // Later writes of the same key win, as they would one batch after another.
            Some(all) => all.ops.extend(batch.ops),
            None => log.pending = Some(batch),
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        let mut log = self.log()?;
        let Some(batch) = log.pending.take() else { return Ok(()) };
        // Between commits, move on to the other file once this one is
        // long, if that one's records are durable in sled (waiting for
        // that only when this file is very long).
        let used = log.wal.used();
        if used > self.checkpoint_bytes && self.durable(log.spare_last, used > 4 * self.checkpoint_bytes)? {
            self.rotate(&mut log)?;
        }
        let seq = match log.wal.append(&batch).and_then(|seq| log.wal.write().map(|()| seq)) {
            Ok(seq) => seq,
            Err(e) => {
                log.wal.drop_buffered();
                log.broken = true;
                return Err(e);
            }
        };
        let (tx, _) = self.applier.as_ref().expect("open until dropped");
        // Counted before it is sent, so that the applier never gets ahead of the count.
        self.progress.0.lock().expect("progress lock").handed += 1;
        // Only a failure stops the applier: it reports that to reads and writes.
        let _ = tx.send((seq, batch));
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.caught_up()?;
        guarded(|| self.db.get(key)).map(|v| v.map(|v| v.to_vec()))
    }

    fn for_each(&self, prefix: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), StoreError> {
        self.caught_up()?;
        let mut iter = self.db.scan_prefix(prefix);
        while let Some((k, v)) = guarded(|| iter.next().transpose())? {
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn scan(&self, prefix: &[u8]) -> Box<dyn Iterator<Item = Result<KeyValue, StoreError>> + '_> {
        if let Err(e) = self.caught_up() {
            return Box::new(std::iter::once(Err(e)));
        }
        Box::new(GuardedIter { iter: self.db.scan_prefix(prefix), failed: false })
    }

    fn last(&self, prefix: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        self.caught_up()?;
        guarded(|| self.db.scan_prefix(prefix).next_back().transpose())
            .map(|o| o.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }
}

/// Faults a [`MemStore`] injects; shared, so a test can change them while the engine runs.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Fail the Nth `apply` from now (1 = the next one), once.
    pub fail_apply_in: Option<u64>,
    /// Fail the Nth `sync` from now (1 = the next one), once.
    pub fail_sync_in: Option<u64>,
    /// Refuse every `apply`, as a full disk would, until cleared.
    pub full: bool,
    /// Fail every `get` and `scan`, as sled does once a write of its has
    /// failed (until it is opened again), until cleared.
    pub fail_reads: bool,
    /// Hold every `sync` until this gate opens: work queues up behind it
    /// without depending on how fast the machine is.
    pub hold_sync: Option<Gate>,
}

/// A gate `sync` waits at (see [`Faults::hold_sync`]); clones share it.
#[derive(Clone, Debug, Default)]
pub struct Gate(Arc<(Mutex<GateState>, Condvar)>);

#[derive(Debug, Default)]
struct GateState {
    open: bool,
    waiting: usize,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Lets every sync waiting, and every later one, through.
    pub fn open(&self) {
        let (lock, cv) = &*self.0;
        lock.lock().expect("gate lock").open = true;
        cv.notify_all();
    }

    /// How many syncs wait at the gate now.
    pub fn waiting(&self) -> usize {
        self.0 .0.lock().expect("gate lock").waiting
    }

    fn pass(&self) {
        let (lock, cv) = &*self.0;
        let mut g = lock.lock().expect("gate lock");
        g.waiting += 1;
        while !g.open {
            g = cv.wait(g).expect("gate lock");
        }
        g.waiting -= 1;
    }
}

#[derive(Debug, Default)]
struct MemInner {
    visible: BTreeMap<Vec<u8>, Vec<u8>>,
    durable: BTreeMap<Vec<u8>, Vec<u8>>,
    faults: Faults,
}

/// An in-memory store that keeps what is visible apart from what is durable
/// and can fail on demand. Clones share the same data.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    inner: Arc<Mutex<MemInner>>,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    pub fn set_faults(&self, f: Faults) {
        self.inner.lock().expect("mem store lock").faults = f;
    }

    /// The value of `key` as a crash right now would leave it.
    pub fn durable_get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.lock().expect("mem store lock").durable.get(key).cloned()
    }

    /// A store holding only what was durable: what a restart after a crash sees.
    pub fn crash(&self) -> MemStore {
        let g = self.inner.lock().expect("mem store lock");
        let inner = MemInner { visible: g.durable.clone(), durable: g.durable.clone(), ..Default::default() };
        MemStore { inner: Arc::new(Mutex::new(inner)) }
    }
}

impl Store for MemStore {
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut g = self.inner.lock().expect("mem store lock");
        if g.faults.full {
            return Err(StoreError::Full);
        }
        if let Some(n) = g.faults.fail_apply_in {
            if n <= 1 {
                g.faults.fail_apply_in = None;
                return Err(StoreError::Io("injected apply failure".into()));
            }
            g.faults.fail_apply_in = Some(n - 1);
        }
        for (k, v) in batch.ops {
            match v {
                Some(v) => g.visible.insert(k, v),
                None => g.visible.remove(&k),
            };
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        let gate = self.inner.lock().expect("mem store lock").faults.hold_sync.clone();
        if let Some(gate) = gate {
            gate.pass();
        }
        let mut g = self.inner.lock().expect("mem store lock");
        if let Some(n) = g.faults.fail_sync_in {
            if n <= 1 {
                g.faults.fail_sync_in = None;
                return Err(StoreError::Io("injected sync failure".into()));
            }
            g.faults.fail_sync_in = Some(n - 1);
        }
        g.durable = g.visible.clone();
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let g = self.inner.lock().expect("mem store lock");
        if g.faults.fail_reads {
            return Err(StoreError::Io("injected read failure".into()));
        }
        Ok(g.visible.get(key).cloned())
    }

    fn scan(&self, prefix: &[u8]) -> Box<dyn Iterator<Item = Result<KeyValue, StoreError>> + '_> {
        let g = self.inner.lock().expect("mem store lock");
        if g.faults.fail_reads {
            return Box::new(std::iter::once(Err(StoreError::Io("injected read failure".into()))));
        }
        let items: Vec<_> = g
            .visible
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| Ok((k.clone(), v.clone())))
            .collect();
        Box::new(items.into_iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> WriteBatch {
        let mut b = WriteBatch::default();
        b.put(k.as_bytes().to_vec(), v.as_bytes().to_vec());
        b
    }

    fn value(s: &SledStore, k: &str) -> Option<String> {
        s.get(k.as_bytes()).unwrap().map(|v| String::from_utf8(v).unwrap())
    }

    /// The log's directory and the write-ahead log hold residents'
    /// records: made 0700 and 0600, whatever the umask leaves (sled's own
    /// files follow the umask, which `serve` sets to 077).
    #[cfg(unix)]
    #[test]
    fn the_log_directory_and_the_write_ahead_log_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/log");
        let store = SledStore::open(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o700);
        for f in WAL_FILES {
            assert_eq!(mode(&path.join(f)), 0o600, "{f}");
        }
        drop(store);
    }

    #[test]
    fn a_panic_in_a_read_of_sleds_is_reported_as_damage() {
        let e = guarded::<()>(|| panic!("cannot find pid 3 in view_for_key")).unwrap_err();
        match e {
            StoreError::Corrupt(m) => assert!(m.contains("pid 3") && m.contains("damaged"), "{m}"),
            other => panic!("not reported as damage: {other:?}"),
        }
        assert_eq!(guarded(|| Ok(7)).unwrap(), 7);
        // Nested: the outer read is still quiet after the inner one ends.
        let outer = guarded::<()>(|| {
            let _ = guarded(|| Ok(()));
            assert!(QUIET.with(|q| q.get()));
            panic!("outer")
        });
        assert!(matches!(outer, Err(StoreError::Corrupt(_))));
        // A panic of the test's own, after, is not hidden.
        assert!(std::panic::catch_unwind(|| panic!("ours")).is_err());
        assert!(!QUIET.with(|q| q.get()), "quiet only while the read runs");
    }

    /// Opens a store whose format record is `meta` and whose log holds a
    /// record sled lacks; the open must be refused, the log left as it was.
    fn refused_before_replay(meta: Vec<u8>) -> StoreError {
        let dir = tempfile::tempdir().unwrap();
        refused_before_replay_in(dir.path(), meta, put("late", "1"))
    }

    /// [`refused_before_replay`] in `dir`, the record sled lacks `logged`.
    fn refused_before_replay_in(dir: &Path, meta: Vec<u8>, logged: WriteBatch) -> StoreError {
        let s = SledStore::open(dir).unwrap();
        let mut b = WriteBatch::default();
        b.put(codec::META_KEY.to_vec(), meta);
        s.apply(b).unwrap();
        s.sync().unwrap();
        drop(s);
        // A record durable in the log alone, as after a kill: a start would replay it.
        let (mut log, _) = Wal::open(&dir.join("wal"), 1).unwrap();
        log.append(&logged).unwrap();
        log.write().unwrap();
        drop(log);
        let wal = |d: &Path| WAL_FILES.map(|f| std::fs::read(d.join(f)).unwrap());
        let before = wal(dir);
        let err = SledStore::open(dir).err().expect("refused");
        assert!(before == wal(dir), "the write-ahead log was changed");
        err
    }

    /// sled holds pages packed; a plain page a format-2 build left reads
    /// beside them, and the log is marked as this build's format.
    #[test]
    fn pages_are_stored_packed_and_a_plain_page_of_format_2_still_reads() {
        use crate::CaseLog;
        use codec::{self, tests::accepted, Kind, Meta, LOG_FORMAT};
        use gridline_model::{Actor, Case, CaseId, Event, EventKind, Timestamp};
        let dir = tempfile::tempdir().unwrap();
        let id = CaseId::new_at(Timestamp(1_795_000_000_000));
        let first = accepted(id);
        let mut case = Case::from_first(&first).unwrap();
        let mut next = 1;
        let [(page_key, plain)] =
            &codec::encode_pages(std::slice::from_ref(&first), &mut next, |_| 0).unwrap().pages[..]
        else {
            panic!("one page")
        };
        case.stored_page.set(1);
        {
            // As a format-2 build wrote it (what reaches sled here is not packed).
            let s = SledStore::open(dir.path()).unwrap();
            let meta = Meta { format: 2, created_by: "gridline 0.1.0".into(), county: "JD".into() };
            let mut b = sled::Batch::default();
            b.insert(codec::META_KEY, codec::encode(Kind::Meta, &meta).unwrap());
            b.insert(page_key.as_slice(), plain.as_slice());
            b.insert(codec::case_key(&id), codec::encode_case(&case).unwrap());
            s.db.apply_batch(b).unwrap();
        }
        let log = CaseLog::open(SledStore::open(dir.path()).unwrap(), Some("JD")).unwrap();
        assert_eq!(log.events(&case).unwrap(), std::slice::from_ref(&first));
        // The county's kind of text, long enough to pack well.
        let reason = "楼上漏水，已联系物业，明天上门维修。".repeat(40).into();
        let second = Event {
            case: id,
            seq: 2,
            at: Timestamp(2),
            actor: Actor::system(),
            kind: EventKind::Waiting { reason },
        };
        case.apply(&second).unwrap();
        let mut cases = [case];
        log.write(log.encode(std::slice::from_ref(&second), &mut cases).unwrap()).unwrap();
        log.sync().unwrap();
        let [case] = cases;
        assert_eq!(case.stored_page.get(), 2);
        assert_eq!(log.events(&case).unwrap(), [first.clone(), second.clone()]);
        assert_eq!(log.verify().unwrap().events, 2);
        drop(log);
        let s = SledStore::open(dir.path()).unwrap();
        let meta = codec::read_meta(&s.get(codec::META_KEY).unwrap().unwrap()).unwrap();
        assert_eq!(meta.format, LOG_FORMAT);
        assert_eq!(s.get(page_key).unwrap().unwrap(), *plain, "an old page is left as it is");
        let packed = s.get(&codec::page_key(2)).unwrap().unwrap();
        assert_eq!(packed[1], Kind::PackedPage as u8);
        assert!(packed.len() < 400, "{} bytes", packed.len());
        let log = CaseLog::open(s, None).unwrap();
        assert_eq!(log.events(&case).unwrap(), [first, second]);
        assert_eq!(log.recover(|_| {}).unwrap(), 1);
    }

    /// The applier puts the records that queued behind sled into one of
    /// its batches: sled must end up as if it had applied them in turn (a
    /// key written twice keeps its last write, a removal after a put
    /// removes, a page is packed by the format of the moment), with `m
    /// wal` at the last record.
    #[test]
    fn records_merged_into_one_sled_batch_leave_what_applying_them_in_turn_leaves() {
        use codec::{self, tests::accepted, Kind, Meta};
        use gridline_model::{CaseId, Timestamp};
        let id = CaseId::new_at(Timestamp(1_795_000_000_000));
        let mut next = 1;
        let pages = codec::encode_pages(&[accepted(id)], &mut next, |_| 0).unwrap().pages;
        let [(_, page)] = &pages[..] else { panic!("one page") };
        let meta = |format| {
            let meta = Meta { format, created_by: "gridline test".into(), county: "JD".into() };
            codec::encode(Kind::Meta, &meta).unwrap()
        };
        let record = |ops: Vec<(&[u8], Option<Vec<u8>>)>| WriteBatch {
            ops: ops.into_iter().map(|(k, v)| (k.to_vec(), v)).collect(),
        };
        let records = || {
            vec![
                (7, record(vec![(b"ka", Some(b"1".to_vec())), (b"kb", Some(b"2".to_vec()))])),
                (
                    8,
                    record(vec![
                        (b"ka", None),
                        (b"kb", Some(b"3".to_vec())),
                        (codec::META_KEY, Some(meta(2))),
                        (&codec::page_key(1), Some(page.clone())),
                        (b"kc", Some(b"4".to_vec())),
                    ]),
                ),
                (
                    9,
                    record(vec![
                        (b"kc", None),
                        (b"kc", Some(b"5".to_vec())),
                        (codec::META_KEY, Some(meta(codec::PACKED_PAGES_FORMAT))),
                        (&codec::page_key(2), Some(page.clone())),
                        (b"kd", Some(b"6".to_vec())),
                        (b"kd", None),
                    ]),
                ),
            ]
        };
        let contents = |db: &sled::Db| db.iter().map(|kv| kv.unwrap()).collect::<Vec<_>>();
        let in_turn = sled::Config::new().temporary(true).open().unwrap();
        let mut format = 0;
        for (seq, b) in records() {
            in_turn.apply_batch(sled_batch(b, seq, &mut format)).unwrap();
        }
        let merged = sled::Config::new().temporary(true).open().unwrap();
        let (mut format, mut batch) = (0, sled::Batch::default());
        for (seq, b) in records() {
            add_to_sled_batch(&mut batch, b, seq, &mut format);
        }
        merged.apply_batch(batch).unwrap();
        assert_eq!(contents(&merged), contents(&in_turn));
        assert_eq!(merged.get(APPLIED_KEY).unwrap().unwrap(), 9u64.to_be_bytes());
        assert_eq!(merged.get(codec::page_key(1)).unwrap().unwrap(), page.as_slice(), "plain under format 2");
        assert_eq!(merged.get(codec::page_key(2)).unwrap().unwrap()[1], Kind::PackedPage as u8);
        assert_eq!(merged.get(b"ka").unwrap(), None);
        assert_eq!(merged.get(b"kc").unwrap().unwrap(), b"5");
        assert_eq!(merged.get(b"kd").unwrap(), None);
    }

    /// A format-2 build killed with a page durable in its write-ahead log
    /// alone: this build's open replays it before the log is marked as
    /// format 3, and may never mark it (opened for another county, say). A
    /// log whose format record says 2 must hold only plain pages, or the
    /// format-2 build calls the page damaged; pages replayed after a
    /// format-3 record are packed.
    #[test]
    fn a_replayed_page_is_packed_only_once_the_log_is_marked_format_3() {
        use crate::{CaseLog, LogError};
        use codec::{self, tests::accepted, Kind, Meta};
        use gridline_model::{CaseId, Timestamp};
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<_> = (0..200).map(|i| accepted(CaseId::new_at(Timestamp(i)))).collect();
        let mut next = 1;
        let pages = codec::encode_pages(&events, &mut next, |_| 0).unwrap().pages;
        let (page_1, page_2) = (&pages[0], &pages[1]);
        assert_eq!(codec::pack_page(page_2.1.clone())[1], Kind::PackedPage as u8, "a page that packs");
        let meta = |format| {
            let m = Meta { format, created_by: "gridline 0.1.0".into(), county: "JD".into() };
            let mut b = WriteBatch::default();
            b.put(codec::META_KEY.to_vec(), codec::encode(Kind::Meta, &m).unwrap());
            b
        };
        let page = |(k, v): &(Vec<u8>, Vec<u8>)| {
            let mut b = WriteBatch::default();
            b.put(k.clone(), v.clone());
            b
        };
        // Records durable in the log alone, as after a kill.
        let wal_alone = |batches: &[WriteBatch]| {
            let (mut wal, old) = Wal::open(&dir.path().join("wal"), 1).unwrap();
            assert!(old.is_empty(), "a clean close leaves an empty log");
            for b in batches {
                wal.append(b).unwrap();
                wal.write().unwrap();
            }
        };
        let stored = |s: &SledStore, k: &[u8]| s.get(k).unwrap().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            let m = Meta { format: 2, created_by: "gridline 0.1.0".into(), county: "JD".into() };
            s.db.insert(codec::META_KEY, codec::encode(Kind::Meta, &m).unwrap()).unwrap();
        }
        wal_alone(&[page(page_1)]);
        let err = CaseLog::open(SledStore::open(dir.path()).unwrap(), Some("XX")).err().expect("refused");
        assert!(matches!(err, LogError::WrongCounty { .. }), "{err}");
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(codec::read_meta(&stored(&s, codec::META_KEY)).unwrap().format, 2);
        assert!(stored(&s, &page_1.0) == page_1.1, "a log marked format 2 holds a packed page");
        drop(s);
        wal_alone(&[meta(3), page(page_2)]);
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(codec::read_meta(&stored(&s, codec::META_KEY)).unwrap().format, 3);
        assert_eq!(stored(&s, &page_2.0)[1], Kind::PackedPage as u8);
        assert_eq!(
            codec::decode_page(&stored(&s, &page_2.0)).unwrap(),
            codec::decode_page(&page_2.1).unwrap()
        );
    }

    #[test]
    fn a_log_in_a_newer_format_is_refused_before_its_records_are_replayed() {
        use codec::{encode, Kind, Meta, LOG_FORMAT};
        let meta = Meta { format: LOG_FORMAT + 1, created_by: "gridline 9.0".into(), county: "X".into() };
        let err = refused_before_replay(encode(Kind::Meta, &meta).unwrap());
        let (newer, reads) =
            (format!("format {}", LOG_FORMAT + 1), format!("reads formats 1 to {LOG_FORMAT}"));
        assert!(
            matches!(&err, StoreError::Unsupported(m) if m.contains(&newer) && m.contains(&reads)),
            "{err}"
        );
    }

    /// A newer Gridline marks a log it opens as its own format with a
    /// record of the write-ahead log; killed before sled applied it, the
    /// log's format record in sled is still one this build reads. The
    /// newer format in the log's records refuses the start just the same,
    /// before anything is replayed or reset.
    #[test]
    fn a_newer_format_record_in_the_write_ahead_log_is_refused_before_its_records_are_replayed() {
        use codec::{encode, Kind, Meta, LOG_FORMAT};
        let dir = tempfile::tempdir().unwrap();
        let ours = Meta { format: LOG_FORMAT, created_by: "gridline".into(), county: "X".into() };
        let newer = Meta { format: LOG_FORMAT + 1, created_by: "gridline 9.0".into(), county: "X".into() };
        let mut logged = WriteBatch::default();
        logged.put(codec::META_KEY.to_vec(), encode(Kind::Meta, &newer).unwrap());
        let err = refused_before_replay_in(dir.path(), encode(Kind::Meta, &ours).unwrap(), logged);
        let newer = format!("format {}", LOG_FORMAT + 1);
        assert!(matches!(&err, StoreError::Unsupported(m) if m.contains(&newer)), "{err}");
        // sled still holds this build's format record.
        // (sled lets go of its lock a moment after the refused open.)
        let t0 = std::time::Instant::now();
        let db = loop {
            match sled::open(dir.path()) {
                Err(_) if t0.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                r => break r.unwrap(),
            }
        };
        assert_eq!(codec::read_meta(&db.get(codec::META_KEY).unwrap().unwrap()).unwrap().format, LOG_FORMAT);
    }

    #[test]
    fn a_log_whose_format_record_has_a_newer_envelope_is_refused_before_its_records_are_replayed() {
        use codec::{encode, Kind, Meta};
        // The format record as a build writing envelope version 2 would.
        let meta = Meta { format: 3, created_by: "gridline 9.0".into(), county: "X".into() };
        let mut bytes = encode(Kind::Meta, &meta).unwrap();
        bytes[0] = codec::FORMAT_VERSION + 1;
        let err = refused_before_replay(bytes);
        assert!(matches!(&err, StoreError::Unsupported(m) if m.contains("envelope version 2")), "{err}");
    }

    #[test]
    fn a_synced_batch_is_read_back_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        s.apply(put("a", "1")).unwrap();
        s.sync().unwrap();
        assert_eq!(value(&s, "a").as_deref(), Some("1"));
        drop(s);
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(value(&s, "a").as_deref(), Some("1"));
    }

    #[test]
    fn records_sled_never_stored_are_applied_at_open_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        s.apply(put("a", "1")).unwrap();
        s.sync().unwrap();
        drop(s);
        // As if the server died after these records were durable in the
        // log but before sled stored them: write them to the log alone.
        let (mut wal, old) = Wal::open(&dir.path().join("wal"), 1).unwrap();
        assert!(old.is_empty(), "a clean close leaves an empty log");
        wal.append(&put("a", "2")).unwrap();
        wal.write().unwrap();
        wal.append(&put("b", "1")).unwrap();
        wal.write().unwrap();
        wal.append(&put("a", "3")).unwrap();
        wal.write().unwrap();
        drop(wal);
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!((value(&s, "a").as_deref(), value(&s, "b").as_deref()), (Some("3"), Some("1")));
        // and they are not applied twice: a later write stays on top
        s.apply(put("a", "4")).unwrap();
        s.sync().unwrap();
        drop(s);
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(value(&s, "a").as_deref(), Some("4"));
    }

    #[test]
    fn a_log_that_starts_after_what_sled_holds_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        drop(SledStore::open(dir.path()).unwrap());
        let (mut wal, _) = Wal::open(&dir.path().join("wal"), 1).unwrap();
        wal.reset(50).unwrap();
        drop(wal);
        let err = SledStore::open(dir.path()).map(|_| ()).unwrap_err();
        assert!(matches!(&err, StoreError::Corrupt(m) if m.contains("records 1 to 49 are lost")), "{err:?}");
    }

    /// Runs the ignored test `name` in a process of its own, on `dir`: the
    /// writing side of a crash test, which exits without closing the store,
    /// as a killed server does.
    fn child(name: &str, dir: &Path) {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--ignored", "--nocapture"])
            .env("GRIDLINE_WAL_TEST_DIR", dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn child_store() -> Option<SledStore> {
        std::env::var("GRIDLINE_WAL_TEST_DIR").ok().map(|p| SledStore::open(Path::new(&p)).unwrap())
    }

    /// As a failed write leaves the log: a number taken, the record gone.
    fn fail_a_write(log: &mut Log) {
        log.wal.append(&put("a", "lost")).unwrap();
        log.wal.drop_buffered();
        log.broken = true;
    }

    #[test]
    fn numbers_of_records_that_failed_to_be_written_are_not_missed_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        child("store::tests::write_fail_write_die", dir.path());
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!((value(&s, "a").as_deref(), value(&s, "b").as_deref()), (Some("1"), Some("1")));
    }

    #[test]
    #[ignore]
    fn write_fail_write_die() {
        let Some(s) = child_store() else { return };
        s.apply(put("a", "1")).unwrap();
        s.sync().unwrap();
        fail_a_write(&mut s.log.lock().unwrap());
        s.apply(put("b", "1")).unwrap();
        s.sync().unwrap();
        std::process::exit(0);
    }

    #[test]
    fn a_crash_inside_the_checkpoint_after_a_failed_write_loses_nothing_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        child("store::tests::fail_a_write_and_die_inside_the_checkpoint", dir.path());
        child("store::tests::commit_and_die", dir.path());
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(value(&s, "acked").as_deref(), Some("yes"));
    }

    #[test]
    #[ignore]
    fn fail_a_write_and_die_inside_the_checkpoint() {
        let Some(s) = child_store() else { return };
        s.apply(put("a", "1")).unwrap();
        s.sync().unwrap();
        let mut log = s.log.lock().unwrap();
        fail_a_write(&mut log);
        // The checkpoint's first steps: sled durable, the log not yet reset.
        s.caught_up().unwrap();
        let next = log.wal.next();
        s.db.insert(APPLIED_KEY, &(next - 1).to_be_bytes()).unwrap();
        s.db.flush().unwrap();
        s.files.db.sync_all().unwrap();
        std::process::exit(0);
    }

    #[test]
    #[ignore]
    fn commit_and_die() {
        let Some(s) = child_store() else { return };
        s.apply(put("acked", "yes")).unwrap();
        s.sync().unwrap();
        s.caught_up().unwrap();
        std::process::exit(0);
    }

    #[test]
    fn the_blob_files_sled_writes_are_synced_before_the_log_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        // Values as large as the log's pages, next to each other: sled
        // rewrites their leaf whole, and a leaf of them passes its blob
        // threshold.
        let big = vec![7u8; 60 * 1024];
        for i in 0..40u32 {
            let mut b = WriteBatch::default();
            b.put(format!("p{i:04}").into_bytes(), big.clone());
            s.apply(b).unwrap();
            s.sync().unwrap();
        }
        s.caught_up().unwrap();
        s.db.flush().unwrap();
        let blobs = std::fs::read_dir(dir.path().join("blobs")).unwrap().count();
        assert!(blobs > 0, "sled wrote no blob file, so this test checks nothing");
        let mut log = s.log.lock().unwrap();
        s.checkpoint(&mut log).unwrap();
        assert_eq!(s.files.sync_blobs().unwrap(), 0, "the checkpoint left blob files unsynced");
    }

    /// The background checkpoint runs while the applier goes on, so sled
    /// may be writing a blob file (created, then its checksum, kind and
    /// node appended) when the checkpoint lists the directory. The part
    /// synced then is not the whole file: a later checkpoint, which covers
    /// the log entry pointing to it, must sync it again.
    #[test]
    fn a_blob_file_still_being_written_when_synced_is_synced_again_once_it_grew() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        std::fs::create_dir(&blobs).unwrap();
        let files = SledFiles {
            db: File::create(dir.path().join("db")).unwrap(),
            blobs: blobs.clone(),
            synced: Mutex::default(),
        };
        assert_eq!(files.sync_blobs().unwrap(), 0);
        // sled's first two writes of a blob: its crc32 and its kind.
        let mut blob =
            std::fs::OpenOptions::new().create_new(true).append(true).open(blobs.join("5242880")).unwrap();
        std::io::Write::write_all(&mut blob, &[1, 2, 3, 4, 9]).unwrap();
        assert_eq!(files.sync_blobs().unwrap(), 1);
        // Then the node itself, after the checkpoint looked.
        std::io::Write::write_all(&mut blob, &vec![7u8; 200 * 1024]).unwrap();
        assert_eq!(
            files.sync_blobs().unwrap(),
            1,
            "the rest of a blob written after its first sync was never synced"
        );
        assert_eq!(files.sync_blobs().unwrap(), 0, "a whole blob synced once is not synced again");
        // One sled removed is forgotten; a new one is synced.
        drop(blob);
        std::fs::remove_file(blobs.join("5242880")).unwrap();
        std::fs::write(blobs.join("10485760"), [0u8; 64]).unwrap();
        assert_eq!(files.sync_blobs().unwrap(), 1);
        assert_eq!(files.synced.lock().unwrap().len(), 1);
    }

    /// A checkpoint in the background failed (its fsync: the kernel may
    /// have dropped sled's pages, and will not say so again), and no write
    /// came after to hear of it: closing must not empty the log either, the
    /// only durable copy of the records since the last good checkpoint.
    #[test]
    fn closing_after_a_failed_background_checkpoint_leaves_the_log_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        s.apply(put("a", "1")).unwrap();
        s.sync().unwrap();
        s.caught_up().unwrap();
        s.progress.0.lock().unwrap().checkpoint_failed =
            Some(StoreError::Io("cannot fsync sled's file".into()));
        drop(s);
        let (_, records) = Wal::open(&dir.path().join(WAL_FILES[0]), 1).unwrap();
        assert_eq!(records.len(), 1, "the log was emptied after a failed checkpoint");
    }

    #[test]
    fn closing_drops_a_staged_batch_never_synced() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        // as an undo batch is left when a failed commit is rolled back
        s.apply(put("undo", "x")).unwrap();
        drop(s);
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(value(&s, "undo"), None);
    }

    /// sled writes a snapshot of its page table as it opens, to
    /// `snap.<lsn>.generating`, then renames it; it reads a `.generating`
    /// file as a snapshot too (sled issue #1527). A `kill -9` while it
    /// writes one leaves it torn, and every later open failed as corrupt.
    #[test]
    fn a_snapshot_torn_by_a_kill_during_sled_s_open_does_not_stop_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        s.apply(put("acked", "yes")).unwrap();
        s.sync().unwrap();
        drop(s);
        // Newer than any snapshot there, so sled would pick it.
        let torn = dir.path().join("snap.7FFFFFFFFFFFFFFF.generating");
        std::fs::write(&torn, [0x5a; 4096]).unwrap();
        let s = SledStore::open(dir.path()).expect("a torn snapshot is not the log's data");
        assert_eq!(value(&s, "acked").as_deref(), Some("yes"));
        assert!(!torn.exists());
        // A store open holds sled's lock: the next open leaves its files alone.
        std::fs::write(&torn, [0x5a; 4096]).unwrap();
        assert!(SledStore::open(dir.path()).is_err());
        assert!(torn.exists(), "removed while another store had the log open");
    }

    /// Light traffic fills a log file only after hours, so no checkpoint
    /// comes: sled is made durable a moment after it applied a record all
    /// the same. (The bound is a liveness limit, far above `IDLE_FLUSH`.)
    #[test]
    fn sled_is_made_durable_soon_after_a_commit_though_no_checkpoint_comes() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open_with(dir.path(), 256 << 20).unwrap();
        s.apply(put("a", "1")).unwrap();
        s.sync().unwrap();
        let seq = s.log.lock().unwrap().wal.next() - 1;
        let t0 = std::time::Instant::now();
        while !s.durable(seq, false).unwrap() {
            assert!(t0.elapsed() < std::time::Duration::from_secs(60), "sled was never made durable");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn a_log_whose_creation_was_cut_short_is_created_again() {
        let dir = tempfile::tempdir().unwrap();
        // A log of a build before the write-ahead log (no `m wal`), whose
        // first start under this one died creating `wal`: zeros written,
        // the header not yet.
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        db.insert("a", "1").unwrap();
        db.flush().unwrap();
        drop(db);
        std::fs::write(dir.path().join("wal"), vec![0u8; crate::wal::GROW as usize]).unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(value(&s, "a").as_deref(), Some("1"));
        s.apply(put("b", "1")).unwrap();
        s.sync().unwrap();
        drop(s);
        assert_eq!(value(&SledStore::open(dir.path()).unwrap(), "b").as_deref(), Some("1"));
    }

    /// Once sled's `m wal` (and `m wal.1`) say records went through the
    /// log, both files have a header for good: the first start creates them
    /// (and syncs their directory) before it writes those keys, and nothing
    /// empties them after. Missing or zeroed, either may have held
    /// acknowledged records sled lacks: the start stops, naming it, and
    /// creates nothing.
    #[test]
    fn a_missing_or_zeroed_log_file_is_reported_once_records_went_through_it() {
        for (name, how) in WAL_FILES.iter().flat_map(|n| ["removed", "emptied", "zeroed"].map(|h| (n, h))) {
            let how = format!("{name} {how}");
            let dir = tempfile::tempdir().unwrap();
            let s = SledStore::open(dir.path()).unwrap();
            s.apply(put("a", "1")).unwrap();
            s.sync().unwrap();
            drop(s);
            // An acknowledged record sled never stored, as a crash leaves it
            // (in `wal.1`: after the log moved on to it).
            let p = dir.path().join(name);
            let (mut wal, _) = Wal::open(&p, 1).unwrap();
            wal.append(&put("b", "1")).unwrap();
            wal.write().unwrap();
            drop(wal);
            match how.split(' ').nth(1) {
                Some("removed") => std::fs::remove_file(&p).unwrap(),
                Some("emptied") => std::fs::write(&p, b"").unwrap(),
                _ => std::fs::write(&p, vec![0u8; crate::wal::GROW as usize]).unwrap(),
            }
            let before = std::fs::read(&p).ok();
            let err = SledStore::open(dir.path()).map(|_| ()).unwrap_err();
            assert!(
                matches!(&err, StoreError::Corrupt(m) if m.contains(&p.display().to_string()) && m.contains("no header")),
                "{how}: {err:?}"
            );
            assert_eq!(std::fs::read(&p).ok(), before, "{how}: the file is left as it was");
        }
    }

    /// A log last written by a build with one file has `m wal` but no
    /// `m wal.1` and no `wal.1`: it opens, with the second file created,
    /// its record replayed, and `m wal.1` written, so that from then on a
    /// missing `wal.1` stops the start.
    #[test]
    fn a_log_written_with_one_file_gets_its_second() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        s.apply(put("a", "1")).unwrap();
        s.sync().unwrap();
        s.caught_up().unwrap();
        assert!(s.db.get(TWO_FILES_KEY).unwrap().is_some(), "the first start marks the log");
        s.db.remove(TWO_FILES_KEY).unwrap();
        drop(s);
        let second = dir.path().join(WAL_FILES[1]);
        std::fs::remove_file(&second).unwrap();
        let (mut wal, _) = Wal::open(&dir.path().join(WAL_FILES[0]), 1).unwrap();
        wal.append(&put("b", "1")).unwrap();
        wal.write().unwrap();
        drop(wal);
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!((value(&s, "a"), value(&s, "b")), (Some("1".into()), Some("1".into())));
        assert!(s.db.get(TWO_FILES_KEY).unwrap().is_some());
        drop(s);
        std::fs::remove_file(&second).unwrap();
        let err = SledStore::open(dir.path()).map(|_| ()).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.contains(&second.display().to_string())),
            "{err:?}"
        );
    }

    /// The smallest checkpoint size, so that tests move between the files often.
    const TEST_CHECKPOINT: u64 = 1 << 20;

    /// Commits of 60 KB values enough to fill a log file `times` over.
    fn fill(s: &SledStore, times: u64, mut each: impl FnMut(&SledStore)) -> u64 {
        let big = "x".repeat(60_000);
        let n = times * TEST_CHECKPOINT / 60_000;
        for i in 0..n {
            s.apply(put(&format!("k{i}"), &big)).unwrap();
            s.sync().unwrap();
            each(s);
        }
        n
    }

    fn all_there(s: &SledStore, n: u64) {
        for i in 0..n {
            assert_eq!(value(s, &format!("k{i}")).map(|v| v.len()), Some(60_000), "k{i}");
        }
    }

    #[test]
    fn the_log_moves_between_its_two_files_as_sled_makes_them_durable() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open_with(dir.path(), TEST_CHECKPOINT).unwrap();
        let (mut rotations, mut last) = (0, s.log.lock().unwrap().spare_last);
        let n = fill(&s, 3, |s| {
            let log = s.log.lock().unwrap();
            assert!(log.wal.used() <= 4 * TEST_CHECKPOINT + 61_000);
            if log.spare_last != last {
                rotations += 1;
                last = log.spare_last;
            }
        });
        assert!(rotations >= 2, "{rotations} moves to the other file");
        assert!(s.durable(last, true).unwrap());
        all_there(&s, n);
        drop(s);
        let s = SledStore::open(dir.path()).unwrap();
        all_there(&s, n);
    }

    #[test]
    fn a_crash_while_the_other_file_is_made_durable_loses_nothing_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        child("store::tests::write_past_a_move_and_die", dir.path());
        let s = SledStore::open(dir.path()).unwrap();
        all_there(&s, 3 * TEST_CHECKPOINT / 2 / 60_000);
    }

    #[test]
    #[ignore]
    fn write_past_a_move_and_die() {
        let Some(p) = std::env::var_os("GRIDLINE_WAL_TEST_DIR") else { return };
        let s = SledStore::open_with(Path::new(&p), TEST_CHECKPOINT).unwrap();
        let big = "x".repeat(60_000);
        for i in 0..3 * TEST_CHECKPOINT / 2 / 60_000 {
            s.apply(put(&format!("k{i}"), &big)).unwrap();
            s.sync().unwrap();
        }
        std::process::exit(0);
    }

    /// Each number is issued once, to one file: both files holding one is
    /// said so (not taken for a gap that ends before it starts).
    #[test]
    fn a_record_number_in_both_files_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        drop(SledStore::open(dir.path()).unwrap());
        let (mut wal, _) = Wal::open(&dir.path().join(WAL_FILES[0]), 1).unwrap();
        wal.append(&put("a", "1")).unwrap();
        wal.write().unwrap();
        let n = wal.next() - 1;
        drop(wal);
        std::fs::copy(dir.path().join(WAL_FILES[0]), dir.path().join(WAL_FILES[1])).unwrap();
        let err = SledStore::open(dir.path()).map(|_| ()).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.contains(&format!("both hold record {n}"))
                && m.contains(&dir.path().join(WAL_FILES[1]).display().to_string())),
            "{err:?}"
        );
    }

    /// A record's length field damaged so that it runs past the end of the
    /// file, with intact records after it, is damage, not a file cut short:
    /// when sled holds every one of them (the second file, after a start
    /// replayed it), nothing is lost and the start goes on, as it does
    /// for any other damage to that record.
    #[test]
    fn a_damaged_length_with_intact_records_after_it_is_damage_not_a_cut() {
        for (what, byte, bit) in [("a payload byte", 20usize, 0x01u8), ("the length's top byte", 3, 0x80)] {
            let dir = tempfile::tempdir().unwrap();
            drop(SledStore::open(dir.path()).unwrap());
            let next = next_number(dir.path());
            let (mut wal, _) = Wal::open(&dir.path().join(WAL_FILES[1]), 1).unwrap();
            wal.reset(next).unwrap();
            for v in ["1", "2", "3"] {
                wal.append(&put("b", v)).unwrap();
                wal.write().unwrap();
            }
            drop(wal);
            // The start replays them; they stay in the second file, durable
            // in sled, when the server is killed (a clean close would reset
            // that file too).
            let s = SledStore::open(dir.path()).unwrap();
            assert_eq!(value(&s, "b").as_deref(), Some("3"), "{what}");
            as_if_killed(s);
            let p = dir.path().join(WAL_FILES[1]);
            let mut bytes = std::fs::read(&p).unwrap();
            bytes[32 + byte] ^= bit;
            std::fs::write(&p, &bytes).unwrap();
            let s = SledStore::open(dir.path()).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(value(&s, "b").as_deref(), Some("3"), "{what}");
        }
    }

    /// A file that grew while sled lagged (its records reach past the
    /// checkpoint size and a growth step) gives the space back when the
    /// log moves on to it, not a round later.
    #[test]
    fn a_file_that_grew_while_sled_lagged_is_given_back_when_the_log_moves_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let mut log = s.log.lock().unwrap();
        // As the other file is left after sled lagged: its records ran on
        // past twice the checkpoint size (all durable in sled by now).
        let big = put("k", &"x".repeat(60_000));
        while log.spare.used() <= 2 * CHECKPOINT_BYTES + crate::wal::GROW {
            log.spare.append(&big).unwrap();
            log.spare.write().unwrap();
        }
        assert!(log.spare.file_len() > CHECKPOINT_BYTES + crate::wal::GROW);
        s.rotate(&mut log).unwrap();
        assert_eq!(log.wal.used(), 0);
        assert_eq!(log.wal.file_len(), CHECKPOINT_BYTES + crate::wal::GROW);
        assert_eq!(
            std::fs::metadata(dir.path().join(WAL_FILES[1])).unwrap().len(),
            CHECKPOINT_BYTES + crate::wal::GROW
        );
    }

    /// Both files are at their working length once the store is open, so
    /// no commit before the first rotation writes zeros and an fsync first.
    #[test]
    fn both_files_are_grown_to_their_working_length_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let working = CHECKPOINT_BYTES + crate::wal::GROW;
        assert_eq!(wal_lens(dir.path()), [working, working]);
        let log = s.log.lock().unwrap();
        assert_eq!((log.wal.file_len(), log.spare.file_len()), (working, working));
        drop(log);
        // A clean close cuts both files to their headers, records and all
        // (the second file's were durable in sled); the next open reads
        // them, finds nothing owed, and grows them again.
        s.apply(put("a", "1")).unwrap();
        s.sync().unwrap();
        {
            let mut log = s.log.lock().unwrap();
            s.rotate(&mut log).unwrap();
        }
        s.apply(put("b", "2")).unwrap();
        s.sync().unwrap();
        drop(s);
        assert_eq!(wal_lens(dir.path()), [32, 32]);
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!((value(&s, "a").as_deref(), value(&s, "b").as_deref()), (Some("1"), Some("2")));
        assert_eq!(wal_lens(dir.path()), [working, working]);
        s.apply(put("c", "3")).unwrap();
        s.sync().unwrap();
        drop(s);
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(value(&s, "c").as_deref(), Some("3"));
    }

    /// A large checkpoint size does not make every start write that much
    /// of zeros: two growth steps a file at most.
    #[test]
    fn a_large_checkpoint_size_grows_the_files_only_two_steps_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let _s = SledStore::open_with(dir.path(), 64 << 20).unwrap();
        assert_eq!(wal_lens(dir.path()), [2 * crate::wal::GROW; 2]);
    }

    /// The lengths of the log's two files on disk.
    fn wal_lens(dir: &Path) -> [u64; 2] {
        WAL_FILES.map(|name| std::fs::metadata(dir.join(name)).unwrap().len())
    }

    /// Drops the store without the clean close's checkpoint, leaving the
    /// log's files as a kill would.
    fn as_if_killed(s: SledStore) {
        s.log.lock().unwrap().dead = Some(StoreError::Io("the test kills the server".into()));
        drop(s);
    }

    /// The number the log's next record gets, as a closed store left it.
    fn next_number(dir: &Path) -> u64 {
        Wal::open(&dir.join(WAL_FILES[0]), 1).unwrap().0.next()
    }

    #[test]
    fn records_in_the_second_file_are_applied_at_open_and_a_gap_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        drop(SledStore::open(dir.path()).unwrap());
        let next = next_number(dir.path());
        let (mut wal, _) = Wal::open(&dir.path().join(WAL_FILES[1]), 1).unwrap();
        wal.reset(next).unwrap();
        wal.append(&put("b", "1")).unwrap();
        wal.write().unwrap();
        drop(wal);
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(value(&s, "b").as_deref(), Some("1"));
        drop(s);
        let next = next_number(dir.path());
        let (mut wal, _) = Wal::open(&dir.path().join(WAL_FILES[1]), 1).unwrap();
        wal.reset(next + 3).unwrap();
        wal.append(&put("c", "1")).unwrap();
        wal.write().unwrap();
        drop(wal);
        let err = SledStore::open(dir.path()).map(|_| ()).unwrap_err();
        let want = format!("records {next} to {} are lost", next + 2);
        assert!(matches!(&err, StoreError::Corrupt(m) if m.contains(&want)), "{err:?}");
    }
}
