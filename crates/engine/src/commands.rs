//! One handler per command: authorization, validation, events, reply.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use gridline_caselog::Store;
use gridline_model::reply::clip;
use gridline_model::{
    format_compact, Actor, Caller, Case, CaseId, CaseNo, CaseRef, CaseView, CategorySource, Command,
    CompactString, Deadline, Decision, DurationMs, Error, EventKind, Intake, NoteReq, Page, Reply, Role,
    Status, Timestamp,
};
use gridline_registry::{Handling, WorkerIdx, WorkerKind};
use gridline_routing::{RouteRequest, Routed};

use crate::engine::{Batch, Engine};
use crate::state::DueKey;

/// How far ahead an extension may reach: a year.
const EXTEND_MAX: DurationMs = DurationMs(366 * 86_400_000);

fn actor(c: &Caller) -> Actor {
    Actor { role: c.role, name: c.worker.as_deref().unwrap_or(&c.name).into() }
}

/// Which roles may use a verb. Admins may do what supervisors may.
fn allow(caller: &Caller, roles: &[Role], verb: &str) -> Result<(), Error> {
    let ok =
        roles.contains(&caller.role) || (caller.role == Role::Admin && roles.contains(&Role::Supervisor));
    if ok {
        Ok(())
    } else {
        Err(Error::not_allowed(verb, caller.role))
    }
}

fn is_supervisor(c: &Caller) -> bool {
    matches!(c.role, Role::Supervisor | Role::Admin)
}

impl<S: Store> Engine<S> {
    /// The case a client names, or `not_found`.
    fn resolve(&self, r: &CaseRef) -> Result<CaseId, Error> {
        let id = match r {
            CaseRef::Id(id) => self.state.cases.contains_key(id).then_some(*id),
            CaseRef::No(no) => self.state.by_no.get(no),
        };
        // A number is what the client typed; an id is always 36 characters.
        let shown = match r {
            CaseRef::No(no) => clip(&no.0),
            CaseRef::Id(id) => id.to_string(),
        };
        id.ok_or_else(|| Error::not_found(format!("no case `{shown}`")))
    }

    /// The case, if `caller` may act on it as its worker.
    fn own_case(&self, caller: &Caller, r: &CaseRef, verb: &str) -> Result<CaseId, Error> {
        allow(caller, &[Role::Worker], verb)?;
        let id = self.resolve(r)?;
        let case = &self.state.cases[&id];
        match (case.worker(), caller.worker.as_deref()) {
            (Some(w), Some(me)) if w == me && case.status.is_open() => Ok(id),
            // Theirs, but its state does not allow it (as a claim of a
            // closed case is for anyone else who may claim).
            (Some(w), Some(me)) if w == me => Err(Error::conflict(format!(
                "case {} is closed (a resident not satisfied at the return visit reopens it)",
                case.no
            ))),
            _ => Err(Error::forbidden(format!("case {} is not assigned to you", case.no))),
        }
    }

    /// The case as `caller` may see it, shared, not copied: the phone is
    /// masked except for the operator who took the call and supervisors.
    fn view(&self, caller: &Caller, case: &Arc<Case>) -> CaseView {
        let reveal = is_supervisor(caller) || (caller.role == Role::Operator && caller.name == case.operator);
        CaseView::new(case.clone(), reveal)
    }

    fn view_id(&self, caller: &Caller, id: &CaseId) -> CaseView {
        self.view(caller, &self.state.cases[id])
    }

    /// A request of a token revoked since the server let it through.
    fn refuse_revoked(&self, caller: &Caller) -> Result<(), Error> {
        if !self.revoked.is_empty() && self.revoked.contains(caller.name.as_str()) {
            return Err(Error::new(
                gridline_model::ErrorCode::Unauthenticated,
                format!("the token `{}` was revoked; AUTH with another", caller.name),
            ));
        }
        Ok(())
    }

