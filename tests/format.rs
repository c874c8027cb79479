//! The case log's formats: a data directory written in format 1 (a key for
//! each run of a case's events) is served, added to and verified by this
//! build, which writes format 3 (a batch's events in pages, stored packed)
//! and marks the log so that a build that reads only format 1 refuses it.

mod common;

use std::path::Path;

use common::*;
use gridline_caselog::{codec, SledStore, Store, WriteBatch};
use gridline_model::{Actor, Case, CaseId, CaseNo, Event, EventKind, Intake, Location, Timestamp};

/// Writes a format-1 log of `n` waiting cases, as a build from before
/// format 2 left it; returns their numbers.
fn write_format_1(log: &Path, n: u32) -> Vec<String> {
    let store = SledStore::open(log).unwrap();
    let meta = codec::Meta { format: 1, created_by: "gridline 0.1.0".into(), county: "JD".into() };
    let mut b = WriteBatch::default();
    b.put(codec::META_KEY.to_vec(), codec::encode(codec::Kind::Meta, &meta).unwrap());
    let (grid, _, _) = some_grid(3);
    let mut nos = Vec::new();
    for i in 0..n {
        let at = Timestamp(Timestamp::now().0 - 60_000 + i as i64);
        let id = CaseId::new_at(at);
        let no = CaseNo::new("JD", at.day_number(480), i + 1);
        let first = Event {
            case: id,
            seq: 1,
            at,
            actor: Actor { role: gridline_model::Role::Operator, name: "operator".into() },
            kind: EventKind::Accepted {
                no: no.clone(),
                intake: Intake {
                    text: format!("格式一 {i}").into(),
                    location: Location { grid: Some(grid.clone().into()), ..Default::default() },
                    ..Intake::default()
                },
                category: "water".into(),
                township: None,
            },
        };
        let case = Case::from_first(&first).unwrap();
        b.put(codec::event_key(&id, 1), codec::encode_events(&[first]).unwrap());
        b.put(codec::case_key(&id), codec::encode(codec::Kind::Case, &case).unwrap());
        nos.push(no.to_string());
    }
    store.apply(b).unwrap();
    store.sync().unwrap();
    nos
}

fn log_format(log: &Path) -> u8 {
    let store = SledStore::open(log).unwrap();
    codec::read_meta(&store.get(codec::META_KEY).unwrap().unwrap()).unwrap().format
}

#[tokio::test(flavor = "multi_thread")]
async fn a_format_1_log_is_served_added_to_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let nos = write_format_1(&data.join("log"), 3);
    // Offline tools read it as it is.
    let (code, out, err) = run(&["verify", "--data", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 cases"), "{out}");
    assert_eq!(log_format(&data.join("log")), 1, "verify changed the format record");

    let mut srv = Server::start(&data, &[]);
    let mut sup = srv.client("supervisor").await;
    let worker = &gridline_registry::embedded::jidong().workers[0].id;
    // Each a new run in a page, after its format-1 run.
    for no in &nos[..2] {
        ok(sup.call(&format!("DISPATCH case={no} worker={worker}")).await.unwrap());
    }
    let kinds = |items: &[(String, gridline_protocol::Fields)]| -> Vec<String> {
        items.iter().map(|(_, f)| f.get("kind").unwrap().to_string()).collect()
    };
    let (_, events) = ok(sup.call(&format!("GET case={}", nos[0])).await.unwrap());
    assert_eq!(kinds(&events), ["accepted", "dispatched"]);
    let (_, events) = ok(sup.call(&format!("GET case={}", nos[2])).await.unwrap());
    assert_eq!(kinds(&events), ["accepted"]);
    // A new case is written in pages alone.
    let mut op = srv.client("operator").await;
    let (grid, _, _) = some_grid(3);
    let (f, _) = ok(op.call(&format!("ACCEPT text=\"格式二\" grid={grid}")).await.unwrap());
    let new = f.get("case").unwrap().to_string();
    // Across a kill, and a start that reads both.
    srv.kill9();
    let mut srv = Server::start(&data, &[]);
    let mut sup = srv.client("supervisor").await;
    for (no, want) in [(&nos[0], 2), (&nos[1], 2), (&nos[2], 1), (&new, 2)] {
        let (f, events) = ok(sup.call(&format!("GET case={no}")).await.unwrap());
        assert_eq!(events.len(), want, "{no}: {f:?}");
    }
    assert!(srv.terminate().success());

    let (code, out, err) = run(&["verify", "--data", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("4 cases") && out.contains("7 events"), "{out}");
    assert_eq!(
        log_format(&data.join("log")),
        codec::LOG_FORMAT,
        "the log was not marked as this build's format"
    );
}
