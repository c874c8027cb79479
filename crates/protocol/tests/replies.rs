//! Reply formatting, exactly as it goes on the wire, and reading it back.

use std::sync::Arc;

use gridline_model::{
    Actor, Case, CaseId, CaseNo, CaseView, CategorySource, Deadline, Decision, Error, ErrorCode, Event,
    EventKind, Intake, Location, Priority, Reply, Role, Timestamp,
};
use gridline_protocol::{
    parse_reply_line, write_error, write_reply, Fields, FormatCtx, ReplyCode, ReplyLine,
};

const CTX: FormatCtx = FormatCtx { utc_offset_min: 480, warn_at_percent: 80 };

fn t(s: &str) -> Timestamp {
    Timestamp::parse(s, 480).unwrap()
}

fn id() -> CaseId {
    "01938a2b-3c4d-7e5f-8a6b-7c8d9e0f1a2b".parse().unwrap()
}

/// A case as one allowed to see its phone whole sees it.
fn shown(c: Case) -> CaseView {
    CaseView::new(Arc::new(c), true)
}

fn actor(role: Role, name: &str) -> Actor {
    Actor { role, name: name.to_string().into() }
}

fn ev(seq: u32, at: &str, actor: Actor, kind: EventKind) -> Event {
    Event { case: id(), seq, at: t(at), actor, kind }
}

fn dispatched(worker: &str) -> EventKind {
    EventKind::Dispatched {
        grid: "G0007".into(),
        township: "鸡东镇".into(),
        worker: worker.into(),
        department: Some("heating".into()),
        rule: "point+department".into(),
        reason: "point in grid G0007; heating professional on duty".into(),
        due_claim: t("2026-11-24T12:00"),
        due_close: t("2026-11-27T10:00"),
    }
}

/// A case taken at 09:58, dispatched at 10:00, claimed at 10:30.
fn events() -> Vec<Event> {
    vec![
        ev(
            1,
            "2026-11-24T09:58",
            actor(Role::Operator, "op-1"),
            EventKind::Accepted {
                no: CaseNo("JD-20261124-000123".into()),
                intake: Intake {
                    text: "小区供暖不热，室温只有12度".into(),
                    category: None,
                    location: Location {
                        point: Some((131.12, 45.26)),
                        grid: None,
                        address: Some("幸福小区 3号楼".into()),
                    },
                    phone: Some("138****5678".into()),
                    name: Some("王女士".into()),
                    channel: Some("hotline".into()),
                    priority: Priority::Urgent,
                    req: Some("op1-1".into()),
                },
                category: "heating".into(),
                township: Some("鸡东镇".into()),
            },
        ),
        ev(2, "2026-11-24T10:00", Actor::system(), dispatched("W00012")),
        ev(3, "2026-11-24T10:30", actor(Role::Worker, "W00012"), EventKind::Claimed),
    ]
}

fn case_of(events: &[Event]) -> Case {
    Case::from_events(events).unwrap().unwrap()
}

fn render(reply: &Reply) -> String {
    let mut out = String::new();
    write_reply(&mut out, reply, &CTX);
    out
}

const SUMMARY: &str = "case=01938a2b-3c4d-7e5f-8a6b-7c8d9e0f1a2b no=JD-20261124-000123 status=handling \
category=heating priority=urgent grid=G0007 township=鸡东镇 worker=W00012 dept=heating \
due_claim=2026-11-24T12:00:00+08:00 due_close=2026-11-27T10:00:00+08:00 warn_at=2026-11-26T19:36:00+08:00 received=2026-11-24T09:58:00+08:00 \
text=小区供暖不热，室温只有12度 phone=138****5678 name=王女士 address=\"幸福小区 3号楼\" lon=131.12 lat=45.26 \
returns=0 reopens=0 overdue=none";

fn decision() -> Decision {
    Decision {
        category: "heating".into(),
        category_source: CategorySource::Inferred,
        keywords: vec!["供暖".into(), "室温".into()],
        grid: Some("G0007".into()),
        township: Some("鸡东镇".into()),
        department: Some("heating".into()),
        worker: Some("W00012".into()),
        rule: "point+department".into(),
        steps: vec![
            "point (131.12, 45.26) is in grid G0007".into(),
            "category heating -> heating dept".into(),
        ],
    }
}