    pub(crate) fn write(
        &mut self,
        caller: &Caller,
        cmd: &Command,
        batch: &mut Batch,
    ) -> Result<Reply, Error> {
        self.refuse_revoked(caller)?;
        match cmd {
            Command::Accept(intake) => self.accept(caller, intake, batch),
            Command::Claim { case } => {
                let id = self.own_case(caller, case, "CLAIM")?;
                self.settle(batch, id)?;
                self.emit(batch, id, actor(caller), EventKind::Claimed)?;
                Ok(Reply::Case(self.view_id(caller, &id)))
            }
            Command::Note { case, text, req } => {
                let id = self.own_case(caller, case, "NOTE")?;
                let c = &self.state.cases[&id];
                if let Some(r) = req {
                    if let Some(kept) = c.note_req(&actor(caller), r) {
                        // A retry is the same note; the same id for another
                        // text is the client's mistake, and answering it as
                        // stored would lose the new note without a word.
                        if kept.text_hash != NoteReq::hash_text(text) {
                            return Err(Error::conflict(format!(
                                "req={} was already used for another note on case {}: \
                                 a retry must send the same text, a new note needs a new req",
                                clip(r),
                                c.no
                            )));
                        }
                        return Ok(Reply::Case(self.view_id(caller, &id)));
                    }
                }
                if c.last_seq >= self.config.case_events_max {
                    return Err(Error::conflict(format!(
                        "case {} already has {} events; no more notes (GET lists them all)",
                        c.no, c.last_seq
                    )));
                }
                let text = text.as_str().into();
                let kind = match req {
                    Some(r) => EventKind::NotedReq { text, req: r.as_str().into() },
                    None => EventKind::Noted { text },
                };
                self.emit(batch, id, actor(caller), kind)?;
                Ok(Reply::Case(self.view_id(caller, &id)))
            }
            Command::Close { case, result } => {
                let id = self.own_case(caller, case, "CLOSE")?;
                self.settle(batch, id)?;
                self.emit(batch, id, actor(caller), EventKind::Closed { result: result.as_str().into() })?;
                Ok(Reply::Case(self.view_id(caller, &id)))
            }
            Command::Return { case, reason } => {
                let id = self.own_case(caller, case, "RETURN")?;
                // Or the returned case would leave without its claim-overdue
                // flag (docs/audit.md: walking away from a late case does not
                // clear it).
                self.settle(batch, id)?;
                self.emit(batch, id, actor(caller), EventKind::Returned { reason: reason.as_str().into() })?;
                self.route_again(batch, id)?;
                Ok(Reply::Case(self.view_id(caller, &id)))
            }
            Command::Feedback { case, satisfied, score, text } => {
                allow(caller, &[Role::Operator], "FEEDBACK")?;
                let id = self.resolve(case)?;
                // Two operators calling the resident back: the second learns
                // what the first recorded, not only the case's state.
                let c = &self.state.cases[&id];
                if let (true, Some(f)) = (c.status.is_open(), &c.feedback) {
                    return Err(Error::conflict(format!(
                        "case {} was reopened by the return visit recorded at {} (not satisfied); the next visit is recorded once it is closed again",
                        c.no,
                        f.at.rfc3339(self.registry.county.utc_offset_min)
                    )));
                }
                let kind = EventKind::Feedback {
                    satisfied: *satisfied,
                    score: *score,
                    text: text.as_deref().map(Into::into),
                };
                self.emit(batch, id, actor(caller), kind)?;
                if !satisfied {
                    let reason = text.clone().unwrap_or_else(|| "the resident is not satisfied".into());
                    self.emit(batch, id, actor(caller), EventKind::Reopened { reason: reason.into() })?;
                    self.route_again(batch, id)?;
                }
                Ok(Reply::Case(self.view_id(caller, &id)))
            }
            Command::Extend { case, until, reason } => {
                let id = self.own_case(caller, case, "EXTEND")?;
                self.settle(batch, id)?;
                let until = Timestamp::parse(until, self.registry.county.utc_offset_min)
                    .map_err(|e| Error::bad_request(format!("until: {e}")))?;
                let c = &self.state.cases[&id];
                let now = self.now();
                // 延期 is asked for within the time limit: an extension
                // granted after the deadline would count a late case as
                // closed on time (docs/audit.md).
                if let Some(due) = c.due_close.filter(|&d| d < now) {
                    return Err(Error::conflict(format!(
                        "the close deadline {} has passed: an extension must be asked for before it",
                        due.rfc3339(self.registry.county.utc_offset_min)
                    )));
                }
                if until <= now || c.due_close.is_some_and(|d| until <= d) {
                    return Err(Error::bad_request(
                        "until: must be later than now and than the current close deadline",
                    ));
                }
                // A mistyped year (2062 for 2026) would take the case out of
                // every overdue list and escalation for good.
                if until > now.plus(EXTEND_MAX) {
                    return Err(Error::bad_request(format!(
                        "until: at most {} days ahead (until {})",
                        EXTEND_MAX.0 / 86_400_000,
                        now.plus(EXTEND_MAX).rfc3339(self.registry.county.utc_offset_min)
                    )));
                }
                self.emit(
                    batch,
                    id,
                    actor(caller),
                    EventKind::ExtensionRequested { until, reason: reason.as_str().into() },
                )?;
                Ok(Reply::Case(self.view_id(caller, &id)))
            }
            Command::DecideExtension { case, approve, reason } => {
                allow(caller, &[Role::Supervisor], "EXTEND approve=")?;
                let id = self.resolve(case)?;
                let Some(req) = self.state.cases[&id].extension.clone() else {
                    return Err(Error::conflict("no extension is waiting for a decision"));
                };
                // Granting a time already past would set a deadline missed at once.
                if *approve && req.until <= self.now() {
                    return Err(Error::conflict(format!(
                        "the extension asked for {}, which has passed: refuse it (approve=no) and let the worker ask again",
                        req.until.rfc3339(self.registry.county.utc_offset_min)
                    )));
                }
                // A request from before the limit on asking, with a mistyped year.
                if *approve && req.until > self.now().plus(EXTEND_MAX) {
                    return Err(Error::conflict(format!(
                        "the extension asked for {}, more than {} days ahead: refuse it (approve=no) and let \
                         the worker ask again",
                        req.until.rfc3339(self.registry.county.utc_offset_min),
                        EXTEND_MAX.0 / 86_400_000
                    )));
                }
                // An approval moves the close deadline: a miss of the old
                // one is recorded (and escalated) first.
                self.settle(batch, id)?;
                let kind = EventKind::ExtensionDecided {
                    approved: *approve,
                    until: req.until,
                    reason: reason.as_deref().map(Into::into),
                };
                self.emit(batch, id, actor(caller), kind)?;
                Ok(Reply::Case(self.view_id(caller, &id)))
            }
            Command::Dispatch { case, worker } => {
                allow(caller, &[Role::Supervisor], "DISPATCH")?;
                let id = self.resolve(case)?;
                self.settle(batch, id)?;
                self.dispatch_manually(caller, id, worker, batch)?;
                Ok(Reply::Case(self.view_id(caller, &id)))
            }
            other => Err(Error::internal(format!("{} is not a write", other.verb()))),
        }
    }

