//! End to end: Gridline over loopback against a PostgreSQL peer and the
//! physical ceilings, in one run.
//!
//! `cargo build --release && cargo bench --bench e2e` (a `harness = false`
//! binary; it runs `target/release/gridline`, found next to the bench
//! executable's `deps/` directory, or at `GRIDLINE_BIN`). Prints a table:
//!
//! 1. Gridline: accepted cases/s at `E2E_CONNS` (32) connections, each
//!    pipelining `E2E_WINDOW` (64) requests, with p50/p99/p999 ack latency;
//!    the same at half of that rate (paced, open loop: latency counts from
//!    the intended send time), with the server's own figures for that run
//!    from `STATS`; the full lifecycle (accept, pull, claim, close,
//!    feedback) in complete cases/s. A connection refills its window
//!    once for every reply that arrived together, in one write.
//! 2. PostgreSQL 15: a throwaway cluster (`initdb` in a temp dir, run as the
//!    `postgres` user, 127.0.0.1 on a free port, `fsync=on`,
//!    `synchronous_commit=on`), the same routing decision computed by the
//!    client, one transaction per case over as many connections, each with
//!    one transaction in flight (no pipelining); workers claim with
//!    `FOR UPDATE SKIP LOCKED`. Skipped, saying why, when it cannot run.
//! 3. Ceilings: sled's raw batch+flush+fsync rate for records of a real
//!    case's sizes (measured right after the peak run it is compared
//!    with, since rates on a shared machine drift), the disk's 4 KiB write+fdatasync rate and its latency (10 s), and the server's
//!    no-storage echo rate (PING pipelined at the same concurrency).
//! 4. Ratios.
//!
//! Knobs: `E2E_CASES` (accepts per run, 100,000), `E2E_LIFECYCLE_CASES`
//! (30,000), `E2E_PG_CASES` (20,000), `E2E_SECS` (time limit of each run,
//! 60), `E2E_HALF_RATE` (the paced run's offered rate, accepts/s, instead
//! of half the measured peak: to compare two builds at the same load),
//! `E2E_HALF_CASES` (the paced run's count; default ten seconds of it),
//! `E2E_BIG=1` (resident memory, disk bytes per case and restart time
//! after kill -9 with `E2E_BIG_CASES`, 1,000,000, in the log; with
//! `E2E_BIG_KEEP=DIR`, the killed server's data directory is also copied
//! to DIR, to time more restarts on). Every loop is
//! bounded in count and in time; all traffic stays on 127.0.0.1.

mod common;

/// How long a reply may take before the run fails (a hung server), and a
/// start (a recovery of 1,000,000 cases takes seconds).
const REPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(120);
const START_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// The driver shares the two cores with the server: glibc's malloc was
/// about 15% of its time in the lifecycle run.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use common::{dir_bytes, env_usize, intakes, measure_shape, sled_raw, Layout};

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gridline_client::{Client, ClientError};
use gridline_model::{Intake, Priority, Timestamp};
use gridline_registry::Registry;
use gridline_routing::{RouteRequest, Router};
use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Semaphore};

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds")
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

// ---------------------------------------------------------------- workload

fn accept_line(intake: &Intake, req: &str) -> String {
    let mut l = format!("ACCEPT req={req} text=\"{}\"", intake.text);
    if let Some(c) = &intake.category {
        l.push_str(&format!(" category={c}"));
    }
    if let Some((x, y)) = intake.location.point {
        l.push_str(&format!(" lon={x:.6} lat={y:.6}"));
    }
    if let Some(p) = &intake.phone {
        l.push_str(&format!(" phone={p}"));
    }
    if intake.priority == Priority::Urgent {
        l.push_str(" priority=urgent");
    }
    l
}

// ---------------------------------------------------------------- the server

struct Server {
    child: Option<Child>,
    addr: String,
    tokens: HashMap<String, String>,
}

fn gridline_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GRIDLINE_BIN") {
        return PathBuf::from(p);
    }
    // target/release/deps/e2e-HASH -> target/release/gridline
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join("gridline")
}

/// Writes tokens.toml before the first start: admin, supervisor, operator
/// and one token per worker (TOKEN over the wire rewrites and fsyncs the file
/// per worker; 2,491 of them would dominate the setup).
fn write_tokens(data: &Path, reg: &Registry) -> HashMap<String, String> {
    std::fs::create_dir_all(data).expect("data dir");
    let mut seed =
        Instant::now().elapsed().as_nanos() as u64 ^ std::process::id() as u64 ^ 0x9E37_79B9_7F4A_7C15;
    let mut secret = || {
        let mut s = String::new();
        for _ in 0..2 {
            seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            s.push_str(&format!("{:016x}", z ^ (z >> 31)));
        }
        s
    };
    let mut text = String::from("# Gridline tokens written by the e2e bench.\n");
    let mut map = HashMap::new();
    for role in ["admin", "supervisor", "operator"] {
        let s = secret();
        text.push_str(&format!("[[token]]\nrole = \"{role}\"\nname = \"{role}\"\nsecret = \"{s}\"\n\n"));
        map.insert(role.to_string(), s);
    }
    for w in &reg.workers {
        let s = secret();
        text.push_str(&format!(
            "[[token]]\nrole = \"worker\"\nname = \"{}\"\nsecret = \"{s}\"\nworker = \"{}\"\n\n",
            w.id, w.id
        ));
        map.insert(format!("worker:{}", w.id), s);
    }
    let p = data.join("tokens.toml");
    std::fs::write(&p, text).expect("tokens.toml");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod tokens.toml");
    map
}

impl Server {
    fn start(data: &Path, tokens: HashMap<String, String>) -> Server {
        let bin = gridline_bin();
        assert!(
            bin.exists(),
            "{} is missing: run `cargo build --release` first (or set GRIDLINE_BIN)",
            bin.display()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.with_extension("log"))
            .expect("server log");
        let mut cmd = Command::new(&bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"]).arg(data).stdout(Stdio::piped()).stderr(log);
        // Killed with the bench, should it be killed: started from the
        // main thread (the signal follows the thread that forked), which
        // lives as long as the bench.
        // SAFETY: only an async-signal-safe call between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("start gridline serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) =
                    line.strip_prefix("gridline: serving ").and_then(|l| l.rsplit(" on ").next())
                {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(START_WAIT) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(data.with_extension("log")).unwrap_or_default();
                panic!("the server did not start; its log:\n{log}");
            }
        };
        Server { child: Some(child), addr, tokens }
    }

