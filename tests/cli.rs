//! The command line: registry stats and checks, route, verify, audit.

mod common;

use common::*;

#[test]
fn registry_stats_json_has_the_contract_counts() {
    let (code, out, err) = run(&["registry", "stats", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["grids"]["total"], 626);
    assert_eq!(v["grids"]["urban"], 115);
    assert_eq!(v["grids"]["rural"], 503);
    assert_eq!(v["grids"]["dedicated"], 8);
    assert_eq!(v["workers"]["total"], 2491);
    assert_eq!(v["workers"]["full_time"], 633);
    assert_eq!(v["workers"]["part_time"], 1508);
    assert_eq!(v["workers"]["department"], 350);
    assert_eq!(v["departments"], 10);
    assert!(v["townships"].as_u64().unwrap() > 0);
}

#[test]
fn registry_check_names_the_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/jidong");
    for f in ["county.toml", "workers.csv", "grids.geojson"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let (code, out, _) = run(&["registry", "check", "--config", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    // A worker in a grid that does not exist.
    let csv = std::fs::read_to_string(dir.path().join("workers.csv")).unwrap();
    let mut lines: Vec<String> = csv.lines().map(str::to_string).collect();
    let first_grid = lines[1].split(',').nth(3).unwrap().to_string();
    lines[1] = lines[1].replacen(&format!(",{first_grid},"), ",NO-SUCH-GRID,", 1);
    std::fs::write(dir.path().join("workers.csv"), lines.join("\n") + "\n").unwrap();
    let (code, _, err) = run(&["registry", "check", "--config", dir.path().to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("workers.csv:2:") && err.contains("grid") && err.contains("NO-SUCH-GRID"), "{err}");
}

#[test]
fn route_explains_its_decision() {
    let (grid, lon, lat) = some_grid(10);
    let (code, out, err) = run(&[
        "route",
        "--lon",
        &lon.to_string(),
        "--lat",
        &lat.to_string(),
        "--text",
        "我家楼下水管爆了，一直在漏水",
        "--at",
        "2026-11-24T10:00",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("category  water"), "{out}");
    // The point lies inside `grid`: routed there, and the why says so.
    let routed = out.lines().find_map(|l| l.strip_prefix("grid ")).map(|l| l.split_whitespace().next());
    assert_eq!(routed, Some(Some(grid.as_str())), "{out}");
    assert!(out.contains("why:"), "{out}");
    assert!(out.contains("point lies in grid") && out.contains(&format!("[{grid}]")), "{out}");
    let (code, out, _) = run(&["route", "--lon", "100", "--lat", "20", "--text", "x"]);
    assert_eq!(code, 0);
    assert!(out.contains("command-centre") || out.contains("waits at"), "{out}");
}

/// `route --json`: the decision's fields, the category's source spelt as
/// the protocol's ROUTE reply spells it.
#[test]
fn route_json_gives_the_decision() {
    let (code, out, err) = run(&[
        "route",
        "--grid",
        "JDZ-NH-01",
        "--text",
        "楼道灯不亮了",
        "--at",
        "2026-11-24T10:00",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["category"], "housing", "{out}");
    assert_eq!(d["category_source"], "inferred", "{out}");
    assert_eq!(d["keywords"], serde_json::json!(["楼道灯"]), "{out}");
    assert_eq!((&d["grid"], &d["department"]), (&"JDZ-NH-01".into(), &"housing".into()), "{out}");
    assert!(d["steps"].as_array().is_some_and(|s| !s.is_empty()), "{out}");
}

#[test]
fn serve_refuses_zero_limits_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for flag in [
        "--inflight-max",
        "--connections-max",
        "--connections-per-token-max",
        "--queue-max",
        "--batch-max",
        "--line-bytes-max",
    ] {
        let (code, _, err) = run_within(
            REFUSAL_LIMIT,
            &["serve", "--listen", "127.0.0.1:0", "--data", data.to_str().unwrap(), flag, "0"],
        );
        assert_eq!(code, 2, "{flag} 0: {err}");
        assert!(err.contains(flag) && err.contains("not in"), "{flag} 0: {err}");
    }
    assert!(!data.exists(), "a refused serve created its data directory");
}

/// Runs `serve` on `data`, which must refuse to start (within
/// `REFUSAL_LIMIT`); what it said on stderr.
fn serve_refuses(data: &std::path::Path) -> String {
    let (code, _, err) =
        run_within(REFUSAL_LIMIT, &["serve", "--listen", "127.0.0.1:0", "--data", data.to_str().unwrap()]);
    assert_ne!(code, 0, "serve started: {err}");
    err
}

#[test]
fn serve_with_a_data_path_that_is_a_file_says_it_is_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("afile");
    std::fs::write(&data, "not a directory").unwrap();
    let err = serve_refuses(&data);
    assert!(err.contains("afile: not a directory") && !err.contains("File exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "not a directory", "the file is left alone");
}

/// A hand-edited tokens.toml naming a worker the registry does not know
/// stops the start, naming the file, the token and the worker.
#[test]
fn serve_refuses_a_worker_token_for_a_worker_the_registry_does_not_know() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let tokens = data.join("tokens.toml");
    std::fs::write(
        &tokens,
        "[[token]]\nrole = \"admin\"\nname = \"admin\"\nsecret = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n\n\
         [[token]]\nrole = \"worker\"\nname = \"ghost\"\nworker = \"W99999\"\nsecret = \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"\n",
    )
    .unwrap();
    let err = serve_refuses(&data);
    assert!(
        err.contains("tokens.toml")
            && err.contains("line 6, token 2")
            && err.contains("W99999")
            && err.contains("registry"),
        "{err}"
    );
    assert!(!data.join("log").exists(), "refused before the case log was opened");
}

/// An empty tokens.toml (an editor's slip) would start a server nobody can
/// AUTH to: the start stops, naming the file, and leaves it as it was.
#[test]
fn serve_refuses_an_empty_tokens_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let tokens = data.join("tokens.toml");
    std::fs::write(&tokens, "").unwrap();
    let err = serve_refuses(&data);
    assert!(err.contains("tokens.toml") && err.contains("nobody could AUTH"), "{err}");
    assert_eq!(std::fs::read_to_string(&tokens).unwrap(), "");
    assert!(!data.join("log").exists(), "refused before the case log was opened");
}

/// `--data .` or `--data /tmp` by a slip: a directory holding other files
/// and nothing of Gridline's is refused, and left as it was (not made 0700).
#[test]
fn serve_refuses_a_directory_of_other_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("someone-elses-file"), "hi").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let err = serve_refuses(&shared);
    assert!(err.contains("not a Gridline data directory") && err.contains("someone-elses-file"), "{err}");
    let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o1777, "left as it was");
    assert!(!shared.join("log").exists() && !shared.join("tokens.toml").exists());
}

#[test]
fn a_data_directory_in_use_by_a_server_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = Server::start(&data, &[]);
    let (code, out, err) = run(&["verify", "--data", data.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("locked by another process"), "{err}");
    drop(srv);
    let (code, out, err) = run(&["verify", "--data", data.to_str().unwrap()]);
    assert_eq!(code, 0, "once the server stopped: {out}{err}");
}

/// Every file under `dir`, with its bytes.
fn snapshot(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_and_audit_leave_the_data_directory_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Killed: the write-ahead log holds records sled has not made durable.
    accept_one_by_one_then_kill(&data, 20, "只读").await;
    let before = snapshot(&data);
    let d = data.to_str().unwrap();
    for args in [&["verify", "--data", d][..], &["audit", "--data", d, "--csv"][..]] {
        let (code, out, err) = run(args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        assert!(out.contains("20 cases") || out.contains(",20,"), "{args:?}: {out}");
        let after = snapshot(&data);
        let changed: Vec<_> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert!(changed.is_empty(), "{args:?} changed the data directory: {changed:?}");
    }
}

#[test]
fn output_into_a_closed_pipe_is_not_a_panic() {
    // `gridline registry stats | head -0`: the reader is gone before the first line.
    let mut child = std::process::Command::new(bin())
        .args(["registry", "stats"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

/// `gridline simulate` against `srv` with its own tokens.toml and `extra`
/// flags: (exit code, stdout, stderr).
fn simulate(srv: &Server, extra: &[&str]) -> (i32, String, String) {
    let tokens = srv.data.join("tokens.toml");
    let args = [&["simulate", "--addr", &srv.addr, "--tokens", tokens.to_str().unwrap()][..], extra].concat();
    run(&args)
}

/// `simulate` against the real server: every call accepted, the day's
/// steps played (dispatch by hand, returns, closings, return visits) and
/// the county's audit printed; exit 0.
#[test]
fn simulate_plays_a_day_against_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = Server::start(&data, &[]);
    let (code, out, err) = simulate(&srv, &["--cases", "300", "--connections", "4", "--seed", "3"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("simulated 300 calls: 300 accepted"), "{out}");
    assert!(out.contains("closings"), "{out}");
    assert!(out.contains("audit:") && out.contains("response_pct="), "{out}");
    assert!(!out.contains("errors:"), "{out}");
    // What the day wrote (its notes carry request ids: records and events
    // of log format 5) reads back whole.
    let mut srv = srv;
    assert!(srv.terminate().success());
    let (code, out, err) = run(&["verify", "--data", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("300 cases"), "{out}");
}

/// A full disk that also holds the server's log output (`serve 2>>log`)
/// fails every line it logs: the server goes on serving (and writes still
/// answer, or answer `unavailable`), rather than panicking on the first
/// warning about the very storage failure it should report to clients.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn serve_keeps_serving_when_its_log_output_cannot_be_written() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let mut child = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .stdout(std::process::Stdio::piped())
        .stderr(full)
        .spawn()
        .unwrap();
    // Kept open: the server prints another line after this one.
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = lines.by_ref().map_while(Result::ok).find_map(|l| {
        l.strip_prefix("gridline: serving ").and_then(|l| l.rsplit(" on ").next()).map(String::from)
    });
    let Some(addr) = addr else {
        let status = child.wait().unwrap();
        panic!("the server did not start: {status}");
    };
    let srv = Server { child: Some(child), addr, data };
    let mut op = srv.client("operator").await;
    let (grid, _, _) = some_grid(3);
    ok(op.call(&format!("ACCEPT text=\"日志写不出\" grid={grid}")).await.unwrap());
    drop(lines);
}

/// `serve | head -1`, a closed stdout or one on a full disk: the lines that
/// say where it serves cannot be written, and the server serves anyway.
#[tokio::test]
async fn serve_serves_when_its_stdout_cannot_be_written() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let mut child = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .stdout(full)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Its stdout says nothing here: the address is read from its log line
    // (`... serving addr=127.0.0.1:PORT data=...`), and the log read on
    // to the end so that the server never waits on a full pipe.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let line = strip_ansi(&line);
            if let Some(addr) = line.split(" serving addr=").nth(1).and_then(|l| l.split_whitespace().next())
            {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    // Killed when dropped, whatever happens below.
    let mut srv = Server { child: Some(child), addr: String::new(), data: data.clone() };
    srv.addr =
        rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the server never said where it serves");
    let mut op = gridline_client::Client::connect(&srv.addr).await.unwrap();
    ok(op.call(&format!("AUTH token={}", srv.token("operator"))).await.unwrap());
    let (grid, _, _) = some_grid(4);
    ok(op.call(&format!("ACCEPT text=\"标准输出写不出\" grid={grid}")).await.unwrap());
}

/// The audit reads the log's times in the registry's UTC offset and time
/// limits: a log of another county is refused, naming both.
#[tokio::test]
async fn audit_refuses_a_log_of_another_county() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    accept_one_by_one_then_kill(&data, 3, "别县").await;
    let other = jidong_config_with(&dir.path().join("other"), "code = \"JD\"", "code = \"XX\"");
    let d = data.to_str().unwrap();
    let (code, out, err) = run(&["audit", "--data", d, "--config", other.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("county `JD`") && err.contains("`XX`"), "{err}");
    let (code, out, err) = run(&["audit", "--data", d]);
    assert_eq!(code, 0, "{out}{err}");
}

/// `simulate` with another county's config (here: Jidong's with its water
/// category renamed) gives only categories that county has.
#[test]
fn simulate_plays_a_day_with_another_countys_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = jidong_config_with(
        &dir.path().join("config"),
        "code = \"water\"\nname = \"供水\"",
        "code = \"supply\"\nname = \"供水\"",
    );
    let data = dir.path().join("data");
    let config = config.to_str().unwrap();
    let srv = Server::start(&data, &["--config", config]);
    let tokens = data.join("tokens.toml");
    let args = ["--tokens", tokens.to_str().unwrap(), "--cases", "200", "--connections", "2", "--seed", "5"];
    let (code, out, err) =
        run(&[&["simulate", "--addr", &srv.addr, "--config", config][..], &args[..]].concat());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("simulated 200 calls: 200 accepted"), "{out}");
    assert!(!out.contains("errors:"), "{out}");
}

/// What the case log logs while `verify` reads its copy of the log names
/// the original's files: here the warning about a missing `wal.1` in a
/// log last written by a build with one file (no `m wal.1` in sled); and
/// so does its error once the log has both files.
#[tokio::test]
async fn verify_logs_name_the_data_directory_not_its_copy() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    accept_one_by_one_then_kill(&data, 3, "副本").await;
    let wal1 = data.join("log").join("wal.1");
    std::fs::remove_file(&wal1).unwrap();
    let (code, out, err) = run(&["verify", "--data", data.to_str().unwrap()]);
    assert_ne!(code, 0, "a missing wal.1 may have held acknowledged records: {out}{err}");
    let wal1 = wal1.display().to_string();
    assert!(err.contains(&wal1) && err.contains("no header"), "the error names {wal1}: {err}");
    assert!(!err.contains("gridline-offline-"), "{err}");
    {
        let db = sled::open(data.join("log")).unwrap();
        db.remove(gridline_caselog::store::TWO_FILES_KEY).unwrap().expect("the log has both files");
        db.flush().unwrap();
    }
    let (code, out, err) = run(&["verify", "--data", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains(&wal1) && err.contains("created anew"), "the warning names {wal1}: {err}");
    assert!(!err.contains("gridline-offline-"), "{err}");
}

/// `route` refuses a point off the globe, as `ROUTE` and `ACCEPT` do,
/// instead of explaining that it lies outside the county.
#[test]
fn route_refuses_a_longitude_or_latitude_out_of_range() {
    for (lon, lat, flag, range) in [("200", "45", "--lon", "-180..180"), ("131.1", "-95", "--lat", "-90..90")]
    {
        let (code, out, err) = run(&["route", "--lon", lon, "--lat", lat]);
        assert_ne!(code, 0, "{lon},{lat} was routed: {out}");
        assert!(err.contains(flag) && err.contains(range), "{lon},{lat}: {err}");
    }
    let (code, _, err) = run(&["route", "--lon", "-180", "--lat", "90"]);
    assert_eq!(code, 0, "the edges are in range: {err}");
    let (code, _, err) = run(&["route", "--lon", "1e308", "--lat", "45"]);
    assert_ne!(code, 0);
    assert!(err.contains("not 1e308"), "the value as written, not its 309 digits: {err}");
    // An empty location, as the protocol refuses it.
    for flag in ["--address", "--grid"] {
        let (code, out, err) = run(&["route", flag, " "]);
        assert_ne!(code, 0, "{flag} \" \" was routed: {out}");
        assert!(err.contains(&format!("{flag}: empty")), "{err}");
    }
}

/// A tokens.toml in `dir` with an admin, a supervisor and an operator token.
fn role_tokens_file(dir: &std::path::Path) -> std::path::PathBuf {
    let tokens = dir.join("tokens.toml");
    let mut toml = String::new();
    for role in ["admin", "supervisor", "operator"] {
        toml += &format!(
            "[[token]]\nrole = \"{role}\"\nname = \"{role}\"\nsecret = \"{role}-0123456789abcdef\"\n\n"
        );
    }
    std::fs::write(&tokens, toml).unwrap();
    tokens
}

/// `simulate` against an address nobody listens on names the address and
/// says what went wrong once.
#[test]
fn simulate_names_the_address_it_cannot_reach() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = role_tokens_file(dir.path());
    // Bound, so no one else takes the port, but not listening: refused.
    let (_held, addr) = address_nobody_listens_on();
    let (code, out, err) =
        run(&["simulate", "--addr", &addr, "--tokens", tokens.to_str().unwrap(), "--cases", "3"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&addr), "{err}");
    assert_eq!(err.matches("refused").count(), 1, "{err}");
}

/// A program on the port that accepts and never answers: `simulate` ends
/// after `--timeout` seconds with a message, not a hang.
#[test]
fn simulate_gives_up_on_a_server_that_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = role_tokens_file(dir.path());
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let args = ["simulate", "--addr", &addr, "--tokens", tokens.to_str().unwrap(), "--cases", "3"];
    let (code, out, err) =
        run_within(std::time::Duration::from_secs(60), &[&args[..], &["--timeout", "1"]].concat());
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("no reply in 1 s (--timeout): the server is not answering"), "{err}");
    drop(silent);
}

