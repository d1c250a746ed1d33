//! The `kinesis` sink: PutRecords in requests of at most 500 records and 5 MiB,
//! reading the per-record results so only the failed entries are retried.
//!
//! This module holds the config and its validation (in every build); `sink`
//! (the client, partition keys, request splitting) needs the `kinesis` feature.

use serde::Deserialize;

use super::aws::{self, AwsConnection};
use super::common::{BatchConfig, RetryConfig, default_queue_capacity};
#[cfg(feature = "kinesis")]
use super::{AnySink, BuildError};
use super::{FieldError, SinkType};
use crate::record::Format;

#[cfg(feature = "kinesis")]
mod sink;

#[cfg(feature = "kinesis")]
pub use sink::KinesisSink;

/// Most records in one PutRecords request.
pub const MAX_PUT_RECORDS: usize = 500;
/// Most bytes (data and partition keys) in one PutRecords request.
pub const MAX_PUT_RECORDS_BYTES: usize = 5 * 1024 * 1024;
/// Most bytes (data and partition key) in one record.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Longest partition key, in Unicode characters.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// Top-level record fields a `partition_key` path may start with.
const RECORD_FIELDS: &[&str] = &[
    "id",
    "platform",
    "kind",
    "text",
    "text_ascii",
    "created_at",
    "received_at",
    "author",
    "chat",
    "lang",
    "source",
    "matching_rules",
    "tags",
    "refs",
    "run",
    "raw",
];

/// `[sinks.NAME]` with `type = "kinesis"`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KinesisSinkConfig {
    /// The stream, by name…
    pub stream_name: Option<String>,
    /// …or by ARN (one of the two).
    pub stream_arn: Option<String>,
    /// A dotted path into the record (`id`, `author.id`, `raw.data.author_id`); default `id`.
    #[serde(default = "default_partition_key")]
    pub partition_key: String,
    /// `record` (default) or `raw`.
    #[serde(default)]
    pub format: Format,
    /// PutRecords requests of one batch in flight at once.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    #[serde(default = "aws::default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "aws::default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub retry: RetryConfig,
}

fn default_partition_key() -> String {
    "id".to_owned()
}
fn default_max_in_flight() -> usize {
    4
}

impl KinesisSinkConfig {
    pub fn connection(&self) -> AwsConnection {
        AwsConnection {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            connect_timeout_ms: self.connect_timeout_ms,
            request_timeout_ms: self.request_timeout_ms,
        }
    }

    /// Checks the fields; the error names the field and says why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        match (&self.stream_name, &self.stream_arn) {
            (None, None) => {
                return Err((
                    "stream_name",
                    "is missing: name the stream with `stream_name` or `stream_arn`".into(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err((
                    "stream_arn",
                    "cannot be used with `stream_name`: keep one".into(),
                ));
            }
            (Some(n), None) if n.trim().is_empty() => {
                return Err(("stream_name", "is empty".into()));
            }
            (None, Some(a)) if !a.starts_with("arn:") => {
                return Err((
                    "stream_arn",
                    format!("`{a}` is not an ARN (`arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`)"),
                ));
            }
            _ => {}
        }
        let first = self.partition_key.split('.').next().unwrap_or("");
        if self.partition_key.split('.').any(str::is_empty) || !RECORD_FIELDS.contains(&first) {
            return Err((
                "partition_key",
                format!(
                    "`{}` is not a path into the record: start with one of {} (e.g. `id`, `author.id`, `raw.data.author_id`); a constant key would send everything to one shard",
                    self.partition_key,
                    RECORD_FIELDS.join(", ")
                ),
            ));
        }
        if self.max_in_flight == 0 {
            return Err(("max_in_flight", "must be at least 1".into()));
        }
        self.connection().validate()
    }

    #[cfg(feature = "kinesis")]
    fn stream(&self) -> String {
        self.stream_name
            .clone()
            .or_else(|| self.stream_arn.clone())
            .unwrap_or_default()
    }
}

impl SinkType for KinesisSinkConfig {
    crate::sink_type_basics!("kinesis", feature);
    fn validate(&self) -> Result<(), FieldError> {
        self.validate().map_err(|(f, m)| FieldError::new(f, m))
    }
    #[cfg(feature = "kinesis")]
    fn build(&self, name: &str) -> Result<AnySink, BuildError> {
        let sink = KinesisSink::new(name, self.clone()).map_err(BuildError::Invalid)?;
        Ok(Box::new(sink))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_needs_one_stream_and_a_record_path() {
        let c: KinesisSinkConfig = toml::from_str("stream_name = \"s\"").unwrap();
        assert!(c.validate().is_ok());
        assert_eq!(c.partition_key, "id");
        let c: KinesisSinkConfig = toml::from_str("").unwrap();
        assert_eq!(c.validate().unwrap_err().0, "stream_name");
        let c: KinesisSinkConfig =
            toml::from_str("stream_name = \"s\"\nstream_arn = \"arn:aws:kinesis:x\"").unwrap();
        assert_eq!(c.validate().unwrap_err().0, "stream_arn");
        let c: KinesisSinkConfig =
            toml::from_str("stream_name = \"s\"\npartition_key = \"constant\"").unwrap();
        assert_eq!(c.validate().unwrap_err().0, "partition_key");
    }
}
