//! RFC 3339 UTC timestamps with nanoseconds, written into a caller's buffer (no allocation per
//! log line). Two forms: Go's `time.RFC3339Nano` (trailing zeros of the fraction trimmed, what
//! docker's json-file writes) and a fixed 9-digit fraction (exit.json, like berth-runtime's state).

use std::time::{SystemTime, UNIX_EPOCH};

/// Appends `t` as `YYYY-MM-DDTHH:MM:SS[.fraction]Z`; with `trim`, the fraction loses its
/// trailing zeros (and the dot when it is zero), as Go's RFC3339Nano.
pub fn write_rfc3339(out: &mut Vec<u8>, t: SystemTime, trim: bool) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil_from_days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    push_num(out, year, 4);
    out.push(b'-');
    push_num(out, month, 2);
    out.push(b'-');
    push_num(out, day, 2);
    out.push(b'T');
    push_num(out, sod / 3600, 2);
    out.push(b':');
    push_num(out, sod % 3600 / 60, 2);
    out.push(b':');
    push_num(out, sod % 60, 2);
    let mut nanos = d.subsec_nanos();
    let mut digits = 9;
    if trim {
        while digits > 0 && nanos.is_multiple_of(10) {
            nanos /= 10;
            digits -= 1;
        }
    }
    if digits > 0 {
        out.push(b'.');
        push_num(out, i64::from(nanos), digits);
    }
    out.push(b'Z');
}

/// `t` as a fixed-width string (9 fraction digits).
pub fn rfc3339(t: SystemTime) -> String {
    let mut v = Vec::with_capacity(30);
    write_rfc3339(&mut v, t, false);
    String::from_utf8(v).expect("timestamps are ASCII")
}

fn push_num(out: &mut Vec<u8>, mut n: i64, width: usize) {
    let mut tmp = [b'0'; 20];
    let mut i = tmp.len();
    while n > 0 && i > 0 {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let start = i.min(tmp.len() - width);
    out.extend_from_slice(&tmp[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fmt(secs: u64, nanos: u32, trim: bool) -> String {
        let mut v = Vec::new();
        write_rfc3339(&mut v, UNIX_EPOCH + Duration::new(secs, nanos), trim);
        String::from_utf8(v).expect("ascii")
    }

    #[test]
    fn fixed_and_trimmed_forms() {
        assert_eq!(
            fmt(1_700_000_000, 5, false),
            "2023-11-14T22:13:20.000000005Z"
        );
        assert_eq!(
            fmt(1_700_000_000, 123_450_000, true),
            "2023-11-14T22:13:20.12345Z"
        );
        assert_eq!(fmt(1_700_000_000, 0, true), "2023-11-14T22:13:20Z");
        assert_eq!(fmt(0, 0, false), "1970-01-01T00:00:00.000000000Z");
        // a leap day
        assert_eq!(fmt(951_782_400, 1, true), "2000-02-29T00:00:00.000000001Z");
    }
}
