//! The whole loop over TCP against the real binary, for every role.

mod common;

use common::*;

async fn accept(op: &mut Client, extra: &str) -> gridline_protocol::Fields {
    let (grid, _, _) = some_grid(3);
    let (f, _) = ok(op
        .call(&format!("ACCEPT text=\"路灯坏了好几天\" grid={grid} phone=13812345678 {extra}"))
        .await
        .unwrap());
    f
}

#[tokio::test(flavor = "multi_thread")]
async fn a_case_goes_round_the_whole_loop() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let mut op = srv.client("operator").await;

    // accept -> dispatched, with deadlines and the rule that chose the worker
    let f = accept(&mut op, "").await;
    assert_eq!(f.get("status"), Some("dispatched"));
    for k in ["case", "no", "grid", "worker", "due_claim", "due_close", "rule"] {
        assert!(f.get(k).is_some(), "ACCEPT reply lacks {k}");
    }
    let no = f.get("no").unwrap().to_string();
    assert!(no.starts_with("JD-"), "{no}");
    let w = f.get("worker").unwrap().to_string();

    // the worker pulls, claims, notes, closes
    let mut wk = srv.worker(&w).await;
    let (pf, items) = ok(wk.call("PULL").await.unwrap());
    assert_eq!(pf.get("count"), Some("1"));
    assert_eq!(items[0].0, "CASE");
    assert_eq!(items[0].1.get("no"), Some(no.as_str()));
    assert_eq!(items[0].1.get("phone"), Some("138****5678"), "workers see masked phones");
    let (due, warn) =
        (items[0].1.get("due_claim").unwrap(), items[0].1.get("warn_at").expect("a warning point"));
    assert!(warn < due, "the warning point {warn} comes before the deadline {due}");
    assert_eq!(ok(wk.call(&format!("CLAIM case={no}")).await.unwrap()).0.get("status"), Some("handling"));
    ok(wk.call(&format!("NOTE case={no} text=\"已到现场\"")).await.unwrap());
    assert_eq!(
        ok(wk.call(&format!("CLOSE case={no} result=\"已更换灯泡\"")).await.unwrap()).0.get("status"),
        Some("closed")
    );
    // the return visit
    let (ff, _) = ok(op.call(&format!("FEEDBACK case={no} satisfied=yes score=5")).await.unwrap());
    assert_eq!(ff.get("status"), Some("closed"));
    // GET shows every event in order
    let (g, events) = ok(op.call(&format!("GET case={no}")).await.unwrap());
    assert_eq!(g.get("phone"), Some("13812345678"), "the operator who took the call sees the number");
    let kinds: Vec<_> = events.iter().map(|(_, e)| e.get("kind").unwrap().to_string()).collect();
    assert_eq!(kinds, ["accepted", "dispatched", "claimed", "noted", "closed", "feedback"]);
    assert!(events.iter().all(|(t, e)| t == "EVENT" && e.get("at").is_some() && e.get("actor").is_some()));
}

