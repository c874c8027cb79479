//! Accepting connections and serving each one, with limits everywhere.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use gridline_engine::{EngineHandle, ReplyRx};
use gridline_model::reply::clip;
use gridline_model::{Caller, Command, Error, ErrorCode, Reply, Role};
use gridline_protocol::FormatCtx;
use gridline_registry::Registry;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Notify, Semaphore};
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};

use crate::auth::{new_secret, RevokeError, Token, TokenError, Tokens};
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
    /// A connection not authenticated this long after it was accepted is
    /// closed, busy or not: one that never sends `AUTH` holds a slot no longer.
    pub auth_timeout: Duration,
    /// Connections from one address not yet authenticated at once; one
    /// more gets `ERR busy` and is closed. With `auth_timeout` this keeps one
    /// host that never authenticates (reconnecting as it is closed) from
    /// holding every slot. Generous, since a call centre behind NAT
    /// connects all its operators from one address.
    pub unauthenticated_per_address_max: usize,
    /// Connections authenticated with one token at once; an `AUTH` that
    /// would pass it gets `ERR busy` and leaves its connection
    /// unauthenticated (see [`TokenPlace`]). Without it one token (a
    /// worker's, in a client that opens connections and never closes them,
    /// keeping each alive with a PING) could take every one of
    /// `connections_max`, locking out every operator and supervisor.
    pub connections_per_token_max: usize,
    /// Requests of one connection waiting for their replies at most (pipelining depth).
    pub inflight_per_connection_max: usize,
    /// The county's offset, for the times in replies.
    pub utc_offset_min: i32,
    /// The county's warning point, in percent of a deadline's limit (`warn_at=` in case lines).
    pub warn_at_percent: u8,
    /// Bytes of replies one connection may hold before the server stops
    /// reading its requests: replies formatted but not yet taken by the
    /// peer, and a reservation for each read still with the engine (its
    /// size is known only when it arrives; see [`Budget`]).
    pub reply_bytes_max: usize,
    /// After shutdown begins, how long a peer may take to accept each
    /// write of the replies it is owed before its connection is aborted.
    pub shutdown_grace: Duration,
    /// The replies formatted and not yet taken by their peers, all
    /// connections together, and how many bytes of them stop new reads (see
    /// [`HeldReplies`]). Shared with the engine's history thread, which
    /// loads no `GET`'s events while there is no room.
    pub held: Arc<HeldReplies>,
}

/// Bytes of replies formatted and not yet taken by their peers, all
/// connections together. At [`HeldReplies::max`] or more, no connection
/// has a read (`GET`, `PULL`, `OVERDUE`, `AUDIT`, `ROUTE`) taken until
/// peers take some (or are closed at the idle timeout), and the engine's
/// history thread loads no `GET`'s events: each connection's budget alone
/// let a thousand connections that ask and never read hold a reply each,
/// a case's history of long notes being megabytes (helper-62's review:
/// 5.6 GB from one worker token). Only replies made count, not the
/// reservations of reads still with the engine, so waiting for room never
/// waits on a reply that itself waits for room.
#[derive(Debug)]
pub struct HeldReplies {
    bytes: AtomicUsize,
    max: usize,
    freed: Notify,
}

/// A history's bytes, counted from the moment it is loaded until the reply
/// holding this is made into its bytes (counted then by a [`HeldPart`]) or
/// dropped: a history waiting behind a writer its peer keeps from writing
/// is counted too.
struct HistoryHeld {
    all: Arc<HeldReplies>,
    n: usize,
}

impl Drop for HistoryHeld {
    fn drop(&mut self) {
        self.all.sub(self.n);
    }
}

/// The engine's history thread asks this one before it loads a history.
pub struct Gate(pub Arc<HeldReplies>);

impl gridline_engine::HistoryGate for Gate {
    fn room(&self) -> bool {
        self.0.room()
    }
    fn hold(&self, bytes: usize) -> gridline_model::Hold {
        self.0.add(bytes);
        gridline_model::Hold::new(HistoryHeld { all: self.0.clone(), n: bytes })
    }
}

/// One reply's part of [`HeldReplies`], given back when this is dropped:
/// once the socket has taken the whole reply (its buffer is held until
/// then, however much of it the socket took), or the writer is gone.
struct HeldPart<'a> {
    all: &'a HeldReplies,
    n: usize,
}

impl<'a> HeldPart<'a> {
    fn new(all: &'a HeldReplies, n: usize) -> HeldPart<'a> {
        all.add(n);
        HeldPart { all, n }
    }
}

impl Drop for HeldPart<'_> {
    fn drop(&mut self) {
        self.all.sub(self.n);
    }
}

impl HeldReplies {
    pub fn new(max: usize) -> Arc<HeldReplies> {
        Arc::new(HeldReplies { bytes: AtomicUsize::new(0), max, freed: Notify::new() })
    }

    /// Whether another read may be taken, or another history loaded.
    pub fn room(&self) -> bool {
        self.bytes.load(Ordering::Acquire) < self.max
    }

    fn add(&self, n: usize) {
        self.bytes.fetch_add(n, Ordering::AcqRel);
    }

    fn sub(&self, n: usize) {
        let before = self.bytes.fetch_sub(n, Ordering::AcqRel);
        if before >= self.max && before - n < self.max {
            self.freed.notify_waiters();
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            line_bytes_max: 8 * 1024,
            connections_max: 1024,
            idle_timeout: Duration::from_secs(300),
            auth_timeout: Duration::from_secs(60),
            unauthenticated_per_address_max: 64,
            connections_per_token_max: gridline_protocol::limits::CONNECTIONS_PER_TOKEN_MAX_DEFAULT,
            inflight_per_connection_max: 1024,
            utc_offset_min: 480,
            warn_at_percent: 80,
            reply_bytes_max: gridline_protocol::limits::REPLY_BYTES_MAX_DEFAULT,
            shutdown_grace: Duration::from_secs(10),
            held: HeldReplies::new(gridline_protocol::limits::HELD_REPLY_BYTES_MAX_DEFAULT),
        }
    }
}

struct Shared {
    engine: EngineHandle,
    tokens: Mutex<Tokens>,
    /// Held while `TOKEN` or `REVOKE` rewrites the token file.
    token_writer: Mutex<()>,
    /// Tokens revoked since start: a connection that has seen fewer checks
    /// that its own token still stands before its next request.
    revocations: AtomicU64,
    registry: Arc<Registry>,
    config: ServerConfig,
    /// Writes, from submission to the engine to the reply flushed to the socket.
    acks: Arc<Latency>,
    /// When `acks` started counting.
    acks_since: Mutex<gridline_model::Timestamp>,
    /// Connections not yet authenticated, per peer address.
    unauthenticated: Mutex<HashMap<IpAddr, usize>>,
    /// Connections authenticated, per token.
    per_token: Arc<PerToken>,
    /// Refused `AUTH`s per peer address, a minute at a time.
    auth_failures: Mutex<AuthFailures>,
    /// One `AUDIT` at a time, server-wide, from its snapshot to its rows:
    /// the engine thread takes a snapshot of every case's reference for each
    /// (18-64 ms at 1,000,000 cases) and the audit thread folds it, so a
    /// supervisor's pipeline of them would hold writes behind the snapshots
    /// and keep one snapshot's old cases alive per audit queued (helper-62's
    /// review, when the fold ran on the engine thread: an operator's
    /// `ACCEPT` waited 3.3 s behind 200). Writes pass between any two.
    audits: Arc<Semaphore>,
}

