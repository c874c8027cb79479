//! The engine thread: batches, group commit, rollback, deadlines.

use std::collections::{HashSet, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use gridline_caselog::{CaseLog, Encoded, LogError, Store, WriteBatch};
use gridline_model::{
    Actor, Caller, Case, CaseId, CaseView, Command, CompactString, Error, Event, EventKind, Hold, Reply, Role,
};
use gridline_registry::Registry;
use gridline_routing::Router;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::commands::AuditRun;
use crate::latency::Latency;
use crate::state::{LoadError, Loader, State};

/// Limits of the engine; each has a sane default.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Commands applied together at most (one batch).
    pub batch_commands_max: usize,
    /// Batches that may queue for the syncer while it syncs; it commits
    /// all that queued with one write and one sync. 1: a sync per batch.
    pub commit_batches_max: usize,
    /// Commands waiting for the engine at most; beyond that, `busy`.
    pub queue_commands_max: usize,
    /// Items in one list reply at most (`limit=` is capped to it; 0 counts as 1).
    pub list_items_max: u32,
    /// Items in a list reply when the client gives no `limit=`.
    pub list_items_default: u32,
    /// Deadline events written per batch at most (the rest wait for the next).
    pub timer_events_max: usize,
    /// Levels of escalation (community lead, township lead, command centre):
    /// steps after a missed claim deadline, and one more after a missed close
    /// deadline, never beyond this.
    pub escalation_levels: u8,
    /// Events one case may have before NOTE is refused (bounds a GET reply).
    pub case_events_max: u32,
    /// Whether a `GET`'s events may be loaded now: the server says no while
    /// its connections hold too many replies their peers have not taken.
    pub history_room: HistoryRoom,
}

/// What the history thread asks of whoever makes `GET` replies (the
/// server): whether there is room for another history now, and, once one
/// is loaded, to count its bytes for as long as the reply holds the
/// returned [`Hold`] (until it is made into its reply's bytes, or dropped).
pub trait HistoryGate: Send + Sync {
    fn room(&self) -> bool;
    fn hold(&self, bytes: usize) -> Hold;
}

/// The history thread's [`HistoryGate`], if any (see
/// [`EngineConfig::history_room`]): with none, there is always room.
#[derive(Clone, Default)]
pub struct HistoryRoom(Option<Arc<dyn HistoryGate>>);

impl HistoryRoom {
    pub fn new(gate: Arc<dyn HistoryGate>) -> HistoryRoom {
        HistoryRoom(Some(gate))
    }
}

impl std::fmt::Debug for HistoryRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "HistoryRoom(given)" } else { "HistoryRoom(always)" })
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            batch_commands_max: 1024,
            commit_batches_max: 8,
            queue_commands_max: 16 * 1024,
            list_items_max: 1000,
            list_items_default: 100,
            timer_events_max: 4096,
            escalation_levels: 3,
            case_events_max: 1000,
            history_room: HistoryRoom::default(),
        }
    }
}

pub type ReplyRx = oneshot::Receiver<Result<Reply, Error>>;
type ReplyTx = oneshot::Sender<Result<Reply, Error>>;

// Jobs and held replies are moved, never stored long: a large variant costs a
// memcpy, where boxing would cost an allocation per command.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Job {
    Command {
        caller: Caller,
        cmd: Command,
        reply: ReplyTx,
    },
    /// Look at deadlines now (the manual clock's way to make time pass).
    Tick {
        reply: oneshot::Sender<usize>,
    },
    /// The token `name` was revoked: refuse its requests from here on.
    Revoke {
        name: CompactString,
        reply: oneshot::Sender<()>,
    },
}

/// Submits commands to the engine. Cheap to clone; the engine stops when the
/// last handle is dropped, after finishing what it was given.
#[derive(Clone)]
pub struct EngineHandle {
    tx: Sender<Job>,
    commits: Arc<CommitStats>,
}

/// What the syncer's commits took, for `STATS`: writing each commit to the
/// store, then the durability barrier, and how many store operations each
/// carried. Commits that failed are not counted.
#[derive(Default)]
pub struct CommitStats {
    /// Writing the commit's batch to the store (`Store::apply`), µs.
    pub write: Latency,
    /// The durability barrier after it (`Store::sync`), µs.
    pub sync: Latency,
    /// Keys written or removed per commit.
    pub ops: Latency,
}

impl EngineHandle {
    /// The syncer's commit figures since start or their last reset.
    pub fn commit_stats(&self) -> &CommitStats {
        &self.commits
    }

