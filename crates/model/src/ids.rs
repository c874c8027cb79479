//! Case identities: a UUID v7 for machines, a case number for people.

use std::fmt;
use std::str::FromStr;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// A case's permanent id: a UUID v7, so ids sort by creation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CaseId(pub uuid::Uuid);

/// The order of the id's bytes, as the UUID's own, compared as one
/// big-endian `u128` rather than byte by byte (`memcmp`): the engine's
/// indexes compare ids in every search, and cases accepted in the same
/// millisecond share a deadline, so their index keys differ only in the id.
impl Ord for CaseId {
    fn cmp(&self, other: &CaseId) -> std::cmp::Ordering {
        u128::from_be_bytes(*self.0.as_bytes()).cmp(&u128::from_be_bytes(*other.0.as_bytes()))
    }
}

impl PartialOrd for CaseId {
    fn partial_cmp(&self, other: &CaseId) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl CaseId {
    /// A new id whose timestamp is `at`; the other 74 bits are random.
    ///
    /// The random bits come from a per-thread generator seeded once by the
    /// OS, not a system call per id: ids are unique, not secret.
    pub fn new_at(at: Timestamp) -> CaseId {
        let ms = at.0.max(0) as u64;
        let r = next_random();
        let mut bytes = [0u8; 10];
        bytes.copy_from_slice(&r.to_le_bytes()[..10]);
        CaseId(uuid::Builder::from_unix_timestamp_millis(ms, &bytes).into_uuid())
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    pub fn from_bytes(b: [u8; 16]) -> CaseId {
        CaseId(uuid::Uuid::from_bytes(b))
    }
}

/// 128 random bits from a per-thread SplitMix64 pair, seeded by the OS.
fn next_random() -> u128 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            // RandomState is seeded from the OS's randomness.
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x9E37_79B9_7F4A_7C15);
            h.finish()
        });
    }
    let step = || {
        STATE.with(|s| {
            let z = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            s.set(z);
            let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
    };
    (u128::from(step()) << 64) | u128::from(step())
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for CaseId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(CaseId)
    }
}

/// The number residents and operators read out: `JD-20261124-000123`.
///
/// `prefix` is the county's code, the day is the local day of acceptance, the
/// sequence counts that day's cases from 1. Numbers sort by day, then by order
/// of acceptance.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CaseNo(pub CompactString);

impl CaseNo {
    pub fn new(prefix: &str, day: u32, seq: u32) -> CaseNo {
        CaseNo(compact_str::format_compact!("{prefix}-{day:08}-{seq:06}"))
    }

    /// The `(day, sequence)` pair, when the number is well formed.
    pub fn parts(&self) -> Option<(u32, u32)> {
        let mut it = self.0.rsplitn(3, '-');
        let seq = it.next()?.parse().ok()?;
        let day = it.next()?.parse().ok()?;
        it.next()?;
        Some((day, seq))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `day << 32 | seq` when the number is exactly what
    /// `CaseNo::new(prefix, day, seq)` writes: such numbers and their keys
    /// correspond one to one, so an index can hold the key instead of the text.
    pub fn key(&self, prefix: &str) -> Option<u64> {
        let (day, seq) = self.0.strip_prefix(prefix)?.strip_prefix('-')?.split_once('-')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        // `{day:08}` and `{seq:06}`: zero-padded to that width, never beyond it.
        if day.len() != 8
            || seq.len() < 6
            || (seq.len() > 6 && seq.starts_with('0'))
            || !digits(day)
            || !digits(seq)
        {
            return None;
        }
        Some(u64::from(day.parse::<u32>().ok()?) << 32 | u64::from(seq.parse::<u32>().ok()?))
    }
}

impl fmt::Display for CaseNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_numbers_sort_and_parse() {
        let a = CaseNo::new("JD", 20261124, 9);
        let b = CaseNo::new("JD", 20261124, 123);
        let c = CaseNo::new("JD", 20261125, 1);
        assert_eq!(b.as_str(), "JD-20261124-000123");
        assert!(a < b && b < c);
        assert_eq!(b.parts(), Some((20261124, 123)));
    }

    #[test]
    fn only_numbers_in_the_format_have_a_key() {
        for (day, seq) in [(20261124, 123), (20261124, 1_000_000), (0, 0), (99_999_999, u32::MAX)] {
            let no = CaseNo::new("JD", day, seq);
            assert_eq!(no.key("JD"), Some(u64::from(day) << 32 | u64::from(seq)), "{no}");
        }
        for other in [
            "JD-20261124-123",
            "JD-20261124-0123456",
            "JD-2026112-000123",
            "JD-020261124-000123",
            "JD-20261124-+00123",
            "JD-20261124-00012a",
            "JD-20261124-99999999999",
            "JD-20261124",
            "JDZ-20261124-000123",
            "XX-20261124-000123",
            "JD_20261124-000123",
            "",
        ] {
            assert_eq!(CaseNo(other.into()).key("JD"), None, "{other}");
        }
    }

    #[test]
    fn ids_sort_by_time() {
        let a = CaseId::new_at(Timestamp(1_000_000));
        let b = CaseId::new_at(Timestamp(2_000_000));
        assert!(a < b);
        assert_eq!(a.to_string().parse::<CaseId>().unwrap(), a);
        assert_eq!(a.0.get_version_num(), 7);
        assert_eq!(a.0.get_variant(), uuid::Variant::RFC4122);
        let many: std::collections::HashSet<_> = (0..10_000).map(|_| CaseId::new_at(Timestamp(5))).collect();
        assert_eq!(many.len(), 10_000, "ids made in the same millisecond differ");
    }

    proptest::proptest! {
        /// Ids order as their bytes do (the order sled's keys have).
        #[test]
        fn ids_order_as_their_bytes(a: [u8; 16], b: [u8; 16], shared in 0usize..16) {
            let mut b = b;
            b[..shared].copy_from_slice(&a[..shared]);
            let (x, y) = (CaseId::from_bytes(a), CaseId::from_bytes(b));
            proptest::prop_assert_eq!(x.cmp(&y), a.cmp(&b));
            proptest::prop_assert_eq!(x.partial_cmp(&y), Some(a.cmp(&b)));
        }
    }
}