#[test]
fn fields() {
    let r = Reply::Fields(vec![("role".into(), "worker".into()), ("worker".into(), "W00012".into())]);
    assert_eq!(render(&r), "OK role=worker worker=W00012\n");
    assert_eq!(render(&Reply::Fields(vec![])), "OK\n");
    let r = Reply::Fields(vec![("msg".into(), "a \"b\"\\c\nd\te".into()), ("empty".into(), String::new())]);
    assert_eq!(render(&r), "OK msg=\"a \\\"b\\\"\\\\c\\nd\\te\" empty=\"\"\n");
}

#[test]
fn accepted() {
    let case = case_of(&events()[..2]);
    let r = Reply::Accepted { case: shown(case.clone()), decision: decision(), duplicate: false };
    assert_eq!(
        render(&r),
        "OK case=01938a2b-3c4d-7e5f-8a6b-7c8d9e0f1a2b no=JD-20261124-000123 status=dispatched grid=G0007 \
         worker=W00012 dept=heating due_claim=2026-11-24T12:00:00+08:00 due_close=2026-11-27T10:00:00+08:00 \
         rule=point+department category=heating\n"
    );
    let r = Reply::Accepted { case: shown(case), decision: decision(), duplicate: true };
    assert!(render(&r).ends_with(" category=heating duplicate=yes\n"));
}

#[test]
fn accepted_at_the_command_centre() {
    let mut first = events();
    first.truncate(1);
    first.push(ev(
        2,
        "2026-11-24T09:58",
        Actor::system(),
        EventKind::Waiting { reason: "no heating professional on duty".into() },
    ));
    let d = Decision { worker: None, department: None, rule: "command-centre".into(), ..decision() };
    let r = Reply::Accepted { case: shown(case_of(&first)), decision: d, duplicate: false };
    assert_eq!(
        render(&r),
        "OK case=01938a2b-3c4d-7e5f-8a6b-7c8d9e0f1a2b no=JD-20261124-000123 status=accepted grid=G0007 \
         rule=command-centre category=heating\n"
    );
}

#[test]
fn routed() {
    assert_eq!(
        render(&Reply::Routed(decision())),
        "OK grid=G0007 township=鸡东镇 worker=W00012 dept=heating category=heating category_source=inferred \
         keywords=供暖,室温 rule=point+department \
         why=\"point (131.12, 45.26) is in grid G0007; category heating -> heating dept\"\n"
    );
    let d = Decision {
        keywords: vec![],
        grid: None,
        township: None,
        department: None,
        worker: None,
        category_source: CategorySource::Fallback,
        rule: "command-centre".into(),
        steps: vec!["no location matched".into()],
        ..decision()
    };
    assert_eq!(
        render(&Reply::Routed(d)),
        "OK category=heating category_source=fallback rule=command-centre why=\"no location matched\"\n"
    );
}

#[test]
fn case() {
    let r = Reply::Case(shown(case_of(&events())));
    assert_eq!(render(&r), format!("OK {SUMMARY}\n"));
}

#[test]
fn a_case_shows_its_phone_masked_unless_the_view_reveals_it() {
    let mut c = case_of(&events());
    c.intake.phone = Some("13812345678".into());
    let c = Arc::new(c);
    let masked = render(&Reply::Case(CaseView::new(c.clone(), false)));
    assert!(masked.contains(" phone=138****5678 "), "{masked}");
    assert!(!masked.contains("12345678"), "{masked}");
    let whole = render(&Reply::Case(CaseView::new(c.clone(), true)));
    assert!(whole.contains(" phone=13812345678 "), "{whole}");
    let cases = render(&Reply::Cases { cases: vec![CaseView::new(c, false)], next: None });
    assert!(cases.contains(" phone=138****5678 ") && !cases.contains("12345678"), "{cases}");
}

