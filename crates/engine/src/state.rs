//! The engine's in-memory state: every case, and indexes derived from them.
//!
//! Every index is a function of the case records alone, maintained by
//! [`State::replace`] (a case appears, goes, or is put back) and
//! [`State::update`] (a case changes in place), so undoing a change is
//! replacing the case back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use gridline_model::{Case, CaseId, Status, Timestamp};
use gridline_registry::{GridIdx, Registry, TownshipIdx, WorkerIdx};

/// A position in a deadline-ordered list: `(deadline ms, case id)`.
pub(crate) type DueKey = (i64, CaseId);

/// The engine's state.
///
/// The maps by case id, number and request id are B-trees, not hash maps: a
/// hash map doubles all at once, and every command waits while it rehashes.
/// Measured with 16-byte string keys (mimalloc, this VM): one insert took
/// 49 ms at 229,376 entries, 106 ms at 458,752 and 238 ms at 917,504; a
/// B-tree's worst insert over the same run was 5 ms. A B-tree grows a node
/// at a time, and ids and case numbers arrive in order, so their inserts
/// land on the rightmost, cached leaves.
pub(crate) struct State {
    /// Boxed, so a B-tree node moves pointers, not 700-byte records.
    pub cases: BTreeMap<CaseId, Box<Case>>,
    pub by_no: BTreeMap<String, CaseId>,
    pub by_req: BTreeMap<String, CaseId>,
    /// Open (dispatched or handling) cases per worker: routing's loads.
    pub loads: Vec<u32>,
    /// Each worker's open cases, earliest deadline first.
    pub by_worker: Vec<BTreeSet<DueKey>>,
    /// Open cases racing a deadline, earliest first (OVERDUE).
    pub by_due: BTreeSet<DueKey>,
    /// The same per township and per grid (registry order), so that
    /// `OVERDUE township=` or `grid=` reads only its own cases.
    pub due_by_township: Vec<BTreeSet<DueKey>>,
    pub due_by_grid: Vec<BTreeSet<DueKey>>,
    /// When the engine must next look at each case (deadlines, escalations).
    pub timers: BTreeSet<DueKey>,
    /// Cases waiting at the command centre.
    pub waiting: BTreeSet<CaseId>,
    /// The highest case number issued per local day.
    pub day_max: HashMap<u32, u32>,
    /// Workers, townships and grids by code, for the indexes.
    registry: Arc<Registry>,
    /// How many levels of escalation follow a missed claim deadline.
    escalation_levels: u8,
}

/// The index entries one case contributes.
#[derive(PartialEq, Eq)]
struct Keys {
    worker: Option<(WorkerIdx, DueKey)>,
    due: Option<DueKey>,
    /// Where the deadline entry is filed besides `by_due`.
    due_township: Option<TownshipIdx>,
    due_grid: Option<GridIdx>,
    timer: Option<DueKey>,
    waiting: bool,
}

impl State {
    pub fn new(registry: Arc<Registry>, escalation_levels: u8) -> State {
        let n = registry.workers.len();
        State {
            cases: BTreeMap::new(),
            by_no: BTreeMap::new(),
            by_req: BTreeMap::new(),
            loads: vec![0; n],
            by_worker: vec![BTreeSet::new(); n],
            by_due: BTreeSet::new(),
            due_by_township: vec![BTreeSet::new(); registry.townships.len()],
            due_by_grid: vec![BTreeSet::new(); registry.grids.len()],
            timers: BTreeSet::new(),
            waiting: BTreeSet::new(),
            day_max: HashMap::new(),
            registry,
            escalation_levels,
        }
    }

    /// Puts `new` in place of the case with the same id (or removes the case
    /// `id` when `new` is `None`), keeping every index in step.
    pub fn replace(&mut self, id: CaseId, new: Option<Case>) {
        if let Some(old) = self.cases.remove(&id) {
            self.by_no.remove(&old.no.0);
            if let Some(r) = &old.intake.req {
                self.by_req.remove(r);
            }
            // day_max is a high-water mark: undoing a case leaves its number
            // unused rather than reissuing it to a different case.
            let k = self.keys(&old);
            self.unindex(&id, k);
        }
        if let Some(c) = new {
            self.by_no.insert(c.no.0.clone(), c.id);
            if let Some(r) = &c.intake.req {
                self.by_req.insert(r.clone(), c.id);
            }
            if let Some((day, seq)) = c.no.parts() {
                let m = self.day_max.entry(day).or_insert(0);
                *m = (*m).max(seq);
            }
            let k = self.keys(&c);
            self.index(&id, k);
            self.cases.insert(id, Box::new(c));
        }
    }