/// Starts `gridline` with arguments, its standard input a pipe (not a
/// terminal), its output captured.
fn spawn_piped(args: &[&str]) -> std::process::Child {
    std::process::Command::new(bin())
        .args(args)
        .env_remove("GRIDLINE_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// (exit code, stdout, stderr) of a finished run.
fn outcome(out: std::process::Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `gridline` with arguments and `input` on its standard input (not a
/// terminal); returns (exit code, stdout, stderr).
fn run_stdin(args: &[&str], input: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = spawn_piped(args);
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    outcome(out)
}

/// A secret in a hand-written tokens.toml may hold spaces and quotes:
/// `client --token` and `simulate` authenticate with it.
#[test]
fn client_and_simulate_authenticate_with_a_secret_holding_spaces_and_quotes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let tokens = data.join("tokens.toml");
    let secret = |role: &str| format!("the {role}'s \\\"pass phrase\\\" = long");
    let mut toml = String::new();
    for role in ["admin", "supervisor", "operator"] {
        toml +=
            &format!("[[token]]\nrole = \"{role}\"\nname = \"{role}\"\nsecret = \"{}\"\n\n", secret(role));
    }
    std::fs::write(&tokens, toml).unwrap();
    let srv = Server::start(&data, &[]);
    let op = srv.token("operator");
    assert!(op.contains(' ') && op.contains('"'), "{op}");
    let (code, out, err) = run_stdin(&["client", "--addr", &srv.addr, "--token", &op], "PING\n");
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = simulate(&srv, &["--cases", "20", "--connections", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("20 accepted"), "{out}");
}

/// A program on the port that accepts and never answers: `client` ends
/// after `--timeout` seconds with a message, not a hang.
#[test]
fn client_gives_up_on_a_server_that_does_not_answer() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let (code, out, err) = run_stdin(&["client", "--addr", &addr, "--timeout", "1"], "PING\n");
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("no reply in 1 s (--timeout)"), "{err}");
    drop(silent);
}

/// `client` prints a value holding a newline (a case's text, an error
/// message quoting what the request said) on one line, escaped: printed
/// as it is, it would start a line of its own, one that reads as a reply.
#[test]
fn client_prints_a_newline_in_a_value_escaped_not_as_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = Server::start(&data, &[]);
    let (grid, _, _) = some_grid(2);
    let input = format!("ACCEPT text=\"第一行\\nOK forged=yes\" grid={grid} req=nl\n");
    let (code, out, err) =
        run_stdin(&["client", "--addr", &srv.addr, "--token", &srv.token("operator")], &input);
    assert_eq!(code, 0, "{out}{err}");
    let no = out.lines().find_map(|l| l.trim().strip_prefix("no ")).unwrap().trim();
    let input = format!("GET case={no}\n");
    let (code, out, err) =
        run_stdin(&["client", "--addr", &srv.addr, "--token", &srv.token("supervisor")], &input);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("第一行\\nOK forged=yes"), "{out}");
    for l in out.lines() {
        assert!(l == "OK" || l.starts_with("  "), "a line the server did not send: {l:?}\n{out}");
    }
    let (code, out, err) = run_stdin(
        &["client", "--addr", &srv.addr, "--token", &srv.token("operator")],
        "ACCEPT text=x grid=\"nope\\nERR forged\"\n",
    );
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
}

