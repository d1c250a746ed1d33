//! Telegram Bot API: normalizing `Update` objects into records.
//!
//! An `Update` has an `update_id` and exactly one optional field naming its
//! type. The types that hold a `Message` (`message`, `edited_message`,
//! `channel_post`, `edited_channel_post`, `business_message`,
//! `edited_business_message`, `guest_message`) become full records; any other
//! type (`callback_query`, `message_reaction`, `chat_member`, … and types a
//! later Bot API adds) becomes a record whose `kind` is the type's name, with
//! whatever chat and sender it names and the payload in `raw`. Types the bot
//! did not ask for in `allowed_updates` are recorded like the others: the Bot
//! API may still deliver them (the setting does not apply to updates created
//! before the call), and an update received is never dropped.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::record::{
    Author, Chat, NormalizeError, NormalizeOptions, Normalized, Object, Platform, Record, Refs,
    hashtag_list, transliterate, trim_line, unix_to_rfc3339,
};

/// Update types whose payload is a `Message` (Bot API 10.1).
pub const MESSAGE_KINDS: [&str; 7] = [
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_message",
    "edited_business_message",
    "guest_message",
];

/// The message kinds that carry an edit of an earlier message.
const EDIT_KINDS: [&str; 3] = [
    "edited_message",
    "edited_channel_post",
    "edited_business_message",
];

#[derive(Deserialize)]
struct Message<'a> {
    message_id: i64,
    #[serde(default)]
    date: Option<i64>,
    #[serde(default)]
    edit_date: Option<i64>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    caption: Option<Cow<'a, str>>,
    /// Read only for hashtags, and leniently: a damaged list loses them, not the message.
    #[serde(borrow, default)]
    entities: Option<&'a RawValue>,
    #[serde(borrow, default)]
    caption_entities: Option<&'a RawValue>,
    #[serde(borrow, default)]
    from: Option<User<'a>>,
    #[serde(borrow, default)]
    sender_chat: Option<TgChat<'a>>,
    #[serde(borrow)]
    chat: Object<TgChat<'a>>,
}

/// A `MessageEntity`: `offset` and `length` count UTF-16 code units.
#[derive(Deserialize)]
struct Entity<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    offset: usize,
    length: usize,
}

/// The text of the `hashtag` entities of `text`; an entity outside the text
/// (a hostile or damaged update) is left out.
fn hashtags(text: &str, entities: Option<&RawValue>) -> Vec<String> {
    let Some(entities) = entities else {
        return Vec::new();
    };
    let entities: Vec<Entity<'_>> = serde_json::from_str(entities.get()).unwrap_or_default();
    if !entities.iter().any(|e| e.kind == "hashtag") {
        return Vec::new();
    }
    let units: Vec<u16> = text.encode_utf16().collect();
    let spans: Vec<String> = entities
        .iter()
        .filter(|e| e.kind == "hashtag")
        .filter_map(|e| units.get(e.offset..e.offset.checked_add(e.length)?))
        .map(String::from_utf16_lossy)
        .collect();
    hashtag_list(spans.iter().map(String::as_str))
}

/// The parts of any other update type that we can use.
#[derive(Deserialize)]
struct Other<'a> {
    #[serde(borrow, default)]
    from: Option<User<'a>>,
    #[serde(borrow, default)]
    chat: Option<TgChat<'a>>,
    #[serde(default)]
    date: Option<i64>,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct User<'a> {
    id: i64,
    #[serde(borrow, default)]
    first_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    last_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    username: Option<Cow<'a, str>>,
    /// The user's client language (IETF tag); the record's `lang` when this user wrote it.
    #[serde(borrow, default)]
    language_code: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct TgChat<'a> {
    id: i64,
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    title: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    username: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    first_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    last_name: Option<Cow<'a, str>>,
}

fn full_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    match (first, last) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(f), None) => Some(f.to_owned()),
        (None, Some(l)) => Some(l.to_owned()),
        (None, None) => None,
    }
}

impl User<'_> {
    fn lang(&self) -> Option<String> {
        self.language_code.as_deref().map(str::to_owned)
    }

    fn author(&self) -> Author {
        Author {
            id: self.id.to_string(),
            name: full_name(self.first_name.as_deref(), self.last_name.as_deref()),
            username: self.username.as_deref().map(str::to_owned),
        }
    }
}

impl TgChat<'_> {
    fn author(&self) -> Author {
        Author {
            id: self.id.to_string(),
            name: self
                .title
                .as_deref()
                .map(str::to_owned)
                .or_else(|| full_name(self.first_name.as_deref(), self.last_name.as_deref())),
            username: self.username.as_deref().map(str::to_owned),
        }
    }

    fn chat(&self) -> Chat {
        Chat {
            id: self.id,
            kind: self.kind.as_deref().unwrap_or("unknown").to_owned(),
            title: self
                .title
                .as_deref()
                .map(str::to_owned)
                .or_else(|| full_name(self.first_name.as_deref(), self.last_name.as_deref())),
        }
    }
}

/// The `update_id` of a Telegram update line, if it has one.
pub fn update_id(line: &[u8]) -> Option<i64> {
    #[derive(Deserialize)]
    struct Id {
        update_id: i64,
    }
    serde_json::from_slice::<Id>(trim_line(line))
        .ok()
        .map(|i| i.update_id)
}

