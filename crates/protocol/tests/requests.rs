//! Request parsing as a transcript: a line in, and either the command
//! written back in canonical form or the exact `ERR` line out.

use gridline_model::{
    AuditBy, CaseId, CaseNo, CaseRef, Command, ErrorCode, Intake, Location, Page, Priority, Role,
};
use gridline_protocol::{format_request, parse_request, write_error};

/// Parses `line`; renders success as the canonical request line and failure
/// as the `ERR` line (without its newline), and compares with `expected`.
#[track_caller]
fn check(line: &str, expected: &str) {
    let got = match parse_request(line) {
        Ok(cmd) => format_request(&cmd),
        Err(e) => {
            let mut s = String::new();
            write_error(&mut s, &e);
            s.pop();
            s
        }
    };
    assert_eq!(got, expected, "for line {line:?}");
}

#[track_caller]
fn parses_to(line: &str, expected: Command) {
    assert_eq!(parse_request(line), Ok(expected), "for line {line:?}");
}

fn no(s: &str) -> CaseRef {
    CaseRef::No(CaseNo(s.to_string().into()))
}

#[test]
fn session_verbs() {
    check("PING", "PING");
    check("ping", "PING");
    check("  Ping  ", "PING");
    check("HELP", "HELP");
    check("QUIT\r", "QUIT");
    check("QUIT\r\n", "QUIT");
    check("QUIT\n", "QUIT");
    check("AUTH token=s3cr3t", "AUTH token=s3cr3t");
    parses_to("auth token=abc", Command::Auth { token: "abc".into() });
    check("PING now=1", r#"ERR bad_request "unknown field `now` for PING""#);
    check("AUTH", r#"ERR bad_request "missing field `token`""#);
}

#[test]
fn accept_with_every_field() {
    let line = r#"ACCEPT text="小区供暖不热，室温只有12度" category=heating lon=131.12 lat=45.26 grid=G0001 address="鸡东镇 幸福小区3号楼" phone=13812345678 name=王女士 channel=hotline priority=urgent req=op1-0001"#;
    parses_to(
        line,
        Command::Accept(Intake {
            text: "小区供暖不热，室温只有12度".into(),
            category: Some("heating".into()),
            location: Location {
                point: Some((131.12, 45.26)),
                grid: Some("G0001".into()),
                address: Some("鸡东镇 幸福小区3号楼".into()),
            },
            phone: Some("13812345678".into()),
            name: Some("王女士".into()),
            channel: Some("hotline".into()),
            priority: Priority::Urgent,
            req: Some("op1-0001".into()),
        }),
    );
    // Chinese text without spaces needs no quotes, and comes back bare.
    check("ACCEPT text=路灯不亮 grid=G0001", "ACCEPT text=路灯不亮 grid=G0001");
    check("accept grid=G1 text=x priority=NORMAL", "ACCEPT text=x grid=G1");
}

#[test]
fn accept_locations() {
    check("ACCEPT text=x lon=131 lat=45.5", "ACCEPT text=x lon=131 lat=45.5");
    check("ACCEPT text=x address=幸福小区", "ACCEPT text=x address=幸福小区");
    check("ACCEPT text=x", r#"ERR bad_request "missing location: give lon= and lat=, grid= or address=""#);
    check("ACCEPT text=x lon=131", r#"ERR bad_request "missing field `lat` (lon and lat come together)""#);
    check(
        "ACCEPT text=x lat=45 grid=G1",
        r#"ERR bad_request "missing field `lon` (lon and lat come together)""#,
    );
    check("ACCEPT text=x lon=east lat=45", r#"ERR bad_request "lon: not a number""#);
    check("ACCEPT text=x lon=NaN lat=45", r#"ERR bad_request "lon: not a number""#);
    check("ACCEPT text=x lon=inf lat=45", r#"ERR bad_request "lon: not a number""#);
    check("ACCEPT text=x lon=131 lat=95", r#"ERR bad_request "lat must be within -90..90""#);
    check("ACCEPT text=x lon=-181 lat=45", r#"ERR bad_request "lon must be within -180..180""#);
}

/// A tiny coordinate is read from a few characters; written back in full
/// decimals it was over 300 characters, which the parser then refused as
/// too long, so `format_request` wrote a line `parse_request` did not take.
#[test]
fn tiny_coordinates_are_written_back_readably() {
    check("ACCEPT text=x lon=1e-300 lat=-5e-324", "ACCEPT text=x lon=1e-300 lat=-5e-324");
    check("ROUTE text=x lon=0.0000001 lat=1E-7", "ROUTE text=x lon=0.0000001 lat=0.0000001");
    check("ROUTE text=x lon=1e2 lat=-0", "ROUTE text=x lon=100 lat=-0");
    for line in ["ACCEPT text=x lon=1e-300 lat=-5e-324", "ROUTE text=x lon=2.2250738585072014e-308 lat=0"] {
        let cmd = parse_request(line).unwrap();
        assert_eq!(parse_request(&format_request(&cmd)), Ok(cmd), "{line}");
    }
}

#[test]
fn accept_errors() {
    check("ACCEPT grid=G1", r#"ERR bad_request "missing field `text`""#);
    check("ACCEPT txt=x grid=G1", r#"ERR bad_request "unknown field `txt` for ACCEPT""#);
    check(
        "ACCEPT text=x grid=G1 priority=high",
        r#"ERR bad_request "priority must be normal, urgent or emergency""#,
    );
    check("ACCEPT text=\"\" grid=G1", r#"ERR bad_request "text: empty value (the request needs one)""#);
    check("GET case=", r#"ERR bad_request "case: empty value (the request needs one)""#);
    check("ACCEPT text=x grid=", r#"ERR bad_request "grid: empty value (leave the field out instead)""#);
    // Spaces say nothing either (the ideographic one too).
    check("ACCEPT text=\"   \" grid=G1", r#"ERR bad_request "text: only spaces (the request needs one)""#);
    check(
        "ACCEPT text=x grid=G1 name=\"\u{3000}\"",
        r#"ERR bad_request "name: only spaces (leave the field out instead)""#,
    );
    // So do characters that draw nothing: a zero-width space, a byte-order mark.
    check(
        "ACCEPT text=\u{200b}\u{feff} grid=G1",
        r#"ERR bad_request "text: only spaces and characters that draw nothing (zero-width, U+FEFF...) (the request needs one)""#,
    );
    // A name, an address or a number is one line, as an operator may paste
    // it: a tab or line break in one reads as a space. Codes, ids and
    // categories refuse them; a text may have several lines.
    let Command::Accept(i) = parse_request(
        "ACCEPT text=\"漏水\\n第二行\" grid=G1 name=\"王\\n女士\" phone=\"138\\t1234 5678\" address=\"南华路\u{2028}18号\"",
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(i.text, "漏水\n第二行");
    assert_eq!(i.name.as_deref(), Some("王 女士"));
    assert_eq!(i.phone.as_deref(), Some("138 1234 5678"));
    assert_eq!(i.location.address.as_deref(), Some("南华路 18号"));
    for (field, value) in [("category", r"路\n灯"), ("req", r"op1\t7"), ("channel", "web\u{2029}")] {
        check(
            &format!("ACCEPT text=x grid=G1 {field}=\"{value}\""),
            &format!(
                r#"ERR bad_request "{field}: a line break, tab or other control character (only texts may have them)""#
            ),
        );
    }
    // A secret is taken as the token file holds it.
    assert_eq!(
        parse_request("AUTH token=\"pass\\tphrase of sixteen\""),
        Ok(Command::Auth { token: "pass\tphrase of sixteen".into() })
    );
    let long = "长".repeat(4001);
    check(
        &format!("ACCEPT text={long} grid=G1"),
        r#"ERR bad_request "text: too long (4001 characters, at most 4000)""#,
    );
    let ok = "长".repeat(4000);
    assert!(parse_request(&format!("ACCEPT text={ok} grid=G1")).is_ok());
    for ok in [
        "13812345678",
        "+86 138 1234 5678",
        "0467-5221234",
        "(0467) 522-1234",
        "110",
        "0467-5221234转801",
        "0467-5221234#801",
        "13812345678/13987654321",
        "138.1234.5678",
    ] {
        let Ok(Command::Accept(i)) = parse_request(&format!("ACCEPT text=x grid=G1 phone=\"{ok}\"")) else {
            panic!("{ok}")
        };
        assert_eq!(i.phone.as_deref(), Some(ok));
    }
    // As an input method types them: stored in ASCII.
    for (typed, stored) in [
        ("１３８１２３４５６７８", "13812345678"),
        ("（0467）５２２１２３４", "(0467)5221234"),
        ("0467－5221234", "0467-5221234"),
    ] {
        let Ok(Command::Accept(i)) = parse_request(&format!("ACCEPT text=x grid=G1 phone={typed}")) else {
            panic!("{typed}")
        };
        assert_eq!(i.phone.as_deref(), Some(stored), "{typed}");
    }
    for bad in ["电话号码", "12", "无", "call me"] {
        check(
            &format!("ACCEPT text=x grid=G1 phone=\"{bad}\""),
            &format!("ERR bad_request \"phone: `{bad}` is not a phone number (at least 3 digits, and more digits than other characters)\""),
        );
    }
    let phone = "1".repeat(257);
    check(
        &format!("ACCEPT text=x grid=G1 phone={phone}"),
        r#"ERR bad_request "phone: too long (257 characters, at most 256)""#,
    );
}

#[test]
fn route_takes_accepts_fields_but_not_req() {
    check("ROUTE text=供暖 lon=131.1 lat=45.2", "ROUTE text=供暖 lon=131.1 lat=45.2");
    check("ROUTE text=x grid=G1 category=water", "ROUTE text=x category=water grid=G1");
    check("ROUTE text=x grid=G1 req=r1", r#"ERR bad_request "unknown field `req` for ROUTE""#);
}

#[test]
fn worker_verbs() {
    check("PULL", "PULL");
    check(
        "PULL worker=W00012 limit=50 after=JD-20261124-000050",
        "PULL worker=W00012 limit=50 after=JD-20261124-000050",
    );
    check("PULL limit=0", r#"ERR bad_request "limit must be 1..1000""#);
    check("PULL limit=1001", r#"ERR bad_request "limit must be 1..1000""#);
    check("PULL limit=ten", r#"ERR bad_request "limit must be 1..1000""#);
    check("CLAIM case=JD-20261124-000001", "CLAIM case=JD-20261124-000001");
    check("CLAIM", r#"ERR bad_request "missing field `case`""#);
    check("CLAIM cse=JD-1", r#"ERR bad_request "unknown field `cse` for CLAIM""#);
    check(
        r#"NOTE case=JD-20261124-000001 text="已联系供热公司，\"明天\"上门""#,
        r#"NOTE case=JD-20261124-000001 text="已联系供热公司，\"明天\"上门""#,
    );
    check("NOTE case=JD-1", r#"ERR bad_request "missing field `text`""#);
    check("RETURN case=JD-1 reason=不属于本网格", "RETURN case=JD-1 reason=不属于本网格");
    check("RETURN case=JD-1", r#"ERR bad_request "missing field `reason`""#);
    check(r#"CLOSE case=JD-1 result="已修复\n用户确认""#, r#"CLOSE case=JD-1 result="已修复\n用户确认""#);
    parses_to(
        r#"CLOSE case=JD-1 result="line1\nline2\tend \\ done""#,
        Command::Close { case: no("JD-1"), result: "line1\nline2\tend \\ done".into() },
    );
}

#[test]
fn case_refs_are_ids_or_numbers() {
    let id = CaseId::from_bytes([0x01, 0x93, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 1]);
    parses_to(&format!("GET case={id}"), Command::Get { case: CaseRef::Id(id) });
    parses_to("GET case=JD-20261124-000123", Command::Get { case: no("JD-20261124-000123") });
    // A number read out over the phone and typed in lower case, as a UUID may be.
    parses_to("GET case=jd-20261124-000123", Command::Get { case: no("JD-20261124-000123") });
    parses_to(&format!("GET case={}", id.to_string().to_uppercase()), Command::Get { case: CaseRef::Id(id) });
}

#[test]
fn feedback() {
    check(
        "FEEDBACK case=JD-1 satisfied=yes score=5 text=很好",
        "FEEDBACK case=JD-1 satisfied=yes score=5 text=很好",
    );
    check("FEEDBACK case=JD-1 satisfied=NO", "FEEDBACK case=JD-1 satisfied=no");
    check("FEEDBACK case=JD-1", r#"ERR bad_request "missing field `satisfied`""#);
    check("FEEDBACK case=JD-1 satisfied=maybe", r#"ERR bad_request "satisfied must be yes or no""#);
    check("FEEDBACK case=JD-1 satisfied=yes score=6", r#"ERR bad_request "score must be 1..5""#);
    check("FEEDBACK case=JD-1 satisfied=yes score=0", r#"ERR bad_request "score must be 1..5""#);
    check("FEEDBACK case=JD-1 satisfied=yes score=4.5", r#"ERR bad_request "score must be 1..5""#);
    check("FEEDBACK case=JD-1 satisfied=yes score=+3", r#"ERR bad_request "score must be 1..5""#);
}

#[test]
fn extend_request_and_decision() {
    parses_to(
        "EXTEND case=JD-1 until=2026-11-30T18:00+08:00 reason=等待配件",
        Command::Extend {
            case: no("JD-1"),
            until: "2026-11-30T18:00+08:00".into(),
            reason: "等待配件".into(),
        },
    );
    parses_to(
        "EXTEND case=JD-1 approve=yes",
        Command::DecideExtension { case: no("JD-1"), approve: true, reason: None },
    );
    check("EXTEND case=JD-1 approve=no reason=期限足够", "EXTEND case=JD-1 approve=no reason=期限足够");
    check("EXTEND case=JD-1 until=2026-11-30", r#"ERR bad_request "missing field `reason`""#);
    let neither = r#"ERR bad_request "missing field `until` (a worker asks with until= and reason=) or `approve` (a supervisor decides with approve=yes|no)""#;
    check("EXTEND case=JD-1 reason=x", neither);
    check("EXTEND case=JD-1", neither);
    check("EXTEND case=JD-1 approve=", r#"ERR bad_request "approve: empty value (the request needs one)""#);
    check(
        "EXTEND case=JD-1 until=tomorrow reason=x",
        "ERR bad_request \"until: `tomorrow` is not a time: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM]\"",
    );
    check("EXTEND case=JD-1 approve=ok", r#"ERR bad_request "approve must be yes or no""#);
    check(
        "EXTEND case=JD-1 approve=yes until=2026-11-30",
        "ERR bad_request \"`until` and `approve` do not go together: a worker asks with until= and reason=, a supervisor decides with approve=\"",
    );
}

#[test]
fn supervisor_verbs() {
    check("DISPATCH case=JD-1 worker=W00012", "DISPATCH case=JD-1 worker=W00012");
    check("DISPATCH case=JD-1", r#"ERR bad_request "missing field `worker`""#);
    check("GET case=JD-1", "GET case=JD-1");
    check("OVERDUE", "OVERDUE");
    check(
        "OVERDUE township=鸡东镇 grid=G0001 limit=10 after=c1",
        "OVERDUE township=鸡东镇 grid=G0001 limit=10 after=c1",
    );
    check("AUDIT", "AUDIT");
    check("AUDIT by=county", "AUDIT");
    check(
        "AUDIT by=month from=2026-01-01 to=2026-12-31T23:59:59",
        "AUDIT by=month from=2026-01-01 to=2026-12-31T23:59:59",
    );
    check(
        "AUDIT by=street",
        r#"ERR bad_request "by must be county, township, grid, department, worker, category or month""#,
    );
    parses_to("AUDIT by=worker", Command::Audit { by: AuditBy::Worker, from: None, to: None });
    parses_to(
        "OVERDUE limit=5",
        Command::Overdue { township: None, grid: None, page: Page { limit: Some(5), after: None } },
    );
}

#[test]
fn token() {
    parses_to(
        "TOKEN role=worker worker=W00012 name=张三",
        Command::Token { role: Role::Worker, worker: Some("W00012".into()), name: Some("张三".into()) },
    );
    check("TOKEN role=operator name=op-2", "TOKEN role=operator name=op-2");
    check("TOKEN role=worker", r#"ERR bad_request "missing field `worker` (required for role=worker)""#);
    check("TOKEN role=supervisor worker=W1", r#"ERR bad_request "worker: only for role=worker""#);
    check("TOKEN role=admin", r#"ERR bad_request "role must be worker, operator or supervisor""#);
    check("TOKEN", r#"ERR bad_request "missing field `role`""#);
    check("REVOKE name=operator-2", "REVOKE name=operator-2");
    check("REVOKE", r#"ERR bad_request "missing field `name`""#);
}

#[test]
fn lexing_errors() {
    check("", r#"ERR bad_request "empty line""#);
    check("\r", r#"ERR bad_request "empty line""#);
    check("   \t ", r#"ERR bad_request "empty line""#);
    check("FROB x=1", r#"ERR unknown_verb "unknown verb `FROB`; HELP lists the verbs""#);
    check(
        "\u{feff}PING",
        r#"ERR bad_request "the line starts with a byte-order mark (U+FEFF): send the verb first""#,
    );
    check("受理 text=x", r#"ERR unknown_verb "unknown verb `受理`; HELP lists the verbs""#);
    check(
        &format!("{} x=1", "X".repeat(40)),
        &format!(r#"ERR unknown_verb "unknown verb `{}…`; HELP lists the verbs""#, "X".repeat(32)),
    );
    check("NOTE case=JD-1 case=JD-2 text=x", r#"ERR bad_request "duplicate field `case`""#);
    check(
        r#"NOTE case=JD-1 text="a\qb""#,
        r#"ERR bad_request "text: bad escape `\\q` (only \\\", \\\\, \\n and \\t are escapes)""#,
    );
    check(r#"NOTE case=JD-1 text="unterminated"#, r#"ERR bad_request "text: unterminated quoted value""#);
    check(
        r#"NOTE case=JD-1 text="ends in backslash\"#,
        r#"ERR bad_request "text: unterminated quoted value""#,
    );
    check(
        r#"NOTE case=JD-1 text="a"b"#,
        r#"ERR bad_request "text: expected a space after the closing quote""#,
    );
    check(
        r#"NOTE case=JD-1 text=a"b"#,
        r#"ERR bad_request "text: a bare value may not contain `\"` or `=`; quote it""#,
    );
    check(
        "NOTE case=JD-1 text=a=b",
        r#"ERR bad_request "text: a bare value may not contain `\"` or `=`; quote it""#,
    );
    check("NOTE case=JD-1 hello", r#"ERR bad_request "expected key=value, got `hello`""#);
    check(
        "NOTE case=JD-1 TEXT=x",
        r#"ERR bad_request "bad key `TEXT`: keys are a-z, 0-9 and _ (at most 32)""#,
    );
    check("NOTE case=JD-1 =x", r#"ERR bad_request "bad key ``: keys are a-z, 0-9 and _ (at most 32)""#);
    check(
        "NOTE case=JD-1 text=a\0b",
        r#"ERR bad_request "control character U+0000 at character 22 is not allowed""#,
    );
    check("PING\0", r#"ERR bad_request "control character U+0000 at character 5 is not allowed""#);
    check(
        "NOTE case=JD-1 text=\"a\rb\"",
        r#"ERR bad_request "control character U+000D at character 23 is not allowed""#,
    );
    check(
        "NOTE case=JD-1 text=\u{7f}",
        r#"ERR bad_request "control character U+007F at character 21 is not allowed""#,
    );
}

#[test]
fn whitespace_rules() {
    // Tabs separate like spaces; a raw tab inside quotes is kept (and written back escaped).
    check("NOTE\tcase=JD-1\t\ttext=x", "NOTE case=JD-1 text=x");
    check("NOTE case=JD-1 text=\"a\tb\"", r#"NOTE case=JD-1 text="a\tb""#);
    // The ideographic space is text, not a separator; the writer quotes it.
    check("NOTE case=JD-1 text=你好\u{3000}世界", "NOTE case=JD-1 text=\"你好\u{3000}世界\"");
    // Only one terminator is stripped: a CR in the middle is still a control character.
    check("PING\r\r", r#"ERR bad_request "control character U+000D at character 5 is not allowed""#);
    // A quoted value may hold '=' and quotes; a backslash in a bare value is literal.
    parses_to(
        r#"NOTE case=JD-1 text="a=b \"c\"""#,
        Command::Note { case: no("JD-1"), text: "a=b \"c\"".into(), req: None },
    );
    parses_to(
        r"NOTE case=JD-1 text=C:\path",
        Command::Note { case: no("JD-1"), text: r"C:\path".into(), req: None },
    );
}

#[test]
fn unknown_fields_are_reported_before_missing_ones() {
    check("RETURN case=JD-1 reson=x", r#"ERR bad_request "unknown field `reson` for RETURN""#);
}

#[test]
fn every_verb_has_help() {
    let help: Vec<&str> = gridline_protocol::HELP.iter().map(|h| h.verb).collect();
    for v in gridline_protocol::verbs() {
        assert!(help.contains(&v), "{v} has no HELP entry");
        let e = parse_request(&format!("{v} zzz=1")).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest, "{v}");
    }
    for h in &help {
        assert!(gridline_protocol::verbs().any(|v| v == *h), "HELP lists {h}, the parser does not");
    }
}

#[test]
fn a_time_with_a_multibyte_offset_is_refused_not_a_panic() {
    // The shrunk case from `time_shaped_values_are_safe` (it used to panic
    // in Timestamp::parse), with a space for its tab, which values other than
    // texts now refuse before they are read as a time.
    check(
        "AUDIT from=\"2000-01-10+ Aࠀ\"",
        "ERR bad_request \"from: `2000-01-10+ Aࠀ` is not a time: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM]\"",
    );
    check(
        "AUDIT from=\"2000-01-10+\\tAࠀ\"",
        "ERR bad_request \"from: a line break, tab or other control character (only texts may have them)\"",
    );
    check(
        "EXTEND case=JD-1 until=2026-11-24T10:00+1é00 reason=x",
        "ERR bad_request \"until: `2026-11-24T10:00+1é00` is not a time: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM]\"",
    );
    check(
        "AUDIT from=2026-11-24T10:00+é:00",
        "ERR bad_request \"from: `2026-11-24T10:00+é:00` is not a time: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM]\"",
    );
}

#[test]
fn a_time_with_an_impossible_offset_is_refused() {
    // `+99:99` has the form but is no offset: it moved the time by four days.
    check(
        "EXTEND case=JD-1 until=2026-11-24T10:00+99:99 reason=x",
        "ERR bad_request \"until: `2026-11-24T10:00+99:99`: the UTC offset is out of range (-23:59 to +23:59)\"",
    );
    check(
        "AUDIT to=2026-11-24T10:00-08:60",
        "ERR bad_request \"to: `2026-11-24T10:00-08:60`: the UTC offset is out of range (-23:59 to +23:59)\"",
    );
    check("AUDIT from=2026-11-24T10:00+14:00", "AUDIT from=2026-11-24T10:00+14:00");
    check("AUDIT from=2026-11-24T10:00-23:59", "AUDIT from=2026-11-24T10:00-23:59");
}

/// A line of many distinct keys (possible before AUTH with
/// --line-bytes-max raised) is checked for duplicates all the way: one
/// repeated 40,000 fields later is still found and named. What it costs
/// (it once took 3 s, each key checked against every earlier one) is
/// measured by `cargo bench --bench protocol` (`parse/ping_40000_fields`).
#[test]
fn a_duplicate_field_is_found_after_many_distinct_ones() {
    let mut line = String::from("PING");
    for i in 0..40_000 {
        line.push_str(&format!(" k{i}=1"));
    }
    let e = parse_request(&line).unwrap_err();
    assert_eq!(e.message, "unknown field `k0` for PING", "without a duplicate: the first unknown field");
    line.push_str(" k7=2");
    let e = parse_request(&line).unwrap_err();
    assert_eq!(e.message, "duplicate field `k7`");
    let e = parse_request(&format!("{line} k39999=3")).unwrap_err();
    assert_eq!(e.message, "duplicate field `k7`", "the first duplicate is the one named");
}
