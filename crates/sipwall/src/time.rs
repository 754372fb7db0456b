//! Time for sipwall, in one place: the one wall clock, UTC date-times for people as RFC 3339
//! (no time-zone database: sipwall speaks UTC everywhere, so reports and logs from different
//! hosts line up; env_logger's timestamps are RFC 3339 UTC too), ONE human duration style,
//! and the one duration parser of the command line.
//!
//! Human durations: the two largest units, compact, space-separated, a zero second part left
//! out: `850ms`, `45s`, `59m 59s`, `1h 30m`, `1h`, `2d 3h`. Durations are parsed from
//! `1h30m`, `1h 30m`, `90m`, `45s`, `2d`, `1w` or plain seconds (`3600`), whole seconds only.
//!
//! Built on `jiff` (rather than `humantime`): it is already in the build for env_logger, and
//! its one `Timestamp` type formats RFC 3339 and parses spans of mixed units (`1h30m`).
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

fn instant(ms: u64) -> jiff::Timestamp {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .unwrap_or(jiff::Timestamp::MAX)
}

/// RFC 3339 UTC to the second: `2025-11-26T14:30:00Z`.
pub fn rfc3339(ms: u64) -> String {
    format!("{:.0}", instant(ms))
}

/// RFC 3339 UTC to the millisecond: `2025-11-26T14:30:00.123Z`.
pub fn rfc3339_millis(ms: u64) -> String {
    format!("{:.3}", instant(ms))
}

/// A span of time from `first` to `last` (ms since the epoch), to the millisecond: the end
/// is written as a time of day only when it falls on the same UTC day as the start, else in
/// full (`2026-11-21T13:15:16.550Z .. 2026-11-27T05:47:17.435Z`).
pub fn span_millis(first: u64, last: u64) -> String {
    let (a, b) = (rfc3339_millis(first), rfc3339_millis(last));
    // Both are `YYYY-MM-DDTHH:MM:SS.mmmZ` (years 1970..=9999 for u64 ms in range).
    match (a.split_once('T'), b.split_once('T')) {
        (Some((day_a, _)), Some((day_b, time_b))) if day_a == day_b => format!("{a} .. {time_b}"),
        _ => format!("{a} .. {b}"),
    }
}

/// The human duration style (module docs) of `d`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.subsec_millis());
    }
    let (big, small) = match secs {
        0..60 => return format!("{secs}s"),
        60..3600 => ((secs / 60, "m"), (secs % 60, "s")),
        3600..86_400 => ((secs / 3600, "h"), (secs / 60 % 60, "m")),
        _ => ((secs / 86_400, "d"), (secs / 3600 % 24, "h")),
    };
    if small.0 == 0 {
        format!("{}{}", big.0, big.1)
    } else {
        format!("{}{} {}{}", big.0, big.1, small.0, small.1)
    }
}

/// [`human`] of milliseconds.
pub fn human_ms(ms: u64) -> String {
    human(Duration::from_millis(ms))
}

/// `1h30m`, `1h 30m`, `90m`, `45s`, `2d`, `1w` or plain seconds (`3600`); at least 1 s, whole
/// seconds (days are 24 hours: a ban's length does not follow the calendar).
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let d = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(s.parse().map_err(|_| anyhow::anyhow!("'{s}' is too long"))?)
    } else {
        let bad = || anyhow::anyhow!("'{s}' is not a duration like 1h30m, 90m, 45s, 2d or 3600");
        let span: jiff::Span = s.parse().map_err(|_| bad())?;
        let signed =
            span.to_duration(jiff::SpanRelativeTo::days_are_24_hours()).map_err(|_| bad())?;
        anyhow::ensure!(!signed.is_negative(), "'{s}': a duration cannot be negative");
        Duration::try_from(signed).map_err(|_| bad())?
    };
    anyhow::ensure!(d.subsec_nanos() == 0, "'{s}': whole seconds only");
    anyhow::ensure!(d.as_secs() >= 1, "'{s}': a ban lasts at least 1 s");
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_millis(951_782_400_123), "2000-02-29T00:00:00.123Z"); // leap day
        assert_eq!(rfc3339(1_795_694_400_000), "2026-11-26T12:00:00Z");
        assert_eq!(rfc3339(1_795_694_400_999), "2026-11-26T12:00:00Z"); // truncated, not rounded
        assert_eq!(rfc3339_millis(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(u64::MAX), rfc3339(u64::MAX)); // out of range: no panic
    }

    #[test]
    fn spans_show_the_end_date_when_the_day_differs() {
        let start = 1_795_007_716_550; // 2026-11-18T13:15:16.550Z
        assert_eq!(
            span_millis(start, start + 3_600_000),
            "2026-11-18T13:15:16.550Z .. 14:15:16.550Z"
        );
        // 5 days 16 hours later: the end date is shown, not dropped
        let end = start + (5 * 24 + 16) * 3_600_000 + 32_000_885;
        assert_eq!(span_millis(start, end), "2026-11-18T13:15:16.550Z .. 2026-11-24T14:08:37.435Z");
        // just past midnight counts as another day
        assert!(span_millis(1_795_046_399_000, 1_795_046_400_000).contains(".. 2026-11-19T"));
    }

    #[test]
    fn one_human_duration_style() {
        for (ms, text) in [
            (0, "0ms"),
            (850, "850ms"),
            (45_000, "45s"),
            (45_999, "45s"),
            (60_000, "1m"),
            (3_599_000, "59m 59s"),
            (3_600_000, "1h"),
            (5_400_000, "1h 30m"),
            (86_400_000, "1d"),
            (183_600_000, "2d 3h"),
        ] {
            assert_eq!(human_ms(ms), text, "{ms} ms");
        }
    }

    #[test]
    fn durations() {
        for (text, secs) in [
            ("1h", 3600),
            ("30m", 1800),
            ("3600", 3600),
            ("2d", 172_800),
            ("1w", 604_800),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("90m", 5400),
            ("45s", 45),
            ("1.5h", 5400),
        ] {
            assert_eq!(parse_duration(text).unwrap(), Duration::from_secs(secs), "{text}");
        }
        for bad in ["", "h", "1x", "0", "0s", "-5", "-5s", "1.5s", "99999999999999999999", "1h-"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        // what parses, prints back in the human style, and parses again to the same
        let d = parse_duration("1h30m").unwrap();
        assert_eq!(parse_duration(&human(d).replace(' ', "")).unwrap(), d);
    }
}
