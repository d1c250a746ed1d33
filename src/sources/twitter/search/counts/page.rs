//! One page of X's post counts, read strictly: `data[]` buckets of `start`,
//! `end` and a count, `meta.next_token` and the page's total. The counts are
//! read in both spellings: `post_count` / `total_post_count` (the OpenAPI
//! spec, 2.167) and `tweet_count` / `total_tweet_count` (docs.x.com).

use serde_json::Value;

/// One bucket: posts created in `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Start of the bucket (inclusive), RFC 3339 UTC.
    pub start: String,
    /// End of the bucket (exclusive), RFC 3339 UTC.
    pub end: String,
    pub count: u64,
}

/// A page of buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountsPage {
    pub buckets: Vec<Bucket>,
    pub next_token: Option<String>,
    /// `meta.total_post_count` (or `total_tweet_count`), when X sent it.
    pub total: Option<u64>,
}

/// Why a 200 page cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a counts page from X {0}")]
pub struct BadPage(String);

fn bad(why: impl Into<String>) -> BadPage {
    BadPage(why.into())
}

/// A count in either spelling: a non-negative integer.
fn count_of(
    o: &serde_json::Map<String, Value>,
    names: [&str; 2],
    at: &str,
) -> Result<Option<u64>, BadPage> {
    let Some((name, v)) = names.iter().find_map(|n| o.get(*n).map(|v| (*n, v))) else {
        return Ok(None);
    };
    v.as_u64().map(Some).ok_or_else(|| {
        bad(format!(
            "has `{at}{name}` = {v}, not a count (a non-negative integer)"
        ))
    })
}

/// A bucket bound: an RFC 3339 time, kept as X's text normalized to UTC.
fn time_of(o: &serde_json::Map<String, Value>, name: &str, i: usize) -> Result<String, BadPage> {
    let v = o
        .get(name)
        .ok_or_else(|| bad(format!("has a bucket (data[{i}]) without `{name}`")))?;
    v.as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| crate::record::rfc3339(t.with_timezone(&chrono::Utc)))
        .ok_or_else(|| {
            bad(format!(
                "has `data[{i}].{name}` = {v}, not an RFC 3339 time"
            ))
        })
}

fn bucket(i: usize, v: &Value) -> Result<Bucket, BadPage> {
    let o = v
        .as_object()
        .ok_or_else(|| bad(format!("has `data[{i}]` that is not an object")))?;
    let count =
        count_of(o, ["post_count", "tweet_count"], &format!("data[{i}]."))?.ok_or_else(|| {
            bad(format!(
                "has a bucket (data[{i}]) without `post_count` (or `tweet_count`)"
            ))
        })?;
    Ok(Bucket {
        start: time_of(o, "start", i)?,
        end: time_of(o, "end", i)?,
        count,
    })
}

/// Reads a 200 body. A page without `data` is usable only when it says its
/// total is 0 (nothing to count); X sends zero buckets otherwise.
pub fn parse(body: &[u8]) -> Result<CountsPage, BadPage> {
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(format!("is not JSON: {e}")))?;
    let o = v.as_object().ok_or_else(|| bad("is not a JSON object"))?;
    let meta = match o.get("meta") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => return Err(bad(format!("has `meta` = {other}, not an object"))),
    };
    let total = count_of(&meta, ["total_post_count", "total_tweet_count"], "meta.")?;
    let next_token = match meta.get("next_token") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
        Some(other) => return Err(bad(format!("has `meta.next_token` = {other}, not a token"))),
    };
    let buckets = match o.get("data") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| bucket(i, v))
            .collect::<Result<_, _>>()?,
        None if total == Some(0) => Vec::new(),
        None => {
            let errors = o
                .get("errors")
                .map(|e| format!(" (its errors: {e})"))
                .unwrap_or_default();
            let errors: String = errors.chars().take(500).collect();
            return Err(bad(format!("has no `data`{errors}")));
        }
        Some(other) => {
            return Err(bad(format!(
                "has `data` = {}, not an array",
                type_name(other)
            )));
        }
    };
    Ok(CountsPage {
        buckets,
        next_token,
        total,
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_are_read() {
        let spec = br#"{"data":[{"start":"2026-11-30T10:00:00.000Z","end":"2026-11-30T11:00:00.000Z","post_count":3}],"meta":{"total_post_count":3,"next_token":"t1"}}"#;
        let docs = br#"{"data":[{"start":"2026-11-30T10:00:00Z","end":"2026-11-30T11:00:00Z","tweet_count":3}],"meta":{"total_tweet_count":3,"next_token":"t1"}}"#;
        let a = parse(spec).unwrap();
        assert_eq!(a, parse(docs).unwrap());
        assert_eq!(a.total, Some(3));
        assert_eq!(a.next_token.as_deref(), Some("t1"));
        assert_eq!(
            a.buckets,
            [Bucket {
                start: "2026-11-30T10:00:00.000Z".into(),
                end: "2026-11-30T11:00:00.000Z".into(),
                count: 3
            }]
        );
    }

    #[test]
    fn hostile_pages_are_refused_by_name() {
        let cases: [(&[u8], &str); 8] = [
            (b"{\"data\":[", "is not JSON"),
            (b"[]", "not a JSON object"),
            (br#"{"meta":{"total_post_count":4}}"#, "has no `data`"),
            (br#"{"data":{}}"#, "`data` = an object"),
            (
                br#"{"data":[{"start":"2026-11-30T10:00:00Z","end":"2026-11-30T11:00:00Z","post_count":"3"}]}"#,
                "`data[0].post_count` = \"3\"",
            ),
            (
                br#"{"data":[{"start":"2026-11-30T10:00:00Z","end":"2026-11-30T11:00:00Z","post_count":-1}]}"#,
                "not a count",
            ),
            (br#"{"data":[{"start":"soon","end":"2026-11-30T11:00:00Z","post_count":1}]}"#, "`data[0].start`"),
            (br#"{"data":[{"start":"2026-11-30T10:00:00Z","end":"2026-11-30T11:00:00Z"}]}"#, "without `post_count`"),
        ];
        for (body, want) in cases {
            let e = parse(body).unwrap_err().to_string();
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(body));
        }
        assert_eq!(
            parse(br#"{"meta":{"total_post_count":0}}"#).unwrap(),
            CountsPage {
                total: Some(0),
                ..Default::default()
            }
        );
    }
}