/// A case's coordinates read back as a request's: tiny values (which an
/// ACCEPT may give) are written with an exponent, not 300 digits.
#[test]
fn a_case_writes_its_coordinates_as_a_request_can_give_them_back() {
    for (lon, lat) in [(-0.0, 1e-300), (131.12, 45.26), (180.0, -90.0), (5e-324, -1.2345678901234567e-7)] {
        let mut c = case_of(&events());
        c.intake.location.point = Some((lon, lat));
        let line = render(&Reply::Case(shown(c)));
        let ReplyLine::Ok(f) = parse_reply_line(&line).unwrap() else { panic!("{line}") };
        let (x, y) = (f.get("lon").unwrap(), f.get("lat").unwrap());
        assert!(x.len() <= 32 && y.len() <= 32, "{line}");
        let again = gridline_protocol::parse_request(&format!("ROUTE text=x lon={x} lat={y}")).unwrap();
        let gridline_model::Command::Route(intake) = again else { panic!("{again:?}") };
        let (x, y) = intake.location.point.unwrap();
        assert_eq!((x.to_bits(), y.to_bits()), (lon.to_bits(), lat.to_bits()), "{line}");
    }
}

#[test]
fn case_with_feedback_extension_and_overdue() {
    let mut evs = events();
    let w = actor(Role::Worker, "W00012");
    evs.push(ev(
        4,
        "2026-11-27T10:05",
        Actor::system(),
        EventKind::Overdue { deadline: Deadline::Close, due: t("2026-11-27T10:00") },
    ));
    evs.push(ev(
        5,
        "2026-11-27T11:00",
        w.clone(),
        EventKind::ExtensionRequested { until: t("2026-11-29T18:00"), reason: "等待配件".into() },
    ));
    let c = case_of(&evs);
    let line = render(&Reply::Case(shown(c)));
    assert!(line.ends_with(" overdue=close extension_until=2026-11-29T18:00:00+08:00\n"), "{line}");

    evs.truncate(3);
    evs.push(ev(4, "2026-11-25T09:00", w, EventKind::Closed { result: "已修复".into() }));
    evs.push(ev(
        5,
        "2026-11-25T15:00",
        actor(Role::Operator, "op-1"),
        EventKind::Feedback { satisfied: true, score: Some(5), text: None },
    ));
    let line = render(&Reply::Case(shown(case_of(&evs))));
    assert!(line.contains(" status=closed "), "{line}");
    assert!(line.ends_with(" overdue=none satisfied=yes score=5\n"), "{line}");
}

