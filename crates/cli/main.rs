//! `gridline`: the command line. Each subcommand lives in its own module;
//! this file is the table of contents and the flags.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// sled copies tree nodes and the engine copies case records on every write:
/// allocation is a tenth of the engine thread's time with glibc's malloc,
/// markedly less with mimalloc (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `println!`, but a stdout that cannot be written (a full disk, a closed
/// file) is an error for `?`, not a panic: `audit --csv > audit.csv` on a
/// full disk exits 1 saying so.
macro_rules! outln {
    ($($arg:tt)*) => {
        anyhow::Context::context(
            std::io::Write::write_fmt(&mut std::io::stdout(), format_args!("{}\n", format_args!($($arg)*))),
            $crate::STDOUT,
        )
    };
}

/// The context of a failed write to stdout (see [`stdout_closed`]).
const STDOUT: &str = "writing to standard output";

/// Whether `e` is a write to stdout that failed because its reader is gone.
fn stdout_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.to_string() == STDOUT)
        && e.root_cause()
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// `print!`, as [`outln!`] (a prompt: flushed).
macro_rules! out {
    ($($arg:tt)*) => {
        anyhow::Context::context(
            std::io::Write::write_fmt(&mut std::io::stdout(), format_args!($($arg)*))
                .and_then(|()| std::io::Write::flush(&mut std::io::stdout())),
            $crate::STDOUT,
        )
    };
}

/// `eprintln!`, but a line stderr cannot take is dropped, not a panic.
macro_rules! errln {
    () => {
        errln!("")
    };
    ($($arg:tt)*) => {{
        let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("{}\n", format_args!($($arg)*)));
    }};
}

/// `eprint!`, as [`errln!`].
macro_rules! err {
    ($($arg:tt)*) => {{
        let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!($($arg)*));
    }};
}

mod client;
mod offline;
mod serve;
mod simulate;

#[derive(Parser)]
#[command(name = "gridline", version, about = "Case dispatch engine for grid-based community governance")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Clone, Debug)]
pub struct ConfigFlag {
    /// A county config directory (county.toml, workers.csv, grids.geojson); default: the embedded Jidong registry.
    #[arg(long, value_name = "DIR")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the engine and the TCP server.
    Serve(serve::ServeArgs),
    /// Inspect or check a registry.
    Registry {
        #[command(subcommand)]
        command: RegistryCmd,
    },
    /// Show where a case would go and why (nothing is stored).
    Route(offline::RouteArgs),
    /// Talk to a server: an interactive prompt, or requests from standard input.
    ///
    /// With input that is not a terminal, exits 2 when a reply was an ERR, and
    /// 1 when --token was refused, or the connection failed or closed before
    /// every line was answered.
    Client(client::ClientArgs),
    /// Audit figures from a data directory (the server must be stopped).
    Audit(offline::AuditArgs),
    /// Check every record of a data directory (the server must be stopped).
    Verify(offline::VerifyArgs),
    /// Drive a realistic day of hotline traffic against a running server.
    ///
    /// Exits 2 when the server refused any request.
    Simulate(simulate::SimulateArgs),
}