/// As an operator types them: a phone number in full-width digits is
/// stored in ASCII, a word in its place is refused naming the field, and a
/// case number read out over the phone and typed in lower case finds its
/// case.
#[tokio::test(flavor = "multi_thread")]
async fn numbers_as_an_operator_types_them() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let mut op = srv.client("operator").await;
    let (grid, _, _) = some_grid(3);
    let (f, _) =
        ok(op.call(&format!("ACCEPT text=路灯坏了 grid={grid} phone=１３８１２３４５６７８")).await.unwrap());
    let no = f.get("no").unwrap().to_lowercase();
    assert!(no.starts_with("jd-"), "{no}");
    let (g, _) = ok(op.call(&format!("GET case={no}")).await.unwrap());
    assert_eq!(g.get("phone"), Some("13812345678"));
    let r = op.call(&format!("ACCEPT text=路灯坏了 grid={grid} phone=电话号码")).await.unwrap();
    assert_eq!(r.err_code(), Some("bad_request"), "{r:?}");
    assert!(format!("{r:?}").contains("phone: `电话号码` is not a phone number"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn returned_cases_move_and_unsatisfied_cases_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let mut op = srv.client("operator").await;

    let f = accept(&mut op, "").await;
    let (no, first) = (f.get("no").unwrap().to_string(), f.get("worker").unwrap().to_string());
    let mut w1 = srv.worker(&first).await;
    let (r, _) = ok(w1.call(&format!("RETURN case={no} reason=\"不是本网格的\"")).await.unwrap());
    let second = r.get("worker").expect("routed again").to_string();
    assert_ne!(second, first, "never back to the worker who returned it");
    assert_eq!(w1.call(&format!("CLAIM case={no}")).await.unwrap().err_code(), Some("forbidden"));

    let mut w2 = srv.worker(&second).await;
    ok(w2.call(&format!("CLAIM case={no}")).await.unwrap());
    ok(w2.call(&format!("CLOSE case={no} result=done")).await.unwrap());
    let (r, _) =
        ok(op.call(&format!("FEEDBACK case={no} satisfied=no score=1 text=\"还是不亮\"")).await.unwrap());
    assert_eq!(r.get("status"), Some("dispatched"), "reopened and dispatched again");
    assert_eq!(r.get("reopens"), Some("1"));
    assert_ne!(r.get("worker"), Some(first.as_str()));
    // feedback twice on the same round is a conflict
    assert_eq!(
        op.call(&format!("FEEDBACK case={no} satisfied=yes")).await.unwrap().err_code(),
        Some("conflict")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_req_returns_the_same_case() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let mut op = srv.client("operator").await;
    let a = accept(&mut op, "req=call-0001").await;
    let b = accept(&mut op, "req=call-0001").await;
    assert_eq!(a.get("case"), b.get("case"));
    assert_eq!(b.get("duplicate"), Some("yes"));
    let c = accept(&mut op, "req=call-0002").await;
    assert_ne!(a.get("case"), c.get("case"));
}

/// A worker's NOTE retried with its `req=` after the reply was lost (here:
/// after a `kill -9` of the server) is stored once; GET shows its id.
#[tokio::test(flavor = "multi_thread")]
async fn a_retried_note_is_stored_once_even_across_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = Server::start(&data, &[]);
    let mut op = srv.client("operator").await;
    let f = accept(&mut op, "").await;
    let (no, w) = (f.get("no").unwrap().to_string(), f.get("worker").unwrap().to_string());
    let note = format!("NOTE case={no} text=\"阀门已关，等配件\" req=app-7f3a");
    let mut wk = srv.worker(&w).await;
    ok(wk.call(&note).await.unwrap());
    ok(wk.call(&note).await.unwrap());
    srv.kill9();
    let srv = Server::start(&data, &[]);
    let mut wk = srv.worker(&w).await;
    ok(wk.call(&note).await.unwrap());
    let other = format!("NOTE case={no} text=\"另一件事\" req=app-7f3a");
    let refused = wk.call(&other).await.unwrap();
    assert_eq!(refused.err_code(), Some("conflict"), "{refused:?}");
    let mut op = srv.client("operator").await;
    let (_, events) = ok(op.call(&format!("GET case={no}")).await.unwrap());
    let noted: Vec<_> = events.iter().filter(|(_, e)| e.get("kind") == Some("noted")).collect();
    assert_eq!(noted.len(), 1, "{events:?}");
    assert_eq!(noted[0].1.get("req"), Some("app-7f3a"));
    assert_eq!(noted[0].1.get("text"), Some("阀门已关，等配件"));
}

/// The access trail: each reply that shows a supervisor residents' phone
/// numbers (a read's, or the case a DISPATCH returns) is a line in the
/// server's log naming them and the cases; the operator who took the call
/// (and wrote the number down) and the worker (who sees it masked) leave
/// none, nor does a reply that shows no number.
#[tokio::test(flavor = "multi_thread")]
async fn phone_numbers_shown_to_supervisors_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = Server::start(&data, &[]);
    let mut op = srv.client("operator").await;
    let f = accept(&mut op, "").await;
    let (no, w) = (f.get("no").unwrap().to_string(), f.get("worker").unwrap().to_string());
    let shown = || {
        let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
        log.lines().filter(|l| l.contains("phone numbers shown")).map(strip_ansi).collect::<Vec<_>>()
    };
    ok(op.call(&format!("GET case={no}")).await.unwrap());
    ok(srv.worker(&w).await.call("PULL").await.unwrap());
    let mut sup = srv.client("supervisor").await;
    let (_, items) = ok(sup.call("PULL").await.unwrap());
    assert_eq!(items[0].1.get("phone"), Some("13812345678"));
    ok(sup.call(&format!("GET case={no}")).await.unwrap());
    // A reply that shows no number (nothing is overdue) leaves no line; the
    // case a supervisor's DISPATCH returns does.
    ok(sup.call("OVERDUE").await.unwrap());
    ok(sup.call(&format!("DISPATCH case={no} worker={w}")).await.unwrap());
    // Written by the engine's audit thread as the replies leave, in order:
    // once the supervisor's three are there, any of the others' would be too.
    let t0 = std::time::Instant::now();
    while shown().len() < 3 && t0.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let lines = shown();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for (line, verb) in lines.iter().zip(["PULL", "GET", "DISPATCH"]) {
        assert!(line.contains("gridline::access"), "{line}");
        assert!(line.contains("who=supervisor:"), "{line}");
        assert!(line.contains(&format!("verb={verb} ")), "{line}");
        assert!(line.contains(&format!("cases={no}")), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_role_is_refused_what_it_may_not_do() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let mut anon = Client::connect(&srv.addr).await.unwrap();
    assert!(ok(anon.call("PING").await.unwrap()).0.get("pong").is_some());
    assert_eq!(anon.call("PULL").await.unwrap().err_code(), Some("unauthenticated"));
    assert_eq!(anon.call("AUTH token=wrong-token-000000").await.unwrap().err_code(), Some("unauthenticated"));

    let mut op = srv.client("operator").await;
    let no = accept(&mut op, "").await.get("no").unwrap().to_string();
    let mut sup = srv.client("supervisor").await;
    // operators take calls; they do not close, dispatch, audit or issue tokens
    for line in [
        format!("CLOSE case={no} result=x"),
        format!("DISPATCH case={no} worker=W00001"),
        "AUDIT".into(),
        "TOKEN role=worker worker=W00001".into(),
    ] {
        assert_eq!(op.call(&line).await.unwrap().err_code(), Some("forbidden"), "{line}");
    }
    // supervisors do not accept cases or issue tokens
    assert_eq!(sup.call("ACCEPT text=x grid=JDZ").await.unwrap().err_code(), Some("forbidden"));
    assert_eq!(sup.call("TOKEN role=worker worker=W00001").await.unwrap().err_code(), Some("forbidden"));
    // a worker sees and acts on its own cases only
    let (g, _) = ok(sup.call(&format!("GET case={no}")).await.unwrap());
    let owner = g.get("worker").unwrap().to_string();
    let stranger =
        gridline_registry::embedded::jidong().workers.iter().find(|w| w.id != owner).unwrap().id.clone();
    let mut other = srv.worker(&stranger).await;
    for line in [format!("GET case={no}"), format!("CLAIM case={no}"), format!("PULL worker={owner}")] {
        assert_eq!(other.call(&line).await.unwrap().err_code(), Some("forbidden"), "{line}");
    }
    assert_eq!(
        other.call(&format!("ACCEPT text=x grid={}", some_grid(0).0)).await.unwrap().err_code(),
        Some("forbidden")
    );
    // supervisors may reassign by hand
    let (d, _) = ok(sup.call(&format!("DISPATCH case={no} worker={stranger}")).await.unwrap());
    assert_eq!(d.get("worker"), Some(stranger.as_str()));
    assert_eq!(d.get("status"), Some("dispatched"));
    ok(other.call(&format!("CLAIM case={no}")).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_reports_the_servers_own_ack_latency() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let mut op = srv.client("operator").await;
    let mut sup = srv.client("supervisor").await;
    for _ in 0..5 {
        accept(&mut op, "").await;
    }
    // a refused write is acknowledged too; reads are not counted
    assert_eq!(op.call("CLAIM case=JD-20000101-000001").await.unwrap().err_code(), Some("forbidden"));
    ok(sup.call("AUDIT").await.unwrap());
    let (f, _) = ok(sup.call("STATS").await.unwrap());
    assert_eq!(f.get("acks"), Some("6"));
    let ms = |k: &str| -> f64 {
        let v = f.get(k).unwrap_or_else(|| panic!("STATS lacks {k}: {f:?}"));
        v.parse().unwrap_or_else(|e| panic!("{k}={v}: {e}"))
    };
    // The figures are there, in milliseconds; how large they are is for
    // the benches (benches/e2e.rs), not a test.
    for k in ["p50_ms", "p99_ms", "p999_ms", "max_ms"] {
        assert!(ms(k).is_finite() && ms(k) >= 0.0, "{k}: {f:?}");
    }
    assert!(f.get("since").is_some());
    // the commits behind them: five accepts wrote, the refusal did not
    let commits: u64 = f.get("commits").unwrap().parse().unwrap();
    assert!((1..=5).contains(&commits), "{f:?}");
    // an accepted case writes its record and its events
    assert!(ms("commit_ops_p50") >= 2.0 && ms("commit_ops_p50") <= ms("commit_ops_max"), "{f:?}");
    for phase in ["write", "sync"] {
        for k in ["p50_ms", "p99_ms", "max_ms"] {
            let k = format!("{phase}_{k}");
            assert!(ms(&k).is_finite() && ms(&k) >= 0.0, "{k}: {f:?}");
        }
    }

    assert_eq!(op.call("STATS").await.unwrap().err_code(), Some("forbidden"));
    assert_eq!(sup.call("STATS reset=maybe").await.unwrap().err_code(), Some("bad_request"));
    // a reset reports, then zeroes
    assert_eq!(ok(sup.call("STATS reset=yes").await.unwrap()).0.get("acks"), Some("6"));
    let (f, _) = ok(sup.call("STATS").await.unwrap());
    assert_eq!((f.get("acks"), f.get("max_ms")), (Some("0"), Some("0.000")));
    assert_eq!(
        (f.get("commits"), f.get("write_max_ms"), f.get("sync_max_ms")),
        (Some("0"), Some("0.000"), Some("0.000"))
    );
}

/// A worker pipelining long notes on one case (one stored run of events,
/// too large for one value) once made every other write in the same group
/// commit fail with `unavailable`. Now every request succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn long_notes_on_one_case_do_not_fail_other_clients_writes() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let mut op = srv.client("operator").await;
    let (grid, _, _) = some_grid(3);
    let (f, _) = ok(op.call(&format!("ACCEPT text=路灯坏了 grid={grid} req=notes-0")).await.unwrap());
    let (no, worker) = (f.get("no").unwrap().to_string(), f.get("worker").unwrap().to_string());
    let mut w = srv.worker(&worker).await;
    ok(w.call(&format!("CLAIM case={no}")).await.unwrap());
    let note = "y".repeat(4000); // the longest text the protocol takes
    for _ in 0..40 {
        w.send(&format!("NOTE case={no} text={note}")).await.unwrap();
    }
    for i in 1..=200 {
        op.send(&format!("ACCEPT text=水管漏水 grid={grid} req=notes-{i}")).await.unwrap();
    }
    w.flush().await.unwrap();
    op.flush().await.unwrap();
    for _ in 0..200 {
        ok(op.read_reply().await.unwrap());
    }
    for _ in 0..40 {
        ok(w.read_reply().await.unwrap());
    }
    let (f, events) = ok(op.call(&format!("GET case={no}")).await.unwrap());
    assert_eq!(f.get("count"), Some("43"), "accepted, dispatched, claimed and 40 notes");
    assert_eq!(events.len(), 43);
}

// Tokens: unique names (they decide who sees unmasked phones) and a private file.

/// An operator token issued without `name=` used to be named `operator`,
/// like the first operator's, and saw that operator's callers' phones.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_operator_does_not_see_the_first_operators_phones() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let mut op = srv.client("operator").await;
    let (grid, _, _) = some_grid(4);
    let (f, _) = ok(op.call(&format!("ACCEPT text=路灯坏了 grid={grid} phone=13812345678")).await.unwrap());
    let no = f.get("no").unwrap().to_string();
    let (g, _) = ok(op.call(&format!("GET case={no}")).await.unwrap());
    assert_eq!(g.get("phone"), Some("13812345678"), "the operator who took the call");
    let mut admin = srv.client("admin").await;
    let (t, _) = ok(admin.call("TOKEN role=operator").await.unwrap());
    assert_eq!(t.get("name"), Some("operator-2"));
    let (t3, _) = ok(admin.call("TOKEN role=operator").await.unwrap());
    assert_eq!(t3.get("name"), Some("operator-3"));
    let mut op2 = Client::connect_auth(&srv.addr, t.get("secret").unwrap()).await.unwrap();
    let (g, _) = ok(op2.call(&format!("GET case={no}")).await.unwrap());
    assert_eq!(g.get("phone"), Some("138****5678"), "another operator (name={:?})", t.get("name"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_token_name_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let mut admin = srv.client("admin").await;
    ok(admin.call("TOKEN role=operator name=op-7").await.unwrap());
    for line in [
        "TOKEN role=operator name=op-7",
        "TOKEN role=supervisor name=op-7",
        "TOKEN role=operator name=operator",
        // In the log these would read as `op-7` and `admin` (helper-62).
        "TOKEN role=operator name=OP-7",
        "TOKEN role=operator name=ADMIN",
        "TOKEN role=operator name=op\u{200b}-7",
        "TOKEN role=operator name=\u{202e}7-po",
    ] {
        match admin.call(line).await.unwrap() {
            Reply::Err { code, message } => {
                assert_eq!(code, "bad_request", "{line}: {message}");
                assert!(message.starts_with("name: "), "{line}: {message}");
            }
            r => panic!("{line}: a duplicate name was accepted: {r:?}"),
        }
    }
    // Workers default to their id, then a fresh name for another token.
    let (w1, _) = ok(admin.call("TOKEN role=worker worker=W00001").await.unwrap());
    let (w2, _) = ok(admin.call("TOKEN role=worker worker=W00001").await.unwrap());
    assert_eq!((w1.get("name"), w2.get("name")), (Some("W00001"), Some("W00001-2")));
    // Only the tokens that were issued are in the file.
    let text = std::fs::read_to_string(srv.data.join("tokens.toml")).unwrap();
    assert_eq!(text.matches("[[token]]").count(), 3 + 3);
    // A name is one line of text, 1 to 64 characters.
    let long = "名".repeat(65);
    for bad in ["name=\"op\\n[[token]]\"", "name=\"  \"", "name=\"a\\tb\"", &format!("name={long}")] {
        let r = admin.call(&format!("TOKEN role=operator {bad}")).await.unwrap();
        assert_eq!(r.err_code(), Some("bad_request"), "{bad}: {r:?}");
    }
}

/// REVOKE withdraws a token: it no longer authenticates, a connection that
/// used it is logged out at its next request, the revocation survives a
/// restart, and its name is never given to another token.
#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_no_longer_works_even_on_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start(&dir.path().join("data"), &[]);
    let mut admin = srv.client("admin").await;
    let (t, _) = ok(admin.call("TOKEN role=operator name=seat-9").await.unwrap());
    let secret = t.get("secret").unwrap().to_string();
    let mut seat = Client::connect_auth(&srv.addr, &secret).await.unwrap();
    let (grid, _, _) = some_grid(3);
    ok(seat.call(&format!("ROUTE text=路灯坏了 grid={grid}")).await.unwrap());
    let mut op = srv.client("operator").await;
    let forbidden = op.call("REVOKE name=seat-9").await.unwrap();
    assert_eq!(forbidden.err_code(), Some("forbidden"), "{forbidden:?}");
    let (r, _) = ok(admin.call("REVOKE name=seat-9").await.unwrap());
    assert_eq!(r.get("name"), Some("seat-9"));
    assert!(r.get("revoked").is_some());
    // The file no longer holds the withdrawn secret: a build that predates
    // `revoked` (and ignores it) cannot take it again either.
    let file = std::fs::read_to_string(srv.data.join("tokens.toml")).unwrap();
    assert!(file.contains("name = \"seat-9\"") && !file.contains(&secret), "{file}");
    // The open connection: logged out at its next request, then like any
    // unauthenticated one.
    let r = seat.call(&format!("ACCEPT text=路灯坏了 grid={grid}")).await.unwrap();
    match &r {
        Reply::Err { code, message } => {
            assert_eq!(code, "unauthenticated", "{message}");
            assert!(message.contains("seat-9") && message.contains("revoked"), "{message}");
        }
        r => panic!("a revoked token still works: {r:?}"),
    }
    assert_eq!(seat.call("GET case=JD-1").await.unwrap().err_code(), Some("unauthenticated"));
    assert_eq!(seat.call(&format!("AUTH token={secret}")).await.unwrap().err_code(), Some("unauthenticated"));
    // Others are untouched; the name stays taken; a second REVOKE, an
    // unknown name and an admin token are refused.
    ok(op.call("PING").await.unwrap());
    ok(op.call(&format!("ROUTE text=路灯坏了 grid={grid}")).await.unwrap());
    for (line, code) in [
        ("TOKEN role=operator name=seat-9", "bad_request"),
        ("REVOKE name=seat-9", "conflict"),
        ("REVOKE name=nobody", "not_found"),
        ("REVOKE name=admin", "forbidden"),
    ] {
        assert_eq!(admin.call(line).await.unwrap().err_code(), Some(code), "{line}");
    }
    // After a restart, still revoked.
    srv.terminate();
    let srv = Server::start(&srv.data, &[]);
    assert!(Client::connect_auth(&srv.addr, &secret).await.is_err(), "a revoked token after restart");
    ok(srv.client("operator").await.call("PING").await.unwrap());
}

/// Pipelined TOKEN and REVOKE of one name are done in the order they were
/// sent: the REVOKE finds the token the TOKEN before it issued.
#[tokio::test(flavor = "multi_thread")]
async fn a_pipelined_revoke_follows_the_token_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let mut admin = srv.client("admin").await;
    let n = 40;
    for i in 0..n {
        admin.send(&format!("TOKEN role=operator name=seat-{i}")).await.unwrap();
        admin.send(&format!("REVOKE name=seat-{i}")).await.unwrap();
    }
    admin.flush().await.unwrap();
    for i in 0..n {
        let t = admin.read_reply().await.unwrap();
        assert!(t.is_ok(), "TOKEN seat-{i}: {t:?}");
        let r = admin.read_reply().await.unwrap();
        assert!(r.is_ok(), "REVOKE seat-{i} after its TOKEN: {r:?}");
    }
}

#[cfg(unix)]
#[test]
fn the_token_file_is_made_private_on_load() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = Server::start(&data, &[]);
    let tokens = data.join("tokens.toml");
    assert_eq!(std::fs::metadata(&tokens).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(srv.terminate().success());
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).unwrap();
    let srv = Server::start(&data, &[]);
    assert_eq!(std::fs::metadata(&tokens).unwrap().permissions().mode() & 0o777, 0o600);
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(log.contains("not private"), "no warning in the log:\n{log}");
    drop(srv);
}

