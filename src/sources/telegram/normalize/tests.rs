use std::sync::Arc;

use super::*;
use crate::record::RunInfo;

fn record(line: &str) -> Record {
    let opts = NormalizeOptions::new(Arc::new(RunInfo::new(None)));
    match normalize_update(line.as_bytes(), &"2026-01-01T00:00:00.000Z".into(), &opts).unwrap() {
        Normalized::Record(r) => *r,
        other => panic!("expected a record, got {other:?}"),
    }
}

#[test]
fn private_text_message() {
    let line = r#"{"update_id":100,"message":{"message_id":7,"from":{"id":11,"is_bot":false,"first_name":"Ada","last_name":"Lovelace","username":"ada","language_code":"en"},"chat":{"id":11,"first_name":"Ada","last_name":"Lovelace","username":"ada","type":"private"},"date":1700000000,"text":"hi 👋"}}"#;
    let r = record(line);
    assert_eq!(r.id, "telegram:11:7");
    assert_eq!(r.kind, "message");
    assert_eq!(r.text.as_deref(), Some("hi 👋"));
    assert_eq!(r.created_at.as_deref(), Some("2023-11-14T22:13:20.000Z"));
    let a = r.author.as_ref().unwrap();
    assert_eq!(
        (a.id.as_str(), a.name.as_deref(), a.username.as_deref()),
        ("11", Some("Ada Lovelace"), Some("ada"))
    );
    assert_eq!(r.lang.as_deref(), Some("en"), "from.language_code");
    let c = r.chat.as_ref().unwrap();
    assert_eq!(
        (c.id, c.kind.as_str(), c.title.as_deref()),
        (11, "private", Some("Ada Lovelace"))
    );
    assert_eq!(r.refs.update_id, Some(100));
    assert_eq!(r.refs.message_id, Some(7));
    assert_eq!(r.raw.as_ref().unwrap().get(), line);
}

#[test]
fn caption_only_group_photo() {
    let r = record(
        r#"{"update_id":1,"message":{"message_id":3,"from":{"id":5,"is_bot":false,"first_name":"Bo"},"chat":{"id":-1001,"type":"supergroup","title":"Readers"},"date":1700000000,"photo":[{"file_id":"x","file_unique_id":"y","width":1,"height":1}],"caption":"look"}}"#,
    );
    assert_eq!(r.text.as_deref(), Some("look"));
    assert_eq!(r.chat.unwrap().title.as_deref(), Some("Readers"));
    assert_eq!(r.author.unwrap().name.as_deref(), Some("Bo"));
}

#[test]
fn channel_post_uses_sender_chat() {
    let r = record(
        r#"{"update_id":2,"channel_post":{"message_id":9,"sender_chat":{"id":-100777,"title":"News","type":"channel","username":"news"},"chat":{"id":-100777,"title":"News","type":"channel","username":"news"},"date":1700000001,"text":"שלום עולם"}}"#,
    );
    assert_eq!(r.kind, "channel_post");
    assert_eq!(r.id, "telegram:-100777:9");
    assert_eq!(r.text.as_deref(), Some("שלום עולם"));
    let a = r.author.unwrap();
    assert_eq!(
        (a.id.as_str(), a.name.as_deref()),
        ("-100777", Some("News"))
    );
    assert_eq!(r.chat.unwrap().kind, "channel");
    assert!(r.lang.is_none(), "no sender language for a channel post");
}

#[test]
fn edits_get_their_own_id() {
    let r = record(
        r#"{"update_id":3,"edited_message":{"message_id":7,"from":{"id":11,"is_bot":false,"first_name":"Ada"},"chat":{"id":11,"type":"private","first_name":"Ada"},"date":1700000000,"edit_date":1700000100,"text":"hi (edited)"}}"#,
    );
    assert_eq!(r.kind, "edited_message");
    assert_eq!(r.id, "telegram:11:7:1700000100");
    assert_eq!(r.created_at.as_deref(), Some("2023-11-14T22:13:20.000Z"));
    let r = record(
        r#"{"update_id":4,"edited_channel_post":{"message_id":9,"chat":{"id":-100777,"type":"channel","title":"News"},"date":1700000000,"edit_date":1700000200,"text":"x"}}"#,
    );
    assert_eq!(r.id, "telegram:-100777:9:1700000200");
}

#[test]
fn business_messages_keep_their_text_and_edits_without_a_date_their_own_id() {
    let r = record(
        r#"{"update_id":9,"business_message":{"message_id":4,"business_connection_id":"bc","from":{"id":11,"is_bot":false,"first_name":"Ada"},"chat":{"id":11,"type":"private","first_name":"Ada"},"date":1700000000,"text":"a quote, please"}}"#,
    );
    assert_eq!(r.kind, "business_message");
    assert_eq!(r.text.as_deref(), Some("a quote, please"));
    assert_eq!(r.id, "telegram:11:4");
    assert_eq!(r.author.unwrap().id, "11");
    let r = record(
        r#"{"update_id":10,"edited_business_message":{"message_id":4,"chat":{"id":11,"type":"private"},"date":1700000000,"edit_date":1700000050,"text":"a quote, please!"}}"#,
    );
    assert_eq!(r.kind, "edited_business_message");
    assert_eq!(r.text.as_deref(), Some("a quote, please!"));
    assert_eq!(r.id, "telegram:11:4:1700000050");
    // An edit without `edit_date` (a channel post's, say) must not take
    // the id of the post it edits: the update id keeps it apart.
    let r = record(
        r#"{"update_id":12,"edited_channel_post":{"message_id":9,"chat":{"id":-100777,"type":"channel","title":"News"},"date":1700000000,"text":"x"}}"#,
    );
    assert_eq!(r.id, "telegram:-100777:9:u12");
    let r = record(
        r#"{"update_id":13,"guest_message":{"message_id":2,"chat":{"id":5,"type":"private"},"date":1700000000,"text":"hello"}}"#,
    );
    assert_eq!(
        (r.kind.as_ref(), r.text.as_deref()),
        ("guest_message", Some("hello"))
    );
}

