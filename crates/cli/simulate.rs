//! `gridline simulate`: a day of hotline traffic against a running server.
//!
//! Operators take calls (Chinese case text, coordinates, addresses, some
//! without a category), supervisors dispatch what routing could not place,
//! workers pull, claim, note and close (a few return a misrouted case),
//! operators make return visits (some residents are not satisfied, and the
//! case goes round again). Everything is pipelined over `--connections`
//! connections. The traffic is a function of `--seed`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use gridline_client::{Client, Reply};
use gridline_registry::{GridKind, Registry};
use hdrhistogram::Histogram;

use crate::serve::load_registry;
use crate::ConfigFlag;

#[derive(Args, Debug)]
pub struct SimulateArgs {
    #[arg(long, default_value = crate::DEFAULT_ADDR)]
    pub addr: String,
    /// Cases to accept (1 to 1,000,000: each day's requests are made in
    /// memory before they are sent, a few hundred bytes a case).
    #[arg(long, default_value_t = 1000,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub cases: usize,
    /// Connections per role (1 to 64: each opens before it authenticates,
    /// and a server takes at most 64 such from one address by default,
    /// `serve --unauthenticated-per-address-max`).
    #[arg(long, default_value_t = 8,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub connections: usize,
    /// Requests each connection keeps in flight (1 to 65,536).
    #[arg(long, default_value_t = 32,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65_536))]
    pub window: usize,
    /// The seed of what the calls say and where they are; each run's
    /// requests are new cases (their request ids carry the run's start).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Request ids `sim-<P>-<n>` instead of the run's own: the same P again
    /// replays a run's calls as retries (answered `duplicate=yes`, then its
    /// workers' steps refused), which tests use to make the server refuse.
    #[arg(long, hide = true)]
    pub req_prefix: Option<String>,
    /// The server's tokens.toml (admin, supervisor and operator tokens are read from it).
    #[arg(long, default_value = "./gridline-data/tokens.toml")]
    pub tokens: PathBuf,
    #[command(flatten)]
    pub config: ConfigFlag,
    /// Seconds to wait for a connection, and for each reply (1 to 86,400):
    /// a server that stops answering ends the run with a message.
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
}

/// Connects to `addr` and authenticates with `token`; the connection and
/// each reply after it are waited for at most `wait` (`--timeout`).
async fn connect(addr: &str, token: Option<&str>, wait: Duration) -> anyhow::Result<Client> {
    let mut c = crate::client::connect(addr, wait).await?;
    if let Some(t) = token {
        c.call(&gridline_client::auth_request(t)).await.map_err(crate::client::named_flag)?.ok()?;
    }
    Ok(c)
}

/// What a worker's script does with a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Returned,
    Closed,
    /// Claimed, and still being worked on at the end of the day.
    InHand,
}

/// SplitMix64: small, fast, and the same everywhere for a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const TEXTS: &[(&str, &str)] = &[
    ("water", "家里水管爆了，一直在漏水，楼下也被淹了"),
    ("water", "小区停水两天了，没有任何通知"),
    ("heating", "暖气不热，屋里只有十几度，老人受不了"),
    ("heating", "供暖管道漏水，请派人维修"),
    ("power", "整栋楼停电了，电梯也停了"),
    ("street_lighting", "路口的路灯坏了好几天，晚上很黑"),
    ("roads", "路面塌陷出现大坑，车辆通行危险"),
    ("sanitation", "垃圾好几天没人清运，味道很大"),
    ("public_order", "夜里有人在街上打架闹事"),
    ("neighbour_dispute", "楼上邻居装修噪音太大，影响休息"),
    ("social_security", "养老保险待遇一直没有到账，想咨询一下"),
    ("market_food_safety", "超市卖过期食品，要求处理"),
    ("gas", "楼道里有很重的燃气味，担心泄漏"),
    ("elevator", "小区电梯坏了一个星期，老人上下楼困难"),
    ("traffic", "路口红绿灯不亮，车辆乱停乱放"),
    ("city_management", "小区门口占道经营，烧烤油烟扰民"),
    ("", "家门口的井盖丢了，很危险"),
    ("", "想反映一下小区物业的问题"),
];

