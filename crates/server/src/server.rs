//! Accepting connections and serving each one, with limits everywhere.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use gridline_engine::{EngineHandle, ReplyRx};
use gridline_model::{Caller, Command, Error, ErrorCode, Reply, Role};
use gridline_protocol::FormatCtx;
use gridline_registry::Registry;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot, Semaphore};
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};

use crate::auth::{new_secret, Token, TokenError, Tokens};
use crate::codec::{LineCodec, LineError};
use gridline_engine::latency::Latency;

/// The server's limits; each has a sane default and a `serve` flag.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Longest request line; a longer one gets `ERR too_large` and the connection closes.
    pub line_bytes_max: usize,
    /// Connections served at once; one more gets `ERR busy` and is closed.
    pub connections_max: usize,
    /// A connection that completes no line for this long is closed.
    pub idle_timeout: Duration,
    /// Requests of one connection waiting for their replies at most (pipelining depth).
    pub inflight_per_connection_max: usize,
    /// The county's offset, for the times in replies.
    pub utc_offset_min: i32,
    /// The county's warning point, in percent of a deadline's limit (`warn_at=` in case lines).
    pub warn_at_percent: u8,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            line_bytes_max: 8 * 1024,
            connections_max: 1024,
            idle_timeout: Duration::from_secs(300),
            inflight_per_connection_max: 1024,
            utc_offset_min: 480,
            warn_at_percent: 80,
        }
    }
}

struct Shared {
    engine: EngineHandle,
    tokens: Mutex<Tokens>,
    /// Held while `TOKEN` rewrites the token file.
    token_writer: Mutex<()>,
    registry: Arc<Registry>,
    config: ServerConfig,
    /// Writes, from submission to the engine to the reply flushed to the socket.
    acks: Arc<Latency>,
    /// When `acks` started counting.
    acks_since: Mutex<gridline_model::Timestamp>,
}

/// Serves `listener` until `shutdown` completes, then stops accepting, lets
/// every connection finish the requests it has read (their replies are
/// written), and returns. The engine keeps running until its handles drop.
pub async fn run(
    listener: TcpListener,
    engine: EngineHandle,
    tokens: Tokens,
    registry: Arc<Registry>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limit = Arc::new(Semaphore::new(config.connections_max));
    let shared = Arc::new(Shared {
        engine,
        tokens: Mutex::new(tokens),
        token_writer: Mutex::new(()),
        registry,
        config,
        acks: Arc::new(Latency::default()),
        acks_since: Mutex::new(gridline_model::Timestamp::now()),
    });
    let (notify_shutdown, _) = broadcast::channel::<()>(1);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(10);
    loop {
        let (socket, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => { backoff = Duration::from_millis(10); x }
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = socket.set_nodelay(true);
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            debug!(%peer, "refused: too many connections");
            let max = shared.config.connections_max;
            tokio::spawn(async move {
                let mut s = socket;
                let msg = format!("ERR busy \"too many connections (limit {max}); try again later\"\n");
                let _ = tokio::time::timeout(Duration::from_secs(1), s.write_all(msg.as_bytes())).await;
                let _ = s.shutdown().await;
            });
            continue;
        };
        let shared = shared.clone();
        let stop = notify_shutdown.subscribe();
        let done = done_tx.clone();
        tokio::spawn(async move {
            serve_connection(socket, shared, stop).await;
            drop(permit);
            drop(done);
        });
    }
    info!("shutting down: no new connections; finishing requests in flight");
    drop(notify_shutdown);
    drop(done_tx);
    let _ = done_rx.recv().await;
    info!("every connection finished");
    Ok(())
}

/// A reply slot, in request order.
enum Pending {
    Ready(String),
    /// With the time a write was submitted, for [`Shared::acks`].
    Engine(ReplyRx, Option<Instant>),
    /// A reply line being made on a blocking thread (file IO).
    Blocking(tokio::task::JoinHandle<String>),
}