/// Huge pages are forbidden while the log is recovered and allowed again
/// once the server serves (see `main`).
#[cfg(target_os = "linux")]
#[test]
fn the_server_allows_transparent_huge_pages_again_once_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", srv.pid())).unwrap();
    let thp = status.lines().find_map(|l| l.strip_prefix("THP_enabled:")).map(str::trim);
    // The field exists since Linux 5.0.
    assert_eq!(thp, Some("1"), "{status}");
}

/// Every verb with every role: who is refused with `forbidden` and who is
/// not (whatever else the request then gets: `conflict` for a step the case
/// is not at, say). `own` is the case's worker, `other` another worker.
/// `HELP` lists the same roles for each verb (a worker's are its own cases).
#[tokio::test(flavor = "multi_thread")]
async fn every_verb_with_every_role() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let mut op = srv.client("operator").await;
    let f = accept(&mut op, "").await;
    let (no, id, owner) = (
        f.get("no").unwrap().to_string(),
        f.get("case").unwrap().to_string(),
        f.get("worker").unwrap().to_string(),
    );
    let stranger =
        gridline_registry::embedded::jidong().workers.iter().find(|w| w.id != owner).unwrap().id.clone();
    let (grid, _, _) = some_grid(3);
    let mut clients = [
        ("operator", op),
        ("supervisor", srv.client("supervisor").await),
        ("admin", srv.client("admin").await),
        ("own", srv.worker(&owner).await),
        ("other", srv.worker(&stranger).await),
    ];
    // (request, the roles that may use it); by number and by id alike.
    let mut table: Vec<(String, &[&str])> = vec![
        (format!("ROUTE text=路灯坏了 grid={grid}"), &["operator", "supervisor", "admin"]),
        (format!("ACCEPT text=路灯坏了 grid={grid}"), &["operator"]),
        (format!("PULL worker={owner}"), &["supervisor", "admin", "own"]),
        (format!("OVERDUE grid={grid}"), &["supervisor", "admin"]),
        ("AUDIT by=grid".into(), &["supervisor", "admin"]),
        ("STATS".into(), &["supervisor", "admin"]),
        ("TOKEN role=operator".into(), &["admin"]),
        // Not a token's name: not_found for an admin, forbidden for the rest.
        ("REVOKE name=nobody-at-all".into(), &["admin"]),
        (format!("FEEDBACK case={no} satisfied=yes"), &["operator"]),
        (format!("EXTEND case={no} approve=no"), &["supervisor", "admin"]),
        (format!("DISPATCH case={no} worker={owner}"), &["supervisor", "admin"]),
    ];
    // A month ahead: past the close deadline, within the year an extension may reach.
    let until =
        gridline_model::Timestamp::now().plus(gridline_model::DurationMs(30 * 86_400_000)).rfc3339(480);
    for case in [&no, &id] {
        table.push((format!("GET case={case}"), &["operator", "supervisor", "admin", "own"]));
        // The worker's own steps, in an order the case can take them.
        table.push((format!("CLAIM case={case}"), &["own"]));
        table.push((format!("NOTE case={case} text=到了"), &["own"]));
        table.push((format!("EXTEND case={case} until={until} reason=等配件"), &["own"]));
    }
    table.push((format!("CLOSE case={id} result=修好了"), &["own"]));
    // Closed: the owner is refused by the case's state (conflict), the others as not theirs.
    table.push((format!("RETURN case={no} reason=不是我的"), &["own"]));
    for (line, allowed) in &table {
        for (role, c) in clients.iter_mut() {
            let r = c.call(line).await.unwrap();
            let forbidden = r.err_code() == Some("forbidden");
            assert_eq!(forbidden, !allowed.contains(role), "{role}: {line} -> {r:?}");
        }
    }
    let (_, help) = ok(clients[0].1.call("HELP").await.unwrap());
    for (line, allowed) in &table {
        let verb = line.split(' ').next().unwrap();
        // EXTEND's two forms: the worker's asks (until=), the supervisor's decides (approve=).
        let form = ["approve=", "until="].into_iter().find(|f| line.contains(f)).unwrap_or("");
        let row = help
            .iter()
            .map(|(_, r)| r)
            .find(|r| r.get("verb") == Some(verb) && r.get("usage").unwrap().contains(form))
            .unwrap_or_else(|| panic!("no HELP row for {line}"));
        let mut listed: Vec<&str> = row.get("roles").unwrap().split(',').collect();
        let mut want: Vec<&str> = allowed.iter().map(|&r| if r == "own" { "worker" } else { r }).collect();
        listed.sort_unstable();
        want.sort_unstable();
        assert_eq!(listed, want, "HELP's roles for {line}");
    }
}

