//! The name sanitizers (`ingest::sinks::names`), one per target, under
//! hostile values: whatever a tag or an author id holds, a file path stays one
//! component, an S3 key shows what it is, a Kafka topic is legal and not one
//! of Kafka's own, a MongoDB collection is one MongoDB takes.

use chrono::TimeZone;
use chrono_tz::Tz;
use proptest::prelude::*;

use ingest::record::Record;
use ingest::sinks::names;
use ingest::sinks::template::{Ctx, MISSING, Target, Template};

/// Characters a hostile value likes: separators, dots and their look-alikes,
/// bidi controls, control characters, `$`, and plain letters.
const HOSTILE: &[char] = &[
    '/', '\\', '.', '$', '_', '-', 'a', 'Z', '0', ' ', '\0', '\n', '\u{7f}', '\u{202A}',
    '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
    '\u{200E}', '\u{200F}', '\u{061C}', '\u{200B}', '\u{FEFF}', '\u{2215}', '\u{2044}', '\u{FF0F}',
    '\u{29F8}', '\u{FF3C}', '\u{FF0E}', '\u{2024}', '\u{3002}', '\u{FE52}', '\u{FF61}', 'é', '𝕏',
];

fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(prop::sample::select(HOSTILE), 0..40)
            .prop_map(|cs| cs.into_iter().collect::<String>()),
        1 => prop::sample::select(vec![
            "__consumer_offsets", "__transaction_state", "_schemas", "_confluent-metrics",
            "_confluent_balancer_api_state", "__strimzi_store_topic", "_redpanda.audit_log",
            ".", "..", ".hidden", "end.", "system.users", "system", "a..b", "$cmd",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn render(template: &str, target: Target, tag: &str) -> String {
    let record: Record = serde_json::from_value(serde_json::json!({
        "id": "twitter:1", "platform": "twitter", "kind": "tweet",
        "author": {"id": tag}, "tags": [tag],
        "received_at": "2026-11-30T23:30:05.123Z",
        "run": {"id": "r", "started_at": "2026-11-30T23:00:00.000Z"},
    }))
    .unwrap();
    let at = chrono::Utc
        .with_ymd_and_hms(2026, 11, 30, 23, 30, 5)
        .unwrap()
        .with_timezone(&Tz::UTC);
    Template::compile(template, target)
        .unwrap()
        .render_owned(&Ctx {
            record: &record,
            tag: None,
            at: &at,
        })
}

/// What no file or S3 name part may hold.
fn check_path_part(part: &str) -> Result<(), TestCaseError> {
    prop_assert!(!part.is_empty());
    prop_assert!(part != "." && !part.contains(".."), "{part:?}");
    for c in part.chars() {
        prop_assert!(
            !names::is_slash_like(c)
                && !names::is_dot_like(c)
                && !names::is_invisible_control(c)
                && !c.is_control(),
            "{c:?} in {part:?}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn file_path_values_stay_one_plain_component(v in hostile_value()) {
        let mut out = String::new();
        names::path_value(&v, &mut out);
        check_path_part(&out)?;
        let path = render("out/{tag}/{author.id}.jsonl", Target::Path, &v);
        prop_assert_eq!(path.matches('/').count(), 2, "{:?}", path);
        let parts: Vec<&str> = path.split('/').collect();
        prop_assert_eq!(parts[0], "out");
        check_path_part(parts[1])?;
    }

    #[test]
    fn s3_key_values_stay_one_plain_component(v in hostile_value()) {
        let mut out = String::new();
        names::s3_value(&v, &mut out);
        check_path_part(&out)?;
        let key = render("raw/{tag}/{uuid}.jsonl", Target::S3Key, &v);
        prop_assert_eq!(key.matches('/').count(), 2, "{:?}", key);
        check_path_part(key.split('/').nth(1).unwrap())?;
    }

    #[test]
    fn kafka_topics_are_legal_and_never_kafkas_own(
        v in hostile_value(),
        template in prop::sample::select(vec!["{tag}", "{tag}.{author.id}", "_{tag}", "_{tag}-x", "x.{tag}"]),
    ) {
        let topic = render(template, Target::KafkaTopic, &v);
        prop_assert!(!topic.is_empty() && topic.len() <= names::MAX_TOPIC_BYTES, "{topic:?}");
        prop_assert!(topic != "." && topic != "..", "{topic:?}");
        prop_assert!(
            topic.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')),
            "{topic:?}"
        );
        prop_assert!(!topic.starts_with("__"), "{topic:?}");
        prop_assert!(!names::is_reserved_topic(&topic), "{topic:?}");
        prop_assert!(topic != "_schemas" && !topic.starts_with("_confluent"), "{topic:?}");
    }

    #[test]
    fn mongodb_collections_are_names_mongodb_takes(
        v in hostile_value(),
        template in prop::sample::select(vec!["{tag}", "{tag}.{author.id}", "c.{tag}", "{tag}.c", "c_{tag}"]),
    ) {
        let c = render(template, Target::Collection, &v);
        prop_assert!(!c.is_empty(), "{c:?}");
        prop_assert!(!c.starts_with('.') && !c.ends_with('.'), "{c:?}");
        prop_assert!(!c.contains("..") && !c.contains('$') && !c.contains('\0'), "{c:?}");
        prop_assert!(!c.starts_with("system."), "{c:?}");
    }
}

#[test]
fn reserved_topics_get_a_prefix_and_stay_apart() {
    for (tag, topic) in [
        ("__consumer_offsets", "_x__consumer_offsets"),
        ("__transaction_state", "_x__transaction_state"),
        ("_schemas", "_x_schemas"),
        ("_confluent-command", "_x_confluent-command"),
        ("_schemas2", "_schemas2"),
        ("_x_schemas", "_x_schemas"),
        ("news", "news"),
    ] {
        assert_eq!(render("{tag}", Target::KafkaTopic, tag), topic, "{tag}");
    }
    // A literal prefix that makes a reserved name with the value is caught too.
    assert_eq!(
        render("_{tag}", Target::KafkaTopic, "_consumer_offsets"),
        "_x__consumer_offsets"
    );
}

#[test]
fn bidi_controls_go_and_look_alikes_are_replaced_in_files_and_keys() {
    for target in [Target::Path, Target::S3Key] {
        assert_eq!(
            render("o/{tag}.jsonl", target, "cute\u{202E}gpj.exe"),
            "o/cutegpj.exe.jsonl"
        );
        assert_eq!(
            render("o/{tag}.jsonl", target, "..\u{2215}..\u{FF0F}etc"),
            "o/___.__etc.jsonl"
        );
        assert_eq!(
            render("o/{tag}.jsonl", target, "\u{FF0E}\u{FF0E}"),
            "o/__.jsonl"
        );
        assert_eq!(
            render("o/{tag}.jsonl", target, "\u{200F}"),
            format!("o/{MISSING}.jsonl")
        );
        assert_eq!(render("o/{tag}.jsonl", target, ".\u{2066}."), "o/__.jsonl");
    }
}

#[test]
fn collections_lose_edge_dots_and_double_dots() {
    for (tag, name) in [
        (".", "_"),
        ("..", "__"),
        (".hidden", "_hidden"),
        ("end.", "end_"),
        ("a..b", "a._b"),
        ("a.b", "a.b"),
        ("system.users", "_system.users"),
        ("$x", "_x"),
    ] {
        assert_eq!(render("{tag}", Target::Collection, tag), name, "{tag}");
    }
}