    /// Queues a command; the receiver yields its reply once it is durable.
    /// A full queue answers `busy` at once instead of waiting.
    pub fn submit(&self, caller: Caller, cmd: Command) -> Result<ReplyRx, Error> {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Job::Command { caller, cmd, reply }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => {
                Err(Error::new(gridline_model::ErrorCode::Busy, "the engine's queue is full; retry shortly"))
            }
            Err(TrySendError::Disconnected(_)) => Err(Error::unavailable("the engine has stopped")),
        }
    }

    /// Commands submitted that the engine has not taken yet. A command
    /// taken goes into the batch the engine makes next, before it looks at
    /// any outcome of the syncer's (a failure reaches that batch too).
    pub fn queued(&self) -> usize {
        self.tx.len()
    }

    /// Submits and waits (for tools and tests outside an async runtime).
    pub fn call(&self, caller: &Caller, cmd: Command) -> Result<Reply, Error> {
        let rx = self.submit(caller.clone(), cmd)?;
        rx.blocking_recv().map_err(|_| Error::internal("the engine dropped the request"))?
    }

    /// Makes the engine refuse every request of the token `name` it takes
    /// from now on, and waits until every request queued before this one is
    /// done and answered: once it returns, no request made with that token
    /// is carried out any more. (The server refuses a revoked token's new
    /// requests itself; this covers those it had already handed over.)
    pub fn revoke(&self, name: &str) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Revoke { name: name.into(), reply })
            .map_err(|_| Error::unavailable("the engine has stopped"))?;
        rx.blocking_recv().map_err(|_| Error::internal("the engine dropped the revocation"))
    }

    /// Makes the engine look at deadlines now; returns how many events that wrote.
    pub fn tick(&self) -> Result<usize, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job::Tick { reply }).map_err(|_| Error::unavailable("the engine has stopped"))?;
        rx.blocking_recv().map_err(|_| Error::internal("the engine dropped the tick"))
    }
}

/// The running engine thread.
pub struct EngineThread {
    join: JoinHandle<()>,
}

