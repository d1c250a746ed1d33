//! Backoff policies.
//!
//! Sinks retry with capped exponential backoff and full jitter (the delay before
//! retry `n` is uniform in `[0, min(max, initial * 2^(n-1))]`), which spreads
//! retries of many writers instead of synchronizing them.

use std::time::Duration;

use rand::Rng;

/// Capped exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
        }
    }

    /// The upper bound of the delay before retry `attempt` (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(31);
        self.initial.saturating_mul(1u32 << shift).min(self.max)
    }

    /// The jittered delay before retry `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        if ceiling.is_zero() {
            return ceiling;
        }
        let nanos = rand::rng().random_range(0..=ceiling.as_nanos().min(u64::MAX as u128) as u64);
        Duration::from_nanos(nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let c: Vec<u64> = (1..=6).map(|n| b.ceiling(n).as_millis() as u64).collect();
        assert_eq!(c, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn delay_is_jittered_within_the_ceiling() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        let delays: Vec<Duration> = (0..200).map(|_| b.delay(4)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(800)));
        // Full jitter: not all equal.
        assert!(delays.iter().any(|d| *d != delays[0]));
        assert_eq!(
            Backoff::new(Duration::ZERO, Duration::ZERO).delay(3),
            Duration::ZERO
        );
    }

    #[test]
    fn max_below_initial_is_raised() {
        let b = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(b.ceiling(5), Duration::from_secs(2));
    }
}

/// X's reconnect classes for the filtered stream (its "handling disconnections" guide).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFailure {
    /// TCP/TLS errors, timeouts: back off linearly.
    Network,
    /// HTTP errors: back off exponentially.
    Http,
    /// HTTP 429: back off exponentially from a higher base.
    RateLimited,
}

impl StreamFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamFailure::Network => "network error",
            StreamFailure::Http => "HTTP error",
            StreamFailure::RateLimited => "rate limited (429)",
        }
    }
}

/// The bases of the three reconnect classes (`[twitter.backoff]`); tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamBackoffConfig {
    /// Network errors: +this per attempt…
    pub network_step_ms: u64,
    /// …up to this.
    pub network_max_ms: u64,
    /// HTTP errors: start here and double…
    pub http_initial_ms: u64,
    /// …up to this.
    pub http_max_ms: u64,
    /// 429: start here and double…
    pub rate_limit_initial_ms: u64,
    /// …up to this.
    pub rate_limit_max_ms: u64,
}

impl Default for StreamBackoffConfig {
    fn default() -> Self {
        StreamBackoffConfig {
            network_step_ms: 250,
            network_max_ms: 16_000,
            http_initial_ms: 5_000,
            http_max_ms: 320_000,
            rate_limit_initial_ms: 60_000,
            rate_limit_max_ms: 960_000,
        }
    }
}

/// Reconnect delays for the X stream. Counts reset once a connection is established.
#[derive(Debug, Clone)]
pub struct StreamBackoff {
    config: StreamBackoffConfig,
    network: u32,
    http: u32,
    rate_limited: u32,
}

impl StreamBackoff {
    pub fn new(config: StreamBackoffConfig) -> Self {
        StreamBackoff {
            config,
            network: 0,
            http: 0,
            rate_limited: 0,
        }
    }

    /// A connection was established: the next failure starts each class afresh.
    pub fn reset(&mut self) {
        self.network = 0;
        self.http = 0;
        self.rate_limited = 0;
    }

    /// The wait before the next attempt after a failure of `class`.
    pub fn next(&mut self, class: StreamFailure) -> Duration {
        let c = &self.config;
        let ms = match class {
            StreamFailure::Network => {
                self.network += 1;
                (c.network_step_ms.saturating_mul(self.network as u64)).min(c.network_max_ms)
            }
            StreamFailure::Http => {
                self.http += 1;
                exp(c.http_initial_ms, self.http, c.http_max_ms)
            }
            StreamFailure::RateLimited => {
                self.rate_limited += 1;
                exp(
                    c.rate_limit_initial_ms,
                    self.rate_limited,
                    c.rate_limit_max_ms,
                )
            }
        };
        Duration::from_millis(ms)
    }
}

fn exp(initial: u64, attempt: u32, max: u64) -> u64 {
    initial
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(40))
        .min(max.max(initial))
}

#[cfg(test)]
mod stream_tests {
    use super::*;

    fn ms(d: Duration) -> u64 {
        d.as_millis() as u64
    }

    #[test]
    fn the_three_classes_follow_the_documented_sequences() {
        let mut b = StreamBackoff::new(StreamBackoffConfig::default());
        let net: Vec<u64> = (0..70)
            .map(|_| ms(b.next(StreamFailure::Network)))
            .collect();
        assert_eq!(&net[..4], [250, 500, 750, 1000]);
        assert_eq!(net[63], 16_000);
        assert_eq!(net[69], 16_000);
        let http: Vec<u64> = (0..8).map(|_| ms(b.next(StreamFailure::Http))).collect();
        assert_eq!(
            http,
            [
                5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 320_000
            ]
        );
        let rl: Vec<u64> = (0..3)
            .map(|_| ms(b.next(StreamFailure::RateLimited)))
            .collect();
        assert_eq!(rl, [60_000, 120_000, 240_000]);
        b.reset();
        assert_eq!(ms(b.next(StreamFailure::Http)), 5_000);
        assert_eq!(ms(b.next(StreamFailure::Network)), 250);
    }
}
