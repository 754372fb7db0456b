//! UTC date-times for people, from milliseconds since the UNIX epoch (no time-zone database:
//! sipwall prints UTC everywhere, so reports from different hosts line up).

/// `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn utc_seconds(ms: u64) -> String {
    let (date, secs_of_day) = civil(ms);
    format!("{date} {}", clock(secs_of_day))
}

/// `YYYY-MM-DD HH:MM:SS.mmm` (UTC).
pub fn utc_millis(ms: u64) -> String {
    format!("{}.{:03}", utc_seconds(ms), ms % 1000)
}

fn clock(secs_of_day: u64) -> String {
    format!("{:02}:{:02}:{:02}", secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60)
}

/// The calendar date and the seconds into that day.
fn civil(ms: u64) -> (String, u64) {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    // Civil from days (Howard Hinnant's algorithm), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (format!("{y:04}-{m:02}-{d:02}"), secs % 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(utc_seconds(0), "1970-01-01 00:00:00");
        assert_eq!(utc_millis(951_782_400_123), "2000-02-29 00:00:00.123"); // leap day
        assert_eq!(utc_seconds(1_795_694_400_000), "2026-11-26 12:00:00");
        assert_eq!(utc_millis(4_102_444_799_999), "2099-12-31 23:59:59.999");
    }
}
