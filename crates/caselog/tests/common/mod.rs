//! What the case log's integration tests share.

use gridline_model::{Actor, Case, CaseId, CaseNo, Event, EventKind, Intake, Timestamp};

/// Case `i`'s first event and the case it starts: `JD-20260101-{i + 1}`.
pub fn accepted(i: u32) -> (Event, Case) {
    let at = Timestamp(1_790_000_000_000 + i as i64);
    let id = CaseId::new_at(at);
    let event = Event {
        case: id,
        seq: 1,
        at,
        actor: Actor::system(),
        kind: EventKind::Accepted {
            no: CaseNo::new("JD", 20260101, i + 1),
            intake: Intake { text: format!("case {i}").into(), ..Intake::default() },
            category: "other".into(),
            township: None,
        },
    };
    let case = Case::from_first(&event).unwrap();
    (event, case)
}
