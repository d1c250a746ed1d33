//! librdkafka's logs and errors, forwarded to `tracing`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use tracing::{debug, error, trace, warn};

/// How long a repeated error stays quiet after it was logged.
const REPEAT_WINDOW: Duration = Duration::from_secs(10);

/// librdkafka's logs and errors, forwarded to `tracing` for the Kafka sink and
/// source. Each kind of error is logged at most once per [`REPEAT_WINDOW`],
/// with the number of repeats since (a broker that is down is reported every
/// few milliseconds).
pub struct KafkaLog {
    component: String,
    /// By error text: when it was last logged, and how often it came since
    /// (`u64::MAX`: never logged yet).
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl KafkaLog {
    pub fn new(component: &str) -> Self {
        KafkaLog {
            component: component.to_owned(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let component = self.component.as_str();
        match level {
            // Connection failures also come through `error`, which throttles them.
            _ if fac == "FAIL" => debug!(component, facility = fac, "librdkafka: {message}"),
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => error!(component, facility = fac, "librdkafka: {message}"),
            RDKafkaLogLevel::Warning => warn!(component, facility = fac, "librdkafka: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                debug!(component, facility = fac, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Debug => trace!(component, facility = fac, "librdkafka: {message}"),
        }
    }

    /// Broker connection trouble arrives here; librdkafka reconnects by itself
    /// and the pipeline retries what failed.
    pub fn error(&self, error: &KafkaError, reason: &str) {
        let Some(repeated) = self.due(&error.to_string(), Instant::now()) else {
            return;
        };
        if repeated > 0 {
            warn!(component = %self.component, error = %error, repeated_since_last = repeated, "Kafka: {reason}");
        } else {
            warn!(component = %self.component, error = %error, "Kafka: {reason}");
        }
    }

    /// Whether an error with this text is logged now, and with how many
    /// repeats since it was last logged; `None` while it is throttled.
    fn due(&self, key: &str, now: Instant) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let entry = seen.entry(key.to_owned()).or_insert((now, u64::MAX));
        if entry.1 != u64::MAX && now.duration_since(entry.0) < REPEAT_WINDOW {
            entry.1 += 1;
            return None;
        }
        let repeated = if entry.1 == u64::MAX { 0 } else { entry.1 };
        *entry = (now, 0);
        Some(repeated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_throttled_and_counted() {
        let log = KafkaLog::new("test");
        let t0 = Instant::now();
        assert_eq!(log.due("down", t0), Some(0));
        assert_eq!(log.due("down", t0 + Duration::from_secs(1)), None);
        assert_eq!(log.due("down", t0 + Duration::from_secs(2)), None);
        assert_eq!(log.due("other", t0 + Duration::from_secs(2)), Some(0));
        assert_eq!(log.due("down", t0 + REPEAT_WINDOW), Some(2));
    }
}
