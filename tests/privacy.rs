//! What the real binary leaves readable to others, and where: the copy of
//! a log the offline commands read, the data directory, tokens.
#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The entries directly in `dir`.
fn entries(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect()
}

fn mode(p: &Path) -> Option<u32> {
    std::fs::symlink_metadata(p).ok().map(|m| m.permissions().mode() & 0o777)
}

/// Waits until `child` has a copy of the log in `tmp` with a file of the
/// log in it (the copy's directory), or has ended (`None`).
fn wait_for_a_copy(child: &mut std::process::Child, tmp: &Path) -> Option<std::path::PathBuf> {
    loop {
        let copy = entries(tmp)
            .into_iter()
            .find(|c| std::fs::read_dir(c.join("log")).is_ok_and(|mut d| d.next().is_some()));
        if copy.is_some() {
            return copy;
        }
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        std::thread::yield_now();
    }
}

/// `gridline audit ... | head -0`: the reader is gone before the first
/// line. The command ends quietly with SIGPIPE's status (141) instead of
/// being killed by it, and the copy of the log it made in $TMPDIR is gone.
#[tokio::test(flavor = "multi_thread")]
async fn audit_into_a_closed_pipe_leaves_no_copy_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    accept_one_by_one_then_kill(&data, 5, "管道").await;
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // A pipe whose read end is closed before the command starts.
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just made and are owned here alone.
    let (read, write) = unsafe {
        use std::os::fd::FromRawFd;
        (std::os::fd::OwnedFd::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    };
    drop(read);
    let out = Command::new(bin())
        .args(["audit", "--by", "township", "--data"])
        .arg(&data)
        .env("TMPDIR", &tmp)
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{:?}: {err}", out.status);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    assert_eq!(entries(&tmp), Vec::<std::path::PathBuf>::new(), "the copy of the log was left behind");
}

/// `verify` interrupted (SIGINT, SIGTERM, SIGHUP) while it reads its copy
/// of the log: the copy is removed and the process is ended by the signal.
/// While it exists, the copy is its owner's alone: directory 0700, files
/// 0600 (the originals' modes are looser here on purpose).
#[tokio::test(flavor = "multi_thread")]
async fn verify_interrupted_removes_its_private_copy_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    accept_one_by_one_then_kill(&data, 20, "信号").await;
    for p in entries(&data.join("log")) {
        let m = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut interrupted = Vec::new();
    let t0 = Instant::now();
    for (round, sig) in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP].into_iter().cycle().enumerate() {
        if interrupted.len() >= 3 || (round >= 60 && !interrupted.is_empty()) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "verify was never caught with its copy made");
        let mut child = Command::new(bin())
            .args(["verify", "--data"])
            .arg(&data)
            .env("TMPDIR", &tmp)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let seen = wait_for_a_copy(&mut child, &tmp).inspect(|copy| {
            // The copy's directories 0700, its files (the owner file, the
            // log's) 0600; the command may have ended and removed it meanwhile.
            if let Some(m) = mode(copy) {
                assert_eq!(m, 0o700, "{}", copy.display());
            }
            let listed = |d: &Path| -> Vec<std::path::PathBuf> {
                std::fs::read_dir(d).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
            };
            for f in listed(copy).into_iter().chain(listed(&copy.join("log"))) {
                let want = if f.is_dir() { 0o700 } else { 0o600 };
                if let Some(m) = mode(&f) {
                    assert_eq!(m, want, "{}: {m:04o}", f.display());
                }
            }
        });
        let seen = seen.is_some();
        if seen {
            // SAFETY: a signal to the child started here.
            unsafe { libc::kill(child.id() as i32, sig) };
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(entries(&tmp), Vec::<std::path::PathBuf>::new(), "signal {sig}: a copy was left: {err}");
        // Killed by the signal itself, as a shell expects (a script's loop
        // stops at Ctrl-C), not an ordinary exit with 128 + the signal.
        use std::os::unix::process::ExitStatusExt;
        match (out.status.code(), out.status.signal()) {
            (Some(0), _) => {}
            (None, Some(s)) if seen && s == sig => interrupted.push(sig),
            _ => panic!("signal {sig}: {:?}: {err}", out.status),
        }
    }
    assert!(!interrupted.is_empty(), "no verify was interrupted while its copy existed");
}

