//! Time for sipwall: the one wall clock, UTC date-times for people (no time-zone database:
//! sipwall prints UTC everywhere, so reports from different hosts line up), and durations.
use std::time::Duration;

use sipwall_engine::Timestamp;

/// The wall clock, as the engine counts time (since the UNIX epoch).
pub fn wall_clock() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default(),
    )
}

/// The wall clock in milliseconds since the UNIX epoch.
pub fn now_ms() -> u64 {
    wall_clock().as_millis()
}

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

/// `1h`, `30m`, `45s`, `2d`, `1w` or plain seconds (`3600`).
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 =
        num.parse().map_err(|_| anyhow::anyhow!("'{s}' is not a duration like 1h, 30m, 3600"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => anyhow::bail!("'{s}': unknown unit '{unit}' (s, m, h, d, w)"),
    };
    let secs = n.checked_mul(mult).ok_or_else(|| anyhow::anyhow!("'{s}' is too long"))?;
    anyhow::ensure!(secs >= 1, "'{s}': a ban lasts at least 1 s");
    Ok(Duration::from_secs(secs))
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

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("3600").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        for bad in ["", "h", "1x", "0", "-5", "1.5h", "99999999999999999999"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