struct Tokens {
    admin: String,
    supervisor: String,
    operator: String,
    workers: HashMap<String, String>,
    /// Live `sim-...` worker tokens an earlier run left behind.
    left_over: Vec<String>,
}

fn read_tokens(path: &PathBuf) -> anyhow::Result<Tokens> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (pass --tokens <data>/tokens.toml)", path.display()))?;
    let file = gridline_server::auth::parse_token_file(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    // A token REVOKE withdrew stays in the file; it no longer authenticates.
    let active = || file.token.iter().filter(|t| t.revoked.is_none());
    let find = |role: &str| active().find(|t| t.role == role).map(|t| t.secret.clone());
    // Worker tokens of an earlier run that could not revoke them (killed
    // with SIGKILL, say) are not used: they are revoked with this run's.
    let is_sim =
        |t: &&gridline_server::auth::Token| t.role == "worker" && t.name.starts_with(SIM_TOKEN_PREFIX);
    let workers = active()
        .filter(|t| t.role == "worker" && !is_sim(t))
        .filter_map(|t| t.worker.clone().map(|w| (w, t.secret.clone())))
        .collect();
    // A run still going (its process alive on this machine) keeps its own.
    let left_over = active().filter(is_sim).filter(|t| !run_alive(&t.name)).map(|t| t.name.clone()).collect();
    let need = |role: &str| {
        find(role).with_context(|| {
            format!("{}: no {role} token (--tokens: the server's tokens.toml)", path.display())
        })
    };
    Ok(Tokens {
        admin: need("admin")?,
        supervisor: need("supervisor")?,
        operator: need("operator")?,
        workers,
        left_over,
    })
}

/// Latencies per verb, in microseconds.
#[derive(Default)]
struct Stats {
    by_verb: HashMap<&'static str, Histogram<u64>>,
    errors: HashMap<String, u64>,
    requests: u64,
}