/// A server that answers one request and then closes the connection (half
/// way: it still reads, so the close is an end of stream, not a reset).
fn one_reply_server() -> (String, std::thread::JoinHandle<()>) {
    use std::io::Read;
    answer_once_then(|s, mut r| {
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let _ = r.read_to_end(&mut Vec::new());
    })
}

/// A server that answers one request with `OK pong=yes`, then does `then`
/// with the connection and its reader.
fn answer_once_then(
    then: impl FnOnce(std::net::TcpStream, std::io::BufReader<std::net::TcpStream>) + Send + 'static,
) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let t = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut r = std::io::BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        (&s).write_all(b"OK pong=yes\n").unwrap();
        then(s, r);
    });
    (addr, t)
}

/// The server closing the connection while requests are left to send is a
/// failure: exit non-zero, saying which line was not answered; a QUIT the
/// server answers ends the session cleanly.
#[test]
fn client_fails_when_the_server_closes_with_requests_left() {
    let (addr, t) = one_reply_server();
    let (code, out, err) = run_stdin(&["client", "--addr", &addr], "PING\nPING\nPING\n");
    t.join().unwrap();
    assert_ne!(code, 0, "{out}{err}");
    assert!(out.contains("pong"), "{out}");
    assert!(err.contains("closed the connection") && err.contains("line 2"), "{err}");
    let (addr, t) = one_reply_server();
    let (code, out, err) = run_stdin(&["client", "--addr", &addr], "quit\n");
    t.join().unwrap();
    assert_eq!(code, 0, "{out}{err}");
    // Requests after an answered QUIT are never sent: a failure, said.
    let (addr, t) = one_reply_server();
    let (code, out, err) = run_stdin(&["client", "--addr", &addr], "QUIT\n\n# done\nPING\nPING\n");
    t.join().unwrap();
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("line 1 was QUIT: the 2 requests after it were not sent"), "{err}");
}

