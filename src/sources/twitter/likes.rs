//! The likes streams' lines (`/2/likes/firehose/stream`,
//! `/2/likes/sample10/stream`) as records of kind `like`: `data` is X's
//! `LikeWithPostAuthor` (`id`, `created_at`, `liked_tweet_id`, the liked
//! post's author as `tweet_author_id`, or `liked_tweet_author_id` as the
//! spec's field list spells it; `timestamp_ms`), `includes.users` the
//! expanded authors.
//!
//! The record: `id` = `twitter:like:<like id>`, `created_at` the like's time,
//! `refs.tweet_id` the liked post, `author` the liked post's author (with
//! name and username when expanded), `raw` the line.

use std::sync::Arc;

use serde_json::Value;

use crate::record::{
    Author, NormalizeError, NormalizeOptions, Normalized, Platform, Record, Refs,
    normalize_timestamp, raw_value, trim_line, unix_to_rfc3339,
};

/// The record kind of a like.
pub const KIND: &str = "like";

/// The `like_with_tweet_author.fields` asked for: every field the spec lists
/// but the media keys.
pub const LIKE_FIELDS: &str = "created_at,id,liked_tweet_author_id,liked_tweet_id,timestamp_ms";
/// The `expansions` asked for: the liked post's author.
pub const LIKE_EXPANSIONS: &str = "liked_tweet_author_id";

fn shape(reason: &'static str) -> NormalizeError {
    NormalizeError::Shape {
        platform: Platform::Twitter,
        reason,
    }
}

fn str_of<'a>(o: &'a Value, key: &str) -> Option<&'a str> {
    o.get(key).and_then(Value::as_str)
}

/// The liked post's author, with name and username from `includes.users`.
fn author_of(data: &Value, line: &Value) -> Option<Author> {
    let id = str_of(data, "tweet_author_id").or(str_of(data, "liked_tweet_author_id"))?;
    let user = line["includes"]["users"]
        .as_array()
        .and_then(|users| users.iter().find(|u| str_of(u, "id") == Some(id)));
    Some(Author {
        id: id.to_owned(),
        name: user.and_then(|u| str_of(u, "name")).map(str::to_owned),
        username: user.and_then(|u| str_of(u, "username")).map(str::to_owned),
    })
}

/// One likes-stream line: a record, a control message (`errors` alone), or nothing.
pub fn normalize_like_line(
    line: &[u8],
    received_at: &Arc<str>,
    opts: &NormalizeOptions,
) -> Result<Normalized, NormalizeError> {
    let line = trim_line(line);
    if line.is_empty() {
        return Ok(Normalized::Nothing);
    }
    let v: Value = serde_json::from_slice(line)?;
    if !v.is_object() {
        return Err(shape("a likes-stream line is a JSON object"));
    }
    let Some(data) = v.get("data").filter(|d| d.is_object()) else {
        if v.get("errors").is_some() {
            return Ok(Normalized::Control(raw_value(line)?));
        }
        return Err(shape("the line has neither `data` nor `errors`"));
    };
    let id = str_of(data, "id").ok_or_else(|| shape("a like without an `id`"))?;
    let created_at = str_of(data, "created_at")
        .map(normalize_timestamp)
        .or_else(|| {
            let ms = data.get("timestamp_ms").and_then(Value::as_i64)?;
            unix_to_rfc3339(ms.div_euclid(1000))
        });
    let record = Record {
        id: format!("twitter:like:{id}"),
        platform: Platform::Twitter,
        kind: KIND.into(),
        text: None,
        text_ascii: None,
        created_at,
        received_at: received_at.clone(),
        author: author_of(data, &v),
        chat: None,
        lang: None,
        source: None,
        matching_rules: Vec::new(),
        tags: Vec::new(),
        hashtags: Vec::new(),
        refs: Refs {
            tweet_id: str_of(data, "liked_tweet_id").map(str::to_owned),
            ..Refs::default()
        },
        media: Vec::new(),
        run: opts.run.clone(),
        raw: if opts.keep_raw {
            Some(crate::record::raw_json(line)?)
        } else {
            None
        },
    };
    Ok(Normalized::Record(Box::new(record)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RunInfo;

    fn norm(line: &str) -> Result<Normalized, NormalizeError> {
        let opts = NormalizeOptions::new(Arc::new(RunInfo::new(None)));
        normalize_like_line(line.as_bytes(), &"2026-11-30T12:00:00.000Z".into(), &opts)
    }

    #[test]
    fn a_like_names_the_liked_post_and_its_author() {
        let line = r#"{"data":{"id":"8ba4f34e6235d905a46bac021d98e923","created_at":"2026-11-30T11:59:00.000Z","liked_tweet_id":"1600000000000000007","tweet_author_id":"1001"},"includes":{"users":[{"id":"1001","name":"Ada Lovelace","username":"ada"}]}}"#;
        let Normalized::Record(r) = norm(line).unwrap() else {
            panic!("not a record")
        };
        assert_eq!(r.id, "twitter:like:8ba4f34e6235d905a46bac021d98e923");
        assert_eq!(r.kind, "like");
        assert_eq!(r.refs.tweet_id.as_deref(), Some("1600000000000000007"));
        let a = r.author.unwrap();
        assert_eq!(
            (a.id.as_str(), a.username.as_deref()),
            ("1001", Some("ada"))
        );
        assert_eq!(r.created_at.as_deref(), Some("2026-11-30T11:59:00.000Z"));
        // The field list's spelling, a millisecond time, no expansion.
        let line = r#"{"data":{"id":"ab12","timestamp_ms":1764503940000,"liked_tweet_id":"7","liked_tweet_author_id":"9"}}"#;
        let Normalized::Record(r) = norm(line).unwrap() else {
            panic!("not a record")
        };
        assert_eq!(r.author.unwrap().username, None);
        assert_eq!(r.created_at.as_deref(), Some("2025-11-30T11:59:00.000Z"));
    }

    #[test]
    fn errors_are_control_and_shapeless_lines_are_refused() {
        assert!(matches!(
            norm(r#"{"errors":[{"title":"operational-disconnect"}]}"#),
            Ok(Normalized::Control(_))
        ));
        assert!(matches!(norm("\r\n"), Ok(Normalized::Nothing)));
        for bad in [
            r#"{"data":{"liked_tweet_id":"7"}}"#,
            r#"{"meta":{}}"#,
            "[1]",
            "{\"data\":",
        ] {
            assert!(norm(bad).is_err(), "{bad}");
        }
    }
}