/// Normalizes one Telegram `Update` object (one JSON line).
pub fn normalize_update(
    line: &[u8],
    received_at: &Arc<str>,
    opts: &NormalizeOptions,
) -> Result<Normalized, NormalizeError> {
    let line = trim_line(line);
    if line.is_empty() {
        return Ok(Normalized::Nothing);
    }
    let fields: BTreeMap<Cow<'_, str>, &RawValue> = serde_json::from_slice(line)?;
    let update_id = read_update_id(&fields)?;
    let (kind, payload) = payload_field(&fields)?;
    let raw = if opts.keep_raw {
        Some(crate::record::raw_json(line)?)
    } else {
        None
    };
    let mut record = Record {
        id: String::new(),
        platform: Platform::Telegram,
        kind: match MESSAGE_KINDS.iter().find(|k| **k == kind) {
            Some(k) => Cow::Borrowed(*k),
            None => Cow::Owned(kind.to_owned()),
        },
        text: None,
        text_ascii: None,
        created_at: None,
        received_at: received_at.clone(),
        author: None,
        chat: None,
        lang: None,
        source: None,
        matching_rules: Vec::new(),
        tags: Vec::new(),
        hashtags: Vec::new(),
        refs: Refs {
            update_id: Some(update_id),
            ..Refs::default()
        },
        media: Vec::new(),
        run: opts.run.clone(),
        raw,
    };
    if MESSAGE_KINDS.contains(&kind) {
        let edit = EDIT_KINDS.contains(&kind).then_some(update_id);
        fill_from_message(&mut record, payload, edit)?;
        if opts.media {
            record.media = media::media_items(payload.get());
        }
    } else {
        fill_from_other(&mut record, payload, update_id);
    }
    if opts.transliterate {
        record.text_ascii = record.text.as_deref().map(transliterate);
    }
    Ok(Normalized::Record(Box::new(record)))
}

type Fields<'a> = BTreeMap<Cow<'a, str>, &'a RawValue>;

/// The update's `update_id`, which every update has.
fn read_update_id(fields: &Fields<'_>) -> Result<i64, NormalizeError> {
    match fields.get("update_id") {
        Some(v) => Ok(serde_json::from_str(v.get())?),
        None => Err(NormalizeError::Shape {
            platform: Platform::Telegram,
            reason: "no `update_id`",
        }),
    }
}

/// The field naming the update's type, and its payload.
fn payload_field<'f, 'a>(
    fields: &'f Fields<'a>,
) -> Result<(&'f str, &'a RawValue), NormalizeError> {
    // Exactly one payload field is documented; prefer the message kinds should
    // a future API version add more top-level fields.
    MESSAGE_KINDS
        .iter()
        .find_map(|k| fields.get_key_value(*k))
        .or_else(|| fields.iter().find(|(k, _)| k.as_ref() != "update_id"))
        .map(|(kind, payload)| (kind.as_ref(), *payload))
        .ok_or(NormalizeError::Shape {
            platform: Platform::Telegram,
            reason: "the update carries no payload besides `update_id`",
        })
}

/// A message update: its id (with the edit date for an edit, or `u` and the
/// update id for an edit that carries none, so an edit never takes the id of
/// the message it edits), text, date, sender and chat. `edit` is the update
/// id when the update is an edit.
fn fill_from_message(
    record: &mut Record,
    payload: &RawValue,
    edit: Option<i64>,
) -> Result<(), NormalizeError> {
    let Object(msg): Object<Message<'_>> = serde_json::from_str(payload.get())?;
    let (chat, id) = (msg.chat.0.id, msg.message_id);
    record.id = match (msg.edit_date, edit) {
        (Some(date), _) => format!("telegram:{chat}:{id}:{date}"),
        (None, Some(update)) => format!("telegram:{chat}:{id}:u{update}"),
        (None, None) => format!("telegram:{chat}:{id}"),
    };
    let (text, entities) = match msg.text {
        Some(text) => (Some(text), msg.entities),
        None => (msg.caption, msg.caption_entities),
    };
    record.hashtags = text
        .as_deref()
        .map_or_else(Vec::new, |t| hashtags(t, entities));
    record.text = text.map(Cow::into_owned);
    record.created_at = msg.date.and_then(unix_to_rfc3339);
    record.author = match (&msg.from, &msg.sender_chat) {
        // A message sent on behalf of a chat names the chat in `sender_chat`;
        // `from` then holds a placeholder bot user.
        (_, Some(sender)) => Some(sender.author()),
        (Some(from), None) => Some(from.author()),
        (None, None) => None,
    };
    // Telegram gives no message language; the sender's `language_code` is the
    // nearest thing (not for posts on behalf of a chat: `from` is a placeholder).
    record.lang = match (&msg.from, &msg.sender_chat) {
        (Some(from), None) => from.lang(),
        _ => None,
    };
    record.chat = Some(msg.chat.0.chat());
    record.refs.message_id = Some(msg.message_id);
    Ok(())
}

/// Any other update type: its id from `update_id`, and, best effort, the
/// sender, chat, date and message it names.
fn fill_from_other(record: &mut Record, payload: &RawValue, update_id: i64) {
    record.id = format!("telegram:update:{update_id}");
    let Ok(other) = serde_json::from_str::<Other<'_>>(payload.get()) else {
        return;
    };
    record.author = other.from.as_ref().map(User::author);
    record.lang = other.from.as_ref().and_then(User::lang);
    record.created_at = other.date.and_then(unix_to_rfc3339);
    let nested: Option<Message<'_>> = other
        .message
        .and_then(|m| serde_json::from_str(m.get()).ok());
    record.chat = other
        .chat
        .as_ref()
        .or(nested.as_ref().map(|m| &m.chat.0))
        .map(TgChat::chat);
    record.refs.message_id = nested.map(|m| m.message_id);
}

mod media;

#[cfg(test)]
mod tests;