    /// Answers a query from the state in memory. `GET`'s events are left
    /// out: the history thread reads them from the store once the reply is
    /// released.
    pub(crate) fn read(&self, caller: &Caller, cmd: &Command) -> Result<Reply, Error> {
        self.refuse_revoked(caller)?;
        match cmd {
            Command::Route(intake) => {
                allow(caller, &[Role::Operator, Role::Supervisor], "ROUTE")?;
                self.router.validate(intake).map_err(|e| Error::bad_request(e.to_string()))?;
                let routed = self.route(intake, self.now(), &[]);
                Ok(Reply::Routed(routed.decision))
            }
            Command::Get { case } => {
                let id = self.resolve(case)?;
                let c = &self.state.cases[&id];
                let ok = match caller.role {
                    Role::Operator | Role::Supervisor | Role::Admin => true,
                    Role::Worker => c.worker().is_some() && c.worker() == caller.worker.as_deref(),
                    Role::System => false,
                };
                if !ok {
                    return Err(Error::forbidden(format!("case {} is not assigned to you", c.no)));
                }
                // The history is read from the store once this reply is
                // released, off the engine thread (see `history`), from the
                // page this copy names: its own copy, since the engine's
                // names newer pages as later batches are encoded.
                let copy = self.view(caller, &Arc::new(Case::clone(c)));
                Ok(Reply::Detail { case: copy, events: Vec::new(), hold: Default::default() })
            }
            Command::Pull { worker, page } => {
                allow(caller, &[Role::Worker, Role::Supervisor], "PULL")?;
                let who = match (caller.role, worker) {
                    (Role::Worker, Some(w)) if Some(w) != caller.worker.as_ref() => {
                        return Err(Error::forbidden("workers pull their own cases only"))
                    }
                    (Role::Worker, _) => caller.worker.clone().unwrap_or_default(),
                    (_, Some(w)) => w.clone(),
                    // A supervisor's whole queue: every dispatched or
                    // handling case, whoever has it.
                    (_, None) => return self.page(caller, &self.state.by_due, None, page, |_| true),
                };
                let w = self
                    .registry
                    .worker_idx(&who)
                    .ok_or_else(|| Error::not_found(format!("worker: no worker `{}`", clip(&who))))?;
                self.page(caller, &self.state.by_worker[w.ix()], None, page, |_| true)
            }
            Command::Overdue { township, grid, page } => {
                allow(caller, &[Role::Supervisor], "OVERDUE")?;
                let reg = &self.registry;
                let township_ix = known("township", township.as_deref(), |t| reg.township_idx(t))?;
                let grid_ix = known("grid", grid.as_deref(), |g| reg.grid_idx(g))?;
                let now = self.now().0;
                // The narrowest index that holds every match; the filter below still applies.
                let index = match (grid_ix, township_ix) {
                    (Some(g), _) => &self.state.due_by_grid[g.ix()],
                    (None, Some(t)) => &self.state.due_by_township[t.ix()],
                    (None, None) => &self.state.by_due,
                };
                self.page(caller, index, Some((now, CaseId(uuid::Uuid::nil()))), page, |c| {
                    township.as_deref().is_none_or(|t| c.township.as_deref() == Some(t))
                        && grid.as_deref().is_none_or(|g| c.grid() == Some(g))
                })
            }
            // (`AUDIT` goes through `audit_run`: its fold is the audit thread's.)
            other => Err(Error::internal(format!("{} is not an engine read", other.verb()))),
        }
    }

