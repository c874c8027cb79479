//! The engine's in-memory state: every case, and indexes derived from them.
//!
//! Every index is a function of the case records alone, maintained by
//! [`State::replace`] (a case appears, goes, or is put back) and
//! [`State::update`] (a case changes in place), so undoing a change is
//! replacing the case back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use gridline_caselog::Recovery;
use gridline_model::{Case, CaseId, CaseNo, CompactString, Status, Timestamp};
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
    /// Behind pointers, so a B-tree node moves pointers, not 700-byte
    /// records; shared, so a reply shows a case without copying it (a
    /// change to a case a reply still holds copies it first).
    pub cases: BTreeMap<CaseId, Arc<Case>>,
    pub by_no: ByNo,
    /// Request ids (`req=`), each under the operator who sent it.
    pub by_req: BTreeMap<ReqKey, CaseId>,
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
    /// How many levels of escalation a case may reach (see `EngineConfig`).
    escalation_levels: u8,
}

/// A request id (`req=`) is its operator's own: (operator, req). Two
/// operators (two call-centre seats, each numbering its requests) never
/// answer each other's requests with each other's cases.
pub(crate) type ReqKey = (CompactString, CompactString);

/// The key `c`'s request id is filed under, if it came with one.
pub(crate) fn req_key(c: &Case) -> Option<ReqKey> {
    c.intake.req.as_ref().map(|r| (c.operator.clone(), r.clone()))
}

/// Case numbers to ids. Every number the engine issues is in the county's
/// format and is filed under its 8-byte [`CaseNo::key`] rather than its text
/// (no allocation per case, cheaper to sort at start); any other stored
/// number under its text.
#[derive(Debug, Default)]
pub(crate) struct ByNo {
    prefix: String,
    keyed: BTreeMap<u64, CaseId>,
    other: BTreeMap<CompactString, CaseId>,
}

impl ByNo {
    fn new(prefix: &str) -> ByNo {
        ByNo { prefix: prefix.to_string(), ..ByNo::default() }
    }

    pub fn get(&self, no: &CaseNo) -> Option<CaseId> {
        match no.key(&self.prefix) {
            Some(k) => self.keyed.get(&k).copied(),
            None => self.other.get(&no.0).copied(),
        }
    }

    fn insert(&mut self, no: &CaseNo, id: CaseId) {
        match no.key(&self.prefix) {
            Some(k) => self.keyed.insert(k, id),
            None => self.other.insert(no.0.clone(), id),
        };
    }

    fn remove(&mut self, no: &CaseNo) {
        match no.key(&self.prefix) {
            Some(k) => self.keyed.remove(&k),
            None => self.other.remove(&no.0),
        };
    }
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
            by_no: ByNo::new(&registry.county.code),
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
    pub fn replace(&mut self, id: CaseId, new: Option<Arc<Case>>) {
        if let Some(old) = self.cases.remove(&id) {
            self.by_no.remove(&old.no);
            if let Some(k) = req_key(&old) {
                self.by_req.remove(&k);
            }
            // day_max is a high-water mark: undoing a case leaves its number
            // unused rather than reissuing it to a different case.
            let k = self.keys(&old);
            self.unindex(&id, k);
        }
        if let Some(c) = new {
            self.by_no.insert(&c.no, c.id);
            if let Some(k) = req_key(&c) {
                self.by_req.insert(k, c.id);
            }
            if let Some((day, seq)) = c.no.parts() {
                let m = self.day_max.entry(day).or_insert(0);
                *m = (*m).max(seq);
            }
            let k = self.keys(&c);
            self.index(&id, k);
            self.cases.insert(id, c);
        }
    }

