//! The `s3` sink: each batch becomes one JSONL object per key partition
//! (platform, date…), optionally gzipped, uploaded with one PUT or, above a
//! size threshold, a multipart upload.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use flate2::Compression;
use flate2::write::GzEncoder;
use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tracing::{debug, warn};

use super::aws::{self, AwsConnection, ErrorClass};
use super::common::{BatchConfig, RetryConfig, default_queue_capacity};
use super::{RecordResults, Sink, SinkError};
use crate::record::{Format, Platform, Record};

/// Default object key template.
pub const DEFAULT_KEY_TEMPLATE: &str = "{platform}/context_date={date}/{timestamp}-{uuid}.jsonl";
/// S3's smallest part (all parts but the last).
pub const MIN_PART_BYTES: usize = 5 * 1024 * 1024;
/// S3's largest part.
pub const MAX_PART_BYTES: usize = 5 * 1024 * 1024 * 1024;
/// S3's most parts in one upload.
pub const MAX_PARTS: usize = 10_000;
const DEFAULT_MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
const DEFAULT_PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts of one multipart upload sent at once.
const PARTS_IN_FLIGHT: usize = 4;
const PLACEHOLDERS: &str = "{platform}, {date}, {hour}, {timestamp}, {uuid}";

/// `[sinks.NAME]` with `type = "s3"`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct S3SinkConfig {
    /// The bucket (it must exist).
    pub bucket: String,
    /// Object key template; `{uuid}` is required.
    #[serde(default = "default_key_template")]
    pub key_template: String,
    /// `record` (default) or `raw`.
    #[serde(default)]
    pub format: Format,
    /// Gzip objects (`Content-Encoding: gzip`, `.gz` added to the key).
    #[serde(default)]
    pub gzip: bool,
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
        KeyTemplate::parse(&self.key_template).map_err(|m| ("key_template", m))?;
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

fn parse_time_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("`{name}` is not an IANA time zone name (e.g. `UTC`, `Europe/Berlin`, `America/New_York`)")
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Lit(String),
    Platform,
    Date,
    Hour,
    Timestamp,
    Uuid,
}

/// A parsed key template.
#[derive(Debug, Clone)]
pub struct KeyTemplate {
    segments: Vec<Segment>,
}

impl KeyTemplate {
    pub fn parse(template: &str) -> Result<Self, String> {
        if template.trim().is_empty() {
            return Err("the key template is empty".into());
        }
        if template.starts_with('/') {
            return Err(format!(
                "`{template}` starts with `/`: S3 keys have no leading slash"
            ));
        }
        let mut segments = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                segments.push(Segment::Lit(rest[..open].to_owned()));
            }
            let Some(close) = rest[open..].find('}').map(|c| open + c) else {
                return Err(format!("unclosed `{{` in `{template}`"));
            };
            segments.push(match &rest[open + 1..close] {
                "platform" => Segment::Platform,
                "date" => Segment::Date,
                "hour" => Segment::Hour,
                "timestamp" => Segment::Timestamp,
                "uuid" => Segment::Uuid,
                other => {
                    return Err(format!(
                        "unknown placeholder `{{{other}}}` in `{template}`; the placeholders are {PLACEHOLDERS}"
                    ));
                }
            });
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Lit(rest.to_owned()));
        }
        if !segments.contains(&Segment::Uuid) {
            return Err(format!(
                "`{template}` has no `{{uuid}}`: without it two batches could get the same key and one would overwrite the other"
            ));
        }
        Ok(KeyTemplate { segments })
    }

    /// The key's fixed part for a record: everything but `{timestamp}` and `{uuid}`.
    /// Records with the same partition go into the same object.
    fn partition(&self, platform: Platform, at: &DateTime<Tz>) -> String {
        let mut s = String::with_capacity(64);
        for seg in &self.segments {
            match seg {
                Segment::Lit(l) => s.push_str(l),
                Segment::Platform => s.push_str(platform.as_str()),
                Segment::Date => s.push_str(&at.format("%Y-%m-%d").to_string()),
                Segment::Hour => s.push_str(&at.format("%H").to_string()),
                Segment::Timestamp => s.push_str("{timestamp}"),
                Segment::Uuid => s.push_str("{uuid}"),
            }
        }
        s
    }

    /// The object key: the partition with `{timestamp}` and `{uuid}` filled in.
    fn key(partition: &str, at: &DateTime<Tz>, uuid: &uuid::Uuid, gzip: bool) -> String {
        let mut key = partition
            .replace("{timestamp}", &timestamp(at))
            .replace("{uuid}", &uuid.to_string());
        if gzip && !key.ends_with(".gz") {
            key.push_str(".gz");
        }
        key
    }
}

