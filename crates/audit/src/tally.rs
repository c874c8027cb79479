//! What one case adds to its group ([`CaseFacts`]) and a group's running
//! totals ([`Tally`]). `docs/audit.md` is the reference for every definition
//! here; keep the two in step.

use gridline_model::{Case, Status, Timestamp};

use crate::format::{hours, percent, NO_FIGURE};

/// One case's contribution to the audit, judged at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaseFacts {
    /// Ever dispatched to a worker (`dispatched_at` is set).
    pub dispatched: bool,
    /// Closed now (`status == closed`).
    pub closed: bool,
    /// Open and past a deadline it is racing now (see [`CaseFacts::of`]).
    pub overdue: bool,
    /// `closed_at - received_at` of a closed case (never negative).
    pub closure_ms: Option<u64>,
    /// Closed now, and its last close was within the close limit.
    pub closed_on_time: bool,
    /// `Some(on time)` when the case counts in the response rate: it was
    /// claimed (on time or not, judged at the first claim), or it was never
    /// claimed and its claim deadline has passed.
    pub response: Option<bool>,
    /// The latest return visit's verdict, if there is one.
    pub satisfied: Option<bool>,
    /// Returned ("not mine") at least once.
    pub returned: bool,
    /// Closed at least once (now or before a reopen).
    pub closed_once: bool,
    /// Reopened at least once.
    pub reopened: bool,
}

impl CaseFacts {
    /// The facts of `case` at `now`. A deadline `d` is past when `d < now`:
    /// an event at exactly `d` is still on time, as the lifecycle judges it.
    ///
    /// Overdue means open and:
    /// - `dispatched` (not yet claimed): past its claim or close deadline, or
    ///   flagged overdue (claim or close) by the engine;
    /// - `handling`: past its close deadline (as extended), or flagged close-overdue.
    ///
    /// A case waiting for dispatch (`accepted`) has no deadline and is never
    /// overdue; a late claim of a case now handled is counted by the response
    /// rate, not here.
    pub fn of(case: &Case, now: Timestamp) -> CaseFacts {
        let past = |d: Option<Timestamp>| d.is_some_and(|d| d < now);
        let overdue = match case.status {
            Status::Dispatched => {
                case.overdue_claim || case.overdue_close || past(case.due_claim) || past(case.due_close)
            }
            Status::Handling => case.overdue_close || past(case.due_close),
            Status::Accepted | Status::Closed => false,
        };
        let closed = case.status == Status::Closed;
        let response = if case.claimed_at.is_some() {
            // Judged at the first claim, against the claim deadline of that round.
            Some(case.responded_on_time == Some(true))
        } else {
            // Never claimed: late if a claim deadline was missed (recorded on
            // the case for good; a record written before 2026-11-28 has only
            // the flag, which a return or a new dispatch clears) or the
            // current one passed.
            let late = case.responded_on_time == Some(false)
                || case.overdue_claim
                || (case.status == Status::Dispatched && past(case.due_claim));
            late.then_some(false)
        };
        CaseFacts {
            dispatched: case.dispatched_at.is_some(),
            closed,
            overdue,
            closure_ms: case
                .closed_at
                .filter(|_| closed)
                .map(|at| at.since(case.received_at).0.max(0) as u64),
            closed_on_time: closed && case.closed_on_time == Some(true),
            response,
            // The latest visit: the record's, or, once a reopened case is
            // closed again (which clears it for the next round's visit),
            // the unsatisfied one that reopened it, as every reopen follows one.
            satisfied: match &case.feedback {
                Some(f) => Some(f.satisfied),
                None => (case.reopens > 0).then_some(false),
            },
            returned: case.returns > 0,
            closed_once: case.closed_at.is_some(),
            reopened: case.reopens > 0,
        }
    }
}

/// A closure time in whole seconds (rounded down), as the audit keeps them:
/// half the memory of milliseconds, and still exact for the printed 0.1 h
/// (rounding a time to 0.1 h only compares it with multiples of 1 s).
pub fn closure_s(ms: u64) -> u32 {
    u32::try_from(ms / 1000).unwrap_or(u32::MAX)
}

/// A group's running totals: the numerators and denominators of every
/// figure. The closure times are kept apart, all groups in one array (see
/// [`crate::audit`]), and handed to [`Tally::figures`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub received: u64,
    pub dispatched: u64,
    pub closed: u64,
    pub overdue: u64,
    pub closed_on_time: u64,
    /// Response rate numerator: claimed within the claim limit.
    pub responded_on_time: u64,
    /// Response rate denominator: claimed, or unclaimed past the claim deadline.
    pub response_due: u64,
    /// Closed now and never reopened.
    pub resolved: u64,
    /// Cases with a return visit, by the latest (the record's, or the one that reopened it).
    pub visited: u64,
    pub satisfied: u64,
    /// Returned at least once (and so dispatched at least once).
    pub returned: u64,
    /// Closed at least once: the resolution rate's denominator.
    pub closed_once: u64,
    pub reopened: u64,
}

impl Tally {
    /// The figure columns of a row, after the group column.
    pub const COLUMNS: [&'static str; 14] = [
        "received",
        "dispatched",
        "closed",
        "open",
        "overdue",
        "closure_p50_h",
        "closure_p90_h",
        "closure_max_h",
        "response_pct",
        "resolution_pct",
        "satisfaction_pct",
        "on_time_pct",
        "return_pct",
        "reopen_pct",
    ];

