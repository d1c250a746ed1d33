//! X's rate-limit headers (`x-rate-limit-remaining`, `x-rate-limit-reset`, on
//! every answer) and what they mean for the next call.

use std::time::Duration;

/// Waited past the reset, for clocks that disagree by a little.
pub const RESET_MARGIN: Duration = Duration::from_millis(1000);
/// Longest wait believed from a reset header (a 15-minute window, and slack):
/// a reset further away is a broken header, not a plan.
pub const MAX_RESET_WAIT: Duration = Duration::from_secs(20 * 60);
/// Longest wait after 429s in a row whose reset is already past.
pub const MAX_PAST_RESET_WAIT: Duration = Duration::from_secs(15 * 60);
/// Wait after a 429 that carries no reset header.
pub const DEFAULT_429_WAIT: Duration = Duration::from_secs(60);

/// What the last answer said about the budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Calls left in the window.
    pub remaining: Option<u64>,
    /// When the window resets (Unix seconds).
    pub reset: Option<i64>,
}

impl RateLimit {
    /// Reads the headers of one answer; absent or garbled headers leave `None`.
    pub fn from_headers(headers: &reqwest::header::HeaderMap) -> Self {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        RateLimit {
            remaining: num("x-rate-limit-remaining").and_then(|n| u64::try_from(n).ok()),
            reset: num("x-rate-limit-reset"),
        }
    }

    /// Time until the reset (and the margin), from `now_ms` (Unix ms); `None` without a reset header.
    fn until_reset(&self, now_ms: i64) -> Option<Duration> {
        let reset_ms = self.reset?.checked_mul(1000)?;
        let wait = Duration::from_millis(reset_ms.saturating_sub(now_ms).max(0) as u64);
        Some((wait + RESET_MARGIN).min(MAX_RESET_WAIT))
    }

    /// How long to wait before the next call: until the reset when the
    /// budget is spent, else not at all.
    pub fn wait_before_call(&self, now_ms: i64) -> Option<Duration> {
        if self.remaining != Some(0) {
            return None;
        }
        self.until_reset(now_ms).filter(|w| *w > RESET_MARGIN)
    }

    /// How long to wait after the `attempt`-th 429 in a row (1-based): until
    /// the reset when it is ahead; a reset already past (a skewed clock, a
    /// broken header) waits a backoff that doubles from a second up to
    /// [`MAX_PAST_RESET_WAIT`]; no header at all, a minute or that backoff.
    pub fn wait_after_429(&self, now_ms: i64, attempt: u32) -> Duration {
        let backoff =
            crate::retry::Backoff::new(RESET_MARGIN, MAX_PAST_RESET_WAIT).ceiling(attempt);
        match self.reset.and_then(|r| r.checked_mul(1000)) {
            Some(reset_ms) if reset_ms > now_ms => self.until_reset(now_ms).unwrap_or(backoff),
            Some(_) => backoff,
            None => DEFAULT_429_WAIT.max(backoff),
        }
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn headers_are_read_and_garbage_ignored() {
        let r = RateLimit::from_headers(&headers(&[
            ("x-rate-limit-remaining", "0"),
            ("x-rate-limit-reset", "1764504000"),
        ]));
        assert_eq!(r.remaining, Some(0));
        assert_eq!(r.reset, Some(1_764_504_000));
        let r = RateLimit::from_headers(&headers(&[
            ("x-rate-limit-remaining", "-3"),
            ("x-rate-limit-reset", "soon"),
        ]));
        assert_eq!(r, RateLimit::default());
    }

    #[test]
    fn a_spent_budget_waits_until_the_reset_and_no_longer() {
        let now = 1_764_504_000_000;
        let spent = RateLimit {
            remaining: Some(0),
            reset: Some(1_764_504_012),
        };
        assert_eq!(
            spent.wait_before_call(now),
            Some(Duration::from_secs(12) + RESET_MARGIN)
        );
        // Budget left, or a reset already past: call at once.
        let left = RateLimit {
            remaining: Some(1),
            ..spent
        };
        assert_eq!(left.wait_before_call(now), None);
        let past = RateLimit {
            reset: Some(1_764_503_000),
            ..spent
        };
        assert_eq!(past.wait_before_call(now), None);
        assert_eq!(RateLimit::default().wait_before_call(now), None);
        // A reset a day away is capped.
        let far = RateLimit {
            reset: Some(1_764_504_000 + 86_400),
            ..spent
        };
        assert_eq!(far.wait_before_call(now), Some(MAX_RESET_WAIT));
    }

    #[test]
    fn a_429_waits_until_the_reset_or_a_minute() {
        let now = 1_764_504_000_000;
        let r = RateLimit {
            remaining: Some(0),
            reset: Some(1_764_504_005),
        };
        assert_eq!(
            r.wait_after_429(now, 1),
            Duration::from_secs(5) + RESET_MARGIN
        );
        assert_eq!(
            RateLimit::default().wait_after_429(now, 1),
            DEFAULT_429_WAIT
        );
    }

    #[test]
    fn a_429_whose_reset_is_past_waits_longer_each_time() {
        let now = 1_764_504_000_000;
        let past = RateLimit {
            remaining: Some(0),
            reset: Some(1_764_503_000),
        };
        let waits: Vec<u64> = (1..=12)
            .map(|n| past.wait_after_429(now, n).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]);
        assert_eq!(
            RateLimit::default().wait_after_429(now, 8),
            Duration::from_secs(128)
        );
    }
}
