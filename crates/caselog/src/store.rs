//! Where the log's bytes live: sled on disk, or memory in tests.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A storage failure. `Full` and `Io` make the engine answer `unavailable`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("storage is full")]
    Full,
    #[error("storage is corrupt: {0}")]
    Corrupt(String),
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
/// Shared by the engine (reads) and its syncer thread (writes).
///
/// `apply` makes a batch visible to reads; only a successful `sync` after it
/// makes it durable. After a failed `sync`, whether the batch survives a crash
/// is unknown.
pub trait Store: Send + Sync + 'static {
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
    /// Bytes on disk, where that means something.
    fn size_on_disk(&self) -> Option<u64> {
        None
    }
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn sled_err(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Corruption { .. } => StoreError::Corrupt(e.to_string()),
        sled::Error::Io(ref ioe) if ioe.raw_os_error() == Some(libc_enospc()) => StoreError::Full,
        sled::Error::Io(ref ioe) if ioe.kind() == std::io::ErrorKind::WouldBlock => StoreError::Io(
            "the log is locked by another process (is a server running on this data directory?)".into(),
        ),
        other => io(other),
    }
}

const fn libc_enospc() -> i32 {
    28
}

/// sled 0.34.7, made durable.
///
/// sled's `flush` writes its log with `sync_file_range` on Linux (sled
/// issue #1452): that neither persists the file's size and other metadata nor
/// flushes the disk's write cache. `sync` therefore follows sled's flush with
/// `fsync` of the log file. Values are kept far below sled's blob threshold
/// (about 128 KiB at the default segment size), so no data lives in the
/// separately written, never-synced blob files.
pub struct SledStore {
    db: sled::Db,
    file: File,
}

impl SledStore {
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        let existed = path.join("db").exists();
        std::fs::create_dir_all(path).map_err(io)?;
        let config = sled::Config::new().path(path).flush_every_ms(None).cache_capacity(256 << 20);
        // sled panics on some kinds of damage (a truncated file, say) instead
        // of returning an error: catch that, quietly, and report it as damage.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
        std::panic::set_hook(hook);
        let db = opened
            .map_err(|p| {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown".into());
                StoreError::Corrupt(format!(
                    "sled cannot open the log ({msg}); the file is damaged or truncated"
                ))
            })?
            .map_err(sled_err)?;
        let file = File::open(path.join("db")).map_err(io)?;
        if !existed {
            // New files: make their directory entries durable too.
            sync_dir(path)?;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        Ok(SledStore { db, file })
    }
}

fn sync_dir(p: &Path) -> Result<(), StoreError> {
    File::open(p).and_then(|d| d.sync_all()).map_err(io)
}

impl Store for SledStore {
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut b = sled::Batch::default();
        for (k, v) in batch.ops {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        self.db.apply_batch(b).map_err(sled_err)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(sled_err)?;
        self.file.sync_all().map_err(io)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get(key).map(|v| v.map(|v| v.to_vec())).map_err(sled_err)
    }

    fn for_each(&self, prefix: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), StoreError> {
        for r in self.db.scan_prefix(prefix) {
            let (k, v) = r.map_err(sled_err)?;
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn scan(&self, prefix: &[u8]) -> Box<dyn Iterator<Item = Result<KeyValue, StoreError>> + '_> {
        Box::new(
            self.db.scan_prefix(prefix).map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(sled_err)),
        )
    }

    fn size_on_disk(&self) -> Option<u64> {
        self.db.size_on_disk().ok()
    }

    fn last(&self, prefix: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        self.db
            .scan_prefix(prefix)
            .next_back()
            .transpose()
            .map(|o| o.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .map_err(sled_err)
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
    /// Make every `sync` take this long, as a slow disk would, so that work
    /// queues up behind it.
    pub sync_delay: Option<std::time::Duration>,
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
        let delay = self.inner.lock().expect("mem store lock").faults.sync_delay;
        if let Some(d) = delay {
            std::thread::sleep(d);
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
        Ok(self.inner.lock().expect("mem store lock").visible.get(key).cloned())
    }

    fn scan(&self, prefix: &[u8]) -> Box<dyn Iterator<Item = Result<KeyValue, StoreError>> + '_> {
        let g = self.inner.lock().expect("mem store lock");
        let items: Vec<_> = g
            .visible
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| Ok((k.clone(), v.clone())))
            .collect();
        Box::new(items.into_iter())
    }
}
