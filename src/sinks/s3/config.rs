//! The `s3` sink: each batch becomes one JSONL object per key partition
//! (platform, date…), optionally gzipped, uploaded with one PUT or, above a
//! size threshold, a multipart upload.
//!
//! This module holds the config and its validation (in every build); [`key`]
//! the key template; `objects` (batch → objects) and `sink` (the client and
//! its uploads) are compiled with the `s3` feature only.

use chrono_tz::Tz;
use serde::Deserialize;

use super::key::KeyTemplate;
use crate::sinks::aws::{self, AwsConnection};
use crate::sinks::common::{BatchConfig, RetryConfig, default_queue_capacity};
use crate::sinks::parquet::{self, Compression, FileFormat, ParquetOptions};
#[cfg(feature = "s3")]
use crate::sinks::{AnySink, BuildError};
use crate::sinks::{FieldError, SinkType};

/// Default object key template.
pub const DEFAULT_KEY_TEMPLATE: &str = "{platform}/context_date={date}/{timestamp}-{uuid}.jsonl";
/// Default object key template with `format = "parquet"`.
pub const DEFAULT_PARQUET_KEY_TEMPLATE: &str =
    "{platform}/context_date={date}/{timestamp}-{uuid}.parquet";
/// S3's smallest part (all parts but the last).
pub const MIN_PART_BYTES: usize = 5 * 1024 * 1024;
/// S3's largest part.
pub const MAX_PART_BYTES: usize = 5 * 1024 * 1024 * 1024;
/// S3's most parts in one upload.
pub const MAX_PARTS: usize = 10_000;
const DEFAULT_MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
const DEFAULT_PART_BYTES: usize = 8 * 1024 * 1024;

/// `[sinks.NAME]` with `type = "s3"`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct S3SinkConfig {
    /// The bucket (it must exist).
    pub bucket: String,
    /// Object key template (README, "Routing"). With `{uuid}`: one object
    /// per batch and partition; without it (then `{timestamp_us}` or `{id}`
    /// is required): one object per record, written only if the key is free.
    #[serde(default = "default_key_template")]
    pub key_template: String,
    /// With several rule tags, write a record once per tag (`{tag}` renders
    /// each); default false: once, with its first tag.
    #[serde(default)]
    pub split_tags: bool,
    /// `record` (default), `raw` or `parquet` (one Parquet file per object).
    #[serde(default)]
    pub format: FileFormat,
    /// Gzip objects (`Content-Encoding: gzip`, `.gz` added to the key).
    #[serde(default)]
    pub gzip: bool,
    /// Parquet page compression: `zstd` (default) or `snappy`.
    #[serde(default)]
    pub compression: Option<Compression>,
    /// Parquet: write the `raw` column (default true).
    #[serde(default)]
    pub raw: Option<bool>,
    /// IANA zone (`Europe/Berlin`) for `{date}`, `{hour}` and `{timestamp}`; default UTC.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Objects larger than this go up as multipart uploads.
    #[serde(default = "default_multipart_threshold")]
    pub multipart_threshold_bytes: usize,
    /// Part size of multipart uploads (at least 5 MiB).
    #[serde(default = "default_part_bytes")]
    pub multipart_part_bytes: usize,
    /// Path-style URLs (`http://host/bucket/key`), what local S3 servers want.
    #[serde(default)]
    pub force_path_style: bool,
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

fn default_key_template() -> String {
    DEFAULT_KEY_TEMPLATE.to_owned()
}
fn default_time_zone() -> String {
    "UTC".to_owned()
}
fn default_multipart_threshold() -> usize {
    DEFAULT_MULTIPART_THRESHOLD
}
fn default_part_bytes() -> usize {
    DEFAULT_PART_BYTES
}

impl S3SinkConfig {
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
        if self.bucket.trim().is_empty() {
            return Err(("bucket", "is empty".into()));
        }
        parquet::validate(self.format, self.gzip, self.compression, self.raw)?;
        let key = KeyTemplate::parse(&self.key_template).map_err(|m| ("key_template", m))?;
        crate::sinks::template::check_split_tags(self.split_tags, &[&key.template])
            .map_err(|m| ("split_tags", m))?;
        parse_time_zone(&self.time_zone).map_err(|m| ("time_zone", m))?;
        if self.multipart_part_bytes < MIN_PART_BYTES || self.multipart_part_bytes > MAX_PART_BYTES
        {
            return Err((
                "multipart_part_bytes",
                format!(
                    "{} is out of range: S3 parts are 5 MiB ({MIN_PART_BYTES}) to 5 GiB",
                    self.multipart_part_bytes
                ),
            ));
        }
        if self.multipart_threshold_bytes < self.multipart_part_bytes {
            return Err((
                "multipart_threshold_bytes",
                format!(
                    "{} is below `multipart_part_bytes` ({}): an object that small is one part, use a single PUT",
                    self.multipart_threshold_bytes, self.multipart_part_bytes
                ),
            ));
        }
        self.connection().validate()
    }
}

impl S3SinkConfig {
    /// The key template, ending in `.parquet` for the default one with Parquet.
    pub fn key_template(&self) -> &str {
        if self.format.is_parquet() && self.key_template == DEFAULT_KEY_TEMPLATE {
            DEFAULT_PARQUET_KEY_TEMPLATE
        } else {
            &self.key_template
        }
    }

    /// The Parquet options (defaults where unset).
    pub fn parquet_options(&self) -> ParquetOptions {
        ParquetOptions {
            compression: self.compression.unwrap_or_default(),
            raw: self.raw.unwrap_or(true),
        }
    }
}

pub(super) fn parse_time_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("`{name}` is not an IANA time zone name (e.g. `UTC`, `Europe/Berlin`, `America/New_York`)")
    })
}

impl SinkType for S3SinkConfig {
    crate::sinks::sink_type_basics!("s3", feature);
    fn validate(&self) -> Result<(), FieldError> {
        self.validate().map_err(|(f, m)| FieldError::new(f, m))
    }
    #[cfg(feature = "s3")]
    fn build(&self, name: &str) -> Result<AnySink, BuildError> {
        let sink = super::S3Sink::new(name, self.clone()).map_err(BuildError::Invalid)?;
        Ok(Box::new(sink))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_fields_say_why() {
        let c: S3SinkConfig =
            toml::from_str("bucket = \"b\"\ntime_zone = \"Mars/Olympus\"").unwrap();
        assert_eq!(c.validate().unwrap_err().0, "time_zone");
        let c: S3SinkConfig =
            toml::from_str("bucket = \"b\"\nmultipart_part_bytes = 1000").unwrap();
        assert_eq!(c.validate().unwrap_err().0, "multipart_part_bytes");
        let c: S3SinkConfig = toml::from_str("bucket = \"b\"").unwrap();
        assert!(c.validate().is_ok());
        assert_eq!(c.key_template, DEFAULT_KEY_TEMPLATE);
    }
}
