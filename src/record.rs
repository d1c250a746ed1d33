//! The one record every source produces and every sink writes.
//!
//! The shape is the same for every platform (see docs/record.md).
//! Normalizers live with their sources (`sources::twitter`, `sources::telegram`);
//! the helpers they share live here.

pub mod compliance;
mod json;
pub mod media;
mod raw;

pub use media::{MediaFetch, MediaItem, StoredMedia};
pub use raw::RawJson;

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::value::RawValue;

/// Which platform a record came from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Twitter,
    Telegram,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Twitter => "twitter",
            Platform::Telegram => "telegram",
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who wrote the item.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Author {
    /// The platform's user (or sender chat) id, as a string.
    pub id: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Handle, without `@`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// The Telegram chat an item was posted in.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Chat {
    /// Telegram chat id (negative for groups and channels).
    pub id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Title of a group or channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// An X filtered-stream rule that matched.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct MatchingRule {
    /// The rule id X gave it.
    pub id: String,
    /// The rule's tag, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// Platform ids that are not the record id.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Refs {
    /// X post id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tweet_id: Option<String>,
    /// X conversation (thread) id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// Telegram `update_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_id: Option<i64>,
    /// Telegram `message_id` (unique within its chat).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<i64>,
}

impl Refs {
    fn is_empty(&self) -> bool {
        self == &Refs::default()
    }
}

/// The capture run that produced a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct RunInfo {
    /// A random UUID per run.
    pub id: String,
    /// When the run started (RFC 3339 UTC).
    #[schemars(extend("format" = "date-time"))]
    pub started_at: String,
    /// The run's `--duration`, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_limit_secs: Option<u64>,
}

impl RunInfo {
    /// A new run starting now, with a random id.
    pub fn new(time_limit_secs: Option<u64>) -> Self {
        RunInfo {
            id: uuid::Uuid::new_v4().to_string(),
            started_at: rfc3339(Utc::now()),
            time_limit_secs,
        }
    }
}

/// One normalized item. Serializes to the JSON object documented in docs/record.md,
/// and reads back from it (the Kafka source takes records our Kafka sink wrote).
///
/// `ingest schema` prints the JSON Schema derived from this type, and the
/// Arrow schema of the Parquet files (`sinks::parquet`); a unit test keeps
/// their field names equal.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[schemars(title = "ingest record", deny_unknown_fields)]
pub struct Record {
    /// Platform-scoped unique id, the dedupe key (`twitter:<post id>`, `telegram:<chat id>:<message id>[:<edit_date>]`, …).
    pub id: String,
    /// Where the item came from.
    pub platform: Platform,
    /// `tweet`, `message`, `edited_message`, `channel_post`, `edited_channel_post`, `activity_event`, `compliance`, `count` (an X post count bucket), `like` (an X like), …
    #[schemars(with = "String")]
    pub kind: Cow<'static, str>,
    /// The text or caption.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `text` transliterated to plain ASCII (when transliteration is on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_ascii: Option<String>,
    /// When the platform says the item was created: RFC 3339 UTC, or the platform's text as given when it does not parse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// When `ingest` read the item (RFC 3339 UTC). Shared by the records of one read.
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub received_at: Arc<str>,
    /// Who wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<Author>,
    /// The Telegram chat; absent for X.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<Chat>,
    /// Language code, where the platform gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// The posting client or event source, where the platform gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// X filtered-stream rules that matched (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matching_rules: Vec<MatchingRule>,
    /// The tags of `matching_rules` alone (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The hashtags of the text, without `#`, as the platform marks them (X
    /// `entities.hashtags`, Telegram `hashtag` entities), once each in order
    /// (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashtags: Vec<String>,
    /// Platform ids that are not the record id (absent when none).
    #[serde(default, skip_serializing_if = "Refs::is_empty")]
    pub refs: Refs,
    /// The photos, videos and files the item points at, and where their bytes
    /// were stored (`--media`; absent when off or when the item has none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<MediaItem>,
    /// The capture run that produced the record.
    pub run: Arc<RunInfo>,
    /// The original payload, untouched (absent with `--no-raw`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Box<RawValue>>")]
    pub raw: Option<RawJson>,
}