    /// Applies an already-validated change to a case in place, re-indexing
    /// it. A change never alters a case's id, number or request id.
    pub fn update<R>(&mut self, id: &CaseId, f: impl FnOnce(&mut Case) -> R) -> Option<R> {
        let c = Arc::make_mut(self.cases.get_mut(id)?);
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

/// Builds a [`State`] from every stored case at start.
///
/// [`State::replace`] inserts one case at a time, each insert a walk down
/// B-trees of up to a million entries at a random place (deadlines do not
/// follow case ids). At start every case arrives at once, so the loader only
/// collects the entries, and [`Loader::finish`] sorts each list and builds
/// its tree from sorted input in one pass. The result is the same state, a
/// fact the tests check against `replace`.
pub(crate) struct Loader {
    registry: Arc<Registry>,
    escalation_levels: u8,
    cases: Vec<(CaseId, Arc<Case>)>,
    /// Numbers by [`CaseNo::key`], and any not in the county's format.
    by_no: Vec<(u64, CaseId)>,
    by_no_other: Vec<(CompactString, CaseId)>,
    by_req: Vec<(ReqKey, CaseId)>,
    loads: Vec<u32>,
    /// Every deadline entry with the other sets it is filed in: sorted
    /// once, it gives each of them its entries in order.
    dues: Vec<Due>,
    /// Worker entries not keyed by a deadline (an open case without one).
    by_worker_other: Vec<(WorkerIdx, DueKey)>,
    timers: Vec<DueKey>,
    waiting: Vec<CaseId>,
    day_max: HashMap<u32, u32>,
    /// The first open case assigned to a worker the registry does not know.
    unknown_worker: Option<(String, String)>,
    /// Open cases whose grid or township the registry does not know (a
    /// code changed in the config while they were open), and the first.
    unlisted: usize,
    first_unlisted: Option<(String, &'static str, String)>,
}

impl Loader {
    pub fn new(registry: Arc<Registry>, escalation_levels: u8) -> Loader {
        Loader {
            loads: vec![0; registry.workers.len()],
            registry,
            escalation_levels,
            cases: Vec::new(),
            by_no: Vec::new(),
            by_no_other: Vec::new(),
            by_req: Vec::new(),
            dues: Vec::new(),
            by_worker_other: Vec::new(),
            timers: Vec::new(),
            waiting: Vec::new(),
            day_max: HashMap::new(),
            unknown_worker: None,
            unlisted: 0,
            first_unlisted: None,
        }
    }

    pub fn push(&mut self, c: Arc<Case>) {
        let k = keys(&self.registry, self.escalation_levels, &c);
        if self.unknown_worker.is_none() && c.status.is_open() && k.worker.is_none() {
            if let Some(w) = c.worker() {
                self.unknown_worker = Some((c.no.0.to_string(), w.to_string()));
            }
        }
        if let (Some(a), true) = (&c.assignment, c.status.is_open()) {
            let r = &self.registry;
            let unknown = if r.grid_idx(&a.grid).is_none() {
                Some(("grid", &a.grid))
            } else if r.township_idx(&a.township).is_none() {
                Some(("township", &a.township))
            } else {
                None
            };
            if let Some((what, code)) = unknown {
                self.unlisted += 1;
                self.first_unlisted.get_or_insert_with(|| (c.no.0.to_string(), what, code.to_string()));
            }
        }
        let id = c.id;
        match c.no.key(&self.registry.county.code) {
            Some(k) => self.by_no.push((k, id)),
            None => self.by_no_other.push((c.no.0.clone(), id)),
        }
        if let Some(k) = req_key(&c) {
            self.by_req.push((k, id));
        }
        if let Some((day, seq)) = c.no.parts() {
            let m = self.day_max.entry(day).or_insert(0);
            *m = (*m).max(seq);
        }
        let mut worker = None;
        if let Some((w, key)) = k.worker {
            self.loads[w.ix()] += 1;
            if k.due == Some(key) {
                worker = Some(w);
            } else {
                self.by_worker_other.push((w, key));
            }
        }
        if let Some(key) = k.due {
            self.dues.push(Due { key, worker, township: k.due_township, grid: k.due_grid });
        }
        if let Some(t) = k.timer {
            self.timers.push(t);
        }
        if k.waiting {
            self.waiting.push(id);
        }
        self.cases.push((id, c));
    }
}

/// A deadline entry of a case being loaded and the sets besides `by_due`
/// it goes in.
struct Due {
    key: DueKey,
    worker: Option<WorkerIdx>,
    township: Option<TownshipIdx>,
    grid: Option<GridIdx>,
}

/// Why the stored cases cannot become a [`State`].
#[derive(Debug)]
pub(crate) enum LoadError {
    /// An open case is assigned to a worker the registry does not know.
    UnknownWorker {
        no: String,
        worker: String,
    },
    Thread(std::io::Error),
}

impl Recovery for Loader {
    type Output = Result<State, LoadError>;

    fn push(&mut self, case: Case) {
        Loader::push(self, Arc::new(case))
    }

    /// Builds the trees; those of case numbers and request ids (the latter
    /// keyed by strings, the slowest to sort) on a second thread.
    fn finish(self) -> Result<State, LoadError> {
        if let Some((no, worker)) = self.unknown_worker {
            return Err(LoadError::UnknownWorker { no, worker });
        }
        if let Some((no, what, code)) = &self.first_unlisted {
            // Served as they are (GET shows them, RETURN and DISPATCH move
            // them), but no list by grid or township can find them.
            tracing::warn!(
                cases = self.unlisted,
                first = %no,
                "open cases are in a {what} the registry does not know (case {no}: {code}; a code changed in the \
                 config while they were open): OVERDUE grid= and township= cannot list them; RETURN or DISPATCH \
                 them to move them"
            );
        }
        let mut numbers = ByNo::new(&self.registry.county.code);
        let mut state = State::new(self.registry, self.escalation_levels);
        let (by_no, by_no_other, by_req) = (self.by_no, self.by_no_other, self.by_req);
        std::thread::scope(|s| {
            let strings = std::thread::Builder::new()
                .name("gridline-load".into())
                .spawn_scoped(s, || {
                    numbers.keyed = by_no.into_iter().collect();
                    numbers.other = by_no_other.into_iter().collect();
                    (numbers, sorted(by_req, |(k, _)| k).into_iter().collect())
                })
                .map_err(LoadError::Thread)?;
            state.cases = self.cases.into_iter().collect();
            state.loads = self.loads;
            // One sort of the deadlines hands every set its entries in order.
            let mut dues = self.dues;
            dues.sort_unstable_by_key(|d| d.key);
            let mut by_worker = vec![Vec::new(); state.by_worker.len()];
            let mut by_township = vec![Vec::new(); state.due_by_township.len()];
            let mut by_grid = vec![Vec::new(); state.due_by_grid.len()];
            for d in &dues {
                if let Some(w) = d.worker {
                    by_worker[w.ix()].push(d.key);
                }
                if let Some(t) = d.township {
                    by_township[t.ix()].push(d.key);
                }
                if let Some(g) = d.grid {
                    by_grid[g.ix()].push(d.key);
                }
            }
            state.by_due = dues.into_iter().map(|d| d.key).collect();
            for (w, key) in self.by_worker_other {
                by_worker[w.ix()].push(key);
            }
            // (`collect` sorts again: a pass over what is already in order.)
            let sets = |lists: Vec<Vec<DueKey>>| lists.into_iter().map(|l| l.into_iter().collect());
            state.by_worker = sets(by_worker).collect();
            state.due_by_township = sets(by_township).collect();
            state.due_by_grid = sets(by_grid).collect();
            state.timers = sorted(self.timers, |k| k).into_iter().collect();
            state.waiting = self.waiting.into_iter().collect();
            state.day_max = self.day_max;
            (state.by_no, state.by_req) = strings.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            Ok(state)
        })
    }
}

/// `v` sorted by `key`, unstably: the keys are unique, and `collect` into
/// a B-tree, which sorts stably, then only checks the order (on this
/// machine, quicker than its own sort of a million unsorted entries).
fn sorted<T, K: Ord>(mut v: Vec<T>, key: impl Fn(&T) -> &K) -> Vec<T> {
    v.sort_unstable_by(|a, b| key(a).cmp(key(b)));
    v
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

#[cfg(test)]
mod tests {
    use super::*;
    use gridline_model::{Actor, Assignment, CaseNo, Event, EventKind, Intake};
    use proptest::prelude::*;

    /// One case's shape: status, a worker (registry position, or one it
    /// does not know), deadlines drawn from a few values so they tie, a
    /// request id or none.
    type Shape = (u8, usize, u8, u8, bool, bool, bool, u8);

    fn case(
        reg: &Registry,
        i: usize,
        (status, worker, claim, close, req, overdue, unknown_grid, level): Shape,
    ) -> Case {
        let at = Timestamp(1_800_000_000_000 + i as i64);
        let intake = Intake {
            text: format!("case {i}").into(),
            req: req.then(|| format!("req-{}", i * 7 % 1000).into()),
            ..Intake::default()
        };
        let first = Event {
            case: CaseId::new_at(at),
            seq: 1,
            at,
            actor: Actor::system(),
            kind: EventKind::Accepted {
                // Now and then a number not in the county's format.
                no: if i % 7 == 6 {
                    CaseNo(format!("JD-{i}").into())
                } else {
                    CaseNo::new("JD", 20260101 + (i % 3) as u32, i as u32 + 1)
                },
                intake,
                category: "water".into(),
                township: None,
            },
        };
        let mut c = Case::from_first(&first).unwrap();
        c.status = Status::ALL[status as usize % 4];
        let w = &reg.workers[worker % reg.workers.len()];
        let grid = &reg.grids[worker % reg.grids.len()];
        c.township = Some(reg.townships[worker % reg.townships.len()].code.clone().into());
        if c.status != Status::Accepted {
            c.assignment = Some(Assignment {
                grid: if unknown_grid { "nowhere".into() } else { grid.code.clone().into() },
                township: c.township.clone().unwrap(),
                worker: w.id.clone().into(),
                department: None,
                rule: "test".into(),
            });
            c.dispatched_at = Some(at);
            c.due_claim = (claim > 0).then(|| Timestamp(at.0 / 1000 * 1000 + claim as i64 * 60_000));
            c.due_close = (close > 0).then(|| Timestamp(at.0 / 1000 * 1000 + close as i64 * 3_600_000));
            c.overdue_claim = overdue;
            c.escalation_level = level % 4;
        }
        c
    }

    fn dump(s: &State) -> String {
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            s.cases,
            s.by_no,
            s.by_req,
            s.loads,
            s.by_worker,
            s.by_due,
            s.due_by_township,
            s.due_by_grid,
            s.timers,
            s.waiting,
            s.day_max.iter().collect::<BTreeMap<_, _>>()
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Loading every case at once builds exactly the state that
        /// `replace`, one case at a time, builds.
        #[test]
        fn loading_at_once_equals_replacing_one_by_one(shapes in prop::collection::vec(any::<Shape>(), 0..300)) {
            let reg = Arc::new(gridline_registry::embedded::jidong().clone());
            let cases: Vec<Case> = shapes.iter().enumerate().map(|(i, s)| case(&reg, i, *s)).collect();
            let mut one_by_one = State::new(reg.clone(), 3);
            let mut loader = Loader::new(reg.clone(), 3);
            for c in &cases {
                one_by_one.replace(c.id, Some(Arc::new(c.clone())));
                Recovery::push(&mut loader, c.clone());
            }
            let loaded = Recovery::finish(loader).unwrap();
            prop_assert_eq!(dump(&loaded), dump(&one_by_one));
        }
    }

    #[test]
    fn a_number_finds_its_case_only_as_written() {
        let reg = Arc::new(gridline_registry::embedded::jidong().clone());
        assert_eq!(reg.county.code, "JD");
        let mut state = State::new(reg.clone(), 3);
        let a = case(&reg, 0, (1, 0, 1, 1, false, false, false, 0));
        let b = case(&reg, 6, (1, 0, 1, 1, false, false, false, 0));
        assert_eq!((a.no.as_str(), b.no.as_str()), ("JD-20260101-000001", "JD-6"));
        state.replace(a.id, Some(Arc::new(a.clone())));
        state.replace(b.id, Some(Arc::new(b.clone())));
        let get = |s: &State, no: &str| s.by_no.get(&CaseNo(no.into()));
        assert_eq!(get(&state, "JD-20260101-000001"), Some(a.id));
        assert_eq!(get(&state, "JD-6"), Some(b.id));
        for other in
            ["JD-20260101-1", "JD-020260101-000001", "JD-20260101-000002", "JD-06", "XX-20260101-000001"]
        {
            assert_eq!(get(&state, other), None, "{other}");
        }
        state.replace(a.id, None);
        state.replace(b.id, None);
        assert_eq!((get(&state, "JD-20260101-000001"), get(&state, "JD-6")), (None, None));
    }

    /// A grid renamed in the config under open cases: they load (and are
    /// counted for the start's warning); closed ones are history.
    #[test]
    fn open_cases_in_a_grid_the_registry_does_not_know_are_loaded_and_counted() {
        let reg = Arc::new(gridline_registry::embedded::jidong().clone());
        let mut loader = Loader::new(reg.clone(), 3);
        for (i, status) in [1, 3, 2].into_iter().enumerate() {
            let mut c = case(&reg, i, (status, 0, 1, 1, false, false, true, 0));
            assert_eq!(c.grid(), Some("nowhere"));
            c.no = CaseNo::new("JD", 20260101, i as u32 + 1);
            loader.push(Arc::new(c));
        }
        assert_eq!(loader.unlisted, 2, "the dispatched and the handling case, not the closed one");
        assert_eq!(loader.first_unlisted, Some(("JD-20260101-000001".into(), "grid", "nowhere".into())));
        let state = Recovery::finish(loader).unwrap();
        assert_eq!(state.cases.len(), 3);
        assert!(state.due_by_grid.iter().all(|g| g.is_empty()));
    }

    #[test]
    fn loading_refuses_an_open_case_of_a_worker_the_registry_does_not_know() {
        let reg = Arc::new(gridline_registry::embedded::jidong().clone());
        let mut c = case(&reg, 0, (1, 0, 1, 1, false, false, false, 0));
        c.assignment.as_mut().unwrap().worker = "W-GONE".into();
        let mut loader = Loader::new(reg, 3);
        Recovery::push(&mut loader, c);
        match Recovery::finish(loader) {
            Err(LoadError::UnknownWorker { no, worker }) => {
                assert_eq!((no.as_str(), worker.as_str()), ("JD-20260101-000001", "W-GONE"))
            }
            other => panic!("expected UnknownWorker, got {:?}", other.map(|_| ())),
        }
    }
}
