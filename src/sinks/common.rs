//! What every sink table has besides its own fields: the queue, batching and
//! retry settings the pipeline applies to every sink alike.

use std::time::Duration;

use serde::Deserialize;

use crate::retry::Backoff;

/// Fields every sink table has (`queue_capacity`, `[batch]`, `[retry]`), gathered.
///
/// Each sink config repeats the three fields itself: serde cannot combine
/// `flatten` with `deny_unknown_fields`, and unknown fields must be errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonSinkConfig {
    /// Source batches the sink's queue holds before it pushes back.
    pub queue_capacity: usize,
    pub batch: BatchConfig,
    pub retry: RetryConfig,
}

impl Default for CommonSinkConfig {
    fn default() -> Self {
        CommonSinkConfig {
            queue_capacity: default_queue_capacity(),
            batch: BatchConfig::default(),
            retry: RetryConfig::default(),
        }
    }
}

pub fn default_queue_capacity() -> usize {
    64
}

/// `[sinks.NAME.batch]`: a write happens when any limit is reached.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    #[serde(default = "default_batch_records")]
    pub max_records: usize,
    #[serde(default = "default_batch_bytes")]
    pub max_bytes: usize,
    #[serde(default = "default_batch_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_records: default_batch_records(),
            max_bytes: default_batch_bytes(),
            timeout_ms: default_batch_timeout_ms(),
        }
    }
}

fn default_batch_records() -> usize {
    10_000
}
fn default_batch_bytes() -> usize {
    8 * 1024 * 1024
}
fn default_batch_timeout_ms() -> u64 {
    1000
}

/// `[sinks.NAME.retry]`: capped exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per batch, the first included; then the records are dead-lettered.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
        }
    }
}

impl RetryConfig {
    pub fn backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(self.initial_backoff_ms),
            Duration::from_millis(self.max_backoff_ms),
        )
    }
}

fn default_max_attempts() -> u32 {
    8
}
fn default_initial_backoff_ms() -> u64 {
    200
}
fn default_max_backoff_ms() -> u64 {
    30_000
}