    /// Checks an `AUDIT` and takes what its fold needs: a reference to every
    /// case as it is now (the engine replaces a case it changes rather than
    /// change one a reference is held to), and the time it is judged at.
    pub(crate) fn audit_run(&self, caller: &Caller, cmd: &Command) -> Result<AuditRun, Error> {
        self.refuse_revoked(caller)?;
        let Command::Audit { by, from, to } = cmd else {
            return Err(Error::internal(format!("{} is not an AUDIT", cmd.verb())));
        };
        allow(caller, &[Role::Supervisor], "AUDIT")?;
        let off = self.registry.county.utc_offset_min;
        let parse = |name: &str, v: &Option<String>| -> Result<Option<Timestamp>, Error> {
            v.as_deref()
                .map(|s| Timestamp::parse(s, off).map_err(|e| Error::bad_request(format!("{name}: {e}"))))
                .transpose()
        };
        let (from, to) = (parse("from", from)?, parse("to", to)?);
        if gridline_audit::window_is_empty(from, to) {
            return Err(Error::bad_request(
                "to: must be later than from (the window is from= inclusive to to= exclusive)",
            ));
        }
        let query = gridline_audit::Query { by: *by, from, to, now: self.now(), utc_offset_min: off };
        let t0 = std::time::Instant::now();
        let cases: Vec<Arc<Case>> = self.state.cases.values().cloned().collect();
        tracing::debug!(
            cases = cases.len(),
            us = t0.elapsed().as_micros() as u64,
            "an audit's snapshot taken"
        );
        Ok(AuditRun { cases, query })
    }

