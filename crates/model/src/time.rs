//! Time as the log keeps it: milliseconds since the Unix epoch, UTC.
//!
//! The county lives at a fixed offset (China has no daylight saving), so
//! civil dates and times are computed here with Howard Hinnant's
//! days-from-civil algorithm instead of pulling in a calendar crate.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A point in time: milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

/// A span of time in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DurationMs(pub i64);

const MS_PER_MIN: i64 = 60_000;
const MS_PER_DAY: i64 = 86_400_000;

impl Timestamp {
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp(d.as_millis() as i64)
    }

    pub fn plus(self, d: DurationMs) -> Timestamp {
        Timestamp(self.0.saturating_add(d.0))
    }

    pub fn since(self, earlier: Timestamp) -> DurationMs {
        DurationMs(self.0 - earlier.0)
    }

    /// The civil date and time at `offset_min` minutes east of UTC.
    pub fn civil(self, offset_min: i32) -> Civil {
        let local = self.0 + offset_min as i64 * MS_PER_MIN;
        let days = local.div_euclid(MS_PER_DAY);
        let ms_of_day = local.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: (ms_of_day / 3_600_000) as u32,
            minute: (ms_of_day / 60_000 % 60) as u32,
            second: (ms_of_day / 1000 % 60) as u32,
            millis: (ms_of_day % 1000) as u32,
        }
    }

    /// Minutes since local midnight, for duty hours.
    pub fn minute_of_day(self, offset_min: i32) -> u32 {
        let c = self.civil(offset_min);
        c.hour * 60 + c.minute
    }

    /// `YYYYMMDD` of the local day, as case numbers use it.
    pub fn day_number(self, offset_min: i32) -> u32 {
        let c = self.civil(offset_min);
        (c.year as u32) * 10_000 + c.month * 100 + c.day
    }

    /// RFC 3339 with the given offset, to the second: `2026-11-24T15:32:42+08:00`.
    pub fn rfc3339(self, offset_min: i32) -> String {
        let mut s = String::with_capacity(25);
        self.write_rfc3339(&mut s, offset_min);
        s
    }

    /// Appends [`Timestamp::rfc3339`] to `out`, without a string of its own.
    /// Replies carry several a case, so the digits are written directly
    /// (years 0-9999 and offsets under 100 hours; `write!` otherwise).
    pub fn write_rfc3339(self, out: &mut String, offset_min: i32) {
        let c = self.civil(offset_min);
        let off = offset_min.unsigned_abs();
        if !(0..=9999).contains(&c.year) || off / 60 > 99 {
            return self.write_rfc3339_fmt(out, offset_min);
        }
        fn two(b: &mut [u8], v: u32) {
            b[0] = b'0' + (v / 10) as u8;
            b[1] = b'0' + (v % 10) as u8;
        }
        let mut b = *b"0000-00-00T00:00:00+00:00";
        two(&mut b[0..2], c.year as u32 / 100);
        two(&mut b[2..4], c.year as u32 % 100);
        two(&mut b[5..7], c.month);
        two(&mut b[8..10], c.day);
        two(&mut b[11..13], c.hour);
        two(&mut b[14..16], c.minute);
        two(&mut b[17..19], c.second);
        let len = if off == 0 {
            b[19] = b'Z';
            20
        } else {
            b[19] = if offset_min < 0 { b'-' } else { b'+' };
            two(&mut b[20..22], off / 60);
            two(&mut b[23..25], off % 60);
            25
        };
        out.push_str(std::str::from_utf8(&b[..len]).expect("ASCII digits and separators"));
    }

    /// [`write_rfc3339`](Self::write_rfc3339) through `write!`, for any year.
    fn write_rfc3339_fmt(self, out: &mut String, offset_min: i32) {
        use std::fmt::Write;
        let c = self.civil(offset_min);
        let sign = if offset_min < 0 { '-' } else { '+' };
        let off = offset_min.unsigned_abs();
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        );
        if off == 0 {
            out.push('Z');
        } else {
            let _ = write!(out, "{sign}{:02}:{:02}", off / 60, off % 60);
        }
    }

    /// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]` (local, at `offset_min`),
    /// or either with a `Z` / `+HH:MM` suffix. A bare date means local midnight.
    pub fn parse(s: &str, offset_min: i32) -> Result<Timestamp, TimeError> {
        let bad = || TimeError::Format(s.to_string());
        let b = s.as_bytes();
        if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<i64, TimeError> {
            let part = s.get(r).ok_or_else(bad)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse::<i64>().map_err(|_| bad())
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let range = |what| TimeError::Range(s.to_string(), what);
        if !(1..=12).contains(&month) {
            return Err(range("the month is out of range (01-12)"));
        }
        if day < 1 || day > days_in_month(year, month as u32) as i64 {
            return Err(range("the day is out of range for its month"));
        }
        let mut rest = &s[10..];
        let (mut h, mut m, mut sec) = (0, 0, 0);
        if let Some(t) = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' ')) {
            let tb = t.as_bytes();
            if tb.len() < 5 || tb[2] != b':' {
                return Err(bad());
            }
            let n2 = |r: std::ops::Range<usize>| -> Result<i64, TimeError> {
                let part = t.get(r).ok_or_else(bad)?;
                if !part.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(bad());
                }
                part.parse::<i64>().map_err(|_| bad())
            };
            h = n2(0..2)?;
            m = n2(3..5)?;
            rest = &t[5..];
            if let Some(r) = rest.strip_prefix(':') {
                let part = r.get(0..2).ok_or_else(bad)?;
                if !part.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(bad());
                }
                sec = part.parse::<i64>().map_err(|_| bad())?;
                rest = &r[2..];
            }
            if h > 23 || m > 59 || sec > 59 {
                return Err(range("the time of day is out of range (00:00:00-23:59:59)"));
            }
        }
        let offset = match rest {
            "" => offset_min as i64,
            "Z" | "z" => 0,
            // ASCII first: slicing a multi-byte character would panic.
            o if o.is_ascii()
                && o.len() == 6
                && (o.starts_with('+') || o.starts_with('-'))
                && &o[3..4] == ":"
                && o[1..3].bytes().chain(o[4..6].bytes()).all(|c| c.is_ascii_digit()) =>
            {
                let oh: i64 = o[1..3].parse().map_err(|_| bad())?;
                let om: i64 = o[4..6].parse().map_err(|_| bad())?;
                if oh > 23 || om > 59 {
                    return Err(range("the UTC offset is out of range (-23:59 to +23:59)"));
                }
                let v = oh * 60 + om;
                if o.starts_with('-') {
                    -v
                } else {
                    v
                }
            }
            _ => return Err(bad()),
        };
        let days = days_from_civil(year, month as u32, day as u32);
        let local = days * MS_PER_DAY + (h * 3600 + m * 60 + sec) * 1000;
        Ok(Timestamp(local - offset * MS_PER_MIN))
    }
}