/// `verify` killed with SIGKILL, which nothing can catch, leaves its copy
/// of the log (residents' records) in $TMPDIR. The next offline command
/// removes it and says so, and leaves alone a copy whose command still
/// runs (its owner file locked), a directory without an owner file, one
/// whose owner file is a FIFO (which would block an open), and one still
/// being made.
#[tokio::test(flavor = "multi_thread")]
async fn a_copy_left_by_a_killed_command_is_removed_by_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    accept_one_by_one_then_kill(&data, 20, "残留").await;
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let t0 = Instant::now();
    let left = loop {
        assert!(t0.elapsed() < Duration::from_secs(120), "verify was never killed with its copy made");
        let mut child = Command::new(bin())
            .args(["verify", "--data"])
            .arg(&data)
            .env("TMPDIR", &tmp)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if wait_for_a_copy(&mut child, &tmp).is_some() {
            child.kill().unwrap();
        }
        child.wait().unwrap();
        if let Some(copy) = entries(&tmp).into_iter().next() {
            break copy;
        }
    };
    assert!(
        left.file_name().unwrap().to_str().unwrap().starts_with("gridline-offline-"),
        "{}",
        left.display()
    );
    // A copy in use: its owner file locked, here by this test.
    let live = tmp.join("gridline-offline-inuse");
    std::fs::create_dir(&live).unwrap();
    let owner = std::fs::File::create(live.join("owner.lock")).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file this test owns.
    assert_eq!(unsafe { libc::flock(owner.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    // Not ours to judge: no owner file.
    let foreign = tmp.join("gridline-offline-foreign");
    std::fs::create_dir(&foreign).unwrap();
    // A FIFO where the owner file should be: not opened (it would block).
    let fifo_dir = tmp.join("gridline-offline-fifo");
    std::fs::create_dir(&fifo_dir).unwrap();
    let fifo = std::ffi::CString::new(fifo_dir.join("owner.lock").to_str().unwrap()).unwrap();
    // SAFETY: a path this test made.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    // Killed while making a copy, a while ago: removed; one just begun is not.
    let (old_making, new_making) = (tmp.join("gridline-making-old"), tmp.join("gridline-making-new"));
    for d in [&old_making, &new_making] {
        std::fs::create_dir(d).unwrap();
        std::fs::File::create(d.join("owner.lock")).unwrap();
    }
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::open(&old_making).unwrap().set_modified(long_ago).unwrap();
    let out = Command::new(bin())
        .args(["audit", "--by", "township", "--data"])
        .arg(&data)
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(err.contains(&format!("removed {}", left.display())), "{err}");
    assert_eq!(err.matches("removed").count(), 1, "{err}");
    let mut kept = entries(&tmp);
    kept.sort();
    let mut want = vec![live.clone(), foreign.clone(), fifo_dir.clone(), new_making.clone()];
    want.sort();
    assert_eq!(kept, want, "{err}");
    for d in [&foreign, &fifo_dir, &new_making] {
        std::fs::remove_dir_all(d).unwrap();
    }
    // Once its command has gone (the lock released), it is removed too.
    drop(owner);
    let out = Command::new(bin()).args(["verify", "--data"]).arg(&data).env("TMPDIR", &tmp).output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(entries(&tmp), Vec::<std::path::PathBuf>::new());
}

/// Starts `gridline serve` on `data` as `Server::start` does, but from a
/// shell whose umask is 022 (files 0644 and directories 0755 by default),
/// with `envs` set.
fn start_under_umask_022(data: &Path, envs: &[(&str, &str)]) -> Server {
    use std::io::{BufRead, BufReader};
    let log = std::fs::OpenOptions::new().create(true).append(true).open(data.with_extension("log")).unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("umask 022; exec \"$0\" serve --listen 127.0.0.1:0 --data \"$1\"")
        .arg(bin())
        .arg(data)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("gridline: serving ").and_then(|l| l.rsplit(" on ").next())
            {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let Ok(addr) = rx.recv_timeout(Duration::from_secs(60)) else {
        let _ = child.kill();
        panic!("the server did not start: {}", std::fs::read_to_string(data.with_extension("log")).unwrap());
    };
    Server { child: Some(child), addr, data: data.to_path_buf() }
}

/// Every file and directory under `dir` (itself included) that group or
/// others may read, write or enter, with its mode.
fn open_to_others(dir: &Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = mode(&p).unwrap();
        if m & 0o077 != 0 {
            out.push((p.clone(), format!("{m:04o}")));
        }
        if p.is_dir() {
            stack.extend(entries(&p));
        }
    }
    out
}

/// A fresh data directory, under a umask of 022: the directory, the log's
/// directory, the write-ahead log and sled's own files (`db`, `conf`,
/// `snap.*`), tokens.toml: nothing is open to group or others, after a
/// first start, some cases and a restart (which writes a snapshot).
#[tokio::test(flavor = "multi_thread")]
async fn serve_keeps_its_data_directory_private_under_a_loose_umask() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for round in 0..2 {
        let mut srv = start_under_umask_022(&data, &[]);
        let mut op = srv.client("operator").await;
        let (grid, _, _) = some_grid(4);
        for i in 0..50 {
            ok(op
                .call(&format!("ACCEPT text=\"隐私{round}-{i}\" grid={grid} phone=10000000{i:03}"))
                .await
                .unwrap());
        }
        assert!(srv.terminate().success());
    }
    let log = data.join("log");
    for f in ["db", "conf", "wal", "wal.1"] {
        assert!(log.join(f).exists(), "{f}: {:?}", entries(&log));
    }
    assert!(entries(&log).iter().any(|p| p.file_name().unwrap().to_string_lossy().starts_with("snap.")));
    assert_eq!(open_to_others(&data), Vec::new());
}

/// A data directory that exists and is open to others (0755: made by
/// hand, or by an earlier version) is made 0700 at start, log directory
/// too, with a warning that names it.
#[test]
fn serve_tightens_an_open_data_directory_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::create_dir(data.join("log")).unwrap();
    for d in [&data, &data.join("log")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut srv = Server::start(&data, &[]);
    assert_eq!(mode(&data), Some(0o700));
    assert_eq!(mode(&data.join("log")), Some(0o700));
    assert!(srv.terminate().success());
    let log = strip_ansi(&std::fs::read_to_string(data.with_extension("log")).unwrap());
    for d in [&data, &data.join("log")] {
        let warned = log.lines().any(|l| {
            l.contains("WARN")
                && l.contains("mode is now 0700")
                && l.contains(&format!("path={} ", d.display()))
        });
        assert!(warned, "no warning names {}: {log}", d.display());
    }
    // Warned once: the next start finds it private.
    let mut srv = Server::start(&data, &[]);
    assert!(srv.terminate().success());
    let again = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert_eq!(again.matches("mode is now 0700").count(), 2, "{again}");
}

/// `GRIDLINE_LOG=trace` logs everything of Gridline's at trace, but not
/// sled's trace records: they print each batch sled applies, residents'
/// records among its bytes.
#[tokio::test(flavor = "multi_thread")]
async fn tracing_everything_does_not_log_sleds_records() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = start_under_umask_022(&data, &[("GRIDLINE_LOG", "trace")]);
    let mut op = srv.client("operator").await;
    let (grid, _, _) = some_grid(2);
    ok(op
        .call(&format!("ACCEPT text=\"楼道里有人吸烟\" grid={grid} phone=10012345678 name=王女士"))
        .await
        .unwrap());
    assert!(srv.terminate().success());
    let log = strip_ansi(&std::fs::read_to_string(data.with_extension("log")).unwrap());
    assert!(log.contains("DEBUG"), "not logging at debug and below: {log}");
    let sled_trace: Vec<&str> =
        log.lines().filter(|l| l.contains("TRACE") && l.contains(" sled::")).collect();
    assert!(sled_trace.is_empty(), "{} sled trace lines, such as: {}", sled_trace.len(), sled_trace[0]);
    assert!(!log.contains("applying batch"), "sled logged a batch's bytes");
}