/// `20261130T013822.123Z` in UTC, `20261130T023822.123+0100` elsewhere.
fn timestamp(at: &DateTime<Tz>) -> String {
    if at.timezone() == Tz::UTC {
        at.format("%Y%m%dT%H%M%S%.3fZ").to_string()
    } else {
        at.format("%Y%m%dT%H%M%S%.3f%z").to_string()
    }
}

/// A UUID derived from the ids in an object, so a retried write replaces the
/// same object instead of adding a second copy.
fn content_uuid<'a>(ids: impl Iterator<Item = &'a str>) -> uuid::Uuid {
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// One object to upload: its key, body and the batch indexes of its records.
struct Object {
    key: String,
    body: Bytes,
    indexes: Vec<usize>,
}

/// Writes JSONL objects to S3.
pub struct S3Sink {
    name: String,
    /// Built at first use (loading the AWS config is async; building the sink is not).
    client: OnceCell<Client>,
    bucket: String,
    template: KeyTemplate,
    time_zone: Tz,
    config: S3SinkConfig,
}

impl S3Sink {
    pub fn new(name: &str, config: S3SinkConfig) -> Result<Self, String> {
        config.validate().map_err(|(f, m)| format!("`{f}` {m}"))?;
        let template = KeyTemplate::parse(&config.key_template)?;
        let time_zone = parse_time_zone(&config.time_zone)?;
        Ok(S3Sink {
            name: name.to_owned(),
            client: OnceCell::new(),
            bucket: config.bucket.clone(),
            template,
            time_zone,
            config,
        })
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let sdk = self.config.connection().sdk_config().await;
                let s3 = aws_sdk_s3::config::Builder::from(&sdk)
                    .force_path_style(self.config.force_path_style)
                    // SigV4 already signs the payload's SHA-256; skip the extra CRC
                    // trailer some S3-compatible servers do not understand.
                    .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                    .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
                    .build();
                Client::from_conf(s3)
            })
            .await
    }

    /// Splits a batch into objects, one per key partition.
    fn objects(&self, batch: &[Arc<Record>]) -> Vec<Object> {
        let mut groups: BTreeMap<String, (DateTime<Tz>, Vec<usize>)> = BTreeMap::new();
        // Records of one read share `received_at`: parse it once per run of equal values.
        let mut last: Option<(Platform, Arc<str>, String, DateTime<Tz>)> = None;
        for (i, r) in batch.iter().enumerate() {
            let (partition, at) = match &last {
                Some((p, ra, part, at)) if *p == r.platform && Arc::ptr_eq(ra, &r.received_at) => {
                    (part.clone(), *at)
                }
                _ => {
                    let at = DateTime::parse_from_rfc3339(&r.received_at)
                        .map(|t| t.with_timezone(&Utc))
                        .unwrap_or_else(|_| Utc::now())
                        .with_timezone(&self.time_zone);
                    let part = self.template.partition(r.platform, &at);
                    last = Some((r.platform, r.received_at.clone(), part.clone(), at));
                    (part, at)
                }
            };
            groups
                .entry(partition)
                .or_insert((at, Vec::new()))
                .1
                .push(i);
        }
        groups
            .into_iter()
            .map(|(partition, (at, indexes))| {
                let mut body = Vec::with_capacity(indexes.len() * 1024);
                for &i in &indexes {
                    batch[i].write_line(self.config.format, &mut body);
                }
                if self.config.gzip {
                    let mut enc =
                        GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::default());
                    enc.write_all(&body).expect("writing to a Vec cannot fail");
                    body = enc.finish().expect("finishing gzip into a Vec cannot fail");
                }
                let uuid = content_uuid(indexes.iter().map(|&i| batch[i].id.as_str()));
                Object {
                    key: KeyTemplate::key(&partition, &at, &uuid, self.config.gzip),
                    body: Bytes::from(body),
                    indexes,
                }
            })
            .collect()
    }

    fn content_type(&self) -> &'static str {
        "application/x-ndjson"
    }

    fn classify<E>(&self, what: &str, err: &SdkError<E>) -> ErrorClass
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        if aws::code(err) == Some("NoSuchBucket") {
            return ErrorClass::Fatal(format!(
                "the bucket `{}` does not exist: create it, or fix `bucket` in [sinks.{}]",
                self.bucket, self.name
            ));
        }
        aws::classify(what, err)
    }

    async fn upload(&self, object: &Object) -> Result<(), ErrorClass> {
        let client = self.client().await;
        if object.body.len() > self.config.multipart_threshold_bytes {
            return self.upload_multipart(object).await;
        }
        let what = format!("PUT s3://{}/{}", self.bucket, object.key);
        client
            .put_object()
            .bucket(&self.bucket)
            .key(&object.key)
            .body(ByteStream::from(object.body.clone()))
            .content_type(self.content_type())
            .set_content_encoding(self.config.gzip.then(|| "gzip".to_owned()))
            .send()
            .await
            .map_err(|e| self.classify(&what, &e))?;
        debug!(key = %object.key, bytes = object.body.len(), records = object.indexes.len(), "object written");
        Ok(())
    }

    async fn upload_multipart(&self, object: &Object) -> Result<(), ErrorClass> {
        let client = self.client().await;
        let what = format!("multipart upload to s3://{}/{}", self.bucket, object.key);
        let created = client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&object.key)
            .content_type(self.content_type())
            .set_content_encoding(self.config.gzip.then(|| "gzip".to_owned()))
            .send()
            .await
            .map_err(|e| self.classify(&what, &e))?;
        let Some(upload_id) = created.upload_id() else {
            return Err(ErrorClass::Retry(format!("{what}: no upload id returned")));
        };
        let result = self.upload_parts(object, upload_id, &what).await;
        if result.is_err() {
            // Best effort: a lifecycle rule for incomplete uploads cleans up what this misses.
            if let Err(e) = client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&object.key)
                .upload_id(upload_id)
                .send()
                .await
            {
                warn!(key = %object.key, error = %aws::classify(&what, &e).message(), "cannot abort the multipart upload");
            }
        }
        result
    }

    async fn upload_parts(
        &self,
        object: &Object,
        upload_id: &str,
        what: &str,
    ) -> Result<(), ErrorClass> {
        let client = self.client().await;
        let part_bytes = self
            .config
            .multipart_part_bytes
            .max(object.body.len().div_ceil(MAX_PARTS));
        let uploads = (0..object.body.len())
            .step_by(part_bytes)
            .enumerate()
            .map(|(n, start)| {
                let number = n as i32 + 1;
                let end = (start + part_bytes).min(object.body.len());
                async move {
                    let out = client
                        .upload_part()
                        .bucket(&self.bucket)
                        .key(&object.key)
                        .upload_id(upload_id)
                        .part_number(number)
                        .body(ByteStream::from(object.body.slice(start..end)))
                        .send()
                        .await
                        .map_err(|e| self.classify(&format!("{what} (part {number})"), &e))?;
                    Ok::<_, ErrorClass>(
                        CompletedPart::builder()
                            .set_e_tag(out.e_tag().map(str::to_owned))
                            .part_number(number)
                            .build(),
                    )
                }
            });
        let mut parts: Vec<CompletedPart> = futures_util::stream::iter(uploads)
            .buffer_unordered(PARTS_IN_FLIGHT)
            .try_collect()
            .await?;
        parts.sort_by_key(|p| p.part_number());
        let count = parts.len();
        client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&object.key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.classify(what, &e))?;
        debug!(key = %object.key, bytes = object.body.len(), parts = count, records = object.indexes.len(), "multipart object written");
        Ok(())
    }
}

