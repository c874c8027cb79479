//! Requests: one parse function per verb, each reading its fields from an
//! [`Args`] whose `finish()` rejects what the verb does not know; and the
//! inverse, [`format_request`].

use gridline_model::{
    AuditBy, CaseRef, Command, CompactString, Error, ErrorCode, Intake, Location, Page, Priority, Role,
    Timestamp,
};

use crate::lex;
use crate::limits::{PAGE_LIMIT_MAX, TEXT_MAX_CHARS, VALUE_MAX_CHARS};

/// Parses one request line (without its terminator; a trailing `\r` or
/// `\r\n` is tolerated) into a command, or the `ERR` it deserves.
pub fn parse_request(line: &str) -> Result<Command, Error> {
    let line = lex::strip_terminator(line);
    lex::check_controls(line).map_err(Error::bad_request)?;
    // Invisible, it would make the verb look right in the error below.
    if line.starts_with('\u{feff}') {
        return Err(Error::bad_request(
            "the line starts with a byte-order mark (U+FEFF): send the verb first",
        ));
    }
    let Some((word, rest)) = lex::split_word(line) else {
        return Err(Error::bad_request("empty line"));
    };
    let Some(&(verb, parse)) = VERBS.iter().find(|(v, _)| v.eq_ignore_ascii_case(word)) else {
        return Err(Error::new(
            ErrorCode::UnknownVerb,
            format!("unknown verb `{}`; HELP lists the verbs", lex::clip(word)),
        ));
    };
    let pairs = lex::pairs(rest, false).map_err(Error::bad_request)?;
    let mut args = Args::new(verb, pairs);
    let cmd = parse(&mut args);
    args.finish()?;
    Ok(cmd)
}

type ParseFn = fn(&mut Args) -> Command;

/// The verbs the parser knows, upper case. `HELP` documents the same list.
pub fn verbs() -> impl Iterator<Item = &'static str> {
    VERBS.iter().map(|(v, _)| *v)
}

/// Every verb and its parser.
const VERBS: &[(&str, ParseFn)] = &[
    ("AUTH", auth),
    ("ACCEPT", accept),
    ("ROUTE", route),
    ("PULL", pull),
    ("CLAIM", claim),
    ("NOTE", note),
    ("RETURN", return_),
    ("CLOSE", close),
    ("FEEDBACK", feedback),
    ("EXTEND", extend),
    ("DISPATCH", dispatch),
    ("GET", get),
    ("OVERDUE", overdue),
    ("AUDIT", audit),
    ("TOKEN", token),
    ("REVOKE", |a| Command::Revoke { name: a.req("name") }),
    ("STATS", |a| Command::Stats { reset: a.yes_no("reset").unwrap_or(false) }),
    ("PING", |_| Command::Ping),
    ("HELP", |_| Command::Help),
    ("QUIT", |_| Command::Quit),
];

fn auth(a: &mut Args) -> Command {
    // A secret is what the token file holds, tabs included: not checked
    // for one line (the file's own checks apply).
    let token = a.required("token", |a| a.value("token", VALUE_MAX_CHARS, true)).unwrap_or_default();
    Command::Auth { token }
}

fn accept(a: &mut Args) -> Command {
    Command::Accept(intake(a, true))
}

/// `ROUTE` takes ACCEPT's fields but not `req=`: it stores nothing.
fn route(a: &mut Args) -> Command {
    Command::Route(intake(a, false))
}

