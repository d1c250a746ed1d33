//! The `kinesis` sink: PutRecords in requests of at most 500 records and 5 MiB,
//! reading the per-record results so only the failed entries are retried.
//!
//! This module holds the config and its validation (in every build); `sink`
//! (the client, partition keys, request splitting) needs the `kinesis` feature.

use serde::Deserialize;

use crate::record::Format;
use crate::sinks::aws::{self, AwsConnection};
use crate::sinks::common::{BatchConfig, RetryConfig, default_queue_capacity};
use crate::sinks::template::{Target, Template};
#[cfg(feature = "kinesis")]
use crate::sinks::{AnySink, BuildError};
use crate::sinks::{FieldError, SinkType};

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
    /// The partition key: a dotted path into the record (`id`, `author.id`,
    /// `raw.data.author_id`), a template with placeholders (`{platform}-{chat.id}`),
    /// or a constant (`partitionkey`: every record to one shard); default `id`.
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
        if self.partition_key.is_empty() {
            return Err((
                "partition_key",
                "is empty: write `id` (the default), a record path, a template or a constant"
                    .into(),
            ));
        }
        if let PartitionKeySource::Template(t) = PartitionKeySource::parse(&self.partition_key)?
            && t.literal()
                .is_some_and(|k| k.chars().count() > MAX_PARTITION_KEY_CHARS)
        {
            return Err((
                "partition_key",
                format!("a constant key has at most {MAX_PARTITION_KEY_CHARS} characters"),
            ));
        }
        if self.max_in_flight == 0 {
            return Err(("max_in_flight", "must be at least 1".into()));
        }
        self.connection().validate()
    }

    #[cfg(feature = "kinesis")]
    pub(super) fn stream(&self) -> String {
        self.stream_name
            .clone()
            .or_else(|| self.stream_arn.clone())
            .unwrap_or_default()
    }
}

/// What `partition_key` names.
#[derive(Debug, Clone)]
pub(crate) enum PartitionKeySource {
    /// A dotted path into the record (kept from before templates: `author.id`).
    // Without the `kinesis` feature the path is only checked, never followed.
    #[cfg_attr(not(feature = "kinesis"), allow(dead_code))]
    Path(Vec<String>),
    /// A template, or a constant (a template without placeholders).
    Template(Template),
}

impl PartitionKeySource {
    /// A value with `{` is a template; else one whose first part is a record
    /// field is a path; anything else is a constant.
    pub(crate) fn parse(text: &str) -> Result<Self, (&'static str, String)> {
        let first = text.split('.').next().unwrap_or("");
        if !text.contains('{') && RECORD_FIELDS.contains(&first) {
            if text.split('.').any(str::is_empty) {
                return Err((
                    "partition_key",
                    format!("`{text}` is not a path into the record (an empty part)"),
                ));
            }
            return Ok(PartitionKeySource::Path(
                text.split('.').map(str::to_owned).collect(),
            ));
        }
        Template::compile(text, Target::Key)
            .map(PartitionKeySource::Template)
            .map_err(|m| ("partition_key", m))
    }
}

impl SinkType for KinesisSinkConfig {
    crate::sinks::sink_type_basics!("kinesis", feature);
    fn validate(&self) -> Result<(), FieldError> {
        self.validate().map_err(|(f, m)| FieldError::new(f, m))
    }
    #[cfg(feature = "kinesis")]
    fn build(&self, name: &str) -> Result<AnySink, BuildError> {
        let sink = super::KinesisSink::new(name, self.clone()).map_err(BuildError::Invalid)?;
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
        for key in [
            "partitionkey",
            "{platform}-{chat.id}",
            "author.id",
            "raw.data.author_id",
        ] {
            let c: KinesisSinkConfig =
                toml::from_str(&format!("stream_name = \"s\"\npartition_key = \"{key}\"")).unwrap();
            assert!(c.validate().is_ok(), "{key}");
        }
        for key in ["", "author..id", "{nope}", &"k".repeat(257)] {
            let c: KinesisSinkConfig =
                toml::from_str(&format!("stream_name = \"s\"\npartition_key = \"{key}\"")).unwrap();
            assert_eq!(c.validate().unwrap_err().0, "partition_key", "{key}");
        }
    }
}