/// Refused `AUTH`s counted per peer address (an IPv6 address by its /64,
/// which one host may hold whole), in windows of [`AUTH_FAILURE_WINDOW`].
/// Past [`AUTH_FAILURES_MAX`] in one, every `AUTH` from that address is
/// refused, unread, until the window ends: a good token too, or the
/// difference in the reply would let the guessing go on. Without it, one
/// connection tried 200,000 secrets in 0.7 s (helper-62's review), and a
/// client reconnecting after three tries each put 2 MB a second in the log.
#[derive(Default)]
struct AuthFailures {
    by_addr: HashMap<IpAddr, (Instant, u32)>,
    /// The map is pruned of ended windows when it grows past this.
    prune_at: usize,
}

const AUTH_FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Refused `AUTH`s an address may have in a window: a person mistyping a
/// pasted secret comes nowhere near it; a guesser is held to this a minute.
pub const AUTH_FAILURES_MAX: u32 = 20;
/// Refused `AUTH`s of an address logged one by one in a window.
const FAILED_AUTHS_LOGGED: u32 = 3;

impl AuthFailures {
    fn key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                IpAddr::V6(std::net::Ipv6Addr::from(v6.to_bits() & !((1u128 << 64) - 1)))
            }
            IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().expect("mapped")),
            v4 => v4,
        }
    }

    /// How long `ip`'s `AUTH`s are still refused, if they are.
    fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let &(start, n) = self.by_addr.get(&Self::key(ip))?;
        let left = AUTH_FAILURE_WINDOW.checked_sub(now.saturating_duration_since(start))?;
        (n >= AUTH_FAILURES_MAX && !left.is_zero()).then_some(left)
    }

    /// Counts a refused `AUTH` of `ip`: how many its window holds now.
    fn failed(&mut self, ip: IpAddr, now: Instant) -> u32 {
        if self.by_addr.len() >= self.prune_at.max(4096) {
            self.by_addr.retain(|_, (start, _)| now.saturating_duration_since(*start) < AUTH_FAILURE_WINDOW);
            self.prune_at = 2 * self.by_addr.len();
        }
        let w = self.by_addr.entry(Self::key(ip)).or_insert((now, 0));
        if now.saturating_duration_since(w.0) >= AUTH_FAILURE_WINDOW {
            *w = (now, 0);
        }
        w.1 = w.1.saturating_add(1);
        w.1
    }
}

/// A connection's place in [`Shared::unauthenticated`] until it first
/// authenticates or closes.
struct Unauthenticated {
    shared: Arc<Shared>,
    ip: IpAddr,
    counted: bool,
}

impl Unauthenticated {
    /// Counts a new connection from `ip`, unless that address already has
    /// as many waiting to authenticate as allowed.
    fn count(shared: &Arc<Shared>, ip: IpAddr) -> Option<Unauthenticated> {
        let mut m = shared.unauthenticated.lock().expect("unauthenticated lock");
        let n = m.entry(ip).or_insert(0);
        if *n >= shared.config.unauthenticated_per_address_max {
            return None;
        }
        *n += 1;
        Some(Unauthenticated { shared: shared.clone(), ip, counted: true })
    }

    /// Counts the connection again after it lost its authentication (a
    /// failed `AUTH`, its token revoked): it holds a slot unauthenticated
    /// again, and newcomers from its address are judged with it. Never
    /// refused here: the connection exists already, and its AUTH deadline
    /// ends it.
    fn recount(&mut self) {
        if std::mem::replace(&mut self.counted, true) {
            return;
        }
        *self.shared.unauthenticated.lock().expect("unauthenticated lock").entry(self.ip).or_insert(0) += 1;
    }