/// What a sink writes for each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The normalized record.
    #[default]
    Record,
    /// The original payload alone.
    Raw,
    /// The post's text alone, as UTF-8 (Kafka and Kinesis values only); a
    /// record without text gives an empty value.
    Text,
}

impl Record {
    /// Appends this record as one JSON line (with the trailing `\n`) in `format`.
    pub fn write_line(&self, format: Format, out: &mut Vec<u8>) {
        match (format, &self.raw) {
            (Format::Raw, Some(raw)) => out.extend_from_slice(raw.get().as_bytes()),
            (Format::Text, _) => {
                out.extend_from_slice(self.text.as_deref().unwrap_or("").as_bytes())
            }
            // The config layer refuses `format = "raw"` together with `--no-raw`;
            // should a raw-less record still get here, write the record rather
            // than nothing.
            _ => json::write_record(out, self),
        }
        out.push(b'\n');
    }

    /// The record as one JSON line in `format`.
    pub fn to_line(&self, format: Format) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.write_line(format, &mut out);
        out
    }

    /// An estimate of the record's size (serialized, and in memory: the
    /// struct and its dozen small allocations take about 512 bytes besides the
    /// text and the raw payload), for batching by bytes and the pipeline's
    /// memory budget.
    pub fn approx_size(&self) -> usize {
        512 + self.text.as_ref().map_or(0, String::len)
            + self.text_ascii.as_ref().map_or(0, String::len)
            + self.raw.as_ref().map_or(0, |r| r.get().len())
            + self.media.len() * 256
    }

    /// Media items still waiting for the media stage.
    pub fn has_pending_media(&self) -> bool {
        self.media.iter().any(MediaItem::is_pending)
    }
}

/// Options every normalizer honours.
#[derive(Debug, Clone)]
pub struct NormalizeOptions {
    /// Keep the original payload in `raw`.
    pub keep_raw: bool,
    /// Add `text_ascii`.
    pub transliterate: bool,
    /// The run the records belong to.
    pub run: Arc<RunInfo>,
    /// Collect the media items of each record for the media stage (`--media`).
    pub media: bool,
}

impl NormalizeOptions {
    pub fn new(run: Arc<RunInfo>) -> Self {
        NormalizeOptions {
            keep_raw: true,
            transliterate: false,
            run,
            media: false,
        }
    }
}

/// Why a payload could not become a record.
#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not a {platform} payload: {reason}")]
    Shape {
        platform: Platform,
        reason: &'static str,
    },
    #[error(
        "cannot tell the platform: the line is neither an X stream line (`data`/`errors`) nor a Telegram update (`update_id`)"
    )]
    UnknownPlatform,
}

/// What a payload turned into.
#[derive(Debug)]
pub enum Normalized {
    /// An item.
    Record(Box<Record>),
    /// A control message (an X `errors`-only line): no record, but the caller may act on it.
    Control(Box<RawValue>),
    /// Nothing: a blank line or keep-alive.
    Nothing,
}

/// Formats a time as RFC 3339 UTC with millisecond precision (`2026-11-22T07:38:36.000Z`).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Formats a Unix timestamp in seconds as RFC 3339 UTC; `None` when out of range.
pub fn unix_to_rfc3339(secs: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp(secs, 0).map(rfc3339)
}

/// Re-formats a platform timestamp as RFC 3339 UTC; keeps it as given when it does not parse.
pub fn normalize_timestamp(s: &str) -> String {
    match DateTime::parse_from_rfc3339(s) {
        // Already in the record's form (X's own: `2026-11-22T07:00:00.000Z`): keep it.
        Ok(_)
            if s.len() == 24
                && s.as_bytes()[10] == b'T'
                && s.as_bytes()[19] == b'.'
                && s.ends_with('Z') =>
        {
            s.to_owned()
        }
        Ok(t) => rfc3339(t.with_timezone(&Utc)),
        Err(_) => s.to_owned(),
    }
}

