use std::sync::Arc;

use chrono::TimeZone;

use super::*;
use crate::sinks::RecordResults;

fn record(json: &str) -> Record {
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
    let o = v.as_object_mut().unwrap();
    o.entry("received_at")
        .or_insert("2026-11-30T23:30:05.123Z".into());
    o.entry("run")
        .or_insert(serde_json::json!({"id": "r", "started_at": "2026-11-30T23:00:00.000Z"}));
    serde_json::from_value(v).unwrap()
}

fn tweet(tags: &[&str]) -> Record {
    record(
        &serde_json::json!({
            "id": "twitter:1", "platform": "twitter", "kind": "tweet",
            "author": {"id": "42"}, "tags": tags,
        })
        .to_string(),
    )
}

fn utc() -> DateTime<Tz> {
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 30, 23, 30, 5)
        .unwrap()
        .with_timezone(&Tz::UTC)
}

fn render(template: &str, target: Target, r: &Record, tag: Option<&str>) -> String {
    let t = Template::compile(template, target).unwrap();
    t.render_owned(&Ctx {
        record: r,
        tag,
        at: &utc(),
    })
}

#[test]
fn every_placeholder_renders() {
    let r = tweet(&["news", "sport"]);
    assert_eq!(
        render(
            "{platform}/{kind}/{tag}/{author.id}/{chat.id}/{id}/{date}/{hour}",
            Target::Key,
            &r,
            None
        ),
        "twitter/tweet/news/42/_unknown/twitter:1/2026-11-30/23"
    );
    assert_eq!(
        render("{tag}", Target::Key, &r, Some("sport")),
        "sport",
        "a copy renders its own tag"
    );
    let m = record(
        r#"{"id":"telegram:-100:5","platform":"telegram","kind":"channel_post","chat":{"id":-100,"type":"channel"}}"#,
    );
    assert_eq!(
        render(
            "{platform}.{chat.id}.{tag}.{author.id}",
            Target::KafkaTopic,
            &m,
            None
        ),
        "telegram.-100._unknown._unknown"
    );
}

