//! Replies: writing `OK`/`ERR` and item lines, and reading them back.

use gridline_model::{
    Case, CaseView, Decision, Error, ErrorCode, Event, EventKind, Reply, Status, Timestamp,
};

use crate::lex;
use crate::request::yes_no;

/// How replies are written: times are RFC 3339 at the county's offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatCtx {
    /// Minutes east of UTC (480 for China).
    pub utc_offset_min: i32,
    /// The warning point of a deadline, in percent of its limit (the registry's `warn_at_percent`).
    pub warn_at_percent: u8,
}

/// When the deadline a case is racing reaches its warning point: `percent`
/// of the way from its dispatch to the deadline.
pub fn warn_at(c: &Case, percent: u8) -> Option<Timestamp> {
    let (from, due) = (c.dispatched_at?, c.next_due()?);
    Some(Timestamp(from.0 + (due.0 - from.0) * i64::from(percent) / 100))
}

/// Writes a reply as one or more lines, each ending with `\n`.
pub fn write_reply(out: &mut String, reply: &Reply, ctx: &FormatCtx) {
    match reply {
        Reply::Fields(kv) => {
            let mut l = Line::start(out, "OK", ctx);
            for (k, v) in kv {
                l.put(k, v);
            }
            l.end();
        }
        Reply::Accepted { case, decision, duplicate } => {
            let case = case.case();
            let mut l = Line::start(out, "OK", ctx);
            l.display("case", case.id);
            l.put("no", case.no.as_str());
            l.put("status", case.status.as_str());
            let a = case.assignment.as_ref();
            l.opt("grid", a.map(|a| a.grid.as_str()).or(decision.grid.as_deref()));
            l.opt("worker", case.worker());
            l.opt("dept", a.and_then(|a| a.department.as_deref()).or(decision.department.as_deref()));
            l.opt_time("due_claim", case.due_claim);
            l.opt_time("due_close", case.due_close);
            l.put("rule", a.map(|a| a.rule.as_str()).unwrap_or(&decision.rule));
            l.put("category", &case.category);
            if *duplicate {
                l.put("duplicate", "yes");
            }
            l.end();
        }
        Reply::Routed(decision) => {
            let mut l = Line::start(out, "OK", ctx);
            write_decision(&mut l, decision);
            l.end();
        }
        Reply::Case(case) => {
            let mut l = Line::start(out, "OK", ctx);
            write_case(&mut l, case);
            l.end();
        }
        Reply::Detail { case, events, .. } => {
            let mut l = Line::start(out, "OK", ctx);
            l.display("count", events.len());
            write_case(&mut l, case);
            l.end();
            for e in events {
                let mut l = Line::start(out, "EVENT", ctx);
                write_event(&mut l, e);
                l.end();
            }
        }
        Reply::Cases { cases, next } => {
            let mut l = Line::start(out, "OK", ctx);
            l.display("count", cases.len());
            l.opt("next", next.as_deref());
            l.end();
            for c in cases {
                let mut l = Line::start(out, "CASE", ctx);
                write_case(&mut l, c);
                l.end();
            }
        }
        Reply::Rows(rows) => {
            let mut l = Line::start(out, "OK", ctx);
            l.display("count", rows.len());
            l.end();
            for row in rows {
                let mut l = Line::start(out, "ROW", ctx);
                for (k, v) in row {
                    l.put(k, v);
                }
                l.end();
            }
        }
    }
}

/// Writes `ERR <code> "<message>"` and a newline.
pub fn write_error(out: &mut String, err: &Error) {
    out.push_str("ERR ");
    out.push_str(err.code.as_str());
    out.push(' ');
    // Always quoted, even when it could be bare, so clients can rely on it.
    lex::write_quoted(out, &err.message);
    out.push('\n');
}

/// One reply line being written.
struct Line<'a> {
    out: &'a mut String,
    ctx: &'a FormatCtx,
}

impl<'a> Line<'a> {
    fn start(out: &'a mut String, word: &str, ctx: &'a FormatCtx) -> Line<'a> {
        out.push_str(word);
        Line { out, ctx }
    }

    fn put(&mut self, key: &str, value: &str) {
        lex::write_pair(self.out, key, value);
    }

    fn opt(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.put(key, v);
        }
    }

    /// ` key=` and a value that is bare by construction (numbers, ids, times).
    fn bare_key(&mut self, key: &str) {
        debug_assert!(lex::is_key(key), "bad key {key:?}");
        self.out.push(' ');
        self.out.push_str(key);
        self.out.push('=');
    }

    fn time(&mut self, key: &str, t: Timestamp) {
        self.bare_key(key);
        t.write_rfc3339(self.out, self.ctx.utc_offset_min);
    }

    /// A value whose `Display` is always bare: a number or a case id.
    fn display(&mut self, key: &str, v: impl std::fmt::Display) {
        use std::fmt::Write;
        self.bare_key(key);
        let start = self.out.len();
        // Writing to a String cannot fail.
        let _ = write!(self.out, "{v}");
        debug_assert!(lex::is_bare(&self.out[start..]), "not bare: {:?}", &self.out[start..]);
    }

    fn opt_time(&mut self, key: &str, t: Option<Timestamp>) {
        if let Some(t) = t {
            self.time(key, t);
        }
    }

    fn end(self) {
        self.out.push('\n');
    }
}