/// Only ASCII white space ends a line: an ideographic space (U+3000) at the
/// end of a bare value is the value's, as the server reads it.
#[test]
fn client_keeps_an_ideographic_space_ending_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let (grid, _, _) = some_grid(1);
    let input = format!("ACCEPT grid={grid} text=路灯坏了\u{3000}\nACCEPT grid={grid} text=路灯坏了 \t\n");
    let (code, out, err) =
        run_stdin(&["client", "--addr", &srv.addr, "--token", &srv.token("operator")], &input);
    assert_eq!(code, 0, "{out}{err}");
    let nos: Vec<&str> = out.lines().filter_map(|l| l.trim().strip_prefix("case")).map(str::trim).collect();
    assert_eq!(nos.len(), 2, "{out}");
    let get = format!("GET case={}\nGET case={}\n", nos[0], nos[1]);
    let (code, out, err) =
        run_stdin(&["client", "--addr", &srv.addr, "--token", &srv.token("supervisor")], &get);
    assert_eq!(code, 0, "{out}{err}");
    let texts: Vec<&str> = out.lines().filter_map(|l| l.trim_start().strip_prefix("text")).collect();
    assert_eq!(texts.len(), 2, "{out}");
    assert!(texts[0].ends_with("路灯坏了\u{3000}"), "{texts:?}");
    assert!(texts[1].ends_with("路灯坏了"), "{texts:?}");
}