/// A returned case is routed again with the category it was accepted
/// under; the new dispatch's reason says where that category came from,
/// not "given by the operator" when routing inferred it from the text.
#[tokio::test(flavor = "multi_thread")]
async fn a_returned_case_keeps_its_categorys_true_source_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let mut op = srv.client("operator").await;
    for (extra, given) in [("", false), ("category=street_lighting", true)] {
        let f = accept(&mut op, extra).await;
        let (no, first) = (f.get("no").unwrap().to_string(), f.get("worker").unwrap().to_string());
        let mut w1 = srv.worker(&first).await;
        ok(w1.call(&format!("RETURN case={no} reason=\"不是本网格的\"")).await.unwrap());
        let (_, events) = ok(op.call(&format!("GET case={no}")).await.unwrap());
        let reasons: Vec<&str> = events
            .iter()
            .filter(|(_, e)| matches!(e.get("kind"), Some("dispatched" | "waiting")))
            .map(|(_, e)| e.get("reason").unwrap())
            .collect();
        assert_eq!(reasons.len(), 2, "{events:?}");
        let says_given = |r: &str| r.contains("street_lighting") && r.contains("given by the operator");
        assert_eq!(says_given(reasons[0]), given, "at intake: {}", reasons[0]);
        assert_eq!(says_given(reasons[1]), given, "after the return: {}", reasons[1]);
        if !given {
            assert!(reasons[0].contains("inferred from the keywords"), "{}", reasons[0]);
            assert!(reasons[1].contains("kept from the case's intake"), "{}", reasons[1]);
        }
    }
}

