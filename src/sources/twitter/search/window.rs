//! Times for `--start-time`/`--end-time`: RFC 3339, a date, or a humane
//! duration meaning that long ago (`7d`, `2h`); and the clamps X's windows need.

use chrono::{DateTime, NaiveDate, Utc};

use super::Endpoint;

/// How far back recent search reaches.
pub const RECENT_LOOKBACK: chrono::Duration = chrono::Duration::days(7);
/// How close to now `end_time` may be (X: at least 10 seconds before the request).
pub const END_TIME_MARGIN: chrono::Duration = chrono::Duration::seconds(10);
/// Slack kept from the edges of X's windows, for the time a request takes.
const SLACK: chrono::Duration = chrono::Duration::seconds(30);

/// Parses a time flag: `2026-11-30T12:00:00Z`, `2026-11-30` (midnight UTC), or `7d`/`2h`/`90m` ago.
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    let ago = humantime::parse_duration(s).map_err(|_| {
        format!("`{s}` is neither an RFC 3339 time (2026-11-30T12:00:00Z), a date (2026-11-30), nor a duration ago (7d, 2h)")
    })?;
    let ago = chrono::Duration::from_std(ago).map_err(|_| format!("`{s}` is too long ago"))?;
    now.checked_sub_signed(ago)
        .ok_or_else(|| format!("`{s}` is too long ago"))
}

/// X's timestamp format for `start_time`/`end_time` (second precision, `Z`).
pub fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Moves a window inside what X accepts at `now`: recent search's start no
/// older than 7 days, an end at least 10 seconds back. Returns what changed,
/// for the log.
pub fn clamp(
    endpoint: Endpoint,
    start: &mut Option<DateTime<Utc>>,
    end: &mut Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if endpoint == Endpoint::Recent {
        let earliest = now - RECENT_LOOKBACK + SLACK;
        if start.is_some_and(|s| s < earliest) {
            *start = Some(earliest);
            changed.push("start_time moved to the 7 days recent search covers");
        }
    }
    let latest = now - END_TIME_MARGIN - SLACK;
    if end.is_some_and(|e| e > latest) {
        *end = Some(latest);
        changed.push("end_time moved back 40 s (X wants it at least 10 s before the request)");
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn times_are_rfc3339_dates_or_durations_ago() {
        let t = |s| parse_time(s, now()).map(format_time);
        assert_eq!(t("2026-11-29T08:30:00Z").unwrap(), "2026-11-29T08:30:00Z");
        assert_eq!(
            t("2026-11-29T10:30:00+02:00").unwrap(),
            "2026-11-29T08:30:00Z"
        );
        assert_eq!(t("2026-11-01").unwrap(), "2026-11-01T00:00:00Z");
        assert_eq!(t("7d").unwrap(), "2026-11-23T12:00:00Z");
        assert_eq!(t("2h").unwrap(), "2026-11-30T10:00:00Z");
        assert_eq!(t(" 90m ").unwrap(), "2026-11-30T10:30:00Z");
        for bad in ["yesterday", "", "7 parsecs", "2026-13-01", "-2h"] {
            let err = t(bad).unwrap_err();
            assert!(
                err.contains("RFC 3339") || err.contains("too long"),
                "{bad}: {err}"
            );
        }
        assert!(t("100000000000d").is_err());
    }

    #[test]
    fn windows_are_clamped_to_what_x_accepts() {
        let mut start = parse_time("7d", now()).ok();
        let mut end = Some(now());
        let changed = clamp(Endpoint::Recent, &mut start, &mut end, now());
        assert_eq!(changed.len(), 2);
        assert!(start.unwrap() > now() - RECENT_LOOKBACK);
        assert!(end.unwrap() <= now() - END_TIME_MARGIN);
        // Full-archive keeps an old start; a window already inside is left alone.
        let mut start = parse_time("2010-01-01", now()).ok();
        let mut end = parse_time("2h", now()).ok();
        assert!(clamp(Endpoint::Archive, &mut start, &mut end, now()).is_empty());
        assert_eq!(format_time(start.unwrap()), "2010-01-01T00:00:00Z");
    }
}
