//! A damaged log (bytes flipped, file truncated) is reported clearly by
//! `verify` and `serve`; neither panics, neither starts silently.

mod common;

use common::*;

async fn make_log(data: &std::path::Path) {
    let mut srv = Server::start(data, &[]);
    let mut op = srv.client("operator").await;
    let (grid, _, _) = some_grid(4);
    for i in 0..2000 {
        op.send(&format!("ACCEPT text=\"损坏测试{i}\" grid={grid} req=k{i}")).await.unwrap();
    }
    op.flush().await.unwrap();
    for _ in 0..2000 {
        ok(op.read_reply().await.unwrap());
    }
    assert!(srv.terminate().success());
}

fn damage(path: &std::path::Path, how: &str) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let len = std::fs::metadata(path).unwrap().len();
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    match how {
        "flip" => {
            // Damage live records: every copy of some cases' text in the file.
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).unwrap();
            let needle = "损坏测试1".as_bytes();
            let hits: Vec<usize> = bytes
                .windows(needle.len())
                .enumerate()
                .filter(|(_, w)| *w == needle)
                .map(|(i, _)| i)
                .collect();
            assert!(!hits.is_empty(), "no record found to damage");
            for off in hits {
                f.seek(SeekFrom::Start(off as u64)).unwrap();
                f.write_all(&[0xA5; 4]).unwrap();
            }
        }
        _ => f.set_len(len / 2).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn flipped_or_truncated_logs_are_reported_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_log(&data).await;
    let (code, out, err) = run(&["verify", "--data", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2000 cases"), "{out}");
    for how in ["flip", "truncate"] {
        let copy = dir.path().join(how);
        let status = std::process::Command::new("cp").arg("-a").arg(&data).arg(&copy).status().unwrap();
        assert!(status.success());
        damage(&copy.join("log/db"), how);
        let (code, out, err) = run(&["verify", "--data", copy.to_str().unwrap()]);
        assert_ne!(code, 0, "{how}: verify passed a damaged log: {out}");
        assert!(!err.contains("panicked"), "{how}: verify panicked: {err}");
        assert!(err.contains("corrupt") || err.contains("damaged"), "{how}: unclear: {err}");
        let (code, _, err) = run_within(
            REFUSAL_LIMIT,
            &["serve", "--data", copy.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        );
        assert_ne!(code, 0, "{how}: serve started on a damaged log");
        assert!(!err.contains("panicked"), "{how}: serve panicked: {err}");
        assert!(err.contains("corrupt") || err.contains("damaged"), "{how}: unclear: {err}");
    }
    // A flipped byte in sled's settings file: the log named, called damaged
    // (sled itself says "corrupted data at file offset None", or for other
    // bytes "a sled version earlier than 0.29"), with the way out.
    let copy = dir.path().join("conf");
    let status = std::process::Command::new("cp").arg("-a").arg(&data).arg(&copy).status().unwrap();
    assert!(status.success());
    let conf = copy.join("log/conf");
    let mut bytes = std::fs::read(&conf).unwrap();
    bytes[2] ^= 0x20;
    std::fs::write(&conf, bytes).unwrap();
    let (code, _, err) = run(&["verify", "--data", copy.to_str().unwrap()]);
    assert_ne!(code, 0);
    let (scode, _, serr) =
        run_within(REFUSAL_LIMIT, &["serve", "--data", copy.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert_ne!(scode, 0);
    for err in [err, serr] {
        assert!(
            err.contains(&copy.join("log").display().to_string())
                && err.contains("damaged")
                && err.contains("backup"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_write_ahead_log_header_stops_the_start_and_a_torn_tail_does_not() {
    use std::io::{Seek, SeekFrom, Write};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_log(&data).await;
    let copy = |name: &str| {
        let to = dir.path().join(name);
        assert!(std::process::Command::new("cp").arg("-a").arg(&data).arg(&to).status().unwrap().success());
        to
    };
    let write_at = |path: &std::path::Path, at: u64, bytes: &[u8]| {
        let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(bytes).unwrap();
    };

    // The header says where the records start: damaged, nothing can be trusted.
    let header = copy("header");
    write_at(&header.join("log/wal"), 9, &[0xA5]);
    for cmd in [&["verify", "--data"][..], &["serve", "--listen", "127.0.0.1:0", "--data"][..]] {
        let mut args = cmd.to_vec();
        args.push(header.to_str().unwrap());
        let (code, out, err) = run_within(REFUSAL_LIMIT, &args);
        assert_ne!(code, 0, "{cmd:?} accepted a damaged log header: {out}");
        assert!(
            err.contains("write-ahead log") && err.contains("checksum") && err.contains("log/wal:"),
            "{cmd:?}: unclear (which file?): {err}"
        );
    }

    // A record cut short where the log ends is a write never acknowledged:
    // dropped, and everything before it is there.
    let torn = copy("torn");
    write_at(&torn.join("log/wal"), 32, &[40, 0, 0, 0, 1, 2, 3, 4, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 9, 9]);
    let (code, out, err) = run(&["verify", "--data", torn.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2000 cases"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_record_in_the_middle_of_the_write_ahead_log_is_not_taken_for_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // One commit each: one record each in the write-ahead log.
    accept_one_by_one_then_kill(&data, 20, "中段损坏").await;
    // Damage an early record: it was synced (acknowledged) long before the
    // kill, so this is not a torn write.
    let wal = data.join("log/wal");
    let mut bytes = std::fs::read(&wal).unwrap();
    let needle = "中段损坏02".as_bytes();
    let at = bytes.windows(needle.len()).position(|w| w == needle).expect("the record is in the log");
    bytes[at] ^= 0xff;
    std::fs::write(&wal, &bytes).unwrap();
    let (code, out, err) = run(&["verify", "--data", data.to_str().unwrap()]);
    // Either it says the log is damaged, or every acknowledged case is there.
    assert!(
        (code != 0 && (err.contains("corrupt") || err.contains("damaged"))) || out.contains("20 cases"),
        "verify passed a log that lost acknowledged cases: {out}{err}"
    );
    // serve refuses too, and leaves the log as it is for whoever repairs it.
    if code != 0 {
        let (code, _, err) = run_within(
            REFUSAL_LIMIT,
            &["serve", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        );
        assert!(code != 0 && err.contains("damaged"), "serve: {err}");
        assert_eq!(std::fs::read(&wal).unwrap(), bytes, "the damaged log is left as it was");
    }
}