/// The `hashtags` field from the hashtags a platform marks: without a leading
/// `#` (or the full-width `＃`), empty ones left out, each once (compared
/// case-insensitively, as X matches hashtags), in the order given.
pub fn hashtag_list<'a>(tags: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.trim_start_matches(['#', '\u{ff03}']);
        if !tag.is_empty() && !out.iter().any(|t| t.to_lowercase() == tag.to_lowercase()) {
            out.push(tag.to_owned());
        }
    }
    out
}

/// Plain-ASCII transliteration of `text` (`"Ελλάδα"` → `"Ellada"`), keeping the
/// line structure: `deunicode` swallows the whitespace after an emoji (`"a😂\nb"`
/// came out as `"ajoy b"`), so line breaks and tabs are kept as they are and
/// only the pieces between them are transliterated.
pub fn transliterate(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['\n', '\r', '\t']) {
        out.push_str(&deunicode::deunicode(&rest[..at]));
        out.push_str(&rest[at..at + 1]); // the separator, as it was
        rest = &rest[at + 1..];
    }
    out.push_str(&deunicode::deunicode(rest));
    out
}

/// Trims whitespace (the `\r` of `\r\n`, blanks) around a line.
pub fn trim_line(line: &[u8]) -> &[u8] {
    let start = line
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &line[start..end]
}

/// Parses a trimmed line as a raw JSON value, validating it.
pub fn raw_value(line: &[u8]) -> Result<Box<RawValue>, serde_json::Error> {
    serde_json::from_slice(line)
}

/// A record's `raw` from a trimmed line: checked, copied.
pub fn raw_json(line: &[u8]) -> Result<RawJson, serde_json::Error> {
    RawJson::from_slice(line)
}

/// A derived struct read from a JSON object only. serde's derived structs also
/// take the positional array form (`["123", "text"]` as `{id, text}`), which no
/// platform sends: such input is an error, not a record with fields guessed by position.
pub(crate) struct Object<T>(pub T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(MapOnly(d)).map(Object)
    }
}

/// Hands every request to the inner deserializer as a map request.
struct MapOnly<D>(D);

impl<'de, D: serde::Deserializer<'de>> serde::Deserializer<'de> for MapOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(v)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_millis() {
        assert_eq!(unix_to_rfc3339(0).unwrap(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            normalize_timestamp("2022-06-01T12:00:00+02:00"),
            "2022-06-01T10:00:00.000Z"
        );
        assert_eq!(normalize_timestamp("not a date"), "not a date");
        // The fast path keeps only what is already in the record's form.
        assert_eq!(
            normalize_timestamp("2026-11-22T07:00:00.000Z"),
            "2026-11-22T07:00:00.000Z"
        );
        assert_eq!(
            normalize_timestamp("2026-11-22t07:00:00.000Z"),
            "2026-11-22T07:00:00.000Z"
        );
        assert_eq!(
            normalize_timestamp("2026-11-22 07:00:00.000Z"),
            "2026-11-22T07:00:00.000Z"
        );
        assert_eq!(
            normalize_timestamp("2026-13-22T07:00:00.000Z"),
            "2026-13-22T07:00:00.000Z"
        );
        assert!(unix_to_rfc3339(i64::MAX).is_none());
    }

    #[test]
    fn transliteration_keeps_the_line_structure() {
        assert_eq!(transliterate("x 🧵 a\nb"), "x thread a\nb");
        assert_eq!(transliterate("a😂\nb"), "ajoy\nb");
        assert_eq!(transliterate("a😂\r\n\tb\n\n"), "ajoy\r\n\tb\n\n");
        for text in ["x 🧵 a\nb", "a😂\nb", "Ελλάδα\n🙂\n\nПривет"] {
            assert_eq!(
                transliterate(text).lines().count(),
                text.lines().count(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn transliteration_is_ascii() {
        assert_eq!(transliterate("Ελλάδα"), "Ellada");
        assert!(transliterate("שלום 🙂 Привет").is_ascii());
    }

    #[test]
    fn trim_line_handles_keepalives_and_blanks() {
        assert_eq!(trim_line(b"\r\n"), b"");
        assert_eq!(trim_line(b""), b"");
        assert_eq!(trim_line(b" {\"a\":1}\r"), b"{\"a\":1}");
    }
}
