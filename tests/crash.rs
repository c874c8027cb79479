//! kill -9 at random moments, some during recovery: every case that got an
//! OK is there with all its acknowledged events; none appears twice; cases
//! whose outcome the client never learned are whole or absent.
//!
//! The server runs with 1 MiB write-ahead log files (`--checkpoint-mib 1`),
//! so that kills also land while the log moves between its two files and
//! sled is made durable in the background.
//!
//! The suite runs a few kills (three: load, a kill during recovery, load);
//! `GRIDLINE_CRASH_KILLS=100` runs the long version (every fourth round a
//! kill during recovery).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// Small log files: many moves between them and background checkpoints.
const SERVE: &[&str] = &["--checkpoint-mib", "1"];

struct Acked {
    /// case no -> number of events the client saw acknowledged (1 = accepted+dispatched, 2 = +claim...)
    cases: HashMap<String, (String, usize)>,
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_nine_loses_nothing_acknowledged() {
    let kills: usize = std::env::var("GRIDLINE_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut acked = Acked { cases: HashMap::new() };
    // The ACCEPTs in flight at the last kill: their outcome never reached the client.
    let mut unknown: Vec<String> = Vec::new();
    let mut seed = 0x5eed_u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..kills {
        let mut srv = Server::start(&data, SERVE);
        // Everything acknowledged so far is there, once, whole; what was
        // in flight at the last kill is whole or absent.
        check(&srv, &acked).await;
        check_unknown(&srv, &mut acked, std::mem::take(&mut unknown)).await;
        // Round 1 of the suite's three, and every fourth of a long run.
        if round % 4 == 1 {
            // Kill during the next recovery too.
            srv.kill9();
            let mut child = std::process::Command::new(bin())
                .args(["serve", "--listen", "127.0.0.1:0", "--data"])
                .arg(&data)
                .args(SERVE)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(rand() % 150));
            let _ = child.kill();
            let _ = child.wait();
            continue;
        }
        let token = srv.token("operator");
        let (grid, _, _) = some_grid((round % 7) + 1);
        let mut tasks = Vec::new();
        let acks = Arc::new(AtomicUsize::new(0));
        for k in 0..6 {
            let (addr, token, grid, acks) = (srv.addr.clone(), token.clone(), grid.clone(), acks.clone());
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                let Ok(mut c) = Client::connect_auth(&addr, &token).await else { return (got, None) };
                for i in 0..1_000_000 {
                    // One ACCEPT at a time: at the kill, at most one per
                    // client is in flight, its outcome unknown.
                    let line =
                        format!("ACCEPT text=\"崩溃测试{round}-{k}-{i}\" grid={grid} req=c{round}-{k}-{i}");
                    match c.call(&line).await {
                        Ok(Reply::Ok { fields, .. }) => {
                            got.push((
                                fields.get("no").unwrap().to_string(),
                                fields.get("case").unwrap().to_string(),
                            ));
                            acks.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => return (got, Some(line)),
                    }
                }
                (got, None)
            }));
        }
        // Killed at a random moment once the load is under way (a hang guard
        // bounds the wait for the first acknowledgement, not a timing check).
        let t0 = Instant::now();
        while acks.load(Ordering::Relaxed) == 0
            && !tasks.iter().all(|t| t.is_finished())
            && t0.elapsed() < Duration::from_secs(60)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100 + rand() % 600)).await;
        srv.kill9();
        let mut this_round = 0;
        for t in tasks {
            let (got, in_flight) = t.await.unwrap();
            this_round += got.len();
            unknown.extend(in_flight);
            for (no, id) in got {
                assert!(acked.cases.insert(no.clone(), (id, 2)).is_none(), "case number {no} issued twice");
            }
        }
        assert!(this_round > 0, "round {round}: no case was acknowledged before the kill");
    }
    let srv = Server::start(&data, SERVE);
    check(&srv, &acked).await;
    check_unknown(&srv, &mut acked, unknown).await;
    check(&srv, &acked).await;
    drop(srv);
    let (code, out, err) = run(&["verify", "--data", data.to_str().unwrap()]);
    assert_eq!(code, 0, "verify failed: {out}{err}");
}

async fn check(srv: &Server, acked: &Acked) {
    let mut sup = srv.client("supervisor").await;
    let nos: Vec<&String> = acked.cases.keys().collect();
    for chunk in nos.chunks(500) {
        for no in chunk {
            sup.send(&format!("GET case={no}")).await.unwrap();
        }
        sup.flush().await.unwrap();
        for no in chunk {
            let r = sup.read_reply().await.unwrap();
            let (f, events) = match r {
                Reply::Ok { fields, items } => (fields, items),
                Reply::Err { code, message } => panic!("acknowledged case {no} lost: {code} {message}"),
            };
            let (id, n) = &acked.cases[*no];
            assert_eq!(f.get("case"), Some(id.as_str()), "case {no} has another id");
            assert!(events.len() >= *n, "case {no} lost acknowledged events");
        }
    }
}

/// The ACCEPTs in flight at a kill (`lines`): each case is whole (its
/// record and both its events: accepted, dispatched) or absent. Sent
/// again with the same `req=`, one that is there comes back as a
/// duplicate, and is then read whole; one that is not is accepted now
/// (and is acknowledged from now on).
async fn check_unknown(srv: &Server, acked: &mut Acked, lines: Vec<String>) {
    if lines.is_empty() {
        return;
    }
    let mut op = srv.client("operator").await;
    let mut sup = srv.client("supervisor").await;
    for line in lines {
        let (f, _) = ok(op.call(&line).await.unwrap());
        let (no, id) = (f.get("no").unwrap().to_string(), f.get("case").unwrap().to_string());
        if f.get("duplicate") == Some("yes") {
            let (g, events) = ok(sup.call(&format!("GET case={no}")).await.unwrap());
            assert_eq!(g.get("case"), Some(id.as_str()), "{line}: case {no} has another id");
            let kinds: Vec<&str> = events.iter().map(|(_, e)| e.get("kind").unwrap_or("?")).collect();
            assert_eq!(g.get("count"), Some(kinds.len().to_string().as_str()), "{line}: case {no}");
            assert!(
                kinds.len() >= 2 && kinds[..2] == ["accepted", "dispatched"],
                "{line}: case {no} is there but not whole: {kinds:?}"
            );
        }
        assert!(acked.cases.insert(no.clone(), (id, 2)).is_none(), "{line}: case number {no} issued twice");
    }
}
