//! `gridline serve`: recover the log, start the engine, serve TCP until a signal.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use gridline_caselog::{CaseLog, SledStore};
use gridline_engine::{EngineConfig, SystemClock};
use gridline_server::{auth::Tokens, ServerConfig};
use tracing::info;

use crate::ConfigFlag;

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigFlag,
    /// The data directory: the case log and tokens.toml.
    #[arg(long, value_name = "DIR", default_value = crate::DEFAULT_DATA)]
    pub data: PathBuf,
    /// Address to listen on: IP:PORT, or HOST:PORT (its first IPv4 address,
    /// else its first).
    #[arg(long, value_name = "ADDR", default_value = crate::DEFAULT_ADDR, value_parser = listen_addr)]
    pub listen: SocketAddr,
    /// Longest request line in bytes (64 to 16 MiB).
    #[arg(long, default_value_t = 8 * 1024, value_parser = usize_in(64, 16 << 20))]
    pub line_bytes_max: usize,
    /// Connections served at once (1 to 1,000,000).
    #[arg(long, default_value_t = 1024, value_parser = usize_in(1, 1_000_000))]
    pub connections_max: usize,
    /// Seconds a connection may go without completing a line, or without
    /// taking any of the replies it is owed.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout_secs: u64,
    /// Seconds after connecting within which a client must send a good
    /// `AUTH`; a connection without one is then closed, busy or not.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub auth_timeout_secs: u64,
    /// Connections from one address not yet authenticated at once (1 to
    /// 1,000,000); one more is refused with `ERR busy`.
    #[arg(long, default_value_t = 64, value_parser = usize_in(1, 1_000_000))]
    pub unauthenticated_per_address_max: usize,
    /// Connections authenticated with one token at once (1 to 1,000,000);
    /// an `AUTH` past it gets `ERR busy` and the connection stays open,
    /// unauthenticated. Keeps one token from taking every
    /// `--connections-max` slot.
    #[arg(long, default_value_t = gridline_protocol::limits::CONNECTIONS_PER_TOKEN_MAX_DEFAULT,
          value_parser = usize_in(1, 1_000_000))]
    pub connections_per_token_max: usize,
    /// Requests one connection may have waiting for replies (1 to 65,536).
    #[arg(long, default_value_t = 1024, value_parser = usize_in(1, 65_536))]
    pub inflight_max: usize,
    /// Bytes of replies one connection may hold before the server stops
    /// reading its requests (64 KiB to 1 GiB).
    #[arg(long, default_value_t = gridline_protocol::limits::REPLY_BYTES_MAX_DEFAULT,
          value_parser = usize_in(64 << 10, 1 << 30))]
    pub reply_bytes_max: usize,
    /// Bytes of replies all connections together may hold before the server
    /// takes no more reads, from any of them, until peers take some (16 MiB
    /// to 64 GiB).
    #[arg(long, default_value_t = gridline_protocol::limits::HELD_REPLY_BYTES_MAX_DEFAULT,
          value_parser = usize_in(16 << 20, 64 << 30))]
    pub held_reply_bytes_max: usize,
    /// Seconds, once shutting down, that a client may take to accept each
    /// write of its replies before its connection is aborted.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub shutdown_grace_secs: u64,
    /// Commands waiting for the engine at most; more get `ERR busy` (1 to 16,777,216).
    #[arg(long, default_value_t = 16 * 1024, value_parser = usize_in(1, 1 << 24))]
    pub queue_max: usize,
    /// Commands per group commit at most (1 to 65,536).
    #[arg(long, default_value_t = 1024, value_parser = usize_in(1, 65_536))]
    pub batch_max: usize,
    /// MiB of records in a write-ahead log file after which the log moves
    /// to its other file and sled is made durable in the background (each
    /// file takes about this much disk, and up to four times it while
    /// sled lags).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub checkpoint_mib: u64,
}

/// `--listen`: an address as given, or a host name resolved (`localhost:7700`,
/// as `client --addr` takes it).
fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let hint = "give IP:PORT or HOST:PORT, e.g. 127.0.0.1:7700";
    let all: Vec<SocketAddr> = s.to_socket_addrs().map_err(|e| format!("{e}; {hint}"))?.collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(|| format!("resolves to no address; {hint}"))
}