#[derive(Subcommand)]
enum RegistryCmd {
    /// Counts of grids, workers, departments, townships.
    Stats {
        #[command(flatten)]
        config: ConfigFlag,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Load and check a config directory; exits non-zero naming each problem.
    Check {
        /// The config directory to check (county.toml, workers.csv, grids.geojson).
        #[arg(long, value_name = "DIR")]
        config: PathBuf,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

pub const DEFAULT_ADDR: &str = "127.0.0.1:7700";
pub const DEFAULT_DATA: &str = "./gridline-data";

pub fn default_addr() -> SocketAddr {
    DEFAULT_ADDR.parse().expect("valid default address")
}

fn main() -> ExitCode {
    // No transparent huge pages while the case log is read: mimalloc asks
    // for them, and the kernel then zeroes 2 MiB at each first touch, which
    // on this project's VM was a third of a restart's CPU (recovering
    // 1,000,000 cases took 0.4-0.5 s longer). `serve` allows them again
    // once recovered, where they pay: fewer faults while cases arrive.
    huge_pages(false);
    let cli = Cli::parse();
    // The offline commands read a copy of a case log (residents' records)
    // made in $TMPDIR: it must be removed however they end.
    let offline = matches!(cli.command, Cmd::Audit(_) | Cmd::Verify(_));
    if offline || matches!(cli.command, Cmd::Serve(_)) {
        // What these write (the case log and sled's own files, the copy of
        // a log) holds residents' records: nobody else's to read. sled
        // creates its files with the default mode; the umask is the one
        // lever over their modes.
        #[cfg(unix)]
        // SAFETY: umask only sets this process's file mode mask.
        unsafe {
            libc::umask(0o077);
        }
    }
    if offline {
        // SIGINT, SIGTERM, SIGHUP: the copy is removed before the exit.
        #[cfg(unix)]
        if let Err(e) = offline::remove_copy_on_signals() {
            let _ = writeln!(std::io::stderr(), "gridline: {e:#}");
            return ExitCode::FAILURE;
        }
        // `gridline audit ... | head`: a reader that goes away is not a
        // signal that kills the process (leaving the copy behind) but a
        // failed write, an error `outln!` returns; the copy is removed as
        // the error returns, and the command then ends quietly (see below).
        #[cfg(unix)]
        // SAFETY: SIG_IGN is a valid disposition; the one thread started so
        // far (the signal thread) only waits for other signals.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
    } else if matches!(cli.command, Cmd::Simulate(_)) {
        // `gridline simulate ... | head -1`: a reader that goes away must
        // not kill the run before it revokes the worker tokens it issued;
        // the failed write is an error, returned after they are revoked.
        #[cfg(unix)]
        // SAFETY: before any thread is started; SIG_IGN is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
    } else if !matches!(cli.command, Cmd::Serve(_)) {
        // `gridline registry stats | head`: a reader that goes away ends the
        // command quietly, as it does `cat`, instead of a panic in
        // `println!`. Sockets are written with MSG_NOSIGNAL, so a server
        // closing a client's connection is still an error, not a signal.
        // The server keeps SIGPIPE ignored.
        #[cfg(unix)]
        // SAFETY: before any thread is started; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let filter =
        tracing_subscriber::EnvFilter::new(log_directives(std::env::var("GRIDLINE_LOG").ok().as_deref()));
    // A line that cannot be written (stderr on a full disk) is dropped: by
    // default the subscriber reports that with `eprintln!`, which panics
    // when stderr fails, on whichever thread logged (the syncer, say).
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| EventLine(Vec::new()))
        // Colours for a terminal only: a log kept in a file or a journal
        // holds no escape sequences.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .log_internal_errors(false)
        .init();
    let result = match cli.command {
        Cmd::Serve(a) => serve::run(a),
        Cmd::Registry { command: RegistryCmd::Stats { config, json } } => {
            offline::registry_stats(&config, json)
        }
        Cmd::Registry { command: RegistryCmd::Check { config } } => offline::registry_check(&config),
        Cmd::Route(a) => offline::route(a),
        Cmd::Client(a) => client::run(a),
        Cmd::Audit(a) => offline::audit(a),
        Cmd::Verify(a) => offline::verify(a),
        Cmd::Simulate(a) => simulate::run(a),
    };
    match result {
        Ok(code) => code,
        // The reader of an offline command's output went away: quietly,
        // with the status SIGPIPE would have given (128 + 13), as `cat`.
        Err(e) if stdout_closed(&e) => ExitCode::from(141),
        Err(e) => {
            // Not `eprintln!`: it panics when stderr cannot be written.
            let _ = writeln!(std::io::stderr(), "gridline: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The log filter's directives: `GRIDLINE_LOG`'s (`info` when it is unset,
/// empty or does not parse), with
/// - `warn` first when they set no level for every target (`gridline=debug`
///   alone, or a misspelt `warning`, read as a target's name), so that the
///   server's warnings (a directory open to other users) still show;
/// - sled held at `debug` when they would log everything at `trace` and do
///   not name sled themselves. sled's trace records (bridged from the `log`
///   crate) print every batch it applies, keys and values as bytes:
///   residents' records, in the log. (A level below `trace` already covers
///   sled, and `sled=debug` on its own would turn sled's debug lines on
///   under the default `info`.)
/// - `geo` held at `info` when they would log everything at `debug` or
///   `trace` and do not name it: its debug lines, tens of thousands for one
///   load of the county's grids, bury everything else.
fn log_directives(spec: Option<&str>) -> String {
    let spec = match spec {
        Some(s) if !s.trim().is_empty() && tracing_subscriber::EnvFilter::try_new(s).is_ok() => s.trim(),
        _ => "info",
    };
    let directives = || spec.split(',').map(str::trim).filter(|d| !d.is_empty());
    let target = |d: &str| d.split(['=', '[']).next().unwrap_or_default().trim().to_string();
    // `sled=...`, `sled[span]=...`, or `sled::tree=...` (the module that
    // logs the batches): a directive for another of sled's modules
    // (`sled::pagecache=info`) does not ask for the records.
    let names_sled = directives().map(target).any(|t| t == "sled" || t == "sled::tree");
    let names_geo = directives().map(target).any(|t| t == "geo" || t.starts_with("geo::"));
    // A directive without a target sets the level of every other one.
    let level = |l: &str| directives().any(|d| d.eq_ignore_ascii_case(l));
    let any_level = ["trace", "debug", "info", "warn", "error", "off"].into_iter().any(level);
    let mut out = if any_level { spec.to_string() } else { format!("warn,{spec}") };
    if level("trace") && !names_sled {
        out.push_str(",sled=debug");
    }
    if (level("trace") || level("debug")) && !names_geo {
        out.push_str(",geo=info");
    }
    out
}

/// Paths renamed in log lines (see [`rename_in_log`]).
static RENAMES: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// From now on, log lines name `to` where they would name `from`: the
/// offline commands read a copy of a log, and what the case log says about
/// its files (a warning while `verify` reads it) should name the original's.
pub(crate) fn rename_in_log(from: &std::path::Path, to: &std::path::Path) {
    let mut r = RENAMES.lock().unwrap_or_else(|e| e.into_inner());
    r.push((from.display().to_string(), to.display().to_string()));
}

/// One log event, written to stderr whole when dropped, with the paths of
/// [`rename_in_log`] renamed. Errors are dropped (see `main`).
struct EventLine(Vec<u8>);

impl Write for EventLine {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventLine {
    fn drop(&mut self) {
        let renames = RENAMES.lock().unwrap_or_else(|e| e.into_inner());
        if renames.is_empty() {
            let _ = std::io::stderr().write_all(&self.0);
            return;
        }
        let mut line = String::from_utf8_lossy(&self.0).into_owned();
        for (from, to) in renames.iter() {
            line = line.replace(from.as_str(), to);
        }
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

/// Allows or forbids transparent huge pages for this process's memory
/// from now on (see `main`); memory already in use keeps its pages.
pub(crate) fn huge_pages(allow: bool) {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and only sets a flag
    // of this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, libc::c_ulong::from(!allow), 0, 0, 0);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = allow;
}

#[cfg(test)]
mod tests {
    use super::log_directives;

    #[test]
    fn tracing_everything_holds_sled_at_debug_unless_sled_is_named() {
        assert_eq!(log_directives(None), "info");
        assert_eq!(log_directives(Some("")), "info", "GRIDLINE_LOG= as if unset");
        assert_eq!(log_directives(Some("  ")), "info");
        assert_eq!(log_directives(Some("debug")), "debug,geo=info");
        assert_eq!(log_directives(Some("trace")), "trace,sled=debug,geo=info");
        assert_eq!(log_directives(Some("TRACE")), "TRACE,sled=debug,geo=info");
        assert_eq!(
            log_directives(Some("gridline_engine=trace,trace")),
            "gridline_engine=trace,trace,sled=debug,geo=info"
        );
        // Named: whoever names sled (or geo) gets what they asked for.
        assert_eq!(log_directives(Some("trace,sled=trace")), "trace,sled=trace,geo=info");
        assert_eq!(log_directives(Some("trace,sled::tree=trace")), "trace,sled::tree=trace,geo=info");
        assert_eq!(log_directives(Some("debug,geo=debug")), "debug,geo=debug");
        assert_eq!(log_directives(Some("debug,geo::algorithm=trace")), "debug,geo::algorithm=trace");
        // Another of sled's modules named: the batches are still held back.
        assert_eq!(
            log_directives(Some("trace,sled::pagecache=info")),
            "trace,sled::pagecache=info,sled=debug,geo=info"
        );
        // Only some targets at trace: sled is not among them.
        assert_eq!(log_directives(Some("info,gridline_caselog=trace")), "info,gridline_caselog=trace");
        // `sledge` is not sled.
        assert_eq!(log_directives(Some("trace,sledge=info")), "trace,sledge=info,sled=debug,geo=info");
        // No level for every target: warnings still show, also under a misspelt level.
        assert_eq!(log_directives(Some("gridline=debug")), "warn,gridline=debug");
        assert_eq!(log_directives(Some("warning")), "warn,warning");
        assert_eq!(log_directives(Some("WARN")), "WARN");
        // What does not parse is `info`, as before.
        assert_eq!(log_directives(Some("=[[")), "info");
        for spec in ["trace", "trace,sled=trace", "info"] {
            assert!(tracing_subscriber::EnvFilter::try_new(log_directives(Some(spec))).is_ok(), "{spec}");
        }
    }
}
