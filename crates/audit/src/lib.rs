//! Audit figures from case records: per group, counts, closure-time
//! percentiles and the county's rates. `docs/audit.md` defines every figure.
//!
//! - [`Query`]: the grouping, the reception-time window and "now".
//! - [`audit`]: one pass over the cases, one [`Row`] per group, then `total`.
//! - [`group`]: which group a case falls in.
//! - [`tally`]: what one case adds to its group's figures.
//! - [`format`](mod@format): percentages and hours as the rows print them.
//!
//! **Invariant:** pure and IO-free. Figures come from the case records
//! (the indexed state the engine keeps), never from replaying events, so a
//! county-wide audit of 1,000,000 cases is one linear pass.

pub mod format;
pub mod group;
pub mod tally;

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use gridline_model::{AuditBy, Case, Row, Timestamp};

use group::{Hashed, PassThrough};

pub use group::GroupKey;
pub use tally::{closure_s, CaseFacts, Tally};

/// Cases read ahead per batch (see [`audit`]).
const BATCH: usize = 64;

/// The label of the final row that sums every group (all groupings but `county`).
pub const TOTAL: &str = "total";

/// What to audit: the grouping, the window of reception times, and "now".
#[derive(Clone, Debug)]
pub struct Query {
    pub by: AuditBy,
    /// Cases received at or after this time (inclusive).
    pub from: Option<Timestamp>,
    /// Cases received before this time (exclusive).
    pub to: Option<Timestamp>,
    /// The time "overdue" and "past due" are judged at.
    pub now: Timestamp,
    /// The county's offset east of UTC, for `month`.
    pub utc_offset_min: i32,
}

/// Whether `[from, to)` can hold no case at all: `to` at or before
/// `from`. Both `AUDIT` and `gridline audit` refuse such a window rather
/// than answer it with no rows, which reads as "no cases received".
pub fn window_is_empty(from: Option<Timestamp>, to: Option<Timestamp>) -> bool {
    matches!((from, to), (Some(f), Some(t)) if t <= f)
}

impl Query {
    /// Whether the case's reception time falls in `[from, to)`.
    pub fn in_window(&self, case: &Case) -> bool {
        self.from.is_none_or(|f| case.received_at >= f) && self.to.is_none_or(|t| case.received_at < t)
    }
}

/// The column names, in order: the grouping's name, then every figure.
pub fn header(by: AuditBy) -> Vec<&'static str> {
    let mut h = vec![by.as_str()];
    h.extend_from_slice(&Tally::COLUMNS);
    h
}

/// The group a case falls in for `by`, as its row labels it.
pub fn group_of(case: &Case, q: &Query) -> String {
    GroupKey::of(case, q.by, q.utc_offset_min).label()
}

/// Reads what the tally will read of `case` (a field on each part of the
/// record, the first byte of the group's name) and folds it into a byte, so
/// the loads happen and cannot be optimised away.
fn touch(case: &Case, by: AuditBy) -> u8 {
    let name = GroupKey::of_text(case, by).and_then(|s| s.as_bytes().first().copied()).unwrap_or(0);
    let fields = [
        case.status as u8,
        u8::from(case.dispatched_at.is_some()),
        u8::from(case.due_close.is_some()),
        u8::from(case.closed_at.is_some()),
        u8::from(case.feedback.is_some()),
        case.reopens as u8,
    ];
    fields.iter().fold(name, |acc, b| acc ^ b)
}

/// One row per group, ordered by group label; for every grouping but
/// `county`, a final `total` row over all groups. No cases, no rows.
pub fn audit<'a>(cases: impl Iterator<Item = &'a Case>, q: &Query) -> Vec<Row> {
    let mut index: HashMap<Hashed<'a>, usize, BuildHasherDefault<PassThrough>> = HashMap::default();
    let mut groups: Vec<(GroupKey<'a>, Tally)> = Vec::new();
    // Consecutive cases often share a group (always, for `county`): skip the lookup.
    let mut last: Option<(Hashed<'a>, usize)> = None;
    // (group, closure time) of every closed case, in the order met: appending
    // to one array is cheaper than to one per group, with thousands of groups.
    let mut closures: Vec<(u32, u32)> = Vec::new();
    // Per batch, first touch every case: its record and its group's name, both
    // scattered on the heap. These loads do not depend on each other, so the
    // CPU overlaps their cache misses instead of waiting for each in turn
    // (twice as fast over a million cases); then tally, from the cache.
    let mut batch: Vec<&'a Case> = Vec::with_capacity(BATCH);
    let mut cases = cases.filter(|c| q.in_window(c));
    loop {
        batch.clear();
        batch.extend(cases.by_ref().take(BATCH));
        if batch.is_empty() {
            break;
        }
        std::hint::black_box(batch.iter().fold(0u8, |acc, c| acc ^ touch(c, q.by)));
        for case in &batch {
            let key = Hashed::new(GroupKey::of(case, q.by, q.utc_offset_min));
            let ix = match last {
                Some((k, ix)) if k == key => ix,
                _ => {
                    let ix = *index.entry(key).or_insert_with(|| {
                        groups.push((key.key, Tally::default()));
                        groups.len() - 1
                    });
                    last = Some((key, ix));
                    ix
                }
            };
            let mut facts = CaseFacts::of(case, q.now);
            // A response owed under an earlier assignment is that one's.
            if let (Some(on_time), Some(owed)) = (facts.response, GroupKey::of_responder(case, q.by)) {
                let owed = Hashed::new(owed);
                let at = *index.entry(owed).or_insert_with(|| {
                    groups.push((owed.key, Tally::default()));
                    groups.len() - 1
                });
                groups[at].1.add_response(on_time);
                facts.response = None;
            }
            groups[ix].1.add(&facts);
            if let Some(ms) = facts.closure_ms {
                closures.push((ix as u32, closure_s(ms)));
            }
        }
    }

    // Closure times by group: a counting sort of `closures` on the group
    // (each group has `closed` of them), so each group's times are one slice.
    let mut starts = Vec::with_capacity(groups.len() + 1);
    starts.push(0usize);
    for (_, t) in &groups {
        starts.push(starts[starts.len() - 1] + t.closed as usize);
    }
    let mut next = starts.clone();
    let mut times = vec![0u32; closures.len()];
    for &(g, s) in &closures {
        times[next[g as usize]] = s;
        next[g as usize] += 1;
    }
    drop(closures);

    let mut labelled: Vec<(String, Tally, std::ops::Range<usize>)> =
        groups.into_iter().enumerate().map(|(i, (k, t))| (k.label(), t, starts[i]..starts[i + 1])).collect();
    labelled.sort_by(|a, b| a.0.cmp(&b.0));
    let total = if q.by != AuditBy::County && !labelled.is_empty() {
        let mut all = Tally::default();
        for (_, t, _) in &labelled {
            all.merge(t);
        }
        Some((TOTAL.to_string(), all, 0..times.len()))
    } else {
        None
    };
    let by = q.by.as_str();
    labelled
        .into_iter()
        .chain(total)
        .map(|(label, t, range)| {
            let mut row: Row = Vec::with_capacity(Tally::COLUMNS.len() + 1);
            row.push((by.to_string(), label));
            row.extend(Tally::COLUMNS.iter().map(|c| c.to_string()).zip(t.figures(&mut times[range])));
            row
        })
        .collect()
}
