//! Routing by record fields (README, "Routing"): name templates in every
//! sink, `split_tags`, sanitized values, Kafka `format = "text"` and the
//! Telegram seed's S3 layout, against the real local servers (`scripts/test`)
//! and read back with independent clients (kcat, boto3).

use std::collections::{BTreeMap, BTreeSet};

mod common;
use common::*;

use serde_json::Value;

/// X stream lines: tweet `i` matches rules tagged `tags(i)`; author `i % 2`.
fn tagged_tweets(n: u64, tags: impl Fn(u64) -> Vec<String>) -> String {
    let mut out = String::new();
    for i in 0..n {
        let rules: Vec<Value> = tags(i)
            .into_iter()
            .enumerate()
            .map(|(k, t)| serde_json::json!({"id": k.to_string(), "tag": t}))
            .collect();
        let line = serde_json::json!({
            "data": {"id": i.to_string(), "text": format!("text {i} ☕"), "author_id": (i % 2).to_string()},
            "matching_rules": rules,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// Tweet `i` is tagged `news` (even) or `sport` (odd); every third also `both`-ed
/// with the other tag second.
fn news_sport(i: u64) -> Vec<String> {
    let first = if i % 2 == 0 { "news" } else { "sport" };
    let mut tags = vec![first.to_owned()];
    if i % 3 == 0 {
        tags.push(if first == "news" { "sport" } else { "news" }.to_owned());
    }
    tags
}

#[cfg(feature = "kafka")]
mod kafka {
    use super::*;

    fn ids_of(messages: &[Message]) -> BTreeSet<String> {
        messages.iter().map(|m| m.key.clone()).collect()
    }

    #[test]
    fn kafka_records_split_by_tag_into_topics_first_tag_or_every_tag() {
        let b = service("INGEST_TEST_KAFKA_BROKERS");
        let p = unique("route", '-');
        let config = format!(
            r#"
[sinks.first]
type = "kafka"
brokers = "{b}"
topic = "{p}-first-{{tag}}"

[sinks.every]
type = "kafka"
brokers = "{b}"
topic = "{p}-every-{{tag}}"
key = "{{author.id}}/{{id}}"
split_tags = true
"#
        );
        let env = Env::new().config(&config);
        std::fs::write(env.path("in.jsonl"), tagged_tweets(30, news_sport)).unwrap();
        let out = env.run(&[
            "replay",
            "in.jsonl",
            "--sink",
            "first",
            "--sink",
            "every",
            "--summary",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let s = summary(&out);
        assert_eq!(s["sinks"]["first"]["delivered"], 30, "{s}");
        assert_eq!(
            s["sinks"]["every"]["delivered"], 30,
            "records, not copies: {s}"
        );

        let want = |f: &dyn Fn(&[String]) -> bool| -> BTreeSet<String> {
            (0..30)
                .filter(|&i| f(&news_sport(i)))
                .map(|i| format!("twitter:{i}"))
                .collect()
        };
        // Without split_tags: the first tag decides.
        let news = kcat_read(&b, &format!("{p}-first-news"), 15);
        let sport = kcat_read(&b, &format!("{p}-first-sport"), 15);
        assert_eq!(ids_of(&news), want(&|t| t[0] == "news"));
        assert_eq!(ids_of(&sport), want(&|t| t[0] == "sport"));
        assert_eq!(news.len() + sport.len(), 30, "each record once");
        // With split_tags: once per tag; the key template renders per copy.
        let news = kcat_read(&b, &format!("{p}-every-news"), 20);
        let sport = kcat_read(&b, &format!("{p}-every-sport"), 20);
        let keyed = |ms: &[Message]| -> BTreeSet<String> {
            ms.iter()
                .map(|m| {
                    let r: Value = serde_json::from_str(&m.payload).unwrap();
                    let id = r["id"].as_str().unwrap().to_owned();
                    assert_eq!(
                        m.key,
                        format!("{}/{id}", r["author"]["id"].as_str().unwrap())
                    );
                    id
                })
                .collect()
        };
        assert_eq!(keyed(&news), want(&|t| t.iter().any(|t| t == "news")));
        assert_eq!(keyed(&sport), want(&|t| t.iter().any(|t| t == "sport")));
        assert_eq!(
            news.len() + sport.len(),
            40,
            "30 records, 10 of them with two tags"
        );
    }

    #[test]
    fn kafka_text_value_is_the_post_text_alone() {
        let b = service("INGEST_TEST_KAFKA_BROKERS");
        let t = unique("twitter-topic", '-');
        let config = format!(
            "[sinks.k]\ntype = \"kafka\"\nbrokers = \"{b}\"\ntopic = \"{t}\"\nvalue = \"text\"\n"
        );
        let env = Env::new().config(&config);
        std::fs::write(env.path("in.jsonl"), tagged_tweets(5, |_| vec![])).unwrap();
        let out = env.run(&["replay", "in.jsonl", "--sink", "k"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let got: BTreeMap<String, String> = kcat_read(&b, &t, 5)
            .into_iter()
            .map(|m| (m.key, m.payload))
            .collect();
        let want: BTreeMap<String, String> = (0..5)
            .map(|i| (format!("twitter:{i}"), format!("text {i} ☕")))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn kafka_bad_templates_are_refused_with_the_line() {
        let env = Env::new().config("[sinks.k]\ntype = \"kafka\"\n\ntopic = \"t-{tags}\"\n");
        let out = env.run(&["replay", "-", "--sink", "k"]);
        assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
        let e = stderr(&out);
        assert!(
            e.contains("line 4") && e.contains("{tags}") && e.contains("{tag}"),
            "{e}"
        );
        let env = Env::new().config("[sinks.k]\ntype = \"kafka\"\nsplit_tags = true\n");
        let out = env.run(&["replay", "-", "--sink", "k"]);
        assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
        assert!(stderr(&out).contains("split_tags"), "{}", stderr(&out));
    }
}