#[test]
fn lang_renders_the_records_language_or_unknown() {
    let r = record(r#"{"id":"twitter:1","platform":"twitter","kind":"tweet","lang":"ja"}"#);
    assert_eq!(
        render("posts-{lang}", Target::KafkaTopic, &r, None),
        "posts-ja"
    );
    assert_eq!(render("{lang}/x", Target::Path, &r, None), "ja/x");
    let none = tweet(&[]);
    assert_eq!(render("{lang}", Target::Key, &none, None), MISSING);
}

#[test]
fn a_literal_is_a_template() {
    let t = Template::compile("partitionkey", Target::Key).unwrap();
    assert_eq!(t.literal(), Some("partitionkey"));
    assert!(t.platform_only());
    assert!(
        !Template::compile("a-{platform}", Target::Key)
            .unwrap()
            .uses_tag()
    );
    assert!(Template::compile("{id}", Target::Key).unwrap().is_id());
}

#[test]
fn unknown_and_misplaced_placeholders_are_refused_with_the_list() {
    let e = Template::compile("t-{platfrom}", Target::KafkaTopic).unwrap_err();
    assert!(
        e.contains("unknown placeholder `{platfrom}`") && e.contains("{chat.id}"),
        "{e}"
    );
    let e = Template::compile("t-{uuid}", Target::Path).unwrap_err();
    assert!(e.contains("only in an S3"), "{e}");
    assert!(
        Template::compile("{tag", Target::Key)
            .unwrap_err()
            .contains("unclosed")
    );
    assert!(
        Template::compile("", Target::Key)
            .unwrap_err()
            .contains("empty")
    );
    assert!(
        Template::compile("%Q", Target::Path)
            .unwrap_err()
            .contains("strftime")
    );
    // `%` is literal outside file paths.
    assert_eq!(render("100%", Target::Key, &tweet(&[]), None), "100%");
    assert_eq!(
        render("%Y/{tag}", Target::Path, &tweet(&[]), None),
        "2026/_unknown"
    );
}

#[test]
fn hostile_values_cannot_leave_their_path_component() {
    let long = "é".repeat(300);
    for (tag, path) in [
        ("../../etc/passwd", "out/___.__etc_passwd.jsonl"),
        ("../../escape", "out/___.__escape.jsonl"),
        ("..", "out/__.jsonl"),
        (".hidden", "out/_hidden.jsonl"),
        (".", "out/_.jsonl"),
        ("/abs", "out/_abs.jsonl"),
        ("a\\b", "out/a_b.jsonl"),
        ("nul\0x\n", "out/nul_x_.jsonl"),
        ("...", "out/__..jsonl"),
        ("ünï/cødé", "out/ünï_cødé.jsonl"),
    ] {
        let got = render("out/{tag}.jsonl", Target::Path, &tweet(&[tag]), None);
        assert_eq!(got, path, "{tag:?}");
        assert!(!got.contains("..") || got.ends_with("..jsonl"), "{got}");
        assert_eq!(got.matches('/').count(), 1, "{got}");
        assert!(
            !got["out/".len()..].starts_with('.'),
            "a hidden file: {got}"
        );
    }
    let got = render("{tag}", Target::S3Key, &tweet(&[&long]), None);
    assert!(
        got.len() <= MAX_VALUE_BYTES && got.starts_with('é'),
        "{}",
        got.len()
    );
    let got = render("{tag}", Target::S3Key, &tweet(&[""]), None);
    assert_eq!(got, MISSING);
}

#[test]
fn topic_names_keep_kafkas_charset_and_length() {
    for (tag, topic) in [
        ("news", "t.news"),
        ("a b/c", "t.a_b_c"),
        ("ünï", "t._n_"),
        ("..", "t.._"),
        ("x\0", "t.x_"),
    ] {
        let got = render("t.{tag}", Target::KafkaTopic, &tweet(&[tag]), None);
        assert_eq!(got, topic, "{tag:?}");
        crate::kafka::check_topic_name(&got).unwrap();
    }
    let lit = "t".repeat(200);
    let got = render(
        &format!("{lit}{{tag}}{{id}}"),
        Target::KafkaTopic,
        &tweet(&[&"x".repeat(200)]),
        None,
    );
    assert_eq!(got.len(), MAX_TOPIC_BYTES);
    crate::kafka::check_topic_name(&got).unwrap();
}

#[test]
fn collections_never_start_with_system_or_hold_dollars() {
    assert_eq!(
        render("{tag}", Target::Collection, &tweet(&["system.users"]), None),
        "_system.users"
    );
    assert_eq!(
        render("c_{tag}", Target::Collection, &tweet(&["$x\0"]), None),
        "c__x_"
    );
}

#[test]
fn s3_object_parts_are_filled_per_object() {
    let r = tweet(&[]);
    let t = Template::compile(
        "{platform}/context_date={date}/{timestamp_us}-{timestamp}-{uuid}.json",
        Target::S3Key,
    )
    .unwrap();
    assert!(t.uses_time() && t.has("uuid") && t.has("timestamp_us"));
    let part = t.render_owned(&Ctx {
        record: &r,
        tag: None,
        at: &utc(),
    });
    let at = chrono::Utc
        .with_ymd_and_hms(2026, 11, 30, 23, 30, 5)
        .unwrap()
        .with_timezone(&Tz::UTC)
        + chrono::Duration::microseconds(123_456);
    assert_eq!(
        fill_object(&part, &at, "U"),
        "twitter/context_date=2026-11-30/20261130233005123456-20261130T233005.123Z-U.json"
    );
    // A value cannot fake a mark: control characters are gone before.
    let r = tweet(&["\u{3}"]);
    let t = Template::compile("{tag}/{uuid}", Target::S3Key).unwrap();
    let part = t.render_owned(&Ctx {
        record: &r,
        tag: None,
        at: &utc(),
    });
    assert_eq!(fill_object(&part, &at, "U"), "_/U");
}

#[test]
fn split_tags_copies_and_merges_per_record() {
    let batch = vec![
        Arc::new(tweet(&["a", "b"])),
        Arc::new(tweet(&[])),
        Arc::new(tweet(&["c"])),
    ];
    let first: Vec<_> = copies(&batch, false).collect();
    assert_eq!(first, [(0, None), (1, None), (2, None)]);
    let split: Vec<_> = copies(&batch, true).collect();
    assert_eq!(
        split,
        [(0, Some("a")), (0, Some("b")), (1, None), (2, None)]
    );
    let mut out = RecordResults {
        failed: vec![0, 2, 0],
        rejected: vec![(2, "big".into()), (2, "big".into())],
        first: None,
    };
    merge_copies(&mut out);
    assert_eq!(out.failed, [0]);
    assert_eq!(out.rejected.len(), 1);
    let t = Template::compile("{platform}", Target::Key).unwrap();
    assert!(check_split_tags(true, &[&t]).is_err());
    assert!(check_split_tags(false, &[&t]).is_ok());
}