#[test]
fn detail() {
    let mut evs = events();
    let w = actor(Role::Worker, "W00012");
    let sup = actor(Role::Supervisor, "sup-1");
    let more = [
        EventKind::Noted { text: "已联系供热公司\n明天上门".into() },
        EventKind::ExtensionRequested { until: t("2026-11-29T18:00"), reason: "等待配件".into() },
        EventKind::ExtensionDecided { approved: true, until: t("2026-11-29T18:00"), reason: None },
        EventKind::Overdue { deadline: Deadline::Close, due: t("2026-11-29T18:00") },
        EventKind::Returned { reason: "不属于本网格".into() },
        EventKind::Escalated { to: "鸡东镇".into(), level: 1, reason: "waiting 2h".into() },
        EventKind::Waiting { reason: "nobody on duty".into() },
        dispatched("W00013"),
        EventKind::Claimed,
        EventKind::Closed { result: "已修复".into() },
        EventKind::Feedback { satisfied: false, score: Some(2), text: Some("还是不热".into()) },
        EventKind::Reopened { reason: "resident unsatisfied".into() },
    ];
    for (i, k) in more.into_iter().enumerate() {
        let who = match k {
            EventKind::ExtensionDecided { .. } => sup.clone(),
            EventKind::Overdue { .. } | EventKind::Escalated { .. } | EventKind::Waiting { .. } => {
                Actor::system()
            }
            _ => w.clone(),
        };
        evs.push(ev(4 + i as u32, "2026-11-30T08:00", who, k));
    }
    let case = case_of(&evs);
    let out = render(&Reply::Detail { case: shown(case), events: evs.clone(), hold: Default::default() });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1 + evs.len());
    assert!(lines[0].starts_with("OK count=15 case=01938a2b-3c4d-7e5f-8a6b-7c8d9e0f1a2b no=JD-20261124-000123 status=accepted category=heating priority=urgent township=鸡东镇 received="), "{}", lines[0]);
    assert!(lines[0].ends_with(" returns=1 reopens=1 overdue=none satisfied=no score=2"), "{}", lines[0]);
    let expected = [
        "EVENT seq=1 at=2026-11-24T09:58:00+08:00 actor=operator:op-1 kind=accepted no=JD-20261124-000123 category=heating township=鸡东镇",
        "EVENT seq=2 at=2026-11-24T10:00:00+08:00 actor=system:gridline kind=dispatched grid=G0007 township=鸡东镇 worker=W00012 dept=heating rule=point+department reason=\"point in grid G0007; heating professional on duty\" due_claim=2026-11-24T12:00:00+08:00 due_close=2026-11-27T10:00:00+08:00",
        "EVENT seq=3 at=2026-11-24T10:30:00+08:00 actor=worker:W00012 kind=claimed",
        "EVENT seq=4 at=2026-11-30T08:00:00+08:00 actor=worker:W00012 kind=noted text=\"已联系供热公司\\n明天上门\"",
        "EVENT seq=5 at=2026-11-30T08:00:00+08:00 actor=worker:W00012 kind=extension_requested until=2026-11-29T18:00:00+08:00 reason=等待配件",
        "EVENT seq=6 at=2026-11-30T08:00:00+08:00 actor=supervisor:sup-1 kind=extension_decided approved=yes until=2026-11-29T18:00:00+08:00",
        "EVENT seq=7 at=2026-11-30T08:00:00+08:00 actor=system:gridline kind=overdue deadline=close due=2026-11-29T18:00:00+08:00",
        "EVENT seq=8 at=2026-11-30T08:00:00+08:00 actor=worker:W00012 kind=returned reason=不属于本网格",
        "EVENT seq=9 at=2026-11-30T08:00:00+08:00 actor=system:gridline kind=escalated to=鸡东镇 level=1 reason=\"waiting 2h\"",
        "EVENT seq=10 at=2026-11-30T08:00:00+08:00 actor=system:gridline kind=waiting reason=\"nobody on duty\"",
        "EVENT seq=11 at=2026-11-30T08:00:00+08:00 actor=worker:W00012 kind=dispatched grid=G0007 township=鸡东镇 worker=W00013 dept=heating rule=point+department reason=\"point in grid G0007; heating professional on duty\" due_claim=2026-11-24T12:00:00+08:00 due_close=2026-11-27T10:00:00+08:00",
        "EVENT seq=12 at=2026-11-30T08:00:00+08:00 actor=worker:W00012 kind=claimed",
        "EVENT seq=13 at=2026-11-30T08:00:00+08:00 actor=worker:W00012 kind=closed result=已修复",
        "EVENT seq=14 at=2026-11-30T08:00:00+08:00 actor=worker:W00012 kind=feedback satisfied=no score=2 text=还是不热",
        "EVENT seq=15 at=2026-11-30T08:00:00+08:00 actor=worker:W00012 kind=reopened reason=\"resident unsatisfied\"",
    ];
    assert_eq!(&lines[1..], &expected[..]);
}

#[test]
fn cases() {
    let c = case_of(&events());
    let r = Reply::Cases { cases: vec![shown(c.clone()), shown(c)], next: Some("JD-20261124-000123".into()) };
    assert_eq!(render(&r), format!("OK count=2 next=JD-20261124-000123\nCASE {SUMMARY}\nCASE {SUMMARY}\n"));
    assert_eq!(render(&Reply::Cases { cases: vec![], next: None }), "OK count=0\n");
}

#[test]
fn rows() {
    let r = Reply::Rows(vec![
        vec![("township".into(), "鸡东镇".into()), ("cases".into(), "12".into())],
        vec![("township".into(), "向阳镇 东区".into()), ("cases".into(), "3".into())],
    ]);
    assert_eq!(
        render(&r),
        "OK count=2\nROW township=鸡东镇 cases=12\nROW township=\"向阳镇 东区\" cases=3\n"
    );
}

#[test]
fn help() {
    let out = render(&gridline_protocol::help_reply());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("OK count={}", gridline_protocol::HELP.len()));
    assert_eq!(lines[1], "ROW verb=AUTH roles=any usage=\"AUTH token=S\" does=\"authenticate; replies role= and, for workers, worker=\"");
    assert_eq!(lines.len(), 1 + gridline_protocol::HELP.len());
}

