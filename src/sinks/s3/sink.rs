//! The S3 client and its uploads: one PUT per object, or a multipart upload
//! above the threshold; the healthcheck is a HeadBucket.

use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::OnceCell;
use tracing::{debug, warn};

use super::objects::{Layout, Object, with_sequence};
use super::{MAX_PARTS, S3SinkConfig};
use crate::record::Record;
use crate::sinks::aws::{self, ErrorClass};
use crate::sinks::{RecordResults, Sink, SinkError};

/// Parts of one multipart upload sent at once.
const PARTS_IN_FLIGHT: usize = 4;
/// Numbered variants tried for a one-object-per-record key that is taken.
const MAX_KEY_SEQUENCE: u32 = 20;

/// Writes JSONL objects to S3.
pub struct S3Sink {
    name: String,
    /// Built at first use (loading the AWS config is async; building the sink is not).
    client: OnceCell<Client>,
    bucket: String,
    layout: Layout,
    config: S3SinkConfig,
}

impl S3Sink {
    pub fn new(name: &str, config: S3SinkConfig) -> Result<Self, String> {
        config.validate().map_err(|(f, m)| format!("`{f}` {m}"))?;
        Ok(S3Sink {
            name: name.to_owned(),
            client: OnceCell::new(),
            bucket: config.bucket.clone(),
            layout: Layout::new(&config)?,
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

    fn content_type(&self) -> &'static str {
        self.layout.content_type()
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
        if object.body.len() > self.config.multipart_threshold_bytes {
            return self.upload_multipart(object).await;
        }
        if self.layout.per_record() {
            return self.upload_if_absent(object).await;
        }
        let client = self.client().await;
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

    /// One record's object, written only where no object is (`If-None-Match: *`):
    /// a key taken already means this record was written before when the key
    /// holds its id, else another writer's object: then `-1`, `-2`… go before
    /// the extension.
    async fn upload_if_absent(&self, object: &Object) -> Result<(), ErrorClass> {
        let client = self.client().await;
        let mut key = object.key.clone();
        for n in 1..=MAX_KEY_SEQUENCE {
            let what = format!("PUT s3://{}/{} (if absent)", self.bucket, key);
            let put = client
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .if_none_match("*")
                .body(ByteStream::from(object.body.clone()))
                .content_type(self.content_type())
                .set_content_encoding(self.config.gzip.then(|| "gzip".to_owned()))
                .send()
                .await;
            match put {
                Ok(_) => {
                    debug!(key = %key, bytes = object.body.len(), "object written");
                    return Ok(());
                }
                Err(e) if aws::status(&e) == Some(412) && self.layout.keyed_by_id() => {
                    debug!(key = %key, "the record's object is there already");
                    return Ok(());
                }
                Err(e) if aws::status(&e) == Some(412) => {
                    warn!(key = %key, "an object has this key already; adding a sequence number");
                    key = with_sequence(&object.key, n);
                }
                Err(e) => return Err(self.classify(&what, &e)),
            }
        }
        Err(ErrorClass::Retry(format!(
            "s3://{}/{}: the key and {MAX_KEY_SEQUENCE} numbered variants are taken",
            self.bucket, object.key
        )))
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
        let sdk = self.config.connection().sdk_config().await;
        aws::check_credentials(&sdk)
            .await
            .map_err(|m| SinkError::fatal(&self.name, m))?;
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
        let objects = self
            .layout
            .objects(batch)
            .map_err(|e| SinkError::fatal(&self.name, e))?;
        let mut out = RecordResults::default();
        let mut not_written = 0;
        for object in &objects {
            if let Err(class) = self.upload(object).await {
                not_written += 1;
                class.apply(&object.indexes, &mut out);
            }
        }
        crate::sinks::template::merge_copies(&mut out);
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