/// A clap parser for a `usize` flag within `min..=max`.
fn usize_in(min: u64, max: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(min..=max)
}

pub fn load_registry(flag: &ConfigFlag) -> anyhow::Result<Arc<gridline_registry::Registry>> {
    Ok(Arc::new(match &flag.config {
        Some(dir) => gridline_registry::Registry::load_dir(dir)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("loading the registry from {}", dir.display()))?,
        None => gridline_registry::embedded::jidong().clone(),
    }))
}

pub fn run(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let registry = load_registry(&a.config)?;
    // An address in use is refused before the data directory, its tokens and
    // its log are made or recovered for a server that will not serve. (Bound
    // and released: connections are refused, not queued, until it serves.)
    drop(std::net::TcpListener::bind(a.listen).with_context(|| format!("listening on {}", a.listen))?);
    // (create_dir_all would say only `File exists` of a file in the way.)
    if std::fs::metadata(&a.data).is_ok_and(|m| !m.is_dir()) {
        anyhow::bail!(
            "--data {}: not a directory; the data directory holds the case log and tokens.toml",
            a.data.display()
        );
    }
    check_is_ours(&a.data)?;
    // The data directory holds residents' records and every token's
    // secret: its owner's alone (0700), made so, or made so again.
    let mut dir = std::fs::DirBuilder::new();
    dir.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
    // The directories this makes: each one's entry in its parent goes to
    // disk before anything in it is acknowledged (the case log syncs the
    // data directory itself, and its own, at every start).
    let made: Vec<std::path::PathBuf> =
        a.data.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).map(Into::into).collect();
    dir.create(&a.data).with_context(|| format!("creating {}", a.data.display()))?;
    for d in &made {
        let parent = d.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        std::fs::File::open(parent)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {} after making {}", parent.display(), d.display()))?;
    }
    let log_dir = a.data.join("log");
    for d in [&a.data, &log_dir] {
        tighten(d).with_context(|| format!("{}: making it private (mode 0700)", d.display()))?;
    }
    let (tokens, created) = Tokens::open_or_create(&a.data.join("tokens.toml"))?;
    tokens.check_workers(|w| registry.worker_idx(w).is_some())?;
    let store = SledStore::open_with(&log_dir, a.checkpoint_mib << 20)
        .with_context(|| format!("opening the case log in {}", log_dir.display()))?;
    let log = CaseLog::open(store, Some(&registry.county.code))
        .with_context(|| format!("opening the case log in {}", log_dir.display()))?;
    let held = gridline_server::HeldReplies::new(a.held_reply_bytes_max);
    let config = EngineConfig {
        queue_commands_max: a.queue_max,
        batch_commands_max: a.batch_max,
        history_room: gridline_engine::HistoryRoom::new(Arc::new(gridline_server::Gate(held.clone()))),
        ..Default::default()
    };
    let (engine, thread) = gridline_engine::start(registry.clone(), log, Arc::new(SystemClock), config)?;
    crate::huge_pages(true);
    let server_config = ServerConfig {
        line_bytes_max: a.line_bytes_max,
        connections_max: a.connections_max,
        idle_timeout: Duration::from_secs(a.idle_timeout_secs),
        auth_timeout: Duration::from_secs(a.auth_timeout_secs),
        unauthenticated_per_address_max: a.unauthenticated_per_address_max,
        connections_per_token_max: a.connections_per_token_max,
        inflight_per_connection_max: a.inflight_max,
        reply_bytes_max: a.reply_bytes_max,
        shutdown_grace: Duration::from_secs(a.shutdown_grace_secs),
        held,
        utc_offset_min: registry.county.utc_offset_min,
        warn_at_percent: registry.county.warn_at_percent,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("listening on {}", a.listen))?;
        let addr = listener.local_addr()?;
        let shutdown = shutdown_signal().context("installing the signal handlers")?;
        // For whoever started it (a terminal, a script waiting for the
        // address). Not `println!`: a stdout that cannot be written (closed,
        // a full disk, `serve | head -1` gone) would panic the server; the
        // same is in the log, on stderr.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "gridline: serving {} on {addr}", registry.county.name).and_then(|()| {
            writeln!(
                out,
                "gridline: tokens in {}{}",
                tokens.path().display(),
                if created { " (new: admin, supervisor, operator)" } else { "" }
            )
        });
        let _ = out.flush();
        drop(out);
        info!(%addr, data = %a.data.display(), "serving");
        if !addr.ip().is_loopback() {
            // The protocol is plain text: secrets (AUTH, TOKEN's reply) and
            // residents' records (an operator's GET shows the phone whole)
            // cross the network as they are.
            tracing::warn!(
                %addr,
                "listening beyond this machine: the protocol is not encrypted, so tokens and residents' records cross the network in clear; keep it on a private network or behind a TLS tunnel (stunnel, WireGuard, an SSH tunnel)"
            );
        }
        gridline_server::run(listener, engine, tokens, registry.clone(), server_config, shutdown).await?;
        anyhow::Ok(())
    })?;
    // The server dropped its engine handle: the engine answers what it has and stops.
    thread.join();
    info!("stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

/// Refuses a `--data` directory that holds other files and nothing of
/// Gridline's (no `tokens.toml`, no `log/`): `--data .`, `--data ~` or
/// `--data /tmp` by a slip would be made private (0700) and get residents'
/// records among someone else's files. New, empty, and earlier Gridline
/// data directories are taken.
fn check_is_ours(dir: &std::path::Path) -> anyhow::Result<()> {
    // Missing: made below; unreadable: reported below, as it is met.
    let Ok(mut entries) = std::fs::read_dir(dir) else { return Ok(()) };
    if dir.join("tokens.toml").exists() || dir.join("log").exists() {
        return Ok(());
    }
    if let Some(Ok(e)) = entries.next() {
        anyhow::bail!(
            "--data {}: not a Gridline data directory: it holds other files (`{}`, ...) and no tokens.toml or \
             log/; give a new or empty directory (serve makes it private, mode 0700)",
            dir.display(),
            e.file_name().to_string_lossy()
        );
    }
    Ok(())
}

/// Makes the directory `dir`, if it exists and belongs to this user, its
/// owner's alone (0700, special bits kept) when group or others have any
/// access to it, with a warning naming it (as `tokens.toml` is made 0600).
/// The files in it then need no change: no one else can reach them. One
/// that belongs to another user is only warned about: the server may use
/// it (an administrator's shared directory) but not change it.
fn tighten(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let m = match std::fs::metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mode = m.permissions().mode() & 0o7777;
        if mode & 0o077 == 0 {
            return Ok(());
        }
        // SAFETY: geteuid only reads this process's effective user id.
        let me = unsafe { libc::geteuid() };
        if m.uid() != me {
            // Not ours to change (a directory an administrator shares with
            // this user through its group, say): it is used as it is.
            tracing::warn!(
                path = %dir.display(),
                mode = format!("{mode:04o}"),
                owner = m.uid(),
                "the directory holds residents' records and is open to other users, but belongs to another user: left as it is; make it private to the user the server runs as (mode 0700)"
            );
            return Ok(());
        }
        // Group and others lose every access; setgid and the like stay.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode((mode & 0o7000) | 0o700))?;
        tracing::warn!(
            path = %dir.display(),
            was = format!("{mode:04o}"),
            "the directory was open to other users (it holds residents' records); its mode is now 0700"
        );
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// SIGTERM or Ctrl-C. The handlers are installed when this is called, not
/// when the future is first polled: `serve` calls it before it says it is
/// serving, so a signal sent as soon as it says so is never the default
/// (fatal) one.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => info!("Ctrl-C: shutting down"),
                _ = term.recv() => info!("SIGTERM: shutting down"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            info!("Ctrl-C: shutting down");
        })
    }
}

#[cfg(test)]
mod tests {
    use super::listen_addr;

    #[test]
    fn listen_takes_an_address_or_a_host_name() {
        assert_eq!(listen_addr("127.0.0.1:7700").unwrap().to_string(), "127.0.0.1:7700");
        assert_eq!(listen_addr("[::1]:7700").unwrap().to_string(), "[::1]:7700");
        // localhost: its IPv4 loopback, where clients given 127.0.0.1 look.
        assert_eq!(listen_addr("localhost:7700").unwrap().to_string(), "127.0.0.1:7700");
        for bad in ["localhost", "127.0.0.1", ""] {
            let e = listen_addr(bad).unwrap_err();
            assert!(e.contains("e.g. 127.0.0.1:7700"), "{bad}: {e}");
        }
    }
}
