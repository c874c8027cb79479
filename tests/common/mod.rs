//! Starting the real `gridline` binary on a free port, with a real data directory.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use gridline_client::{Client, Reply};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_gridline")
}

pub struct Server {
    pub child: Option<Child>,
    pub addr: String,
    pub data: PathBuf,
}

impl Server {
    /// Starts `gridline serve` on `data` with extra flags; waits until it listens.
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.with_extension("log"))
            .expect("server log file");
        let mut child = Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start gridline serve");
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
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(data.with_extension("log")).unwrap_or_default();
                panic!("the server did not start; its log:\n{log}");
            }
        };
        Server { child: Some(child), addr, data: data.to_path_buf() }
    }

    /// The secret of the first token with `role` in tokens.toml.
    pub fn token(&self, role: &str) -> String {
        let text = std::fs::read_to_string(self.data.join("tokens.toml")).expect("tokens.toml");
        let file: toml::Value = toml::from_str(&text).expect("tokens.toml parses");
        file["token"]
            .as_array()
            .expect("token tables")
            .iter()
            .find(|t| t["role"].as_str() == Some(role))
            .and_then(|t| t["secret"].as_str())
            .expect("a token of that role")
            .to_string()
    }

    pub async fn client(&self, role: &str) -> Client {
        Client::connect_auth(&self.addr, &self.token(role)).await.expect("connect and AUTH")
    }

    /// A worker's client, issuing its token through the admin.
    pub async fn worker(&self, worker: &str) -> Client {
        let mut admin = self.client("admin").await;
        let (f, _) = admin.call(&format!("TOKEN role=worker worker={worker}")).await.unwrap().ok().unwrap();
        Client::connect_auth(&self.addr, f.get("secret").unwrap()).await.unwrap()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for the exit (at most 60 s).
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let t0 = Instant::now();
        loop {
            if let Some(s) = c.try_wait().expect("wait") {
                return s;
            }
            if t0.elapsed() > Duration::from_secs(60) {
                let _ = c.kill();
                panic!("the server did not stop within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// How long [`run`] lets a command take before it calls it hung: a guard
/// against a test that never ends, not a measure of speed.
pub const RUN_LIMIT: Duration = Duration::from_secs(300);

/// How long a `serve` that should refuse to start may take to exit: one
/// that serves instead would never exit. A hang guard, not a timing check.
pub const REFUSAL_LIMIT: Duration = Duration::from_secs(60);

/// Runs `gridline` with arguments; returns (exit code, stdout, stderr).
/// Panics if it has not exited within [`RUN_LIMIT`].
pub fn run(args: &[&str]) -> (i32, String, String) {
    run_within(RUN_LIMIT, args)
}

/// Runs `gridline` with arguments (standard input empty) and returns (exit
/// code, stdout, stderr); if it has not exited within `limit`, kills it and
/// panics with what it printed so far.
pub fn run_within(limit: Duration, args: &[&str]) -> (i32, String, String) {
    use std::io::Read;
    use std::sync::{Arc, Mutex};
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gridline");
    // Read as it comes, so that a child filling a pipe does not block, and
    // what it said is there to show if it has to be killed.
    let drain = |mut from: Box<dyn Read + Send>| {
        let got = Arc::new(Mutex::new(Vec::new()));
        let to = got.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = from.read(&mut buf) {
                to.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        (got, reader)
    };
    let (out, out_reader) = drain(Box::new(child.stdout.take().expect("stdout")));
    let (err, err_reader) = drain(Box::new(child.stderr.take().expect("stderr")));
    let text = |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&b.lock().unwrap()).into_owned();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for gridline") {
            break s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "gridline {args:?} had not exited after {limit:?}; killed. Its stdout so far:\n{}\nIts stderr so far:\n{}",
                text(&out),
                text(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    out_reader.join().expect("stdout reader");
    err_reader.join().expect("stderr reader");
    (status.code().unwrap_or(-1), text(&out), text(&err))
}

/// Fields of an OK reply, or panic with the error.
pub fn ok(r: Reply) -> (gridline_protocol::Fields, Vec<(String, gridline_protocol::Fields)>) {
    match r {
        Reply::Ok { fields, items } => (fields, items),
        Reply::Err { code, message } => panic!("expected OK, got ERR {code} {message}"),
    }
}

/// A grid code and an interior point of a non-dedicated grid, from the embedded registry.
pub fn some_grid(i: usize) -> (String, f64, f64) {
    use geo::InteriorPoint;
    let r = gridline_registry::embedded::jidong();
    let g = r.grids.iter().filter(|g| g.kind != gridline_registry::GridKind::Dedicated).nth(i).unwrap();
    let p = g.polygon.interior_point().unwrap();
    (g.code.clone(), p.x(), p.y())
}

/// Starts a server on `data`, has `n` cases accepted one call at a time
/// (one commit, so one write-ahead log record, each; texts `{tag}00`,
/// `{tag}01`, ...), and kills it with SIGKILL.
pub async fn accept_one_by_one_then_kill(data: &Path, n: usize, tag: &str) {
    let mut srv = Server::start(data, &[]);
    let mut op = srv.client("operator").await;
    let (grid, _, _) = some_grid(5);
    for i in 0..n {
        ok(op.call(&format!("ACCEPT text=\"{tag}{i:02}\" grid={grid} req=r{i}")).await.unwrap());
    }
    srv.kill9();
}

/// A copy of the embedded Jidong config in `dir`, with `from` replaced by
/// `to` in its county.toml (once; it must be there): another county's config.
pub fn jidong_config_with(dir: &Path, from: &str, to: &str) -> std::path::PathBuf {
    jidong_config_edited(dir, "", from, to)
}

/// [`jidong_config_with`], replacing the first `from` after `after` (a
/// category's `[[category]]\ncode = "water"`, say: other categories
/// may share its limits).
pub fn jidong_config_edited(dir: &Path, after: &str, from: &str, to: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/jidong");
    for f in ["county.toml", "workers.csv", "grids.geojson"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let county = std::fs::read_to_string(dir.join("county.toml")).unwrap();
    let at = county.find(after).unwrap_or_else(|| panic!("{after:?} is not in county.toml"));
    let (head, tail) = county.split_at(at);
    assert!(tail.contains(from), "{from:?} is not in county.toml after {after:?}");
    std::fs::write(dir.join("county.toml"), format!("{head}{}", tail.replacen(from, to, 1))).unwrap();
    dir.to_path_buf()
}

/// A loopback address nobody listens on, for as long as the returned
/// socket lives: bound (so no other process can take the port) but never
/// listening, so a connection there is refused. A port merely freed could
/// be taken by anything else on the machine in the meantime.
pub fn address_nobody_listens_on() -> (std::os::fd::OwnedFd, String) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor this function owns; the
    // address structures are fully initialized before use.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        sa.sin_port = 0;
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        use std::os::fd::AsRawFd;
        let r = libc::bind(fd.as_raw_fd(), &sa as *const libc::sockaddr_in as *const libc::sockaddr, len);
        assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
        let mut got: libc::sockaddr_in = std::mem::zeroed();
        let mut got_len = len;
        let r = libc::getsockname(
            fd.as_raw_fd(),
            &mut got as *mut libc::sockaddr_in as *mut libc::sockaddr,
            &mut got_len,
        );
        assert_eq!(r, 0, "getsockname: {}", std::io::Error::last_os_error());
        (fd, format!("127.0.0.1:{}", u16::from_be(got.sin_port)))
    }
}

/// `line` without its terminal colour sequences (`ESC [ ... m`), as the
/// server's log lines have them even on a pipe.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
