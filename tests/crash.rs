//! kill -9 at random moments, some during recovery: every case that got an
//! OK is there with all its acknowledged events; none appears twice; cases
//! whose outcome the client never learned are whole or absent.
//!
//! The server runs with 1 MiB write-ahead log files (`--checkpoint-mib 1`),
//! so that kills also land while the log moves between its two files and
//! sled is made durable in the background.
//!
//! The suite runs a few kills; `GRIDLINE_CRASH_KILLS=100` runs the long version.

mod common;

use std::collections::HashMap;
use std::time::Duration;

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
    let mut seed = 0x5eed_u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..kills {
        let mut srv = Server::start(&data, SERVE);
        // Everything acknowledged so far is there, once, whole.
        check(&srv, &acked).await;
        if round % 4 == 3 {
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
        for k in 0..6 {
            let (addr, token, grid) = (srv.addr.clone(), token.clone(), grid.clone());
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                let Ok(mut c) = Client::connect_auth(&addr, &token).await else { return got };
                for i in 0..1_000_000 {
                    // Pipelined pairs: the ACCEPT and a PING.
                    let line =
                        format!("ACCEPT text=\"崩溃测试{round}-{k}-{i}\" grid={grid} req=c{round}-{k}-{i}");
                    match c.call(&line).await {
                        Ok(Reply::Ok { fields, .. }) => got.push((
                            fields.get("no").unwrap().to_string(),
                            fields.get("case").unwrap().to_string(),
                        )),
                        _ => break,
                    }
                }
                got
            }));
        }
        tokio::time::sleep(Duration::from_millis(200 + rand() % 600)).await;
        srv.kill9();
        for t in tasks {
            for (no, id) in t.await.unwrap() {
                assert!(acked.cases.insert(no.clone(), (id, 2)).is_none(), "case number {no} issued twice");
            }
        }
    }
    let srv = Server::start(&data, SERVE);
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
