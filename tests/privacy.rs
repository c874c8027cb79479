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
/// of the log: the copy is removed and the status is 128 + the signal.
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
        // Wait for the copy's directory, and for a file in it.
        let seen = loop {
            if let Some(copy) = entries(&tmp).into_iter().next() {
                let files: Vec<_> =
                    std::fs::read_dir(&copy).map(|d| d.flatten().collect()).unwrap_or_default();
                if !files.is_empty() {
                    assert_eq!(mode(&copy), Some(0o700), "{}", copy.display());
                    for f in files {
                        let want = if f.path().is_dir() { 0o700 } else { 0o600 };
                        if let Some(m) = mode(&f.path()) {
                            assert_eq!(m, want, "{}: {m:04o}", f.path().display());
                        }
                    }
                    break true;
                }
            }
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            std::thread::yield_now();
        };
        if seen {
            // SAFETY: a signal to the child started here.
            unsafe { libc::kill(child.id() as i32, sig) };
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(entries(&tmp), Vec::<std::path::PathBuf>::new(), "signal {sig}: a copy was left: {err}");
        match out.status.code() {
            Some(0) => {}
            Some(c) if seen && c == 128 + sig => interrupted.push(sig),
            _ => panic!("signal {sig}: {:?}: {err}", out.status),
        }
    }
    assert!(!interrupted.is_empty(), "no verify was interrupted while its copy existed");
}
