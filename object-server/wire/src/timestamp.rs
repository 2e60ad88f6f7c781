//! Swift's timestamps: seconds since the epoch with five decimals ("1700000000.12345").
//! They order every write; the newest timestamp wins.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time in units of 10 µs, as Swift's `Timestamp.internal`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn now() -> Timestamp {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_secs() * 100_000 + u64::from(d.subsec_micros() / 10))
    }

    /// Parses "1700000000.12345", "1700000000" or "1700000000.1"; Swift also
    /// accepts an `_offset` suffix which we ignore.
    pub fn parse(s: &str) -> Option<Timestamp> {
        let s = s.split('_').next()?;
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let secs: u64 = int.parse().ok()?;
        let mut units = 0u64;
        for (i, b) in frac.bytes().take(5).enumerate() {
            units += u64::from(b - b'0') * 10u64.pow(4 - i as u32);
        }
        secs.checked_mul(100_000)?.checked_add(units).map(Timestamp)
    }

    pub fn secs(self) -> u64 {
        self.0 / 100_000
    }

    /// Whole seconds rounded up, as Swift computes `Last-Modified`.
    pub fn ceil_secs(self) -> u64 {
        self.0.div_ceil(100_000)
    }

    /// The HTTP date (`Last-Modified`); times past the year 9999, which HTTP
    /// dates cannot show (and `httpdate` panics on), show as its last second.
    pub fn http_date(self) -> String {
        const LAST_HTTP_DATE: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
        let secs = self.ceil_secs().min(LAST_HTTP_DATE);
        httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(secs))
    }

    /// ISO 8601 with microseconds, as in JSON/XML listings ("2023-11-14T22:13:20.123450").
    pub fn iso8601(self) -> String {
        let secs = self.secs();
        let micros = (self.0 % 100_000) * 10;
        let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        format!(
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60
        )
    }
}

impl Timestamp {
    /// Parses a listing's `last_modified` ("2023-11-14T22:13:20.123450",
    /// as [`Timestamp::iso8601`] writes it; the fraction may be shorter or
    /// absent, a trailing `Z` is allowed).
    pub fn parse_iso8601(s: &str) -> Option<Timestamp> {
        let s = s.strip_suffix('Z').unwrap_or(s);
        let (date, time) = s.split_once('T')?;
        let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
        let (y, mo, day) = (d.next()??, d.next()??, d.next()??);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || y < 1970 {
            return None;
        }
        let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
        let mut t = hms.splitn(3, ':').map(|p| p.parse::<u64>().ok());
        let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
        if h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        let days = u64::try_from(days_from_civil(y, mo as u32, day as u32)).ok()?;
        let whole = Timestamp::parse(&format!(
            "{}.{frac}",
            days * 86_400 + h * 3600 + mi * 60 + sec
        ))?;
        Some(whole)
    }
}

/// (year, month, day) to days since 1970-01-01; the inverse of
/// [`civil_from_days`] (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:010}.{:05}", self.0 / 100_000, self.0 % 100_000)
    }
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
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
    fn iso8601_dates_parse_back() {
        for t in [
            0u64,
            1,
            170_000_000_012_345,
            179_662_389_600_081,
            410_244_480_000_000,
        ] {
            let ts = Timestamp(t);
            assert_eq!(
                Timestamp::parse_iso8601(&ts.iso8601()),
                Some(ts),
                "{}",
                ts.iso8601()
            );
        }
        assert_eq!(
            Timestamp::parse_iso8601("2023-11-14T22:13:20"),
            Timestamp::parse("1700000000")
        );
        assert_eq!(
            Timestamp::parse_iso8601("2023-11-14T22:13:20.5Z"),
            Timestamp::parse("1700000000.5")
        );
        for bad in [
            "",
            "2023-11-14",
            "2023-13-01T00:00:00",
            "x-11-14T22:13:20",
            "2023-11-14T25:00:00",
        ] {
            assert_eq!(Timestamp::parse_iso8601(bad), None, "{bad}");
        }
    }

    #[test]
    fn far_future_http_dates_do_not_panic() {
        let t = Timestamp::parse("99999999999999.5").unwrap();
        assert_eq!(t.http_date(), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn parse_and_format_round_trip() {
        let t = Timestamp::parse("1700000000.12345").unwrap();
        assert_eq!(t.to_string(), "1700000000.12345");
        assert_eq!(
            Timestamp::parse("17").unwrap().to_string(),
            "0000000017.00000"
        );
        assert_eq!(Timestamp::parse("1.5").unwrap().0, 150_000);
        assert!(Timestamp::parse("abc").is_none());
        assert!(Timestamp::parse("-1").is_none());
        assert!(Timestamp::parse("").is_none());
    }

    #[test]
    fn iso_and_http_dates() {
        let t = Timestamp::parse("1700000000.12345").unwrap();
        assert_eq!(t.iso8601(), "2023-11-14T22:13:20.123450");
        assert_eq!(t.http_date(), "Tue, 14 Nov 2023 22:13:21 GMT");
        assert_eq!(Timestamp(0).iso8601(), "1970-01-01T00:00:00.000000");
    }
}
