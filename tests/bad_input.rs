//! Bad input over a real socket: each gets its documented ERR (or a close),
//! and the server keeps serving everyone else.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread")]
async fn bad_lines_get_errors_and_the_connection_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let mut op = srv.client("operator").await;
    let cases: &[(&[u8], &str)] = &[
        (b"FROB x=1\n", "unknown_verb"),
        (b"ACCEPT grid=JDZ\n", "bad_request"), // missing text
        (b"ACCEPT text=x lon=abc lat=45\n", "bad_request"), // bad coordinate
        (b"ACCEPT text=x lon=131.1 lat=95\n", "bad_request"), // out of range
        (b"ACCEPT text=x lon=131.1\n", "bad_request"), // lon without lat
        (b"ACCEPT text=x grid=NO-SUCH-GRID\n", "bad_request"), // unknown grid
        (b"ACCEPT text=x grid=JDZ category=nonsense\n", "bad_request"),
        (b"ACCEPT text=\"unterminated grid=x\n", "bad_request"),
        (b"ACCEPT text=x text=y\n", "bad_request"),  // duplicate key
        (b"ACCEPT text=x bogus=1\n", "bad_request"), // unknown field
        (b"ACCEPT text=\xff\xfe\n", "bad_request"),  // bad UTF-8
        (b"ACCEPT text=a\x00b\n", "bad_request"),    // NUL byte
        (b"\n", "bad_request"),                      // empty line
        (b"\r\n", "bad_request"),
        (b"PING\r\r\n", "bad_request"), // one \r before \n is the terminator's; two is a control character
        (b"PI\rNG\r\n", "bad_request"),
        (b"GET case=JD-20000101-000001\n", "not_found"),
        (b"FEEDBACK case=x satisfied=maybe\n", "bad_request"),
    ];
    for (bytes, code) in cases {
        op.send_raw(bytes).await.unwrap();
        let r = op.read_reply().await.unwrap();
        assert_eq!(r.err_code(), Some(*code), "{:?} -> {r:?}", String::from_utf8_lossy(bytes));
    }
    // Still usable, and errors name the field.
    let r = op.call("ACCEPT text=x lon=abc lat=45").await.unwrap();
    let Reply::Err { message, .. } = r else { panic!() };
    assert!(message.contains("lon"), "{message}");
    assert!(ok(op.call("PING").await.unwrap()).0.get("pong").is_some());
    op.send_raw(b"PING\r\n").await.unwrap();
    assert!(ok(op.read_reply().await.unwrap()).0.get("pong").is_some(), "CRLF is a terminator");
    op.send_raw(b"PING\r\r\n").await.unwrap();
    let Reply::Err { message, .. } = op.read_reply().await.unwrap() else { panic!("PING\\r\\r accepted") };
    assert!(message.contains("U+000D"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn help_lists_every_verb_form_with_the_roles_the_server_allows() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let mut c = Client::connect(&srv.addr).await.unwrap();
    let (f, rows) = ok(c.call("HELP").await.unwrap());
    assert_eq!(f.get("count"), Some("21"), "docs/protocol.md says 21");
    assert_eq!(rows.len(), 21);
    let stats = rows.iter().find(|(_, r)| r.get("verb") == Some("STATS")).expect("a STATS row");
    assert_eq!(stats.1.get("roles"), Some("supervisor,admin"));
    // ...and the server does allow both.
    for role in ["supervisor", "admin"] {
        assert!(srv.client(role).await.call("STATS").await.unwrap().is_ok(), "STATS as {role}");
    }
    let r = srv.client("operator").await.call("STATS").await.unwrap();
    assert_eq!(r.err_code(), Some("forbidden"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_over_long_line_gets_too_large_and_a_close_but_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &["--line-bytes-max", "1024"]);
    let mut other = srv.client("operator").await;
    let mut s = tokio::net::TcpStream::connect(&srv.addr).await.unwrap();
    let long = format!("PING {}\n", "x".repeat(5000));
    let _ = s.write_all(long.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await.expect("closed");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("ERR too_large "), "{text}");
    assert!(ok(other.call("PING").await.unwrap()).0.get("pong").is_some());
}

/// The `too_large` reply is owed even when the connection's pipeline is
/// full: it was put in with `try_send` and dropped when the queue of
/// replies in flight had no room, so a client that pipelined writes before
/// an over-long line saw their replies and then a close without a word.
#[tokio::test(flavor = "multi_thread")]
async fn an_over_long_line_after_a_full_pipeline_still_gets_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &["--line-bytes-max", "1024", "--inflight-max", "1"]);
    let (grid, _, _) = some_grid(4);
    let mut s = tokio::net::TcpStream::connect(&srv.addr).await.unwrap();
    let mut burst = format!("AUTH token={}\n", srv.token("operator"));
    for i in 0..8 {
        burst.push_str(&format!("ACCEPT text=\"第{i}件\" grid={grid} req=full-{i}\n"));
    }
    burst.push_str(&format!("PING {}\n", "x".repeat(5000)));
    let _ = s.write_all(burst.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf)).await.expect("closed");
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10, "{text}");
    assert!(lines[..9].iter().all(|l| l.starts_with("OK ")), "{text}");
    assert!(lines[9].starts_with("ERR too_large "), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn half_a_line_then_close_executes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let (grid, _, _) = some_grid(1);
    {
        let mut s = tokio::net::TcpStream::connect(&srv.addr).await.unwrap();
        let line =
            format!("AUTH token={}\nACCEPT text=half grid={grid} req=half-line", srv.token("operator"));
        s.write_all(line.as_bytes()).await.unwrap();
        s.shutdown().await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
        assert_eq!(String::from_utf8_lossy(&buf), "OK role=operator\n");
    }
    let mut op = srv.client("operator").await;
    let (f, _) = ok(op.call(&format!("ACCEPT text=whole grid={grid} req=half-line")).await.unwrap());
    assert_eq!(f.get("duplicate"), None, "the half line was never executed");
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_requests_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let mut op = srv.client("operator").await;
    let (grid, _, _) = some_grid(2);
    for i in 0..200 {
        op.send(&format!("ACCEPT text=\"第{i}件\" grid={grid} req=p-{i}")).await.unwrap();
        op.send("PING").await.unwrap();
    }
    op.flush().await.unwrap();
    let mut last = String::new();
    for i in 0..200 {
        let (f, _) = ok(op.read_reply().await.unwrap());
        let no = f.get("no").unwrap_or_else(|| panic!("reply {i} is not an ACCEPT's")).to_string();
        assert!(no > last, "case numbers follow request order");
        last = no;
        assert!(ok(op.read_reply().await.unwrap()).0.get("pong").is_some());
    }
}

/// `AUDIT` with `to=` at or before `from=` asks for a window that holds no
/// case: `bad_request` naming `to`, not `OK count=0` ("nothing received").
#[tokio::test(flavor = "multi_thread")]
async fn audit_refuses_a_window_that_ends_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let mut sup = srv.client("supervisor").await;
    for line in ["AUDIT from=2026-12-01 to=2026-11-01", "AUDIT by=township from=2026-11-01 to=2026-11-01"] {
        let r = sup.call(line).await.unwrap();
        let Reply::Err { code, message } = r else { panic!("{line}: {r:?}") };
        assert_eq!(code, "bad_request", "{line}");
        assert!(message.starts_with("to:") && message.contains("from"), "{line}: {message}");
    }
    ok(sup.call("AUDIT from=2026-11-01 to=2026-11-01T00:01").await.unwrap());
}