/// The items of a list reply (`PULL`, `OVERDUE`) page by page, each with
/// `limit=2`, following `next=` until a page has none: the case numbers of
/// every page, in order.
async fn pages(c: &mut Client, verb: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let (f, items) = ok(c.call(&format!("{verb} limit=2{after}")).await.unwrap());
        assert_eq!(f.get("count"), Some(items.len().to_string().as_str()), "{verb}{after}");
        assert!(items.iter().all(|(k, _)| k == "CASE"), "{verb}{after}: {items:?}");
        out.push(items.iter().map(|(_, i)| i.get("no").unwrap().to_string()).collect());
        assert!(out.len() <= 10, "{verb}: paging does not end: {out:?}");
        match f.get("next") {
            Some(next) => after = format!(" after={next}"),
            None => return out,
        }
    }
}

/// docs/protocol.md, Paging: a list reply has `next=` only when more items
/// follow; `after=` that cursor gives the next page; an `after=` that is
/// not a cursor gets `bad_request`. Over the wire, for PULL and OVERDUE.
/// (Cases become overdue within the test: a county whose water cases must
/// be claimed within a second.)
#[tokio::test(flavor = "multi_thread")]
async fn pull_and_overdue_page_with_next_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let config = jidong_config_edited(
        &dir.path().join("config"),
        "[[category]]\ncode = \"water\"",
        "claim = { normal = \"1h\", urgent = \"30m\", emergency = \"10m\" }",
        "claim = { normal = \"1s\", urgent = \"1s\", emergency = \"1s\" }",
    );
    let srv = Server::start(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);
    let mut op = srv.client("operator").await;
    let mut sup = srv.client("supervisor").await;
    let (grid, _, _) = some_grid(3);
    let mut nos = Vec::new();
    let mut worker = None;
    for i in 0..5 {
        let (f, _) =
            ok(op.call(&format!("ACCEPT text=\"水管爆了{i}\" category=water grid={grid}")).await.unwrap());
        assert_eq!(f.get("category"), Some("water"), "{f:?}");
        let no = f.get("no").unwrap().to_string();
        // All five with one worker: the first case's.
        let w = worker.get_or_insert_with(|| f.get("worker").unwrap().to_string()).clone();
        if f.get("worker") != Some(w.as_str()) {
            ok(sup.call(&format!("DISPATCH case={no} worker={w}")).await.unwrap());
        }
        nos.push(no);
    }
    let worker = worker.unwrap();
    let mut all = nos.clone();
    all.sort();

    // PULL: pages of 2, 2 and 1, the last without next=, every case once.
    let got = pages(&mut sup, &format!("PULL worker={worker}")).await;
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1], "{got:?}");
    let mut seen: Vec<String> = got.concat();
    seen.sort();
    assert_eq!(seen, all, "PULL pages");
    // The worker's own PULL pages the same way.
    let mut w = srv.worker(&worker).await;
    assert_eq!(pages(&mut w, "PULL").await.concat().len(), 5);

    // OVERDUE, once all five missed their claim deadline of a second
    // (polled; the bound is a hang guard).
    let t0 = std::time::Instant::now();
    loop {
        let (f, _) = ok(sup.call("OVERDUE").await.unwrap());
        if f.get("count") == Some("5") {
            break;
        }
        assert!(t0.elapsed() < std::time::Duration::from_secs(60), "never overdue: {f:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let got = pages(&mut sup, "OVERDUE").await;
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1], "{got:?}");
    let mut seen: Vec<String> = got.concat();
    seen.sort();
    assert_eq!(seen, all, "OVERDUE pages");

    // A cursor the server did not make.
    for line in [format!("PULL worker={worker} after=x"), "OVERDUE after=x".to_string()] {
        match sup.call(&line).await.unwrap() {
            Reply::Err { code, message } => {
                assert_eq!(code, "bad_request", "{line}");
                assert_eq!(message, "after: `x` is not a cursor from a previous reply's next=", "{line}");
            }
            r => panic!("{line}: {r:?}"),
        }
    }
    // The connection goes on.
    assert!(sup.call("PING").await.unwrap().is_ok());
}

