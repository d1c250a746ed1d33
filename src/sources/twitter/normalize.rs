//! X (Twitter) API v2: normalizing filtered-stream lines into records.
//!
//! A stream line is one JSON object: `data` (the post), `includes` (expanded
//! objects; `includes.users` holds the author when `expansions=author_id`),
//! `matching_rules` (`[{id, tag}]`), and possibly `errors`. A line holding only
//! `errors` is a control message (for example `operational-disconnect`).

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::record::{
    Author, MatchingRule, NormalizeError, NormalizeOptions, Normalized, Object, Platform, Record,
    Refs, normalize_timestamp, raw_value, transliterate, trim_line,
};

#[derive(Deserialize)]
struct StreamLine<'a> {
    #[serde(borrow)]
    data: Option<Object<Tweet<'a>>>,
    #[serde(borrow, default)]
    includes: Option<Includes<'a>>,
    #[serde(borrow, default)]
    matching_rules: Vec<Rule<'a>>,
    #[serde(borrow, default)]
    errors: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Tweet<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    note_tweet: Option<NoteTweet<'a>>,
    /// X's spec 2.167 names the long text `note_post` (docs.x.com: `note_tweet`).
    #[serde(borrow, default)]
    note_post: Option<NoteTweet<'a>>,
    #[serde(borrow, default)]
    author_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    created_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    lang: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    conversation_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct NoteTweet<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Includes<'a> {
    #[serde(borrow, default)]
    users: Vec<User<'a>>,
}

#[derive(Deserialize)]
struct User<'a> {
    /// Optional in the spec: an include without one is skipped, not an error
    /// that loses the post.
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    username: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Rule<'a> {
    id: RuleId,
    #[serde(borrow, default)]
    tag: Option<Cow<'a, str>>,
}

