//! What X POSTs to a webhook, told apart by shape, and the records of the
//! kinds that are not Account Activity:
//!
//! - Account Activity: an object with `for_user_id` and `*_events` arrays.
//! - X Activity API: `{"data": {"event_type", "filter", "tag"?, "payload"}}`
//!   → an `activity_event` record tagged with the event type (and tag).
//! - Filtered-stream posts delivered by webhook: the stream's own shape
//!   (`data` post, `includes`, `matching_rules`), one object or an array of
//!   them → `tweet` records from the stream normalizer, so the same post has
//!   the same record (and `id`) from the stream and from the webhook.
//! - Anything else → an `activity_event` tagged `unknown`, the body in `raw`
//!   (even with `--no-raw`), never dropped.

use std::sync::Arc;

use serde_json::Value;

use crate::record::{
    Author, NormalizeError, NormalizeOptions, Normalized, Platform, Record, Refs, raw_value,
    trim_line,
};
use crate::state::secret_fingerprint;

/// The kind of one webhook body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    AccountActivity,
    ActivityApi,
    FilteredStream,
    Unknown,
}

/// Tells a parsed body's kind by its shape.
pub fn classify(body: &Value) -> BodyKind {
    let stream_post = |v: &Value| {
        v.get("data")
            .is_some_and(|d| d.get("id").is_some() && d.get("event_type").is_none())
    };
    match body {
        Value::Object(o)
            if o.contains_key("for_user_id") || o.keys().any(|k| k.ends_with("_events")) =>
        {
            BodyKind::AccountActivity
        }
        Value::Object(o) if o.get("data").is_some_and(|d| d.get("event_type").is_some()) => {
            BodyKind::ActivityApi
        }
        Value::Object(_) if stream_post(body) => BodyKind::FilteredStream,
        Value::Array(items) if !items.is_empty() && items.iter().all(stream_post) => {
            BodyKind::FilteredStream
        }
        _ => BodyKind::Unknown,
    }
}

/// Filtered-stream posts delivered by webhook: one object or an array.
/// A single post is normalized from the body's own bytes (its `raw` is them).
pub fn stream_posts(
    bytes: &[u8],
    body: &Value,
    received_at: &Arc<str>,
    opts: &NormalizeOptions,
) -> Result<Vec<Record>, String> {
    let lines: Vec<Vec<u8>> = match body {
        Value::Array(items) => items
            .iter()
            .map(|i| serde_json::to_vec(i).expect("a JSON value serializes"))
            .collect(),
        _ => vec![bytes.trim_ascii().to_vec()],
    };
    let mut records = Vec::new();
    for line in lines {
        match crate::sources::twitter::normalize_line(&line, received_at, opts)
            .map_err(|e| e.to_string())?
        {
            Normalized::Record(r) => records.push(*r),
            Normalized::Control(_) | Normalized::Nothing => {}
        }
    }
    Ok(records)
}

fn base_event(id: String, tags: Vec<String>, opts: &NormalizeOptions) -> Record {
    Record {
        id,
        platform: Platform::Twitter,
        kind: "activity_event".into(),
        text: None,
        text_ascii: None,
        created_at: None,
        received_at: Arc::from(""),
        author: None,
        chat: None,
        lang: None,
        source: None,
        matching_rules: Vec::new(),
        tags,
        hashtags: Vec::new(),
        refs: Refs::default(),
        media: Vec::new(),
        run: opts.run.clone(),
        raw: None,
    }
}

/// The `activity_event` of an X Activity API delivery (`received_at` still to set).
pub fn x_activity_record(body: &Value, raw: &str, opts: &NormalizeOptions) -> Record {
    let data = &body["data"];
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let event_type = text(&data["event_type"]).unwrap_or_else(|| "unknown".into());
    let user = text(&data["filter"]["user_id"]);
    let event_id = text(&data["event_id"])
        .or_else(|| text(&data["event_uuid"]))
        .or_else(|| text(&data["id"]))
        .unwrap_or_else(|| secret_fingerprint(&data.to_string()));
    let mut tags = vec![event_type.clone()];
    tags.extend(text(&data["tag"]));
    let id = format!(
        "twitter:activity:{}:{event_type}:{event_id}",
        user.as_deref().unwrap_or("")
    );
    let mut record = base_event(id, tags, opts);
    record.author = user.map(|id| Author {
        id,
        name: None,
        username: None,
    });
    record.created_at = text(&data["created_at"]);
    record.raw = opts
        .keep_raw
        .then(|| crate::record::RawJson::from_string(raw.to_owned()).ok())
        .flatten();
    record
}