/// The routing decision's fields, as `ROUTE` replies them.
fn write_decision(l: &mut Line<'_>, d: &Decision) {
    l.opt("grid", d.grid.as_deref());
    l.opt("township", d.township.as_deref());
    l.opt("worker", d.worker.as_deref());
    l.opt("dept", d.department.as_deref());
    l.put("category", &d.category);
    l.put("category_source", d.category_source.as_str());
    if !d.keywords.is_empty() {
        l.put("keywords", &d.keywords.join(","));
    }
    l.put("rule", &d.rule);
    l.put("why", &d.explanation());
}

/// Which deadline the case has missed in its current round, if any.
pub fn overdue_word(case: &Case) -> &'static str {
    match case.status {
        Status::Dispatched | Status::Handling if case.overdue_close => "close",
        Status::Dispatched if case.overdue_claim => "claim",
        _ => "none",
    }
}

/// The case summary: the one place that writes a case's fields, used by
/// every reply that holds a case (`OK` of a write or `GET`, `CASE` lines).
fn write_case(l: &mut Line<'_>, view: &CaseView) {
    let c = view.case();
    let a = c.assignment.as_ref();
    l.display("case", c.id);
    l.put("no", c.no.as_str());
    l.put("status", c.status.as_str());
    l.put("category", &c.category);
    l.put("priority", c.intake.priority.as_str());
    l.opt("grid", a.map(|a| a.grid.as_str()));
    l.opt("township", c.township.as_deref().or(a.map(|a| a.township.as_str())));
    l.opt("worker", a.map(|a| a.worker.as_str()));
    l.opt("dept", a.and_then(|a| a.department.as_deref()));
    l.opt_time("due_claim", c.due_claim);
    l.opt_time("due_close", c.due_close);
    l.opt_time("warn_at", warn_at(c, l.ctx.warn_at_percent));
    l.time("received", c.received_at);
    l.put("text", &c.intake.text);
    l.opt("phone", view.phone().as_deref());
    l.opt("name", c.intake.name.as_deref());
    l.opt("address", c.intake.location.address.as_deref());
    if let Some((lon, lat)) = c.intake.location.point {
        // As requests write them: a coordinate like 1e-300 in full would
        // be longer than a request may give it back.
        l.display("lon", crate::request::coordinate(lon));
        l.display("lat", crate::request::coordinate(lat));
    }
    l.display("returns", c.returns);
    l.display("reopens", c.reopens);
    l.put("overdue", overdue_word(c));
    if let Some(f) = &c.feedback {
        l.put("satisfied", yes_no(f.satisfied));
        if let Some(s) = f.score {
            l.display("score", s);
        }
    }
    if let Some(x) = &c.extension {
        l.time("extension_until", x.until);
    }
}

/// `seq= at= actor= kind=` and the kind's own fields.
fn write_event(l: &mut Line<'_>, e: &Event) {
    l.display("seq", e.seq);
    l.time("at", e.at);
    l.put("actor", &e.actor.label());
    l.put("kind", e.kind.name());
    match &e.kind {
        EventKind::Accepted { no, category, township, .. } => {
            l.put("no", no.as_str());
            l.put("category", category);
            l.opt("township", township.as_deref());
        }
        EventKind::Dispatched { grid, township, worker, department, rule, reason, due_claim, due_close } => {
            l.put("grid", grid);
            l.put("township", township);
            l.put("worker", worker);
            l.opt("dept", department.as_deref());
            l.put("rule", rule);
            l.put("reason", reason);
            l.time("due_claim", *due_claim);
            l.time("due_close", *due_close);
        }
        EventKind::Claimed => {}
        EventKind::Noted { text } => l.put("text", text),
        EventKind::NotedReq { text, req } => {
            l.put("text", text);
            l.put("req", req);
        }
        EventKind::Waiting { reason } | EventKind::Returned { reason } | EventKind::Reopened { reason } => {
            l.put("reason", reason)
        }
        EventKind::Closed { result } => l.put("result", result),
        EventKind::Feedback { satisfied, score, text } => {
            l.put("satisfied", yes_no(*satisfied));
            if let Some(s) = score {
                l.display("score", s);
            }
            l.opt("text", text.as_deref());
        }
        EventKind::ExtensionRequested { until, reason } => {
            l.time("until", *until);
            l.put("reason", reason);
        }
        EventKind::ExtensionDecided { approved, until, reason } => {
            l.put("approved", yes_no(*approved));
            l.time("until", *until);
            l.opt("reason", reason.as_deref());
        }
        EventKind::Overdue { deadline, due } => {
            l.put("deadline", deadline.as_str());
            l.time("due", *due);
        }
        EventKind::Escalated { to, level, reason } => {
            l.put("to", to);
            l.display("level", level);
            l.put("reason", reason);
        }
    }
}