#[test]
fn other_update_types_keep_kind_and_raw() {
    let line = r#"{"update_id":5,"callback_query":{"id":"abc","from":{"id":11,"is_bot":false,"first_name":"Ada","language_code":"pt-br"},"chat_instance":"1","data":"btn","message":{"message_id":7,"chat":{"id":11,"type":"private"},"date":1700000000}}}"#;
    let r = record(line);
    assert_eq!(r.kind, "callback_query");
    assert_eq!(r.id, "telegram:update:5");
    assert_eq!(r.author.unwrap().id, "11");
    assert_eq!(r.lang.as_deref(), Some("pt-br"));
    assert_eq!(r.chat.unwrap().id, 11);
    assert_eq!(r.refs.message_id, Some(7));
    assert_eq!(r.raw.unwrap().get(), line);
    let r = record(r#"{"update_id":6,"poll":{"id":"p","question":"?","options":[]}}"#);
    assert_eq!(r.kind, "poll");
    assert!(r.author.is_none() && r.chat.is_none());
}

#[test]
fn long_text_unknown_fields_and_missing_optionals() {
    let long = "я".repeat(25_000);
    let line = serde_json::json!({"update_id": 8, "message": {"message_id": 1, "chat": {"id": 1, "type": "private"}, "text": long, "new_thing": {"a": 1}}, "extra": 1}).to_string();
    let r = record(&line);
    assert_eq!(r.text.unwrap().chars().count(), 25_000);
    assert!(r.created_at.is_none() && r.author.is_none());
}

#[test]
fn malformed_updates_are_errors() {
    let opts = NormalizeOptions::new(Arc::new(RunInfo::new(None)));
    for bad in [
        &br#"{"update_id":1}"#[..],
        br#"{"message":{"message_id":1,"chat":{"id":1,"type":"private"}}}"#,
        br#"{"update_id":"x","message":{}}"#,
        br#"{"update_id":1,"message":{"chat":{"id":1}}}"#,
        br#"{"update_id":1,"message":{"message_id":1,"chat":{"id":1,"type":"private"},"text":"cut"#,
        b"\xff\xfe\x00",
        // The positional form serde takes for structs is not an update (as
        // proptests::x_normalizer_never_panics_on_arbitrary_json found for X).
        br#"{"update_id":1,"message":[7,null,null,null,null,null,null,{"id":1}]}"#,
        br#"{"update_id":1,"message":{"message_id":7,"chat":[1]}}"#,
    ] {
        assert!(
            normalize_update(bad, &"".into(), &opts).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(matches!(
        normalize_update(b"  \r\n", &"".into(), &opts).unwrap(),
        Normalized::Nothing
    ));
}

#[test]
fn the_payload_field_prefers_message_kinds() {
    let fields: Fields<'_> =
        serde_json::from_str(r#"{"update_id":1,"a_new_field":{},"message":{"m":1}}"#).unwrap();
    assert_eq!(read_update_id(&fields).unwrap(), 1);
    let (kind, payload) = payload_field(&fields).unwrap();
    assert_eq!((kind, payload.get()), ("message", r#"{"m":1}"#));
    let fields: Fields<'_> = serde_json::from_str(r#"{"update_id":1,"poll":{}}"#).unwrap();
    assert_eq!(payload_field(&fields).unwrap().0, "poll");
    let fields: Fields<'_> = serde_json::from_str(r#"{"update_id":1}"#).unwrap();
    assert!(payload_field(&fields).is_err());
    let fields: Fields<'_> = serde_json::from_str(r#"{"poll":{}}"#).unwrap();
    assert!(read_update_id(&fields).is_err());
}

/// `hashtag` entities (offsets in UTF-16 code units) become `hashtags`, from
/// `caption_entities` for a caption; an entity outside the text or a damaged
/// list gives none and loses nothing else.
#[test]
fn hashtags_come_from_hashtag_entities() {
    // "😂" is two UTF-16 units: "#F1" starts at unit 3.
    let r = record(
        r##"{"update_id":1,"message":{"message_id":1,"chat":{"id":5,"type":"group","title":"g"},"date":1700000000,"text":"😂 #F1 #Ⓡust @ada","entities":[{"type":"hashtag","offset":3,"length":3},{"type":"hashtag","offset":7,"length":5},{"type":"mention","offset":13,"length":4}]}}"##,
    );
    assert_eq!(r.hashtags, ["F1", "Ⓡust"]);
    let caption = record(
        r##"{"update_id":2,"message":{"message_id":2,"chat":{"id":5,"type":"group","title":"g"},"date":1700000000,"photo":[],"caption":"pic #cats","caption_entities":[{"type":"hashtag","offset":4,"length":5}]}}"##,
    );
    assert_eq!(caption.hashtags, ["cats"]);
    for entities in [
        r#"[{"type":"hashtag","offset":90,"length":3}]"#,
        r#"[{"type":"hashtag","offset":18446744073709551615,"length":2}]"#,
        r#""damaged""#,
        r#"[{"type":"hashtag"}]"#,
    ] {
        let r = record(&format!(
            r##"{{"update_id":3,"message":{{"message_id":3,"chat":{{"id":5,"type":"group","title":"g"}},"date":1700000000,"text":"#x","entities":{entities}}}}}"##
        ));
        assert!(r.hashtags.is_empty(), "{entities}");
        assert_eq!(r.text.as_deref(), Some("#x"));
    }
}
