use super::*;
use crate::record::RunInfo;

fn opts() -> NormalizeOptions {
    NormalizeOptions::new(Arc::new(RunInfo::new(None)))
}

fn record(line: &str) -> Record {
    match normalize_compliance_line(line.as_bytes(), &"now".into(), &opts()).unwrap() {
        Normalized::Record(r) => *r,
        other => panic!("expected a record, got {other:?}"),
    }
}

fn error(line: &[u8]) -> String {
    match normalize_compliance_line(line, &"now".into(), &opts()) {
        Err(e) => e.to_string(),
        Ok(other) => panic!(
            "expected an error for {:?}, got {other:?}",
            String::from_utf8_lossy(line)
        ),
    }
}

/// The delete example of X's "Compliance Data Objects" page.
const DELETE_LINE: &str = r#"{"data":{"delete":{"tweet":{"id":"601430178305220608","author_id":"3198576760"},"event_at":"2022-12-23T12:34:56.789Z"}}}"#;

#[test]
fn a_delete_event_becomes_a_compliance_record() {
    let r = record(DELETE_LINE);
    assert_eq!(
        r.id,
        "twitter:compliance:delete:601430178305220608:2022-12-23T12:34:56.789Z"
    );
    assert_eq!(r.kind, "compliance");
    assert_eq!(r.tags, vec!["delete"]);
    assert_eq!(r.refs.tweet_id.as_deref(), Some("601430178305220608"));
    assert_eq!(r.author.as_ref().unwrap().id, "3198576760");
    assert_eq!(r.created_at.as_deref(), Some("2022-12-23T12:34:56.789Z"));
    assert_eq!(r.raw.as_ref().unwrap().get(), DELETE_LINE);
    assert!(r.matching_rules.is_empty() && r.text.is_none());
    assert_eq!(r.deleted_post(), Some("601430178305220608"));
}

