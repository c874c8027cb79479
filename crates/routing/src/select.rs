//! Choosing one worker from a pool: duty hours, loads, returns.
//!
//! A worker is *available* when on duty at the case's local minute of the day
//! and not among those who returned the case. Among the available, the normal
//! order is: fewest open cases, then full-time (and department
//! professionals) before part-time, then the lowest worker index.

use gridline_registry::{DutyWindow, Registry, WorkerIdx, WorkerKind};

/// An emergency looks first for an available worker with fewer open cases
/// than this ("free"); see `Router::route` for the whole emergency rule.
pub const EMERGENCY_FREE_BELOW: u32 = 3;

/// How a pool looked when nobody in it could take the case.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Census {
    pub total: u32,
    pub off_duty: u32,
    pub returned: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    /// Fewest open cases, full-time first, lowest index.
    Balanced,
    /// Full-time (or professional) only, fewest open cases, lowest index.
    FullTimeOnly,
    /// Like `Balanced`, among workers with fewer than [`EMERGENCY_FREE_BELOW`] open cases.
    Free,
}

/// What worker choice reads of each worker, packed (8 bytes a worker
/// instead of a `Worker` of ~150 bytes scattered over the heap).
#[derive(Clone, Copy, Debug)]
struct Slim {
    part_time: bool,
    /// The worker's duty windows: `windows[start..start + len]`; none: always on duty.
    start: u32,
    len: u16,
}

pub(crate) struct Roster {
    slim: Vec<Slim>,
    windows: Vec<DutyWindow>,
}

impl Roster {
    pub fn new(reg: &Registry) -> Roster {
        let mut windows = Vec::new();
        let slim = reg
            .workers
            .iter()
            .map(|w| {
                let start = windows.len() as u32;
                windows.extend_from_slice(&w.duty);
                Slim { part_time: w.kind == WorkerKind::PartTime, start, len: w.duty.len() as u16 }
            })
            .collect();
        Roster { slim, windows }
    }

    /// `None` for an index out of range (never, on a checked registry).
    fn get(&self, w: WorkerIdx) -> Option<Slim> {
        self.slim.get(w.ix()).copied()
    }

    fn on_duty(&self, s: Slim, minute: u32) -> bool {
        let (a, n) = (s.start as usize, s.len as usize);
        n == 0 || self.windows.get(a..a + n).is_some_and(|ws| ws.iter().any(|d| d.contains(minute)))
    }
}

pub(crate) struct Picker<'a> {
    pub reg: &'a Registry,
    pub roster: &'a Roster,
    pub loads: &'a [u32],
    pub minute: u32,
    pub exclude: &'a [WorkerIdx],
}

impl Picker<'_> {
    pub fn load(&self, w: WorkerIdx) -> u32 {
        self.loads.get(w.ix()).copied().unwrap_or(0)
    }

    /// The best available worker of `pool` in `order`, if any.
    pub fn best(&self, pool: &[WorkerIdx], order: Order) -> Option<WorkerIdx> {
        let mut best: Option<((bool, u32, bool, u32), WorkerIdx)> = None;
        for &w in pool {
            let Some(slim) = self.roster.get(w) else { continue };
            if !self.roster.on_duty(slim, self.minute) || self.exclude.contains(&w) {
                continue;
            }
            let load = self.load(w);
            let pt = slim.part_time;
            let key = match order {
                Order::Balanced => (false, load, pt, w.0),
                Order::Free if load < EMERGENCY_FREE_BELOW => (false, load, pt, w.0),
                Order::FullTimeOnly if !pt => (false, load, false, w.0),
                Order::Free | Order::FullTimeOnly => continue,
            };
            if best.is_none_or(|b| key < b.0) {
                best = Some((key, w));
            }
        }
        best.map(|b| b.1)
    }

    /// Why nobody in `pool` is available (for the explanation).
    pub fn census(&self, pool: &[WorkerIdx]) -> Census {
        let mut c = Census { total: pool.len() as u32, ..Census::default() };
        for &w in pool {
            if self.exclude.contains(&w) {
                c.returned += 1;
            } else if !self.roster.get(w).is_some_and(|s| self.roster.on_duty(s, self.minute)) {
                c.off_duty += 1;
            }
        }
        c
    }
}