/// docs/protocol.md, Limits: a case holds at most 1,000 events
/// (`EngineConfig::case_events_max`; `serve` has no flag for it). Past
/// that `NOTE` gets `ERR conflict "case ... already has 1000 events; no
/// more notes ..."`, and lifecycle steps still work.
#[tokio::test(flavor = "multi_thread")]
async fn a_case_at_its_event_limit_takes_no_more_notes_but_still_closes() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let mut op = srv.client("operator").await;
    let mut sup = srv.client("supervisor").await;
    let (grid, _, _) = some_grid(7);
    let (f, _) = ok(op.call(&format!("ACCEPT text=路灯坏了 grid={grid}")).await.unwrap());
    let (no, worker) = (f.get("no").unwrap().to_string(), f.get("worker").unwrap().to_string());
    let mut w = srv.worker(&worker).await;
    ok(w.call(&format!("CLAIM case={no}")).await.unwrap());
    let (g, _) = ok(sup.call(&format!("GET case={no}")).await.unwrap());
    let held: usize = g.get("count").unwrap().parse().unwrap();
    let room = 1000 - held;
    // Notes up to the limit, and two more.
    for i in 0..room + 2 {
        w.send(&format!("NOTE case={no} text=第{i}次")).await.unwrap();
    }
    w.flush().await.unwrap();
    for i in 0..room {
        ok(w.read_reply().await.unwrap_or_else(|e| panic!("note {i}: {e}")));
    }
    for _ in 0..2 {
        match w.read_reply().await.unwrap() {
            Reply::Err { code, message } => {
                assert_eq!(code, "conflict");
                assert!(
                    message.starts_with(&format!("case {no} already has 1000 events; no more notes")),
                    "{message}"
                );
            }
            r => panic!("a note past the limit: {r:?}"),
        }
    }
    // Lifecycle steps still work: close, then a return visit that reopens it.
    let (f, _) = ok(w.call(&format!("CLOSE case={no} result=已修复")).await.unwrap());
    assert_eq!(f.get("status"), Some("closed"));
    let (f, _) = ok(op.call(&format!("FEEDBACK case={no} satisfied=no")).await.unwrap());
    assert_eq!(f.get("reopens"), Some("1"), "{f:?}");
    let (g, events) = ok(sup.call(&format!("GET case={no}")).await.unwrap());
    assert!(events.len() > 1001, "{}", events.len());
    assert_eq!(g.get("count"), Some(events.len().to_string().as_str()));
}