/// One line of the X Activity stream (`/2/activity/stream`): the same
/// `{"data": {event_type, event_uuid, filter, tag?, payload}}` as a webhook
/// delivery, so the same `activity_event` record; `errors` alone is a control
/// message.
pub fn normalize_activity_line(
    line: &[u8],
    received_at: &Arc<str>,
    opts: &NormalizeOptions,
) -> Result<Normalized, NormalizeError> {
    let line = trim_line(line);
    if line.is_empty() {
        return Ok(Normalized::Nothing);
    }
    let text = std::str::from_utf8(line).map_err(|_| NormalizeError::Shape {
        platform: Platform::Twitter,
        reason: "an X Activity stream line is UTF-8",
    })?;
    let body: Value = serde_json::from_str(text)?;
    match classify(&body) {
        BodyKind::ActivityApi => {
            let mut record = x_activity_record(&body, text, opts);
            record.received_at = received_at.clone();
            Ok(Normalized::Record(Box::new(record)))
        }
        _ if body.get("data").is_none() && body.get("errors").is_some() => {
            Ok(Normalized::Control(raw_value(line)?))
        }
        _ => Err(NormalizeError::Shape {
            platform: Platform::Twitter,
            reason: "an X Activity stream line has `data.event_type` or `errors`",
        }),
    }
}

/// The `activity_event` of a body of no known kind: its `raw` is always kept.
pub fn unknown_record(raw: &str, opts: &NormalizeOptions) -> Record {
    let id = format!("twitter:activity:unknown:{}", secret_fingerprint(raw));
    let mut record = base_event(id, vec!["unknown".into()], opts);
    record.raw = crate::record::RawJson::from_string(raw.to_owned()).ok();
    record
}

/// The client name of a v1.1 `source` (`<a href="…" rel="nofollow">Twitter
/// Web App</a>` → `Twitter Web App`), as the v2 stream gives it; plain text
/// stays as it is.
pub fn plain_source(source: &str) -> String {
    let s = source.trim();
    let inner = s
        .strip_prefix("<a")
        .and_then(|rest| rest.split_once('>'))
        .and_then(|(_, rest)| rest.strip_suffix("</a>"));
    match inner {
        Some(name) => name
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&"),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RunInfo;

    fn v(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn kinds_by_shape() {
        assert_eq!(
            classify(&v(r#"{"for_user_id":"1","tweet_create_events":[]}"#)),
            BodyKind::AccountActivity
        );
        assert_eq!(
            classify(&v(r#"{"follow_events":[]}"#)),
            BodyKind::AccountActivity
        );
        assert_eq!(
            classify(&v(
                r#"{"data":{"event_type":"profile.update.bio","filter":{"user_id":"1"}}}"#
            )),
            BodyKind::ActivityApi
        );
        assert_eq!(
            classify(&v(r#"{"data":{"id":"5","text":"t"},"matching_rules":[]}"#)),
            BodyKind::FilteredStream
        );
        assert_eq!(
            classify(&v(r#"[{"data":{"id":"5","text":"t"}}]"#)),
            BodyKind::FilteredStream
        );
        for other in [r#"{"x":1}"#, "[]", "[1]", "3", r#"{"data":[1]}"#] {
            assert_eq!(classify(&v(other)), BodyKind::Unknown, "{other}");
        }
    }

    #[test]
    fn plain_sources() {
        assert_eq!(
            plain_source(
                r#"<a href="https://mobile.twitter.com" rel="nofollow">Twitter Web App</a>"#
            ),
            "Twitter Web App"
        );
        assert_eq!(
            plain_source(r#"<a href="x">Tom &amp; Jerry&#39;s</a>"#),
            "Tom & Jerry's"
        );
        assert_eq!(plain_source("Twitter for iPhone"), "Twitter for iPhone");
        assert_eq!(
            plain_source("<a href=\"x\">unclosed"),
            "<a href=\"x\">unclosed"
        );
    }

    #[test]
    fn unknown_bodies_keep_raw_even_without_raw() {
        let mut opts = NormalizeOptions::new(Arc::new(RunInfo::new(Some(1))));
        opts.keep_raw = false;
        let r = unknown_record(r#"{"x":1}"#, &opts);
        assert_eq!(r.kind, "activity_event");
        assert_eq!(r.raw.unwrap().get(), r#"{"x":1}"#);
        assert_eq!(r.tags, ["unknown"]);
    }
}