impl Stats {
    fn record(&mut self, verb: &'static str, d: Duration, reply: &Reply) {
        let h = self
            .by_verb
            .entry(verb)
            .or_insert_with(|| Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds"));
        let _ = h.record((d.as_micros() as u64).max(1));
        self.requests += 1;
        if let Reply::Err { code, .. } = reply {
            *self.errors.entry(format!("{verb} {code}")).or_default() += 1;
        }
    }
    fn merge(&mut self, o: Stats) {
        for (k, h) in o.by_verb {
            match self.by_verb.get_mut(k) {
                Some(m) => {
                    let _ = m.add(&h);
                }
                None => {
                    self.by_verb.insert(k, h);
                }
            }
        }
        for (k, n) in o.errors {
            *self.errors.entry(k).or_default() += n;
        }
        self.requests += o.requests;
    }
}

/// Sends `reqs` over `c` keeping `window` in flight; replies come back in order.
async fn pipeline(
    c: &mut Client,
    reqs: &[(&'static str, String)],
    window: usize,
    stats: &mut Stats,
) -> anyhow::Result<Vec<Reply>> {
    pipeline_telling(c, reqs, window, stats, |_| ()).await
}

/// [`pipeline`], calling `sending(i)` before it sends `reqs[i]`.
async fn pipeline_telling(
    c: &mut Client,
    reqs: &[(&'static str, String)],
    window: usize,
    stats: &mut Stats,
    mut sending: impl FnMut(usize),
) -> anyhow::Result<Vec<Reply>> {
    let mut sent = std::collections::VecDeque::new();
    let mut out = Vec::with_capacity(reqs.len());
    let mut next = 0;
    while out.len() < reqs.len() {
        while next < reqs.len() && sent.len() < window.max(1) {
            sending(next);
            c.send(&reqs[next].1).await?;
            sent.push_back((reqs[next].0, Instant::now()));
            next += 1;
        }
        c.flush().await?;
        let r = c.read_reply().await.map_err(crate::client::named_flag)?;
        let (verb, t0) = sent.pop_front().expect("a request is in flight");
        stats.record(verb, t0.elapsed(), &r);
        out.push(r);
    }
    Ok(out)
}

struct Progress {
    total: usize,
    done: usize,
    last: Instant,
    enabled: bool,
}

impl Progress {
    fn step(&mut self, phase: &str, n: usize) {
        if n == 0 {
            // Nothing new (a connection without cases): the bar stands.
            return;
        }
        self.done += n;
        if self.enabled && (self.last.elapsed() > Duration::from_millis(100) || self.done >= self.total) {
            self.last = Instant::now();
            let w = 30;
            let filled = (self.done.min(self.total) * w) / self.total.max(1);
            err!(
                "\r{phase:<10} [{}{}] {}/{}   ",
                "#".repeat(filled),
                " ".repeat(w - filled),
                self.done,
                self.total
            );
            if self.done >= self.total {
                errln!();
            }
        }
    }
}

/// One `ACCEPT`, written by the protocol's own request writer (so any name
/// or keyword in the county's config is quoted as it must be). A text's
/// category is given, most of the time, only if the registry has it: with
/// another county's config the rest is inferred from the text.
fn make_case(r: &Registry, rng: &mut Rng, i: usize, run: &str) -> String {
    use gridline_model::{Command, Intake, Location, Priority};
    let (cat, text) = TEXTS[rng.below(TEXTS.len())];
    let grids: Vec<_> = r.grids.iter().filter(|g| g.kind != GridKind::Dedicated).collect();
    let g = grids[rng.below(grids.len())];
    let mut intake =
        Intake { text: text.into(), req: Some(format!("sim-{run}-{i}").into()), ..Intake::default() };
    if r.category_idx(cat).is_some() && rng.chance(70) {
        intake.category = Some(cat.into());
    }
    let roll = rng.below(100);
    intake.location = if roll < 75 {
        use geo::BoundingRect;
        let bb = g.polygon.bounding_rect().expect("grids have area");
        // Six decimals, as an operator's map gives them (about 0.1 m).
        let six = |x: f64| (x * 1e6).round() / 1e6;
        let point = (
            six(bb.min().x + bb.width() * (0.2 + 0.6 * rng.unit())),
            six(bb.min().y + bb.height() * (0.2 + 0.6 * rng.unit())),
        );
        Location { point: Some(point), ..Location::default() }
    } else if roll < 90 {
        let com = r.community(g.community);
        let address = format!("{}{}", com.name, g.keywords.first().map(String::as_str).unwrap_or(""));
        Location { address: Some(address.into()), ..Location::default() }
    } else if roll < 97 {
        Location { grid: Some(g.code.as_str().into()), ..Location::default() }
    } else {
        Location { address: Some("不详".into()), ..Location::default() }
    };
    intake.phone = Some(fake_phone(rng).into());
    let p = rng.below(100);
    intake.priority = if p < 5 {
        Priority::Emergency
    } else if p < 20 {
        Priority::Urgent
    } else {
        Priority::Normal
    };
    gridline_protocol::format_request(&Command::Accept(intake))
}

/// A resident's phone number that no resident has: 11 digits like a
/// mainland mobile number (masked the same way, `100****1234`), but
/// starting `10`, which no mobile number does (they start 13 to 19), so a
/// simulated case can never carry, or be mistaken for, a real person's
/// number. (The protocol checks only that a phone looks like a number.)
fn fake_phone(rng: &mut Rng) -> String {
    format!("10{:09}", rng.next() % 1_000_000_000)
}

/// The names of the worker tokens this run issued: revoked when it ends.
type Issued = Arc<std::sync::Mutex<Vec<String>>>;

pub fn run(a: SimulateArgs) -> anyhow::Result<ExitCode> {
    if a.cases == 0 || a.connections == 0 {
        bail!("--cases and --connections must be at least 1");
    }
    let registry = load_registry(&a.config)?;
    let tokens = read_tokens(&a.tokens)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (addr, admin) = (a.addr.clone(), tokens.admin.clone());
    let wait = Duration::from_secs(a.timeout);
    rt.block_on(async {
        if !tokens.left_over.is_empty() {
            errln!(
                "simulate: {} worker token(s) an earlier run left live (named sim-...) will be revoked with this run's",
                tokens.left_over.len()
            );
        }
        let issued = Issued::new(std::sync::Mutex::new(tokens.left_over.clone()));
        let interrupted = interrupted().context("installing the signal handlers")?;
        // Ctrl-C, SIGTERM or SIGHUP drops the run where it stands (its
        // connections close), and the tokens it issued are revoked all the
        // same, within REVOKE_WAIT.
        let result = tokio::select! {
            r = simulate(a, registry, tokens, issued.clone()) => r.with_context(|| format!("simulating against {addr}")),
            sig = interrupted => Ok(ExitCode::from(128 + sig)),
        };
        let names = std::mem::take(&mut *issued.lock().unwrap_or_else(|e| e.into_inner()));
        let revoking = tokio::time::timeout(REVOKE_WAIT, revoke_all(&addr, &admin, &names, wait)).await;
        let revoking = revoking.unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "revoking the {} worker tokens (named {SIM_TOKEN_PREFIX}...): no answer within {REVOKE_WAIT:?}; REVOKE them by name",
                names.len()
            ))
        });
        match (result, revoking) {
            (r, Ok(revoked)) => {
                if revoked > 0 {
                    errln!("simulate: revoked {revoked} worker token(s) (named {SIM_TOKEN_PREFIX}...)");
                }
                r
            }
            (Ok(_), Err(e)) => Err(e),
            (Err(e), Err(revoking)) => {
                errln!("gridline: {revoking:#}");
                Err(e)
            }
        }
    })
}

/// Resolves, with its number, at the first SIGINT, SIGTERM or SIGHUP (the
/// terminal gone: an ssh session dropped); the handlers are installed when
/// this is called.
fn interrupted() -> std::io::Result<impl std::future::Future<Output = u8>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => 2,
                _ = term.recv() => 15,
                _ = hup.recv() => 1,
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            2
        })
    }
}

