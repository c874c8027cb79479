//! The engine thread: batches, group commit, rollback, deadlines.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use gridline_caselog::{CaseLog, LogError, Store};
use gridline_model::{Actor, Caller, Case, CaseId, Command, Error, Event, Reply};
use gridline_registry::Registry;
use gridline_routing::Router;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::state::State;

/// Limits of the engine; each has a sane default.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Commands applied and synced together at most.
    pub batch_commands_max: usize,
    /// Commands waiting for the engine at most; beyond that, `busy`.
    pub queue_commands_max: usize,
    /// Items in one list reply at most (`limit=` is capped to it).
    pub list_items_max: u32,
    /// Items in a list reply when the client gives no `limit=`.
    pub list_items_default: u32,
    /// Deadline events written per batch at most (the rest wait for the next).
    pub timer_events_max: usize,
    /// Escalation steps after a missed claim deadline.
    pub escalation_levels: u8,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            batch_commands_max: 1024,
            queue_commands_max: 16 * 1024,
            list_items_max: 1000,
            list_items_default: 100,
            timer_events_max: 4096,
            escalation_levels: 3,
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
}

/// Submits commands to the engine. Cheap to clone; the engine stops when the
/// last handle is dropped, after finishing what it was given.
#[derive(Clone)]
pub struct EngineHandle {
    tx: Sender<Job>,
}

impl EngineHandle {
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