    fn token(&self, k: &str) -> String {
        self.tokens[k].clone()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn rss_bytes(&self) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let l = s.lines().find(|l| l.starts_with("VmRSS:"))?;
        Some(l.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    }

    /// The CPU time the server has used so far, user and system (from
    /// `/proc`, at the kernel's usual 100 ticks a second). Steadier than a
    /// rate on a machine shared with other work: what a build costs per
    /// case, whatever else took the cores.
    fn cpu_secs(&self) -> Option<f64> {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // Fields after the command's closing parenthesis: state is the 3rd
        // field of the line, utime and stime the 14th and 15th.
        let rest = &s[s.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        Some(ticks as f64 / 100.0)
    }

    /// [`Server::cpu_secs`] once the server has gone quiet (no tick in
    /// 200 ms, or 10 s at most): the work a run leaves behind it, sled's
    /// applier catching up with the write-ahead log, counts for that run.
    fn cpu_secs_settled(&self) -> Option<f64> {
        let mut last = self.cpu_secs()?;
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.cpu_secs()?;
            if now - last < 0.005 {
                return Some(now);
            }
            last = now;
        }
        Some(last)
    }

    /// SIGTERM, and the wait for a clean stop (SIGKILL after a minute).
    fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: a signal to the child this bench started.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let t0 = Instant::now();
            while c.try_wait().ok().flatten().is_none() {
                if t0.elapsed() > Duration::from_secs(60) {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

// ---------------------------------------------------------------- load drivers

/// How a connection sends: keep `window` requests in flight, or send each at
/// its scheduled time (open loop).
#[derive(Clone, Copy)]
enum Pace {
    Window(usize),
    Every { start: Instant, interval: Duration },
}

#[derive(Default)]
struct Tally {
    ok: usize,
    err: HashMap<String, usize>,
}

/// Sends single-line-reply requests (`ACCEPT`, `PING`) on one connection,
/// reading replies as they come; latency from the send (or the scheduled
/// send) to the reply line; and, for a paced run, how late each was sent.
async fn conn_run(
    addr: String,
    auth: Option<String>,
    lines: Vec<String>,
    pace: Pace,
    deadline: Instant,
) -> std::io::Result<(Histogram<u64>, Tally, Histogram<u64>)> {
    let stream = tokio::net::TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (r, w) = stream.into_split();
    let mut rd = tokio::io::BufReader::new(r);
    let mut wr = tokio::io::BufWriter::with_capacity(64 * 1024, w);
    let mut line = String::new();
    if let Some(tok) = auth {
        wr.write_all(format!("AUTH token={tok}\n").as_bytes()).await?;
        wr.flush().await?;
        tokio::time::timeout(REPLY_WAIT, rd.read_line(&mut line))
            .await
            .map_err(|_| std::io::Error::other(format!("no reply to AUTH within {REPLY_WAIT:?}")))??;
        if !line.starts_with("OK") {
            return Err(std::io::Error::other(format!("AUTH refused: {line}")));
        }
    }
    let window = match pace {
        Pace::Window(w) => w.max(1),
        Pace::Every { .. } => 1 << 20,
    };
    let permits = Arc::new(Semaphore::new(window));
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let n = lines.len();
    let writer = {
        let permits = permits.clone();
        tokio::spawn(async move {
            let mut sent = 0;
            // How late each paced request goes out after its intended time:
            // the driver's own share of the latency it reports (tokio's
            // timers wake on a millisecond tick, and the cores are shared).
            let mut late = hist();
            for (i, l) in lines.into_iter().enumerate() {
                if Instant::now() > deadline {
                    break;
                }
                let at = match pace {
                    Pace::Every { start, interval } => {
                        let at = start + interval * i as u32;
                        let now = Instant::now();
                        if at > now {
                            wr.flush().await?;
                            tokio::time::sleep(at - now).await;
                        }
                        at
                    }
                    Pace::Window(_) => Instant::now(),
                };
                let permit = match permits.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        wr.flush().await?;
                        permits.clone().acquire_owned().await.expect("semaphore open")
                    }
                };
                permit.forget();
                let at = if matches!(pace, Pace::Window(_)) {
                    Instant::now()
                } else {
                    let _ = late.record((at.elapsed().as_micros() as u64).max(1));
                    at
                };
                wr.write_all(l.as_bytes()).await?;
                wr.write_all(b"\n").await?;
                let _ = tx.send(at);
                sent += 1;
            }
            wr.flush().await?;
            drop(tx);
            std::io::Result::Ok((sent, wr, late))
        })
    };
    let mut h = hist();
    let mut tally = Tally::default();
    let (mut got, mut freed) = (0, 0);
    while let Some(at) = rx.recv().await {
        line.clear();
        // A server that stops answering fails the run instead of hanging it.
        let read = tokio::time::timeout(REPLY_WAIT, rd.read_line(&mut line)).await;
        if read.map_err(|_| std::io::Error::other(format!("no reply within {REPLY_WAIT:?}")))?? == 0 {
            return Err(std::io::Error::other("the server closed the connection"));
        }
        let _ = h.record((at.elapsed().as_micros() as u64).max(1));
        got += 1;
        // The window reopens by every reply that has arrived at once, so
        // that the writer refills it in one write (see `pipeline`).
        freed += 1;
        if !rd.buffer().contains(&b'\n') {
            permits.add_permits(std::mem::take(&mut freed));
        }
        if line.starts_with("OK") {
            tally.ok += 1;
        } else {
            let code = line.split_whitespace().nth(1).unwrap_or("?").to_string();
            *tally.err.entry(code).or_default() += 1;
        }
    }
    let (sent, _wr, late) = writer.await.expect("writer task")?;
    debug_assert_eq!(sent, got);
    let _ = n;
    Ok((h, tally, late))
}

struct LoadResult {
    done: usize,
    secs: f64,
    lat: Histogram<u64>,
    errors: HashMap<String, usize>,
    /// Paced runs: how late the driver sent each request (empty otherwise).
    late: Histogram<u64>,
}

impl LoadResult {
    fn rate(&self) -> f64 {
        self.done as f64 / self.secs
    }
}

/// Spreads `lines` over `conns` connections and runs them together.
fn load(
    rt: &tokio::runtime::Runtime,
    addr: &str,
    auth: Option<String>,
    lines: Vec<String>,
    conns: usize,
    pace: impl Fn(usize) -> Pace,
    limit: Duration,
) -> LoadResult {
    let mut per: Vec<Vec<String>> = vec![Vec::new(); conns];
    for (i, l) in lines.into_iter().enumerate() {
        per[i % conns].push(l);
    }
    let t0 = Instant::now();
    let deadline = t0 + limit;
    let results: Vec<_> = rt.block_on(async {
        let tasks: Vec<_> = per
            .into_iter()
            .enumerate()
            .map(|(k, ls)| tokio::spawn(conn_run(addr.to_string(), auth.clone(), ls, pace(k), deadline)))
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("connection task").expect("connection"));
        }
        out
    });
    let secs = t0.elapsed().as_secs_f64();
    let (mut lat, mut late) = (hist(), hist());
    let mut errors = HashMap::new();
    let mut done = 0;
    for (h, t, l) in results {
        lat.add(&h).expect("same bounds");
        late.add(&l).expect("same bounds");
        done += t.ok;
        for (k, v) in t.err {
            *errors.entry(k).or_default() += v;
        }
    }
    LoadResult { done, secs, lat, errors, late }
}