/// Revokes the worker tokens a run issued (`names`): left live, each would
/// be a working credential in tokens.toml for nothing (a 5,000-case run
/// issued 1,307). A run stopped while its `TOKEN`s were under way may have
/// asked for tokens the server has not made yet (it makes them in turn,
/// each a rewrite and sync of tokens.toml): a name that is `not_found` is
/// asked for again for a few seconds, and then taken to be one the server
/// never made.
async fn revoke_all(addr: &str, admin: &str, names: &[String], wait: Duration) -> anyhow::Result<usize> {
    if names.is_empty() {
        return Ok(0);
    }
    let left = |e: anyhow::Error| {
        e.context(format!(
            "revoking the {} worker tokens this run issued (named sim-...: the next `gridline simulate` with \
             the same --tokens revokes them, or REVOKE them by name)",
            names.len()
        ))
    };
    let mut c = connect(addr, Some(admin), wait).await.map_err(left)?;
    let (mut todo, mut failed, mut revoked) = (names.to_vec(), Vec::new(), 0);
    let t0 = Instant::now();
    while !todo.is_empty() {
        let reqs: Vec<(&'static str, String)> =
            todo.iter().map(|n| ("REVOKE", format!("REVOKE name={n}"))).collect();
        let replies = pipeline(&mut c, &reqs, 64, &mut Stats::default()).await.map_err(left)?;
        let mut again = Vec::new();
        for (n, r) in todo.into_iter().zip(replies) {
            match r {
                // Already revoked (by another run that found it left over): done.
                Reply::Ok { .. } => revoked += 1,
                Reply::Err { code, .. } if code == "conflict" => revoked += 1,
                Reply::Err { code, .. } if code == "not_found" => again.push(n),
                Reply::Err { code, message } => failed.push(format!("{n} ({code} {message})")),
            }
        }
        todo = again;
        if t0.elapsed() > Duration::from_secs(5) {
            break;
        }
        if !todo.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    if !failed.is_empty() {
        let more = failed.len().saturating_sub(5);
        let shown = failed[..failed.len().min(5)].join(", ");
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        bail!("{} worker token(s) this run issued are still live: {shown}{more}", failed.len());
    }
    Ok(revoked)
}

/// Whether the run that issued the `sim-` token `name` (`sim-<secs>-<pid>-<worker>`)
/// is another process still running on this machine: its tokens are its own
/// to revoke. (A process id taken again since leaves them to a later run.)
fn run_alive(name: &str) -> bool {
    let Some(pid) = name.strip_prefix(SIM_TOKEN_PREFIX).and_then(|r| r.split('-').nth(1)) else {
        return false;
    };
    match pid.parse::<u32>() {
        Ok(pid) if pid != std::process::id() => std::path::Path::new(&format!("/proc/{pid}")).exists(),
        _ => false,
    }
}

/// What the name of every worker token `simulate` issues starts with.
const SIM_TOKEN_PREFIX: &str = "sim-";

/// How long revoking a run's tokens may take before it gives up, saying
/// which are left (a server that stopped answering).
const REVOKE_WAIT: Duration = Duration::from_secs(60);

/// The name of the token a run tagged `run` issues for `worker`: it says
/// `simulate` made it, and, since a name is never given twice in a data
/// directory (revoked ones keep theirs), it differs from every other run's.
fn sim_token_name(run: &str, worker: &str) -> String {
    format!("{SIM_TOKEN_PREFIX}{run}-{worker}")
}

async fn simulate(
    a: SimulateArgs,
    registry: Arc<Registry>,
    mut tokens: Tokens,
    issued: Issued,
) -> anyhow::Result<ExitCode> {
    // Seconds since 1970 and the process id: a name no earlier run took.
    let run = format!(
        "{}-{}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        std::process::id()
    );
    let mut rng = Rng::new(a.seed);
    let wait = Duration::from_secs(a.timeout);
    let conns = a.connections;
    // A bar redrawn with `\r` is for a terminal, not a pipe or a log file.
    let enabled = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut progress = Progress { total: a.cases, done: 0, last: Instant::now(), enabled };
    let mut stats = Stats::default();
    let t0 = Instant::now();

    // 1. Operators take the calls.
    // A run's request ids are its own: the same seed run again takes new
    // calls, not retries of the last run's (answered duplicate=yes, then
    // refused at every step the cases already took).
    let req_run = a.req_prefix.clone().unwrap_or_else(|| format!("{}-{run}", a.seed));
    let cases: Vec<String> = (0..a.cases).map(|i| make_case(&registry, &mut rng, i, &req_run)).collect();
    let mut tasks = Vec::new();
    for k in 0..conns {
        let mine: Vec<(&'static str, String)> =
            cases.iter().skip(k).step_by(conns).map(|l| ("ACCEPT", l.clone())).collect();
        let (addr, tok, window) = (a.addr.clone(), tokens.operator.clone(), a.window);
        tasks.push(tokio::spawn(async move {
            let mut c = connect(&addr, Some(&tok), wait).await?;
            let mut st = Stats::default();
            let r = pipeline(&mut c, &mine, window, &mut st).await?;
            anyhow::Ok((r, st))
        }));
    }
    let mut open: Vec<(String, Option<String>)> = Vec::new(); // (case no, worker)
    for t in tasks {
        let (replies, st) = t.await??;
        stats.merge(st);
        progress.step("accept", replies.len());
        for r in replies {
            if let Reply::Ok { fields, .. } = r {
                open.push((
                    fields.get("no").unwrap_or_default().to_string(),
                    fields.get("worker").map(str::to_string),
                ));
            }
        }
    }
    let accepted = open.len();
    let intake_secs = t0.elapsed().as_secs_f64();

    let mut sup = connect(&a.addr, Some(&tokens.supervisor), wait).await?;
    let mut admin = connect(&a.addr, Some(&tokens.admin), wait).await?;
    let mut op = connect(&a.addr, Some(&tokens.operator), wait).await?;
    let all_workers: Vec<String> = registry
        .workers
        .iter()
        .filter(|w| w.kind == gridline_registry::WorkerKind::FullTime)
        .map(|w| w.id.clone())
        .collect();
    let (mut returned, mut reopened, mut closed, mut manual, mut in_hand) = (0, 0, 0, 0, 0);
    // Who was asked to return each case: a supervisor does not send it back
    // to them (the server refuses that: a returned case never goes back).
    let mut returned_by: HashMap<String, Vec<String>> = HashMap::new();
    for round in 0..4 {
        if open.is_empty() {
            break;
        }
        // 2. Supervisors dispatch what waits at the command centre.
        // A registry without full-time workers (or none but those who
        // returned the case) leaves it waiting.
        let mut dispatched: HashMap<&str, usize> = HashMap::new();
        let mut waiting: Vec<(&'static str, String)> = Vec::new();
        for (no, _) in open.iter().filter(|(_, w)| w.is_none()) {
            let not = returned_by.get(no).map_or(&[][..], Vec::as_slice);
            let can: Vec<&String> = all_workers.iter().filter(|w| !not.contains(w)).collect();
            if let Some(w) = can.get(rng.below(can.len().max(1))) {
                dispatched.insert(no, waiting.len());
                waiting.push(("DISPATCH", format!("DISPATCH case={no} worker={w}")));
            }
        }
        let replies = pipeline(&mut sup, &waiting, a.window, &mut stats).await?;
        manual += replies.iter().filter(|r| r.is_ok()).count();
        let mut by_worker: HashMap<String, Vec<String>> = HashMap::new();
        for (no, w) in &open {
            let w = match w {
                Some(w) => Some(w.clone()),
                // Its DISPATCH's reply; none: nobody to send it to (it waits on).
                None => match dispatched.get(no.as_str()).and_then(|&i| replies.get(i)) {
                    Some(Reply::Ok { fields, .. }) => fields.get("worker").map(str::to_string),
                    _ => None,
                },
            };
            if let Some(w) = w {
                by_worker.entry(w).or_default().push(no.clone());
            }
        }
        // Tokens for workers who have none yet, named for this run, and
        // revoked when it ends (see `run`): counted as issued as they are
        // asked for, so that a run stopped meanwhile revokes them too.
        let missing: Vec<(String, String)> = by_worker
            .keys()
            .filter(|w| !tokens.workers.contains_key(*w))
            .map(|w| (w.clone(), sim_token_name(&run, w)))
            .collect();
        let asked = |i: usize| issued.lock().unwrap_or_else(|e| e.into_inner()).push(missing[i].1.clone());
        let missing: Vec<(&'static str, String)> = missing
            .iter()
            .map(|(w, name)| ("TOKEN", format!("TOKEN role=worker worker={w} name={name}")))
            .collect();
        for r in pipeline_telling(&mut admin, &missing, a.window, &mut stats, asked).await? {
            let (f, _) = r.ok()?;
            tokens.workers.insert(
                f.get("worker").unwrap_or_default().to_string(),
                f.get("secret").unwrap_or_default().to_string(),
            );
        }
        // 3. Workers pull, claim, note, close — or return a misrouted case.
        let mut scripts: Vec<Vec<(&'static str, String)>> = vec![Vec::new(); conns];
        // Per connection: (case no, returned or else closed or in hand, the
        // index in its script of the request that did it). What the summary
        // counts is what the server did, not what was asked.
        let mut outcomes: Vec<Vec<(String, Step, usize)>> = vec![Vec::new(); conns];
        let mut workers: Vec<_> = by_worker.into_iter().collect();
        workers.sort();
        for (i, (w, nos)) in workers.into_iter().enumerate() {
            let s = &mut scripts[i % conns];
            s.push(("AUTH", gridline_client::auth_request(&tokens.workers[&w])));
            s.push(("PULL", "PULL limit=20".to_string()));
            for no in nos {
                // 3% misrouted; 6% still being worked on at the end of the day.
                let roll = rng.below(100);
                if round < 2 && roll < 3 {
                    returned_by.entry(no.clone()).or_default().push(w.clone());
                    s.push(("RETURN", format!("RETURN case={no} reason=\"不属于本网格，请重新分派\"")));
                    outcomes[i % conns].push((no, Step::Returned, s.len() - 1));
                } else if roll >= 94 {
                    s.push(("CLAIM", format!("CLAIM case={no}")));
                    outcomes[i % conns].push((no.clone(), Step::InHand, s.len() - 1));
                    s.push(("NOTE", format!("NOTE case={no} req={no}-{round} text=\"配件未到，明天继续\"")));
                } else {
                    s.push(("CLAIM", format!("CLAIM case={no}")));
                    s.push(("NOTE", format!("NOTE case={no} req={no}-{round} text=\"已到现场，正在处理\"")));
                    s.push(("CLOSE", format!("CLOSE case={no} result=\"已处理完毕\"")));
                    outcomes[i % conns].push((no, Step::Closed, s.len() - 1));
                }
            }
        }
        let mut tasks = Vec::new();
        for s in scripts {
            let (addr, window) = (a.addr.clone(), a.window);
            tasks.push(tokio::spawn(async move {
                let mut c = connect(&addr, None, wait).await?;
                let mut st = Stats::default();
                let r = pipeline(&mut c, &s, window, &mut st).await?;
                anyhow::Ok((r, st))
            }));
        }
        let mut done = Vec::new();
        for t in tasks {
            let (r, st) = t.await??;
            stats.merge(st);
            done.push(r);
        }
        // 4. Return visits; the returned cases were routed again. A step the
        // server refused is among the errors, and the case goes no further.
        // (case no, the index of its unhappy FEEDBACK, if that reopens it)
        let mut next_open: Vec<(String, Option<usize>)> = Vec::new();
        let mut visits = Vec::new();
        let steps = outcomes.into_iter().enumerate().flat_map(|(k, o)| o.into_iter().map(move |x| (k, x)));
        for (k, (no, step, at)) in steps {
            if !done[k][at].is_ok() {
                continue;
            }
            match step {
                Step::InHand => in_hand += 1,
                Step::Returned => {
                    returned += 1;
                    next_open.push((no, None));
                }
                Step::Closed => {
                    closed += 1;
                    // Unhappy residents: the case is reopened (in the last round they stay unhappy).
                    let unhappy = rng.chance(if round < 2 { 8 } else { 3 });
                    let line = if unhappy {
                        format!("FEEDBACK case={no} satisfied=no score=2 text=\"问题没有解决\"")
                    } else {
                        format!("FEEDBACK case={no} satisfied=yes score={}", 4 + rng.below(2))
                    };
                    visits.push(("FEEDBACK", line));
                    if unhappy && round < 3 {
                        next_open.push((no, Some(visits.len() - 1)));
                    }
                }
            }
        }
        let heard = pipeline(&mut op, &visits, a.window, &mut stats).await?;
        next_open.retain(|(_, visit)| visit.is_none_or(|v| heard[v].is_ok()));
        reopened += next_open.iter().filter(|(_, visit)| visit.is_some()).count();
        let next_open: Vec<String> = next_open.into_iter().map(|(no, _)| no).collect();
        // Where did the returned and reopened cases go?
        let gets: Vec<(&'static str, String)> =
            next_open.iter().map(|no| ("GET", format!("GET case={no}"))).collect();
        open = pipeline(&mut sup, &gets, a.window, &mut stats)
            .await?
            .into_iter()
            .zip(next_open)
            .map(|(r, no)| {
                let w = match &r {
                    Reply::Ok { fields, .. } if fields.get("status") == Some("dispatched") => {
                        fields.get("worker").map(str::to_string)
                    }
                    _ => None,
                };
                (no, w)
            })
            .collect();
    }
    let secs = t0.elapsed().as_secs_f64();
    let audit = sup.call("AUDIT by=county").await?;

    outln!(
        "simulated {} calls: {accepted} accepted ({:.0} cases/s intake over {conns} connections)",
        a.cases,
        accepted as f64 / intake_secs
    )?;
    outln!(
        "  {manual} dispatched by hand, {returned} returned, {reopened} reopened, {closed} closings, {in_hand} still in hand"
    )?;
    outln!("  {} requests in {secs:.2}s: {:.0} requests/s", stats.requests, stats.requests as f64 / secs)?;
    outln!("  latency (ms)      count      p50      p90      p99     p999      max")?;
    let mut verbs: Vec<_> = stats.by_verb.iter().collect();
    verbs.sort_by_key(|(k, _)| *k);
    for (verb, h) in verbs {
        let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
        outln!(
            "  {verb:<10} {:>12} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            h.len(),
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            h.max() as f64 / 1000.0
        )?;
    }
    if !stats.errors.is_empty() {
        let mut e: Vec<_> = stats.errors.iter().collect();
        e.sort();
        outln!("  errors: {}", e.iter().map(|(k, n)| format!("{k} x{n}")).collect::<Vec<_>>().join(", "))?;
    }
    if let Reply::Ok { items, .. } = audit {
        for (_, row) in items {
            outln!(
                "  audit: {}",
                row.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
            )?;
        }
    }
    if accepted == 0 && a.cases > 0 {
        errln!("simulate: not one case was accepted (see the errors above)");
        return Ok(ExitCode::FAILURE);
    }
    let refused: u64 = stats.errors.values().sum();
    if refused > 0 {
        errln!(
            "simulate: the server refused {refused} of {} requests (see the errors above)",
            stats.requests
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token of a run whose process still runs here is that run's to
    /// revoke; of one gone (or this one), the next run's.
    #[test]
    fn only_a_gone_runs_tokens_are_left_over() {
        let name = |pid: &str| format!("{SIM_TOKEN_PREFIX}1795870000-{pid}-W00001");
        assert!(run_alive(&name("1")), "pid 1 runs");
        assert!(!run_alive(&name(&std::process::id().to_string())), "this run's own");
        assert!(!run_alive(&name("4294967295")));
        assert!(!run_alive(&name("x")) && !run_alive("sim-") && !run_alive("W00001"));
    }

    /// The phones of simulated calls: 11 digits, never a mobile number's
    /// prefix (13-19), and the request still parses as an ACCEPT with it.
    #[test]
    fn simulated_phones_cannot_be_real_mobile_numbers() {
        let r = gridline_registry::embedded::jidong();
        let mut rng = Rng::new(7);
        for i in 0..500 {
            let line = make_case(r, &mut rng, i, "7-run");
            let Ok(gridline_model::Command::Accept(intake)) = gridline_protocol::parse_request(&line) else {
                panic!("not an ACCEPT: {line}");
            };
            let phone = intake.phone.expect("a phone");
            assert!(phone.len() == 11 && phone.bytes().all(|b| b.is_ascii_digit()), "{phone}");
            assert!(phone.starts_with("10"), "{phone}");
        }
    }

    #[test]
    fn token_names_say_simulate_made_them() {
        let n = sim_token_name("1764000000-4242", "W00012");
        assert_eq!(n, "sim-1764000000-4242-W00012");
        assert!(gridline_server::auth::check_name(&n).is_ok());
    }
}
