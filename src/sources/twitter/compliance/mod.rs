//! X compliance stream lines into `compliance` records.
//!
//! A line is `{"data": {"<event type>": {…}}}` (docs.x.com, "Compliance Data
//! Objects", and the OpenAPI schemas `PostComplianceData` /
//! `UserComplianceData`):
//!
//! - Post events (`/2/tweets/compliance/stream`): `delete`, `withheld`,
//!   `drop`, `undrop` with `{tweet: {id, author_id}, event_at}`, and
//!   `tweet_edit` with `{tweet: {id}, initial_tweet_id, edit_tweet_ids, event_at}`.
//! - User events (`/2/users/compliance/stream`): `user_delete`,
//!   `user_undelete`, `user_withheld`, `user_protect`, `user_unprotect`,
//!   `user_suspend`, `user_unsuspend`, `user_profile_modification` and
//!   `scrub_geo` (with `up_to_tweet_id`), each with `{user: {id}, event_at}`.
//!
//! The record: `kind = "compliance"`, `tags = [event type]`, `raw` = the
//! line, `created_at` = `event_at`, `author.id` = the post's author or the
//! user, `refs.tweet_id` = the affected post (post events). Its id is
//! `twitter:compliance:<event type>:<post id or user id>:<event_at>`: the
//! `compliance:` segment keeps it apart from every post id (`twitter:<digits>`),
//! and the event time lets a later event on the same post (drop, then undrop)
//! be its own record while a repeat of the same event (a reconnect,
//! `backfill_minutes`) gets the same id and is dropped as a duplicate.
//!
//! Ids and types are checked before they go into the record id: a post or
//! user id is 1–20 digits, an event type 1–64 of `[a-z0-9_]`, `event_at` an
//! RFC 3339 time. Anything else is not a compliance event (dead-lettered).
//! Event types X adds later pass through as long as they name a `tweet.id`
//! or a `user.id`.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::record::{
    Author, NormalizeError, NormalizeOptions, Normalized, Platform, Record, Refs, raw_value,
    rfc3339, trim_line,
};

pub use crate::record::compliance::{DELETE, KIND};

fn shape(reason: &'static str) -> NormalizeError {
    NormalizeError::Shape {
        platform: Platform::Twitter,
        reason,
    }
}

/// The one event of `data`: its type (checked) and its object.
fn the_event(data: &Map<String, Value>) -> Result<(&String, &Map<String, Value>), NormalizeError> {
    let mut events = data.iter();
    let (Some((event_type, event)), None) = (events.next(), events.next()) else {
        return Err(shape(
            "`data` of a compliance event holds exactly one event type",
        ));
    };
    if !valid_type(event_type) {
        return Err(shape("the event type is not 1-64 of [a-z0-9_]"));
    }
    let Value::Object(event) = event else {
        return Err(shape("a compliance event is an object"));
    };
    Ok((event_type, event))
}

/// Normalizes one compliance stream line (without or with its `\r\n`).
pub fn normalize_compliance_line(
    line: &[u8],
    received_at: &Arc<str>,
    opts: &NormalizeOptions,
) -> Result<Normalized, NormalizeError> {
    let line = trim_line(line);
    if line.is_empty() {
        return Ok(Normalized::Nothing);
    }
    let value: Value = serde_json::from_slice(line)?;
    let Value::Object(top) = value else {
        return Err(shape("a compliance line is a JSON object"));
    };
    let data = match top.get("data") {
        Some(Value::Object(data)) => data,
        Some(_) => return Err(shape("`data` of a compliance event is an object")),
        None if top.contains_key("errors") => {
            return Ok(Normalized::Control(raw_value(line)?));
        }
        None => return Err(shape("the line has neither `data` nor `errors`")),
    };
    let (event_type, event) = the_event(data)?;
    let event_at = event
        .get("event_at")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| rfc3339(t.with_timezone(&chrono::Utc)))
        .ok_or_else(|| shape("`event_at` is missing or not an RFC 3339 time"))?;
    let subject = Subject::of(event)?;
    // An unlike is tagged `like_delete`, never `delete`: it must not read as
    // the post's deletion (`Record::deleted_post`).
    let (tag, subject_id, author_id, tweet_id) = match subject {
        Subject::Post { id, author_id } => (event_type.clone(), id.clone(), author_id, Some(id)),
        Subject::User { id } => (event_type.clone(), id.clone(), Some(id), None),
        Subject::Like { tweet_id, user_id } => (
            format!("like_{event_type}"),
            format!("{tweet_id}:{user_id}"),
            Some(user_id),
            Some(tweet_id),
        ),
    };
    let record = Record {
        id: format!("twitter:compliance:{tag}:{subject_id}:{event_at}"),
        platform: Platform::Twitter,
        kind: Cow::Borrowed(KIND),
        text: None,
        text_ascii: None,
        created_at: Some(event_at),
        received_at: received_at.clone(),
        author: author_id.map(|id| Author {
            id,
            ..Author::default()
        }),
        chat: None,
        lang: None,
        source: None,
        matching_rules: Vec::new(),
        tags: vec![tag],
        hashtags: Vec::new(),
        refs: Refs {
            tweet_id,
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

/// What an event is about.
enum Subject {
    Post {
        id: String,
        author_id: Option<String>,
    },
    User {
        id: String,
    },
    /// A like (the likes compliance stream's `favorite`): the liked post and who liked it.
    Like {
        tweet_id: String,
        user_id: String,
    },
}

impl Subject {
    /// `tweet.id` (with `tweet.author_id`) for Post events, `user.id` for User events.
    fn of(event: &serde_json::Map<String, Value>) -> Result<Subject, NormalizeError> {
        let id_in = |key: &str, field: &str| -> Result<Option<String>, NormalizeError> {
            match event.get(key) {
                None => Ok(None),
                Some(Value::Object(o)) => match o.get(field) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) if valid_id(s) => Ok(Some(s.clone())),
                    Some(_) => Err(shape("an id in a compliance event is not 1-20 digits")),
                },
                Some(_) => Err(shape(
                    "`tweet`, `user` or `favorite` of a compliance event is not an object",
                )),
            }
        };
        if let Some(id) = id_in("tweet", "id")? {
            let author_id = id_in("tweet", "author_id")?;
            return Ok(Subject::Post { id, author_id });
        }
        if let Some(id) = id_in("user", "id")? {
            return Ok(Subject::User { id });
        }
        if let (Some(tweet_id), Some(user_id)) =
            (id_in("favorite", "id")?, id_in("favorite", "user_id")?)
        {
            return Ok(Subject::Like { tweet_id, user_id });
        }
        Err(shape(
            "a compliance event names neither `tweet.id`, `user.id` nor `favorite.id` with `favorite.user_id`",
        ))
    }
}

/// An X id: 1-20 ASCII digits (a u64).
fn valid_id(s: &str) -> bool {
    (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

fn valid_type(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests;
