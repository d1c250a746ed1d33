//! The Kinesis client: partition keys from a record path, batches cut into
//! PutRecords requests within the limits, per-entry results read back.

use std::sync::Arc;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::OnceCell;
use tracing::debug;

use super::{
    KinesisSinkConfig, MAX_PARTITION_KEY_CHARS, MAX_PUT_RECORDS, MAX_PUT_RECORDS_BYTES,
    MAX_RECORD_BYTES, PartitionKeySource,
};
use crate::record::Record;
use crate::sinks::aws::{self, ErrorClass};
use crate::sinks::template::Template;
use crate::sinks::template::{Ctx, received_at};
use crate::sinks::{RecordResults, Sink, SinkError};
use chrono_tz::Tz;

/// Where a record's partition key comes from.
#[derive(Debug, Clone)]
enum PartitionKey {
    Id,
    Path(Vec<String>),
    Template(Template),
}

impl PartitionKey {
    fn new(text: &str) -> Result<Self, String> {
        if text == "id" {
            return Ok(PartitionKey::Id);
        }
        match PartitionKeySource::parse(text).map_err(|(f, m)| format!("`{f}` {m}"))? {
            PartitionKeySource::Path(p) => Ok(PartitionKey::Path(p)),
            PartitionKeySource::Template(t) => Ok(PartitionKey::Template(t)),
        }
    }

    /// The key of a record: the value at the path, else the record id; or
    /// the template rendered (received time in UTC); at most
    /// [`MAX_PARTITION_KEY_CHARS`] characters.
    fn of(&self, r: &Record) -> String {
        let key = match self {
            PartitionKey::Id => None,
            PartitionKey::Template(t) => Some(match t.literal() {
                Some(l) => l.to_owned(),
                None => {
                    let at = received_at(r, Tz::UTC, &mut None);
                    t.render_owned(&Ctx {
                        record: r,
                        tag: None,
                        at: &at,
                    })
                }
            }),
            PartitionKey::Path(path) => serde_json::to_value(r).ok().and_then(|v| {
                let mut cur = &v;
                for p in path {
                    cur = match cur {
                        Value::Object(o) => o.get(p)?,
                        Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
                        _ => return None,
                    };
                }
                match cur {
                    Value::String(s) if !s.is_empty() => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    Value::Bool(b) => Some(b.to_string()),
                    _ => None,
                }
            }),
        };
        let key = key.unwrap_or_else(|| r.id.clone());
        match key.char_indices().nth(MAX_PARTITION_KEY_CHARS) {
            Some((cut, _)) => key[..cut].to_owned(),
            None => key,
        }
    }
}

/// Writes records to a Kinesis data stream.
pub struct KinesisSink {
    name: String,
    /// Built at first use (loading the AWS config is async; building the sink is not).
    client: OnceCell<Client>,
    config: KinesisSinkConfig,
    key: PartitionKey,
}

impl KinesisSink {
    pub fn new(name: &str, config: KinesisSinkConfig) -> Result<Self, String> {
        config.validate().map_err(|(f, m)| format!("`{f}` {m}"))?;
        Ok(KinesisSink {
            name: name.to_owned(),
            client: OnceCell::new(),
            key: PartitionKey::new(&config.partition_key)?,
            config,
        })
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async { Client::new(&self.config.connection().sdk_config().await) })
            .await
    }

    fn classify(
        &self,
        what: &str,
        err: &aws_sdk_kinesis::error::SdkError<
            impl aws_sdk_kinesis::error::ProvideErrorMetadata + std::error::Error + 'static,
        >,
    ) -> ErrorClass {
        if aws::code(err) == Some("ResourceNotFoundException") {
            return ErrorClass::Fatal(format!(
                "the Kinesis stream `{}` does not exist: create it, or fix `stream_name`/`stream_arn` in [sinks.{}]",
                self.config.stream(),
                self.name
            ));
        }
        aws::classify(what, err)
    }

    /// Sends one PutRecords request; returns the outcome of each entry.
    async fn put(
        &self,
        (entries, indexes): (Vec<PutRecordsRequestEntry>, Vec<usize>),
    ) -> RecordResults {
        let client = self.client().await;
        let mut out = RecordResults::default();
        let indexes = &indexes[..];
        let what = format!("PutRecords to `{}`", self.config.stream());
        let started = std::time::Instant::now();
        let result = client
            .put_records()
            .set_stream_name(self.config.stream_name.clone())
            .set_stream_arn(self.config.stream_arn.clone())
            .set_records(Some(entries))
            .send()
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                self.classify(&what, &e).apply(indexes, &mut out);
                return out;
            }
        };
        let results = response.records();
        if results.len() != indexes.len() {
            out.failed.extend_from_slice(indexes);
            out.note(format!(
                "{what}: {} results for {} records",
                results.len(),
                indexes.len()
            ));
            return out;
        }
        let mut throttled = 0usize;
        for (entry, &i) in results.iter().zip(indexes) {
            if let Some(code) = entry.error_code() {
                // The only per-record errors are throughput and internal
                // failures: both go again.
                out.failed.push(i);
                throttled += 1;
                if out.first.is_none() {
                    out.note(format!(
                        "{what}: {code}: {}",
                        entry.error_message().unwrap_or("")
                    ));
                }
            }
        }
        debug!(
            records = indexes.len(),
            failed = throttled,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "PutRecords answered"
        );
        out
    }
}

