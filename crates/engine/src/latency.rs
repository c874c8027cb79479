//! Durations `STATS` reports: the server's acknowledgement latency (from
//! handing a write to the engine to its reply being written to the
//! connection) and the syncer's commit phases (writing a commit to the store,
//! then the durability barrier), so a slow client, a busy load generator, a
//! slow store and a slow disk can be told apart.
//!
//! A log-linear histogram of atomic counters (8 buckets per power of two, so
//! a reported percentile is at most 12.5% above the true value): recording
//! is one relaxed increment, from any connection, with no lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two, as a number of bits.
const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
/// Powers of two covered: up to 2^40 µs (about 12 days).
const TOP_EXP: u32 = 40;
const BUCKETS: usize = (SUB + (TOP_EXP - SUB_BITS) as u64 * SUB) as usize;

pub struct Latency {
    counts: [AtomicU64; BUCKETS],
    max_us: AtomicU64,
}

/// What `STATS` reports, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

fn bucket(us: u64) -> usize {
    if us < SUB {
        return us as usize;
    }
    // Longer than the top bucket's range counts in the top bucket.
    let us = us.min((1 << TOP_EXP) - 1);
    let exp = 63 - us.leading_zeros();
    let sub = (us >> (exp - SUB_BITS)) & (SUB - 1);
    (SUB + (exp - SUB_BITS) as u64 * SUB + sub) as usize
}

/// The largest value a bucket holds.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let exp = (i - SUB) / SUB + SUB_BITS as u64;
    let sub = (i - SUB) % SUB;
    ((SUB + sub + 1) << (exp - SUB_BITS as u64)) - 1
}

impl Default for Latency {
    fn default() -> Self {
        Latency { counts: std::array::from_fn(|_| AtomicU64::new(0)), max_us: AtomicU64::new(0) }
    }
}

impl Latency {
    pub fn record(&self, us: u64) {
        self.counts[bucket(us)].fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Percentiles are the upper bound of the bucket they fall in (never
    /// above the maximum seen).
    pub fn summary(&self) -> Summary {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        summarize(&counts, self.max_us.load(Ordering::Relaxed))
    }

    /// The summary so far, and a fresh start: each counter is swapped for
    /// zero, so a value recorded meanwhile lands in one window or the next.
    pub fn take(&self) -> Summary {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.swap(0, Ordering::Relaxed)).collect();
        summarize(&counts, self.max_us.swap(0, Ordering::Relaxed))
    }
}

fn summarize(counts: &[u64], max_us: u64) -> Summary {
    let count: u64 = counts.iter().sum();
    let at = |q: f64| -> u64 {
        if count == 0 {
            return 0;
        }
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(max_us);
            }
        }
        max_us
    };
    Summary { count, p50_us: at(0.5), p99_us: at(0.99), p999_us: at(0.999), max_us }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_tight() {
        let mut last = 0;
        for us in
            (0..1_000_000u64).step_by(7).chain([(1 << TOP_EXP) - 1, 1 << TOP_EXP, u64::MAX / 4, u64::MAX])
        {
            let b = bucket(us);
            assert!(b < BUCKETS);
            assert!(b >= last, "bucket of {us} went down");
            last = b;
            if us < 1 << TOP_EXP {
                assert!(upper(b) >= us, "{us} above its bucket's bound {}", upper(b));
                assert!(upper(b) <= us + us / 8, "{us}: bound {} more than 12.5% above", upper(b));
            }
        }
    }

    #[test]
    fn percentiles_come_from_the_recorded_values() {
        let l = Latency::default();
        assert_eq!(l.summary(), Summary::default());
        for us in 1..=1000 {
            l.record(us);
        }
        let s = l.summary();
        assert_eq!((s.count, s.max_us), (1000, 1000));
        assert!((500..=563).contains(&s.p50_us), "{s:?}");
        assert!((990..=1000).contains(&s.p99_us), "{s:?}");
        assert!((999..=1000).contains(&s.p999_us), "{s:?}");
        l.record(250_000);
        assert_eq!(l.summary().max_us, 250_000);
        assert_eq!(l.take().count, 1001);
        assert_eq!(l.summary(), Summary::default());
    }
}