fn intake(a: &mut Args, with_req: bool) -> Intake {
    let text = a.req_text("text");
    let category = a.opt("category");
    let lon = a.coordinate("lon", 180.0);
    let lat = a.coordinate("lat", 90.0);
    match (a.present("lon"), a.present("lat")) {
        (true, false) => a.fail("missing field `lat` (lon and lat come together)".to_string()),
        (false, true) => a.fail("missing field `lon` (lon and lat come together)".to_string()),
        _ => {}
    }
    let grid = a.opt("grid");
    let address = a.opt_flat("address");
    if !a.present("lon") && !a.present("lat") && !a.present("grid") && !a.present("address") {
        a.fail("missing location: give lon= and lat=, grid= or address=".to_string());
    }
    let phone = a.opt_flat("phone").map(|p| narrow(&p));
    if let Some(p) = phone.as_deref().filter(|p| !is_phone(p)) {
        a.fail(format!(
            "phone: `{}` is not a phone number (at least 3 digits, and more digits than other characters)",
            lex::clip(p)
        ));
    }
    let name = a.opt_flat("name");
    let channel = a.opt("channel");
    let priority = a
        .choice("priority", Priority::parse, "priority must be normal, urgent or emergency")
        .unwrap_or_default();
    let req = if with_req { a.opt("req") } else { None };
    let point = lon.zip(lat);
    let text_of = |v: Option<String>| v.map(CompactString::from);
    Intake {
        text: text.into(),
        category: text_of(category),
        location: Location { point, grid: text_of(grid), address: text_of(address) },
        phone: text_of(phone),
        name: text_of(name),
        channel: text_of(channel),
        priority,
        req: text_of(req),
    }
}

fn pull(a: &mut Args) -> Command {
    let worker = a.opt("worker");
    Command::Pull { worker, page: a.page() }
}

fn claim(a: &mut Args) -> Command {
    Command::Claim { case: a.case() }
}

fn note(a: &mut Args) -> Command {
    Command::Note { case: a.case(), text: a.req_text("text"), req: a.opt("req") }
}

fn return_(a: &mut Args) -> Command {
    Command::Return { case: a.case(), reason: a.req_text("reason") }
}

fn close(a: &mut Args) -> Command {
    Command::Close { case: a.case(), result: a.req_text("result") }
}

fn feedback(a: &mut Args) -> Command {
    let case = a.case();
    let satisfied = a.required("satisfied", |a| a.yes_no("satisfied")).unwrap_or(false);
    let score = a.number("score", 1..=5, "score must be 1..5").map(|s| s as u8);
    let text = a.opt_text("text");
    Command::Feedback { case, satisfied, score, text }
}

/// `EXTEND case= until= reason=` is a worker's request;
/// `EXTEND case= approve=yes|no [reason=]` is a supervisor's decision.
fn extend(a: &mut Args) -> Command {
    let case = a.case();
    if a.present("approve") {
        // Present, so needed: `approve=` empty says so, not "leave it out".
        let approve = a.required("approve", |a| a.yes_no("approve")).unwrap_or(false);
        if a.present("until") {
            a.mark_used("until");
            a.fail(
                "`until` and `approve` do not go together: a worker asks with until= and reason=, \
                 a supervisor decides with approve="
                    .to_string(),
            );
        }
        let reason = a.opt_text("reason");
        Command::DecideExtension { case, approve, reason }
    } else if !a.present("until") {
        // Either form may be the one meant: a worker's request lacks its
        // time, or a supervisor's decision its approve=.
        a.fail(
            "missing field `until` (a worker asks with until= and reason=) or `approve` (a supervisor \
             decides with approve=yes|no)"
                .to_string(),
        );
        a.mark_used("reason");
        Command::Extend { case, until: String::new(), reason: String::new() }
    } else {
        let until = a.required("until", |a| a.time("until")).unwrap_or_default();
        let reason = a.req_text("reason");
        Command::Extend { case, until, reason }
    }
}

/// A number as an operator's input method may type it, in ASCII: the
/// full-width forms (`１３８`, `（0467）`, `－`) and the ideographic space.
fn narrow(p: &str) -> String {
    p.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        })
        .collect()
}

/// A control character (a tab, a newline: the rest are refused in the
/// whole line) or a Unicode line or paragraph separator.
fn breaks_line(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// What is wrong with a value that says nothing: `empty value`, or `only
/// spaces` (Unicode's, the ideographic space among them, and characters
/// that draw nothing: a zero-width space, a byte-order mark).
fn blank(v: &str) -> Option<&'static str> {
    match v {
        "" => Some("empty value"),
        v if v.trim().is_empty() => Some("only spaces"),
        v if v.chars().all(|c| c.is_whitespace() || crate::lex::is_invisible(c)) => {
            Some("only spaces and characters that draw nothing (zero-width, U+FEFF...)")
        }
        _ => None,
    }
}

