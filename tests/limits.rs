//! Load shapes: too many connections, slow clients, SIGTERM under load.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_limit_get_busy_and_a_close() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &["--connections-max", "2"]);
    let mut a = srv.client("operator").await;
    let mut b = srv.client("operator").await;
    let mut c = tokio::net::TcpStream::connect(&srv.addr).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut buf))
        .await
        .expect("refused promptly")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf).starts_with("ERR busy "), "{}", String::from_utf8_lossy(&buf));
    assert!(a.call("PING").await.unwrap().is_ok());
    assert!(b.call("PING").await.unwrap().is_ok());
    // A slot frees when a client leaves.
    drop(a);
    let t0 = Instant::now();
    loop {
        let mut d = Client::connect(&srv.addr).await.unwrap();
        if let Ok(r) = d.call("PING").await {
            if r.is_ok() {
                break;
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "the freed slot was never reused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trickling_client_is_dropped_at_the_idle_deadline_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &["--idle-timeout-secs", "2"]);
    // The server's idle clock starts at accept, after this instant.
    let t0 = Instant::now();
    let mut slow = tokio::net::TcpStream::connect(&srv.addr).await.unwrap();
    let mut good = srv.client("operator").await;
    let mut closed = false;
    for b in b"PING PING PING PING PING".iter() {
        if slow.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        assert!(good.call("PING").await.unwrap().is_ok(), "others are served meanwhile");
        let mut buf = [0u8; 256];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(700), slow.read(&mut buf)).await {
            if n == 0 || String::from_utf8_lossy(&buf[..n]).contains("idle") {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "the trickling client was never dropped");
    let took = t0.elapsed();
    assert!(took >= Duration::from_secs(2), "dropped before its deadline ({took:?})");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_loses_no_acknowledged_case() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = Server::start(&data, &[]);
    let token = srv.token("operator");
    let (grid, _, _) = some_grid(5);
    let mut tasks = Vec::new();
    for k in 0..4 {
        let (addr, token, grid) = (srv.addr.clone(), token.clone(), grid.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let Ok(mut c) = Client::connect_auth(&addr, &token).await else { return acked };
            for i in 0..100_000 {
                let line = format!("ACCEPT text=\"负载{k}-{i}\" grid={grid} req=t{k}-{i}");
                match c.call(&line).await {
                    Ok(Reply::Ok { fields, .. }) => acked.push(fields.get("no").unwrap().to_string()),
                    _ => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let status = srv.terminate();
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(!acked.is_empty(), "no case was accepted before the signal");
    let srv = Server::start(&data, &[]);
    let mut sup = srv.client("supervisor").await;
    for no in &acked {
        sup.send(&format!("GET case={no}")).await.unwrap();
    }
    sup.flush().await.unwrap();
    for no in &acked {
        let r = sup.read_reply().await.unwrap();
        assert!(r.is_ok(), "acknowledged case {no} is missing after restart: {r:?}");
    }
}
