//! Subcommands that work on files, without a server: registry, route, audit, verify.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use gridline_caselog::{CaseLog, SledStore};
use gridline_model::{AuditBy, Intake, Location, Priority, Row, Timestamp};
use gridline_registry::{Registry, Stats};

use crate::serve::load_registry;
use crate::{ConfigFlag, OutputFormat};

pub fn registry_stats(flag: &ConfigFlag, json: bool) -> anyhow::Result<ExitCode> {
    let r = load_registry(flag)?;
    let s = Stats::of(&r);
    if json {
        outln!("{}", serde_json::to_string(&s)?)?;
    } else {
        outln!("county       {}", s.county)?;
        outln!("townships    {}", s.townships)?;
        outln!("communities  {} urban communities, {} villages", s.communities, s.villages)?;
        outln!(
            "grids        {} ({} urban, {} rural, {} dedicated)",
            s.grids.total,
            s.grids.urban,
            s.grids.rural,
            s.grids.dedicated
        )?;
        outln!(
            "workers      {} ({} full-time, {} part-time, {} department professionals)",
            s.workers.total,
            s.workers.full_time,
            s.workers.part_time,
            s.workers.department
        )?;
        outln!("departments  {}", s.departments)?;
        outln!("categories   {}", s.categories)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn registry_check(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    match Registry::load_dir(dir) {
        Ok(r) => {
            let s = Stats::of(&r);
            outln!(
                "{}: ok ({} grids, {} workers, {} departments, {} townships)",
                dir.display(),
                s.grids.total,
                s.workers.total,
                s.departments,
                s.townships
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors.0 {
                errln!("{e}");
            }
            errln!("{}: {} problem(s); nothing loaded", dir.display(), errors.0.len());
            Ok(ExitCode::FAILURE)
        }
    }
}

#[derive(Args, Debug)]
pub struct RouteArgs {
    #[command(flatten)]
    pub config: ConfigFlag,
    /// Longitude of the place, in degrees (with --lat).
    #[arg(long, allow_hyphen_values = true, requires = "lat")]
    pub lon: Option<f64>,
    /// Latitude of the place, in degrees (with --lon).
    #[arg(long, allow_hyphen_values = true, requires = "lon")]
    pub lat: Option<f64>,
    /// A grid code.
    #[arg(long)]
    pub grid: Option<String>,
    /// An address in words (community, village, street, estate).
    #[arg(long)]
    pub address: Option<String>,
    /// A category, by code or name (`water`, 供水); inferred from --text when absent.
    #[arg(long)]
    pub category: Option<String>,
    /// The case text.
    #[arg(long, default_value = "")]
    pub text: String,
    /// normal, urgent or emergency (an emergency goes to someone at once, however busy).
    #[arg(long, default_value = "normal")]
    pub priority: String,
    /// The case time (local, e.g. 2026-11-24T21:30); default now. Duty hours depend on it.
    #[arg(long)]
    pub at: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn route(a: RouteArgs) -> anyhow::Result<ExitCode> {
    let registry = load_registry(&a.config)?;
    let off = registry.county.utc_offset_min;
    if a.lon.is_none() && a.grid.is_none() && a.address.is_none() {
        anyhow::bail!("give a location: --lon X --lat Y, --grid G or --address A");
    }
    // As the protocol's parser does: a value that says nothing is a slip.
    for (flag, v) in [("--grid", &a.grid), ("--address", &a.address), ("--category", &a.category)] {
        if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
            anyhow::bail!("{flag}: empty (leave the flag out instead)");
        }
    }
    // As the protocol's parser does for ROUTE and ACCEPT: a point off the
    // globe is a typo, not a place outside the county.
    for (flag, v, max) in [("--lon", a.lon, 180.0), ("--lat", a.lat, 90.0)] {
        if let Some(x) = v.filter(|x| x.is_finite() && !(-max..=max).contains(x)) {
            // (`1e308`, not its 309 digits.)
            let x = if x.abs() >= 1e6 { format!("{x:e}") } else { x.to_string() };
            anyhow::bail!("{flag} must be within -{max}..{max}, not {x}");
        }
    }
    let intake = Intake {
        text: a.text.into(),
        category: a.category.map(Into::into),
        location: Location {
            point: a.lon.zip(a.lat),
            grid: a.grid.map(Into::into),
            address: a.address.map(Into::into),
        },
        priority: Priority::parse(&a.priority)
            .with_context(|| format!("--priority: `{}` is not normal, urgent or emergency", a.priority))?,
        ..Default::default()
    };
    let at = match &a.at {
        Some(s) => Timestamp::parse(s, off).with_context(|| "--at")?,
        None => Timestamp::now(),
    };
    let router = gridline_routing::Router::new(registry.clone());
    router.validate(&intake).map_err(|e| anyhow::anyhow!("{e}"))?;
    let loads = vec![0; registry.workers.len()];
    let routed = router.route(&gridline_routing::RouteRequest { intake: &intake, at, exclude: &[] }, &loads);
    let d = &routed.decision;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(d)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let name_of_grid =
        d.grid.as_deref().and_then(|g| registry.grid_idx(g)).map(|g| registry.grid(g).name.clone());
    let worker = d.worker.as_deref().and_then(|w| registry.worker_idx(w)).map(|w| registry.worker(w));
    outln!("category  {} ({})", d.category, d.category_source.as_str())?;
    if !d.keywords.is_empty() {
        outln!("keywords  {}", d.keywords.join(", "))?;
    }
    outln!(
        "grid      {}",
        match (&d.grid, name_of_grid) {
            (Some(g), Some(n)) => format!("{g} {n}"),
            _ => "-".into(),
        }
    )?;
    outln!("township  {}", d.township.as_deref().unwrap_or("-"))?;
    outln!("dept      {}", d.department.as_deref().unwrap_or("-"))?;
    match worker {
        Some(w) => outln!("worker    {} {} ({})", w.id, w.name, w.kind.as_str())?,
        None => outln!("worker    - (waits at {})", registry.county.command_centre)?,
    }
    outln!("rule      {}", d.rule)?;
    outln!("why:")?;
    for (i, s) in d.steps.iter().enumerate() {
        outln!("  {}. {s}", i + 1)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct DataFlag {
    /// The data directory of a stopped server. It is left unchanged: its
    /// case log is read from a copy in the temporary directory ($TMPDIR).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
}

/// A case log opened read-only: a private copy of the data directory's
/// log, opened in a temporary directory, while the original's file lock is
/// held. Opening a sled log writes to it (sled's own recovery, the
/// write-ahead log replayed into sled and reset), and the offline commands
/// must leave the data directory as they found it, damaged or not.
///
/// The copy holds residents' records: its directory is 0700 and its files
/// 0600, and it is removed however the command ends (an error, a reader
/// of its output gone, or SIGINT, SIGTERM or SIGHUP: see
/// [`remove_copy_on_signals`]).
struct ReadOnlyLog {
    // Dropped in this order: the log, then its copy, then the lock.
    log: CaseLog<SledStore>,
    _copy: LogCopy,
    _lock: std::fs::File,
    /// Bytes of the original log's files.
    bytes: u64,
}

/// The copy of the log an offline command is reading, while it exists: the
/// signal thread removes it before the process exits.
static COPY: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// A copy's directory in `$TMPDIR`: the prefix and a random suffix.
const COPY_PREFIX: &str = "gridline-offline-";
/// The name a copy's directory has until its owner file is locked.
const MAKING_PREFIX: &str = "gridline-making-";
/// The file in a copy's directory its command holds a lock on (`flock`)
/// while it lives: a copy whose lock anyone can take was left by a command
/// killed with a signal nothing can catch (SIGKILL, the OOM killer).
const OWNER_FILE: &str = "owner.lock";

/// The temporary directory of a copy (the log in its `log`); removed when
/// dropped, and known to the signal thread until then.
struct LogCopy {
    root: PathBuf,
    log: PathBuf,
    _owner: std::fs::File,
}

impl LogCopy {
    /// Makes a directory only its owner can enter (0700) in `$TMPDIR`,
    /// holding the lock on its owner file. It is made under another name
    /// and renamed once locked, so no copy is ever seen unlocked while its
    /// command lives.
    fn new() -> std::io::Result<LogCopy> {
        // Held while the directory is made, so that a signal cannot come
        // between its making and the signal thread's knowing of it.
        let mut known = COPY.lock().unwrap_or_else(|e| e.into_inner());
        let mut b = tempfile::Builder::new();
        b.prefix(MAKING_PREFIX);
        #[cfg(unix)]
        b.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
        // Until the rename, a failure leaves nothing: `making` is removed
        // when dropped.
        let making = b.tempdir()?;
        let owner = std::fs::File::create_new(making.path().join(OWNER_FILE))?;
        if !try_lock(&owner)? {
            return Err(std::io::Error::other("its owner file is locked by another process"));
        }
        let mut d = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut d, 0o700);
        d.create(making.path().join("log"))?;
        let name = making.path().file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let root = making.path().with_file_name(name.replacen(MAKING_PREFIX, COPY_PREFIX, 1));
        std::fs::rename(making.path(), &root)?;
        // Renamed: the old name is gone, there is nothing left to remove there.
        let _ = making.keep();
        *known = Some(root.clone());
        Ok(LogCopy { log: root.join("log"), root, _owner: owner })
    }

    fn path(&self) -> &std::path::Path {
        &self.log
    }
}

impl Drop for LogCopy {
    fn drop(&mut self) {
        // Removed with the lock held: a signal now waits, and then finds
        // nothing left to remove.
        let mut known = COPY.lock().unwrap_or_else(|e| e.into_inner());
        let _ = remove_copy_dir(&self.root);
        *known = None;
    }
}

/// Takes the lock on `f` (`flock`, exclusive) if nobody holds it; false if
/// someone does.
fn try_lock(f: &std::fs::File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a file descriptor this function borrows.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        return Ok(false);
    }
    Err(e)
}

/// Removes a copy's directory: the log in it first, so that a removal cut
/// short leaves the owner file (and the directory stays one the next
/// command's sweep removes).
fn remove_copy_dir(root: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(root.join("log")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::remove_dir_all(root)
}

/// How long a directory being made (`gridline-making-*`) is left alone by
/// the sweep: its maker locks its owner file within microseconds.
const MAKING_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// A copy's owner file, if it is one: a regular file, opened without
/// following a link or waiting (a FIFO put there would block an open).
fn open_owner(root: &std::path::Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(root.join(OWNER_FILE))
        .ok()?;
    f.metadata().ok().filter(|m| m.is_file()).map(|_| f)
}

/// Removes the copies of logs in `$TMPDIR` that earlier offline commands
/// of this user left when they were killed by a signal nothing can catch
/// (SIGKILL, the OOM killer): residents' records nobody is reading. Only
/// directories of this user are looked into (not another user's, not a
/// link); a copy whose command still runs holds its owner file's lock and
/// is left alone, and so is a directory without an owner file (not one of
/// ours to judge). A directory still being made that a killed command
/// left (`gridline-making-*`, older than [`MAKING_GRACE`]) goes too. Says
/// what it removed; a copy it cannot remove it names.
fn remove_stale_copies() {
    let tmp = std::env::temp_dir();
    let Ok(entries) = std::fs::read_dir(&tmp) else { return };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let making = name.starts_with(MAKING_PREFIX);
        if !making && !name.starts_with(COPY_PREFIX) {
            continue;
        }
        let root = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&root) else { continue };
        if !meta.is_dir() || std::os::unix::fs::MetadataExt::uid(&meta) != me {
            continue;
        }
        let age = meta.modified().ok().and_then(|t| t.elapsed().ok());
        if making && age.is_none_or(|a| a < MAKING_GRACE) {
            continue;
        }
        let Some(owner) = open_owner(&root) else { continue };
        if !try_lock(&owner).unwrap_or(false) {
            continue;
        }
        match remove_copy_dir(&root) {
            // A directory being made holds no log yet: nothing to report.
            Ok(()) if making => {}
            Ok(()) => errln!(
                "gridline: removed {}: a copy of a case log that an earlier audit or verify, killed, left behind",
                root.display()
            ),
            // Removed meanwhile (by its command, or another sweep).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errln!(
                "gridline: {}: a copy of a case log an earlier audit or verify left behind, which could not be removed ({e}); remove it by hand",
                root.display()
            ),
        }
    }
}

/// Makes SIGINT, SIGTERM and SIGHUP, from now on, remove the copy of the
/// log being read (if any), then end the process with status 128 + the
/// signal, as the signal would have. Call before any thread is started:
/// the signals are blocked in this thread, and so in every thread started
/// after it, and a thread of its own takes them with `sigwait`.
#[cfg(unix)]
pub fn remove_copy_on_signals() -> anyhow::Result<()> {
    // SAFETY: a zeroed sigset_t is a valid argument for sigemptyset, which
    // initialises it; the signal numbers are valid.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        set
    };
    // SAFETY: `set` is initialised; the old mask is not asked for.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc)).context("blocking SIGINT, SIGTERM and SIGHUP");
    }
    std::thread::Builder::new()
        .name("gridline-signals".into())
        .spawn(move || loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` is initialised and `sig` is a valid place to write.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            // Held until the exit: no copy is made or removed meanwhile.
            let known = COPY.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(dir) = known.as_deref() {
                remove_copy(dir);
            }
            // Ends as the signal would have, so that a shell or a script
            // sees it (a loop over `gridline audit` stops at Ctrl-C): the
            // default action, raised in this thread with it unblocked.
            // SAFETY: plain signal calls on this thread; the process ends
            // at once (sled's threads may be busy in the copy just removed,
            // and no exit handler runs), and `_exit` if it did not.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
                let mut one: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut one);
                libc::sigaddset(&mut one, sig);
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &one, std::ptr::null_mut());
                libc::raise(sig);
                libc::_exit(128 + sig);
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// Removes a copy of the log that the command's other threads may still
/// be working in: a file may come between a directory's listing and its
/// removal, and the store's open makes its directory again
/// (`create_dir_all`) if it comes after the removal. So it is removed until
/// it has stayed gone for a while (the thread that made it then fails on
/// a missing file, and blocks in `LogCopy`'s drop on the lock this thread
/// holds), a bounded number of times.
fn remove_copy(dir: &std::path::Path) {
    let mut gone = 0;
    for _ in 0..200 {
        match remove_copy_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => gone = 0,
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        if dir.exists() {
            gone = 0;
        } else {
            gone += 1;
            if gone >= 4 {
                return;
            }
        }
    }
    errln!("gridline: could not remove the copy of the log in {}; remove it by hand", dir.display());
}

fn open_log(data: &std::path::Path) -> anyhow::Result<ReadOnlyLog> {
    let dir = data.join("log");
    let db = dir.join("db");
    if !db.exists() {
        anyhow::bail!("{}: no case log here (expected {})", data.display(), db.display());
    }
    let lock = std::fs::File::open(&db).with_context(|| format!("opening {}", db.display()))?;
    lock_exclusive(&lock).with_context(|| format!("locking {}", db.display()))?;
    remove_stale_copies();
    let copy = LogCopy::new()
        .context("making a temporary directory for a copy of the log (set TMPDIR to choose where)")?;
    let bytes = copy_dir(&dir, copy.path()).with_context(|| {
        format!(
            "copying {} to {} to read it without changing it (set TMPDIR to choose where)",
            dir.display(),
            copy.path().display()
        )
    })?;
    // Errors and log lines name the original's files, not the copy's.
    crate::rename_in_log(copy.path(), &dir);
    let here = |e: &dyn std::fmt::Display| {
        let msg = e.to_string().replace(&copy.path().display().to_string(), &dir.display().to_string());
        anyhow::anyhow!(msg).context(format!("opening {}", dir.display()))
    };
    let store = SledStore::open(copy.path()).map_err(|e| here(&e))?;
    let log = CaseLog::open(store, None).map_err(|e| here(&e))?;
    Ok(ReadOnlyLog { log, _copy: copy, _lock: lock, bytes })
}

/// Takes the exclusive lock sled takes on its file (`flock`), without
/// waiting: a running server holds it, and while this does, no server starts.
fn lock_exclusive(f: &std::fs::File) -> anyhow::Result<()> {
    if !try_lock(f)? {
        anyhow::bail!("the log is locked by another process (is a server running on this data directory?)");
    }
    Ok(())
}

/// Copies the files under `from` into `to` (which exists); returns their
/// bytes. The copies are private whatever the originals' modes: files
/// 0600, directories 0700.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<u64> {
    let mut bytes = 0;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry.with_context(|| format!("reading {}", from.display()))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().with_context(|| format!("reading {}", src.display()))?;
        if kind.is_dir() {
            let mut b = std::fs::DirBuilder::new();
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            b.create(&dst).with_context(|| format!("creating {}", dst.display()))?;
            bytes += copy_dir(&src, &dst)?;
        } else if kind.is_file() {
            bytes += copy_file(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
        }
    }
    Ok(bytes)
}

/// Copies one file into a new file of mode 0600. (`std::fs::copy` gives
/// the copy the original's mode.)
fn copy_file(src: &std::path::Path, dst: &std::path::Path) -> std::io::Result<u64> {
    let mut from = std::fs::File::open(src)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut to = opts.open(dst)?;
    // (A file-to-file `io::copy` is `copy_file_range` on Linux, as `fs::copy` is.)
    std::io::copy(&mut from, &mut to)
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub data: DataFlag,
}

pub fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let log = open_log(&a.data.data)?;
    let t0 = std::time::Instant::now();
    match log.log.verify() {
        Ok(r) => {
            outln!(
                "{}: ok: {} cases ({} open, {} closed), {} events, every checksum and every history checked in {:.2}s; {} bytes on disk",
                a.data.data.display(),
                r.cases,
                r.open,
                r.closed,
                r.events,
                t0.elapsed().as_secs_f64(),
                log.bytes
            )?;
            if r.old_townships > 0 {
                outln!(
                    "note: {} case(s) carry the township of a worker they were dispatched to, as versions before 2026-11-27 recorded it, not their location's",
                    r.old_townships
                )?;
            }
            if r.old_responses > 0 {
                outln!(
                    "note: {} case(s) missed a claim deadline before a return or a reassignment yet are stored as answered on time (or not yet judged), as versions before 2026-11-28 recorded it (`audit` counts them as recorded)",
                    r.old_responses
                )?;
            }
            if r.old_responders > 0 {
                outln!(
                    "note: {} case(s) moved on after their response was judged but do not record whose it was, as versions before 2026-11-28 recorded them (`audit` charges their response to whoever has the case now)",
                    r.old_responders
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            errln!("{}: FAILED: {e}", a.data.data.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub data: DataFlag,
    #[command(flatten)]
    pub config: ConfigFlag,
    /// How to group the rows: county, township, grid, department, worker,
    /// category or month.
    #[arg(long, default_value = "county", value_parser = parse_by)]
    pub by: AuditBy,
    /// Only cases received at or after this time (local, e.g. 2026-11-01).
    #[arg(long)]
    pub from: Option<String>,
    /// Only cases received before this time.
    #[arg(long)]
    pub to: Option<String>,
    /// Print CSV (opens in a spreadsheet).
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_by(s: &str) -> Result<AuditBy, String> {
    AuditBy::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
        let all: Vec<_> = AuditBy::ALL.iter().map(|b| b.as_str()).collect();
        format!("`{s}` is not one of {}", all.join(", "))
    })
}

pub fn audit(a: AuditArgs) -> anyhow::Result<ExitCode> {
    let registry = load_registry(&a.config)?;
    let off = registry.county.utc_offset_min;
    let time = |name: &str, v: &Option<String>| -> anyhow::Result<Option<Timestamp>> {
        v.as_deref().map(|s| Timestamp::parse(s, off).with_context(|| format!("--{name}"))).transpose()
    };
    let (from, to) = (time("from", &a.from)?, time("to", &a.to)?);
    if gridline_audit::window_is_empty(from, to) {
        anyhow::bail!(
            "--to {} must be later than --from {} (cases received from --from, inclusive, to --to, exclusive)",
            a.to.as_deref().unwrap_or_default(),
            a.from.as_deref().unwrap_or_default()
        );
    }
    let query = gridline_audit::Query { by: a.by, from, to, now: Timestamp::now(), utc_offset_min: off };
    let log = open_log(&a.data.data)?;
    // The county's UTC offset and time limits read the log's times: another
    // county's would shift every day and deadline without a word.
    let county = log.log.county()?;
    if county != registry.county.code {
        anyhow::bail!(
            "{}: the case log belongs to county `{county}`, but the registry is `{}`{}; audit with that county's config",
            a.data.data.display(),
            registry.county.code,
            if a.config.config.is_some() { " (--config)" } else { " (the embedded default; give its --config)" }
        );
    }
    let mut cases = Vec::new();
    log.log.recover(|c| cases.push(c))?;
    let rows = gridline_audit::audit(cases.iter(), &query);
    let format = if a.csv {
        OutputFormat::Csv
    } else if a.json {
        OutputFormat::Json
    } else {
        OutputFormat::Table
    };
    print_rows(&rows, &gridline_audit::header(a.by), format)?;
    Ok(ExitCode::SUCCESS)
}

/// An audit figure as JSON: `-` (nothing to measure) is `null`, a count or
/// a one-decimal figure a number with the digits the table prints.
fn json_figure(v: &str) -> anyhow::Result<String> {
    if v == gridline_audit::format::NO_FIGURE {
        return Ok("null".into());
    }
    // Written as it is when JSON's grammar takes it as a number (counts,
    // `92.6`); anything else would be a new kind of figure, kept a string.
    if v.parse::<serde_json::Number>().is_ok() {
        Ok(v.to_string())
    } else {
        Ok(serde_json::to_string(v)?)
    }
}

/// Prints table rows as an aligned table, CSV (RFC 4180) or JSON objects;
/// `header` names the columns (CSV prints it when there are no rows).
pub fn print_rows(rows: &[Row], header: &[&str], format: OutputFormat) -> anyhow::Result<()> {
    // No rows: JSON `[]`, and a CSV still, its header row alone.
    if rows.is_empty() && format == OutputFormat::Table {
        outln!("(no cases)")?;
        return Ok(());
    }
    let header = header.to_vec();
    match format {
        OutputFormat::Json => {
            // Written by hand, pretty as `to_string_pretty` would: a
            // `serde_json::Map` sorts its keys, which put the row's label
            // (`township`...) among the figures instead of first, as the
            // table and the CSV have it. The label is a string; a figure
            // a number, or `null` where the table prints `-`.
            let mut out = String::from("[");
            for (i, r) in rows.iter().enumerate() {
                out.push_str(if i == 0 { "\n  {" } else { ",\n  {" });
                for (j, (k, v)) in r.iter().enumerate() {
                    out.push_str(if j == 0 { "\n    " } else { ",\n    " });
                    out.push_str(&serde_json::to_string(k)?);
                    out.push_str(": ");
                    if j == 0 {
                        out.push_str(&serde_json::to_string(v)?);
                    } else {
                        out.push_str(&json_figure(v)?);
                    }
                }
                out.push_str("\n  }");
            }
            out.push_str(if rows.is_empty() { "]" } else { "\n]" });
            outln!("{out}")?;
        }
        OutputFormat::Csv => {
            let esc = |s: &str| {
                if s.contains([',', '"', '\n', '\r']) {
                    format!("\"{}\"", s.replace('"', "\"\""))
                } else {
                    s.to_string()
                }
            };
            outln!("{}", header.iter().map(|h| esc(h)).collect::<Vec<_>>().join(","))?;
            for r in rows {
                outln!("{}", r.iter().map(|(_, v)| esc(v)).collect::<Vec<_>>().join(","))?;
            }
        }
        OutputFormat::Table => {
            let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
            for r in rows {
                for (i, (_, v)) in r.iter().enumerate().take(widths.len()) {
                    widths[i] = widths[i].max(display_width(v));
                }
            }
            let line = |cells: Vec<&str>| {
                cells
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c}{}", " ".repeat(widths[i] - display_width(c))))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
            };
            outln!("{}", line(header.clone()))?;
            for r in rows {
                outln!("{}", line(r.iter().map(|(_, v)| v.as_str()).collect()))?;
            }
        }
    }
    Ok(())
}

/// Terminal columns of `s`: CJK characters take two.
fn display_width(s: &str) -> usize {
    s.chars().map(|c| if (c as u32) >= 0x1100 && !c.is_ascii() { 2 } else { 1 }).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As `AUDIT by=` does: the grouping's case does not matter.
    #[test]
    fn the_grouping_is_read_whatever_its_case() {
        assert_eq!(parse_by("Township"), Ok(AuditBy::Township));
        assert_eq!(parse_by("WORKER"), Ok(AuditBy::Worker));
        assert!(parse_by("village").unwrap_err().contains("`village` is not one of"));
    }
}
