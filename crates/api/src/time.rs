//! Docker's timestamps on the wire: RFC 3339 strings (`CreatedAt`, event times in the CLI) and
//! the `since`/`until` grammar (Unix seconds with optional fraction, RFC 3339 dates, or Go
//! durations like `10m` meaning "that long before now", which clients resolve before sending).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a timestamp or duration didn't parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error(
        "invalid timestamp {0:?}: expected Unix seconds, an RFC 3339 date or a duration like 10m"
    )]
    Timestamp(String),
    #[error("invalid duration {0:?}")]
    Duration(String),
}

/// A point in time as Unix seconds and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

impl Timestamp {
    pub fn now() -> Self {
        Self::from_system(SystemTime::now())
    }

    pub fn from_system(t: SystemTime) -> Self {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        Self {
            secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: d.subsec_nanos(),
        }
    }

    /// Nanoseconds since the epoch, as Docker's `timeNano`.
    pub fn unix_nanos(&self) -> i64 {
        self.secs
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(self.nanos))
    }

    pub fn from_unix_nanos(n: i64) -> Self {
        Self {
            secs: n.div_euclid(1_000_000_000),
            nanos: u32::try_from(n.rem_euclid(1_000_000_000)).expect("remainder below 1e9"),
        }
    }

    /// `2024-05-01T10:00:00Z` (RFC 3339, UTC, whole seconds), Docker's `CreatedAt`.
    pub fn rfc3339(&self) -> String {
        let (y, mo, d, h, mi, s) = civil(self.secs);
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }

    /// `2024-05-01T10:00:00.123456789Z` (Go's RFC3339Nano: trailing zeros of the fraction trimmed).
    pub fn rfc3339_nano(&self) -> String {
        let (y, mo, d, h, mi, s) = civil(self.secs);
        let mut frac = format!("{:09}", self.nanos);
        while frac.ends_with('0') {
            frac.pop();
        }
        let frac = if frac.is_empty() {
            String::new()
        } else {
            format!(".{frac}")
        };
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}Z")
    }

    /// The `secs.nanos` form clients send in `since`/`until`.
    pub fn to_query(&self) -> String {
        format!("{}.{:09}", self.secs, self.nanos)
    }
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let as_u32 = |v: i64| u32::try_from(v).expect("calendar fields are small and non-negative");
    (
        y,
        as_u32(m),
        as_u32(d),
        as_u32(rem / 3600),
        as_u32(rem % 3600 / 60),
        as_u32(rem % 60),
    )
}

/// Days from 1970-01-01 to a civil date (inverse of [`civil`]).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parse a Go duration (`300ms`, `1.5h`, `2h45m`); units ns, us, µs, ms, s, m, h.
pub fn parse_go_duration(s: &str) -> Result<Duration, TimeError> {
    let bad = || TimeError::Duration(s.to_string());
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// Parse what the server receives in `since`/`until`: `secs`, `secs.frac` or an RFC 3339 date.
pub fn parse_timestamp(s: &str) -> Result<Timestamp, TimeError> {
    let bad = || TimeError::Timestamp(s.to_string());
    let s = s.trim();
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
        let secs: i64 = secs.parse().map_err(|_| bad())?;
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let nanos = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse().map_err(|_| bad())?
        };
        return Ok(Timestamp { secs, nanos });
    }
    parse_rfc3339(s).ok_or_else(bad)
}

/// What a client accepts in `--since`/`--until`: a duration (before `now`) or a timestamp.
pub fn parse_client_time(s: &str, now: Timestamp) -> Result<Timestamp, TimeError> {
    if let Ok(d) = parse_go_duration(s) {
        if s.trim() != "0" && s.trim().parse::<f64>().is_err() {
            let back = Timestamp {
                secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: d.subsec_nanos(),
            };
            let n = now.unix_nanos().saturating_sub(back.unix_nanos());
            return Ok(Timestamp::from_unix_nanos(n));
        }
    }
    parse_timestamp(s)
}

/// RFC 3339 (`2006-01-02T15:04:05[.frac](Z|±hh:mm)`), also the date-only `2006-01-02` form.
fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let year = i64::from(num(0..4)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let month = num(5..7)?;
    let day = num(8..10)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if b.len() == 10 {
        return Some(Timestamp {
            secs: days * 86_400,
            nanos: 0,
        });
    }
    if !matches!(b.get(10), Some(b'T') | Some(b't') | Some(b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        if end == start {
            return None;
        }
        let frac = &s[start..end.min(start + 9)];
        nanos = format!("{frac:0<9}").parse().ok()?;
        i = end;
    }
    let offset: i64 = match b.get(i) {
        Some(b'Z') | Some(b'z') if b.len() == i + 1 => 0,
        Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
            let oh = i64::from(num(i + 1..i + 3)?);
            let om = i64::from(num(i + 4..i + 6)?);
            let o = oh * 3600 + om * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        None => 0,
        _ => return None,
    };
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(sec) - offset;
    Some(Timestamp { secs, nanos })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        let t = Timestamp {
            secs: 1_700_000_000,
            nanos: 120_000_000,
        };
        assert_eq!(t.rfc3339(), "2023-11-14T22:13:20Z");
        assert_eq!(t.rfc3339_nano(), "2023-11-14T22:13:20.12Z");
        assert_eq!(
            Timestamp { secs: 0, nanos: 0 }.rfc3339_nano(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            Timestamp {
                secs: 951_782_400,
                nanos: 0
            }
            .rfc3339(),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn parses_timestamps() {
        assert_eq!(
            parse_timestamp("1700000000").unwrap(),
            Timestamp {
                secs: 1_700_000_000,
                nanos: 0
            }
        );
        assert_eq!(
            parse_timestamp("1700000000.5").unwrap(),
            Timestamp {
                secs: 1_700_000_000,
                nanos: 500_000_000
            }
        );
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20.12Z").unwrap(),
            Timestamp {
                secs: 1_700_000_000,
                nanos: 120_000_000
            }
        );
        assert_eq!(
            parse_timestamp("2023-11-15T00:13:20+02:00").unwrap().secs,
            1_700_000_000
        );
        assert_eq!(parse_timestamp("2023-11-14").unwrap().secs, 1_699_920_000);
        for bad in [
            "",
            "yesterday",
            "2023-13-01",
            "1.2.3",
            "2023-11-14T22:13:20Q",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn round_trips_query_form() {
        let t = Timestamp {
            secs: 12,
            nanos: 34,
        };
        assert_eq!(parse_timestamp(&t.to_query()).unwrap(), t);
        assert_eq!(Timestamp::from_unix_nanos(t.unix_nanos()), t);
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_go_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(
            parse_go_duration("1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_go_duration("1.5s").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            parse_go_duration("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("m").is_err());
        assert!(parse_go_duration("3d").is_err());
    }

    #[test]
    fn client_times_resolve_durations_against_now() {
        let now = Timestamp {
            secs: 1000,
            nanos: 0,
        };
        assert_eq!(
            parse_client_time("10s", now).unwrap(),
            Timestamp {
                secs: 990,
                nanos: 0
            }
        );
        assert_eq!(
            parse_client_time("500", now).unwrap(),
            Timestamp {
                secs: 500,
                nanos: 0
            }
        );
    }
}