/// `simulate` issues a worker token for each worker it needs and no
/// token already serves, names them `sim-...`, and revokes every one of
/// them when it ends: tokens.toml holds no live token it made.
#[test]
fn simulate_revokes_the_worker_tokens_it_issued() {
    let (_dir, srv, tokens) = simulated_server();
    for seed in ["3", "4"] {
        let err = run_simulate(&srv.addr, &tokens, 300, seed);
        assert!(err.contains("simulate: revoked "), "{err}");
    }
    let made = sim_tokens(&tokens);
    assert!(made.len() > 20, "simulate issued {} tokens", made.len());
    let live = live_worker_tokens(&tokens);
    assert!(live.is_empty(), "{} live worker tokens left, such as {:?}", live.len(), live[0]);
}

/// A server for `simulate` to drive, in a temporary directory (kept alive
/// by the first part), and its token file.
fn simulated_server() -> (tempfile::TempDir, Server, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = Server::start(&data, &[]);
    let tokens = data.join("tokens.toml");
    (dir, srv, tokens)
}

/// Runs `simulate` to its end (it must succeed); its stderr.
fn run_simulate(addr: &str, tokens: &Path, cases: usize, seed: &str) -> String {
    let cases = cases.to_string();
    let args = ["simulate", "--addr", addr, "--tokens", tokens.to_str().unwrap(), "--cases", &cases];
    let (code, out, err) = run(&[&args[..], &["--connections", "4", "--seed", seed]].concat());
    assert_eq!(code, 0, "{out}{err}");
    err
}