    /// Counts a response charged to this group though the case is
    /// another's (see `GroupKey::of_responder`): the response rate only.
    pub fn add_response(&mut self, on_time: bool) {
        self.response_due += 1;
        self.responded_on_time += u64::from(on_time);
    }

    pub fn add(&mut self, f: &CaseFacts) {
        let n = u64::from;
        self.received += 1;
        self.dispatched += n(f.dispatched);
        self.closed += n(f.closed);
        self.overdue += n(f.overdue);
        self.closed_on_time += n(f.closed_on_time);
        self.response_due += n(f.response.is_some());
        self.responded_on_time += n(f.response == Some(true));
        self.resolved += n(f.closed && !f.reopened);
        self.visited += n(f.satisfied.is_some());
        self.satisfied += n(f.satisfied == Some(true));
        self.returned += n(f.returned);
        self.closed_once += n(f.closed_once);
        self.reopened += n(f.reopened);
    }

    /// Adds another group's totals to these (for the `total` row).
    pub fn merge(&mut self, o: &Tally) {
        self.received += o.received;
        self.dispatched += o.dispatched;
        self.closed += o.closed;
        self.overdue += o.overdue;
        self.closed_on_time += o.closed_on_time;
        self.responded_on_time += o.responded_on_time;
        self.response_due += o.response_due;
        self.resolved += o.resolved;
        self.visited += o.visited;
        self.satisfied += o.satisfied;
        self.returned += o.returned;
        self.closed_once += o.closed_once;
        self.reopened += o.reopened;
    }

    pub fn open(&self) -> u64 {
        self.received - self.closed
    }

    /// The printed figures, in [`Tally::COLUMNS`] order, given the closure
    /// times of the group's closed cases in seconds (see [`closure_s`]),
    /// which it reorders.
    pub fn figures(&self, closure_s: &mut [u32]) -> Vec<String> {
        debug_assert!(self.dispatched <= self.received && self.closed <= self.dispatched);
        debug_assert!(closure_s.len() as u64 == self.closed);
        debug_assert!(self.returned <= self.dispatched && self.reopened <= self.closed_once);
        let h = |s: u32| hours(u64::from(s) * 1000);
        let (p50, p90, max) = match percentiles(closure_s) {
            Some((a, b, c)) => (h(a), h(b), h(c)),
            None => (NO_FIGURE.to_string(), NO_FIGURE.to_string(), NO_FIGURE.to_string()),
        };
        vec![
            self.received.to_string(),
            self.dispatched.to_string(),
            self.closed.to_string(),
            self.open().to_string(),
            self.overdue.to_string(),
            p50,
            p90,
            max,
            percent(self.responded_on_time, self.response_due),
            percent(self.resolved, self.closed_once),
            percent(self.satisfied, self.visited),
            percent(self.closed_on_time, self.closed + self.overdue),
            percent(self.returned, self.dispatched),
            percent(self.reopened, self.closed_once),
        ]
    }
}

/// Exact nearest-rank p50, p90 and max of `v` (which it reorders), or
/// `None` when empty. The p-th percentile of n values is the value of rank
/// `ceil(p * n / 100)` in ascending order: the smallest value that at least
/// p% of the values do not exceed. Linear time (two selections), no sort.
pub fn percentiles<T: Ord + Copy>(v: &mut [T]) -> Option<(T, T, T)> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let index = |p: usize| (p * n).div_ceil(100) - 1;
    let (i50, i90) = (index(50), index(90));
    let (_, &mut p90, above) = v.select_nth_unstable(i90);
    let max = above.iter().copied().max().unwrap_or(p90).max(p90);
    // The i90 + 1 smallest values are now v[..=i90]; the p50 is among them.
    let (_, &mut p50, _) = v[..=i90].select_nth_unstable(i50);
    Some((p50, p90, max))
}

#[cfg(test)]
mod tests {
    use super::percentiles;

    #[test]
    fn nearest_rank() {
        assert_eq!(percentiles::<u64>(&mut []), None);
        assert_eq!(percentiles(&mut [7]), Some((7, 7, 7)));
        // n = 2: p50 rank ceil(1) = 1, p90 rank ceil(1.8) = 2
        assert_eq!(percentiles(&mut [9, 3]), Some((3, 9, 9)));
        // n = 10: p50 rank 5, p90 rank 9
        let mut v = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5];
        assert_eq!(percentiles(&mut v), Some((5, 9, 10)));
        // n = 11: p50 rank ceil(5.5) = 6, p90 rank ceil(9.9) = 10
        let mut v: Vec<u64> = (1..=11).rev().collect();
        assert_eq!(percentiles(&mut v), Some((6, 10, 11)));
    }

    #[test]
    fn agrees_with_sorting() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for n in 1..200usize {
            let mut v: Vec<u64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x % 50
                })
                .collect();
            let mut sorted = v.clone();
            sorted.sort_unstable();
            let rank = |p: usize| sorted[(p * n).div_ceil(100) - 1];
            assert_eq!(percentiles(&mut v), Some((rank(50), rank(90), sorted[n - 1])), "n = {n}");
        }
    }
}