impl DurationMs {
    pub const fn minutes(m: i64) -> DurationMs {
        DurationMs(m * MS_PER_MIN)
    }
    pub const fn hours(h: i64) -> DurationMs {
        DurationMs(h * 3_600_000)
    }

    /// Parses `90s`, `30m`, `2h`, `3d` (one number, one unit).
    pub fn parse(s: &str) -> Result<DurationMs, TimeError> {
        let bad = || TimeError::Duration(s.to_string());
        let s = s.trim();
        let unit = s.chars().last().ok_or_else(bad)?;
        let digits = &s[..s.len() - unit.len_utf8()];
        // Digits only: `i64::from_str` would also take `+1h`.
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: i64 = digits.parse().map_err(|_| bad())?;
        if n <= 0 {
            return Err(bad());
        }
        let ms = match unit {
            's' => 1000,
            'm' => MS_PER_MIN,
            'h' => 3_600_000,
            'd' => MS_PER_DAY,
            _ => return Err(bad()),
        };
        n.checked_mul(ms).map(DurationMs).ok_or_else(bad)
    }

    /// The shortest exact form: `3d`, `2h`, `45m`, `90s`.
    pub fn human(self) -> String {
        let ms = self.0;
        if ms % MS_PER_DAY == 0 && ms != 0 {
            format!("{}d", ms / MS_PER_DAY)
        } else if ms % 3_600_000 == 0 && ms != 0 {
            format!("{}h", ms / 3_600_000)
        } else if ms % MS_PER_MIN == 0 && ms != 0 {
            format!("{}m", ms / MS_PER_MIN)
        } else {
            format!("{}s", ms / 1000)
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339(0))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("`{}` is not a time: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM]", crate::reply::clip(.0))]
    Format(String),
    #[error("`{}`: {}", crate::reply::clip(.0), .1)]
    Range(String, &'static str),
    #[error("`{}` is not a duration: expected a positive number and s, m, h or d (e.g. 2h)", crate::reply::clip(.0))]
    Duration(String),
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (days since 1970-01-01).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_dates() {
        for days in [-1000, -1, 0, 1, 10_000, 20_416, 30_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2026, 11, 24), 20_781);
    }