/// Sends `reqs` over `c` keeping `window` in flight; returns each reply's
/// first line, in order. Reading stays cheap, since the driver shares the
/// cores with the server: only a `PULL` reply's `count=` is parsed, to skip
/// its item lines.
async fn pipeline(c: &mut Client, reqs: &[String], window: usize) -> Result<Vec<String>, ClientError> {
    let mut inflight = 0;
    let mut next = 0;
    let mut out = Vec::with_capacity(reqs.len());
    while out.len() < reqs.len() {
        while next < reqs.len() && inflight < window {
            c.send(&reqs[next]).await?;
            next += 1;
            inflight += 1;
        }
        c.flush().await?;
        // Every reply that has arrived, before the window is refilled: the
        // server answers a batch's requests together, and one write of the
        // requests that take their places costs the driver (and the server's
        // reads) far less than one write a request.
        loop {
            let line = reply_line(c).await?;
            if reqs[out.len()].starts_with("PULL") {
                let items = field(&line, "count").and_then(|n| n.parse().ok()).unwrap_or(0);
                for _ in 0..items {
                    reply_line(c).await?;
                }
            }
            out.push(line);
            inflight -= 1;
            if out.len() == reqs.len() || !c.line_buffered() {
                break;
            }
        }
    }
    Ok(out)
}

/// The next line from the server, or an error once it stays silent for
/// [`REPLY_WAIT`]: a stuck server fails the run instead of hanging it.
async fn reply_line(c: &mut Client) -> Result<String, ClientError> {
    match tokio::time::timeout(REPLY_WAIT, c.read_line()).await {
        Ok(line) => line?.ok_or(ClientError::Closed),
        Err(_) => Err(ClientError::Io(std::io::Error::other(format!("no reply within {REPLY_WAIT:?}")))),
    }
}

/// A bare field of a reply line (` key=value`); enough for the ids and
/// numbers the driver needs, which are never quoted.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[at..];
    Some(&rest[..rest.find(' ').unwrap_or(rest.len())])
}

/// `Some(code)` for an `ERR code ...` line.
fn err_code(line: &str) -> Option<&str> {
    line.strip_prefix("ERR ").map(|r| r.split(' ').next().unwrap_or("?"))
}

struct Lifecycle {
    complete: usize,
    accepted: usize,
    unassigned: usize,
    secs: f64,
    requests: usize,
    errors: HashMap<String, usize>,
}