/// A caller's number as it is written: at least 3 digits, and more digits
/// than anything else (spaces aside), so that separators, a `+86`, an
/// extension (`0467-5221234转801`, `#801`) or a second number
/// (`13812345678/13987654321`) pass. Not a check that the number exists:
/// a word in its place (`电话号码`), or two digits, is a slip the operator
/// can still mend while the caller is on the line.
fn is_phone(p: &str) -> bool {
    let digits = p.chars().filter(char::is_ascii_digit).count();
    let others = p.chars().filter(|c| !c.is_ascii_digit() && !c.is_whitespace()).count();
    digits >= 3 && digits > others
}

fn dispatch(a: &mut Args) -> Command {
    Command::Dispatch { case: a.case(), worker: a.req("worker") }
}

fn get(a: &mut Args) -> Command {
    Command::Get { case: a.case() }
}

fn overdue(a: &mut Args) -> Command {
    let township = a.opt("township");
    let grid = a.opt("grid");
    Command::Overdue { township, grid, page: a.page() }
}

fn audit(a: &mut Args) -> Command {
    let by = a
        .choice(
            "by",
            AuditBy::parse,
            "by must be county, township, grid, department, worker, category or month",
        )
        .unwrap_or(AuditBy::County);
    let from = a.time("from");
    let to = a.time("to");
    Command::Audit { by, from, to }
}

/// The roles a token may be issued for (admin tokens live in tokens.toml only).
fn token_role(s: &str) -> Option<Role> {
    Role::parse(s).filter(|r| matches!(r, Role::Worker | Role::Operator | Role::Supervisor))
}

fn token(a: &mut Args) -> Command {
    let role =
        a.required("role", |a| a.choice("role", token_role, "role must be worker, operator or supervisor"));
    let worker = a.opt("worker");
    let name = a.opt("name");
    match role {
        Some(Role::Worker) if !a.present("worker") => {
            a.fail("missing field `worker` (required for role=worker)".to_string())
        }
        Some(r) if r != Role::Worker && a.present("worker") => {
            a.fail("worker: only for role=worker".to_string())
        }
        _ => {}
    }
    Command::Token { role: role.unwrap_or(Role::Worker), worker, name }
}

/// A request's fields, read by one verb's parser.
///
/// Getters never fail: they record the first problem and return a default,
/// so that [`Args::finish`] can report an unknown field (usually a typo)
/// before a missing one, and otherwise the first problem in field order.
struct Args {
    verb: &'static str,
    pairs: Vec<(String, String)>,
    used: Vec<bool>,
    problem: Option<String>,
}

impl Args {
    fn new(verb: &'static str, pairs: Vec<(String, String)>) -> Args {
        let used = vec![false; pairs.len()];
        Args { verb, pairs, used, problem: None }
    }

    fn fail(&mut self, message: String) {
        self.problem.get_or_insert(message);
    }