    #[test]
    fn an_out_of_range_time_says_which_part() {
        let why = |s: &str| Timestamp::parse(s, 480).unwrap_err().to_string();
        assert!(why("2026-13-01").ends_with("the month is out of range (01-12)"), "{}", why("2026-13-01"));
        assert!(why("2026-02-29").contains("the day"));
        assert!(why("2026-11-24T24:00").contains("the time of day"));
        assert!(why("2026-11-24T10:00+24:00").contains("the UTC offset"));
    }

    #[test]
    fn formats_and_parses_local_time() {
        let t = Timestamp::parse("2026-11-24T15:32:42+08:00", 480).unwrap();
        assert_eq!(t.rfc3339(480), "2026-11-24T15:32:42+08:00");
        assert_eq!(t.rfc3339(0), "2026-11-24T07:32:42Z");
        assert_eq!(t.rfc3339(-330), "2026-11-24T02:02:42-05:30");
        assert_eq!(Timestamp::parse("2026-11-24T15:32:42", 480).unwrap(), t);
        assert_eq!(Timestamp::parse("2026-11-24T07:32:42Z", 480).unwrap(), t);
        assert_eq!(t.day_number(480), 20261124);
        assert_eq!(Timestamp::parse("2026-11-24T23:59:00+08:00", 480).unwrap().day_number(0), 20261124);
        assert_eq!(Timestamp::parse("2026-11-25T01:00", 480).unwrap().day_number(0), 20261124);
    }

    #[test]
    fn rejects_bad_times() {
        for s in [
            "",
            "2026-13-01",
            "2026-02-30",
            "2026-11-24T25:00",
            "2026/11/24",
            "2026-11-24T10:00+8",
            "2026-11-24T10:00+1é00",
            "2026-11-24T10:00+é:00",
            "2026-11-24T10:00+-1:00",
        ] {
            assert!(Timestamp::parse(s, 480).is_err(), "{s}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(DurationMs::parse("2h").unwrap(), DurationMs::hours(2));
        assert_eq!(DurationMs::parse("30m").unwrap(), DurationMs::minutes(30));
        assert_eq!(DurationMs::parse("3d").unwrap().human(), "3d");
        assert!(DurationMs::parse("0h").is_err());
        assert!(DurationMs::parse("2 weeks").is_err());
        assert!(DurationMs::parse("h").is_err());
        assert!(DurationMs::parse("+1h").is_err());
        assert!(DurationMs::parse("1.5h").is_err());
    }

    #[test]
    fn the_direct_digits_match_write_for_every_year_and_offset() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..200_000 {
            // xorshift: timestamps from before year 0 to after 9999, and edges.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ms = match i {
                0 => -62_167_219_200_000 - 1,
                1 => -62_167_219_200_000,
                2 => 253_402_300_799_999,
                3 => 253_402_300_800_000,
                _ => (x % 600_000_000_000_000) as i64 - 300_000_000_000_000,
            };
            let offset = [0, 480, -330, 840, -720, 59, -1, 6_000, -6_001][i % 9];
            let (mut fast, mut slow) = (String::new(), String::new());
            Timestamp(ms).write_rfc3339(&mut fast, offset);
            Timestamp(ms).write_rfc3339_fmt(&mut slow, offset);
            assert_eq!(fast, slow, "{ms} at {offset}");
        }
    }
}