    /// Submits and waits (for tools and tests outside an async runtime).
    pub fn call(&self, caller: &Caller, cmd: Command) -> Result<Reply, Error> {
        let rx = self.submit(caller.clone(), cmd)?;
        rx.blocking_recv().map_err(|_| Error::internal("the engine dropped the request"))?
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

/// Recovers the state from `log` and starts the engine thread.
pub fn start<S: Store>(
    registry: Arc<Registry>,
    log: CaseLog<S>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
) -> Result<(EngineHandle, EngineThread), StartError> {
    let t0 = std::time::Instant::now();
    let recovered = log.recover()?;
    let mut state = State::new(&registry, config.escalation_levels);
    for case in recovered.cases {
        if let Some(w) = case.worker() {
            if case.status.is_open() && state.worker_idx(w).is_none() {
                return Err(StartError::Registry(format!(
                    "open case {} is assigned to worker {w}, who is not in the registry",
                    case.no
                )));
            }
        }
        state.replace(case.id, Some(case));
    }
    info!(cases = state.cases.len(), ms = t0.elapsed().as_millis() as u64, "recovered the case log");
    let (tx, rx) = crossbeam_channel::bounded(config.queue_commands_max);
    let router = Router::new(registry.clone());
    let mut engine = Engine { registry, router, log, clock, config, state, poisoned: None };
    let join = std::thread::Builder::new().name("gridline-engine".into()).spawn(move || engine.run(rx))?;
    Ok((EngineHandle { tx }, EngineThread { join }))
}

pub(crate) struct Engine<S: Store> {
    pub registry: Arc<Registry>,
    pub router: Router,
    pub log: CaseLog<S>,
    pub clock: Arc<dyn Clock>,
    pub config: EngineConfig,
    pub state: State,
    /// Set when a failed batch could not be undone in the store: writes are
    /// refused until a restart re-reads the log.
    poisoned: Option<String>,
}

/// What a batch has changed, in order, so it can be undone.
pub(crate) enum Undo {
    /// The case as it was before (`None`: it did not exist).
    Case(CaseId, Option<Box<Case>>),
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
    Write { reply: ReplyTx, result: Result<Reply, Error> },
    Read { caller: Caller, cmd: Command, reply: ReplyTx, result: Result<Reply, Error> },
    Tick { reply: oneshot::Sender<usize>, events: usize },
}

impl<S: Store> Engine<S> {
    fn run(&mut self, rx: Receiver<Job>) {
        let mut jobs = Vec::with_capacity(self.config.batch_commands_max);
        loop {
            let wait = self.until_next_timer();
            match rx.recv_timeout(wait) {
                Ok(job) => jobs.push(job),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while jobs.len() < self.config.batch_commands_max {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.run_batch(&mut jobs);
        }
        info!("engine stopped: every handle dropped and every command answered");
    }

    fn until_next_timer(&self) -> Duration {
        let now = self.clock.now();
        match self.state.timers.first() {
            Some(&(t, _)) if t <= now.0 => Duration::ZERO,
            Some(&(t, _)) => Duration::from_millis(((t - now.0) as u64).min(1000)),
            None => Duration::from_secs(1),
        }
    }

    fn run_batch(&mut self, jobs: &mut Vec<Job>) {
        let mut batch = Batch::default();
        let mut held = Vec::with_capacity(jobs.len());
        for job in jobs.drain(..) {
            match job {
                Job::Command { caller, cmd, reply } => {
                    if cmd.is_write() {
                        let result = match &self.poisoned {
                            Some(why) => Err(Error::unavailable(why.clone())),
                            None => {
                                let mark = batch.mark();
                                batch.command_undo_start = mark.undo;
                                let r = self.write(&caller, &cmd, &mut batch);
                                if r.is_err() {
                                    self.rollback(&mut batch, mark);
                                }
                                r
                            }
                        };
                        match result {
                            // Refusals depend on nothing unwritten: answer now.
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                            ok => held.push(Held::Write { reply, result: ok }),
                        }
                    } else {
                        let result = self.read(&caller, &cmd);
                        held.push(Held::Read { caller, cmd, reply, result });
                    }
                }
                Job::Tick { reply } => {
                    let events = if self.poisoned.is_none() { self.tick(&mut batch) } else { 0 };
                    held.push(Held::Tick { reply, events });
                }
            }
        }
        if self.poisoned.is_none() {
            self.tick(&mut batch);
        }
        let outcome = if batch.events.is_empty() { Ok(()) } else { self.commit(&batch) };
        match outcome {
            Ok(()) => {
                for h in held {
                    match h {
                        Held::Write { reply, result } | Held::Read { reply, result, .. } => {
                            let _ = reply.send(result);
                        }
                        Held::Tick { reply, events } => {
                            let _ = reply.send(events);
                        }
                    }
                }
            }
            Err(e) => {
                let message = format!(
                    "storage cannot take writes ({e}); the request was not acknowledged: retry (ACCEPT with the same req=)"
                );
                warn!(error = %e, events = batch.events.len(), "batch failed; rolled back");
                self.rollback(&mut batch, Mark { events: 0, undo: 0 });
                for h in held {
                    match h {
                        Held::Write { reply, .. } => {
                            let _ = reply.send(Err(Error::unavailable(message.clone())));
                        }
                        Held::Read { caller, cmd, reply, .. } => {
                            let _ = reply.send(self.read(&caller, &cmd));
                        }
                        Held::Tick { reply, .. } => {
                            let _ = reply.send(0);
                        }
                    }
                }
            }
        }
    }

    /// Writes the batch and syncs. On failure, the store is put back as it
    /// was (or the engine refuses writes until restart if even that fails).
    fn commit(&mut self, batch: &Batch) -> Result<(), LogError> {
        let cases: Vec<&Case> = {
            let mut seen = std::collections::HashSet::new();
            batch
                .events
                .iter()
                .rev()
                .filter(|e| seen.insert(e.case))
                .filter_map(|e| self.state.cases.get(&e.case))
                .collect()
        };
        self.log.append(&batch.events, cases)?;
        if let Err(e) = self.log.sync() {
            let mut seen = std::collections::HashSet::new();
            let previous = batch.undo.iter().filter_map(|u| match u {
                Undo::Case(id, old) if seen.insert(*id) => Some((*id, old.as_deref())),
                _ => None,
            });
            if let Err(e2) = self.log.revert(&batch.events, previous) {
                error!(error = %e2, "cannot undo a failed batch in the store; refusing writes until restart");
                self.poisoned = Some(format!(
                    "storage failed and could not be rolled back ({e2}); writes are refused until the server restarts"
                ));
            }
            return Err(e);
        }
        Ok(())
    }

    /// Undoes everything after `mark`, newest first.
    fn rollback(&mut self, batch: &mut Batch, mark: Mark) {
        while batch.undo.len() > mark.undo {
            match batch.undo.pop().expect("non-empty") {
                Undo::Case(id, old) => self.state.replace(id, old.map(|b| *b)),
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
        let at = self.clock.now();
        if let gridline_model::EventKind::Accepted { .. } = kind {
            let event = Event { case: id, seq: 1, at, actor, kind };
            let case = Case::from_first(&event).map_err(|e| Error::internal(e.to_string()))?;
            batch.undo.push(Undo::Case(id, None));
            self.state.replace(id, Some(case));
            batch.events.push(event);
            return Ok(());
        }
        let Some(case) = self.state.cases.get(&id) else {
            return Err(Error::not_found(format!("no case {id}")));
        };
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
            batch.undo.push(Undo::Case(id, Some(Box::new(before))));
        }
        batch.events.push(event);
        Ok(())
    }
}
