//! A calendar date without a time zone (the day an event took legal effect).
//!
//! Dates are stored as days since 1970-01-01 so that windows ("the 90 days before") are plain
//! integer arithmetic. Only the proleptic Gregorian calendar is supported, years 1900 to 2200.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date(i32);

/// Why a date string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a date as YYYY-MM-DD between 1900-01-01 and 2200-12-31, got {0:?}")]
pub struct DateError(pub String);

impl Date {
    /// The date for a year, month and day.
    ///
    /// # Errors
    /// When the day does not exist or the year is outside 1900..=2200.
    pub fn from_ymd(y: i32, m: u32, d: u32) -> Result<Self, DateError> {
        let bad = || DateError(format!("{y:04}-{m:02}-{d:02}"));
        if !(1900..=2200).contains(&y)
            || !(1..=12).contains(&m)
            || d == 0
            || d > days_in_month(y, m)
        {
            return Err(bad());
        }
        Ok(Self(days_from_civil(y, m, d)))
    }

    /// Parses `YYYY-MM-DD`.
    ///
    /// # Errors
    /// When the text is not exactly that shape or names a day that does not exist.
    pub fn parse(s: &str) -> Result<Self, DateError> {
        let b = s.as_bytes();
        let bad = || DateError(s.to_owned());
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u32, DateError> {
            let part = &s[r];
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse().map_err(|_| bad())
        };
        let y = num(0..4)?;
        let m = num(5..7)?;
        let d = num(8..10)?;
        Self::from_ymd(i32::try_from(y).map_err(|_| bad())?, m, d).map_err(|_| bad())
    }

    /// 1970-01-01.
    pub const EPOCH: Date = Date(0);

    /// The date `days` after 1970-01-01 (before it if negative).
    #[must_use]
    pub fn from_days(days: i32) -> Self {
        Self(days)
    }

    /// Days since 1970-01-01.
    #[must_use]
    pub fn days(self) -> i32 {
        self.0
    }

    /// The date `n` days later (earlier if negative).
    #[must_use]
    pub fn add_days(self, n: i32) -> Self {
        Self(self.0 + n)
    }

    /// (year, month, day).
    #[must_use]
    pub fn ymd(self) -> (i32, u32, u32) {
        civil_from_days(self.0)
    }

    /// The date `n` calendar months later: the same day number, or the month's last day where
    /// it has none (31 January + 1 month = 28 or 29 February), as periods in months are counted
    /// (BGB §188(2)-(3)).
    #[must_use]
    pub fn add_months(self, n: u32) -> Self {
        let (y, m, d) = self.ymd();
        let total = i64::from(m - 1) + i64::from(n);
        let year = i64::from(y) + total.div_euclid(12);
        let month = u32::try_from(total.rem_euclid(12)).unwrap_or(0) + 1;
        let year = i32::try_from(year).unwrap_or(i32::MAX / 2);
        Self(days_from_civil(
            year,
            month,
            d.min(days_in_month(year, month)),
        ))
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        // Every date `parse` accepts has a four-digit year: write its ten bytes at once (one
        // allocation in `to_string`) rather than through three padded integer formats.
        match u32::try_from(y) {
            Ok(year) if year <= 9999 => {
                let mut b = *b"0000-00-00";
                ascii_digits(&mut b[0..4], year);
                ascii_digits(&mut b[5..7], m);
                ascii_digits(&mut b[8..10], d);
                f.write_str(std::str::from_utf8(&b).map_err(|_| fmt::Error)?)
            }
            _ => write!(f, "{y:04}-{m:02}-{d:02}"),
        }
    }
}

/// Writes the last `out.len()` decimal digits of `n` into `out`, zero-padded.
fn ascii_digits(out: &mut [u8], mut n: u32) {
    for b in out.iter_mut().rev() {
        // `n % 10` is a single digit.
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Date::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days: exact for the proleptic Gregorian calendar.
#[allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]
fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u32;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i32 - 719_468
}

#[allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]
fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i32 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_day_of_two_centuries() {
        let mut d = Date::parse("1900-01-01").unwrap();
        let end = Date::parse("2100-12-31").unwrap();
        while d <= end {
            assert_eq!(Date::parse(&d.to_string()).unwrap(), d);
            d = d.add_days(1);
        }
    }

    #[test]
    fn displays_as_padded_ymd_for_every_representable_year() {
        let padded = |d: Date| {
            let (y, m, day) = d.ymd();
            format!("{y:04}-{m:02}-{day:02}")
        };
        let mut d = Date::parse("1900-01-01").unwrap();
        let end = Date::parse("2200-12-31").unwrap();
        while d <= end {
            assert_eq!(d.to_string(), padded(d));
            d = d.add_days(1);
        }
        // Outside what `parse` accepts (years below 0 or above 9999), from_days still displays.
        for days in [
            -800_000, -719_529, -719_528, -1, 0, 2_932_896, 2_932_897, 3_000_000,
        ] {
            let d = Date::from_days(days);
            assert_eq!(d.to_string(), padded(d), "{days}");
        }
        assert_eq!(Date::from_days(-719_529).to_string(), "-001-12-31");
        assert_eq!(Date::from_days(2_932_897).to_string(), "10000-01-01");
    }

    #[test]
    fn add_months_keeps_the_day_or_takes_the_last_of_a_shorter_month() {
        let d = |s: &str| Date::parse(s).unwrap();
        assert_eq!(d("2026-03-15").add_months(1), d("2026-04-15"));
        assert_eq!(d("2026-01-31").add_months(1), d("2026-02-28"));
        assert_eq!(d("2028-01-31").add_months(1), d("2028-02-29"));
        assert_eq!(d("2026-12-10").add_months(1), d("2027-01-10"));
        assert_eq!(d("2026-05-31").add_months(13), d("2027-06-30"));
        assert_eq!(d("2026-05-31").add_months(0), d("2026-05-31"));
    }

    #[test]
    fn epoch_and_leap_days() {
        assert_eq!(Date::parse("1970-01-01").unwrap().days(), 0);
        assert!(Date::parse("2024-02-29").is_ok());
        assert!(Date::parse("2023-02-29").is_err());
        assert!(Date::parse("2000-02-29").is_ok());
        assert!(Date::parse("1900-02-29").is_err());
    }

    #[test]
    fn refuses_malformed_text() {
        for bad in [
            "",
            "2024-1-01",
            "2024/01/01",
            "20240101",
            "2024-13-01",
            "2024-00-10",
            "+024-01-01",
            "3000-01-01",
        ] {
            assert!(Date::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