#[test]
fn errors() {
    let mut out = String::new();
    write_error(&mut out, &Error::bad_request("missing field `text`"));
    write_error(&mut out, &Error::new(ErrorCode::Busy, "busy"));
    write_error(&mut out, &Error::conflict("cannot close a case that is \"dispatched\"\nsee GET"));
    assert_eq!(
        out,
        "ERR bad_request \"missing field `text`\"\nERR busy \"busy\"\n\
         ERR conflict \"cannot close a case that is \\\"dispatched\\\"\\nsee GET\"\n"
    );
    let lines: Vec<ReplyLine> = out.lines().map(|l| parse_reply_line(l).unwrap()).collect();
    assert_eq!(
        lines[2],
        ReplyLine::Err {
            code: ErrorCode::Conflict.into(),
            message: "cannot close a case that is \"dispatched\"\nsee GET".into()
        }
    );
}

#[test]
fn reading_reply_lines() {
    let ok = |pairs: &[(&str, &str)]| {
        ReplyLine::Ok(Fields(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    };
    assert_eq!(parse_reply_line("OK"), Ok(ok(&[])));
    assert_eq!(
        parse_reply_line("OK role=worker worker=W1\r\n"),
        Ok(ok(&[("role", "worker"), ("worker", "W1")]))
    );
    assert_eq!(parse_reply_line("OK count=3").unwrap().count(), Some(3));
    assert_eq!(
        parse_reply_line("ERR not_found \"no case JD-1\""),
        Ok(ReplyLine::Err { code: ErrorCode::NotFound.into(), message: "no case JD-1".into() })
    );
    assert_eq!(
        parse_reply_line("ERR busy too many"),
        Ok(ReplyLine::Err { code: ErrorCode::Busy.into(), message: "too many".into() })
    );
    // A code a later server may add reads back as it is, not as an error.
    let r = parse_reply_line("ERR rate_limited \"slow down\"").unwrap();
    assert_eq!(
        r,
        ReplyLine::Err { code: ReplyCode::Other("rate_limited".into()), message: "slow down".into() }
    );
    let ReplyLine::Err { code, .. } = r else { unreachable!() };
    assert_eq!((code.as_str(), code.known()), ("rate_limited", None));
    assert_eq!(ReplyCode::parse("busy"), Some(ReplyCode::Known(ErrorCode::Busy)));
    // A code that is not one is still refused.
    assert!(parse_reply_line("ERR Not-A-Code \"x\"").is_err());
    assert!(parse_reply_line(&format!("ERR {} \"x\"", "a".repeat(33))).is_err());
    match parse_reply_line("CASE case=x text=\"a b\"").unwrap() {
        ReplyLine::Item { kind, fields } => {
            assert_eq!(kind, "CASE");
            assert_eq!(fields.get("text"), Some("a b"));
            assert_eq!(fields.get("nope"), None);
        }
        other => panic!("{other:?}"),
    }
    for bad in ["", "ok", "ERR", "ERR No \"x\"", "ERR busy \"x", "OK a", "OK a=\"b", "ROW x=\0", "Row a=b"] {
        assert!(parse_reply_line(bad).is_err(), "{bad:?}");
    }
}

/// Every line of every reply kind reads back with the fields it was written with.
#[test]
fn replies_read_back() {
    let evs = events();
    let case = case_of(&evs);
    let replies = [
        Reply::Accepted { case: shown(case.clone()), decision: decision(), duplicate: true },
        Reply::Routed(decision()),
        Reply::Case(shown(case.clone())),
        Reply::Detail { case: shown(case.clone()), events: evs.clone(), hold: Default::default() },
        Reply::Cases { cases: vec![shown(case.clone())], next: None },
        gridline_protocol::help_reply(),
    ];
    for r in &replies {
        let out = render(r);
        let mut lines = out.lines().map(|l| parse_reply_line(l).unwrap());
        let first = lines.next().unwrap();
        let rest: Vec<ReplyLine> = lines.collect();
        if let Some(n) = first.count() {
            assert_eq!(rest.len(), n, "{out}");
        } else {
            assert!(rest.is_empty());
        }
        let all: Vec<&Fields> = std::iter::once(&first)
            .chain(&rest)
            .map(|l| match l {
                ReplyLine::Ok(f) | ReplyLine::Item { fields: f, .. } => f,
                ReplyLine::Err { .. } => panic!("{out}"),
            })
            .collect();
        for f in all.iter().filter(|f| f.get("no").is_some() && f.get("status").is_some()) {
            assert_eq!(f.get("case"), Some(case.id.to_string().as_str()));
            assert_eq!(f.get("no"), Some("JD-20261124-000123"));
            if f.get("text").is_some() {
                assert_eq!(f.get("text"), Some(case.intake.text.as_str()));
                assert_eq!(f.get("address"), Some("幸福小区 3号楼"));
                assert_eq!(f.get("lon").unwrap().parse::<f64>().unwrap(), 131.12);
            }
        }
    }
    let why = render(&Reply::Routed(decision()));
    let ReplyLine::Ok(f) = parse_reply_line(why.trim_end()).unwrap() else { panic!() };
    assert_eq!(f.get("why"), Some(decision().explanation().as_str()));
}

/// The keys of a case line, in the order the formatter writes them: a
/// handling case with every optional field, then what an extension and a
/// return visit add at the end.
fn case_key_order() -> Vec<String> {
    let mut evs = events();
    evs.push(ev(
        4,
        "2026-11-27T11:00",
        actor(Role::Worker, "W00012"),
        EventKind::ExtensionRequested { until: t("2026-11-29T18:00"), reason: "等待配件".into() },
    ));
    let mut closed = events();
    closed.push(ev(
        4,
        "2026-11-25T09:00",
        actor(Role::Worker, "W00012"),
        EventKind::Closed { result: "已修复".into() },
    ));
    closed.push(ev(
        5,
        "2026-11-25T15:00",
        actor(Role::Operator, "op-1"),
        EventKind::Feedback { satisfied: false, score: Some(2), text: Some("不满意".into()) },
    ));
    let mut order: Vec<String> = Vec::new();
    for evs in [events(), evs, closed] {
        let line = render(&Reply::Case(shown(case_of(&evs))));
        let Ok(ReplyLine::Ok(f)) = parse_reply_line(line.trim_end()) else { panic!("{line}") };
        for (k, _) in f.iter() {
            if !order.iter().any(|o| o == k) {
                order.push(k.to_string());
            }
        }
    }
    order
}

/// docs/protocol.md's worked sessions say their reply formats are exactly
/// what this crate writes: every `<` line there reads back, and every case
/// line has the formatter's keys in its order, with `warn_at` exactly
/// while the case races a deadline (dispatched or handling).
#[test]
fn the_worked_sessions_in_the_protocol_docs_are_lines_the_formatter_writes() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md")).unwrap();
    let order = case_key_order();
    let mut case_lines = 0;
    for (n, line) in doc.lines().enumerate() {
        let Some(reply) = line.strip_prefix("< ") else { continue };
        let parsed =
            parse_reply_line(reply).unwrap_or_else(|e| panic!("protocol.md:{}: {e}: {reply}", n + 1));
        let fields = match &parsed {
            ReplyLine::Ok(f) | ReplyLine::Item { fields: f, .. }
                if f.get("case").is_some() && f.get("received").is_some() =>
            {
                f
            }
            _ => continue,
        };
        case_lines += 1;
        let keys: Vec<&str> =
            fields.iter().map(|(k, _)| k).filter(|k| !matches!(*k, "count" | "next")).collect();
        let mut at = 0;
        for k in &keys {
            match order[at..].iter().position(|o| o == k) {
                Some(i) => at += i + 1,
                None => panic!(
                    "protocol.md:{}: `{k}` is not where the formatter writes it (order {order:?}): {reply}",
                    n + 1
                ),
            }
        }
        let racing = matches!(fields.get("status"), Some("dispatched" | "handling"));
        assert_eq!(fields.get("warn_at").is_some(), racing, "protocol.md:{}: warn_at: {reply}", n + 1);
    }
    assert!(case_lines >= 10, "the worked sessions' case lines were not found ({case_lines})");
}
