//! Property tests; they stand in for a `cargo fuzz` target (which needs a
//! nightly toolchain this project does not have):
//!
//! - any command the parser can produce survives `format_request` ->
//!   `parse_request` unchanged;
//! - no input, valid UTF-8 or lossily decoded bytes, panics either parser,
//!   and every request error is written and read back intact;
//! - replies written by `write_reply` / `write_error` read back with the
//!   same fields.

use gridline_model::{
    Actor, AuditBy, Case, CaseId, CaseNo, CaseRef, CaseView, Command, Error, Event, EventKind, Intake,
    Location, Page, Priority, Reply, Role, Timestamp,
};
use gridline_protocol::{
    format_request, parse_reply_line, parse_request, write_error, write_reply, Fields, FormatCtx, ReplyLine,
};
use proptest::prelude::*;
use proptest::strategy::Union;

/// Values as residents and operators write them: Chinese, quotes,
/// backslashes, `=`, spaces, newlines, tabs, and anything printable.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        "[a-zA-Z0-9_.:-]{1,12}",
        "[a-z0-9 \"\\\\=\\n\\t，。、供暖小区路灯不亮王女士鸡东镇\u{3000}]{1,40}",
        "([^\\p{Cc}]|\\n|\\t){1,30}",
    ]
    .prop_filter("not only spaces or characters that draw nothing", |s| {
        !s.chars().all(|c| c.is_whitespace() || gridline_protocol::is_invisible(c))
    })
    .boxed()
}

/// Values on one line, as an address: a text without line breaks, tabs or
/// other controls.
fn line() -> BoxedStrategy<String> {
    text()
        .prop_filter("one line", |s| {
            !s.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
        })
        .boxed()
}

/// Short values: ids, names, categories.
fn word() -> BoxedStrategy<String> {
    prop_oneof!["[A-Za-z0-9_-]{1,10}", "[鸡东镇网格员张王李 \"=]{1,8}"]
        .prop_filter("not only spaces", |s| !s.trim().is_empty())
        .boxed()
}

fn case_ref() -> BoxedStrategy<CaseRef> {
    prop_oneof![
        any::<[u8; 16]>().prop_map(|b| CaseRef::Id(CaseId::from_bytes(b))),
        "JD-20[0-9]{6}-[0-9]{6}".prop_map(|s| CaseRef::No(CaseNo(s.into()))),
        // As the parser gives them: a number in capitals.
        word().prop_map(|s| CaseRef::No(CaseNo(s.to_ascii_uppercase().into()))),
    ]
    .boxed()
}

/// Times in the forms `Timestamp::parse` accepts.
fn time() -> BoxedStrategy<String> {
    (0i64..4_102_444_800_000, -12i32..=14, 0usize..3)
        .prop_map(|(ms, off_h, form)| {
            let full = Timestamp(ms).rfc3339(off_h * 60);
            match form {
                0 => full,
                1 => full[..10].to_string(),
                _ => full[..16].to_string(),
            }
        })
        .boxed()
}

fn page() -> BoxedStrategy<Page> {
    (proptest::option::of(1u32..=1000), proptest::option::of(word()))
        .prop_map(|(limit, after)| Page { limit, after })
        .boxed()
}

fn priority() -> BoxedStrategy<Priority> {
    proptest::sample::select(Priority::ALL.to_vec()).boxed()
}

/// Degrees within `-max..=max`: ordinary ones, and now and then a tiny
/// one (down to subnormals), which `Display` writes in hundreds of digits.
fn coordinate(max: f64) -> BoxedStrategy<f64> {
    prop_oneof![
        4 => -max..=max,
        1 => (-max..=max, 0i32..=330).prop_map(|(x, e)| x * 10f64.powi(-e)),
    ]
    .boxed()
}

fn location() -> BoxedStrategy<Location> {
    (
        proptest::option::of((coordinate(180.0), coordinate(90.0))),
        proptest::option::of(word()),
        proptest::option::of(line()),
    )
        .prop_filter("some location", |(p, g, a)| p.is_some() || g.is_some() || a.is_some())
        .prop_map(|(point, grid, address)| Location {
            point,
            grid: grid.map(Into::into),
            address: address.map(Into::into),
        })
        .boxed()
}

fn intake(with_req: bool) -> BoxedStrategy<Intake> {
    let opt = || proptest::option::of(word());
    let phone = proptest::option::of("\\+?[0-9]{3,15}");
    (text(), opt(), location(), phone, opt(), opt(), priority(), opt())
        .prop_map(move |(text, category, location, phone, name, channel, priority, req)| Intake {
            text: text.into(),
            category: category.map(Into::into),
            location,
            phone: phone.map(Into::into),
            name: name.map(Into::into),
            channel: channel.map(Into::into),
            priority,
            req: if with_req { req.map(Into::into) } else { None },
        })
        .boxed()
}