/// `audit --csv` of a window without cases is a CSV: the header row and no
/// rows, not the table's `(no cases)` (a spreadsheet would read that as the
/// one column's name); `--json` is `[]`.
#[tokio::test]
async fn audit_csv_of_no_cases_is_the_header_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    accept_one_by_one_then_kill(&data, 2, "空窗").await;
    let d = data.to_str().unwrap();
    let (code, all, err) = run(&["audit", "--data", d, "--by", "township", "--csv"]);
    assert_eq!(code, 0, "{all}{err}");
    let header = all.lines().next().unwrap();
    assert!(header.starts_with("township,received,"), "{all}");
    let (code, out, err) = run(&["audit", "--data", d, "--by", "township", "--csv", "--from", "2099-01-01"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, format!("{header}\n"));
    let (code, out, err) = run(&["audit", "--data", d, "--json", "--from", "2099-01-01"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "[]");
    let (code, out, err) = run(&["audit", "--data", d, "--from", "2099-01-01"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "(no cases)");
}

/// Plays `simulate --cases N --seed S` twice against one fresh server, the
/// second a replay of the first's calls (the same request ids); the first
/// run must go without an error. Returns the second run's (exit code,
/// stdout, stderr).
fn simulate_the_same_seed_twice(cases: &str, seed: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = Server::start(&data, &[]);
    let replay = ["--cases", cases, "--seed", seed, "--req-prefix", "replayed"];
    let (code, out, err) = simulate(&srv, &replay);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("errors:"), "{out}");
    simulate(&srv, &replay)
}

/// The same seed run again is a new day of calls, not a replay: every call
/// is a new case and nothing is refused (a README reader may well run it twice).
#[test]
fn simulate_run_again_takes_new_calls() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = Server::start(&data, &[]);
    for _ in 0..2 {
        let (code, out, err) = simulate(&srv, &["--cases", "40", "--seed", "8"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("40 accepted") && !out.contains("errors:"), "{out}");
    }
    let d = data.to_str().unwrap();
    drop(srv);
    let (code, out, err) = run(&["audit", "--data", d, "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"received\": 80,"), "two runs, 80 cases: {out}");
}

/// Requests the server refused are a failed simulation: `simulate` lists
/// them and exits 2. Here the same seed played twice: its `req=` ids bring
/// back the first day's cases, closed or with other workers, and the
/// workers' steps on them are refused.
#[test]
fn simulate_exits_non_zero_when_the_server_refuses_requests() {
    let (code, out, err) = simulate_the_same_seed_twice("40", "8");
    assert!(out.contains("errors:"), "{out}");
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("refused"), "{err}");
}

