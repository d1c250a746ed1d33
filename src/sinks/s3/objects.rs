//! A batch cut into objects: one per key partition (platform, date…), each
//! with its key, its JSONL body (gzipped if asked) and the batch indexes of
//! its records. Pure: the uploads are `sink`'s business.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::key::{KeyTemplate, content_uuid};
use super::{S3SinkConfig, parse_time_zone};
use crate::record::{Platform, Record};
use crate::sinks::parquet::{FileFormat, ParquetOptions};

/// One object to upload: its key, body and the batch indexes of its records.
pub(super) struct Object {
    pub key: String,
    pub body: Bytes,
    pub indexes: Vec<usize>,
}

/// How records become objects: the key template, its time zone, the line
/// format and the compression.
pub(super) struct Layout {
    template: KeyTemplate,
    time_zone: Tz,
    format: FileFormat,
    gzip: bool,
    parquet: ParquetOptions,
}

impl Layout {
    pub fn new(config: &S3SinkConfig) -> Result<Self, String> {
        Ok(Layout {
            template: KeyTemplate::parse(config.key_template())?,
            time_zone: parse_time_zone(&config.time_zone)?,
            format: config.format,
            gzip: config.gzip,
            parquet: config.parquet_options(),
        })
    }

    /// Splits a batch into objects, one per key partition; `Err` only when
    /// Parquet cannot encode the records (a bug: nothing is sent then).
    pub fn objects(&self, batch: &[Arc<Record>]) -> Result<Vec<Object>, String> {
        self.partitions(batch)
            .into_iter()
            .map(|(partition, (at, indexes))| self.object(batch, &partition, &at, indexes))
            .collect()
    }

    /// The `Content-Type` of the objects.
    pub fn content_type(&self) -> &'static str {
        if self.format.is_parquet() {
            "application/vnd.apache.parquet"
        } else {
            "application/x-ndjson"
        }
    }

    /// The batch indexes of each partition, with the time of its first record.
    fn partitions(&self, batch: &[Arc<Record>]) -> BTreeMap<String, (DateTime<Tz>, Vec<usize>)> {
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
    }

    /// The object of one partition.
    fn object(
        &self,
        batch: &[Arc<Record>],
        partition: &str,
        at: &DateTime<Tz>,
        indexes: Vec<usize>,
    ) -> Result<Object, String> {
        let mut body = if self.format.is_parquet() {
            self.parquet_body(batch, &indexes)?
        } else {
            let mut body = Vec::with_capacity(indexes.len() * 1024);
            for &i in &indexes {
                batch[i].write_line(self.format.lines(), &mut body);
            }
            body
        };
        if self.gzip {
            let mut enc =
                GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::default());
            enc.write_all(&body).expect("writing to a Vec cannot fail");
            body = enc.finish().expect("finishing gzip into a Vec cannot fail");
        }
        let uuid = content_uuid(indexes.iter().map(|&i| batch[i].id.as_str()));
        Ok(Object {
            key: KeyTemplate::key(partition, at, &uuid, self.gzip),
            body: Bytes::from(body),
            indexes,
        })
    }

    /// One complete Parquet file of the records at `indexes`.
    #[cfg(feature = "parquet")]
    fn parquet_body(&self, batch: &[Arc<Record>], indexes: &[usize]) -> Result<Vec<u8>, String> {
        let records: Vec<Arc<Record>> = indexes.iter().map(|&i| batch[i].clone()).collect();
        crate::sinks::parquet::encode(&records, self.parquet).map_err(|e| e.to_string())
    }

    /// Config validation refuses Parquet in a build without it.
    #[cfg(not(feature = "parquet"))]
    fn parquet_body(&self, _: &[Arc<Record>], _: &[usize]) -> Result<Vec<u8>, String> {
        Err(crate::sinks::BuildError::CompiledOut("parquet").to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_batch_becomes_one_object_per_platform_and_date() {
        let config: S3SinkConfig = toml::from_str(
            "bucket = \"b\"\nendpoint = \"http://127.0.0.1:1\"\ngzip = true\nformat = \"raw\"\ntime_zone = \"Europe/Berlin\"",
        )
        .unwrap();
        let layout = Layout::new(&config).unwrap();
        let t1 = r#"{"data":{"id":"1","text":"a"}}"#;
        let m = r#"{"update_id":5,"message":{"message_id":5,"chat":{"id":1,"type":"private"},"text":"m"}}"#;
        let t2 = r#"{"data":{"id":"2","text":"b"}}"#;
        let objects = layout.objects(&[rec(t1), rec(m), rec(t2)]).unwrap();
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
        assert_eq!(layout.objects(&[rec(t1), rec(t2)]).unwrap()[0].key, tw.key);
    }
}