impl Sink for S3Sink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn healthcheck(&mut self) -> Result<(), SinkError> {
        let client = self.client().await;
        let what = format!("HeadBucket s3://{}", self.bucket);
        match client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) => match aws::status(&e) {
                Some(404) => Err(SinkError::fatal(
                    &self.name,
                    format!(
                        "the bucket `{}` does not exist: create it, or fix `bucket` in [sinks.{}]",
                        self.bucket, self.name
                    ),
                )),
                Some(403) => Err(SinkError::fatal(
                    &self.name,
                    format!(
                        "access to the bucket `{}` is denied (HTTP 403): check the AWS credentials and the bucket policy",
                        self.bucket
                    ),
                )),
                _ => Err(self.classify(&what, &e).into_sink_error(&self.name)),
            },
        }
    }

    async fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<(), SinkError> {
        let objects = self.objects(batch);
        let mut out = RecordResults::default();
        let mut not_written = 0;
        for object in &objects {
            if let Err(class) = self.upload(object).await {
                not_written += 1;
                class.apply(&object.indexes, &mut out);
            }
        }
        if let Some(first) = out.first.take() {
            if out.rejected.len() == batch.len() {
                return Err(SinkError::fatal(&self.name, first));
            }
            out.first = Some(format!(
                "{not_written} of {} objects not written: {first}",
                objects.len()
            ));
        }
        out.finish(&self.name, batch.len(), String::new)
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

impl crate::sinks::SinkType for S3SinkConfig {
    fn type_name(&self) -> &'static str {
        "s3"
    }
    crate::common_sink_fields!();
    fn format(&self) -> Format {
        self.format
    }
    fn validate(&self) -> Result<(), crate::sinks::FieldError> {
        self.validate()
            .map_err(|(f, m)| crate::sinks::FieldError::new(f, m))
    }
    fn feature(&self) -> Option<&'static str> {
        Some("s3")
    }
    fn build(&self, name: &str) -> Result<super::AnySink, crate::sinks::BuildError> {
        let sink = S3Sink::new(name, self.clone()).map_err(crate::sinks::BuildError::Invalid)?;
        Ok(Box::new(sink))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_default_template_renders_platform_date_timestamp_uuid() {
        let t = KeyTemplate::parse(DEFAULT_KEY_TEMPLATE).unwrap();
        let at = Utc
            .with_ymd_and_hms(2026, 11, 30, 23, 30, 5)
            .unwrap()
            .with_timezone(&Tz::UTC);
        let p = t.partition(Platform::Twitter, &at);
        assert_eq!(
            p,
            "twitter/context_date=2026-11-30/{timestamp}-{uuid}.jsonl"
        );
        let u = content_uuid(["twitter:1", "twitter:2"].into_iter());
        assert_eq!(u, content_uuid(["twitter:1", "twitter:2"].into_iter()));
        assert_ne!(u, content_uuid(["twitter:1"].into_iter()));
        assert_eq!(
            KeyTemplate::key(&p, &at, &u, true),
            format!("twitter/context_date=2026-11-30/20261130T233005.000Z-{u}.jsonl.gz")
        );
    }

    #[test]
    fn the_time_zone_moves_the_date() {
        let t = KeyTemplate::parse("{date}/{hour}/{timestamp}-{uuid}").unwrap();
        let tz = parse_time_zone("Europe/Berlin").unwrap();
        let at = Utc
            .with_ymd_and_hms(2026, 11, 30, 23, 30, 5)
            .unwrap()
            .with_timezone(&tz);
        assert_eq!(
            t.partition(Platform::Telegram, &at),
            "2026-12-01/00/{timestamp}-{uuid}"
        );
        assert_eq!(timestamp(&at), "20261201T003005.000+0100");
    }

    fn rec(line: &str) -> Arc<Record> {
        use crate::record::{NormalizeOptions, Normalized, RunInfo};
        let opts = NormalizeOptions::new(Arc::new(RunInfo::new(None)));
        let at: Arc<str> = "2026-11-30T23:30:05.000Z".into();
        let n = if line.contains("update_id") {
            crate::sources::telegram::normalize_update(line.as_bytes(), &at, &opts)
        } else {
            crate::sources::twitter::normalize_line(line.as_bytes(), &at, &opts)
        };
        match n.unwrap() {
            Normalized::Record(r) => Arc::new(*r),
            _ => panic!(),
        }
    }

    #[tokio::test]
    async fn a_batch_becomes_one_object_per_platform_and_date() {
        let config: S3SinkConfig = toml::from_str(
            "bucket = \"b\"\nendpoint = \"http://127.0.0.1:1\"\ngzip = true\nformat = \"raw\"\ntime_zone = \"Europe/Berlin\"",
        )
        .unwrap();
        let sink = S3Sink::new("s", config).unwrap();
        let t1 = r#"{"data":{"id":"1","text":"a"}}"#;
        let m = r#"{"update_id":5,"message":{"message_id":5,"chat":{"id":1,"type":"private"},"text":"m"}}"#;
        let t2 = r#"{"data":{"id":"2","text":"b"}}"#;
        let objects = sink.objects(&[rec(t1), rec(m), rec(t2)]);
        assert_eq!(objects.len(), 2);
        let (tg, tw) = (&objects[0], &objects[1]);
        assert!(
            tg.key
                .starts_with("telegram/context_date=2026-12-01/20261201T003005.000+0100-"),
            "{}",
            tg.key
        );
        assert!(
            tw.key.starts_with("twitter/context_date=2026-12-01/"),
            "{}",
            tw.key
        );
        assert!(tw.key.ends_with(".jsonl.gz"));
        assert_eq!(tw.indexes, [0, 2]);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&tw.body[..]), &mut text)
            .unwrap();
        assert_eq!(text, format!("{t1}\n{t2}\n"));
        // The same records give the same key: a retry overwrites, never duplicates.
        assert_eq!(sink.objects(&[rec(t1), rec(t2)])[0].key, tw.key);
    }

    #[test]
    fn bad_templates_and_fields_say_why() {
        assert!(
            KeyTemplate::parse("{platform}/{date}.jsonl")
                .unwrap_err()
                .contains("{uuid}")
        );
        assert!(
            KeyTemplate::parse("{platfrom}/{uuid}")
                .unwrap_err()
                .contains("unknown placeholder")
        );
        assert!(
            KeyTemplate::parse("{uuid")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(
            KeyTemplate::parse("/x/{uuid}")
                .unwrap_err()
                .contains("leading slash")
        );
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
