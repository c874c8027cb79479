//! The `HELP` reply: one row per verb, the same list the parser knows.

use gridline_model::Reply;

/// One verb's entry in `HELP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub verb: &'static str,
    /// Who may use it, comma-separated: every role the server allows (an
    /// admin may do what a supervisor may; a worker, on its own cases).
    pub roles: &'static str,
    pub usage: &'static str,
    pub does: &'static str,
}

const fn u(verb: &'static str, roles: &'static str, usage: &'static str, does: &'static str) -> Usage {
    Usage { verb, roles, usage, does }
}

/// Every verb, in the order `HELP` lists them.
pub const HELP: &[Usage] = &[
    u("AUTH", "any", "AUTH token=S", "authenticate; replies role= and, for workers, worker="),
    u(
        "ACCEPT",
        "operator",
        "ACCEPT text= [category=] (lon= lat= | grid= | address=) [phone=] [name=] [channel=] \
         [priority=normal|urgent|emergency] [req=]",
        "receive a case, route and dispatch it; the same req= again returns the same case",
    ),
    u(
        "ROUTE",
        "operator,supervisor,admin",
        "ROUTE (ACCEPT's fields, without req=)",
        "the routing decision and why; nothing stored",
    ),
    u(
        "PULL",
        "worker,supervisor,admin",
        "PULL [worker=W] [limit=1..1000] [after=CURSOR]",
        "open cases of a worker (a supervisor without worker=: every dispatched or handling case), earliest deadline first",
    ),
    u("CLAIM", "worker", "CLAIM case=", "sign for a dispatched case: handling"),
    u("NOTE", "worker", "NOTE case= text= [req=]", "record progress; the same req= again is not stored twice"),
    u("RETURN", "worker", "RETURN case= reason=", "not mine: back to routing, never to the same worker"),
    u("CLOSE", "worker", "CLOSE case= result=", "done: closed"),
    u(
        "FEEDBACK",
        "operator",
        "FEEDBACK case= satisfied=yes|no [score=1..5] [text=]",
        "the return visit; no reopens the case",
    ),
    u("EXTEND", "worker", "EXTEND case= until=TIME reason=", "ask for more time to close"),
    u("EXTEND", "supervisor,admin", "EXTEND case= approve=yes|no [reason=]", "decide the pending extension"),
    u("DISPATCH", "supervisor,admin", "DISPATCH case= worker=W", "manual dispatch or reassignment"),
    u("GET", "operator,supervisor,admin,worker", "GET case=", "the case and its events"),
    u(
        "OVERDUE",
        "supervisor,admin",
        "OVERDUE [township=] [grid=] [limit=1..1000] [after=CURSOR]",
        "open cases past a deadline",
    ),
    u(
        "AUDIT",
        "supervisor,admin",
        "AUDIT [by=county|township|grid|department|worker|category|month] [from=TIME] [to=TIME]",
        "counts, closure-time percentiles and rates",
    ),
    u(
        "TOKEN",
        "admin",
        "TOKEN role=worker|operator|supervisor [worker=W] [name=]",
        "issue a token; worker= iff role=worker",
    ),
    u(
        "REVOKE",
        "admin",
        "REVOKE name=",
        "withdraw a token (not an admin's): it no longer authenticates, and its connections must AUTH again",
    ),
    u(
        "STATS",
        "supervisor,admin",
        "STATS [reset=yes]",
        "acknowledgement latency of writes and the commits behind them, since start (or the last reset)",
    ),
    u("PING", "any", "PING", "liveness"),
    u("HELP", "any", "HELP", "this list"),
    u("QUIT", "any", "QUIT", "close the connection"),
];

/// `HELP`'s reply: `OK count=N` and one `ROW verb= roles= usage= does=` per entry.
pub fn help_reply() -> Reply {
    Reply::Rows(
        HELP.iter()
            .map(|h| {
                vec![
                    ("verb".to_string(), h.verb.to_string()),
                    ("roles".to_string(), h.roles.to_string()),
                    ("usage".to_string(), h.usage.to_string()),
                    ("does".to_string(), h.does.to_string()),
                ]
            })
            .collect(),
    )
}
