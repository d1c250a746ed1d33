//! The one Arrow schema of the record, and records turned into its columns.
//!
//! | column | Arrow type | null when |
//! |---|---|---|
//! | `id` | Utf8 | never |
//! | `platform` | Utf8 (`twitter`, `telegram`) | never |
//! | `kind` | Utf8 | never |
//! | `text`, `text_ascii` | Utf8 | absent |
//! | `created_at` | Timestamp(ms, UTC) | absent, or not RFC 3339 (the original is in `raw`) |
//! | `received_at` | Timestamp(ms, UTC) | not RFC 3339 (only a record read from Kafka can be) |
//! | `author` | Struct{`id` Utf8, `name` Utf8?, `username` Utf8?} | absent |
//! | `chat` | Struct{`id` Int64, `type` Utf8, `title` Utf8?} | absent (X) |
//! | `lang`, `source` | Utf8 | absent |
//! | `matching_rules` | List<Struct{`id` Utf8, `tag` Utf8?}> | never (empty list) |
//! | `tags`, `hashtags` | List<Utf8> | never (empty list) |
//! | `refs` | Struct{`tweet_id` Utf8?, `conversation_id` Utf8?, `update_id` Int64?, `message_id` Int64?} | never |
//! | `media` | List<Struct{`type` Utf8, `key` Utf8, `stored` Struct{`uri` Utf8, `sha256` Utf8, `bytes` Int64, `content_type` Utf8}?, `skipped` Utf8?, `error` Utf8?}> | never (empty list) |
//! | `run` | Struct{`id` Utf8, `started_at` Timestamp(ms, UTC)?, `time_limit_secs` Int64?} | never |
//! | `raw` | Utf8 (the original payload, JSON text) | absent; the column is left out with `raw = false` |
//!
//! Unsigned and dictionary types are avoided: Athena (Hive) has no unsigned
//! integers, and plain strings read everywhere.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMillisecondArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use chrono::DateTime;

use crate::record::Record;

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn int64(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Int64, nullable)
}

/// UTC timestamps in milliseconds (the records' precision).
fn timestamp(name: &str, nullable: bool) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        nullable,
    )
}

fn author_fields() -> Fields {
    Fields::from(vec![
        utf8("id", false),
        utf8("name", true),
        utf8("username", true),
    ])
}

fn chat_fields() -> Fields {
    Fields::from(vec![
        int64("id", false),
        utf8("type", false),
        utf8("title", true),
    ])
}

fn rule_fields() -> Fields {
    Fields::from(vec![utf8("id", false), utf8("tag", true)])
}

fn refs_fields() -> Fields {
    Fields::from(vec![
        utf8("tweet_id", true),
        utf8("conversation_id", true),
        int64("update_id", true),
        int64("message_id", true),
    ])
}

fn stored_fields() -> Fields {
    Fields::from(vec![
        utf8("uri", false),
        utf8("sha256", false),
        int64("bytes", false),
        utf8("content_type", false),
    ])
}

fn media_fields() -> Fields {
    Fields::from(vec![
        utf8("type", false),
        utf8("key", false),
        Field::new("stored", DataType::Struct(stored_fields()), true),
        utf8("skipped", true),
        utf8("error", true),
    ])
}

fn media_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(media_fields()), false))
}

fn run_fields() -> Fields {
    Fields::from(vec![
        utf8("id", false),
        timestamp("started_at", true),
        int64("time_limit_secs", true),
    ])
}

fn rules_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(rule_fields()), false))
}

fn tags_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Utf8, false))
}

/// The Arrow schema of the Parquet files; without the `raw` column when `raw` is false.
pub fn arrow_schema(raw: bool) -> SchemaRef {
    let mut fields = vec![
        utf8("id", false),
        utf8("platform", false),
        utf8("kind", false),
        utf8("text", true),
        utf8("text_ascii", true),
        timestamp("created_at", true),
        timestamp("received_at", true),
        Field::new("author", DataType::Struct(author_fields()), true),
        Field::new("chat", DataType::Struct(chat_fields()), true),
        utf8("lang", true),
        utf8("source", true),
        Field::new("matching_rules", DataType::List(rules_item()), false),
        Field::new("tags", DataType::List(tags_item()), false),
        Field::new("hashtags", DataType::List(tags_item()), false),
        Field::new("refs", DataType::Struct(refs_fields()), false),
        Field::new("media", DataType::List(media_item()), false),
        Field::new("run", DataType::Struct(run_fields()), false),
    ];
    if raw {
        fields.push(utf8("raw", true));
    }
    Arc::new(Schema::new(fields))
}

