//! The engine's clock, injectable so tests can run a week of deadlines in milliseconds.

use std::sync::atomic::{AtomicI64, Ordering};

use gridline_model::{DurationMs, Timestamp};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
    /// Whether the engine wakes by itself to look at deadlines as this
    /// clock's time passes. A clock whose time moves only when told has its
    /// deadlines looked at when told too (`EngineHandle::tick`) and with
    /// each batch of commands, never at a moment of the engine's choosing.
    fn passes_by_itself(&self) -> bool {
        true
    }
}

/// Wall-clock time.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock {
    ms: AtomicI64,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock { ms: AtomicI64::new(start.0) }
    }
    pub fn set(&self, t: Timestamp) {
        self.ms.store(t.0, Ordering::SeqCst);
    }
    pub fn advance(&self, d: DurationMs) {
        self.ms.fetch_add(d.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.ms.load(Ordering::SeqCst))
    }
    fn passes_by_itself(&self) -> bool {
        false
    }
}