/// The whole loop at `conns` connections: each connection, in rounds of
/// `round` cases, accepts them as the operator, then for each worker who got
/// some re-AUTHs as that worker, PULLs, CLAIMs and CLOSEs them, then re-AUTHs
/// as the operator and gives FEEDBACK. Everything pipelined.
fn lifecycle(
    rt: &tokio::runtime::Runtime,
    srv: &Server,
    intakes: &[Intake],
    cases: usize,
    conns: usize,
    window: usize,
    limit: Duration,
) -> Lifecycle {
    let round = 256;
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let results: Vec<_> = rt.block_on(async {
        let mut tasks = Vec::new();
        for k in 0..conns {
            let (addr, op) = (srv.addr.clone(), srv.token("operator"));
            let tokens = srv.tokens.clone();
            let next = next.clone();
            let intakes = intakes.to_vec();
            tasks.push(tokio::spawn(async move {
                let mut c =
                    tokio::time::timeout(REPLY_WAIT, Client::connect_auth(&addr, &op)).await.map_err(
                        |_| std::io::Error::other(format!("no reply to AUTH within {REPLY_WAIT:?}")),
                    )??;
                let (mut complete, mut accepted, mut unassigned, mut requests) = (0, 0, 0, 0);
                let mut errors: HashMap<String, usize> = HashMap::new();
                let count = |rs: &[String], errors: &mut HashMap<String, usize>, what: &str| {
                    for r in rs {
                        if let Some(code) = err_code(r) {
                            *errors.entry(format!("{what} {code}")).or_default() += 1;
                        }
                    }
                };
                loop {
                    if Instant::now() - t0 > limit {
                        break;
                    }
                    let first = next.fetch_add(round, Ordering::Relaxed);
                    if first >= cases {
                        break;
                    }
                    let ids: Vec<usize> = (first..(first + round).min(cases)).collect();
                    let reqs: Vec<String> = ids
                        .iter()
                        .map(|&i| accept_line(&intakes[i % intakes.len()], &format!("lc-{k}-{i}")))
                        .collect();
                    let rs = pipeline(&mut c, &reqs, window).await?;
                    requests += rs.len();
                    count(&rs, &mut errors, "ACCEPT");
                    let mut by_worker: HashMap<String, Vec<String>> = HashMap::new();
                    for r in &rs {
                        if r.starts_with("OK") {
                            accepted += 1;
                            match (field(r, "worker"), field(r, "no")) {
                                (Some(w), Some(no)) if !w.is_empty() => {
                                    by_worker.entry(w.to_string()).or_default().push(no.to_string())
                                }
                                _ => unassigned += 1,
                            }
                        }
                    }
                    let mut work = Vec::new();
                    let mut closes = Vec::new();
                    let mut workers: Vec<_> = by_worker.into_iter().collect();
                    workers.sort();
                    for (w, nos) in &workers {
                        work.push(format!("AUTH token={}", tokens[&format!("worker:{w}")]));
                        work.push("PULL limit=20".to_string());
                        for no in nos {
                            work.push(format!("CLAIM case={no}"));
                        }
                        for no in nos {
                            work.push(format!("CLOSE case={no} result=\"已处理完毕\""));
                            closes.push(no.clone());
                        }
                    }
                    work.push(format!("AUTH token={op}"));
                    for no in &closes {
                        work.push(format!("FEEDBACK case={no} satisfied=yes score=5"));
                    }
                    let rs = pipeline(&mut c, &work, window).await?;
                    requests += rs.len();
                    count(&rs, &mut errors, "lifecycle");
                    let fb = &rs[rs.len() - closes.len()..];
                    complete += fb.iter().filter(|r| r.starts_with("OK")).count();
                }
                Ok::<_, ClientError>((complete, accepted, unassigned, requests, errors))
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("lifecycle task").expect("lifecycle connection"));
        }
        out
    });
    let secs = t0.elapsed().as_secs_f64();
    let mut l =
        Lifecycle { complete: 0, accepted: 0, unassigned: 0, secs, requests: 0, errors: HashMap::new() };
    for (c, a, u, r, e) in results {
        l.complete += c;
        l.accepted += a;
        l.unassigned += u;
        l.requests += r;
        for (k, v) in e {
            *l.errors.entry(k).or_default() += v;
        }
    }
    l
}

/// `STATS` as the supervisor (`reset=yes` to start counting afresh):
/// the server's own acknowledgement latency and its commits' phases.
fn stats(rt: &tokio::runtime::Runtime, srv: &Server, reset: bool) -> Option<ServerStats> {
    rt.block_on(async {
        let mut c =
            tokio::time::timeout(REPLY_WAIT, Client::connect_auth(&srv.addr, &srv.token("supervisor")))
                .await
                .ok()?
                .ok()?;
        let line = if reset { "STATS reset=yes" } else { "STATS" };
        let (f, _) = tokio::time::timeout(REPLY_WAIT, c.call(line)).await.ok()?.ok()?.ok().ok()?;
        let get = |k: &str| f.get(k).map(str::to_string);
        let three = |p: &str| {
            Some([get(&format!("{p}p50_ms"))?, get(&format!("{p}p99_ms"))?, get(&format!("{p}max_ms"))?])
        };
        Some(ServerStats {
            ack: three("")?,
            write: three("write_")?,
            sync: three("sync_")?,
            commits: get("commits")?,
            ops_p50: get("commit_ops_p50")?,
        })
    })
}

/// What `STATS` said: p50, p99 and max in ms of acknowledgements, of
/// writing commits to the store, and of the barrier after each.
struct ServerStats {
    ack: [String; 3],
    write: [String; 3],
    sync: [String; 3],
    commits: String,
    ops_p50: String,
}

fn ping_until_ok(addr: &str, limit: Duration) -> Option<Duration> {
    use std::io::Read;
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            if s.write_all(b"PING\n").is_ok() {
                let mut b = [0u8; 64];
                if let Ok(n) = s.read(&mut b) {
                    if b[..n].starts_with(b"OK") {
                        return Some(t0.elapsed());
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

// ---------------------------------------------------------------- ceilings

/// 4 KiB pwrite + fdatasync in a loop, over a preallocated 4 MiB file.
/// The bytes of the case records' and the pages' keys and values in a
/// stopped server's log, as the case log reads them.
fn live_bytes(log: &Path) -> [u64; 2] {
    use gridline_caselog::Store;
    let store = gridline_caselog::SledStore::open(log).expect("open the log to count its bytes");
    let mut out = [0u64; 2];
    for (i, prefix) in
        [gridline_caselog::codec::CASE_PREFIX, gridline_caselog::codec::PAGE_PREFIX].into_iter().enumerate()
    {
        store
            .for_each(&[prefix], &mut |k, v| {
                out[i] += (k.len() + v.len()) as u64;
                true
            })
            .expect("read the log");
    }
    out
}

/// The disk's rate of 4 KiB `pwrite` + `fdatasync` in a preallocated file,
/// one at a time, and the time each took: the write-ahead log's barrier
/// has no better tail than this.
fn fsync_rate(dir: &Path, limit: Duration, max: usize) -> (usize, f64, Histogram<u64>) {
    let p = dir.join("fsync.bin");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(true)
        .open(&p)
        .expect("file");
    f.write_all_at(&vec![0u8; 4 << 20], 0).expect("prealloc");
    f.sync_all().expect("sync");
    let block = vec![0x42u8; 4096];
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    let t0 = Instant::now();
    let mut n = 0;
    while n < max && t0.elapsed() < limit {
        let t = Instant::now();
        f.write_all_at(&block, ((n % 1024) * 4096) as u64).expect("pwrite");
        f.sync_data().expect("fdatasync");
        h.saturating_record(t.elapsed().as_micros() as u64);
        n += 1;
    }
    (n, t0.elapsed().as_secs_f64(), h)
}

// ---------------------------------------------------------------- PostgreSQL

/// Removes the bench's temporary directory `base` (the servers' data, the
/// PostgreSQL peer's cluster) should the bench end without dropping it:
/// Ctrl-C or a kill. A shell in a session of its own (so the terminal's
/// Ctrl-C does not reach it) waits for this process to end (or become a
/// zombie no one reaps), stops the peer if it still runs there (`pg_ctl`
/// starts it in a session of its own, so Ctrl-C never reaches it either),
/// and removes the directory. After a normal end it finds both gone. The
/// servers die with the bench by themselves ([`Server::start`]).
fn watch_temp_dir(base: &Path) {
    let quoted = |p: &Path| p.to_str().filter(|p| !p.contains('\'')).map(str::to_string);
    let Some(dir) = quoted(base) else {
        eprintln!("no watcher for {} (a quote in its path): a killed bench would leave it", base.display());
        return;
    };
    let stop = match pg_bin("pg_ctl").as_deref().and_then(quoted) {
        Some(ctl) => {
            let runuser = if unsafe { libc::geteuid() } == 0 { "runuser -u postgres -- " } else { "" };
            format!("if [ -f '{dir}/pg/data/postmaster.pid' ]; then {runuser}'{ctl}' -D '{dir}/pg/data' -m immediate stop; fi; ")
        }
        None => String::new(),
    };
    let pid = std::process::id();
    let script = format!(
        "while [ -e /proc/{pid} ] && ! grep -q '^State:.*Z' /proc/{pid}/status 2>/dev/null; do sleep 1; done; {stop}rm -rf '{dir}'"
    );
    let spawned = Command::new("setsid")
        .args(["-f", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !spawned.is_ok_and(|s| s.success()) {
        eprintln!(
            "no watcher (setsid): a killed bench would leave {} and a running PostgreSQL peer",
            base.display()
        );
    }
}

struct Pg {
    dir: PathBuf,
    port: u16,
    ctl: PathBuf,
    as_postgres: bool,
}

fn pg_bin(name: &str) -> Option<PathBuf> {
    for d in ["/usr/lib/postgresql/15/bin", "/usr/local/bin", "/usr/bin"] {
        let p = Path::new(d).join(name);
        if p.exists() {
            return Some(p);
        }
    }
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn run_pg(cmd: &Path, args: &[&str], as_postgres: bool) -> Result<String, String> {
    let mut c = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(cmd);
        c
    } else {
        Command::new(cmd)
    };
    let out = c.args(args).output().map_err(|e| format!("{}: {e}", cmd.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {}: {}{}",
            cmd.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Pg {
    fn start(base: &Path) -> Result<Pg, String> {
        let initdb = pg_bin("initdb").ok_or("initdb not found (apt-get install postgresql-15)")?;
        let ctl = pg_bin("pg_ctl").ok_or("pg_ctl not found")?;
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = base.join("pg");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        if as_postgres {
            let chown = |p: &Path| {
                Command::new("chown").args(["-R", "postgres:postgres"]).arg(p).status().map(|s| s.success())
            };
            // The temp dir and its parent must be reachable by postgres.
            std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| e.to_string())?;
            if !matches!(chown(&dir), Ok(true)) {
                return Err("cannot chown the cluster directory to postgres (no postgres user?)".into());
            }
        }
        let data = dir.join("data");
        let d = data.to_str().ok_or("non-UTF-8 path")?;
        run_pg(
            &initdb,
            &["-D", d, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"],
            as_postgres,
        )?;
        let port = free_port();
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on \
             -c full_page_writes=on -c max_connections=100 -c shared_buffers=256MB",
            dir.display()
        );
        let logf = dir.join("pg.log");
        run_pg(
            &ctl,
            &["-D", d, "-o", &opts, "-l", logf.to_str().unwrap_or("pg.log"), "-w", "-t", "60", "start"],
            as_postgres,
        )?;
        Ok(Pg { dir, port, ctl, as_postgres })
    }

    fn connect(&self) -> Result<postgres::Client, String> {
        postgres::Client::connect(
            // A peer that stops answering fails the run instead of hanging it.
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=30 \
                 options='-c statement_timeout=120s'",
                self.port
            ),
            postgres::NoTls,
        )
        .map_err(|e| e.to_string())
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let d = self.dir.join("data");
        let _ =
            run_pg(&self.ctl, &["-D", d.to_str().unwrap_or(""), "-m", "immediate", "stop"], self.as_postgres);
    }
}

const PG_SCHEMA: &str = "
DROP TABLE IF EXISTS events; DROP TABLE IF EXISTS cases;
CREATE TABLE cases (
    id bigserial PRIMARY KEY,
    no text NOT NULL UNIQUE,
    req text UNIQUE,
    text text NOT NULL,
    category text NOT NULL,
    lon double precision, lat double precision,
    phone text, priority text NOT NULL,
    grid text, township text, department text, worker text, rule text NOT NULL,
    status text NOT NULL,
    due_claim timestamptz, due_close timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cases_queue ON cases (worker, status, due_claim);
CREATE TABLE events (
    case_id bigint NOT NULL REFERENCES cases(id),
    seq int NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    kind text NOT NULL,
    detail text,
    PRIMARY KEY (case_id, seq)
);";

const PG_ACCEPT: &str = "INSERT INTO cases (no, req, text, category, lon, lat, phone, priority, grid, township, \
     department, worker, rule, status, due_claim, due_close) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14, \
     now() + interval '2 hours', now() + interval '3 days') RETURNING id";
const PG_EVENT: &str = "INSERT INTO events (case_id, seq, actor, kind, detail) VALUES ($1,$2,$3,$4,$5)";
const PG_CLAIM: &str = "SELECT id FROM cases WHERE worker = $1 AND status = 'dispatched' \
     ORDER BY due_claim LIMIT 1 FOR UPDATE SKIP LOCKED";
const PG_STATUS: &str = "UPDATE cases SET status = $2, updated_at = now() WHERE id = $1";

struct PgResult {
    accept: LoadResult,
    lifecycle: Option<(usize, f64)>,
}

/// The peer's statements, prepared once per connection as any real client
/// (or driver's statement cache) would: a query given as text is prepared
/// again every time, a round trip and a parse more, which halved the peer's
/// rate on this machine.
struct PgStmts {
    accept: postgres::Statement,
    event: postgres::Statement,
    claim: postgres::Statement,
    status: postgres::Statement,
}

impl PgStmts {
    fn prepare(c: &mut postgres::Client) -> Result<PgStmts, postgres::Error> {
        Ok(PgStmts {
            accept: c.prepare(PG_ACCEPT)?,
            event: c.prepare(PG_EVENT)?,
            claim: c.prepare(PG_CLAIM)?,
            status: c.prepare(PG_STATUS)?,
        })
    }
}

/// One accept transaction: the case row (routing decided by the client, as
/// Gridline decides it in the engine) and its accepted and dispatched (or
/// waiting) events, the latter with the decision's reasons as Gridline's has.
fn pg_accept(
    c: &mut postgres::Client,
    st: &PgStmts,
    router: &Router,
    intake: &Intake,
    no: &str,
) -> Result<(i64, Option<String>), postgres::Error> {
    let routed = router.route(&RouteRequest { intake, at: Timestamp::now(), exclude: &[] }, &[]);
    let d = &routed.decision;
    let (lon, lat) = intake.location.point.unzip();
    let status = if d.worker.is_some() { "dispatched" } else { "accepted" };
    let priority = format!("{:?}", intake.priority);
    let (text, phone) = (intake.text.as_str(), intake.phone.as_deref());
    let mut tx = c.transaction()?;
    let row = tx.query_one(
        &st.accept,
        &[
            &no,
            &no,
            &text,
            &d.category,
            &lon,
            &lat,
            &phone,
            &priority,
            &d.grid,
            &d.township,
            &d.department,
            &d.worker,
            &d.rule,
            &status,
        ],
    )?;
    let id: i64 = row.get(0);
    tx.execute(&st.event, &[&id, &1i32, &"operator", &"accepted", &Some(intake.text.as_str())])?;
    // As Gridline's event: dispatched (or left waiting) with the decision's reasons.
    let kind = if d.worker.is_some() { "dispatched" } else { "waiting" };
    tx.execute(&st.event, &[&id, &2i32, &"system", &kind, &Some(d.explanation())])?;
    tx.commit()?;
    Ok((id, d.worker.clone()))
}

fn pg_bench(
    base: &Path,
    reg: &Arc<Registry>,
    intakes: &[Intake],
    cases: usize,
    conns: usize,
    limit: Duration,
) -> Result<PgResult, String> {
    let pg = Pg::start(base)?;
    let mut admin = pg.connect()?;
    admin.batch_execute(PG_SCHEMA).map_err(|e| e.to_string())?;
    // Built before the clock starts, as the server builds its own at startup.
    let router = Router::new(reg.clone());
    let run = |lifecycle: bool, cases: usize| -> Result<(usize, f64, Histogram<u64>), String> {
        let next = AtomicUsize::new(0);
        let t0 = Instant::now();
        let per: Vec<Result<(usize, Histogram<u64>), String>> = std::thread::scope(|s| {
            let joins: Vec<_> = (0..conns)
                .map(|k| {
                    let (next, pg, router) = (&next, &pg, &router);
                    s.spawn(move || -> Result<(usize, Histogram<u64>), String> {
                        let mut c = pg.connect()?;
                        let st = PgStmts::prepare(&mut c).map_err(|e| e.to_string())?;
                        let mut h = hist();
                        let mut done = 0;
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= cases || t0.elapsed() > limit {
                                break;
                            }
                            let no = format!("{}-{k}-{i}", if lifecycle { "L" } else { "A" });
                            let t = Instant::now();
                            let (_, worker) =
                                pg_accept(&mut c, &st, router, &intakes[i % intakes.len()], &no)
                                    .map_err(|e| e.to_string())?;
                            if !lifecycle {
                                let _ = h.record((t.elapsed().as_micros() as u64).max(1));
                                done += 1;
                                continue;
                            }
                            let Some(w) = worker else { continue };
                            // The worker claims its earliest case (not necessarily this one),
                            // closes it, and the operator records the feedback: each a transaction.
                            let mut tx = c.transaction().map_err(|e| e.to_string())?;
                            let claimed = tx.query_opt(&st.claim, &[&w]).map_err(|e| e.to_string())?;
                            let Some(row) = claimed else {
                                tx.commit().map_err(|e| e.to_string())?;
                                continue;
                            };
                            let id: i64 = row.get(0);
                            tx.execute(&st.status, &[&id, &"handling"]).map_err(|e| e.to_string())?;
                            tx.execute(&st.event, &[&id, &3i32, &w.as_str(), &"claimed", &None::<String>])
                                .map_err(|e| e.to_string())?;
                            tx.commit().map_err(|e| e.to_string())?;
                            for (seq, status, kind, actor) in [
                                (4i32, "closed", "closed", w.as_str()),
                                (5, "closed", "feedback", "operator"),
                            ] {
                                let mut tx = c.transaction().map_err(|e| e.to_string())?;
                                tx.execute(&st.status, &[&id, &status]).map_err(|e| e.to_string())?;
                                tx.execute(&st.event, &[&id, &seq, &actor, &kind, &Some("已处理完毕")])
                                    .map_err(|e| e.to_string())?;
                                tx.commit().map_err(|e| e.to_string())?;
                            }
                            done += 1;
                        }
                        Ok((done, h))
                    })
                })
                .collect();
            joins.into_iter().map(|j| j.join().expect("pg thread")).collect()
        });
        let secs = t0.elapsed().as_secs_f64();
        let mut h = hist();
        let mut done = 0;
        for r in per {
            let (d, hh) = r?;
            done += d;
            h.add(&hh).expect("bounds");
        }
        Ok((done, secs, h))
    };
    let (done, secs, lat) = run(false, cases)?;
    let accept = LoadResult { done, secs, lat, errors: HashMap::new(), late: hist() };
    let lc_cases = (cases / 2).max(1);
    let lifecycle = match run(true, lc_cases) {
        Ok((d, s, _)) => Some((d, s)),
        Err(e) => {
            eprintln!("postgres lifecycle failed: {e}");
            None
        }
    };
    Ok(PgResult { accept, lifecycle })
}

// ---------------------------------------------------------------- main

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<u64>().unwrap_or(0))
        })
        .unwrap_or(0);
    let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{n} cores, {cpu}, {:.1} GiB", mem as f64 / (1 << 20) as f64)
}

fn lat_cells(h: &Histogram<u64>) -> String {
    format!(
        "{:.2} | {:.2} | {:.2}",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999))
    )
}

/// Ten seconds of accepts (at most `cases`) paced at `rate` a second over
/// `conns` connections, and the server's own latency figures for them.
fn paced(
    rt: &tokio::runtime::Runtime,
    srv: &Server,
    intakes: &[Intake],
    rate: f64,
    secs: f64,
    conns: usize,
    limit: Duration,
) -> (LoadResult, Option<ServerStats>) {
    // `secs` of it (`E2E_HALF_CASES` to choose), whatever the peak run's
    // count: a tail is read over more than a second or two.
    let n = env_usize("E2E_HALF_CASES", ((rate * secs) as usize).max(1000));
    let interval = Duration::from_secs_f64(conns as f64 / rate);
    eprintln!("gridline: {n} accepts paced at {rate:.0}/s...");
    let lines: Vec<String> =
        (0..n).map(|i| accept_line(&intakes[i % intakes.len()], &format!("h-{i}"))).collect();
    stats(rt, srv, true);
    let start = Instant::now() + Duration::from_millis(50);
    let half = load(
        rt,
        &srv.addr,
        Some(srv.token("operator")),
        lines,
        conns,
        |k| Pace::Every { start: start + interval.mul_f64(k as f64 / conns as f64), interval },
        limit,
    );
    (half, stats(rt, srv, false))
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let cases = env_usize("E2E_CASES", if quick { 2_000 } else { 100_000 });
    let lc_cases = env_usize("E2E_LIFECYCLE_CASES", if quick { 1_000 } else { 30_000 });
    let pg_cases = env_usize("E2E_PG_CASES", if quick { 500 } else { 20_000 });
    let limit = Duration::from_secs(env_usize("E2E_SECS", if quick { 20 } else { 60 }) as u64);
    // The paced run: ten seconds (one in a quick run).
    let half_secs = if quick { 1.0 } else { 10.0 };
    let conns = env_usize("E2E_CONNS", 32);
    let window = env_usize("E2E_WINDOW", 64);
    let big = std::env::var("E2E_BIG").is_ok_and(|v| v == "1");
    let big_cases = env_usize("E2E_BIG_CASES", 1_000_000);

    let reg = Arc::new(gridline_registry::embedded::jidong().clone());
    let intakes = intakes(&reg);
    let tmp = tempfile::tempdir().expect("temp dir");
    watch_temp_dir(tmp.path());
    println!("# e2e bench: {}; temp dir {}", machine(), tmp.path().display());
    println!("# {conns} connections, {window} requests in flight each; {cases} accepts, {lc_cases} lifecycles, {pg_cases} PostgreSQL accepts");
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");

    // E2E_ONLY_HALF=1 (with E2E_HALF_RATE): only the paced run, on a fresh
    // server with nothing else running, to compare two builds' tails.
    if std::env::var("E2E_ONLY_HALF").is_ok_and(|v| v == "1") {
        let rate = env_usize("E2E_HALF_RATE", 0);
        assert!(rate > 0, "E2E_ONLY_HALF=1 needs E2E_HALF_RATE");
        let data = tmp.path().join("half");
        let srv = Server::start(&data, write_tokens(&data, &reg));
        let (half, server) = paced(&rt, &srv, &intakes, rate as f64, half_secs, conns, limit);
        let (ack, sync) = server.map_or_else(Default::default, |s| (s.ack.join(" / "), s.sync.join(" / ")));
        println!(
            "| paced ACCEPT at {rate}/s, {} cases | client p50 / p99 / p999 ms {} | driver lateness p50 / p99 / max ms {:.2} / {:.2} / {:.2} | server p50 / p99 / max ms {ack} | barrier {sync} |",
            half.done,
            lat_cells(&half.lat),
            ms(half.late.value_at_quantile(0.5)),
            ms(half.late.value_at_quantile(0.99)),
            ms(half.late.max()),
        );
        return;
    }

    // 1. Gridline: peak accepts, then half of peak, then PING.
    let data_a = tmp.path().join("accept");
    let srv = Server::start(&data_a, write_tokens(&data_a, &reg));
    let lines: Vec<String> =
        (0..cases).map(|i| accept_line(&intakes[i % intakes.len()], &format!("a-{i}"))).collect();
    eprintln!("gridline: {cases} accepts at {conns} connections...");
    let cpu0 = srv.cpu_secs();
    let peak =
        load(&rt, &srv.addr, Some(srv.token("operator")), lines, conns, |_| Pace::Window(window), limit);
    let peak_cpu = srv.cpu_secs_settled().zip(cpu0).map(|(b, a)| b - a);
    // sled's ceiling right after the peak it is compared with: on a shared
    // machine rates drift by a third within minutes.
    let shape = measure_shape(&reg, &intakes);
    eprintln!("ceiling: sled raw...");
    let (raw_n, raw_s) = sled_raw(&tmp.path().join("raw"), &shape, Layout::Paged, 1024, cases, limit);
    let raw_rate = raw_n as f64 / raw_s;
    let _ = std::fs::remove_dir_all(tmp.path().join("raw"));
    // E2E_HALF_RATE: a fixed rate instead (to compare two builds at the
    // same offered load, whatever their peaks).
    let half_rate = match env_usize("E2E_HALF_RATE", 0) {
        0 => peak.rate() / 2.0,
        r => r as f64,
    };
    let (half, half_server) = paced(&rt, &srv, &intakes, half_rate, half_secs, conns, limit);
    let pings = (cases * 10).max(200_000);
    eprintln!("gridline: {pings} PINGs...");
    let ping =
        load(&rt, &srv.addr, None, vec!["PING".to_string(); pings], conns, |_| Pace::Window(window), limit);
    let accept_disk = dir_bytes(&data_a);
    let accept_rss = srv.rss_bytes();
    drop(srv);

    // Full lifecycle on a fresh server.
    let data_l = tmp.path().join("lifecycle");
    let srv = Server::start(&data_l, write_tokens(&data_l, &reg));
    eprintln!("gridline: {lc_cases} full lifecycles...");
    let cpu0 = srv.cpu_secs();
    let lc = lifecycle(&rt, &srv, &intakes, lc_cases, conns, window, limit);
    let lc_cpu = srv.cpu_secs_settled().zip(cpu0).map(|(b, a)| b - a);
    // Stopped cleanly, as a county's server is between runs: its log's
    // files are left at their resting size (a kill leaves them larger).
    let mut srv = srv;
    srv.terminate();
    drop(srv);
    let lc_disk = dir_bytes(&data_l.join("log"));
    // The write-ahead log's two files: 4-8 MiB each after a checkpoint (at the
    // default 4 MiB), one up to about 20 MiB while sled lags.
    let lc_wal: u64 = gridline_caselog::WAL_FILES
        .iter()
        .filter_map(|f| std::fs::metadata(data_l.join("log").join(f)).ok())
        .map(|m| m.len())
        .sum();
    let lc_live = live_bytes(&data_l.join("log"));

    // 2. PostgreSQL.
    eprintln!("postgres: {pg_cases} accepts, {} lifecycles...", pg_cases / 2);
    let pg = pg_bench(tmp.path(), &reg, &intakes, pg_cases, conns, limit);

    // 3. Ceilings (sled's, above, next to the peak).
    eprintln!("ceilings: fsync...");
    let (fs_n, fs_s, fs_h) = fsync_rate(tmp.path(), Duration::from_secs(10).min(limit), 200_000);

    // Big: memory, disk and restart with many cases.
    let big_row = big.then(|| {
        let data = tmp.path().join("big");
        let mut srv = Server::start(&data, write_tokens(&data, &reg));
        eprintln!("big: {big_cases} accepts...");
        let lines: Vec<String> =
            (0..big_cases).map(|i| accept_line(&intakes[i % intakes.len()], &format!("b-{i}"))).collect();
        let r = load(
            &rt,
            &srv.addr,
            Some(srv.token("operator")),
            lines,
            conns,
            |_| Pace::Window(window),
            limit * 20,
        );
        let rss = srv.rss_bytes();
        let disk = dir_bytes(&data.join("log"));
        srv.kill9();
        let tokens = srv.tokens.clone();
        drop(srv);
        // A copy as the kill left it, to time restarts on again
        // (`/tmp/restart3.sh`-style), taken before the timed one.
        if let Ok(keep) = std::env::var("E2E_BIG_KEEP") {
            let ok = std::process::Command::new("cp").arg("-a").arg(&data).arg(&keep).status();
            eprintln!("big: copied the killed server's data directory to {keep}: {ok:?}");
        }
        let t0 = Instant::now();
        let srv2 = Server::start(&data, tokens);
        let up = ping_until_ok(&srv2.addr, START_WAIT).map(|_| t0.elapsed());
        let rss2 = srv2.rss_bytes();
        (r.done, r.rate(), rss, disk, up, rss2)
    });

    // The table.
    let g = peak.rate();
    println!();
    println!("| what | count | seconds | per second | p50 ms | p99 ms | p999 ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| Gridline ACCEPT, {conns} conns x {window} pipelined (durable) | {} | {:.2} | {:.0} | {} |",
        peak.done,
        peak.secs,
        g,
        lat_cells(&peak.lat)
    );
    println!(
        "| Gridline ACCEPT paced at half of peak ({half_rate:.0}/s offered) | {} | {:.2} | {:.0} | {} |",
        half.done,
        half.secs,
        half.rate(),
        lat_cells(&half.lat)
    );
    println!(
        "| Gridline full lifecycle (accept, pull, claim, close, feedback), {conns} conns x {window} pipelined, complete cases | {} | {:.2} | {:.0} | - | - | - |",
        lc.complete,
        lc.secs,
        lc.complete as f64 / lc.secs
    );
    match &pg {
        Ok(p) => {
            println!(
                "| PostgreSQL 15 accept (1 txn per case, prepared statements, {conns} conns, 1 in flight each, synchronous_commit=on) | {} | {:.2} | {:.0} | {} |",
                p.accept.done,
                p.accept.secs,
                p.accept.rate(),
                lat_cells(&p.accept.lat)
            );
            if let Some((d, s)) = p.lifecycle {
                println!(
                    "| PostgreSQL 15 full lifecycle (accept, SKIP LOCKED claim, close, feedback: 4 txns per case, {conns} conns, 1 in flight each), complete cases | {d} | {s:.2} | {:.0} | - | - | - |",
                    d as f64 / s
                );
            }
        }
        Err(e) => println!("| PostgreSQL 15 | skipped: {} | | | | | |", e.replace(['\n', '|'], " ")),
    }
    println!(
        "| ceiling: sled apply_batch+flush+fsync, 1,024 cases per batch ({} B record + {:.0} B share of packed pages each) | {raw_n} | {raw_s:.2} | {raw_rate:.0} | - | - | - |",
        shape.case_bytes,
        shape.event_bytes.iter().sum::<usize>() as f64 * shape.page_packing
    );
    println!(
        "| ceiling: disk 4 KiB pwrite + fdatasync, one at a time (max {:.2} ms) | {fs_n} | {fs_s:.2} | {:.0} | {:.2} | {:.2} | {:.2} |",
        ms(fs_h.max()),
        fs_n as f64 / fs_s,
        ms(fs_h.value_at_quantile(0.5)),
        ms(fs_h.value_at_quantile(0.99)),
        ms(fs_h.value_at_quantile(0.999))
    );
    println!(
        "| ceiling: PING echo, {conns} conns x {window} pipelined (no storage) | {} | {:.2} | {:.0} | {} |",
        ping.done,
        ping.secs,
        ping.rate(),
        lat_cells(&ping.lat)
    );
    println!();
    println!("| ratio / figure | value | target |");
    println!("| --- | ---: | --- |");
    match &pg {
        Ok(p) => {
            println!("| Gridline / PostgreSQL, accepts | {:.1}x | >= 5x (goal 10x) |", g / p.accept.rate());
            if let Some((d, s)) = p.lifecycle {
                println!(
                    "| Gridline / PostgreSQL, full lifecycle | {:.1}x | |",
                    (lc.complete as f64 / lc.secs) / (d as f64 / s)
                );
            }
        }
        Err(_) => println!("| Gridline / PostgreSQL | n/a (PostgreSQL skipped) | >= 5x |"),
    }
    println!("| Gridline / sled ceiling | {:.2} | >= 0.70 |", g / raw_rate);
    println!("| Gridline / PING echo | {:.2} | |", g / ping.rate());
    println!("| p99 ack at half of peak | {:.2} ms | < 2 ms |", ms(half.lat.value_at_quantile(0.99)));
    // Counted in the figure above (latency runs from the intended time).
    println!(
        "| of which the load driver's own lateness (a request sent after its intended time), p50 / p99 / max | {:.2} / {:.2} / {:.2} ms | |",
        ms(half.late.value_at_quantile(0.5)),
        ms(half.late.value_at_quantile(0.99)),
        ms(half.late.max())
    );
    if let Some(st) = half_server {
        let [p50, p99, max] = &st.ack;
        println!(
            "| the same inside the server (STATS: submission to reply flushed), p50 / p99 / max | {p50} / {p99} / {max} ms | |"
        );
        let [p50, p99, max] = &st.write;
        println!(
            "| its {} commits (p50 {} keys each): store write (handed over in memory), p50 / p99 / max | {p50} / {p99} / {max} ms | |",
            st.commits, st.ops_p50
        );
        let [p50, p99, max] = &st.sync;
        println!("| the same commits: barrier (one log record: encoding, a move to the other file now and then, write + fdatasync), p50 / p99 / max | {p50} / {p99} / {max} ms | |");
    }
    println!("| full lifecycle complete cases/s | {:.0} | >= 20,000 |", lc.complete as f64 / lc.secs);
    // CPU the server spent (all its threads, with sled's), per unit of work.
    let per_case = |cpu: Option<f64>, n: usize| cpu.filter(|_| n > 0).map(|c| c * 1e6 / n as f64);
    if let (Some(a), Some(l)) = (per_case(peak_cpu, peak.done), per_case(lc_cpu, lc.complete)) {
        println!("| server CPU per accepted case (peak run); per complete case (lifecycle) | {a:.1} us; {l:.1} us | |");
    }
    if lc.complete > 0 {
        println!(
            "| disk per case of the lifecycle run (log dir after a clean stop / its {} accepted cases, {} of them closed; the write-ahead log's files are {:.1} MiB of it) | {:.0} B | < 1,024 B |",
            lc.accepted,
            lc.complete,
            lc_wal as f64 / (1 << 20) as f64,
            lc_disk as f64 / lc.accepted.max(1) as f64
        );
        // The write-ahead log's files keep their size whatever the number
        // of cases: what a case costs once there are many.
        println!(
            "| the same without the write-ahead log's fixed files (sled's directory alone) | {:.0} B | |",
            lc_disk.saturating_sub(lc_wal) as f64 / lc.accepted.max(1) as f64
        );
        let [records, pages] = lc_live;
        let per = |b: u64| b as f64 / lc.accepted.max(1) as f64;
        println!(
            "| the same cases' live bytes in sled (keys and values: its record, its share of the pages; the rest of the directory is sled's old versions and the write-ahead log) | {:.0} B ({:.0} + {:.0}) | |",
            per(records + pages),
            per(records),
            per(pages)
        );
    }
    println!(
        "| disk per accepted case (data dir after the accept runs, {} cases: the log, the write-ahead log and tokens.toml) | {:.0} B | |",
        peak.done + half.done,
        accept_disk as f64 / (peak.done + half.done).max(1) as f64
    );
    if let Some(rss) = accept_rss {
        println!(
            "| server VmRSS after {} accepts | {:.0} MiB | |",
            peak.done + half.done,
            rss as f64 / (1 << 20) as f64
        );
    }
    if let Some((n, rate, rss, disk, up, rss2)) = big_row {
        println!("| big: accepted cases (rate) | {n} ({rate:.0}/s) | |");
        if let Some(rss) = rss {
            println!(
                "| big: VmRSS with {n} cases | {:.0} MiB ({:.0} B/case) | |",
                rss as f64 / (1 << 20) as f64,
                rss as f64 / n as f64
            );
        }
        println!(
            "| big: disk bytes per accepted case, none closed (the log directory, the write-ahead log included; the closed-case figure is the lifecycle run's) | {:.0} B | |",
            disk as f64 / n.max(1) as f64
        );
        match up {
            Some(d) => println!(
                "| big: restart after kill -9 until PING answers, {n} cases | {:.2} s | < 3 s |",
                d.as_secs_f64()
            ),
            None => println!("| big: restart after kill -9 | did not answer within {START_WAIT:?} | < 3 s |"),
        }
        if let Some(r) = rss2 {
            println!("| big: VmRSS after restart | {:.0} MiB | |", r as f64 / (1 << 20) as f64);
        }
    } else {
        println!("| memory, disk and restart with 1,000,000 cases | run with E2E_BIG=1 | |");
    }
    let mut errs: Vec<String> = peak
        .errors
        .iter()
        .chain(half.errors.iter())
        .map(|(k, v)| format!("ACCEPT {k} x{v}"))
        .chain(lc.errors.iter().map(|(k, v)| format!("{k} x{v}")))
        .collect();
    errs.sort();
    if !errs.is_empty() || lc.unassigned > 0 {
        println!(
            "\nerrors: {}; lifecycle cases left at the command centre: {}",
            errs.join(", "),
            lc.unassigned
        );
    }
    println!(
        "lifecycle: {} requests in {:.2} s ({:.0} requests/s)",
        lc.requests,
        lc.secs,
        lc.requests as f64 / lc.secs
    );
}