/// `--from` not before `--to` is a window without a moment in it: refused,
/// naming both, rather than an audit of nothing that looks like a quiet month.
#[tokio::test]
async fn audit_refuses_a_window_that_ends_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    accept_one_by_one_then_kill(&data, 1, "倒窗").await;
    let d = data.to_str().unwrap();
    for (from, to) in [("2026-12-01", "2026-11-01"), ("2026-11-01T08:00", "2026-11-01T00:00Z")] {
        let (code, out, err) = run(&["audit", "--data", d, "--from", from, "--to", to]);
        assert_eq!(code, 1, "{from} {to}: {out}{err}");
        assert!(err.contains("--from") && err.contains("--to") && err.contains(from), "{err}");
    }
    let (code, out, err) =
        run(&["audit", "--data", d, "--from", "2026-11-01", "--to", "2026-11-01T00:00:01"]);
    assert_eq!(code, 0, "{out}{err}");
}

/// `simulate`'s summary counts what the server did: a CLOSE, RETURN or
/// DISPATCH it refused is listed under the errors, not counted as a closing,
/// a return or a dispatch by hand.
#[test]
fn simulate_counts_only_the_steps_the_server_took() {
    // The second run's req= ids bring back the first run's cases, most of
    // them closed already or another worker's.
    let (_, out, err) = simulate_the_same_seed_twice("60", "21");
    let summary =
        out.lines().find(|l| l.contains("dispatched by hand")).unwrap_or_else(|| panic!("{out}{err}"));
    let said = |what: &str| -> u64 {
        let before = &summary[..summary.find(what).unwrap()];
        before.trim_end().rsplit([' ', ',']).next().unwrap().parse().unwrap()
    };
    let sent = |verb: &str| -> u64 {
        out.lines()
            .find_map(|l| l.trim_start().strip_prefix(&format!("{verb} ")))
            .map_or(0, |l| l.split_whitespace().next().unwrap().parse().unwrap())
    };
    let refused = |verb: &str| -> u64 {
        let errors = out.lines().find_map(|l| l.trim_start().strip_prefix("errors: ")).unwrap_or("");
        errors
            .split(", ")
            .filter(|e| e.starts_with(&format!("{verb} ")))
            .map(|e| e.rsplit('x').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert!(refused("CLOSE") > 0, "the second run has refused closings: {out}");
    assert_eq!(said("closings"), sent("CLOSE") - refused("CLOSE"), "{out}");
    assert_eq!(said("returned"), sent("RETURN") - refused("RETURN"), "{out}");
    assert_eq!(said("dispatched by hand"), sent("DISPATCH") - refused("DISPATCH"), "{out}");
}

/// More connections than cases: the idle connections play nothing, the
/// day is played, and the progress bar (for a terminal) is not written
/// into a pipe or a log file, once per connection.
#[test]
fn simulate_with_more_connections_than_cases() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = Server::start(&data, &[]);
    let (code, out, err) = simulate(&srv, &["--cases", "2", "--connections", "6"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("simulated 2 calls: 2 accepted"), "{out}");
    assert!(!err.contains("accept "), "a progress bar on a pipe: {err}");
}

/// A token REVOKE withdrew stays in tokens.toml: simulate plays with the
/// role's token that still works, not the first one the file lists.
#[tokio::test(flavor = "multi_thread")]
async fn simulate_skips_revoked_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = Server::start(&data, &[]);
    let mut admin = srv.client("admin").await;
    ok(admin.call("REVOKE name=operator").await.unwrap());
    ok(admin.call("TOKEN role=operator name=seat-2").await.unwrap());
    let (code, out, err) =
        tokio::task::block_in_place(|| simulate(&srv, &["--cases", "5", "--connections", "1"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("simulated 5 calls: 5 accepted"), "{out}");
}

/// A tokens.toml without one of the tokens simulate needs is named, with
/// the role and the flag that chose it.
#[test]
fn simulate_names_the_tokens_file_that_lacks_a_role() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        "[[token]]\nrole = \"admin\"\nname = \"admin\"\nsecret = \"admin-0123456789abcdef\"\n",
    )
    .unwrap();
    let (code, out, err) = run(&["simulate", "--tokens", tokens.to_str().unwrap(), "--cases", "3"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(tokens.to_str().unwrap()) && err.contains("supervisor"), "{err}");
}

/// A connection reset (the server gone at once, not closed in order) while
/// `client` sends: the error names the input line it could not send.
#[cfg(unix)]
#[test]
fn client_names_the_line_a_reset_connection_left_unanswered() {
    use std::io::BufRead;
    let (addr, t) = answer_once_then(|s, mut r| {
        // Wait for the next request, then close with a reset (SO_LINGER 0).
        let _ = r.fill_buf();
        use std::os::unix::io::AsRawFd;
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: setsockopt on a socket this thread owns, with a valid linger struct.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    });
    let (code, out, err) = run_stdin(&["client", "--addr", &addr], "PING\nPING\nPING\n");
    t.join().unwrap();
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("line 2"), "{err}");
}

/// `--help` names what the flags take and what the exit statuses mean.
#[test]
fn help_lists_the_groupings_and_the_exit_statuses() {
    let (code, out, _) = run(&["audit", "--help"]);
    assert_eq!(code, 0);
    for by in ["county", "township", "grid", "department", "worker", "category", "month"] {
        assert!(out.contains(by), "audit --help does not name --by {by}: {out}");
    }
    let (code, out, _) = run(&["client", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("exits 2") && out.contains("1 when"), "{out}");
}

/// A request file saved by a Windows editor: a byte order mark before the
/// first line and CRLF line ends. The mark is not part of the first verb.
#[test]
fn client_reads_a_file_with_a_byte_order_mark_and_crlf() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &[]);
    let (code, out, err) = run_stdin(&["client", "--addr", &srv.addr], "\u{feff}PING\r\nPING\r\n");
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches("pong").count(), 2, "{out}");
}