#[test]
fn every_documented_event_shape_normalizes() {
    let at = r#""event_at":"2021-07-06T18:40:40.000Z""#;
    let post = r#""tweet":{"id":"1","author_id":"2"}"#;
    for (line, id, tweet) in [
        (
            format!(r#"{{"data":{{"withheld":{{{post},"withheld_in_countries":["DE"],{at}}}}}}}"#),
            "twitter:compliance:withheld:1:2021-07-06T18:40:40.000Z",
            Some("1"),
        ),
        (
            format!(r#"{{"data":{{"drop":{{{post},{at}}}}}}}"#),
            "twitter:compliance:drop:1:2021-07-06T18:40:40.000Z",
            Some("1"),
        ),
        (
            format!(r#"{{"data":{{"undrop":{{{post},{at}}}}}}}"#),
            "twitter:compliance:undrop:1:2021-07-06T18:40:40.000Z",
            Some("1"),
        ),
        (
            format!(
                r#"{{"data":{{"tweet_edit":{{"tweet":{{"id":"9"}},"initial_tweet_id":"1","edit_tweet_ids":["1","9"],{at}}}}}}}"#
            ),
            "twitter:compliance:tweet_edit:9:2021-07-06T18:40:40.000Z",
            Some("9"),
        ),
        (
            format!(r#"{{"data":{{"user_delete":{{"user":{{"id":"7"}},{at}}}}}}}"#),
            "twitter:compliance:user_delete:7:2021-07-06T18:40:40.000Z",
            None,
        ),
        (
            format!(
                r#"{{"data":{{"scrub_geo":{{"user":{{"id":"7"}},"up_to_tweet_id":"5",{at}}}}}}}"#
            ),
            "twitter:compliance:scrub_geo:7:2021-07-06T18:40:40.000Z",
            None,
        ),
        (
            format!(
                r#"{{"data":{{"user_withheld":{{"user":{{"id":"7"}},"withheld_in_countries":["TR"],{at}}}}}}}"#
            ),
            "twitter:compliance:user_withheld:7:2021-07-06T18:40:40.000Z",
            None,
        ),
    ] {
        let r = record(&line);
        assert_eq!(r.id, id);
        assert_eq!(r.refs.tweet_id.as_deref(), tweet, "{line}");
        assert!(r.deleted_post().is_none(), "only `delete` deletes");
    }
}

#[test]
fn ids_never_collide_with_posts_and_repeats_share_an_id() {
    let r = record(DELETE_LINE);
    assert!(!r.id["twitter:".len()..].bytes().all(|b| b.is_ascii_digit()));
    // The same event again (backfill) is the same record; the time zone is normalized.
    let again = DELETE_LINE.replace("12:34:56.789Z", "13:34:56.789+01:00");
    assert_eq!(record(&again).id, r.id);
}

#[test]
fn errors_lines_are_control_and_blank_lines_nothing() {
    let o = opts();
    assert!(matches!(
        normalize_compliance_line(
            br#"{"errors":[{"title":"operational-disconnect"}]}"#,
            &"".into(),
            &o
        )
        .unwrap(),
        Normalized::Control(_)
    ));
    assert!(matches!(
        normalize_compliance_line(b"\r\n", &"".into(), &o).unwrap(),
        Normalized::Nothing
    ));
}

#[test]
fn hostile_and_malformed_events_are_errors() {
    for (bad, why) in [
            (&b"not json"[..], "invalid JSON"),
            (b"[1]", "JSON object"),
            (b"{}", "neither"),
            (br#"{"data":[]}"#, "is an object"),
            (br#"{"data":{}}"#, "exactly one"),
            (br#"{"data":{"delete":{"tweet":{"id":"1"},"event_at":"2021-07-06T18:40:40Z"},"drop":{"tweet":{"id":"1"},"event_at":"2021-07-06T18:40:40Z"}}}"#, "exactly one"),
            (br#"{"data":{"delete":"x"}}"#, "is an object"),
            (br#"{"data":{"delete":{"tweet":{"id":"1"}}}}"#, "event_at"),
            (br#"{"data":{"delete":{"tweet":{"id":"1"},"event_at":"yesterday"}}}"#, "event_at"),
            (br#"{"data":{"delete":{"tweet":{"id":"1:2"},"event_at":"2021-07-06T18:40:40Z"}}}"#, "digits"),
            (br#"{"data":{"delete":{"tweet":{"id":"../../x"},"event_at":"2021-07-06T18:40:40Z"}}}"#, "digits"),
            (br#"{"data":{"delete":{"tweet":{"id":123},"event_at":"2021-07-06T18:40:40Z"}}}"#, "digits"),
            (br#"{"data":{"delete":{"tweet":{"id":"123456789012345678901"},"event_at":"2021-07-06T18:40:40Z"}}}"#, "digits"),
            (br#"{"data":{"delete":{"tweet":"1","event_at":"2021-07-06T18:40:40Z"}}}"#, "not an object"),
            (br#"{"data":{"delete":{"event_at":"2021-07-06T18:40:40Z"}}}"#, "neither"),
            (br#"{"data":{"Delete:all":{"tweet":{"id":"1"},"event_at":"2021-07-06T18:40:40Z"}}}"#, "event type"),
            (br#"{"data":{"delete":{"tweet":{"id":"1"},"event_at":"2021-07-06T18:40:40Z"}}"#, "invalid JSON"),
            (b"{\"data\":{\"delete\":{\"tweet\":{\"id\":\"1\"},\"event_at\":\"\xff\"}}}", "invalid JSON"),
        ] {
            let e = error(bad);
            assert!(e.contains(why), "{:?}: {e}", String::from_utf8_lossy(bad));
        }
}

#[test]
fn a_future_event_type_passes_through() {
    let r = record(
        r#"{"data":{"tweet_label":{"tweet":{"id":"3","author_id":"4"},"event_at":"2024-01-01T00:00:00Z"}}}"#,
    );
    assert_eq!(r.tags, vec!["tweet_label"]);
    assert_eq!(r.created_at.as_deref(), Some("2024-01-01T00:00:00.000Z"));
}

#[test]
fn an_unlike_is_a_like_delete_and_never_the_posts_deletion() {
    let r = record(
        r#"{"data":{"delete":{"favorite":{"id":"1600000000000000007","user_id":"1001"},"event_at":"2026-01-01T00:00:07.000Z"}}}"#,
    );
    assert_eq!(
        r.id,
        "twitter:compliance:like_delete:1600000000000000007:1001:2026-01-01T00:00:07.000Z"
    );
    assert_eq!(r.tags, ["like_delete"]);
    assert_eq!(r.refs.tweet_id.as_deref(), Some("1600000000000000007"));
    assert_eq!(r.author.as_ref().map(|a| a.id.as_str()), Some("1001"));
    assert_eq!(r.deleted_post(), None, "an unlike deletes no post");
}