/// `simulate` stopped with Ctrl-C once it has issued tokens: it revokes
/// them before it exits (130).
#[test]
fn simulate_interrupted_still_revokes_its_tokens() {
    let (_dir, srv, tokens) = simulated_server();
    // Ctrl-C, and the terminal hanging up (an ssh session dropped).
    for sig in [libc::SIGINT, libc::SIGHUP] {
        let before = sim_tokens(&tokens).len();
        let child = start_simulate(&srv.addr, &tokens, 4000, Stdio::piped());
        let t0 = Instant::now();
        while sim_tokens(&tokens).len() == before {
            assert!(t0.elapsed() < Duration::from_secs(120), "simulate issued no token");
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: a signal to the child started here.
        unsafe { libc::kill(child.id() as i32, sig) };
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(128 + sig), "{err}");
        let live = live_worker_tokens(&tokens);
        assert!(live.is_empty(), "signal {sig}: live worker tokens left: {live:?}; {err}");
    }
}

/// A `simulate` of `cases` cases that issues its tokens slowly.
fn start_simulate(addr: &str, tokens: &Path, cases: usize, stdout: Stdio) -> std::process::Child {
    Command::new(bin())
        .args(["simulate", "--addr", addr, "--tokens", tokens.to_str().unwrap()])
        .args(["--cases", &cases.to_string(), "--connections", "2", "--window", "4"])
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The names of the `sim-...` tokens in a tokens file, live or revoked.
fn sim_tokens(tokens: &Path) -> Vec<String> {
    worker_tokens(tokens, |t| t["name"].as_str().unwrap().starts_with("sim-"))
}

/// The names of the live worker tokens in a tokens file.
fn live_worker_tokens(tokens: &Path) -> Vec<String> {
    worker_tokens(tokens, |t| t.get("revoked").is_none())
}

fn worker_tokens(tokens: &Path, keep: impl Fn(&toml::Value) -> bool) -> Vec<String> {
    let file: toml::Value = toml::from_str(&std::fs::read_to_string(tokens).unwrap()).unwrap();
    file["token"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["role"].as_str() == Some("worker") && keep(t))
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// `simulate ... | head -1`: the reader gone does not kill the run before
/// it revokes its tokens (it ends quietly with SIGPIPE's status). And a
/// run killed outright (SIGKILL) leaves its tokens live: the next run
/// does not use them, and revokes them with its own.
#[test]
fn simulate_cut_off_or_killed_leaves_no_live_token_after_the_next_run() {
    use std::os::fd::FromRawFd;
    let (_dir, srv, tokens) = simulated_server();
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just made and are owned here alone.
    let (read, write) =
        unsafe { (std::os::fd::OwnedFd::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let out = start_simulate(&srv.addr, &tokens, 300, Stdio::from(write)).wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{:?}: {err}", out.status);
    assert!(!sim_tokens(&tokens).is_empty(), "it issued tokens: {err}");
    assert_eq!(live_worker_tokens(&tokens), Vec::<String>::new(), "{err}");

    let mut child = start_simulate(&srv.addr, &tokens, 4000, Stdio::null());
    let before = sim_tokens(&tokens).len();
    let t0 = Instant::now();
    while sim_tokens(&tokens).len() < before + 5 {
        assert!(t0.elapsed() < Duration::from_secs(120), "simulate issued no token");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The server still answers a TOKEN the killed run had sent (and writes
    // it to the file) after the run is gone: wait until the file settles,
    // or the next run could start before that token exists and miss it.
    let mut left = live_worker_tokens(&tokens);
    let t0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = live_worker_tokens(&tokens);
        if now == left || t0.elapsed() > Duration::from_secs(30) {
            break;
        }
        left = now;
    }
    assert!(!left.is_empty(), "SIGKILL leaves the run's tokens live");

    let err = run_simulate(&srv.addr, &tokens, 100, "9");
    assert!(err.contains("an earlier run left live"), "{err}");
    assert_eq!(live_worker_tokens(&tokens), Vec::<String>::new(), "{err}");
}

/// A refused `AUTH` is in the server's log with the peer's address and
/// without the secret tried; past the first few on one connection, the
/// rest are counted in one line when it closes.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_auth_is_logged_with_the_peer_and_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = Server::start(&data, &[]);
    let mut c = Client::connect(&srv.addr).await.unwrap();
    let guess = "0123456789abcdef-not-a-token-at-all";
    for _ in 0..5 {
        let r = c.call(&gridline_client::auth_request(guess)).await.unwrap();
        assert!(matches!(r, Reply::Err { ref code, .. } if code == "unauthenticated"), "{r:?}");
    }
    drop(c);
    // The one that succeeds is not among them.
    drop(srv.client("operator").await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(srv.terminate().success());
    let log = strip_ansi(&std::fs::read_to_string(data.with_extension("log")).unwrap());
    assert!(!log.contains(guess), "the secret tried is in the log: {log}");
    let refused: Vec<&str> = log.lines().filter(|l| l.contains("AUTH refused")).collect();
    assert_eq!(refused.len(), 3, "{log}");
    assert!(refused.iter().all(|l| l.contains("WARN") && l.contains("peer=127.0.0.1:")), "{log}");
    assert!(log.lines().any(|l| l.contains("closed after refused AUTHs") && l.contains("failed=5")), "{log}");
}

/// The protocol is plain text: `serve` on an address beyond loopback says
/// so at start (tokens and residents' records cross the network in
/// clear); on loopback it does not.
#[test]
fn serving_beyond_loopback_warns_that_the_protocol_is_not_encrypted() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start(&dir.path().join("quiet"), &[]);
    assert!(srv.terminate().success());
    let log = std::fs::read_to_string(dir.path().join("quiet.log")).unwrap();
    assert!(log.contains("serving") && !log.contains("not encrypted"), "{log}");
    assert!(!log.contains('\x1b'), "a log kept in a file has no colour sequences: {log:?}");

    let data = dir.path().join("open");
    let err = std::fs::File::create(dir.path().join("open.log")).unwrap();
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--data"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .unwrap();
    let serving = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("gridline: serving "));
    // SAFETY: a signal to the child started here.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let log = strip_ansi(&std::fs::read_to_string(dir.path().join("open.log")).unwrap());
    assert!(serving && status.success(), "{status:?}: {log}");
    let warned =
        log.lines().any(|l| l.contains("WARN") && l.contains("not encrypted") && l.contains("0.0.0.0:"));
    assert!(warned, "{log}");
}

/// A data directory that belongs to another user (an administrator's,
/// shared with the server's user through its group, say) is used as it
/// is, with a warning: changing its mode is not the server's to do, and
/// trying (EPERM) stopped the start. Needs root to give the directory
/// away; elsewhere it says so and checks nothing.
#[test]
fn serve_uses_an_open_data_directory_of_another_user_as_it_is_and_says_so() {
    // SAFETY: geteuid only reads this process's effective user id.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("NOT CHECKED: giving a directory to another user needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o2777)).unwrap();
    std::os::unix::fs::chown(&data, Some(65534), None).unwrap();
    let mut srv = Server::start(&data, &[]);
    assert!(srv.terminate().success());
    assert_eq!(mode(&data), Some(0o777), "left as it is");
    let log = strip_ansi(&std::fs::read_to_string(data.with_extension("log")).unwrap());
    let warned = log.lines().any(|l| l.contains("WARN") && l.contains("belongs to another user"));
    assert!(warned, "{log}");
    assert_eq!(mode(&data.join("log")), Some(0o700), "its own log directory is private");
}