/// Rule ids are strings in today's API; early v2 responses sent numbers.
/// (A hand-written visitor: `#[serde(untagged)]` would buffer every value.)
struct RuleId(String);

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RuleId;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a rule id (string or number)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RuleId, E> {
                Ok(RuleId(v.to_owned()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RuleId, E> {
                Ok(RuleId(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Normalizes one X filtered-stream line (without or with its `\r\n`).
pub fn normalize_line(
    line: &[u8],
    received_at: &Arc<str>,
    opts: &NormalizeOptions,
) -> Result<Normalized, NormalizeError> {
    let line = trim_line(line);
    if line.is_empty() {
        return Ok(Normalized::Nothing);
    }
    // With `raw` kept: one pass. The struct is parsed from the whole line as
    // `str` (checked UTF-8), which reads every byte of it: the unknown fields
    // are skipped by serde_json's validating skip (the very scan a `RawValue`
    // makes) and `from_str` refuses anything but whitespace after the object.
    // A line that parses is thus one well-formed JSON value, and the raw copy
    // needs no second parse. Without `raw`, parse the bytes directly.
    let (parsed, text): (Object<StreamLine<'_>>, Option<&str>) = if opts.keep_raw {
        let text = utf8(line)?;
        (serde_json::from_str(text)?, Some(text))
    } else {
        (serde_json::from_slice(line)?, None)
    };
    let Object(parsed) = parsed;
    let raw = text.map(|text| {
        // SAFETY: `text` is trimmed and `from_str` above parsed all of it as
        // one JSON object (see the comment above): a single well-formed JSON
        // value without surrounding whitespace.
        unsafe { RawValue::from_string_unchecked(text.to_owned()) }
    });
    let Some(Object(tweet)) = parsed.data else {
        return control(line, raw, parsed.errors.is_some());
    };
    let author = tweet
        .author_id
        .as_deref()
        .map(|id| author(id, parsed.includes.as_ref()));
    let record = tweet_record(tweet, author, parsed.matching_rules, raw, received_at, opts);
    Ok(Normalized::Record(Box::new(record)))
}

/// A line without `data`: a control message when it carries `errors`, else
/// not a stream line at all.
fn control(
    line: &[u8],
    raw: Option<Box<RawValue>>,
    has_errors: bool,
) -> Result<Normalized, NormalizeError> {
    if !has_errors {
        return Err(NormalizeError::Shape {
            platform: Platform::Twitter,
            reason: "the line has neither `data` nor `errors`",
        });
    }
    Ok(Normalized::Control(match raw {
        Some(raw) => raw,
        None => raw_value(line)?,
    }))
}

/// The line as UTF-8; when it is not, serde_json's error says where (a JSON
/// error like any other malformed line).
fn utf8(line: &[u8]) -> Result<&str, NormalizeError> {
    std::str::from_utf8(line).map_err(|_| match serde_json::from_slice::<&RawValue>(line) {
        Err(e) => NormalizeError::Json(e),
        Ok(_) => NormalizeError::Shape {
            platform: Platform::Twitter,
            reason: "the line is not UTF-8",
        },
    })
}

/// The author `author_id`, with the name and username `includes.users` gives.
fn author(author_id: &str, includes: Option<&Includes<'_>>) -> Author {
    let user = includes.and_then(|inc| {
        inc.users
            .iter()
            .find(|u| u.id.as_deref() == Some(author_id))
    });
    Author {
        id: author_id.to_owned(),
        name: user.and_then(|u| u.name.as_deref().map(str::to_owned)),
        username: user.and_then(|u| u.username.as_deref().map(str::to_owned)),
    }
}

/// The record of one post.
fn tweet_record(
    tweet: Tweet<'_>,
    author: Option<Author>,
    rules: Vec<Rule<'_>>,
    raw: Option<Box<RawValue>>,
    received_at: &Arc<str>,
    opts: &NormalizeOptions,
) -> Record {
    // Long posts carry their full text in `note_tweet.text`; `text` is then cut.
    let text = tweet
        .note_tweet
        .and_then(|n| n.text)
        .or_else(|| tweet.note_post.and_then(|n| n.text))
        .or(tweet.text)
        .map(Cow::into_owned);
    let matching_rules: Vec<MatchingRule> = rules
        .into_iter()
        .map(|r| MatchingRule {
            id: r.id.0,
            tag: r.tag.map(Cow::into_owned),
        })
        .collect();
    let tags = matching_rules
        .iter()
        .filter_map(|r| r.tag.clone())
        .collect();
    Record {
        id: format!("twitter:{}", tweet.id),
        platform: Platform::Twitter,
        kind: Cow::Borrowed("tweet"),
        text_ascii: if opts.transliterate {
            text.as_deref().map(transliterate)
        } else {
            None
        },
        text,
        created_at: tweet.created_at.as_deref().map(normalize_timestamp),
        received_at: received_at.clone(),
        author,
        chat: None,
        lang: tweet.lang.map(Cow::into_owned),
        source: tweet.source.map(Cow::into_owned),
        matching_rules,
        tags,
        refs: Refs {
            tweet_id: Some(tweet.id.into_owned()),
            conversation_id: tweet.conversation_id.map(Cow::into_owned),
            ..Refs::default()
        },
        run: opts.run.clone(),
        raw,
    }
}

/// True when a trimmed JSON line looks like an X stream line (has `data` or `errors` at the top).
pub fn looks_like_stream_line(value: &serde_json::Map<String, serde_json::Value>) -> bool {
    value.contains_key("data") || value.contains_key("errors")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::record::RunInfo;

    fn opts() -> NormalizeOptions {
        NormalizeOptions::new(Arc::new(RunInfo::new(Some(60))))
    }

    fn record(line: &str) -> Record {
        match normalize_line(line.as_bytes(), &"2026-01-01T00:00:00.000Z".into(), &opts()).unwrap()
        {
            Normalized::Record(r) => *r,
            other => panic!("expected a record, got {other:?}"),
        }
    }

    const FULL: &str = r#"{"data":{"id":"1590000000000000001","text":"hello 🌍 world","author_id":"42","created_at":"2022-11-01T12:00:00.000Z","lang":"en","conversation_id":"1590000000000000000","source":"Twitter Web App","edit_history_tweet_ids":["1590000000000000001"]},"includes":{"users":[{"id":"7","name":"Other","username":"other"},{"id":"42","name":"Ada L","username":"ada"}]},"matching_rules":[{"id":"1600000000000000000","tag":"greetings"},{"id":"1600000000000000001"}]}"#;

    #[test]
    fn full_line_with_includes() {
        let r = record(FULL);
        assert_eq!(r.id, "twitter:1590000000000000001");
        assert_eq!(r.platform, Platform::Twitter);
        assert_eq!(r.kind, "tweet");
        assert_eq!(r.text.as_deref(), Some("hello 🌍 world"));
        assert_eq!(r.created_at.as_deref(), Some("2022-11-01T12:00:00.000Z"));
        let author = r.author.as_ref().unwrap();
        assert_eq!(
            (
                author.id.as_str(),
                author.name.as_deref(),
                author.username.as_deref()
            ),
            ("42", Some("Ada L"), Some("ada"))
        );
        assert_eq!(r.lang.as_deref(), Some("en"));
        assert_eq!(r.source.as_deref(), Some("Twitter Web App"));
        assert_eq!(r.matching_rules.len(), 2);
        assert_eq!(r.matching_rules[1].tag, None);
        assert_eq!(r.tags, vec!["greetings"]);
        assert_eq!(r.refs.tweet_id.as_deref(), Some("1590000000000000001"));
        assert_eq!(
            r.refs.conversation_id.as_deref(),
            Some("1590000000000000000")
        );
        assert_eq!(r.raw.as_ref().unwrap().get(), FULL);
        assert!(r.chat.is_none());
    }

    #[test]
    fn without_includes_the_author_has_only_an_id() {
        let r = record(r#"{"data":{"id":"5","text":"x","author_id":"42"}}"#);
        let a = r.author.unwrap();
        assert_eq!(a.id, "42");
        assert!(a.name.is_none() && a.username.is_none());
        assert!(r.matching_rules.is_empty() && r.tags.is_empty());
    }

    #[test]
    fn missing_optional_fields_and_unknown_extras() {
        let r = record(r#"{"data":{"id":"5","future_field":{"x":[1,2]}},"brand_new":true}"#);
        assert_eq!(r.id, "twitter:5");
        assert!(
            r.text.is_none() && r.author.is_none() && r.created_at.is_none() && r.lang.is_none()
        );
    }

    #[test]
    fn four_byte_characters_and_right_to_left_text_survive() {
        let text = "مرحبا بالعالم 𝕏 👩‍👩‍👧 שלום";
        let line = serde_json::json!({"data": {"id": "9", "text": text}}).to_string();
        let r = record(&line);
        assert_eq!(r.text.as_deref(), Some(text));
        let escaped = r#"{"data":{"id":"9","text":"\ud83d\ude00 \u0645"}}"#;
        assert_eq!(record(escaped).text.as_deref(), Some("😀 م"));
    }

    #[test]
    fn long_text_and_note_tweet() {
        let long = "ab".repeat(12_500);
        let line =
            serde_json::json!({"data": {"id": "9", "text": "cut…", "note_tweet": {"text": long}}})
                .to_string();
        assert_eq!(record(&line).text.unwrap().len(), 25_000);
    }

    #[test]
    fn numeric_rule_ids_are_accepted() {
        let r = record(r#"{"data":{"id":"1"},"matching_rules":[{"id":1234,"tag":"t"}]}"#);
        assert_eq!(r.matching_rules[0].id, "1234");
    }

    #[test]
    fn keepalives_blank_lines_and_errors() {
        let o = opts();
        assert!(matches!(
            normalize_line(b"\r\n", &"".into(), &o).unwrap(),
            Normalized::Nothing
        ));
        assert!(matches!(
            normalize_line(b"", &"".into(), &o).unwrap(),
            Normalized::Nothing
        ));
        let control = br#"{"errors":[{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect","detail":"This stream has been disconnected upstream for operational reasons.","type":"https://api.twitter.com/2/problems/operational-disconnect"}]}"#;
        assert!(matches!(
            normalize_line(control, &"".into(), &o).unwrap(),
            Normalized::Control(_)
        ));
    }

    #[test]
    fn transliterate_and_no_raw() {
        let mut o = opts();
        o.transliterate = true;
        o.keep_raw = false;
        let Normalized::Record(r) = normalize_line(
            r#"{"data":{"id":"1","text":"Ελλάδα"}}"#.as_bytes(),
            &"".into(),
            &o,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(r.text_ascii.as_deref(), Some("Ellada"));
        assert!(r.raw.is_none());
    }

    #[test]
    fn malformed_lines_are_errors() {
        let o = opts();
        for bad in [
            &b"{\"data\":{\"id\":\"1\",\"text\":\"cut"[..],
            b"not json",
            b"[1,2,3]",
            b"{}",
            b"{\"data\":{\"text\":\"no id\"}}",
            b"{\"data\":{\"id\":\"1\",\"text\":\"\xff\xfe\"}}",
            b"\x00\x01\x02",
            // The positional form serde takes for structs is not an X line
            // (found by proptests::x_normalizer_never_panics_on_arbitrary_json).
            b"[[\"1\"]]",
            b"{\"data\":[\"1\",\"text\"]}",
        ] {
            assert!(
                normalize_line(bad, &"".into(), &o).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn the_author_takes_name_and_username_from_includes() {
        let includes: Includes<'_> = serde_json::from_str(
            r#"{"users":[{"id":"7","name":"Other"},{"id":"42","name":"Ada L","username":"ada"}]}"#,
        )
        .unwrap();
        let a = author("42", Some(&includes));
        assert_eq!(
            (a.id.as_str(), a.name.as_deref(), a.username.as_deref()),
            ("42", Some("Ada L"), Some("ada"))
        );
        let a = author("9", Some(&includes));
        assert_eq!((a.name, a.username), (None, None));
        assert_eq!(author("9", None).id, "9");
    }

    #[test]
    fn a_line_without_data_is_control_only_with_errors() {
        let line = br#"{"errors":[{"title":"operational-disconnect"}]}"#;
        assert!(matches!(
            control(line, None, true),
            Ok(Normalized::Control(_))
        ));
        assert!(matches!(
            control(line, None, false),
            Err(NormalizeError::Shape { .. })
        ));
    }
}
