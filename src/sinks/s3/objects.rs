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

use std::sync::atomic::{AtomicI64, Ordering};

use super::S3SinkConfig;
use super::config::parse_time_zone;
use super::key::{KeyTemplate, content_uuid};
use crate::record::Record;
use crate::sinks::parquet::{FileFormat, ParquetOptions};
use crate::sinks::template::{Ctx, copies, fill_object, received_at};

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
    split_tags: bool,
    /// The last `{timestamp_us}` given out (µs since the epoch): each object
    /// of one-object-per-record keys gets a later one, so this sink never
    /// names two objects alike.
    last_us: AtomicI64,
    parquet: ParquetOptions,
}

impl Layout {
    pub fn new(config: &S3SinkConfig) -> Result<Self, String> {
        Ok(Layout {
            template: KeyTemplate::parse(config.key_template())?,
            time_zone: parse_time_zone(&config.time_zone)?,
            format: config.format,
            gzip: config.gzip,
            split_tags: config.split_tags,
            last_us: AtomicI64::new(0),
            parquet: config.parquet_options(),
        })
    }

    /// Keys of one object per record (no `{uuid}`): written only if absent.
    pub fn per_record(&self) -> bool {
        !self.template.per_batch()
    }

    /// Keys holding the record id: an object already there is this record's.
    pub fn keyed_by_id(&self) -> bool {
        self.template.template.has("id")
    }

    /// Splits a batch into objects: one per key partition, or one per record
    /// (each copy, with `split_tags`) when the template has no `{uuid}`.
    /// `Err` only when Parquet cannot encode the records (a bug: nothing is
    /// sent then).
    pub fn objects(&self, batch: &[Arc<Record>]) -> Result<Vec<Object>, String> {
        let groups = self.partitions(batch);
        if self.per_record() {
            return groups
                .into_iter()
                .flat_map(|(partition, (_, indexes))| {
                    indexes.into_iter().map(move |i| (partition.clone(), i))
                })
                .map(|(partition, i)| {
                    let at = self.unique_now();
                    self.object(batch, &partition, &at, vec![i])
                })
                .collect();
        }
        groups
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
    /// The partition is the key with `{timestamp}`, `{timestamp_us}` and
    /// `{uuid}` still to fill.
    fn partitions(&self, batch: &[Arc<Record>]) -> BTreeMap<String, (DateTime<Tz>, Vec<usize>)> {
        let mut groups: BTreeMap<String, (DateTime<Tz>, Vec<usize>)> = BTreeMap::new();
        let mut last_at = None;
        let mut part = String::with_capacity(128);
        for (i, tag) in copies(batch, self.split_tags) {
            let r = &batch[i];
            let at = received_at(r, self.time_zone, &mut last_at);
            part.clear();
            self.template.template.render(
                &Ctx {
                    record: r,
                    tag,
                    at: &at,
                },
                &mut part,
            );
            let group = match groups.get_mut(part.as_str()) {
                Some(g) => g,
                None => groups.entry(part.clone()).or_insert((at, Vec::new())),
            };
            // Two tags of one record in the same object: once is enough.
            if group.1.last() != Some(&i) {
                group.1.push(i);
            }
        }
        groups
    }

    /// Now, in the key's time zone, a microsecond later than the last one given.
    fn unique_now(&self) -> DateTime<Tz> {
        let now = Utc::now().timestamp_micros();
        let prev = self
            .last_us
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or(now);
        let us = now.max(prev + 1);
        DateTime::from_timestamp_micros(us)
            .unwrap_or_else(Utc::now)
            .with_timezone(&self.time_zone)
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
        let mut key = fill_object(partition, at, &uuid.to_string());
        if self.gzip && !key.ends_with(".gz") {
            key.push_str(".gz");
        }
        Ok(Object {
            key,
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

/// `key` with `-n` before its extension (`a/b.json` → `a/b-2.json`), for a
/// one-object-per-record key that is taken already.
pub(super) fn with_sequence(key: &str, n: u32) -> String {
    let name_at = key.rfind('/').map_or(0, |i| i + 1);
    match key[name_at..].find('.').filter(|&d| d > 0) {
        Some(d) => format!("{}-{n}{}", &key[..name_at + d], &key[name_at + d..]),
        None => format!("{key}-{n}"),
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
    fn taken_keys_get_a_sequence_before_the_extension() {
        assert_eq!(with_sequence("t/d=1/2026.json", 1), "t/d=1/2026-1.json");
        assert_eq!(with_sequence("t/a.b/x.jsonl.gz", 2), "t/a.b/x-2.jsonl.gz");
        assert_eq!(with_sequence("t/x", 3), "t/x-3");
        assert_eq!(with_sequence(".x", 3), ".x-3");
    }

    #[test]
    fn keys_without_uuid_make_one_object_per_record_with_distinct_timestamps() {
        let config: S3SinkConfig = toml::from_str(
            "bucket = \"b\"\nformat = \"raw\"\nkey_template = \"{platform}/context_date={date}/{timestamp_us}.json\"",
        )
        .unwrap();
        let layout = Layout::new(&config).unwrap();
        let m = |i: u32| {
            rec(&format!(
                r#"{{"update_id":{i},"message":{{"message_id":{i},"chat":{{"id":1,"type":"private"}},"text":"m"}}}}"#
            ))
        };
        let batch: Vec<_> = (0..50).map(m).collect();
        let objects = layout.objects(&batch).unwrap();
        assert_eq!(objects.len(), 50);
        let keys: std::collections::BTreeSet<&str> =
            objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys.len(), 50, "{keys:?}");
        for o in &objects {
            assert_eq!(o.indexes.len(), 1);
            assert!(
                o.key.starts_with("telegram/context_date=2026-11-30/"),
                "{}",
                o.key
            );
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