/// Milliseconds since the epoch of an RFC 3339 time; `None` when it does not parse.
fn millis(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

fn ints(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(values.collect::<Int64Array>())
}

fn times(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(
        values
            .collect::<TimestampMillisecondArray>()
            .with_timezone("UTC"),
    )
}

fn structs(fields: Fields, columns: Vec<ArrayRef>, valid: Option<Vec<bool>>) -> ArrayRef {
    let nulls = valid.map(NullBuffer::from);
    Arc::new(StructArray::new(fields, columns, nulls))
}

/// A list column from each row's item count and the items' values, flattened.
fn list(item: Arc<Field>, lengths: impl Iterator<Item = usize>, values: ArrayRef) -> ArrayRef {
    Arc::new(ListArray::new(
        item,
        OffsetBuffer::from_lengths(lengths),
        values,
        None,
    ))
}

/// The records as one Arrow batch of [`arrow_schema`]`(raw)`.
pub fn record_batch(records: &[Arc<Record>], raw: bool) -> Result<RecordBatch, ArrowError> {
    let rs = || records.iter().map(|r| r.as_ref());
    let mut columns: Vec<ArrayRef> = vec![
        strings(rs().map(|r| Some(r.id.as_str()))),
        strings(rs().map(|r| Some(r.platform.as_str()))),
        strings(rs().map(|r| Some(r.kind.as_ref()))),
        strings(rs().map(|r| r.text.as_deref())),
        strings(rs().map(|r| r.text_ascii.as_deref())),
        times(rs().map(|r| r.created_at.as_deref().and_then(millis))),
        times(rs().map(|r| millis(&r.received_at))),
        author_column(records),
        chat_column(records),
        strings(rs().map(|r| r.lang.as_deref())),
        strings(rs().map(|r| r.source.as_deref())),
        rules_column(records),
        list(
            tags_item(),
            rs().map(|r| r.tags.len()),
            strings(rs().flat_map(|r| r.tags.iter().map(|t| Some(t.as_str())))),
        ),
        list(
            tags_item(),
            rs().map(|r| r.hashtags.len()),
            strings(rs().flat_map(|r| r.hashtags.iter().map(|t| Some(t.as_str())))),
        ),
        structs(
            refs_fields(),
            vec![
                strings(rs().map(|r| r.refs.tweet_id.as_deref())),
                strings(rs().map(|r| r.refs.conversation_id.as_deref())),
                ints(rs().map(|r| r.refs.update_id)),
                ints(rs().map(|r| r.refs.message_id)),
            ],
            None,
        ),
        media_column(records),
        structs(
            run_fields(),
            vec![
                strings(rs().map(|r| Some(r.run.id.as_str()))),
                times(rs().map(|r| millis(&r.run.started_at))),
                ints(rs().map(|r| r.run.time_limit_secs.map(|s| s.min(i64::MAX as u64) as i64))),
            ],
            None,
        ),
    ];
    if raw {
        columns.push(strings(rs().map(|r| r.raw.as_ref().map(|v| v.get()))));
    }
    RecordBatch::try_new(arrow_schema(raw), columns)
}

/// The `author` column: a struct, null where the record has no author.
fn author_column(records: &[Arc<Record>]) -> ArrayRef {
    let rs = || records.iter().map(|r| r.as_ref());
    let author = |f: fn(&crate::record::Author) -> Option<&str>| {
        strings(rs().map(move |r| r.author.as_ref().and_then(f)))
    };
    structs(
        author_fields(),
        vec![
            // A missing author's `id` is a hidden "" under the struct's null.
            strings(rs().map(|r| Some(r.author.as_ref().map_or("", |a| a.id.as_str())))),
            author(|a| a.name.as_deref()),
            author(|a| a.username.as_deref()),
        ],
        Some(rs().map(|r| r.author.is_some()).collect()),
    )
}

/// The `chat` column: a struct, null where the record has no chat.
fn chat_column(records: &[Arc<Record>]) -> ArrayRef {
    let chats = || records.iter().map(|r| r.chat.as_ref());
    structs(
        chat_fields(),
        vec![
            ints(chats().map(|c| Some(c.map_or(0, |c| c.id)))),
            strings(chats().map(|c| Some(c.map_or("", |c| c.kind.as_str())))),
            strings(chats().map(|c| c.and_then(|c| c.title.as_deref()))),
        ],
        Some(chats().map(|c| c.is_some()).collect()),
    )
}

/// The `matching_rules` column: a list of `{id, tag}` structs.
fn rules_column(records: &[Arc<Record>]) -> ArrayRef {
    let rules = || records.iter().flat_map(|r| r.matching_rules.iter());
    list(
        rules_item(),
        records.iter().map(|r| r.matching_rules.len()),
        structs(
            rule_fields(),
            vec![
                strings(rules().map(|m| Some(m.id.as_str()))),
                strings(rules().map(|m| m.tag.as_deref())),
            ],
            None,
        ),
    )
}

/// The `media` column: each record's items, flattened under the list.
fn media_column(records: &[Arc<Record>]) -> ArrayRef {
    let items = || records.iter().flat_map(|r| r.media.iter());
    let stored = || items().map(|m| m.stored.as_ref());
    list(
        media_item(),
        records.iter().map(|r| r.media.len()),
        structs(
            media_fields(),
            vec![
                strings(items().map(|m| Some(m.kind.as_str()))),
                strings(items().map(|m| Some(m.key.as_str()))),
                structs(
                    stored_fields(),
                    vec![
                        // Hidden "" and 0 under the struct's null when not stored.
                        strings(stored().map(|s| Some(s.map_or("", |s| s.uri.as_str())))),
                        strings(stored().map(|s| Some(s.map_or("", |s| s.sha256.as_str())))),
                        ints(
                            stored().map(|s| {
                                Some(s.map_or(0, |s| s.bytes.min(i64::MAX as u64) as i64))
                            }),
                        ),
                        strings(stored().map(|s| Some(s.map_or("", |s| s.content_type.as_str())))),
                    ],
                    Some(stored().map(|s| s.is_some()).collect()),
                ),
                strings(items().map(|m| m.skipped.as_deref())),
                strings(items().map(|m| m.error.as_deref())),
            ],
            None,
        ),
    )
}

/// The schema as JSON for `ingest schema --format arrow`: each field's name,
/// Arrow type, nullability and children.
pub fn describe(schema: &Schema) -> serde_json::Value {
    serde_json::json!({
        "fields": schema.fields().iter().map(|f| describe_field(f)).collect::<Vec<_>>()
    })
}

fn describe_field(f: &Field) -> serde_json::Value {
    let mut v = serde_json::json!({"name": f.name(), "nullable": f.is_nullable()});
    let (ty, children, item) = match f.data_type() {
        DataType::Struct(fields) => ("Struct".to_owned(), Some(fields), None),
        DataType::List(item) => ("List".to_owned(), None, Some(item)),
        DataType::Timestamp(unit, tz) => (
            format!(
                "Timestamp({unit:?}, {})",
                tz.as_deref().unwrap_or("no time zone")
            ),
            None,
            None,
        ),
        other => (other.to_string(), None, None),
    };
    v["type"] = ty.into();
    if let Some(children) = children {
        v["fields"] = children.iter().map(|c| describe_field(c)).collect();
    }
    if let Some(item) = item {
        v["item"] = describe_field(item);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{NormalizeOptions, Normalized, RunInfo};
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int64Type, TimestampMillisecondType};

    fn rec(line: &str) -> Arc<Record> {
        let opts = NormalizeOptions::new(Arc::new(RunInfo::new(Some(60))));
        let at: Arc<str> = "2026-11-30T23:30:05.123Z".into();
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
    fn records_become_typed_nested_columns() {
        let tweet = rec(
            r#"{"data":{"id":"7","text":"hi","created_at":"2026-11-30T10:00:00.000Z","author_id":"42"},"includes":{"users":[{"id":"42","name":"N","username":"n"}]},"matching_rules":[{"id":"1","tag":"a"},{"id":"2"}]}"#,
        );
        let msg = rec(
            r#"{"update_id":5,"message":{"message_id":9,"date":1796032800,"chat":{"id":-100,"type":"channel","title":"T"},"text":"m"}}"#,
        );
        let batch = record_batch(&[tweet.clone(), msg.clone()], true).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let col = |n: &str| batch.column_by_name(n).unwrap().clone();
        let ids = col("id");
        assert_eq!(ids.as_string::<i32>().value(1), "telegram:-100:9");
        let created = col("created_at");
        let created = created.as_primitive::<TimestampMillisecondType>();
        assert_eq!(created.value(0), 1_796_032_800_000);
        assert_eq!(created.value(1), 1_796_032_800_000);
        let received = col("received_at");
        assert_eq!(
            received.as_primitive::<TimestampMillisecondType>().value(0),
            1_796_081_405_123
        );
        let author = col("author");
        let author = author.as_struct();
        assert!(author.is_valid(0));
        assert_eq!(
            author
                .column_by_name("username")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "n"
        );
        let chat = col("chat");
        let chat = chat.as_struct();
        assert!(chat.is_null(0) && chat.is_valid(1));
        assert_eq!(
            chat.column_by_name("id")
                .unwrap()
                .as_primitive::<Int64Type>()
                .value(1),
            -100
        );
        let rules = col("matching_rules");
        let rules = rules.as_list::<i32>();
        assert_eq!(rules.value_length(0), 2);
        assert_eq!(rules.value_length(1), 0);
        let tags = col("tags");
        let tags = tags.as_list::<i32>();
        assert_eq!(tags.value(0).as_string::<i32>().value(0), "a");
        let raw = col("raw");
        assert_eq!(
            raw.as_string::<i32>().value(0),
            tweet.raw.as_ref().unwrap().get()
        );
        let media = col("media");
        let media = media.as_list::<i32>();
        assert_eq!((media.value_length(0), media.value_length(1)), (0, 0));
        let without = record_batch(&[msg], false).unwrap();
        assert!(without.column_by_name("raw").is_none());
        assert_eq!(without.num_columns(), batch.num_columns() - 1);
    }

    #[test]
    fn media_items_become_a_list_of_structs() {
        use crate::record::{MediaItem, StoredMedia};
        let mut r = (*rec(r#"{"data":{"id":"7","text":"hi"}}"#)).clone();
        r.media = vec![
            MediaItem {
                stored: Some(StoredMedia {
                    uri: "s3://b/k.jpg".into(),
                    sha256: "ab".into(),
                    bytes: 5,
                    content_type: "image/jpeg".into(),
                }),
                ..MediaItem::unfetchable("photo", "3_1", "x")
            },
            MediaItem::unfetchable("video", "7_2", "too_large"),
        ];
        r.media[0].skipped = None;
        let plain = rec(r#"{"data":{"id":"8","text":"no media"}}"#);
        let batch = record_batch(&[Arc::new(r), plain], false).unwrap();
        let media = batch
            .column_by_name("media")
            .unwrap()
            .as_list::<i32>()
            .clone();
        assert_eq!((media.value_length(0), media.value_length(1)), (2, 0));
        let items = media.value(0);
        let items = items.as_struct();
        let stored = items.column_by_name("stored").unwrap().as_struct().clone();
        assert!(stored.is_valid(0) && stored.is_null(1));
        let bytes = stored.column_by_name("bytes").unwrap();
        assert_eq!(bytes.as_primitive::<Int64Type>().value(0), 5);
        let skipped = items
            .column_by_name("skipped")
            .unwrap()
            .as_string::<i32>()
            .clone();
        assert!(skipped.is_null(0));
        assert_eq!(skipped.value(1), "too_large");
    }

    #[test]
    fn a_time_that_does_not_parse_is_null() {
        let r = rec(r#"{"data":{"id":"7","text":"hi","created_at":"yesterday"}}"#);
        assert_eq!(r.created_at.as_deref(), Some("yesterday"));
        let batch = record_batch(&[r], true).unwrap();
        assert!(batch.column_by_name("created_at").unwrap().is_null(0));
    }
}