/// One PutRecords request: its entries and their indexes in the batch.
type Request = (Vec<PutRecordsRequestEntry>, Vec<usize>);

/// Splits entries into requests within Kinesis' limits (500 records, 5 MiB).
#[derive(Default)]
struct Requests {
    done: Vec<Request>,
    current: Request,
    bytes: usize,
}

impl Requests {
    fn push(&mut self, index: usize, entry: PutRecordsRequestEntry, size: usize) {
        if self.current.0.len() == MAX_PUT_RECORDS || self.bytes + size > MAX_PUT_RECORDS_BYTES {
            self.done.push(std::mem::take(&mut self.current));
            self.bytes = 0;
        }
        self.current.0.push(entry);
        self.current.1.push(index);
        self.bytes += size;
    }

    fn finish(mut self) -> Vec<Request> {
        if !self.current.0.is_empty() {
            self.done.push(self.current);
        }
        self.done
    }
}

impl Sink for KinesisSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn healthcheck(&mut self) -> Result<(), SinkError> {
        let sdk = self.config.connection().sdk_config().await;
        aws::check_credentials(&sdk)
            .await
            .map_err(|m| SinkError::fatal(&self.name, m))?;
        let client = self.client().await;
        let what = format!("DescribeStreamSummary `{}`", self.config.stream());
        let summary = client
            .describe_stream_summary()
            .set_stream_name(self.config.stream_name.clone())
            .set_stream_arn(self.config.stream_arn.clone())
            .send()
            .await
            .map_err(|e| self.classify(&what, &e).into_sink_error(&self.name))?;
        if let Some(s) = summary.stream_description_summary() {
            debug!(status = %s.stream_status().as_str(), shards = s.open_shard_count(), "stream found");
        }
        Ok(())
    }

    async fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<(), SinkError> {
        let mut out = RecordResults::default();
        let mut requests = Requests::default();
        for (i, r) in batch.iter().enumerate() {
            let mut data = r.to_line(self.config.format);
            data.pop(); // the newline: one record is one Kinesis record
            let key = self.key.of(r);
            let size = data.len() + key.len();
            if size > MAX_RECORD_BYTES {
                out.rejected.push((
                    i,
                    format!(
                        "the record is {size} bytes with its partition key; Kinesis takes at most {MAX_RECORD_BYTES}"
                    ),
                ));
                continue;
            }
            let entry = PutRecordsRequestEntry::builder()
                .data(Blob::new(data))
                .partition_key(key)
                .build()
                .map_err(|e| SinkError::fatal(&self.name, e))?;
            requests.push(i, entry, size);
        }
        let this = &*self;
        let mut answers = futures_util::stream::iter(requests.finish())
            .map(|request| this.put(request))
            .buffer_unordered(self.config.max_in_flight);
        while let Some(answer) = answers.next().await {
            out.merge(answer);
        }
        drop(answers);
        out.finish(&self.name, batch.len(), || {
            format!("records over Kinesis' {MAX_RECORD_BYTES}-byte limit")
        })
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{NormalizeOptions, Normalized, RunInfo};

    fn tweet(id: u32, author: &str) -> Record {
        let opts = NormalizeOptions::new(Arc::new(RunInfo::new(None)));
        let line = format!(r#"{{"data":{{"id":"{id}","text":"t","author_id":"{author}"}}}}"#);
        match crate::sources::twitter::normalize_line(line.as_bytes(), &"now".into(), &opts)
            .unwrap()
        {
            Normalized::Record(r) => *r,
            _ => panic!(),
        }
    }

    #[test]
    fn partition_keys_follow_the_path_and_fall_back_to_the_id() {
        let r = tweet(7, "99");
        assert_eq!(PartitionKey::new("id").unwrap().of(&r), "twitter:7");
        assert_eq!(
            PartitionKey::new("raw.data.author_id").unwrap().of(&r),
            "99"
        );
        assert_eq!(
            PartitionKey::new("partitionkey").unwrap().of(&r),
            "partitionkey"
        );
        assert_eq!(
            PartitionKey::new("{platform}-{chat.id}").unwrap().of(&r),
            "twitter-_unknown"
        );
        assert_eq!(PartitionKey::new("chat.id").unwrap().of(&r), "twitter:7");
        let long = "x".repeat(300);
        let mut r = tweet(8, &long);
        r.id = long.clone();
        assert_eq!(
            PartitionKey::new("id").unwrap().of(&r).chars().count(),
            MAX_PARTITION_KEY_CHARS
        );
    }

    #[test]
    fn requests_stay_within_500_records_and_5_mib() {
        let entry = |n: usize| {
            PutRecordsRequestEntry::builder()
                .data(Blob::new(vec![b'x'; n]))
                .partition_key("k")
                .build()
                .unwrap()
        };
        let mut r = Requests::default();
        for i in 0..1200 {
            r.push(i, entry(10), 11);
        }
        let sizes: Vec<usize> = r.finish().iter().map(|(e, _)| e.len()).collect();
        assert_eq!(sizes, [500, 500, 200]);
        let mut r = Requests::default();
        for i in 0..12 {
            r.push(i, entry(1), MAX_RECORD_BYTES);
        }
        let done = r.finish();
        let sizes: Vec<usize> = done.iter().map(|(e, _)| e.len()).collect();
        assert_eq!(sizes, [5, 5, 2]);
        assert_eq!(done[2].1, [10, 11]);
    }
}