    /// A page of cases from an ordered index, those before `below` (all
    /// when `None`), after the cursor `page.after`: the walk starts at the
    /// cursor, so a deep page costs what the page holds, not what lies
    /// before it.
    fn page(
        &self,
        caller: &Caller,
        index: &BTreeSet<DueKey>,
        below: Option<DueKey>,
        page: &Page,
        keep: impl Fn(&Case) -> bool,
    ) -> Result<Reply, Error> {
        // At least one item, whatever the configured maximum.
        let max = self.config.list_items_max.max(1);
        let limit = page.limit.unwrap_or(self.config.list_items_default).clamp(1, max) as usize;
        let after = page.after.as_deref().map(parse_cursor).transpose()?;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let to = below.map_or(Bound::Unbounded, Bound::Excluded);
        // A cursor at or past the end (any value a client sends) is an
        // empty page; `range` would panic on bounds that cross.
        let keys = match (after, below) {
            (Some(a), Some(b)) if a >= b => None,
            _ => Some(index.range((from, to))),
        };
        let mut cases = Vec::new();
        let mut next = None;
        for key in keys.into_iter().flatten() {
            let c = &self.state.cases[&key.1];
            if !keep(c) {
                continue;
            }
            if cases.len() == limit {
                next = Some(cursor(cases.last().map(|(k, _)| *k).expect("limit >= 1")));
                break;
            }
            cases.push((*key, c));
        }
        Ok(Reply::Cases { cases: cases.into_iter().map(|(_, c)| self.view(caller, c)).collect(), next })
    }

