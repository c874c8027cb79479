//! The engine tests' rig: an engine over the in-memory store, with a manual clock.
#![allow(dead_code)]

use std::sync::Arc;

use gridline_caselog::{CaseLog, MemStore};
use gridline_engine::{EngineConfig, EngineHandle, EngineThread, ManualClock};
use gridline_model::{Caller, Case, CaseRef, Command, Intake, Location, Reply, Role, Timestamp};
use gridline_registry::Registry;

pub fn registry() -> Arc<Registry> {
    Arc::new(gridline_registry::embedded::jidong().clone())
}

pub fn caller(role: Role, name: &str) -> Caller {
    Caller { role, name: name.into(), worker: None }
}

pub fn worker(id: &str) -> Caller {
    Caller { role: Role::Worker, name: id.into(), worker: Some(id.into()) }
}

pub struct Rig {
    pub store: MemStore,
    pub clock: Arc<ManualClock>,
    pub engine: Option<EngineHandle>,
    pub thread: Option<EngineThread>,
    pub reg: Arc<Registry>,
}

/// 2026-11-24 10:00 in Jidong: full-time workers and day-shift part-timers are on duty.
pub fn ten_am() -> Timestamp {
    Timestamp::parse("2026-11-24T10:00:00+08:00", 480).unwrap()
}

impl Rig {
    pub fn new() -> Rig {
        Rig::with(EngineConfig::default())
    }

    pub fn with(config: EngineConfig) -> Rig {
        Rig::on(MemStore::new(), Arc::new(ManualClock::new(ten_am())), config)
    }

    pub fn on(store: MemStore, clock: Arc<ManualClock>, config: EngineConfig) -> Rig {
        let reg = registry();
        let log = CaseLog::open(store.clone(), Some(&reg.county.code)).unwrap();
        let (engine, thread) = gridline_engine::start(reg.clone(), log, clock.clone(), config).unwrap();
        Rig { store, clock, engine: Some(engine), thread: Some(thread), reg }
    }

    pub fn call(&self, c: &Caller, cmd: Command) -> Result<Reply, gridline_model::Error> {
        self.engine.as_ref().unwrap().call(c, cmd)
    }

    pub fn tick(&self) -> usize {
        self.engine.as_ref().unwrap().tick().unwrap()
    }

    /// Stops the engine and starts another on what a crash would leave.
    pub fn crash_and_restart(mut self) -> Rig {
        drop(self.engine.take());
        self.thread.take().unwrap().join();
        Rig::on(self.store.crash(), self.clock.clone(), EngineConfig::default())
    }

    pub fn accept_at_grid(&self, text: &str) -> Case {
        let grid = self.reg.grids.iter().find(|g| g.kind != gridline_registry::GridKind::Dedicated).unwrap();
        let intake = Intake {
            text: text.into(),
            category: Some("sanitation".into()),
            location: Location { grid: Some(grid.code.clone().into()), ..Default::default() },
            phone: Some("13812345678".into()),
            ..Default::default()
        };
        match self.call(&caller(Role::Operator, "operator"), Command::Accept(intake)).unwrap() {
            Reply::Accepted { case, .. } => case.case().clone(),
            r => panic!("unexpected {r:?}"),
        }
    }

    pub fn get(&self, no: &str) -> (Case, Vec<gridline_model::Event>) {
        match self.call(&caller(Role::Supervisor, "sup"), Command::Get { case: CaseRef::parse(no) }).unwrap()
        {
            Reply::Detail { case, events, .. } => (case.case().clone(), events),
            r => panic!("unexpected {r:?}"),
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        drop(self.engine.take());
        if let Some(t) = self.thread.take() {
            t.join();
        }
    }
}

/// Waits until `done` holds; panics after a minute (something is stuck).
pub fn wait_until(what: &str, done: impl Fn() -> bool) {
    let t0 = std::time::Instant::now();
    while !done() {
        assert!(t0.elapsed() < std::time::Duration::from_secs(60), "never happened: {what}");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
