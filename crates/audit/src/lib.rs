//! Audit figures from case records: counts per group. (Issue 6 extends this
//! with closure-time percentiles and the county's rates.)

use std::collections::BTreeMap;

use gridline_model::{AuditBy, Case, Row, Timestamp};

/// What to audit: the grouping, the window of reception times, and "now".
#[derive(Clone, Debug)]
pub struct Query {
    pub by: AuditBy,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub now: Timestamp,
    pub utc_offset_min: i32,
}

/// The group a case falls in for `by`.
pub fn group_of(case: &Case, q: &Query) -> String {
    let none = || "-".to_string();
    match q.by {
        AuditBy::County => "county".into(),
        AuditBy::Township => case.township.clone().unwrap_or_else(none),
        AuditBy::Grid => case.grid().map(str::to_string).unwrap_or_else(none),
        AuditBy::Department => {
            case.assignment.as_ref().and_then(|a| a.department.clone()).unwrap_or_else(none)
        }
        AuditBy::Worker => case.worker().map(str::to_string).unwrap_or_else(none),
        AuditBy::Category => case.category.clone(),
        AuditBy::Month => {
            let c = case.received_at.civil(q.utc_offset_min);
            format!("{:04}-{:02}", c.year, c.month)
        }
    }
}

/// One row per group, ordered by group.
pub fn audit<'a>(cases: impl Iterator<Item = &'a Case>, q: &Query) -> Vec<Row> {
    let mut groups: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for c in cases {
        if q.from.is_some_and(|f| c.received_at < f) || q.to.is_some_and(|t| c.received_at >= t) {
            continue;
        }
        let g = groups.entry(group_of(c, q)).or_default();
        g.0 += 1;
        if !c.status.is_open() {
            g.1 += 1;
        }
    }
    groups
        .into_iter()
        .map(|(k, (received, closed))| {
            vec![
                (q.by.as_str().to_string(), k),
                ("received".into(), received.to_string()),
                ("closed".into(), closed.to_string()),
                ("open".into(), (received - closed).to_string()),
            ]
        })
        .collect()
}
