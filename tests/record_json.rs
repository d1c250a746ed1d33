//! The hand-written JSON writer (`record::json`, behind `Record::write_line`)
//! against serde_json, over every field of the record: any strings (control
//! characters, quotes, backslashes, any Unicode), any numbers, every optional
//! field present or absent, any raw payload. A field the writer spells,
//! escapes or leaves out differently from serde fails here.

use std::borrow::Cow;
use std::sync::Arc;

use ingest::record::{
    Author, Chat, Format, MatchingRule, MediaItem, Platform, Record, Refs, RunInfo, StoredMedia,
};
use proptest::prelude::*;
use serde_json::Value;
use serde_json::value::RawValue;

/// Any string, weighted towards the bytes that need escapes.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\x00-\\x1f\"\\\\a-z\u{7f}\u{80}\u{2028}\u{2029}é😂]{0,24}",
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(text())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter_map("finite", serde_json::Number::from_f64)
            .prop_map(Value::Number),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A raw payload as it may arrive: compact or pretty, written by serde.
fn raw() -> impl Strategy<Value = Option<Box<RawValue>>> {
    prop::option::of((json_value(), any::<bool>()).prop_map(|(v, pretty)| {
        let s = if pretty {
            serde_json::to_string_pretty(&v).unwrap()
        } else {
            v.to_string()
        };
        RawValue::from_string(s).unwrap()
    }))
}

fn author() -> impl Strategy<Value = Option<Author>> {
    prop::option::of(
        (text(), opt_text(), opt_text()).prop_map(|(id, name, username)| Author {
            id,
            name,
            username,
        }),
    )
}

fn chat() -> impl Strategy<Value = Option<Chat>> {
    prop::option::of(
        (any::<i64>(), text(), opt_text()).prop_map(|(id, kind, title)| Chat { id, kind, title }),
    )
}

fn rules() -> impl Strategy<Value = Vec<MatchingRule>> {
    prop::collection::vec(
        (text(), opt_text()).prop_map(|(id, tag)| MatchingRule { id, tag }),
        0..3,
    )
}

fn refs() -> impl Strategy<Value = Refs> {
    (
        opt_text(),
        opt_text(),
        prop::option::of(any::<i64>()),
        prop::option::of(any::<i64>()),
    )
        .prop_map(|(tweet_id, conversation_id, update_id, message_id)| Refs {
            tweet_id,
            conversation_id,
            update_id,
            message_id,
        })
}

fn stored() -> impl Strategy<Value = Option<StoredMedia>> {
    prop::option::of((text(), text(), any::<u64>(), text()).prop_map(
        |(uri, sha256, bytes, content_type)| StoredMedia {
            uri,
            sha256,
            bytes,
            content_type,
        },
    ))
}

fn media() -> impl Strategy<Value = Vec<MediaItem>> {
    prop::collection::vec(
        (text(), text(), stored(), opt_text(), opt_text()).prop_map(
            |(kind, key, stored, skipped, error)| MediaItem {
                kind,
                key,
                stored,
                skipped,
                error,
                fetch: None,
            },
        ),
        0..3,
    )
}

fn run() -> impl Strategy<Value = Arc<RunInfo>> {
    (text(), text(), prop::option::of(any::<u64>())).prop_map(|(id, started_at, limit)| {
        Arc::new(RunInfo {
            id,
            started_at,
            time_limit_secs: limit,
        })
    })
}

prop_compose! {
    fn record()(
        (id, twitter, kind, text, text_ascii, created_at, received_at) in
            (text(), any::<bool>(), text(), opt_text(), opt_text(), opt_text(), text()),
        (author, chat, lang, source) in (author(), chat(), opt_text(), opt_text()),
        (matching_rules, tags, hashtags, refs, run, raw) in (
            rules(),
            prop::collection::vec(text(), 0..3),
            prop::collection::vec(text(), 0..3),
            refs(),
            run(),
            raw(),
        ),
        media in media(),
    ) -> Record {
        // A struct literal: a new Record field fails to compile here until
        // this test generates it.
        Record {
            id,
            platform: if twitter { Platform::Twitter } else { Platform::Telegram },
            kind: Cow::Owned(kind),
            text,
            text_ascii,
            created_at,
            received_at: Arc::from(received_at),
            author,
            chat,
            lang,
            source,
            matching_rules,
            tags,
            hashtags,
            refs,
            media,
            run,
            raw: raw.map(Into::into),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_json_writer_writes_every_field_as_serde_does(r in record()) {
        let mut ours = Vec::new();
        r.write_line(Format::Record, &mut ours);
        let theirs = serde_json::to_vec(&r).unwrap();
        let ours = ours.strip_suffix(b"\n").unwrap_or(&ours);
        prop_assert_eq!(String::from_utf8_lossy(ours), String::from_utf8_lossy(&theirs));
    }
}