    /// Applies an already-validated change to a case in place, re-indexing
    /// it. A change never alters a case's id, number or request id.
    pub fn update<R>(&mut self, id: &CaseId, f: impl FnOnce(&mut Case) -> R) -> Option<R> {
        let c = self.cases.get_mut(id)?;
        let before = keys(&self.registry, self.escalation_levels, c);
        #[cfg(debug_assertions)]
        let identity = (c.no.clone(), c.intake.req.clone());
        let r = f(c);
        #[cfg(debug_assertions)]
        debug_assert_eq!(identity, (c.no.clone(), c.intake.req.clone()), "update changed a case's identity");
        let after = keys(&self.registry, self.escalation_levels, c);
        if before != after {
            self.unindex(id, before);
            self.index(id, after);
        }
        Some(r)
    }

    fn keys(&self, c: &Case) -> Keys {
        keys(&self.registry, self.escalation_levels, c)
    }

    fn index(&mut self, id: &CaseId, k: Keys) {
        if let Some((w, key)) = k.worker {
            self.loads[w.ix()] += 1;
            self.by_worker[w.ix()].insert(key);
        }
        if let Some(d) = k.due {
            self.by_due.insert(d);
            if let Some(t) = k.due_township {
                self.due_by_township[t.ix()].insert(d);
            }
            if let Some(g) = k.due_grid {
                self.due_by_grid[g.ix()].insert(d);
            }
        }
        if let Some(t) = k.timer {
            self.timers.insert(t);
        }
        if k.waiting {
            self.waiting.insert(*id);
        }
    }

    fn unindex(&mut self, id: &CaseId, k: Keys) {
        if let Some((w, key)) = k.worker {
            self.loads[w.ix()] -= 1;
            self.by_worker[w.ix()].remove(&key);
        }
        if let Some(d) = k.due {
            self.by_due.remove(&d);
            if let Some(t) = k.due_township {
                self.due_by_township[t.ix()].remove(&d);
            }
            if let Some(g) = k.due_grid {
                self.due_by_grid[g.ix()].remove(&d);
            }
        }
        if let Some(t) = k.timer {
            self.timers.remove(&t);
        }
        if k.waiting {
            self.waiting.remove(id);
        }
    }
}

/// The index entries of `c`.
fn keys(registry: &Registry, levels: u8, c: &Case) -> Keys {
    let due = c.next_due().map(|d| (d.0, c.id));
    let worker = match c.status {
        Status::Dispatched | Status::Handling => c
            .worker()
            .and_then(|w| registry.worker_idx(w))
            .map(|w| (w, (c.next_due().map_or(i64::MAX, |d| d.0), c.id))),
        _ => None,
    };
    Keys {
        worker,
        due,
        due_township: due.and(c.township.as_deref()).and_then(|t| registry.township_idx(t)),
        due_grid: due.and(c.grid()).and_then(|g| registry.grid_idx(g)),
        timer: next_timer(c, levels).map(|t| (t.0, c.id)),
        waiting: c.status == Status::Accepted,
    }
}

/// A deadline is met at its very millisecond; it is missed one after.
pub(crate) fn just_after(t: Timestamp) -> Timestamp {
    Timestamp(t.0 + 1)
}

/// When a case next needs the engine's attention, if ever.
///
/// Dispatched: its claim deadline, then one escalation step per further claim
/// limit (up to `levels`), and its close deadline. Handling: its close
/// deadline. Each only until the event for it has been recorded.
pub(crate) fn next_timer(c: &Case, levels: u8) -> Option<Timestamp> {
    let mut next: Option<Timestamp> = None;
    let mut consider = |t: Timestamp| next = Some(next.map_or(t, |n: Timestamp| n.min(t)));
    match c.status {
        Status::Dispatched => {
            if let (Some(due), Some(at)) = (c.due_claim, c.dispatched_at) {
                if !c.overdue_claim {
                    consider(just_after(due));
                } else if c.escalation_level < levels {
                    let limit = due.since(at).0.max(60_000);
                    consider(just_after(Timestamp(due.0 + limit * c.escalation_level as i64)));
                }
            }
            if let (Some(due), false) = (c.due_close, c.overdue_close) {
                consider(just_after(due));
            }
        }
        Status::Handling => {
            if let (Some(due), false) = (c.due_close, c.overdue_close) {
                consider(just_after(due));
            }
        }
        _ => {}
    }
    next
}
