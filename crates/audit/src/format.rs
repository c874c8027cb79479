//! How figures print: integer arithmetic, rounded half up, so the same
//! counts always print the same digits on every machine.

/// The placeholder for a figure with nothing to measure (a zero denominator,
/// no closed case).
pub const NO_FIGURE: &str = "-";

const MS_PER_TENTH_HOUR: u64 = 360_000;

/// `num / den` as a percentage with one decimal, rounded half up: `2/3` is
/// `66.7`, `1/8` is `12.5`; `-` when `den` is 0.
pub fn percent(num: u64, den: u64) -> String {
    if den == 0 {
        return NO_FIGURE.to_string();
    }
    debug_assert!(num <= den, "a rate's numerator is part of its denominator");
    // tenths of a percent = round(num * 1000 / den) = floor((2 * num * 1000 + den) / (2 * den))
    let tenths = (u128::from(num) * 2000 + u128::from(den)) / (2 * u128::from(den));
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// A duration in milliseconds as hours with one decimal, rounded half up:
/// 63 minutes is `1.1`, 62 minutes `1.0`.
pub fn hours(ms: u64) -> String {
    let tenths = ms / MS_PER_TENTH_HOUR + u64::from(ms % MS_PER_TENTH_HOUR >= MS_PER_TENTH_HOUR / 2);
    format!("{}.{}", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_half_up() {
        assert_eq!(percent(0, 0), "-");
        assert_eq!(percent(0, 7), "0.0");
        assert_eq!(percent(7, 7), "100.0");
        assert_eq!(percent(2, 3), "66.7");
        assert_eq!(percent(1, 3), "33.3");
        assert_eq!(percent(1, 8), "12.5");
        // 1/16 = 6.25 -> 6.3 (half up); 1/7 = 14.2857 -> 14.3
        assert_eq!(percent(1, 16), "6.3");
        assert_eq!(percent(1, 7), "14.3");
        assert_eq!(percent(u64::MAX - 1, u64::MAX), "100.0");
    }

    #[test]
    fn hours_round_half_up() {
        assert_eq!(hours(0), "0.0");
        assert_eq!(hours(62 * 60_000), "1.0");
        // 63 min = 1.05 h -> 1.1
        assert_eq!(hours(63 * 60_000), "1.1");
        assert_eq!(hours(63 * 60_000 - 1), "1.0");
        assert_eq!(hours(72 * 3_600_000), "72.0");
    }
}
