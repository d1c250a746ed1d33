//! `[webhook]`, as written in the config file: the limits of the HTTP server
//! both webhooks run on, and their defaults.

use std::time::Duration;

use serde::Deserialize;

/// Default for `[webhook] max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default for `[webhook] header_read_timeout`.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for `[webhook] body_read_timeout`.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// `[webhook]`: limits of the webhook server, shared by both webhooks.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookServerConfig {
    /// Connections open at once; past it idle ones are closed (default 1024).
    pub max_connections: Option<usize>,
    /// Time to receive a request's headers, and the longest idle keep-alive (default 10s).
    #[serde(default, deserialize_with = "crate::duration::de_duration_opt")]
    pub header_read_timeout: Option<Duration>,
    /// Time to receive a whole request body (default 30s).
    #[serde(default, deserialize_with = "crate::duration::de_duration_opt")]
    pub body_read_timeout: Option<Duration>,
    /// Largest request body accepted, 413 above it (default 1 MiB).
    pub max_body_bytes: Option<usize>,
    /// How long a request waits for the sinks before answering 503 (default 10s).
    #[serde(default, deserialize_with = "crate::duration::de_duration_opt")]
    pub ack_timeout: Option<Duration>,
}

/// Default cap on webhook bodies (`[webhook] max_body_bytes`).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default wait for the sinks before a webhook answers 503 (`[webhook] ack_timeout`).
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(10);

impl WebhookServerConfig {
    /// How long a webhook request waits for the sinks (`ack_timeout`).
    pub fn ack_timeout(&self) -> Duration {
        self.ack_timeout.unwrap_or(DEFAULT_ACK_TIMEOUT)
    }

    /// The first field set to a value that cannot work: (field, message).
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if self.max_connections == Some(0) {
            return Err(("max_connections", "must be at least 1"));
        }
        if self.header_read_timeout.is_some_and(|d| d.is_zero()) {
            return Err(("header_read_timeout", "must be more than zero"));
        }
        if self.body_read_timeout.is_some_and(|d| d.is_zero()) {
            return Err(("body_read_timeout", "must be more than zero"));
        }
        if self.max_body_bytes == Some(0) {
            return Err((
                "max_body_bytes",
                "must be at least 1 (0 would refuse every webhook request)",
            ));
        }
        Ok(())
    }
}