    /// Whether a retry's intake is the stored one: the same fields, a
    /// category named the same or by another of its names (`供水` for
    /// `water`, as the docs let an operator write it).
    fn same_intake(&self, stored: &Intake, retry: &Intake) -> bool {
        let same_category = match (stored.category.as_deref(), retry.category.as_deref()) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a == b
                    || matches!((self.router.category_idx(a), self.router.category_idx(b)), (Some(x), Some(y)) if x == y)
            }
            _ => false,
        };
        let fields = |i: &Intake| Intake { category: None, ..i.clone() };
        same_category && fields(stored) == fields(retry)
    }

    fn route(&self, intake: &Intake, at: Timestamp, exclude: &[CompactString]) -> Routed {
        self.router.route(&RouteRequest { intake, at, exclude }, &self.state.loads)
    }

    fn accept(&mut self, caller: &Caller, intake: &Intake, batch: &mut Batch) -> Result<Reply, Error> {
        allow(caller, &[Role::Operator], "ACCEPT")?;
        if let Some(r) = &intake.req {
            if let Some(id) = self.state.by_req.get(&(caller.name.as_str().into(), r.clone())) {
                // A retry is the same request; the same id for another one
                // is the client's mistake, and answering it with this case
                // would drop the resident's new request without a word.
                if !self.same_intake(&self.state.cases[id].intake, intake) {
                    return Err(Error::conflict(format!(
                        "req={} was already used for case {} with a different request: \
                         a retry must send the same fields, a new request needs a new req",
                        clip(r),
                        self.state.cases[id].no
                    )));
                }
                let case = self.view_id(caller, id);
                let decision = decision_of(case.case());
                return Ok(Reply::Accepted { case, decision, duplicate: true });
            }
        }
        self.router.validate(intake).map_err(|e| Error::bad_request(e.to_string()))?;
        let now = self.now();
        let day = now.day_number(self.registry.county.utc_offset_min);
        let seq = self.state.day_max.get(&day).copied().unwrap_or(0) + 1;
        let no = CaseNo::new(&self.registry.county.code, day, seq);
        let id = CaseId::new_at(now);
        let routed = self.route(intake, now, &[]);
        let kind = EventKind::Accepted {
            no,
            intake: intake.clone(),
            category: routed.decision.category.as_str().into(),
            township: routed.decision.township.as_deref().map(Into::into),
        };
        self.emit(batch, id, actor(caller), kind)?;
        self.dispatch_routed(batch, id, &routed)?;
        Ok(Reply::Accepted { case: self.view_id(caller, &id), decision: routed.decision, duplicate: false })
    }

    /// After a return or a reopen: route again, never to a worker who returned it.
    fn route_again(&mut self, batch: &mut Batch, id: CaseId) -> Result<(), Error> {
        let case = &self.state.cases[&id];
        let mut intake = case.intake.clone();
        let operator_gave_it = intake.category.is_some();
        intake.category = Some(case.category.clone());
        let exclude = case.returned_by.clone();
        let mut routed = self.route(&intake, self.now(), &exclude);
        if !operator_gave_it {
            // The category is the one routing chose at intake, pinned here;
            // the router, handed it as if given, would say the operator did.
            for step in &mut routed.decision.steps {
                if step.starts_with("category ") && step.ends_with(GIVEN) {
                    step.truncate(step.len() - GIVEN.len());
                    step.push_str(": kept from the case's intake (chosen by routing, not the operator)");
                }
            }
        }
        self.dispatch_routed(batch, id, &routed)
    }

    fn dispatch_routed(&mut self, batch: &mut Batch, id: CaseId, routed: &Routed) -> Result<(), Error> {
        let d = &routed.decision;
        let kind = match (&d.worker, &d.grid, &d.township) {
            (Some(worker), Some(grid), Some(township)) => {
                let (due_claim, due_close) = self.deadlines(&self.state.cases[&id]);
                EventKind::Dispatched {
                    grid: grid.as_str().into(),
                    township: township.as_str().into(),
                    worker: worker.as_str().into(),
                    department: d.department.as_deref().map(Into::into),
                    rule: d.rule.as_str().into(),
                    reason: d.explanation().into(),
                    due_claim,
                    due_close,
                }
            }
            _ => EventKind::Waiting { reason: d.explanation().into() },
        };
        self.emit(batch, id, Actor::system(), kind)
    }

    /// Fresh deadlines for a case dispatched now.
    fn deadlines(&self, case: &Case) -> (Timestamp, Timestamp) {
        let now = self.now();
        let cat = self.registry.category_idx(&case.category).unwrap_or(self.registry.county.general_category);
        let limits = &self.registry.category(cat).limits;
        (now.plus(limits.claim(case.intake.priority)), now.plus(limits.close(case.intake.priority)))
    }

    fn dispatch_manually(
        &mut self,
        caller: &Caller,
        id: CaseId,
        worker: &str,
        batch: &mut Batch,
    ) -> Result<(), Error> {
        let w: WorkerIdx = self
            .registry
            .worker_idx(worker)
            .ok_or_else(|| Error::not_found(format!("worker: no worker `{}`", clip(worker))))?;
        let case = &self.state.cases[&id];
        if case.status == Status::Closed {
            return Err(Error::conflict(format!("case {} is closed", case.no)));
        }
        // Dispatching it again to the worker handling it would throw away
        // their claim and an approved extension for fresh deadlines. A
        // case not yet claimed may be: that gives its worker a fresh claim
        // deadline (in a grid of one worker, the only other choice is to
        // move the case away).
        if case.status == Status::Handling && case.assignment.as_ref().is_some_and(|a| a.worker == worker) {
            return Err(Error::conflict(format!(
                "case {} is already being handled by {worker}; dispatch it to another worker to reassign it",
                case.no
            )));
        }
        let wk = self.registry.worker(w);
        let (grid, township, department) = match (wk.kind, wk.grid) {
            (WorkerKind::FullTime | WorkerKind::PartTime, Some(g)) => {
                let g = self.registry.grid(g);
                // The department that co-handles the category stays with
                // the case, as routing would have set it: the audit's
                // department rows do not lose a case a supervisor moves.
                let reg = &*self.registry;
                let department = reg
                    .category_idx(&case.category)
                    .map(|c| reg.category(c))
                    .filter(|c| c.handling != Handling::Grid)
                    .and_then(|c| c.department)
                    .map(|d| reg.department(d).code.clone());
                (g.code.clone(), reg.township(g.township).code.clone(), department)
            }
            _ => {
                // A professional handles the case where it is.
                let routed = self.route(&case.intake, self.now(), &[]);
                let (Some(grid), Some(township)) = (routed.decision.grid, routed.decision.township.clone())
                else {
                    // The location's township, not one a first dispatch gave
                    // a case with no known location.
                    return Err(Error::conflict(match routed.decision.township {
                        Some(t) => format!(
                            "case {} is located only to its township ({t}), not to a grid, and a professional handles a case in its grid; dispatch it to a grid worker",
                            case.no
                        ),
                        None => format!("case {} has no known location; dispatch it to a grid worker", case.no),
                    }));
                };
                (grid, township, wk.department.map(|d| self.registry.department(d).code.clone()))
            }
        };
        let (due_claim, due_close) = self.deadlines(case);
        let kind = EventKind::Dispatched {
            grid: grid.into(),
            township: township.into(),
            worker: worker.into(),
            department: department.map(Into::into),
            rule: "manual".into(),
            reason: format_compact!("dispatched by {} {}", caller.role.as_str(), caller.name),
            due_claim,
            due_close,
        };
        self.emit(batch, id, actor(caller), kind)
    }

    /// Writes the deadline events that are due; returns how many.
    pub(crate) fn tick(&mut self, batch: &mut Batch) -> usize {
        let now = self.now();
        let start = batch.events.len();
        while batch.events.len() - start < self.config.timer_events_max {
            let Some(&(t, id)) = self.state.timers.first() else { break };
            if t > now.0 {
                break;
            }
            let before = batch.events.len();
            // Like a command, the case's deadline events happen whole or
            // not at all: `emit` may have changed the case before refusing.
            let mark = batch.mark();
            batch.command_undo_start = batch.undo.len();
            if let Err(e) = self.timer_events(batch, id, now) {
                tracing::error!(case = %id, error = %e, "deadline event refused; dropping the timer");
                self.rollback(batch, mark);
            }
            if batch.events.len() == before {
                // Nothing was due after all: never spin on the same timer.
                self.state.timers.remove(&(t, id));
            }
        }
        batch.events.len() - start
    }

    /// Records every deadline event case `id` is due by now. The batch's
    /// tick runs after its commands, and under a backlog (after downtime,
    /// or many deadlines at once) some batches later still: a command that
    /// moves the case or its deadlines (claim, close, return, extension,
    /// dispatch) must not let a miss the tick has not seen yet go
    /// unrecorded, so it settles the case first.
    fn settle(&mut self, batch: &mut Batch, id: CaseId) -> Result<(), Error> {
        let now = self.now();
        loop {
            // Each round sets a flag or raises the escalation level, so
            // this ends (one round per level at most).
            let before = batch.events.len();
            self.timer_events(batch, id, now)?;
            if batch.events.len() == before {
                return Ok(());
            }
        }
    }

    fn timer_events(&mut self, batch: &mut Batch, id: CaseId, now: Timestamp) -> Result<(), Error> {
        let c = &self.state.cases[&id];
        let sys = Actor::system();
        if c.status == Status::Dispatched {
            if let (Some(due), Some(at)) = (c.due_claim, c.dispatched_at) {
                if !c.overdue_claim && due < now {
                    self.emit(batch, id, sys.clone(), EventKind::Overdue { deadline: Deadline::Claim, due })?;
                    if self.config.escalation_levels > 0 {
                        self.escalate(batch, id, 1, Deadline::Claim)?;
                    }
                } else if c.overdue_claim && c.escalation_level < self.config.escalation_levels {
                    let limit = due.since(at).0.max(60_000);
                    if Timestamp(due.0 + limit * c.escalation_level as i64) < now {
                        self.escalate(batch, id, c.escalation_level + 1, Deadline::Claim)?;
                    }
                }
            }
        }
        let c = &self.state.cases[&id];
        if matches!(c.status, Status::Dispatched | Status::Handling) && !c.overdue_close {
            if let Some(due) = c.due_close.filter(|d| *d < now) {
                let level = c.escalation_level;
                self.emit(batch, id, sys, EventKind::Overdue { deadline: Deadline::Close, due })?;
                // A missed close deadline goes one step further up the
                // chain than the case has gone (once: the case is in hand).
                if level < self.config.escalation_levels {
                    self.escalate(batch, id, level + 1, Deadline::Close)?;
                }
            }
        }
        Ok(())
    }

    /// 督办: the community's grid lead, then the township's, then the command centre.
    fn escalate(&mut self, batch: &mut Batch, id: CaseId, level: u8, missed: Deadline) -> Result<(), Error> {
        let c = &self.state.cases[&id];
        let reg = &self.registry;
        let grid = c.grid().and_then(|g| reg.grid_idx(g)).map(|g| reg.grid(g));
        let lead = |w: Option<WorkerIdx>| w.map(|w| reg.worker(w).id.clone());
        // Up the chain from this level: the community's lead, the
        // township's, the command centre. A lead who is the case's own
        // worker (the one who missed the deadline) is passed over.
        let mut chain: Vec<(String, String)> = Vec::with_capacity(3);
        if let Some(g) = grid {
            let com = reg.community(g.community);
            chain.push((
                lead(com.lead).unwrap_or_else(|| com.code.clone()),
                format!("the grid lead of {}", com.name),
            ));
            let t = reg.township(g.township);
            chain.push((
                lead(t.lead).unwrap_or_else(|| t.code.clone()),
                format!("the grid lead of {}", t.name),
            ));
        }
        chain.push((reg.county.command_centre.clone(), "the command centre".to_string()));
        let last = chain.len() - 1;
        let from = usize::from(level.max(1) - 1).min(last);
        let (to, whom) = chain
            .into_iter()
            .enumerate()
            .skip(from)
            .find(|(i, (to, _))| *i == last || Some(to.as_str()) != c.worker())
            .map(|(_, step)| step)
            .expect("the command centre ends the chain");
        let what = match missed {
            Deadline::Claim => "claimed",
            Deadline::Close => "closed",
        };
        let reason = format!("not {what} by its deadline; escalated to {whom} (level {level})");
        self.emit(
            batch,
            id,
            Actor::system(),
            EventKind::Escalated { to: to.into(), level, reason: reason.into() },
        )
    }
}

