//! X (Twitter) API v2: normalizing filtered-stream lines into records.
//!
//! A stream line is one JSON object: `data` (the post), `includes` (expanded
//! objects; `includes.users` holds the author when `expansions=author_id`),
//! `matching_rules` (`[{id, tag}]`), and possibly `errors`. A line holding only
//! `errors` is a control message (for example `operational-disconnect`).

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::record::{
    Author, MatchingRule, NormalizeError, NormalizeOptions, Normalized, Object, Platform, RawJson,
    Record, Refs, hashtag_list, normalize_timestamp, raw_value, transliterate, trim_line,
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
    /// Read only for hashtags, and leniently: a damaged `entities` loses them, not the post.
    #[serde(borrow, default)]
    entities: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct NoteTweet<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    entities: Option<&'a RawValue>,
}

/// `entities` (requested with `tweet.fields=entities`): only the hashtags are
/// read. The spec marks the list nullable.
#[derive(Deserialize)]
struct Entities<'a> {
    #[serde(borrow, default)]
    hashtags: Option<Vec<Hashtag<'a>>>,
}

#[derive(Deserialize)]
struct Hashtag<'a> {
    #[serde(borrow)]
    tag: Cow<'a, str>,
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

/// Normalizes one X filtered-stream line (without or with its `\r\n`);
/// `raw` is a copy of the line.
pub fn normalize_line(
    line: &[u8],
    received_at: &Arc<str>,
    opts: &NormalizeOptions,
) -> Result<Normalized, NormalizeError> {
    normalize(line, None, received_at, opts)
}

/// As [`normalize_line`], with `raw` sharing the bytes of `line`: no copy.
pub fn normalize_shared_line(
    line: &Bytes,
    received_at: &Arc<str>,
    opts: &NormalizeOptions,
) -> Result<Normalized, NormalizeError> {
    normalize(line, Some(line), received_at, opts)
}

fn normalize(
    line: &[u8],
    owner: Option<&Bytes>,
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
    let Some(Object(tweet)) = parsed.data else {
        return control(line, parsed.errors.is_some());
    };
    let raw = text.map(|text| {
        let bytes = match owner {
            // `text` lies inside `line`, which lies inside `owner`.
            Some(owner) => owner.slice_ref(text.as_bytes()),
            None => Bytes::copy_from_slice(text.as_bytes()),
        };
        // SAFETY: `text` is trimmed UTF-8 and `from_str` above parsed all of
        // it as one JSON object (see the comment above): a single well-formed
        // JSON value without surrounding whitespace.
        unsafe { RawJson::from_bytes_unchecked(bytes) }
    });
    let author = tweet
        .author_id
        .as_deref()
        .map(|id| author(id, parsed.includes.as_ref()));
    let mut record = tweet_record(tweet, author, parsed.matching_rules, raw, received_at, opts);
    if opts.media {
        // A second, small parse, with media capture only.
        record.media = match text {
            Some(text) => media::media_items(text),
            None => std::str::from_utf8(line).map_or_else(|_| Vec::new(), media::media_items),
        };
    }
    Ok(Normalized::Record(Box::new(record)))
}

/// A line without `data`: a control message when it carries `errors`, else
/// not a stream line at all.
fn control(line: &[u8], has_errors: bool) -> Result<Normalized, NormalizeError> {
    if !has_errors {
        return Err(NormalizeError::Shape {
            platform: Platform::Twitter,
            reason: "the line has neither `data` nor `errors`",
        });
    }
    Ok(Normalized::Control(raw_value(line)?))
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
    raw: Option<RawJson>,
    received_at: &Arc<str>,
    opts: &NormalizeOptions,
) -> Record {
    // Long posts carry their full text (and its entities) in `note_tweet`;
    // `text` is then cut.
    let note = tweet
        .note_tweet
        .or(tweet.note_post)
        .filter(|n| n.text.is_some());
    let (text, entities) = match note {
        Some(n) => (n.text, n.entities.or(tweet.entities)),
        None => (tweet.text, tweet.entities),
    };
    let text = text.map(Cow::into_owned);
    let hashtags = entities
        .and_then(|e| serde_json::from_str::<Entities<'_>>(e.get()).ok())
        .and_then(|e| e.hashtags)
        .map(|h| hashtag_list(h.iter().map(|h| h.tag.as_ref())))
        .unwrap_or_default();
    let matching_rules: Vec<MatchingRule> = rules
        .into_iter()
        .map(|r| MatchingRule {
            id: r.id.0,
            tag: r.tag.map(Cow::into_owned),
        })
        .collect();
    // A rule without a tag comes as `"tag": ""`: no tag, not an empty one;
    // two rules with one tag give it once.
    let mut tags: Vec<String> = Vec::with_capacity(matching_rules.len());
    for tag in matching_rules.iter().filter_map(|r| r.tag.as_deref()) {
        if !tag.is_empty() && !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_owned());
        }
    }
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
        hashtags,
        refs: Refs {
            tweet_id: Some(tweet.id.into_owned()),
            conversation_id: tweet.conversation_id.map(Cow::into_owned),
            ..Refs::default()
        },
        media: Vec::new(),
        run: opts.run.clone(),
        raw,
    }
}

/// True when a trimmed JSON line looks like an X stream line (has `data` or `errors` at the top).
pub fn looks_like_stream_line(value: &serde_json::Map<String, serde_json::Value>) -> bool {
    value.contains_key("data") || value.contains_key("errors")
}

mod media;

#[cfg(test)]
mod tests;