    fn release(&mut self) {
        if !std::mem::replace(&mut self.counted, false) {
            return;
        }
        let mut m = self.shared.unauthenticated.lock().expect("unauthenticated lock");
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

impl Drop for Unauthenticated {
    fn drop(&mut self) {
        self.release();
    }
}

/// Connections authenticated with each token, by the token's name. Names
/// are unique, a revoked token's too, and never given to another token, so
/// a name stands for one token as long as the server runs; the secret is
/// never a key (this map would be one more copy of every secret in use). A
/// name's entry goes when its last connection lets go: the map holds one
/// entry per token in use, at most one per authenticated connection.
struct PerToken {
    max: usize,
    by_name: Mutex<HashMap<String, TokenCount>>,
}

#[derive(Default)]
struct TokenCount {
    /// Connections authenticated with the token now.
    n: usize,
    /// When a refusal of an `AUTH` with the token was last logged.
    logged: Option<Instant>,
    /// Refusals since then, not logged.
    unlogged: u64,
}

/// Refusals of one token's `AUTH`s at its cap are logged one in this long
/// at most: a client that retries in a loop does not fill the log.
const TOKEN_FULL_LOGGED_EVERY: Duration = Duration::from_secs(60);

/// An `AUTH` refused because its token holds as many connections as it may.
#[derive(Debug, PartialEq, Eq)]
struct TokenFull {
    max: usize,
    /// To be logged, with the refusals of the token (this one included)
    /// since the last logged one; `None`: not logged.
    log: Option<u64>,
}

impl PerToken {
    fn new(max: usize) -> PerToken {
        PerToken { max, by_name: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TokenCount>> {
        self.by_name.lock().expect("per-token lock")
    }

    /// Gives back one of `name`'s places, removing its entry at zero.
    fn give_back(m: &mut HashMap<String, TokenCount>, name: &str) {
        let Some(c) = m.get_mut(name) else {
            debug_assert!(false, "a place given back for a token with none: {name}");
            return;
        };
        c.n -= 1;
        if c.n == 0 {
            m.remove(name);
        }
    }
}

impl TokenCount {
    /// Counts a refusal; whether to log it, with the refusals since the last logged.
    fn refused(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        if self.logged.is_some_and(|at| now.saturating_duration_since(at) < TOKEN_FULL_LOGGED_EVERY) {
            return None;
        }
        self.logged = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

/// A connection's place in [`PerToken`] while it is authenticated: the
/// token it counts against. Moved by a good `AUTH` with another token;
/// given back when the connection loses its authentication (a refused
/// `AUTH`, its token's revocation) or closes (on drop). A revoked token's
/// connections keep their places until they next ask something or close:
/// the token can no longer `AUTH`, so those places refuse no one.
struct TokenPlace {
    all: Arc<PerToken>,
    name: Option<String>,
}

impl TokenPlace {
    fn new(all: Arc<PerToken>) -> TokenPlace {
        TokenPlace { all, name: None }
    }

    /// Counts the connection against the token `name` instead of the one
    /// it counted against, if any, unless `name` already has as many
    /// connections as allowed: then nothing changes. Re-authenticating
    /// with the token it already has needs no room.
    fn take(&mut self, name: &str) -> Result<(), TokenFull> {
        if self.name.as_deref() == Some(name) {
            return Ok(());
        }
        let max = self.all.max;
        let mut m = self.all.lock();
        match m.get_mut(name) {
            Some(c) if c.n >= max => return Err(TokenFull { max, log: c.refused(Instant::now()) }),
            Some(c) => c.n += 1,
            // (Only with a cap of 0, which `serve` does not take: no entry is left behind.)
            None if max == 0 => return Err(TokenFull { max, log: Some(1) }),
            None => {
                m.insert(name.to_string(), TokenCount { n: 1, ..TokenCount::default() });
            }
        }
        if let Some(old) = self.name.replace(name.to_string()) {
            PerToken::give_back(&mut m, &old);
        }
        Ok(())
    }

    fn release(&mut self) {
        if let Some(old) = self.name.take() {
            PerToken::give_back(&mut self.all.lock(), &old);
        }
    }
}

impl Drop for TokenPlace {
    fn drop(&mut self) {
        self.release();
    }
}

/// Serves `listener` until `shutdown` completes, then stops accepting, lets
/// every connection finish the requests it has read (their replies are
/// written, each write within [`ServerConfig::shutdown_grace`], or the
/// connection is aborted and its remaining replies are lost), and returns. The engine keeps running until its handles drop.
pub async fn run(
    listener: TcpListener,
    engine: EngineHandle,
    tokens: Tokens,
    registry: Arc<Registry>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limit = Arc::new(Semaphore::new(config.connections_max));
    let per_token_max = config.connections_per_token_max;
    let shared = Arc::new(Shared {
        engine,
        tokens: Mutex::new(tokens),
        token_writer: Mutex::new(()),
        revocations: AtomicU64::new(0),
        registry,
        config,
        acks: Arc::new(Latency::default()),
        acks_since: Mutex::new(gridline_model::Timestamp::now()),
        unauthenticated: Mutex::new(HashMap::new()),
        per_token: Arc::new(PerToken::new(per_token_max)),
        auth_failures: Mutex::new(AuthFailures::default()),
        audits: Arc::new(Semaphore::new(1)),
    });
    let (notify_shutdown, stop) = watch::channel(false);
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
            refuse(socket, format!("too many connections (limit {max}); try again later"));
            continue;
        };
        let Some(unauthenticated) = Unauthenticated::count(&shared, peer.ip()) else {
            debug!(%peer, "refused: too many connections from its address not authenticated");
            let (ip, max) = (peer.ip(), shared.config.unauthenticated_per_address_max);
            drop(permit);
            refuse(
                socket,
                format!(
                    "too many connections from {ip} not yet authenticated (limit {max}); send AUTH on those or try again later"
                ),
            );
            continue;
        };
        let shared = shared.clone();
        let stop = stop.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            serve_connection(socket, peer, shared, Stop(stop), unauthenticated).await;
            drop(permit);
            drop(done);
        });
    }
    info!("shutting down: no new connections; finishing requests in flight");
    let _ = notify_shutdown.send(true);
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

/// A reply slot and what it was charged against the connection's [`Budget`].
struct Slot {
    pending: Pending,
    charge: usize,
    kind: ReplyKind,
}

/// What a slot's reply is, as the budget sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReplyKind {
    /// One line at most, or a reply already made and charged.
    Other,
    /// A read answered by the engine: its size teaches the next reservation.
    Read,
    /// A `GET`: a read whose events are loaded whole before the reply is
    /// made (up to the case's event limit of long notes, megabytes), so one
    /// at a time (see [`Budget::gets`]).
    Get,
}

/// The shutdown signal, as each connection sees it.
#[derive(Clone)]
struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Whether shutdown has begun.
    fn now(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once shutdown has begun (or the server is gone).
    async fn begun(mut self) {
        let _ = self.0.wait_for(|s| *s).await;
    }

    /// Completes `grace` after shutdown began.
    async fn grace_over(self, grace: Duration) {
        self.begun().await;
        tokio::time::sleep(grace).await;
    }
}

/// The reply bytes one connection holds: every reply slot is charged when
/// its request is read (a ready line its length; a read still with the
/// engine a reservation: 128 KiB, or the largest read reply the connection
/// has had, up to the whole budget; anything else nothing, its reply being
/// one case line at most), the writer swaps the charge for the formatted
/// reply's length and gives that back once the peer's socket has taken it.
/// The reader reads no new request while a slot would not fit: a client
/// that asks for more than it reads cannot make the server hold more than
/// about the budget (plus the reservations' misses) for it.
///
/// A miss is bounded: the replies the reservation cannot foresee are
/// `GET`s of cases with long histories, whose events the history thread
/// loads whole before the reply is made, and a connection has at most one
/// `GET` read and not yet made. (Other reads hold shared cases until the
/// writer makes their reply, one at a time.) Without that, a burst of
/// `GET`s of one long case, each reserved 128 KiB, held dozens of copies
/// of its history for one connection.
struct Budget {
    held: AtomicUsize,
    max: usize,
    /// What the connection may hold now: `max` once authenticated, and
    /// [`UNAUTHENTICATED_REPLY_BYTES`] at most before (a stranger's PINGs
    /// and HELPs, unread, cannot make the server hold megabytes for each
    /// of a thousand connections).
    limit: AtomicUsize,
    /// Whether the connection is authenticated now (see `take`).
    authenticated: std::sync::atomic::AtomicBool,
    /// The largest reply to a read so far.
    largest_read: AtomicUsize,
    /// `GET`s read whose reply the writer has not made yet: 0 or 1.
    gets: AtomicUsize,
    freed: Notify,
    /// Every connection's replies made and not yet taken.
    all: Arc<HeldReplies>,
}

const READ_RESERVATION_MIN: usize = 128 * 1024;

/// Reply bytes a connection not authenticated may hold: a few `HELP`s
/// (2-3 KiB each) or a few hundred short errors. A thousand such
/// connections hold about 16 MiB, against 4 GiB at the authenticated
/// budget's default (helper-62's review measured 4.4 GB).
pub const UNAUTHENTICATED_REPLY_BYTES: usize = 16 * 1024;

impl Budget {
    fn new(max: usize, all: Arc<HeldReplies>) -> Budget {
        Budget {
            all,
            held: AtomicUsize::new(0),
            max,
            limit: AtomicUsize::new(max.min(UNAUTHENTICATED_REPLY_BYTES)),
            authenticated: std::sync::atomic::AtomicBool::new(false),
            largest_read: AtomicUsize::new(0),
            gets: AtomicUsize::new(0),
            freed: Notify::new(),
        }
    }

    /// The connection authenticated (the whole budget), or is no longer.
    fn authenticated(&self, yes: bool) {
        let limit = if yes { self.max } else { self.max.min(UNAUTHENTICATED_REPLY_BYTES) };
        self.limit.store(limit, Ordering::Release);
        self.authenticated.store(yes, Ordering::Release);
        self.freed.notify_one();
    }

    fn reservation(&self) -> usize {
        self.largest_read.load(Ordering::Relaxed).max(READ_RESERVATION_MIN).min(self.max)
    }

    /// Takes `charge` for a reply of `kind` if it fits now (always, when
    /// nothing is held; a `GET` only when no other is waiting for its
    /// reply). Only the connection's reader takes, so a fit cannot be lost
    /// to a race.
    fn try_take(&self, charge: usize, kind: ReplyKind) -> bool {
        // Any read waits until the server's held replies leave room.
        let fits = self.fits_here(charge, kind) && (kind == ReplyKind::Other || self.all.room());
        if fits {
            self.held.fetch_add(charge, Ordering::AcqRel);
            if kind == ReplyKind::Get {
                self.gets.fetch_add(1, Ordering::AcqRel);
            }
        }
        fits
    }

    /// Whether `charge` fits in this connection's own budget (a `GET` only
    /// when no other is waiting for its reply), whatever the server holds.
    fn fits_here(&self, charge: usize, kind: ReplyKind) -> bool {
        if kind == ReplyKind::Get && self.gets.load(Ordering::Acquire) > 0 {
            return false;
        }
        let held = self.held.load(Ordering::Acquire);
        held == 0 || held.saturating_add(charge) <= self.limit.load(Ordering::Acquire)
    }

    /// The writer made a `GET`'s reply: the next may be read. (Its bytes
    /// are charged until the socket takes them, like any reply's.)
    fn got(&self) {
        self.gets.fetch_sub(1, Ordering::AcqRel);
        self.freed.notify_one();
    }

    /// Waits until `charge` more fits, then takes it: `true`. `false` once
    /// `patience()` passes with no reply bytes given back: the peer takes
    /// nothing. Bytes are given back as the socket takes each piece of a
    /// reply, so a peer that reads a long reply slowly is waited for. A
    /// connection whose own budget has room waits for the server's without
    /// that limit: it is not the one leaving replies untaken, so it is not
    /// closed for it (shutdown and the writer's end still end the wait).
    async fn take(&self, charge: usize, kind: ReplyKind, patience: impl Fn() -> Duration) -> bool {
        loop {
            // Made before the look, so that nothing freed after it is missed.
            let (freed, all_freed) = (self.freed.notified(), self.all.freed.notified());
            if self.try_take(charge, kind) {
                return true;
            }
            let either = async {
                tokio::select! {
                    _ = freed => {}
                    _ = all_freed => {}
                }
            };
            // (Authenticated: before, the AUTH deadline bounds every wait.)
            if self.authenticated.load(Ordering::Acquire) && self.fits_here(charge, kind) {
                either.await;
            } else if tokio::time::timeout(patience(), either).await.is_err() {
                return false;
            }
        }
    }

    fn add(&self, n: usize) {
        self.held.fetch_add(n, Ordering::AcqRel);
    }

    fn give_back(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::AcqRel);
        self.freed.notify_one();
    }
}

/// Tells a connection it is not served (`ERR busy`, within a second) and closes it.
fn refuse(socket: TcpStream, why: String) {
    tokio::spawn(async move {
        let mut s = socket;
        let line = error_line(&Error::new(ErrorCode::Busy, why));
        let _ = tokio::time::timeout(Duration::from_secs(1), s.write_all(line.as_bytes())).await;
        let _ = s.shutdown().await;
    });
}

/// The peer of a connection, for the log: who tried a token that failed.
/// The first refused `AUTH`s of an address in a window are logged one by
/// one, and the one that starts its block; a connection's own count is
/// logged when it ends, if it passed that (a client guessing secrets in a
/// loop, or reconnecting to, cannot fill the log at its own pace).
struct Peer {
    addr: SocketAddr,
    failed_auths: u64,
}

impl Peer {
    /// A refused `AUTH` (an unknown token, or any while the address is
    /// blocked), logged with the peer's address, never the secret.
    fn auth_failed(&mut self, shared: &Shared) {
        self.failed_auths += 1;
        let n =
            shared.auth_failures.lock().expect("auth failures lock").failed(self.addr.ip(), Instant::now());
        let peer = self.addr;
        if n <= FAILED_AUTHS_LOGGED {
            warn!(%peer, attempt = n, "AUTH refused: unknown token");
        } else if n == AUTH_FAILURES_MAX {
            warn!(
                %peer,
                refused = n,
                "AUTH refused too often from this address: its AUTHs are refused for the rest of the minute"
            );
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.failed_auths > u64::from(FAILED_AUTHS_LOGGED) {
            warn!(peer = %self.addr, failed = self.failed_auths, "connection closed after refused AUTHs");
        }
    }
}

async fn serve_connection(
    socket: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: Stop,
    mut unauthenticated: Unauthenticated,
) {
    let (rd, wr) = socket.into_split();
    let mut lines = FramedRead::new(rd, LineCodec::new(shared.config.line_bytes_max));
    let (tx, rx) = mpsc::channel::<Slot>(shared.config.inflight_per_connection_max.max(1));
    let budget = Arc::new(Budget::new(shared.config.reply_bytes_max, shared.config.held.clone()));
    let ctx = FormatCtx {
        utc_offset_min: shared.config.utc_offset_min,
        warn_at_percent: shared.config.warn_at_percent,
    };
    let mut writer = tokio::spawn(write_replies(
        wr,
        rx,
        WriterCtx {
            ctx,
            acks: shared.acks.clone(),
            budget: budget.clone(),
            timeout: shared.config.idle_timeout,
            grace: shared.config.shutdown_grace,
            stop: stop.clone(),
        },
    ));
    let idle = shared.config.idle_timeout;
    // Counted from the connect; and again from a failed AUTH that ends an
    // authentication (the connection is then unauthenticated, not closed).
    let mut auth_by = tokio::time::Instant::now() + shared.config.auth_timeout;
    let mut auth_since = "connecting";
    let mut caller: Option<Caller> = None;
    let mut revocations_seen = shared.revocations.load(Ordering::Acquire);
    let mut token_turn: TokenTurn = None;
    let mut token_place = TokenPlace::new(shared.per_token.clone());
    let mut peer = Peer { addr: peer, failed_auths: 0 };
    // Lines already read from the socket (a client pipelining) are taken
    // without the timers and futures of the select below, a few dozen at a
    // time, looking at shutdown and the writer between them.
    let mut taken_at_once = 0;
    loop {
        if caller.is_none() && tokio::time::Instant::now() >= auth_by {
            debug!("no AUTH in time");
            let e = Error::new(
                ErrorCode::Unauthenticated,
                format!("no AUTH within {}s of {auth_since}; closing", shared.config.auth_timeout.as_secs()),
            );
            // Best effort: the peer may not be reading.
            let _ = tx.try_send(Slot {
                charge: 0,
                kind: ReplyKind::Other,
                pending: Pending::Ready(error_line(&e)),
            });
            break;
        }
        // Until authenticated, wait for a line no later than the deadline.
        let wait = patience(&caller, auth_by, idle);
        let ready = (taken_at_once < TAKEN_AT_ONCE_MAX && !stop.now() && !tx.is_closed())
            .then(|| lines.next().now_or_never())
            .flatten();
        taken_at_once = if ready.is_some() { taken_at_once + 1 } else { 0 };
        let next = match ready {
            Some(line) => Ok(line),
            // In this order: once shutting down, a line already read is not
            // taken (a plain select picks among ready branches at random).
            None => tokio::select! {
                biased;
                _ = stop.clone().begun() => break,
                // The writer gave up on the peer (it stopped reading): so do we.
                _ = tx.closed() => break,
                r = tokio::time::timeout(wait, lines.next()) => r,
            },
        };
        let bytes = match next {
            // The AUTH deadline came first: said at the top of the loop.
            Err(_) if caller.is_none() && tokio::time::Instant::now() >= auth_by => continue,
            Err(_) => {
                debug!("idle timeout");
                let line = error_line(&Error::bad_request(format!("idle for {}s; closing", idle.as_secs())));
                // Best effort: the peer may not be reading either.
                let _ =
                    tx.try_send(Slot { charge: 0, kind: ReplyKind::Other, pending: Pending::Ready(line) });
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
                // Owed, like any reply: wait for room behind the replies in
                // flight (a full pipeline dropped it), but no longer than the
                // connection may wait for a line.
                let slot =
                    Slot { charge: 0, kind: ReplyKind::Other, pending: Pending::Ready(error_line(&e)) };
                if let Err(mpsc::error::TrySendError::Full(slot)) = tx.try_send(slot) {
                    tokio::select! {
                        _ = tokio::time::timeout(wait, tx.send(slot)) => {}
                        _ = stop.clone().begun() => {}
                    }
                }
                break;
            }
            Ok(Some(Ok(b))) => b,
        };
        let request = parse_line(&bytes);
        let (charge, kind) = match &request {
            Err(e) => (e.len(), ReplyKind::Other),
            Ok(Command::Get { .. }) => (budget.reservation(), ReplyKind::Get),
            Ok(cmd) if goes_to_engine(cmd) && !cmd.is_write() => (budget.reservation(), ReplyKind::Read),
            Ok(_) => (0, ReplyKind::Other),
        };
        // Room for the reply first: while the peer leaves replies unread,
        // its next request waits here, unread by the engine.
        let room = budget.try_take(charge, kind)
            || tokio::select! {
                r = budget.take(charge, kind, || patience(&caller, auth_by, idle)) => r,
                _ = stop.clone().begun() => false,
                _ = tx.closed() => false,
            };
        if !room {
            debug!("replies not taken; closing");
            break;
        }
        // An `AUDIT`'s turn with the engine (see `Shared::audits`): the
        // connection reads nothing more until it has it.
        let audit_turn = match &request {
            Ok(Command::Audit { .. }) if caller.is_some() => {
                let turn = tokio::select! {
                    t = shared.audits.clone().acquire_owned() => t.ok(),
                    _ = stop.clone().begun() => None,
                    _ = tx.closed() => None,
                };
                let Some(turn) = turn else { break };
                Some(turn)
            }
            _ => None,
        };
        let (pending, quit, charge) = match request {
            Ok(cmd) => {
                let was_authenticated = caller.is_some();
                // (AUTH replaces the caller anyway; PING, HELP and QUIT need none.)
                let lost = match cmd {
                    Command::Auth { .. } | Command::Ping | Command::Help | Command::Quit => None,
                    _ => revoked(&mut caller, &mut revocations_seen, &shared),
                };
                let (pending, quit) = match &lost {
                    Some(e) => (Pending::Ready(error_line(e)), false),
                    None => handle_command(
                        cmd,
                        &mut caller,
                        &shared,
                        &mut token_turn,
                        &mut token_place,
                        &mut peer,
                    ),
                };
                // The turn ends with the engine's reply, not when the writer
                // gets to it behind replies its peer has not taken.
                let pending = match (audit_turn, pending) {
                    (Some(turn), Pending::Engine(rx, sent)) => {
                        let (mut forward, reply) = oneshot::channel();
                        tokio::spawn(async move {
                            // A connection gone before its rows (its slots
                            // dropped) lets go of the engine's reply: the
                            // audit thread then skips the fold if it has not
                            // begun it, and the turn passes on at once.
                            let r = tokio::select! {
                                r = rx => r.ok(),
                                () = forward.closed() => None,
                            };
                            if let Some(r) = r {
                                let _ = forward.send(r);
                            }
                            drop(turn);
                        });
                        Pending::Engine(reply, sent)
                    }
                    (_, pending) => pending,
                };
                // Its token's place goes with its authentication (a
                // refused AUTH, a revocation; a no-op on a connection
                // never authenticated).
                if caller.is_none() {
                    token_place.release();
                }
                debug_assert_eq!(
                    token_place.name.as_deref(),
                    caller.as_ref().map(|c| c.name.as_str()),
                    "the connection counts against its caller's token, and only then"
                );
                if caller.is_some() {
                    unauthenticated.release();
                    if !was_authenticated {
                        budget.authenticated(true);
                    }
                } else if was_authenticated {
                    unauthenticated.recount();
                    budget.authenticated(false);
                    auth_by = tokio::time::Instant::now() + shared.config.auth_timeout;
                    auth_since = if lost.is_some() { "its token's revocation" } else { "the failed AUTH" };
                }
                // A reply made here (HELP's is over 2 KiB, for 5 bytes
                // asked) is held until the peer takes it: count it too,
                // so the next request waits for room.
                let made = match &pending {
                    Pending::Ready(s) => s.len(),
                    _ => 0,
                };
                budget.add(made);
                (pending, quit, charge + made)
            }
            Err(line) => (Pending::Ready(line), false, charge),
        };
        // The slot's place in the order is taken only here; if it cannot
        // be (shutdown, or a writer stuck on a peer that does not read),
        // the connection ends and the reply, durable or not, is lost with it.
        // Only a full queue waits (and only then are timers armed).
        let sent = match tx.try_send(Slot { pending, charge, kind }) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
            Err(mpsc::error::TrySendError::Full(slot)) => tokio::select! {
                r = queue(&tx, slot, &budget, || patience(&caller, auth_by, idle)) => r,
                _ = stop.clone().begun() => false,
            },
        };
        if !sent || quit {
            break;
        }
    }
    drop(tx);
    if caller.is_some() {
        let _ = writer.await;
    } else {
        // Not authenticated: what it is owed (PING, HELP, errors) does not
        // keep the connection past its AUTH deadline, however long the peer
        // leaves it unread; a second at least for the last word.
        let until = auth_by.max(tokio::time::Instant::now() + Duration::from_secs(1));
        if tokio::time::timeout_at(until, &mut writer).await.is_err() {
            debug!("replies not taken by the AUTH deadline; closing");
            writer.abort();
        }
    }
}

/// Puts `slot` in the full reply queue `tx` once it has a place: `true`.
/// `false` if the writer is gone, or once `patience()` passes with no
/// reply bytes taken by the peer (see [`Budget::take`]): a writer busy on
/// one long reply that a slow peer keeps reading is waited for.
async fn queue(
    tx: &mpsc::Sender<Slot>,
    slot: Slot,
    budget: &Budget,
    patience: impl Fn() -> Duration,
) -> bool {
    loop {
        let taken = budget.freed.notified();
        tokio::select! {
            place = tx.reserve() => return place.map(|p| p.send(slot)).is_ok(),
            r = tokio::time::timeout(patience(), taken) => {
                if r.is_err() {
                    return false;
                }
            }
        }
    }
}

/// How long the reader waits for room (in the byte budget or the reply
/// queue) without the peer taking any reply bytes: the idle timeout, and
/// before a good AUTH no later than its deadline.
fn patience(caller: &Option<Caller>, auth_by: tokio::time::Instant, idle: Duration) -> Duration {
    match caller {
        Some(_) => idle,
        None => idle.min(auth_by.saturating_duration_since(tokio::time::Instant::now())),
    }
}

/// Lines taken from a connection's read buffer before the reader waits
/// in a select again (see `serve_connection`).
const TAKEN_AT_ONCE_MAX: u32 = 64;

/// Whether a parsed command is answered by the engine.
fn goes_to_engine(cmd: &Command) -> bool {
    !matches!(
        cmd,
        Command::Ping
            | Command::Quit
            | Command::Help
            | Command::Auth { .. }
            | Command::Token { .. }
            | Command::Revoke { .. }
            | Command::Stats { .. }
    )
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

/// One request line as a command, or the `ERR` line it gets.
fn parse_line(bytes: &[u8]) -> Result<Command, String> {
    let line = match std::str::from_utf8(bytes) {
        Ok(l) => l,
        Err(e) => {
            // Counted from 1, as characters are in the parser's errors.
            let msg = format!("the line is not valid UTF-8 (at byte {})", e.valid_up_to() + 1);
            return Err(error_line(&Error::bad_request(msg)));
        }
    };
    gridline_protocol::parse_request(line).map_err(|e| error_line(&e))
}

/// The end of the connection's last `TOKEN` or `REVOKE`, which may still
/// be running: the next one waits for it (its sender is dropped when it is
/// done), so that they change the tokens in the order they were sent
/// (`TOKEN name=x` then `REVOKE name=x`, pipelined, revokes x).
type TokenTurn = Option<std::sync::mpsc::Receiver<()>>;

/// Runs `f` off the connection threads after the connection's previous
/// `TOKEN` or `REVOKE`, and writes its reply.
fn in_turn(
    turn: &mut TokenTurn,
    ctx: FormatCtx,
    f: impl FnOnce() -> Result<Vec<(String, String)>, Error> + Send + 'static,
) -> Pending {
    let (done, next) = std::sync::mpsc::channel::<()>();
    let before = turn.replace(next);
    Pending::Blocking(tokio::task::spawn_blocking(move || {
        let _done = done;
        if let Some(b) = before {
            // Err once the previous one dropped its sender: done.
            let _ = b.recv();
        }
        match f() {
            Ok(fields) => ok_line(fields, &ctx),
            Err(e) => error_line(&e),
        }
    }))
}

/// One request: answered here (session verbs) or handed to the engine.
fn handle_command(
    cmd: Command,
    caller: &mut Option<Caller>,
    shared: &Arc<Shared>,
    token_turn: &mut TokenTurn,
    token_place: &mut TokenPlace,
    peer: &mut Peer,
) -> (Pending, bool) {
    let ctx = FormatCtx {
        utc_offset_min: shared.config.utc_offset_min,
        warn_at_percent: shared.config.warn_at_percent,
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
            let blocked = shared
                .auth_failures
                .lock()
                .expect("auth failures lock")
                .blocked(peer.addr.ip(), Instant::now());
            if let Some(left) = blocked {
                *caller = None;
                peer.auth_failed(shared);
                let e = Error::new(
                    ErrorCode::Unauthenticated,
                    format!(
                        "{AUTH_FAILURES_MAX} or more AUTHs refused from {} within a minute; try again in {}s",
                        AuthFailures::key(peer.addr.ip()),
                        left.as_secs().max(1)
                    ),
                );
                return (ready(Err(e)), false);
            }
            let found = shared.tokens.lock().expect("tokens lock").authenticate(&token);
            match found {
                Some(c) => {
                    // A good token with no room: refused like any AUTH (the
                    // connection is left unauthenticated, and an earlier
                    // authentication ends), but not counted as a guess, or a
                    // client retrying would get its address blocked, and
                    // with it every client behind the same NAT.
                    if let Err(full) = token_place.take(&c.name) {
                        *caller = None;
                        if let Some(refused) = full.log {
                            warn!(
                                peer = %peer.addr,
                                token = %c.name,
                                limit = full.max,
                                refused,
                                "AUTH refused: the token already has as many connections as allowed"
                            );
                        }
                        let e = Error::new(
                            ErrorCode::Busy,
                            format!(
                                "too many connections authenticated with the token `{}` (limit {}); close one of \
                                 those or try again later",
                                c.name, full.max
                            ),
                        );
                        return (ready(Err(e)), false);
                    }
                    let mut f = vec![kv("role", c.role.as_str())];
                    if let Some(w) = &c.worker {
                        f.push(kv("worker", w.clone()));
                    }
                    *caller = Some(c);
                    (ready(Ok(f)), false)
                }
                None => {
                    *caller = None;
                    peer.auth_failed(shared);
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
        // They rewrite and fsync tokens.toml: off the connection threads.
        Command::Token { role, worker, name } => {
            let (caller, shared) = (caller.clone().expect("checked"), shared.clone());
            (in_turn(token_turn, ctx, move || issue_token(&caller, role, worker, name, &shared)), false)
        }
        Command::Revoke { name } => {
            let (caller, shared) = (caller.clone().expect("checked"), shared.clone());
            (in_turn(token_turn, ctx, move || revoke_token(&caller, &name, &shared)), false)
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
        return Err(Error::not_allowed("STATS", caller.role));
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
        return Err(Error::not_allowed("TOKEN", caller.role));
    }
    if matches!(role, Role::System | Role::Admin) {
        return Err(Error::bad_request("role: must be worker, operator or supervisor"));
    }
    if let Some(w) = &worker {
        if shared.registry.worker_idx(w).is_none() {
            return Err(Error::not_found(format!("worker: no worker `{}` in the registry", clip(w))));
        }
    }
    if let Some(n) = &name {
        crate::auth::check_new_name(n).map_err(Error::bad_request)?;
    }
    let secret = new_secret().map_err(|e| Error::internal(e.to_string()))?;
    // One writer of the file at a time; the tokens themselves are locked
    // only to copy and to insert, so AUTH never waits for the fsync.
    let _writer = shared.token_writer.lock().expect("token writer lock");
    let unsaved = |e: TokenError| Error::unavailable(format!("cannot save the token: {e}"));
    let (path, file, token) = {
        let t = shared.tokens.lock().expect("tokens lock");
        // Names are unique: the engine tells operators apart by name (an
        // operator sees the full phone numbers of their own cases) and
        // events name their actor by it. Checked under the writer's lock.
        let name = match name {
            Some(n) if t.name_taken(&n) => {
                return Err(Error::bad_request(format!(
                    "name: `{}` is already another token's name; choose another",
                    clip(&n)
                )))
            }
            Some(n) if t.name_like(&n).is_some() => {
                return Err(Error::bad_request(format!(
                    "name: `{}` differs from another token's, `{}`, only in letter case; choose another",
                    clip(&n),
                    clip(t.name_like(&n).expect("checked"))
                )))
            }
            Some(n) => n,
            None => t.fresh_name(worker.as_deref().unwrap_or(role.as_str())),
        };
        let token = Token {
            role: role.as_str().into(),
            name,
            secret: secret.clone(),
            worker: worker.clone(),
            revoked: None,
        };
        (t.path().to_path_buf(), t.with_added(&token).map_err(unsaved)?, token)
    };
    let name = token.name.clone();
    crate::auth::save(&path, &file).map_err(unsaved)?;
    shared.tokens.lock().expect("tokens lock").insert(token).map_err(unsaved)?;
    let mut f = vec![kv("role", role.as_str()), kv("name", name)];
    if let Some(w) = worker {
        f.push(kv("worker", w));
    }
    f.push(kv("secret", secret));
    Ok(f)
}

/// `REVOKE name=`: marks the token revoked in the file (durably), then in
/// memory; connections that used it are logged out at their next request.
fn revoke_token(caller: &Caller, name: &str, shared: &Shared) -> Result<Vec<(String, String)>, Error> {
    if caller.role != Role::Admin {
        return Err(Error::not_allowed("REVOKE", caller.role));
    }
    let at = gridline_model::Timestamp::now().rfc3339(shared.config.utc_offset_min);
    let scrambled = new_secret().map_err(|e| Error::internal(e.to_string()))?;
    let _writer = shared.token_writer.lock().expect("token writer lock");
    let (path, file) = {
        let t = shared.tokens.lock().expect("tokens lock");
        let file = t.with_revoked(name, &at, &scrambled).map_err(|e| match e {
            RevokeError::Unknown => Error::not_found(format!("name: no token is named `{}`", clip(name))),
            RevokeError::Already(_) => Error::conflict(format!("name: the token `{name}` was {e}")),
            RevokeError::Admin => Error::forbidden(format!("name: `{name}` is an admin token: {e}")),
        })?;
        (t.path().to_path_buf(), file)
    };
    crate::auth::save(&path, &file)
        .map_err(|e| Error::unavailable(format!("cannot save the revocation: {e}")))?;
    shared.tokens.lock().expect("tokens lock").revoke(name, &at, &scrambled);
    shared.revocations.fetch_add(1, Ordering::Release);
    // Connections refuse the token from here on; requests of it they
    // handed the engine a moment ago are done first, or refused there, so
    // that after this OK none is carried out. (A stopped engine carries
    // out nothing: the revocation stands, saved above.)
    if let Err(e) = shared.engine.revoke(name) {
        debug!(error = %e, "the engine did not take the revocation");
    }
    Ok(vec![kv("name", name), kv("revoked", at)])
}

/// Whether the connection's caller lost its token to `REVOKE` since it
/// last looked (`seen`); if so, it is logged out.
fn revoked(caller: &mut Option<Caller>, seen: &mut u64, shared: &Shared) -> Option<Error> {
    let now = shared.revocations.load(Ordering::Acquire);
    if caller.is_none() || now == *seen {
        return None;
    }
    *seen = now;
    let name = caller.as_ref().map(|c| c.name.clone()).expect("checked");
    if shared.tokens.lock().expect("tokens lock").is_active(&name) {
        return None;
    }
    *caller = None;
    Some(Error::new(ErrorCode::Unauthenticated, format!("the token `{name}` was revoked; AUTH with another")))
}

/// What a connection's writer needs besides its socket and queue.
/// A writer keeps its reply buffer's room for the next reply up to this;
/// past it (a long history), the buffer is let go once written, or each
/// connection that ever had one would keep megabytes for its lifetime.
const OUT_KEPT_BYTES: usize = 64 * 1024;

struct WriterCtx {
    ctx: FormatCtx,
    acks: Arc<Latency>,
    budget: Arc<Budget>,
    /// How long the peer may take to accept a write (the idle timeout).
    timeout: Duration,
    /// How long it may take once shutdown has begun.
    grace: Duration,
    stop: Stop,
}

/// Writes replies in request order, waiting for each engine reply in turn.
///
/// Replies that are ready one after another go out in one write; whatever
/// is buffered is flushed before waiting for a reply that is not ready yet
/// (and when nothing else is queued). Flushing only when the queue was
/// empty held a reply back behind the next request's commit whenever that
/// request had already arrived: at a steady paced load, chains of such
/// waits made the client's p99 ten times the server's.
///
/// A peer that takes nothing for the idle timeout (or, once shutdown has
/// begun, for the grace period) loses the connection, and with it the
/// replies still queued: their outcome is unknown to it, as after any
/// dropped connection.
async fn write_replies(wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Slot>, c: WriterCtx) {
    let mut w = Writer {
        w: BufWriter::with_capacity(WRITE_BUFFER, wr),
        unflushed: Vec::new(),
        acks: c.acks.clone(),
        timeout: c.timeout,
        grace: c.grace,
        stop: c.stop.clone(),
    };
    let ctx = c.ctx;
    let mut out = String::with_capacity(1024);
    let mut healthy = true;
    while let Some(Slot { pending, charge, kind }) = rx.recv().await {
        out.clear();
        // A write's reply, answer or refusal, counts as its acknowledgement.
        let sent = match pending {
            Pending::Ready(s) => {
                out.push_str(&s);
                None
            }
            Pending::Blocking(task) => {
                if !task.is_finished() && w.flush().await.is_err() {
                    healthy = false;
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
                            healthy = false;
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
        if kind != ReplyKind::Other {
            c.budget.largest_read.fetch_max(out.len(), Ordering::Relaxed);
        }
        // The slot's charge becomes the reply's bytes until the socket
        // takes them, given back piece by piece (the server's count too).
        c.budget.add(out.len());
        // Given back as the socket takes it, the rest when this is dropped:
        // also when the writer is aborted, or the count would only grow.
        let all = HeldPart::new(&c.budget.all, out.len());
        if kind == ReplyKind::Get {
            c.budget.got();
        }
        c.budget.give_back(charge);
        let mut left = out.len();
        let written = w
            .write(out.as_bytes(), |n| {
                left -= n;
                c.budget.give_back(n);
            })
            .await;
        drop(all);
        c.budget.give_back(left);
        if out.capacity() > OUT_KEPT_BYTES {
            out = String::with_capacity(1024);
        }
        if written.is_err() {
            // The client is gone or not reading; the engine still finishes what it was given.
            healthy = false;
            break;
        }
        w.unflushed.extend(sent);
        if rx.is_empty() && w.flush().await.is_err() {
            healthy = false;
            break;
        }
    }
    if healthy {
        let _ = w.flush().await;
        let _ = timed(w.timeout, w.grace, w.stop.clone(), w.w.shutdown()).await;
    }
}

/// A connection's buffered writer, and the writes whose replies it holds:
/// their acknowledgement latency is recorded when the reply is flushed.
struct Writer {
    w: BufWriter<OwnedWriteHalf>,
    unflushed: Vec<Instant>,
    acks: Arc<Latency>,
    timeout: Duration,
    grace: Duration,
    stop: Stop,
}

/// One write to the socket at most: progress is checked per piece.
const WRITE_PIECE: usize = 64 * 1024;
/// A connection's write buffer.
const WRITE_BUFFER: usize = 64 * 1024;

impl Writer {
    /// Writes `bytes` a piece at a time, telling `taken` the length of
    /// each piece once it is written (in the buffer or on the socket).
    async fn write(&mut self, bytes: &[u8], mut taken: impl FnMut(usize)) -> std::io::Result<()> {
        for piece in bytes.chunks(WRITE_PIECE) {
            // Strictly less: a piece that fills the buffer exactly is
            // written by `BufWriter` straight to the socket, which waits.
            if self.w.buffer().len() + piece.len() < WRITE_BUFFER {
                // Into the buffer only: nothing to wait for.
                self.w.write_all(piece).await?;
            } else {
                timed(self.timeout, self.grace, self.stop.clone(), self.w.write_all(piece)).await?;
            }
            taken(piece.len());
        }
        Ok(())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        timed(self.timeout, self.grace, self.stop.clone(), self.w.flush()).await?;
        for at in self.unflushed.drain(..) {
            self.acks.record(at.elapsed().as_micros() as u64);
        }
        Ok(())
    }
}

/// Runs one socket operation, failing it when the peer takes nothing for
/// `timeout`, or for `grace` once shutdown has begun.
async fn timed(
    timeout: Duration,
    grace: Duration,
    stop: Stop,
    op: impl Future<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    let timed_out = |what: &str| std::io::Error::new(std::io::ErrorKind::TimedOut, what.to_string());
    tokio::select! {
        r = tokio::time::timeout(timeout, op) => match r {
            Ok(r) => r,
            Err(_) => {
                debug!("the peer took no reply bytes for the idle timeout; closing");
                Err(timed_out("peer not reading"))
            }
        },
        _ = stop.grace_over(grace) => {
            debug!("shutting down: the peer took no reply bytes within the grace period; aborting");
            Err(timed_out("shutdown grace period over"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection whose peer reads nothing, written to until it takes no more.
    async fn full_socket() -> (OwnedWriteHalf, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut socket, _) = listener.accept().await.unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        while tokio::time::timeout(Duration::from_millis(500), socket.write_all(&chunk)).await.is_ok() {}
        (socket.into_split().1, peer)
    }

    /// A reader waiting for room in the reply budget waits as long as the
    /// peer keeps taking bytes, however long that takes in all, and gives
    /// up only after `patience` with none taken. (Paused time: the
    /// runtime's clock moves only as timers fire, so what it shows is
    /// which timer ended the wait, not how fast the machine was.)
    #[tokio::test(start_paused = true)]
    async fn room_is_waited_for_while_the_peer_takes_bytes_and_not_after() {
        let budget = Arc::new(Budget::new(64 * 1024, HeldReplies::new(usize::MAX)));
        budget.add(64 * 1024 + 16 * 1024);
        // A slow peer: 1 KiB taken every 50 ms, 1.2 s for the 24 KiB that must free,
        // each step well within the patience of 1 s.
        let slow = budget.clone();
        let peer = tokio::spawn(async move {
            for _ in 0..80 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                slow.give_back(1024);
            }
        });
        assert!(
            budget.take(8 * 1024, ReplyKind::Other, || Duration::from_secs(1)).await,
            "gave up on a peer still reading"
        );
        peer.abort();
        // A peer that takes nothing: given up on when the patience ran out,
        // not before (in the paused clock, exactly then).
        let t0 = tokio::time::Instant::now();
        assert!(!budget.take(1 << 20, ReplyKind::Other, || Duration::from_millis(200)).await);
        assert_eq!(t0.elapsed(), Duration::from_millis(200), "gave up at another moment than the patience");
    }

    /// A token's connections are counted by its name up to the cap; a
    /// place moves with an AUTH with another token (if that one has room),
    /// is given back on release or drop, and a name's entry goes at zero.
    #[test]
    fn a_token_holds_at_most_its_cap_of_connections_and_places_come_back() {
        let all = Arc::new(PerToken::new(2));
        let count = |name: &str| all.lock().get(name).map_or(0, |c| c.n);
        let (mut a, mut b, mut c) =
            (TokenPlace::new(all.clone()), TokenPlace::new(all.clone()), TokenPlace::new(all.clone()));
        a.take("W00012").unwrap();
        b.take("W00012").unwrap();
        let full = c.take("W00012").unwrap_err();
        assert_eq!(full, TokenFull { max: 2, log: Some(1) });
        assert_eq!((c.name.as_deref(), count("W00012")), (None, 2), "a refusal changes nothing");
        // AUTH again with the token it has: no room needed, nothing counted twice.
        a.take("W00012").unwrap();
        assert_eq!(count("W00012"), 2);
        // Another token still gets in; a move frees the old place at once.
        c.take("operator").unwrap();
        a.take("operator").unwrap();
        assert_eq!((count("W00012"), count("operator")), (1, 2));
        // A move to a full token leaves the place where it was.
        assert!(b.take("operator").is_err());
        assert_eq!(b.name.as_deref(), Some("W00012"));
        b.release();
        assert!(!all.lock().contains_key("W00012"), "the entry goes at zero");
        b.release();
        drop(a);
        drop(c);
        assert!(all.lock().is_empty(), "every place given back");
    }

    /// A client retrying a full token's AUTH in a loop gets one log line a
    /// minute, which counts the refusals since the last.
    #[test]
    fn refusals_of_a_full_token_are_logged_once_a_minute_with_their_count() {
        let mut c = TokenCount { n: 1, ..TokenCount::default() };
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(c.refused(at(0)), Some(1));
        assert_eq!(c.refused(at(1)), None);
        assert_eq!(c.refused(at(59)), None);
        assert_eq!(c.refused(at(60)), Some(3));
        assert_eq!(c.refused(at(61)), None);
    }

    #[test]
    fn a_line_not_utf8_names_its_first_bad_byte_counting_from_1() {
        let e = parse_line(b"PING \xff").unwrap_err();
        assert!(e.contains("not valid UTF-8 (at byte 6)"), "{e}");
        let e = parse_line("NOTE text=水\u{1}".as_bytes()).unwrap_err();
        assert!(e.contains("at character 12"), "the parser counts from 1 too: {e}");
    }

    /// Before AUTH a connection holds 16 KiB of replies at most (one reply
    /// always fits when nothing is held); after, the whole budget; and 16
    /// KiB again once it is no longer authenticated.
    #[test]
    fn a_connection_not_authenticated_has_a_small_budget() {
        let budget = Budget::new(4 << 20, HeldReplies::new(usize::MAX));
        budget.add(10 << 10);
        assert!(budget.try_take(6 << 10, ReplyKind::Other));
        assert!(!budget.try_take(1, ReplyKind::Other), "16 KiB held");
        budget.authenticated(true);
        assert!(budget.try_take(1 << 20, ReplyKind::Other));
        budget.authenticated(false);
        assert!(!budget.try_take(0, ReplyKind::Other), "back to 16 KiB, with more held");
        budget.give_back((1 << 20) + (16 << 10));
        assert!(budget.try_take(1 << 20, ReplyKind::Other), "nothing held: one reply always fits");
    }

    /// While all connections together hold `HeldReplies::max` bytes of
    /// replies made, no read is taken (a reply made here, or a write's, is:
    /// they are a line); a reply is counted whole until written whole, and
    /// its bytes given back once it is, or once its writer is gone.
    #[test]
    fn no_read_is_taken_while_the_server_holds_its_most_replies() {
        let all = HeldReplies::new(1 << 20);
        let budget = Budget::new(4 << 20, all.clone());
        budget.authenticated(true);
        let part = HeldPart::new(&all, 1 << 20);
        assert!(!all.room());
        assert!(!budget.try_take(128 * 1024, ReplyKind::Read));
        assert!(!budget.try_take(128 * 1024, ReplyKind::Get));
        assert!(budget.try_take(0, ReplyKind::Other));
        drop(part);
        assert!(all.room() && budget.try_take(128 * 1024, ReplyKind::Read));
        assert_eq!(all.bytes.load(Ordering::Acquire), 0, "given back whole");
    }

    /// A `GET` is read only once the connection's previous one has its
    /// reply made: however much room the budget has, two histories are
    /// never loaded for one connection at once. Other requests go on.
    #[tokio::test(start_paused = true)]
    async fn a_get_waits_for_the_previous_gets_reply_and_nothing_else_does() {
        let budget = Arc::new(Budget::new(4 << 20, HeldReplies::new(usize::MAX)));
        budget.authenticated(true);
        assert!(budget.try_take(128 * 1024, ReplyKind::Get));
        assert!(!budget.try_take(128 * 1024, ReplyKind::Get), "a second GET while the first waits");
        assert!(budget.try_take(128 * 1024, ReplyKind::Read), "a PULL need not wait");
        assert!(budget.try_take(0, ReplyKind::Other));
        let writer = budget.clone();
        let made = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            writer.add(7 << 20);
            writer.got();
            writer.give_back(128 * 1024);
        });
        // The first GET's reply is over the budget: the second waits for
        // its bytes too, which come back as the socket takes them.
        let freed = budget.clone();
        let given_back = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let said = given_back.clone();
        let peer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            said.store(true, Ordering::Release);
            freed.give_back(7 << 20);
        });
        assert!(budget.take(128 * 1024, ReplyKind::Get, || Duration::from_secs(5)).await);
        assert!(
            made.is_finished() && given_back.load(Ordering::Acquire),
            "the second GET went ahead before the first's reply was made and its bytes taken"
        );
        assert_eq!(budget.gets.load(Ordering::Acquire), 1);
        made.await.unwrap();
        peer.await.unwrap();
    }

    /// The same for a place in the reply queue: waited for while the
    /// writer's peer takes bytes, given up after `patience` with none.
    #[tokio::test]
    async fn a_place_in_the_queue_is_waited_for_while_the_peer_takes_bytes() {
        let slot = || Slot { pending: Pending::Ready("OK\n".into()), charge: 0, kind: ReplyKind::Other };
        let budget = Arc::new(Budget::new(64 * 1024, HeldReplies::new(usize::MAX)));
        budget.add(32 * 1024);
        let (tx, mut rx) = mpsc::channel(1);
        tx.try_send(slot()).unwrap();
        // The writer on one long reply: 1 KiB taken every 50 ms for 1.2 s,
        // then the next slot; each step well within the patience of 1 s.
        let slow = budget.clone();
        let writer = tokio::spawn(async move {
            for _ in 0..24 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                slow.give_back(1024);
            }
            let first = rx.recv().await;
            (first.is_some(), rx)
        });
        assert!(
            queue(&tx, slot(), &budget, || Duration::from_secs(1)).await,
            "gave up on a peer still reading"
        );
        let (taken, mut rx) = writer.await.unwrap();
        assert!(taken);
        assert!(rx.try_recv().is_ok(), "the slot is in the queue");
        // A full queue and a peer that takes nothing: given up on.
        tx.try_send(slot()).unwrap();
        assert!(!queue(&tx, slot(), &budget, || Duration::from_millis(200)).await);
        // The writer gone: no place ever.
        drop(rx);
        assert!(!queue(&tx, slot(), &budget, || Duration::from_secs(60)).await);
    }

    #[tokio::test]
    async fn a_write_to_a_peer_that_takes_nothing_ends_at_the_timeout() {
        let (wr, _peer) = full_socket().await;
        // Shutdown has not begun (the sender lives); only the timeout can end the wait.
        let (_stop, stop) = watch::channel(false);
        let mut w = Writer {
            w: BufWriter::with_capacity(WRITE_BUFFER, wr),
            unflushed: Vec::new(),
            acks: Arc::new(Latency::default()),
            timeout: Duration::from_millis(200),
            grace: Duration::from_secs(3600),
            stop: Stop(stop),
        };
        // One whole piece with nothing buffered: the reply of a large read.
        let piece = vec![b'y'; WRITE_PIECE];
        let r = tokio::time::timeout(Duration::from_secs(10), w.write(&piece, |_| {})).await;
        assert!(r.is_ok(), "the write waited on the peer past its timeout");
    }
}