/// How the router ends the step of a category it was given.
const GIVEN: &str = ": given by the operator";

/// The decision a stored case was dispatched with, for a repeated `req=`.
fn decision_of(case: &Case) -> Decision {
    let a = case.assignment.as_ref();
    Decision {
        category: case.category.to_string(),
        category_source: CategorySource::Given,
        keywords: Vec::new(),
        grid: a.map(|a| a.grid.to_string()),
        township: case.township.as_deref().map(String::from),
        department: a.and_then(|a| a.department.as_deref()).map(String::from),
        worker: a.map(|a| a.worker.to_string()),
        rule: a.map_or("command-centre", |a| &a.rule).to_string(),
        steps: vec![format!("the same req= was accepted before as case {}", case.no)],
    }
}

/// The registry position of an optional `field=` code; `not_found` when it names nothing.
fn known<T>(field: &str, code: Option<&str>, find: impl Fn(&str) -> Option<T>) -> Result<Option<T>, Error> {
    code.map(|c| find(c).ok_or_else(|| Error::not_found(format!("{field}: no {field} `{}`", clip(c)))))
        .transpose()
}

fn cursor(k: DueKey) -> String {
    format!("{}.{}", k.0, k.1)
}

fn parse_cursor(s: &str) -> Result<DueKey, Error> {
    let bad =
        || Error::bad_request(format!("after: `{}` is not a cursor from a previous reply's next=", clip(s)));
    let (t, id) = s.split_once('.').ok_or_else(bad)?;
    Ok((t.parse().map_err(|_| bad())?, id.parse().map_err(|_| bad())?))
}

/// An `AUDIT` ready to fold: the cases as of the batch it was in.
pub(crate) struct AuditRun {
    cases: Vec<Arc<Case>>,
    query: gridline_audit::Query,
}

impl AuditRun {
    /// The audit's rows.
    pub(crate) fn fold(&self) -> Vec<gridline_model::Row> {
        gridline_audit::audit(self.cases.iter().map(|c| &**c), &self.query)
    }
}