/// The `key=value` pairs of a reply line, in line order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An error code as a client reads it: one this version knows, typed, or
/// any other well-formed code (`a-z`, `0-9`, `_`, 1 to 32 bytes) as
/// written, so a client keeps working when a later server adds a code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyCode {
    Known(ErrorCode),
    Other(String),
}

impl ReplyCode {
    /// Reads a code; `None` when it is not well-formed.
    pub fn parse(code: &str) -> Option<ReplyCode> {
        match ErrorCode::parse(code) {
            Some(c) => Some(ReplyCode::Known(c)),
            None if lex::is_key(code) => Some(ReplyCode::Other(code.to_string())),
            None => None,
        }
    }

    /// The code as it is written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ReplyCode::Known(c) => c.as_str(),
            ReplyCode::Other(s) => s,
        }
    }

    /// The code, if this version knows it.
    pub fn known(&self) -> Option<ErrorCode> {
        match self {
            ReplyCode::Known(c) => Some(*c),
            ReplyCode::Other(_) => None,
        }
    }
}

impl From<ErrorCode> for ReplyCode {
    fn from(c: ErrorCode) -> Self {
        ReplyCode::Known(c)
    }
}

impl std::fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reply line as a client reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyLine {
    /// `OK key=value ...`
    Ok(Fields),
    /// `ERR <code> "<message>"`; a code this version does not know is
    /// [`ReplyCode::Other`].
    Err { code: ReplyCode, message: String },
    /// An item of a list reply: `CASE`, `EVENT` or `ROW`, then its fields.
    Item { kind: String, fields: Fields },
}

impl ReplyLine {
    /// `count=N` of an `OK` line: how many item lines follow.
    pub fn count(&self) -> Option<usize> {
        match self {
            ReplyLine::Ok(f) => f.get("count")?.parse().ok(),
            _ => None,
        }
    }
}

/// A reply line that is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad reply line: {0}")]
pub struct ParseError(pub String);

/// Parses one reply line (without its terminator; a trailing `\r` is
/// tolerated). Item words are any upper-case ASCII word other than `OK` and
/// `ERR`, so newer item kinds do not break older clients.
pub fn parse_reply_line(line: &str) -> Result<ReplyLine, ParseError> {
    let line = lex::strip_terminator(line);
    lex::check_controls(line).map_err(ParseError)?;
    let Some((word, rest)) = lex::split_word(line) else {
        return Err(ParseError("empty line".to_string()));
    };
    match word {
        "OK" => Ok(ReplyLine::Ok(Fields(lex::pairs(rest, true).map_err(ParseError)?))),
        "ERR" => {
            let Some((code, rest)) = lex::split_word(rest) else {
                return Err(ParseError("ERR without a code".to_string()));
            };
            let code = ReplyCode::parse(code).ok_or_else(|| {
                ParseError(format!("bad error code `{}`: codes are a-z, 0-9 and _", lex::clip(code)))
            })?;
            let rest = rest.trim_matches(lex::is_separator);
            let message = if rest.starts_with('"') {
                let (m, after) = lex::quoted(rest, "message").map_err(ParseError)?;
                if !after.trim_matches(lex::is_separator).is_empty() {
                    return Err(ParseError("text after the quoted message".to_string()));
                }
                m
            } else {
                rest.to_string()
            };
            Ok(ReplyLine::Err { code, message })
        }
        w if w.bytes().all(|b| b.is_ascii_uppercase()) => Ok(ReplyLine::Item {
            kind: w.to_string(),
            fields: Fields(lex::pairs(rest, true).map_err(ParseError)?),
        }),
        w => Err(ParseError(format!("expected OK, ERR or an item word, got `{}`", lex::clip(w)))),
    }
}