async fn serve_connection(socket: TcpStream, shared: Arc<Shared>, mut stop: broadcast::Receiver<()>) {
    let (rd, wr) = socket.into_split();
    let mut lines = FramedRead::new(rd, LineCodec::new(shared.config.line_bytes_max));
    let (tx, rx) = mpsc::channel::<Pending>(shared.config.inflight_per_connection_max);
    let ctx = FormatCtx {
        utc_offset_min: shared.config.utc_offset_min,
        warn_at_percent: shared.config.warn_at_percent,
    };
    let writer = tokio::spawn(write_replies(wr, rx, ctx, shared.acks.clone()));
    let mut caller: Option<Caller> = None;
    loop {
        let next = tokio::select! {
            r = tokio::time::timeout(shared.config.idle_timeout, lines.next()) => r,
            _ = stop.recv() => break,
        };
        let bytes = match next {
            Err(_) => {
                debug!("idle timeout");
                let secs = shared.config.idle_timeout.as_secs();
                let _ = tx
                    .send(Pending::Ready(error_line(&Error::bad_request(format!(
                        "idle for {secs}s; closing"
                    )))))
                    .await;
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(LineError::Io(e)))) => {
                debug!(error = %e, "read failed");
                break;
            }
            Ok(Some(Err(LineError::TooLong))) => {
                let e = Error::new(
                    ErrorCode::TooLarge,
                    format!("line longer than {} bytes; closing", shared.config.line_bytes_max),
                );
                let _ = tx.send(Pending::Ready(error_line(&e))).await;
                break;
            }
            Ok(Some(Ok(b))) => b,
        };
        let (pending, quit) = handle_line(&bytes, &mut caller, &shared);
        if tx.send(pending).await.is_err() || quit {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

fn error_line(e: &Error) -> String {
    let mut s = String::new();
    gridline_protocol::write_error(&mut s, e);
    s
}

fn ok_line(fields: Vec<(String, String)>, ctx: &FormatCtx) -> String {
    let mut s = String::new();
    gridline_protocol::write_reply(&mut s, &Reply::Fields(fields), ctx);
    s
}

fn kv(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_string(), v.into())
}

/// One request line: answered here (session verbs) or handed to the engine.
fn handle_line(bytes: &[u8], caller: &mut Option<Caller>, shared: &Arc<Shared>) -> (Pending, bool) {
    let ctx = FormatCtx {
        utc_offset_min: shared.config.utc_offset_min,
        warn_at_percent: shared.config.warn_at_percent,
    };
    let line = match std::str::from_utf8(bytes) {
        Ok(l) => l,
        Err(e) => {
            let msg = format!("the line is not valid UTF-8 (at byte {})", e.valid_up_to());
            return (Pending::Ready(error_line(&Error::bad_request(msg))), false);
        }
    };
    let cmd = match gridline_protocol::parse_request(line) {
        Ok(c) => c,
        Err(e) => return (Pending::Ready(error_line(&e)), false),
    };
    let ready = |r: Result<Vec<(String, String)>, Error>| match r {
        Ok(f) => Pending::Ready(ok_line(f, &ctx)),
        Err(e) => Pending::Ready(error_line(&e)),
    };
    match cmd {
        Command::Ping => (ready(Ok(vec![kv("pong", "yes")])), false),
        Command::Quit => (ready(Ok(vec![kv("bye", "yes")])), true),
        Command::Help => {
            let mut s = String::new();
            gridline_protocol::write_reply(&mut s, &gridline_protocol::help_reply(), &ctx);
            (Pending::Ready(s), false)
        }
        Command::Auth { token } => {
            let found = shared.tokens.lock().expect("tokens lock").authenticate(&token);
            match found {
                Some(c) => {
                    let mut f = vec![kv("role", c.role.as_str())];
                    if let Some(w) = &c.worker {
                        f.push(kv("worker", w.clone()));
                    }
                    *caller = Some(c);
                    (ready(Ok(f)), false)
                }
                None => {
                    *caller = None;
                    (ready(Err(Error::new(ErrorCode::Unauthenticated, "unknown token"))), false)
                }
            }
        }
        _ if caller.is_none() => (
            ready(Err(Error::new(
                ErrorCode::Unauthenticated,
                "AUTH token=... first; before it only PING, HELP, AUTH and QUIT work",
            ))),
            false,
        ),
        Command::Token { role, worker, name } => {
            // It rewrites and fsyncs tokens.toml: off the connection threads.
            let (caller, shared) = (caller.clone().expect("checked"), shared.clone());
            let task = tokio::task::spawn_blocking(move || {
                match issue_token(&caller, role, worker, name, &shared) {
                    Ok(f) => ok_line(f, &ctx),
                    Err(e) => error_line(&e),
                }
            });
            (Pending::Blocking(task), false)
        }
        Command::Stats { reset } => (ready(stats(caller.as_ref().expect("checked"), reset, shared)), false),
        cmd => {
            let sent = cmd.is_write().then(Instant::now);
            match shared.engine.submit(caller.clone().expect("checked"), cmd) {
                Ok(rx) => (Pending::Engine(rx, sent), false),
                Err(e) => (Pending::Ready(error_line(&e)), false),
            }
        }
    }
}

/// `STATS [reset=yes]`: the acknowledgement latency of writes and the
/// syncer's commit phases, in milliseconds, since start or the last reset
/// (which this reply reports before zeroing).
fn stats(caller: &Caller, reset: bool, shared: &Shared) -> Result<Vec<(String, String)>, Error> {
    if !matches!(caller.role, Role::Supervisor | Role::Admin) {
        return Err(Error::forbidden(format!("STATS is for supervisors, not {}", caller.role.as_str())));
    }
    let mut since = shared.acks_since.lock().expect("stats lock");
    let read = |l: &Latency| if reset { l.take() } else { l.summary() };
    let commits = shared.engine.commit_stats();
    let (s, write, sync, ops) =
        (read(&shared.acks), read(&commits.write), read(&commits.sync), read(&commits.ops));
    let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
    let f = vec![
        kv("acks", s.count.to_string()),
        kv("p50_ms", ms(s.p50_us)),
        kv("p99_ms", ms(s.p99_us)),
        kv("p999_ms", ms(s.p999_us)),
        kv("max_ms", ms(s.max_us)),
        kv("commits", write.count.to_string()),
        kv("commit_ops_p50", ops.p50_us.to_string()),
        kv("commit_ops_max", ops.max_us.to_string()),
        kv("write_p50_ms", ms(write.p50_us)),
        kv("write_p99_ms", ms(write.p99_us)),
        kv("write_max_ms", ms(write.max_us)),
        kv("sync_p50_ms", ms(sync.p50_us)),
        kv("sync_p99_ms", ms(sync.p99_us)),
        kv("sync_max_ms", ms(sync.max_us)),
        kv("since", since.rfc3339(shared.config.utc_offset_min)),
    ];
    if reset {
        *since = gridline_model::Timestamp::now();
    }
    Ok(f)
}

fn issue_token(
    caller: &Caller,
    role: Role,
    worker: Option<String>,
    name: Option<String>,
    shared: &Shared,
) -> Result<Vec<(String, String)>, Error> {
    if caller.role != Role::Admin {
        return Err(Error::forbidden("only admin issues tokens"));
    }
    if matches!(role, Role::System | Role::Admin) {
        return Err(Error::bad_request("role: must be worker, operator or supervisor"));
    }
    if let Some(w) = &worker {
        if shared.registry.worker_idx(w).is_none() {
            return Err(Error::not_found(format!("worker: no worker `{w}` in the registry")));
        }
    }
    let secret = new_secret().map_err(|e| Error::internal(e.to_string()))?;
    let name = name.or_else(|| worker.clone()).unwrap_or_else(|| role.as_str().to_string());
    let token = Token {
        role: role.as_str().into(),
        name: name.clone(),
        secret: secret.clone(),
        worker: worker.clone(),
    };
    // One writer of the file at a time; the tokens themselves are locked
    // only to copy and to insert, so AUTH never waits for the fsync.
    let _writer = shared.token_writer.lock().expect("token writer lock");
    let unsaved = |e: TokenError| Error::unavailable(format!("cannot save the token: {e}"));
    let (path, file) = {
        let t = shared.tokens.lock().expect("tokens lock");
        (t.path().to_path_buf(), t.with_added(&token).map_err(unsaved)?)
    };
    crate::auth::save(&path, &file).map_err(unsaved)?;
    shared.tokens.lock().expect("tokens lock").insert(token).map_err(unsaved)?;
    let mut f = vec![kv("role", role.as_str()), kv("name", name)];
    if let Some(w) = worker {
        f.push(kv("worker", w));
    }
    f.push(kv("secret", secret));
    Ok(f)
}

/// Writes replies in request order, waiting for each engine reply in turn.
///
/// Replies that are ready one after another go out in one write; whatever
/// is buffered is flushed before waiting for a reply that is not ready yet
/// (and when nothing else is queued). Flushing only when the queue was
/// empty held a reply back behind the next request's commit whenever that
/// request had already arrived: at a steady paced load, chains of such
/// waits made the client's p99 ten times the server's.
async fn write_replies(
    wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Pending>,
    ctx: FormatCtx,
    acks: Arc<Latency>,
) {
    let mut w = Writer { w: BufWriter::with_capacity(64 * 1024, wr), unflushed: Vec::new(), acks };
    let mut out = String::with_capacity(1024);
    while let Some(p) = rx.recv().await {
        out.clear();
        // A write's reply, answer or refusal, counts as its acknowledgement.
        let sent = match p {
            Pending::Ready(s) => {
                out.push_str(&s);
                None
            }
            Pending::Blocking(task) => {
                if !task.is_finished() && w.flush().await.is_err() {
                    break;
                }
                match task.await {
                    Ok(s) => out.push_str(&s),
                    Err(e) => gridline_protocol::write_error(
                        &mut out,
                        &Error::internal(format!("the request's task failed: {e}")),
                    ),
                }
                None
            }
            Pending::Engine(mut reply, sent) => {
                let r = match reply.try_recv() {
                    Ok(r) => Ok(r),
                    Err(oneshot::error::TryRecvError::Closed) => Err(()),
                    Err(oneshot::error::TryRecvError::Empty) => {
                        if w.flush().await.is_err() {
                            break;
                        }
                        reply.await.map_err(|_| ())
                    }
                };
                match r {
                    Ok(Ok(r)) => gridline_protocol::write_reply(&mut out, &r, &ctx),
                    Ok(Err(e)) => gridline_protocol::write_error(&mut out, &e),
                    Err(()) => gridline_protocol::write_error(
                        &mut out,
                        &Error::internal("the engine dropped the request"),
                    ),
                }
                sent
            }
        };
        if w.w.write_all(out.as_bytes()).await.is_err() {
            // The client is gone; the engine still finishes what it was given.
            break;
        }
        w.unflushed.extend(sent);
        if rx.is_empty() && w.flush().await.is_err() {
            break;
        }
    }
    let _ = w.flush().await;
    let _ = w.w.shutdown().await;
}

/// A connection's buffered writer, and the writes whose replies it holds:
/// their acknowledgement latency is recorded when the reply is flushed.
struct Writer {
    w: BufWriter<OwnedWriteHalf>,
    unflushed: Vec<Instant>,
    acks: Arc<Latency>,
}

impl Writer {
    async fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush().await?;
        for at in self.unflushed.drain(..) {
            self.acks.record(at.elapsed().as_micros() as u64);
        }
        Ok(())
    }
}