/// An address already in use is refused before anything is written: no
/// data directory, tokens or case log made for a server that never served.
#[test]
fn serve_refuses_an_address_in_use_before_it_makes_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, out, err) =
        run_within(REFUSAL_LIMIT, &["serve", "--listen", &addr, "--data", data.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&addr) && err.contains("in use"), "{err}");
    assert!(!data.exists(), "a refused serve created its data directory");
}

/// `gridline audit --csv > audit.csv` on a full disk (here /dev/full): the
/// command fails, exit 1, saying it could not write its output; it does not
/// panic. The same for a stderr that cannot be written.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn offline_output_that_cannot_be_written_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    accept_one_by_one_then_kill(&data, 1, "满盘").await;
    let d = data.to_str().unwrap();
    let full = || std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    for args in [
        &["registry", "stats"][..],
        &["route", "--grid", &some_grid(1).0],
        &["audit", "--data", d, "--csv"],
        &["audit", "--data", d, "--json"],
        &["verify", "--data", d],
    ] {
        let out = std::process::Command::new(bin()).args(args).stdout(full()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("standard output") && !err.contains("panicked"), "{args:?}: {err}");
    }
    // Problems go to stderr; it cannot be written either: still exit 1.
    let out = std::process::Command::new(bin())
        .args(["registry", "check", "--config", dir.path().to_str().unwrap()])
        .stdout(full())
        .stderr(full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// `simulate --window 0` (no request in flight) is refused naming the flag,
/// not run as if it were 1.
#[test]
fn simulate_refuses_a_window_of_zero() {
    let (code, out, err) = run(&["simulate", "--window", "0", "--tokens", "/nonexistent/tokens.toml"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("--window") && err.contains("0"), "{err}");
}

/// CONTRACT.md: tokens.toml holds `[[token]]` tables with `role`, `secret`
/// and, for workers, `worker`. A file written that way (no `name`) serves;
/// each token is named as `TOKEN` names one, and the log says so.
#[tokio::test(flavor = "multi_thread")]
async fn serve_takes_a_tokens_file_written_as_the_contract_says() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (op, worker) = ("a".repeat(32), "b".repeat(32));
    std::fs::write(
        data.join("tokens.toml"),
        format!(
            "[[token]]\nrole = \"operator\"\nsecret = \"{op}\"\n\n\
             [[token]]\nrole = \"worker\"\nsecret = \"{worker}\"\nworker = \"W00007\"\n"
        ),
    )
    .unwrap();
    let srv = Server::start(&data, &[]);
    let mut c = Client::connect_auth(&srv.addr, &op).await.expect("the operator's token works");
    let (f, _) = ok(c.call("ACCEPT text=路灯不亮 grid=JDZ-NH-03").await.unwrap());
    let no = f.get("no").unwrap().to_string();
    let (_, events) = ok(c.call(&format!("GET case={no}")).await.unwrap());
    assert_eq!(events[0].1.get("actor"), Some("operator:operator"), "{events:?}");
    let (f, _) =
        ok(Client::connect(&srv.addr).await.unwrap().call(&format!("AUTH token={worker}")).await.unwrap());
    assert_eq!(f.get("worker"), Some("W00007"));
}

/// `audit --json` keeps the columns in the table's order (docs/audit.md:
/// "every row has the same columns in the same order"): the label first;
/// the label is a string, each figure a number, or `null` for `-`.
#[tokio::test]
async fn audit_json_keeps_the_column_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    accept_one_by_one_then_kill(&data, 2, "顺序").await;
    let d = data.to_str().unwrap();
    let (code, csv, err) = run(&["audit", "--data", d, "--by", "township", "--csv"]);
    assert_eq!(code, 0, "{err}");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let (code, json, err) = run(&["audit", "--data", d, "--by", "township", "--json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(rows.len(), 2, "{json}");
    assert_eq!(rows[1]["township"], "total");
    assert_eq!(rows[1]["received"], 2, "{json}");
    assert_eq!(rows[1]["return_pct"], 0.0, "{json}");
    assert!(rows[1]["closure_p50_h"].is_null(), "no case closed: {json}");
    // The table's digits, not a float's.
    assert!(json.contains("\"return_pct\": 0.0,"), "{json}");
    // The keys of each object as written, in order.
    let first = json.split('}').next().unwrap();
    let keys: Vec<&str> =
        first.lines().filter_map(|l| l.trim().strip_prefix('"')?.split('"').next()).collect();
    assert_eq!(keys, header, "{json}");
}

/// A `client` left idle longer than the server's idle limit: the server
/// closes the connection with a line saying why. That line is not the
/// reply to the next request, which was never read: the client says what
/// happened, connects again, authenticates as before and sends it there.
#[test]
fn client_connects_again_after_the_server_closed_an_idle_connection() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &["--idle-timeout-secs", "1"]);
    let (grid, _, _) = some_grid(1);
    let route = format!("ROUTE text=路灯不亮 grid={grid}\n");
    let mut child = spawn_piped(&["client", "--addr", &srv.addr, "--token", &srv.token("operator")]);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(route.as_bytes()).unwrap();
    stdin.flush().unwrap();
    // Long enough past the idle limit for the server to close.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    stdin.write_all(route.as_bytes()).unwrap();
    drop(stdin);
    let (code, stdout, stderr) = outcome(child.wait_with_output().unwrap());
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout.lines().filter(|l| *l == "OK").count(), 2, "both answered OK: {stdout}");
    assert!(stderr.contains("idle for 1s") && stderr.contains("connecting again"), "{stderr}");
}

/// A line longer than the server's limit gets `ERR too_large` and a close;
/// when the line is longer than the sockets' buffers too, the server closes
/// before `client` has sent it all, and the rest fails to send (a broken
/// pipe, a reset). The server's answer is still there to read: `client`
/// prints it as that line's reply, connects again for the next line, and
/// exits 2 (a reply was an ERR), not 1 with "Broken pipe" and the lines
/// after it never sent.
#[test]
fn client_reports_too_large_for_a_line_longer_than_the_socket_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("data"), &["--line-bytes-max", "64"]);
    let input = format!("PING x={}\nPING\n", "a".repeat(48 << 20));
    let (code, out, err) =
        run_stdin(&["client", "--addr", &srv.addr, "--token", &srv.token("operator")], &input);
    assert!(out.contains("ERR too_large: line longer than 64 bytes"), "{out}{err}");
    assert!(out.contains("pong"), "the line after it was answered: {out}{err}");
    assert_eq!(code, 2, "{out}{err}");
}