fn command() -> impl Strategy<Value = Command> {
    let ot = || proptest::option::of(text());
    let ow = || proptest::option::of(word());
    Union::new(vec![
        word().prop_map(|token| Command::Auth { token }).boxed(),
        intake(true).prop_map(Command::Accept).boxed(),
        intake(false).prop_map(Command::Route).boxed(),
        (ow(), page()).prop_map(|(worker, page)| Command::Pull { worker, page }).boxed(),
        case_ref().prop_map(|case| Command::Claim { case }).boxed(),
        (case_ref(), text(), proptest::option::of(line()))
            .prop_map(|(case, text, req)| Command::Note { case, text, req })
            .boxed(),
        (case_ref(), text()).prop_map(|(case, reason)| Command::Return { case, reason }).boxed(),
        (case_ref(), text()).prop_map(|(case, result)| Command::Close { case, result }).boxed(),
        (case_ref(), any::<bool>(), proptest::option::of(1u8..=5), ot())
            .prop_map(|(case, satisfied, score, text)| Command::Feedback { case, satisfied, score, text })
            .boxed(),
        (case_ref(), time(), text())
            .prop_map(|(case, until, reason)| Command::Extend { case, until, reason })
            .boxed(),
        (case_ref(), any::<bool>(), ot())
            .prop_map(|(case, approve, reason)| Command::DecideExtension { case, approve, reason })
            .boxed(),
        (case_ref(), word()).prop_map(|(case, worker)| Command::Dispatch { case, worker }).boxed(),
        case_ref().prop_map(|case| Command::Get { case }).boxed(),
        (ow(), ow(), page())
            .prop_map(|(township, grid, page)| Command::Overdue { township, grid, page })
            .boxed(),
        (
            proptest::sample::select(AuditBy::ALL.to_vec()),
            proptest::option::of(time()),
            proptest::option::of(time()),
        )
            .prop_map(|(by, from, to)| Command::Audit { by, from, to })
            .boxed(),
        (proptest::sample::select(vec![Role::Worker, Role::Operator, Role::Supervisor]), word(), ow())
            .prop_map(|(role, w, name)| Command::Token {
                role,
                worker: (role == Role::Worker).then_some(w),
                name,
            })
            .boxed(),
        word().prop_map(|name| Command::Revoke { name }).boxed(),
        any::<bool>().prop_map(|reset| Command::Stats { reset }).boxed(),
        Just(Command::Ping).boxed(),
        Just(Command::Help).boxed(),
        Just(Command::Quit).boxed(),
    ])
}

/// Lines made of the protocol's own pieces, to reach deep into the parser.
fn protocol_ish() -> impl Strategy<Value = String> {
    let verb = proptest::sample::select(gridline_protocol::verbs().collect::<Vec<_>>());
    let key = "(text|case|lon|lat|grid|limit|score|satisfied|approve|until|role|worker|[a-z_]{1,4})";
    let value = "(\"([^\"\\\\]|\\\\.){0,6}\"?|[^ \"]{0,6}|-?[0-9]{1,4}(\\.[0-9]{0,3})?|yes|no|\\\\\
                 |20[0-9]{2}-[01][0-9]-[0-3][0-9](T[0-2][0-9]:[0-5][0-9](:[0-5][0-9])?)?([+-][^ \"=]{0,5}|Z)?)";
    let pair = format!("{key}={value}");
    (verb, proptest::collection::vec(proptest::string::string_regex(&pair).unwrap(), 0..8), "[ \t\r]{0,2}")
        .prop_map(|(v, pairs, tail)| format!("{v} {}{tail}", pairs.join(" ")))
}

/// Writes an error, reads it back and checks it is the same error on one line.
fn error_reads_back(e: &Error) -> Result<(), TestCaseError> {
    let mut out = String::new();
    write_error(&mut out, e);
    prop_assert!(out.ends_with('\n'));
    prop_assert_eq!(out.matches('\n').count(), 1);
    let back = parse_reply_line(&out).map_err(|p| TestCaseError::fail(p.to_string()))?;
    prop_assert_eq!(back, ReplyLine::Err { code: e.code.into(), message: e.message.clone() });
    Ok(())
}

