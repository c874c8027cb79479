//! Which group a case falls in.
//!
//! Keys borrow from the case record, so grouping a million cases allocates
//! nothing per case; only `month` is computed (the local month of reception).
//! Each key is hashed once, with a hash fit for short names.

use gridline_model::{AuditBy, Case};

/// The label of a case that has no value for the grouping (not yet
/// dispatched, no department, no known township).
pub const NONE: &str = "-";

/// A group, borrowed from the case it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupKey<'a> {
    Text(&'a str),
    /// The local calendar month of reception.
    Month {
        year: i64,
        month: u32,
    },
}

impl<'a> GroupKey<'a> {
    /// The group of `case` for `by`:
    /// - `county`: one group, `county`;
    /// - `township`: the township of the case's location (known before dispatch, too);
    /// - `grid`, `worker`, `department`: the current assignment (a case waiting for
    ///   dispatch, returned or reopened has none: `-`; no department: `-`);
    /// - `category`: the category the case is handled under;
    /// - `month`: the month it was received, at `utc_offset_min`.
    pub fn of(case: &'a Case, by: AuditBy, utc_offset_min: i32) -> GroupKey<'a> {
        match by {
            AuditBy::County => GroupKey::Text("county"),
            AuditBy::Month => {
                let c = case.received_at.civil(utc_offset_min);
                GroupKey::Month { year: c.year, month: c.month }
            }
            _ => GroupKey::Text(GroupKey::of_text(case, by).unwrap_or(NONE)),
        }
    }

    /// The name a text grouping borrows from the case, without computing
    /// anything; `None` for `county` and `month`, and for a case without one.
    pub fn of_text(case: &'a Case, by: AuditBy) -> Option<&'a str> {
        let a = || case.assignment.as_ref();
        match by {
            AuditBy::County | AuditBy::Month => None,
            AuditBy::Township => case.township.as_deref(),
            AuditBy::Grid => a().map(|a| a.grid.as_str()),
            AuditBy::Worker => a().map(|a| a.worker.as_str()),
            AuditBy::Department => a().and_then(|a| a.department.as_deref()),
            AuditBy::Category => Some(&case.category),
        }
    }

    /// The group the case's response is charged to, where that is not the
    /// case's own: for `grid`, `worker` and `department`, the assignment
    /// the response was judged under, when the case has moved on since
    /// (`Case::responder`); `None` otherwise.
    pub fn of_responder(case: &'a Case, by: AuditBy) -> Option<GroupKey<'a>> {
        let r = case.responder.as_deref()?;
        let text = match by {
            AuditBy::Grid => Some(r.grid.as_str()),
            AuditBy::Worker => Some(r.worker.as_str()),
            AuditBy::Department => r.department.as_deref(),
            _ => return None,
        };
        let key = GroupKey::Text(text.unwrap_or(NONE));
        (key != GroupKey::of(case, by, 0)).then_some(key)
    }

    /// The label a row prints: the text itself, or `YYYY-MM`.
    pub fn label(self) -> String {
        match self {
            GroupKey::Text(s) => s.to_string(),
            GroupKey::Month { year, month } => format!("{year:04}-{month:02}"),
        }
    }
}

/// A key with its hash computed once, up front (see [`crate::audit`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hashed<'a> {
    pub(crate) hash: u64,
    pub(crate) key: GroupKey<'a>,
}

impl<'a> Hashed<'a> {
    pub(crate) fn new(key: GroupKey<'a>) -> Hashed<'a> {
        let hash = match key {
            GroupKey::Text(s) => hash_bytes(s.as_bytes()),
            GroupKey::Month { year, month } => mix(0x4d4f_4e54_4800_0000 ^ (year as u64), u64::from(month)),
        };
        Hashed { hash, key }
    }
}

impl PartialEq for Hashed<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.hash == o.hash && self.key == o.key
    }
}

impl Eq for Hashed<'_> {}

impl std::hash::Hash for Hashed<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// A hasher for keys that carry their own hash: it passes the `u64` through.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = hash_bytes(bytes);
    }
    fn write_u64(&mut self, h: u64) {
        self.0 = h;
    }
}

const K: u64 = 0x517c_c1b7_2722_0a95;

fn mix(h: u64, w: u64) -> u64 {
    (h.rotate_left(5) ^ w).wrapping_mul(K)
}

/// FxHash-style: fast for the short names groups have; not DoS-resistant,
/// which does not matter here (the keys are the county's own names).
fn hash_bytes(b: &[u8]) -> u64 {
    let mut h = b.len() as u64;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        h = mix(h, u64::from_le_bytes(c.try_into().expect("8 bytes")));
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    // Finish with a multiply-shift so the high bits hashbrown uses are mixed too.
    let h = mix(h, u64::from_le_bytes(tail));
    h ^ (h >> 29)
}