    fn present(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    fn mark_used(&mut self, key: &str) {
        if let Some(i) = self.pairs.iter().position(|(k, _)| k == key) {
            self.used[i] = true;
        }
    }

    /// The value of `key`, at most `max_chars` long, not empty or only
    /// spaces, and, unless `lines` lets it hold line breaks and tabs (a
    /// text, the AUTH secret, a value `opt_flat` flattens), on one line (a
    /// code or an id with a newline or a tab in it is a slip).
    fn value(&mut self, key: &str, max_chars: usize, lines: bool) -> Option<String> {
        let i = self.pairs.iter().position(|(k, _)| k == key)?;
        self.used[i] = true;
        let v = std::mem::take(&mut self.pairs[i].1);
        if let Some(what) = blank(&v) {
            self.fail(format!("{key}: {what} (leave the field out instead)"));
            return None;
        }
        let n = v.chars().count();
        if n > max_chars {
            self.fail(format!("{key}: too long ({n} characters, at most {max_chars})"));
            return None;
        }
        if !lines && v.chars().any(breaks_line) {
            self.fail(format!(
                "{key}: a line break, tab or other control character (only texts may have them)"
            ));
            return None;
        }
        Some(v)
    }

    fn opt(&mut self, key: &str) -> Option<String> {
        self.value(key, VALUE_MAX_CHARS, false)
    }

    /// A one-line value as an operator may paste it: a tab or line break in
    /// it (a two-line address copied from a form) reads as a space.
    fn opt_flat(&mut self, key: &str) -> Option<String> {
        let v = self.value(key, VALUE_MAX_CHARS, true)?;
        Some(v.chars().map(|c| if breaks_line(c) { ' ' } else { c }).collect())
    }

    fn opt_text(&mut self, key: &str) -> Option<String> {
        self.value(key, TEXT_MAX_CHARS, true)
    }

    /// Runs `get` when `key` is present, records it missing otherwise.
    fn required<T>(&mut self, key: &str, get: impl FnOnce(&mut Args) -> Option<T>) -> Option<T> {
        if let Some(what) = self.pairs.iter().find(|(k, _)| k == key).and_then(|(_, v)| blank(v)) {
            // Not "leave it out": the request needs it.
            self.mark_used(key);
            self.fail(format!("{key}: {what} (the request needs one)"));
            None
        } else if self.present(key) {
            get(self)
        } else {
            self.fail(format!("missing field `{key}`"));
            None
        }
    }

    fn req(&mut self, key: &str) -> String {
        self.required(key, |a| a.opt(key)).unwrap_or_default()
    }

    fn req_text(&mut self, key: &str) -> String {
        self.required(key, |a| a.opt_text(key)).unwrap_or_default()
    }

    fn case(&mut self) -> CaseRef {
        CaseRef::parse(&self.req("case"))
    }

    fn choice<T>(&mut self, key: &str, parse: impl Fn(&str) -> Option<T>, message: &str) -> Option<T> {
        let v = self.opt(key)?;
        let t = parse(&v.to_ascii_lowercase());
        if t.is_none() {
            self.fail(message.to_string());
        }
        t
    }

    fn yes_no(&mut self, key: &str) -> Option<bool> {
        let message = format!("{key} must be yes or no");
        self.choice(
            key,
            |s| match s {
                "yes" => Some(true),
                "no" => Some(false),
                _ => None,
            },
            &message,
        )
    }

    fn number(&mut self, key: &str, range: std::ops::RangeInclusive<u32>, message: &str) -> Option<u32> {
        let v = self.opt(key)?;
        // Digits only: `u32::from_str` also takes `+3`.
        let digits = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
        match v.parse::<u32>() {
            Ok(n) if digits && range.contains(&n) => Some(n),
            _ => {
                self.fail(message.to_string());
                None
            }
        }
    }

    /// Degrees within `-max..max`.
    fn coordinate(&mut self, key: &str, max: f64) -> Option<f64> {
        let v = self.opt(key)?;
        match v.parse::<f64>() {
            Ok(x) if x.is_finite() && (-max..=max).contains(&x) => Some(x),
            Ok(x) if x.is_finite() => {
                self.fail(format!("{key} must be within -{max}..{max}"));
                None
            }
            _ => {
                self.fail(format!("{key}: not a number"));
                None
            }
        }
    }

    /// A time as `Timestamp::parse` reads it; kept as written (the engine
    /// knows the county's offset).
    fn time(&mut self, key: &str) -> Option<String> {
        let v = self.opt(key)?;
        match Timestamp::parse(&v, 0) {
            Ok(_) => Some(v),
            Err(e) => {
                self.fail(format!("{key}: {e}"));
                None
            }
        }
    }

    fn page(&mut self) -> Page {
        let message = format!("limit must be 1..{PAGE_LIMIT_MAX}");
        let limit = self.number("limit", 1..=PAGE_LIMIT_MAX, &message);
        let after = self.opt("after");
        Page { limit, after }
    }

    /// Rejects fields the verb did not read, then reports the first problem.
    fn finish(self) -> Result<(), Error> {
        if let Some(i) = self.used.iter().position(|u| !u) {
            return Err(Error::bad_request(format!("unknown field `{}` for {}", self.pairs[i].0, self.verb)));
        }
        match self.problem {
            Some(p) => Err(Error::bad_request(p)),
            None => Ok(()),
        }
    }
}

/// Writes a command as a request line, without a terminator.
///
/// `parse_request(&format_request(&c)) == Ok(c)` for every command the parser
/// can produce (empty strings, for one, it cannot: they are left out on the
/// wire). `ROUTE` never carries `req=`.
pub fn format_request(cmd: &Command) -> String {
    let mut w = Req(cmd.verb().to_string());
    match cmd {
        Command::Auth { token } => w.put("token", token),
        Command::Accept(intake) => w.intake(intake, true),
        Command::Route(intake) => w.intake(intake, false),
        Command::Pull { worker, page } => {
            w.opt("worker", worker);
            w.page(page);
        }
        Command::Claim { case } | Command::Get { case } => w.case(case),
        Command::Note { case, text, req } => {
            w.case(case);
            w.put("text", text);
            w.opt("req", req);
        }
        Command::Return { case, reason } => {
            w.case(case);
            w.put("reason", reason);
        }
        Command::Close { case, result } => {
            w.case(case);
            w.put("result", result);
        }
        Command::Feedback { case, satisfied, score, text } => {
            w.case(case);
            w.put("satisfied", yes_no(*satisfied));
            if let Some(s) = score {
                w.put("score", &s.to_string());
            }
            w.opt("text", text);
        }
        Command::Extend { case, until, reason } => {
            w.case(case);
            w.put("until", until);
            w.put("reason", reason);
        }
        Command::DecideExtension { case, approve, reason } => {
            w.case(case);
            w.put("approve", yes_no(*approve));
            w.opt("reason", reason);
        }
        Command::Dispatch { case, worker } => {
            w.case(case);
            w.put("worker", worker);
        }
        Command::Overdue { township, grid, page } => {
            w.opt("township", township);
            w.opt("grid", grid);
            w.page(page);
        }
        Command::Audit { by, from, to } => {
            if *by != AuditBy::County {
                w.put("by", by.as_str());
            }
            w.opt("from", from);
            w.opt("to", to);
        }
        Command::Token { role, worker, name } => {
            w.put("role", role.as_str());
            w.opt("worker", worker);
            w.opt("name", name);
        }
        Command::Revoke { name } => w.put("name", name),
        Command::Stats { reset } => {
            if *reset {
                w.put("reset", "yes");
            }
        }
        Command::Ping | Command::Help | Command::Quit => {}
    }
    w.0
}

pub(crate) fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// A coordinate as the parser reads it back: in decimals (`131.12`, `131`),
/// unless that is long (`Display` never uses an exponent, and a tiny value
/// such as `1e-300` has over 300 digits, past the parser's 256 characters):
/// then with an exponent, which `f64`'s `Debug` writes exactly.
pub(crate) fn coordinate(x: f64) -> String {
    let s = x.to_string();
    if s.len() <= 32 {
        s
    } else {
        format!("{x:?}")
    }
}

/// A request line being written.
struct Req(String);

impl Req {
    fn put(&mut self, key: &str, value: &str) {
        lex::write_pair(&mut self.0, key, value);
    }

    fn opt(&mut self, key: &str, value: &Option<impl AsRef<str>>) {
        if let Some(v) = value {
            self.put(key, v.as_ref());
        }
    }

    fn case(&mut self, case: &CaseRef) {
        self.put("case", &case.to_string());
    }

    fn page(&mut self, page: &Page) {
        if let Some(l) = page.limit {
            self.put("limit", &l.to_string());
        }
        self.opt("after", &page.after);
    }

    fn intake(&mut self, i: &Intake, with_req: bool) {
        self.put("text", &i.text);
        self.opt("category", &i.category);
        if let Some((lon, lat)) = i.location.point {
            self.put("lon", &coordinate(lon));
            self.put("lat", &coordinate(lat));
        }
        self.opt("grid", &i.location.grid);
        self.opt("address", &i.location.address);
        self.opt("phone", &i.phone);
        self.opt("name", &i.name);
        self.opt("channel", &i.channel);
        if i.priority != Priority::Normal {
            self.put("priority", i.priority.as_str());
        }
        if with_req {
            self.opt("req", &i.req);
        }
    }
}