const CTX: FormatCtx = FormatCtx { utc_offset_min: 480, warn_at_percent: 80 };

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn commands_round_trip(cmd in command()) {
        let line = format_request(&cmd);
        prop_assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
        prop_assert_eq!(parse_request(&line), Ok(cmd.clone()), "line {:?}", line);
        prop_assert_eq!(parse_request(&format!("{line}\r\n")), Ok(cmd.clone()));
        // Verbs are case-insensitive.
        let lower = format!("{}{}", cmd.verb().to_lowercase(), &line[cmd.verb().len()..]);
        prop_assert_eq!(parse_request(&lower), Ok(cmd));
    }

    #[test]
    fn any_string_is_safe(s in any::<String>()) {
        if let Err(e) = parse_request(&s) {
            error_reads_back(&e)?;
        }
        let _ = parse_reply_line(&s);
    }

    #[test]
    fn any_bytes_are_safe(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let s = String::from_utf8_lossy(&b);
        if let Err(e) = parse_request(&s) {
            error_reads_back(&e)?;
        }
        let _ = parse_reply_line(&s);
    }

    #[test]
    fn protocol_ish_lines_are_safe(s in protocol_ish()) {
        match parse_request(&s) {
            // Whatever parses is written back canonically and parses the same.
            Ok(cmd) => prop_assert_eq!(parse_request(&format_request(&cmd)), Ok(cmd)),
            Err(e) => error_reads_back(&e)?,
        }
        let _ = parse_reply_line(&s);
    }

    /// Time values reach `Timestamp::parse`, which once sliced inside a
    /// multi-byte character of an offset; date-shaped strings with any tail.
    #[test]
    fn time_shaped_values_are_safe(
        s in "20[0-9]{2}-[01][0-9]-[0-3][0-9]([T ][0-2][0-9]:[0-5][0-9](:[0-5][0-9])?)?([+-]|Z)?.{0,6}",
    ) {
        let line = format_request(&Command::Audit { by: AuditBy::County, from: Some(s), to: None });
        match parse_request(&line) {
            Ok(cmd) => prop_assert_eq!(parse_request(&format_request(&cmd)), Ok(cmd)),
            Err(e) => error_reads_back(&e)?,
        }
    }

    #[test]
    fn errors_round_trip(code in proptest::sample::select(gridline_model::ErrorCode::ALL.to_vec()),
                         message in "([^\\p{Cc}]|\\n|\\t)*") {
        error_reads_back(&Error::new(code, message))?;
    }

    #[test]
    fn fields_and_rows_round_trip(
        rows in proptest::collection::vec(
            proptest::collection::vec(("[a-z0-9_]{1,12}", "([^\\p{Cc}]|\\n|\\t){0,20}"), 0..6), 0..5),
    ) {
        let rows: Vec<Vec<(String, String)>> = rows;
        let mut out = String::new();
        write_reply(&mut out, &Reply::Fields(rows.concat()), &CTX);
        write_reply(&mut out, &Reply::Rows(rows.clone()), &CTX);
        let lines: Vec<ReplyLine> = out.lines().map(|l| parse_reply_line(l).unwrap()).collect();
        prop_assert_eq!(&lines[0], &ReplyLine::Ok(Fields(rows.concat())));
        prop_assert_eq!(lines[1].count(), Some(rows.len()));
        prop_assert_eq!(lines.len(), rows.len() + 2);
        for (line, row) in lines[2..].iter().zip(&rows) {
            prop_assert_eq!(line, &ReplyLine::Item { kind: "ROW".into(), fields: Fields(row.clone()) });
        }
    }

    #[test]
    fn case_summary_round_trips(intake in intake(true), ms in 0i64..4_102_444_800_000) {
        let id = CaseId::new_at(Timestamp(ms));
        let first = Event {
            case: id,
            seq: 1,
            at: Timestamp(ms),
            actor: Actor { role: Role::Operator, name: "op".into() },
            kind: EventKind::Accepted {
                no: CaseNo::new("JD", 20261124, 1),
                intake: intake.clone(),
                category: "heating".into(),
                township: None,
            },
        };
        let case = Case::from_first(&first).unwrap();
        let mut out = String::new();
        write_reply(&mut out, &Reply::Detail { case: CaseView::new(std::sync::Arc::new(case), true), events: vec![first], hold: Default::default() }, &CTX);
        let lines: Vec<ReplyLine> = out.lines().map(|l| parse_reply_line(l).unwrap()).collect();
        prop_assert_eq!(lines.len(), 2);
        let ReplyLine::Ok(f) = &lines[0] else { return Err(TestCaseError::fail("not OK")) };
        let id_s = id.to_string();
        prop_assert_eq!(f.get("case"), Some(id_s.as_str()));
        prop_assert_eq!(f.get("text"), Some(intake.text.as_str()));
        prop_assert_eq!(f.get("address"), intake.location.address.as_deref());
        prop_assert_eq!(f.get("phone"), intake.phone.as_deref());
        prop_assert_eq!(f.get("name"), intake.name.as_deref());
        prop_assert_eq!(f.get("priority"), Some(intake.priority.as_str()));
        let received = Timestamp::parse(f.get("received").unwrap(), 0).unwrap();
        prop_assert_eq!(received.0, ms - ms % 1000);
        if let Some((lon, lat)) = intake.location.point {
            prop_assert_eq!(f.get("lon").unwrap().parse::<f64>().unwrap(), lon);
            prop_assert_eq!(f.get("lat").unwrap().parse::<f64>().unwrap(), lat);
        }
    }
}
