use std::sync::Arc;

use super::*;
use crate::record::RunInfo;

fn opts() -> NormalizeOptions {
    NormalizeOptions::new(Arc::new(RunInfo::new(Some(60))))
}

fn record(line: &str) -> Record {
    match normalize_line(line.as_bytes(), &"2026-01-01T00:00:00.000Z".into(), &opts()).unwrap() {
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

/// The stream's path: `raw` is the line's own bytes (a slice of the chunk
/// it was read in, `\r\n` trimmed), equal to what the copying path keeps.
#[test]
fn a_shared_line_keeps_raw_as_a_slice_of_its_bytes() {
    let chunk = bytes::Bytes::from(format!("{FULL}\r\n"));
    let at: Arc<str> = "2026-01-01T00:00:00.000Z".into();
    let Normalized::Record(shared) = normalize_shared_line(&chunk, &at, &opts()).unwrap() else {
        panic!("a record")
    };
    let raw = shared.raw.as_ref().unwrap();
    assert_eq!(raw.get(), FULL);
    assert_eq!(raw.bytes().as_ptr(), chunk.as_ptr(), "no copy of the line");
    assert_eq!(shared.raw, record(FULL).raw);
    let mut no_raw = opts();
    no_raw.keep_raw = false;
    let Normalized::Record(bare) = normalize_shared_line(&chunk, &at, &no_raw).unwrap() else {
        panic!("a record")
    };
    assert!(bare.raw.is_none());
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
    assert!(r.text.is_none() && r.author.is_none() && r.created_at.is_none() && r.lang.is_none());
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
    assert!(matches!(control(line, true), Ok(Normalized::Control(_))));
    assert!(matches!(
        control(line, false),
        Err(NormalizeError::Shape { .. })
    ));
}

#[test]
fn an_untagged_rule_adds_no_empty_tag_and_a_shared_tag_comes_once() {
    let r = record(
        r#"{"data":{"id":"1","text":"t"},"matching_rules":[{"id":"1","tag":""},{"id":"2","tag":"pets"},{"id":"3","tag":"pets"},{"id":"4"}]}"#,
    );
    assert_eq!(r.tags, ["pets"]);
    assert_eq!(r.matching_rules.len(), 4, "every rule is still listed");
    let r = record(r#"{"data":{"id":"1","text":"t"},"matching_rules":[{"id":"1","tag":""}]}"#);
    assert!(r.tags.is_empty(), "{:?}", r.tags);
}

/// `entities.hashtags[].tag` (2.167's `PostEntities`) become `hashtags`; a
/// long post's come from its note; a null list, an absent one or a damaged
/// `entities` gives none and loses nothing else.
#[test]
fn hashtags_come_from_the_entities() {
    let r = record(
        r##"{"data":{"id":"1","text":"go #F1 #f1 #Rust","entities":{"hashtags":[{"start":3,"end":6,"tag":"F1"},{"start":7,"end":10,"tag":"f1"},{"start":11,"end":16,"tag":"Rust"}],"urls":[{"start":0,"end":1}]}}}"##,
    );
    assert_eq!(r.hashtags, ["F1", "Rust"]);
    let long = record(
        r##"{"data":{"id":"2","text":"cut #a","entities":{"hashtags":[{"start":4,"end":6,"tag":"a"}]},"note_tweet":{"text":"full #a #b","entities":{"hashtags":[{"start":5,"end":7,"tag":"a"},{"start":8,"end":10,"tag":"b"}]}}}}"##,
    );
    assert_eq!(long.hashtags, ["a", "b"]);
    for entities in [
        r#"{"hashtags":null}"#,
        r#"{}"#,
        r#""not an object""#,
        r#"{"hashtags":[{"start":0}]}"#,
    ] {
        let r = record(&format!(
            r#"{{"data":{{"id":"3","text":"x","lang":"en","entities":{entities}}}}}"#
        ));
        assert!(r.hashtags.is_empty(), "{entities}");
        assert_eq!(r.lang.as_deref(), Some("en"), "{entities}");
    }
}