impl EngineThread {
    /// Waits until the engine has answered everything and stopped. Drop every
    /// [`EngineHandle`] first.
    pub fn join(self) {
        if self.join.join().is_err() {
            error!("the engine thread panicked");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot recover the case log")]
    Recover(#[from] LogError),
    #[error("the case log does not fit the registry: {0}")]
    Registry(String),
    #[error("cannot start the engine thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Recovers the state from `log` and starts the engine thread (and its syncer).
pub fn start<S: Store>(
    registry: Arc<Registry>,
    log: CaseLog<S>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
) -> Result<(EngineHandle, EngineThread), StartError> {
    let t0 = std::time::Instant::now();
    let (_, loaded) = log.recover_into(Loader::new(registry.clone(), config.escalation_levels))?;
    let state = loaded.map_err(|e| match e {
        LoadError::UnknownWorker { no, worker } => StartError::Registry(format!(
            "open case {no} is assigned to worker {worker}, who is not in the registry"
        )),
        LoadError::Thread(e) => StartError::Thread(e),
    })?;
    info!(cases = state.cases.len(), ms = t0.elapsed().as_millis() as u64, "recovered the case log");
    let log = Arc::new(log);
    let (tx, rx) = crossbeam_channel::bounded(config.queue_commands_max);
    // Batches wait here while the syncer syncs; the engine applies the next meanwhile.
    let batches_max = config.commit_batches_max.max(1);
    let (commit_tx, commit_rx) = crossbeam_channel::bounded::<Commit>(batches_max);
    let (outcome_tx, outcome_rx) = crossbeam_channel::unbounded::<Outcome>();
    // Unbounded, yet bounded by what submits: each history is a GET taken
    // from the bounded command queue, and each connection bounds its own.
    let (history_tx, history_rx) = crossbeam_channel::unbounded::<History>();
    let history_log = log.clone();
    let historian = std::thread::Builder::new().name("gridline-history".into()).spawn({
        let room = config.history_room.clone();
        move || run_history(&history_log, history_rx, &room)
    })?;
    // Unbounded like the histories: each audit is a command taken from the
    // bounded queue (and the server lets one run at a time).
    let (audit_tx, audit_rx) = crossbeam_channel::unbounded::<Background>();
    let auditor =
        std::thread::Builder::new().name("gridline-audit".into()).spawn(move || run_audits(audit_rx))?;
    let helpers = Helpers { history: history_tx, background: audit_tx };
    let syncer_log = log.clone();
    let stats = Arc::new(CommitStats::default());
    let syncer_stats = stats.clone();
    let syncer_helpers = helpers.clone();
    let syncer = std::thread::Builder::new().name("gridline-syncer".into()).spawn(move || {
        run_syncer(&syncer_log, commit_rx, outcome_tx, batches_max, &syncer_stats, &syncer_helpers)
    })?;
    let router = Router::new(registry.clone());
    let mut engine = Engine {
        registry,
        router,
        log,
        clock,
        config,
        state,
        poisoned: None,
        helpers,
        pipeline: Pipeline {
            commits: Some(commit_tx),
            outcomes: outcome_rx,
            next_id: 0,
            unconfirmed: VecDeque::new(),
            spares: Spares::default(),
        },
        revoked: HashSet::new(),
        now: None,
        failing: None,
    };
    let join = std::thread::Builder::new().name("gridline-engine".into()).spawn(move || {
        engine.run(rx);
        if syncer.join().is_err() {
            error!("the syncer thread panicked");
        }
        // The last sender of histories to read and audits to run: their
        // threads end once they have answered them.
        drop(engine);
        if historian.join().is_err() {
            error!("the history thread panicked");
        }
        if auditor.join().is_err() {
            error!("the audit thread panicked");
        }
        info!("engine stopped: every handle dropped and every command answered");
    })?;
    Ok((EngineHandle { tx, commits: stats }, EngineThread { join }))
}

pub(crate) struct Engine<S: Store> {
    pub registry: Arc<Registry>,
    pub router: Router,
    pub log: Arc<CaseLog<S>>,
    pub clock: Arc<dyn Clock>,
    pub config: EngineConfig,
    pub state: State,
    /// Set when a failed batch could not be undone in the store: writes are
    /// refused until a restart re-reads the log.
    poisoned: Option<String>,
    /// The threads that finish replies off the engine thread.
    helpers: Helpers,
    pipeline: Pipeline,
    /// Names of tokens revoked while the engine ran (a name is never given
    /// to another token): their requests are refused.
    pub(crate) revoked: HashSet<CompactString>,
    /// The time of the write command being applied, read once: its checks
    /// (a deadline passed or not) and the times of its events must agree,
    /// or a claim a microsecond after its deadline would be late with no
    /// missed deadline recorded.
    now: Option<gridline_model::Timestamp>,
    /// The error of the batches that failed since the last one that became
    /// durable, and how many. The first of an error is a warning; the rest
    /// with it are counted (a full disk refuses every batch, and a line for
    /// each would fill the logs, maybe on that disk).
    failing: Option<(String, u64)>,
}

/// Batches handed to the syncer and not yet confirmed durable.
struct Pipeline {
    commits: Option<Sender<Commit>>,
    outcomes: Receiver<Outcome>,
    next_id: u64,
    unconfirmed: VecDeque<Unconfirmed>,
    spares: Spares,
}

/// Emptied event and reply lists of confirmed batches, kept for the next
/// ones. A full batch's lists are about a megabyte; allocated afresh, they
/// grow by doubling (copying) and can come back from the allocator as fresh
/// pages for the kernel to zero, every batch. (On the bench VM the effect
/// was within the noise; the reuse costs nothing.)
#[derive(Default)]
struct Spares {
    events: Vec<Vec<Event>>,
    held: Vec<Vec<Held>>,
}

impl Spares {
    /// A few: enough for the batch being built while others sync; lists
    /// beyond that would only hold memory.
    const KEEP: usize = 3;

    fn keep(&mut self, mut events: Vec<Event>, held: Vec<Held>) {
        events.clear();
        if self.events.len() < Self::KEEP {
            self.events.push(events);
        }
        if self.held.len() < Self::KEEP && held.is_empty() {
            self.held.push(held);
        }
    }
}

/// What the engine keeps of a batch until the syncer confirms it.
pub(crate) struct Unconfirmed {
    id: u64,
    pub events: Vec<Event>,
    undo: Vec<Undo>,
    /// The numbers of the pages its events were written in.
    pages: Range<u64>,
}

/// A batch for the syncer: its encoded writes and the replies they release.
enum Commit {
    Batch {
        id: u64,
        write: Option<WriteBatch>,
        held: Vec<Held>,
    },
    /// The engine has rolled back after a failure: take writes again.
    Resume,
}

enum Outcome {
    /// `spare`: the batch's reply list, emptied, for the engine to reuse.
    Done { id: u64, spare: Vec<Held> },
    /// `applied`: the batch reached the store (the sync of its commit
    /// failed), so it must be reverted there. Every batch of a failed commit
    /// fails, each with its own outcome.
    Failed { id: u64, error: String, held: Vec<Held>, applied: bool },
}

/// A commit slower than this is logged: every reply behind it waited too.
const SLOW_COMMIT: Duration = Duration::from_millis(50);

/// The syncer: writes batches, syncs, releases their replies, in order.
///
/// Whatever batches queued while it synced go into its next commit: one
/// write, one sync, for all of them. So a command waits for at most the
/// sync under way and its own, however many batches the engine made
/// meanwhile (handing batches over one sync each, a command could wait for
/// three). After a failure it fails every batch it is given, unapplied,
/// until the engine has rolled back and says `Resume`.
fn run_syncer<S: Store>(
    log: &CaseLog<S>,
    commits: Receiver<Commit>,
    outcomes: Sender<Outcome>,
    batches_max: usize,
    stats: &CommitStats,
    helpers: &Helpers,
) {
    let mut failed: Option<String> = None;
    let mut group: Vec<(u64, Vec<Held>)> = Vec::new();
    while let Ok(first) = commits.recv() {
        let mut write: Option<WriteBatch> = None;
        for c in std::iter::once(first).chain(commits.try_iter().take(batches_max - 1)) {
            match c {
                Commit::Resume => failed = None,
                Commit::Batch { id, write: w, held } => {
                    if let Some(error) = &failed {
                        let _ =
                            outcomes.send(Outcome::Failed { id, error: error.clone(), held, applied: false });
                        continue;
                    }
                    if let Some(w) = w {
                        match &mut write {
                            // Later writes of the same key win, as they would one batch after another.
                            Some(all) => all.ops.extend(w.ops),
                            None => write = Some(w),
                        }
                    }
                    group.push((id, held));
                }
            }
        }
        if group.is_empty() {
            continue;
        }
        let t0 = std::time::Instant::now();
        let ops = write.as_ref().map_or(0, WriteBatch::len);
        let result = match write {
            None => Ok(()),
            Some(w) => log.write(w).map_err(|e| (e, false)).and_then(|()| {
                let written = t0.elapsed();
                let r = log.sync().map_err(|e| (e, true));
                let total = t0.elapsed();
                if r.is_ok() {
                    stats.write.record(written.as_micros() as u64);
                    stats.sync.record((total - written).as_micros() as u64);
                    stats.ops.record(ops as u64);
                }
                if total > SLOW_COMMIT {
                    warn!(
                        ops,
                        batches = group.len(),
                        write_ms = written.as_millis() as u64,
                        sync_ms = (total - written).as_millis() as u64,
                        "slow commit"
                    );
                }
                r
            }),
        };
        match result {
            Ok(()) => {
                for (id, mut held) in group.drain(..) {
                    for h in held.drain(..) {
                        h.release(helpers);
                    }
                    let _ = outcomes.send(Outcome::Done { id, spare: held });
                }
            }
            Err((e, applied)) => {
                let error = e.to_string();
                failed = Some(error.clone());
                for (id, held) in group.drain(..) {
                    let _ = outcomes.send(Outcome::Failed { id, error: error.clone(), held, applied });
                }
            }
        }
    }
}

/// What a batch has changed, in order, so it can be undone.
pub(crate) enum Undo {
    /// The case as it was before (`None`: it did not exist).
    Case(CaseId, Option<Arc<Case>>),
}

/// The changes of the batch being built.
#[derive(Default)]
pub(crate) struct Batch {
    pub events: Vec<Event>,
    pub undo: Vec<Undo>,
    /// Where the current command's undo entries begin.
    pub command_undo_start: usize,
}

/// A savepoint inside a batch.
#[derive(Clone, Copy)]
pub(crate) struct Mark {
    events: usize,
    undo: usize,
}

impl Batch {
    pub fn mark(&self) -> Mark {
        Mark { events: self.events.len(), undo: self.undo.len() }
    }
}

/// A reply held back until the batch is durable.
#[allow(clippy::large_enum_variant)]
enum Held {
    Write {
        reply: ReplyTx,
        result: Result<Reply, Error>,
        /// The caller and verb of a supervisor's or admin's write, whose
        /// reply may show phone numbers (see [`Shown`]).
        watched: Option<Box<(Caller, &'static str)>>,
    },
    Read {
        caller: Caller,
        cmd: Command,
        reply: ReplyTx,
        result: Result<Reply, Error>,
    },
    /// An `AUDIT`: the cases as of its batch, to be folded by the audit thread.
    Audit {
        caller: Caller,
        cmd: Command,
        reply: ReplyTx,
        run: Result<AuditRun, Error>,
    },
    Tick {
        reply: oneshot::Sender<usize>,
        events: usize,
    },
    Revoked {
        reply: oneshot::Sender<()>,
    },
}

impl Held {
    /// Sends the reply; a `GET`'s goes to the history thread for its events
    /// first, an `AUDIT`'s to the audit thread.
    fn release(self, helpers: &Helpers) {
        let shown = match &self {
            Held::Read { caller, cmd, result: Ok(r), .. } => phones_shown(caller, cmd.verb(), r),
            Held::Write { watched: Some(w), result: Ok(r), .. } => phones_shown(&w.0, w.1, r),
            _ => None,
        };
        if let Some(s) = shown {
            let _ = helpers.background.send(Background::Shown(s));
        }
        match self {
            Held::Read { reply, result: Ok(Reply::Detail { case, .. }), .. } => {
                if let Err(e) = helpers.history.send(History { reply, case }) {
                    let _ = e.0.reply.send(Err(Error::unavailable("the engine has stopped")));
                }
            }
            Held::Audit { reply, run: Ok(run), .. } => {
                if let Err(e) = helpers.background.send(Background::Audit { reply, run }) {
                    if let Background::Audit { reply, .. } = e.0 {
                        let _ = reply.send(Err(Error::unavailable("the engine has stopped")));
                    }
                }
            }
            Held::Audit { reply, run: Err(e), .. } => {
                let _ = reply.send(Err(e));
            }
            Held::Write { reply, result, .. } | Held::Read { reply, result, .. } => {
                let _ = reply.send(result);
            }
            Held::Tick { reply, events } => {
                let _ = reply.send(events);
            }
            Held::Revoked { reply } => {
                let _ = reply.send(());
            }
        }
    }
}

/// The access trail of residents' phone numbers: one line (target
/// `gridline::access`, level info) for each reply released to a supervisor
/// or an admin that shows any unmasked, naming them and the cases (a reply
/// a failed batch replaced is not released). Written by the audit thread,
/// not on the acknowledgement's path: a slow log must not hold replies.
/// An operator sees the numbers of the calls they took, which they wrote
/// down themselves, and workers see them masked: neither is logged.
struct Shown {
    who: String,
    verb: &'static str,
    cases: Vec<gridline_model::CaseNo>,
}

/// What `reply` shows `caller` that the access trail records, if anything.
fn phones_shown(caller: &Caller, verb: &'static str, reply: &Reply) -> Option<Shown> {
    if !matches!(caller.role, Role::Supervisor | Role::Admin) {
        return None;
    }
    let views: &[CaseView] = match reply {
        Reply::Case(v) | Reply::Detail { case: v, .. } | Reply::Accepted { case: v, .. } => {
            std::slice::from_ref(v)
        }
        Reply::Cases { cases, .. } => cases,
        _ => return None,
    };
    let cases: Vec<gridline_model::CaseNo> = views
        .iter()
        .filter(|v| v.reveals_phone() && v.case().intake.phone.is_some())
        .map(|v| v.case().no.clone())
        .collect();
    (!cases.is_empty()).then(|| Shown {
        who: format!("{}:{}", caller.role.as_str(), caller.name),
        verb,
        cases,
    })
}

/// The threads a reply may pass through once its batch is durable.
#[derive(Clone)]
struct Helpers {
    /// `GET`s whose events the history thread reads from the store.
    history: Sender<History>,
    /// `AUDIT`s the audit thread folds, and the access trail it writes.
    background: Sender<Background>,
}

/// The audit thread's work.
enum Background {
    /// An `AUDIT` to fold, with where its reply goes.
    Audit { reply: ReplyTx, run: AuditRun },
    /// A line of the access trail (see [`Shown`]).
    Shown(Shown),
}

/// The audit thread: folds each `AUDIT`'s cases off the engine thread, which
/// only took their snapshot (a reference to each: 18 to 64 ms at 1,000,000
/// cases where the fold takes 111 to 567, docs/performance.md), so writes
/// do not wait for a supervisor's report. The snapshot's references are
/// given back here too, and with them any case the engine has replaced
/// since. It also writes the access trail (see [`Shown`]).
fn run_audits(work: Receiver<Background>) {
    // A supervisor's report yields to the threads an operator's ACCEPT
    // waits for: with two cores, a fold at full priority took one whole and
    // put 0.6 s on the p99 of ACCEPTs made meanwhile (docs/performance.md).
    gridline_caselog::background_priority();
    for w in work {
        let (reply, run) = match w {
            Background::Audit { reply, run } => (reply, run),
            Background::Shown(Shown { who, verb, cases }) => {
                let list = cases.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",");
                info!(
                    target: "gridline::access",
                    who = %who,
                    verb = %verb,
                    count = cases.len(),
                    cases = %list,
                    "residents' phone numbers shown"
                );
                continue;
            }
        };
        // Its connection closed: nobody would read the rows.
        if reply.is_closed() {
            continue;
        }
        let t0 = std::time::Instant::now();
        let rows = run.fold();
        tracing::debug!(rows = rows.len(), ms = t0.elapsed().as_millis() as u64, "an audit folded");
        let _ = reply.send(Ok(Reply::Rows(rows)));
    }
}

/// A `GET` answered but for its events: every one of them up to the case's
/// `last_seq` is in a batch synced before this was sent.
pub(crate) struct History {
    reply: ReplyTx,
    /// The reply's own copy of the case: its page is the page as of the
    /// batch the `GET` was in.
    case: CaseView,
}

/// The history thread: reads each `GET`'s events from the store, off the
/// engine thread (a store read may wait for sled to apply what was synced).
fn run_history<S: Store>(log: &CaseLog<S>, histories: Receiver<History>, room: &HistoryRoom) {
    for History { reply, case } in histories {
        // No room among the replies the server holds: wait until peers take
        // some (a look every millisecond, only ever while that is so).
        while room.0.as_ref().is_some_and(|g| !g.room()) && !reply.is_closed() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Its connection closed: nobody would read the history.
        if reply.is_closed() {
            continue;
        }
        let mut r = history(log, case);
        // Counted from now, wherever the reply waits (behind a writer its
        // peer keeps from writing, say), until it is made or dropped.
        if let (Some(g), Ok(Reply::Detail { events, hold, .. })) = (&room.0, &mut r) {
            *hold = g.hold(weight(events));
        }
        let _ = reply.send(r);
    }
}

/// About the bytes a history takes in memory: each event, and the texts it
/// holds on the heap. (Its reply, once made, is counted by its length.)
fn weight(events: &[Event]) -> usize {
    let texts: usize = events
        .iter()
        .map(|e| match &e.kind {
            EventKind::Accepted { intake, .. } => {
                intake.text.len() + intake.location.address.as_ref().map_or(0, |a| a.len())
            }
            EventKind::Noted { text } => text.len(),
            EventKind::NotedReq { text, req } => text.len() + req.len(),
            EventKind::Returned { reason }
            | EventKind::Reopened { reason }
            | EventKind::Waiting { reason } => reason.len(),
            EventKind::Closed { result } => result.len(),
            EventKind::Feedback { text, .. } => text.as_ref().map_or(0, |t| t.len()),
            EventKind::ExtensionRequested { reason, .. } => reason.len(),
            EventKind::Dispatched { reason, .. } => reason.len(),
            _ => 0,
        })
        .sum();
    texts + std::mem::size_of_val(events)
}

/// The case's events up to `case.last_seq` (later ones may be stored by
/// now), with the phone number as the caller may see it in the case.
fn history<S: Store>(log: &CaseLog<S>, view: CaseView) -> Result<Reply, Error> {
    let case = view.case();
    let mut events = log.events(case).map_err(|e| match e {
        // The storage failing (a full disk, sled stopped after one): a
        // condition of the machine, not a bug; the case's reply says so.
        gridline_caselog::LogError::Store(
            s @ (gridline_caselog::StoreError::Io(_) | gridline_caselog::StoreError::Full),
        ) => Error::unavailable(format!("case {}: its history cannot be read now: {s}", case.no)),
        e => Error::internal(e.to_string()),
    })?;
    events.retain(|e| e.seq <= case.last_seq);
    if events.len() != case.last_seq as usize {
        return Err(Error::internal(format!(
            "case {} has {} of its {} events in the log",
            case.no,
            events.len(),
            case.last_seq
        )));
    }
    for e in &mut events {
        if let EventKind::Accepted { intake, .. } = &mut e.kind {
            intake.phone = view.phone().map(Into::into);
        }
    }
    Ok(Reply::Detail { case: view, events, hold: Hold::default() })
}

impl<S: Store> Engine<S> {
    /// The time: the write command's while one is applied, else the clock's.
    pub(crate) fn now(&self) -> gridline_model::Timestamp {
        self.now.unwrap_or_else(|| self.clock.now())
    }

    fn run(&mut self, rx: Receiver<Job>) {
        let mut jobs = Vec::with_capacity(self.config.batch_commands_max);
        let outcomes = self.pipeline.outcomes.clone();
        loop {
            // Outcomes first: once a command is taken it goes into the next
            // batch, whatever outcome arrives meanwhile (see `queued`).
            while let Ok(o) = self.pipeline.outcomes.try_recv() {
                self.on_outcome(o);
            }
            let wait = self.until_next_timer();
            crossbeam_channel::select! {
                recv(rx) -> job => match job {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                },
                recv(outcomes) -> o => {
                    if let Ok(o) = o {
                        self.on_outcome(o);
                    }
                    continue;
                },
                default(wait) => {},
            }
            while jobs.len() < self.config.batch_commands_max {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.run_batch(&mut jobs);
        }
        // Every handle is gone: let the syncer finish what it has.
        self.pipeline.commits = None;
        while !self.pipeline.unconfirmed.is_empty() {
            match self.pipeline.outcomes.recv() {
                Ok(o) => self.on_outcome(o),
                Err(_) => break,
            }
        }
    }

    fn until_next_timer(&self) -> Duration {
        if self.poisoned.is_some() {
            // No deadline events can be written: do not wake for them.
            return Duration::from_secs(1);
        }
        if !self.clock.passes_by_itself() {
            // A test's clock: waking by itself after the test moved it, the
            // engine would write deadline events the test's own tick was
            // to write (and count).
            return Duration::from_secs(3600);
        }
        let now = self.clock.now();
        match self.state.timers.first() {
            Some(&(t, _)) if t <= now.0 => Duration::ZERO,
            Some(&(t, _)) => Duration::from_millis(((t - now.0) as u64).min(1000)),
            None => Duration::from_secs(1),
        }
    }

    fn run_batch(&mut self, jobs: &mut Vec<Job>) {
        let spares = &mut self.pipeline.spares;
        let mut batch = Batch { events: spares.events.pop().unwrap_or_default(), ..Batch::default() };
        let mut held = spares.held.pop().unwrap_or_default();
        held.reserve(jobs.len());
        for job in jobs.drain(..) {
            match job {
                Job::Command { caller, cmd, reply } => {
                    if cmd.is_write() {
                        let result = match &self.poisoned {
                            Some(why) => Err(Error::unavailable(why.clone())),
                            None => {
                                let mark = batch.mark();
                                batch.command_undo_start = mark.undo;
                                self.now = Some(self.clock.now());
                                let r = self.write(&caller, &cmd, &mut batch);
                                self.now = None;
                                if r.is_err() {
                                    self.rollback(&mut batch, mark);
                                }
                                r
                            }
                        };
                        // Refusals wait too: they may rest on state a batch
                        // still syncing established (a case closed a moment ago).
                        let watched = matches!(caller.role, Role::Supervisor | Role::Admin)
                            .then(|| Box::new((caller, cmd.verb())));
                        held.push(Held::Write { reply, result, watched });
                    } else if let Command::Audit { .. } = cmd {
                        // Its connection gone (the server let go of the
                        // reply): no snapshot for rows nobody will read.
                        if reply.is_closed() {
                            continue;
                        }
                        let run = self.audit_run(&caller, &cmd);
                        held.push(Held::Audit { caller, cmd, reply, run });
                    } else {
                        let result = self.read(&caller, &cmd);
                        held.push(Held::Read { caller, cmd, reply, result });
                    }
                }
                Job::Tick { reply } => {
                    let events = if self.poisoned.is_none() { self.tick(&mut batch) } else { 0 };
                    held.push(Held::Tick { reply, events });
                }
                Job::Revoke { name, reply } => {
                    self.revoked.insert(name);
                    held.push(Held::Revoked { reply });
                }
            }
        }
        if self.poisoned.is_none() {
            self.tick(&mut batch);
        }
        if held.is_empty() && batch.events.is_empty() {
            self.pipeline.spares.keep(batch.events, held);
            return;
        }
        let mut pages = 0..0;
        let write = if batch.events.is_empty() {
            None
        } else {
            match self.encode(&batch) {
                Ok(e) => {
                    pages = e.pages;
                    // A `GET` taken earlier in this batch names the page its
                    // case had then: its events up to then are reached from
                    // the page the case has now, which the history reads.
                    for h in held.iter_mut() {
                        if let Held::Read { result: Ok(Reply::Detail { case, .. }), .. } = h {
                            if let Some(c) = self.state.cases.get(&case.case().id) {
                                case.case().stored_page.set(c.stored_page.get());
                            }
                        }
                    }
                    Some(e.batch)
                }
                Err(e) => {
                    // Nothing reached the store: undo in memory and refuse,
                    // still through the syncer, behind every earlier batch.
                    error!(error = %e, "cannot encode a batch");
                    self.rollback(&mut batch, Mark { events: 0, undo: 0 });
                    held = self.failed(held, &format!("cannot encode the batch ({e})"));
                    None
                }
            }
        };
        let id = self.pipeline.next_id;
        self.pipeline.next_id += 1;
        self.pipeline.unconfirmed.push_back(Unconfirmed {
            id,
            events: batch.events,
            undo: batch.undo,
            pages,
        });
        let commit = Commit::Batch { id, write, held };
        let sent = self.pipeline.commits.as_ref().map(|c| c.send(commit));
        if !matches!(sent, Some(Ok(()))) {
            error!("the syncer has stopped");
            self.poisoned = Some("the storage thread has stopped; restart the server".into());
        }
    }

    /// The batch's events, in pages, and the final state of every case it
    /// touched, each now naming the page of its newest event.
    fn encode(&self, batch: &Batch) -> Result<Encoded, LogError> {
        let cases = &self.state.cases;
        let mut e =
            self.log.encode_events(&batch.events, |id| cases.get(id).map_or(0, |c| c.stored_page.get()))?;
        for &(id, page) in &e.newest {
            if let Some(c) = cases.get(&id) {
                // Set through a shared reference: a reply may hold the case.
                c.stored_page.set(page);
                self.log.put_case(&mut e.batch, c)?;
            }
        }
        Ok(e)
    }

    fn on_outcome(&mut self, o: Outcome) {
        match o {
            Outcome::Done { id, spare } => {
                let u = self.pipeline.unconfirmed.pop_front();
                debug_assert_eq!(u.as_ref().map(|u| u.id), Some(id), "the syncer confirms batches in order");
                if let Some(u) = u {
                    // (A batch of reads alone writes nothing: it says nothing of the store.)
                    if !u.events.is_empty() {
                        if let Some((_, failed)) = self.failing.take() {
                            info!(failed, "batches become durable again");
                        }
                    }
                    self.pipeline.spares.keep(u.events, spare);
                }
            }
            Outcome::Failed { id, error, held, applied } => self.on_failure(id, error, held, applied),
        }
    }

    /// A batch failed to become durable: every later batch fails with it. Wait
    /// for all of them, undo them in memory and in the store (newest first),
    /// let the syncer resume, then answer: writes `unavailable`, reads again.
    fn on_failure(&mut self, first: u64, error: String, held: Vec<Held>, applied: bool) {
        match &mut self.failing {
            Some((same, failed)) if *same == error => {
                *failed += 1;
                tracing::debug!(error = %error, failed = *failed, "a batch failed to become durable; rolling back");
            }
            _ => {
                warn!(error = %error, "a batch failed to become durable; rolling back (further failures with this error are counted until one succeeds)");
                let failed = self.failing.take().map_or(0, |(_, n)| n);
                self.failing = Some((error.clone(), failed + 1));
            }
        }
        let mut failed = vec![(first, held)];
        // The batches of the failed commit reached the store; later ones did not.
        let mut in_store: Vec<u64> = if applied { vec![first] } else { Vec::new() };
        while failed.len() < self.pipeline.unconfirmed.len() {
            match self.pipeline.outcomes.recv() {
                Ok(Outcome::Failed { id, held, applied, .. }) => {
                    failed.push((id, held));
                    if applied {
                        in_store.push(id);
                    }
                }
                Ok(Outcome::Done { id, .. }) => error!(id, "a batch after a failed one was confirmed"),
                Err(_) => break,
            }
        }
        while let Some(u) = self.pipeline.unconfirmed.pop_back() {
            if !in_store.contains(&u.id) {
                let mut b = Batch { events: u.events, undo: u.undo, command_undo_start: 0 };
                self.rollback(&mut b, Mark { events: 0, undo: 0 });
                continue;
            }
            let mut seen = std::collections::HashSet::new();
            let previous: Vec<(CaseId, Option<&Case>)> = u
                .undo
                .iter()
                .filter_map(|Undo::Case(id, old)| seen.insert(*id).then_some((*id, old.as_deref())))
                .collect();
            if let Err(e) = self.log.revert(u.pages.clone(), previous) {
                error!(error = %e, "cannot undo a failed batch in the store; refusing writes until restart");
                self.poisoned = Some(format!(
                    "storage failed and could not be rolled back ({e}); writes are refused until the server restarts"
                ));
            }
            let mut b = Batch { events: u.events, undo: u.undo, command_undo_start: 0 };
            self.rollback(&mut b, Mark { events: 0, undo: 0 });
        }
        if let Some(c) = &self.pipeline.commits {
            let _ = c.send(Commit::Resume);
        }
        let message =
            format!("storage cannot take writes ({error}); the request was not acknowledged: retry (ACCEPT with the same req=)");
        // Every earlier batch is durable and every later one failed: answer now.
        for (_, held) in failed {
            for h in self.failed(held, &message) {
                h.release(&self.helpers);
            }
        }
    }

    /// The answers of a batch that will not be durable: writes fail, reads
    /// are answered again from the rolled-back state.
    fn failed(&self, held: Vec<Held>, message: &str) -> Vec<Held> {
        held.into_iter()
            .map(|h| match h {
                Held::Write { reply, watched, .. } => {
                    Held::Write { reply, result: Err(Error::unavailable(message.to_string())), watched }
                }
                Held::Read { caller, cmd, reply, .. } => {
                    let result = self.read(&caller, &cmd);
                    Held::Read { caller, cmd, reply, result }
                }
                Held::Audit { caller, cmd, reply, .. } => {
                    let run = match reply.is_closed() {
                        true => Err(Error::unavailable("its connection is gone")),
                        false => self.audit_run(&caller, &cmd),
                    };
                    Held::Audit { caller, cmd, reply, run }
                }
                Held::Tick { reply, .. } => Held::Tick { reply, events: 0 },
                Held::Revoked { reply } => Held::Revoked { reply },
            })
            .collect()
    }

    /// Undoes everything after `mark`, newest first.
    pub(crate) fn rollback(&mut self, batch: &mut Batch, mark: Mark) {
        while batch.undo.len() > mark.undo {
            match batch.undo.pop().expect("non-empty") {
                Undo::Case(id, old) => self.state.replace(id, old),
            }
        }
        batch.events.truncate(mark.events);
    }

    /// Records `kind` as the next event of case `id`, applying it through the
    /// lifecycle. The case must exist unless `kind` is `Accepted`.
    pub(crate) fn emit(
        &mut self,
        batch: &mut Batch,
        id: CaseId,
        actor: Actor,
        kind: gridline_model::EventKind,
    ) -> Result<(), Error> {
        let at = self.now();
        if let gridline_model::EventKind::Accepted { .. } = kind {
            let event = Event { case: id, seq: 1, at, actor, kind };
            let case = Case::from_first(&event).map_err(|e| Error::internal(e.to_string()))?;
            fits(&case, &event)?;
            batch.undo.push(Undo::Case(id, None));
            self.state.replace(id, Some(Arc::new(case)));
            batch.events.push(event);
            return Ok(());
        }
        let Some(case) = self.state.cases.get(&id) else {
            return Err(Error::not_found(format!("no case {id}")));
        };
        // A case's history never runs backwards: should the machine's clock
        // be stepped back (NTP, a wrong time set by hand, before a
        // restart), the event takes its case's last time, so a claim is
        // never stamped before its dispatch, nor a close before its claim.
        let at = at.max(case.updated_at);
        let event = Event { case: id, seq: case.last_seq + 1, at, actor, kind };
        // A case created by the current command needs no copy: undoing the
        // command removes it, whatever happened to it since.
        let created_just_now = batch.undo.len() > batch.command_undo_start
            && matches!(batch.undo.last(), Some(Undo::Case(u, None)) if *u == id);
        let before = (!created_just_now).then(|| case.clone());
        // `apply` leaves the case unchanged when it refuses the event.
        self.state
            .update(&id, |c| c.apply(&event))
            .expect("case exists")
            .map_err(|e| Error::conflict(e.to_string()))?;
        if let Some(before) = before {
            batch.undo.push(Undo::Case(id, Some(before)));
        }
        // Undone with the command (the undo entry is in) if it does not fit.
        fits(&self.state.cases[&id], &event)?;
        batch.events.push(event);
        Ok(())
    }
}

/// Refuses an event that would make the case, or the event itself, too
/// large to store (texts near their limits in many fields of one case).
fn fits(case: &Case, event: &Event) -> Result<(), Error> {
    gridline_caselog::codec::check_fits(case, event).map_err(|e| {
        Error::new(
            gridline_model::ErrorCode::TooLarge,
            format!(
                "case {} cannot take this: its stored record would be too large ({e}); shorten the text (a NOTE: its req=, which the record keeps)",
                case.no
            ),
        )
    })
}
