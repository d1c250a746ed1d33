//! The `mongodb` sink against a local MongoDB-wire server (nx-27017), read
//! back with pymongo. Run through `scripts/test`, which starts the server and
//! exports its address.
#![cfg(feature = "mongodb")]

mod common;
use common::*;

use serde_json::Value;

const READ: &str = r#"
import sys, json, datetime
from pymongo import MongoClient
c = MongoClient(sys.argv[1], serverSelectionTimeoutMS=5000)[sys.argv[2]][sys.argv[3]]
docs = list(c.find({}))
dates = sum(isinstance(d.get("ingested_at"), datetime.datetime) for d in docs)
times = {f: sum(isinstance(d.get(f), datetime.datetime) for d in docs) for f in ("created_at", "received_at")}
print(json.dumps({"count": c.count_documents({}), "docs": docs, "dates": dates, "times": times,
                  "indexes": list(c.index_information().values())}, default=str))
"#;

fn tweet(i: usize) -> String {
    format!(
        r#"{{"data":{{"id":"{i}","text":"hi {i} — ünïcödé","author_id":"1","created_at":"2026-12-01T10:00:00.000Z"}}}}"#
    )
}

fn write_input(env: &Env, range: std::ops::Range<usize>) -> String {
    let path = env.path("in.jsonl");
    let text: String = range.map(|i| tweet(i) + "\n").collect();
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn config(collection: &str, uri_line: &str, extra: &str) -> String {
    format!(
        r#"
[sinks.docs]
type = "mongodb"
{uri_line}
database = "ingest_test"
collection = "{collection}"
{extra}

[sinks.docs.batch]
max_records = 250
"#
    )
}

fn read(collection: &str) -> Value {
    py(
        READ,
        &[
            &service("INGEST_TEST_MONGODB_URI"),
            "ingest_test",
            collection,
        ],
    )
}

#[test]
fn mongodb_replaying_the_same_input_twice_never_duplicates() {
    let uri = service("INGEST_TEST_MONGODB_URI");
    let collection = unique("replay", '_');
    let env = Env::new().with("RUST_LOG", "warn").config(&config(
        &collection,
        &format!("uri = \"{uri}\""),
        "",
    ));
    let input = write_input(&env, 0..1000);
    for run in 0..2 {
        let out = env.run(&["replay", &input, "--sink", "docs", "--summary"]);
        assert!(out.status.success(), "run {run}: {}", stderr(&out));
        assert_eq!(summary(&out)["sinks"]["docs"]["delivered"], 1000);
    }
    // A third run overlapping the first two and adding new ones.
    let input = write_input(&env, 900..1100);
    let out = env.run(&["replay", &input, "--sink", "docs"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = read(&collection);
    assert_eq!(got["count"], 1100, "no duplicates");
    let docs = got["docs"].as_array().unwrap();
    assert_eq!(docs.len(), 1100);
    // Times are BSON dates (pymongo reads them as datetime), not strings.
    assert_eq!(got["times"]["created_at"], 1100, "{}", got["times"]);
    assert_eq!(got["times"]["received_at"], 1100, "{}", got["times"]);
    for d in docs {
        assert_eq!(d["_id"], d["id"]);
        let i: usize = d["id"].as_str().unwrap()["twitter:".len()..]
            .parse()
            .unwrap();
        assert_eq!(d["platform"], "twitter");
        assert_eq!(d["text"], format!("hi {i} — ünïcödé"));
        assert_eq!(d["raw"]["data"]["id"], i.to_string());
    }
}

#[test]
fn mongodb_uri_from_the_environment_raw_format_and_ttl_index() {
    let uri = service("INGEST_TEST_MONGODB_URI");
    let collection = unique("raw", '_');
    let env = Env::new()
        .with("RUST_LOG", "warn")
        .with("TEST_MONGO_HOSTPORT", uri.trim_start_matches("mongodb://"))
        .config(&config(
            &collection,
            "uri = \"mongodb://${TEST_MONGO_HOSTPORT}\"",
            "format = \"raw\"\nttl_seconds = 3600",
        ));
    let input = write_input(&env, 0..10);
    let out = env.run(&["replay", &input, "--sink", "docs", "--summary"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = read(&collection);
    assert_eq!(got["count"], 10);
    for d in got["docs"].as_array().unwrap() {
        let id = d["data"]["id"].as_str().unwrap();
        assert_eq!(d["_id"], format!("twitter:{id}"));
        assert!(d.get("platform").is_none(), "raw payload only: {d}");
        assert!(d["ingested_at"].is_string(), "the TTL date: {d}");
    }
    assert_eq!(
        got["dates"], 10,
        "ingested_at is a BSON date, which a TTL index needs"
    );
    let indexes = got["indexes"].to_string();
    assert!(
        indexes.contains("ingested_at") && indexes.contains("expireAfterSeconds"),
        "{indexes}"
    );
}

#[test]
fn mongodb_missing_uri_variable_is_a_config_error_that_shows_no_secret() {
    let collection = unique("nouri", '_');
    let env = Env::new().config(&config(
        &collection,
        "uri = \"mongodb://admin:${INGEST_TEST_UNSET_PASSWORD}@127.0.0.1:1\"",
        "",
    ));
    let input = write_input(&env, 0..1);
    let out = env.run(&["replay", &input, "--sink", "docs"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`INGEST_TEST_UNSET_PASSWORD` used in `uri` is not set"),
        "{}",
        stderr(&out)
    );
    // uri_env: the whole string from a variable; the password never shows.
    let env = Env::new()
        .with("RUST_LOG", "debug")
        .with(
            "TEST_MONGO_URI",
            "mongodb://admin:hunter2secret@127.0.0.1:1/",
        )
        .config(&config(
            &collection,
            "uri_env = \"TEST_MONGO_URI\"",
            // Away at the start: the run waits and retries, then dead-letters.
            "server_selection_timeout_ms = 300\n[sinks.docs.retry]\nmax_attempts = 2\ninitial_backoff_ms = 10",
        ));
    let out = env.run(&["replay", &input, "--sink", "docs"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("cannot reach MongoDB"), "{err}");
    assert!(!err.contains("hunter2secret"), "{err}");
}

#[test]
fn mongodb_a_document_the_server_refuses_is_dead_lettered_alone() {
    let uri = service("INGEST_TEST_MONGODB_URI");
    let collection = unique("refused", '_');
    let env = Env::new().with("RUST_LOG", "warn").config(&config(
        &collection,
        &format!("uri = \"{uri}\""),
        "format = \"raw\"",
    ));
    // A raw payload with a top-level `$` key is no valid replacement document.
    let lines = [
        r#"{"data":{"id":"1","text":"ok"}}"#,
        r#"{"data":{"id":"2","text":"refused"},"$set":{"x":1}}"#,
        r#"{"data":{"id":"3","text":"ok"}}"#,
    ];
    let input = env.path("in.jsonl");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = env.run(&[
        "replay",
        input.to_str().unwrap(),
        "--sink",
        "docs",
        "--summary",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["sinks"]["docs"]["delivered"], 2, "{s}");
    assert_eq!(s["sinks"]["docs"]["dead_lettered"], 1, "{s}");
    assert_eq!(s["sinks"]["docs"]["retried"], 0, "not retried: {s}");
    let letters = env.dead_letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["record"]["id"], "twitter:2");
    assert!(
        letters[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("write error "),
        "{}",
        letters[0]
    );
    let got = read(&collection);
    assert_eq!(got["count"], 2);
}

/// A collection name the server refuses (nx-27017 takes only letters, digits
/// and `_`; MongoDB answers `InvalidNamespace`) is permanent: its records are
/// dead-lettered at once with the server's refusal, not retried, and the
/// records bound for a good collection are delivered.
#[test]
fn mongodb_a_refused_collection_name_is_dead_lettered_at_once() {
    let uri = service("INGEST_TEST_MONGODB_URI");
    let good = unique("ns", '_');
    let env = Env::new().with("RUST_LOG", "warn").config(&config(
        "{tag}",
        &format!("uri = \"{uri}\""),
        "",
    ));
    let path = env.path("in.jsonl");
    let text: String = (0..20)
        .map(|i| {
            let tag = if i % 2 == 0 { good.as_str() } else { "bad-name" };
            format!(
                "{{\"data\":{{\"id\":\"{i}\",\"text\":\"t\",\"author_id\":\"1\"}},\"matching_rules\":[{{\"id\":\"1\",\"tag\":\"{tag}\"}}]}}\n"
            )
        })
        .collect();
    std::fs::write(&path, text).unwrap();
    let out = env.run(&["replay", "in.jsonl", "--sink", "docs", "--summary"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let s = summary(&out);
    assert_eq!(s["sinks"]["docs"]["delivered"], 10, "{err}");
    assert_eq!(s["sinks"]["docs"]["dead_lettered"], 10, "{err}");
    assert_eq!(
        s["sinks"]["docs"]["retried"], 0,
        "no retry of a refusal: {err}"
    );
    let dead = env.dead_letters();
    assert_eq!(dead.len(), 10);
    for d in &dead {
        let e = d["error"].as_str().unwrap();
        assert!(
            e.contains("the server refused") && e.contains("Invalid identifier 'bad-name'"),
            "the server's own words: {e}"
        );
    }
    assert_eq!(read(&good)["count"], 10);

    // With a TTL index to create first, the refusal comes from createIndexes: the same.
    let env = Env::new().with("RUST_LOG", "warn").config(&config(
        "{tag}",
        &format!("uri = \"{uri}\""),
        "ttl_seconds = 3600",
    ));
    std::fs::write(env.path("in.jsonl"), std::fs::read(&path).unwrap()).unwrap();
    let out = env.run(&["replay", "in.jsonl", "--sink", "docs", "--summary"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let s = summary(&out);
    assert_eq!(s["sinks"]["docs"]["dead_lettered"], 10, "{err}");
    assert_eq!(
        s["sinks"]["docs"]["retried"], 0,
        "no retry of a refusal: {err}"
    );
}
