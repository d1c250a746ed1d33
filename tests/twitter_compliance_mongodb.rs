//! Compliance events applied by the `mongodb` sink (`apply_compliance`),
//! against the local MongoDB-wire server and the built-in mock X API, read
//! back with pymongo. Run through `scripts/test --test twitter_compliance_mongodb`.
#![cfg(feature = "mongodb")]

use std::collections::BTreeSet;

mod common;
use common::*;

use serde_json::Value;

const READ: &str = r#"
import sys, json
from pymongo import MongoClient
c = MongoClient(sys.argv[1], serverSelectionTimeoutMS=5000)[sys.argv[2]][sys.argv[3]]
print(json.dumps({"ids": [d["_id"] for d in c.find({}, {"_id": 1})]}))
"#;

fn tweet_id(seq: u64) -> String {
    (1_600_000_000_000_000_000u64 + seq).to_string()
}

#[test]
fn a_delete_event_removes_the_mongodb_document_and_the_file_gets_the_event() {
    let uri = service("INGEST_TEST_MONGODB_URI");
    let collection = unique("compliance", '_');
    let env = Env::new()
        .with("TWITTER_BEARER_TOKEN", "test-token-compliance")
        .with("RUST_LOG", "info")
        .config(&format!(
            r#"
[sinks.docs]
type = "mongodb"
uri = "{uri}"
database = "ingest_test"
collection = "{collection}"
apply_compliance = true

[sinks.events]
type = "file"
path = "events.jsonl"
"#
        ));
    let mock = MockProcess::start(
        "twitter",
        env.dir.path(),
        "rate = 0.0\nkeepalive_secs = 0.2\ntotal_tweets = 20\n",
    );
    let run = |extra: &[&str]| {
        let mut args = vec![
            "twitter",
            "--twitter-api-base",
            &mock.url,
            "--duration",
            "60s",
            "--summary",
        ];
        args.extend_from_slice(extra);
        env.run(&args)
    };
    // The posts: all 20 of the corpus, from the sampled stream.
    let out = run(&[
        "--stream",
        "sample",
        "--sink",
        "docs",
        "--max-records",
        "20",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The compliance events about them, all four partitions: 5 events each,
    // `delete` for posts 0, 5, 10 and 15.
    let mut deleted = 0;
    for p in ["1", "2", "3", "4"] {
        let out = run(&[
            "--stream",
            "compliance",
            "--partition",
            p,
            "--sink",
            "docs",
            "--sink",
            "events",
            "--max-records",
            "5",
        ]);
        assert!(out.status.success(), "partition {p}: {}", stderr(&out));
        let s = summary(&out);
        assert_eq!(s["sinks"]["docs"]["delivered"], 5, "{s}");
        deleted += s["sinks"]["docs"]["compliance_deleted"]
            .as_u64()
            .unwrap_or(0);
    }
    assert_eq!(deleted, 4, "one document per delete event");
    let got = py(READ, &[&uri, "ingest_test", &collection]);
    let ids: BTreeSet<String> = got["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    for seq in 0..20 {
        let post = format!("twitter:{}", tweet_id(seq));
        assert_eq!(
            ids.contains(&post),
            seq % 5 != 0,
            "{post}: deleted exactly when a delete event named it"
        );
    }
    // The other events are stored as records; the delete events were applied, not stored.
    let events: Vec<&String> = ids
        .iter()
        .filter(|id| id.starts_with("twitter:compliance:"))
        .collect();
    assert_eq!(events.len(), 16, "{events:?}");
    assert!(
        events
            .iter()
            .all(|id| !id.starts_with("twitter:compliance:delete:"))
    );
    // The file sink got every event record, the deletes included.
    let records: Vec<Value> = env.records("events.jsonl");
    assert_eq!(records.len(), 20);
    let deletes: BTreeSet<String> = records
        .iter()
        .filter(|r| r["tags"][0] == "delete")
        .map(|r| r["refs"]["tweet_id"].as_str().unwrap().to_owned())
        .collect();
    let want: BTreeSet<String> = [0, 5, 10, 15].into_iter().map(tweet_id).collect();
    assert_eq!(deletes, want);
}
