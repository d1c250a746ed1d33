//! The streams X added (issue 27, item 3) end to end, against the built-in
//! mock X API behind the spec-checking proxy: each captured into a file with
//! its records validated against `ingest schema`; partitions outside the
//! spec's range refused (exit 2) before anything is sent.
#![cfg(feature = "mock")]

use std::collections::BTreeSet;

mod common;
use common::*;

const TOKEN: &str = "test-token-added-streams-4d5e";

fn env() -> Env {
    Env::new().with("TWITTER_BEARER_TOKEN", TOKEN)
}

fn capture(env: &Env, url: &str, out: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "twitter",
        "--twitter-api-base",
        url,
        "--sink",
        "file",
        "--file-path",
        out,
    ];
    args.extend_from_slice(&["--duration", "60s", "--summary"]);
    args.extend_from_slice(extra);
    env.run(&args)
}

#[test]
fn firehose_lang_partitions_outside_the_spec_range_exit_2_before_connecting() {
    let env = env();
    let mock = MockProcess::start("twitter", env.dir.path(), "total_tweets = 10\n");
    let cases: [(&[&str], &str); 6] = [
        (
            &[
                "--stream",
                "firehose-lang",
                "--lang",
                "en",
                "--partition",
                "9",
            ],
            "1 to 8",
        ),
        (
            &[
                "--stream",
                "firehose-lang",
                "--lang",
                "ja",
                "--partition",
                "3",
            ],
            "1 to 2",
        ),
        (
            &["--stream", "firehose-lang", "--lang", "pt"],
            "needs --partition N (N from 1 to 2)",
        ),
        (
            &["--stream", "firehose-lang", "--partition", "1"],
            "needs --lang en|ja|ko|pt",
        ),
        (&["--stream", "sample", "--lang", "ko"], "has no language"),
        (
            &[
                "--stream",
                "firehose-lang",
                "--lang",
                "fr",
                "--partition",
                "1",
            ],
            "possible values: en, ja, ko, pt",
        ),
    ];
    for (extra, want) in cases {
        let out = capture(&env, &mock.url, "out.jsonl", extra);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: {err}");
    }
    assert_eq!(
        mock.get("/mock/requests")["requests"],
        0,
        "nothing was sent to X"
    );
    assert!(!env.path("out.jsonl").exists());
}

#[test]
fn firehose_lang_is_captured_per_language_and_partition() {
    let env = env();
    let mock = MockProcess::start(
        "twitter",
        env.dir.path(),
        "rate = 0.0\nkeepalive_secs = 0.2\ntotal_tweets = 40\n",
    );
    for (lang, partition, n) in [("en", "3", "5"), ("ko", "2", "20")] {
        let file = format!("{lang}.jsonl");
        let args = [
            "--stream",
            "firehose-lang",
            "--lang",
            lang,
            "--partition",
            partition,
            "--max-records",
            n,
        ];
        let out = capture(&env, &mock.url, &file, &args);
        assert!(out.status.success(), "{lang}: {}", stderr(&out));
        let records = env.records(&file); // each validated against `ingest schema`
        assert_eq!(records.len().to_string(), n, "{lang}");
        assert!(
            records
                .iter()
                .all(|r| r["kind"] == "tweet" && r.get("matching_rules").is_none())
        );
        let ids: BTreeSet<_> = records
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), records.len(), "no duplicates");
    }
    let log = mock.get("/mock/volume");
    let seen: BTreeSet<(String, u64)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_owned(),
                c["partition"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        BTreeSet::from([
            ("/2/tweets/firehose/stream/lang/en".to_owned(), 3),
            ("/2/tweets/firehose/stream/lang/ko".to_owned(), 2),
        ])
    );
    let violations = mock.spec().unwrap().take_violations();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn likes_partitions_outside_the_spec_range_exit_2_before_connecting() {
    let env = env();
    let mock = MockProcess::start("twitter", env.dir.path(), "total_tweets = 10\n");
    let cases: [(&[&str], &str); 3] = [
        (
            &["--stream", "likes-firehose", "--partition", "21"],
            "1 to 20",
        ),
        (
            &["--stream", "likes-sample10", "--partition", "3"],
            "1 to 2",
        ),
        (
            &["--stream", "likes-sample10"],
            "needs --partition N (N from 1 to 2)",
        ),
    ];
    for (extra, want) in cases {
        let out = capture(&env, &mock.url, "out.jsonl", extra);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: {err}");
    }
    assert_eq!(
        mock.get("/mock/requests")["requests"],
        0,
        "nothing was sent to X"
    );
}

#[test]
fn likes_streams_become_like_records_naming_the_liked_post_and_its_author() {
    let env = env();
    let mock = MockProcess::start(
        "twitter",
        env.dir.path(),
        "rate = 0.0\nkeepalive_secs = 0.2\ntotal_tweets = 60\n",
    );
    for (stream, partition, file) in [
        ("likes-firehose", "4", "lf.jsonl"),
        ("likes-sample10", "1", "ls.jsonl"),
    ] {
        let args = [
            "--stream",
            stream,
            "--partition",
            partition,
            "--max-records",
            "3",
        ];
        let out = capture(&env, &mock.url, file, &args);
        assert!(out.status.success(), "{stream}: {}", stderr(&out));
        let records = env.records(file); // each validated against `ingest schema`
        assert_eq!(records.len(), 3, "{stream}");
        for r in &records {
            assert_eq!(r["kind"], "like", "{r}");
            assert!(
                r["id"].as_str().unwrap().starts_with("twitter:like:"),
                "{r}"
            );
            assert!(
                r["refs"]["tweet_id"].as_str().unwrap().starts_with("16"),
                "{r}"
            );
            assert!(r["author"]["username"].is_string(), "{r}");
            assert!(r["created_at"].is_string(), "{r}");
        }
    }
    let log = mock.get("/mock/volume");
    let paths: BTreeSet<String> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {}", c["path"].as_str().unwrap(), c["partition"]))
        .collect();
    assert_eq!(
        paths,
        BTreeSet::from([
            "/2/likes/firehose/stream 4".to_owned(),
            "/2/likes/sample10/stream 1".to_owned()
        ])
    );
    let violations = mock.spec().unwrap().take_violations();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn likes_compliance_becomes_like_delete_records_and_takes_no_partition() {
    let env = env();
    let mock = MockProcess::start(
        "twitter",
        env.dir.path(),
        "rate = 0.0\nkeepalive_secs = 0.2\ntotal_tweets = 10\n",
    );
    let out = capture(
        &env,
        &mock.url,
        "x.jsonl",
        &["--stream", "likes-compliance", "--partition", "1"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("has no partitions"),
        "{}",
        stderr(&out)
    );
    let out = capture(
        &env,
        &mock.url,
        "lc.jsonl",
        &["--stream", "likes-compliance", "--max-records", "4"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let records = env.records("lc.jsonl"); // each validated against `ingest schema`
    assert_eq!(records.len(), 4);
    for r in &records {
        assert_eq!(r["kind"], "compliance", "{r}");
        assert_eq!(r["tags"], serde_json::json!(["like_delete"]), "{r}");
        assert!(
            r["id"]
                .as_str()
                .unwrap()
                .starts_with("twitter:compliance:like_delete:16"),
            "{r}"
        );
        assert!(
            r["refs"]["tweet_id"].is_string() && r["author"]["id"].is_string(),
            "{r}"
        );
    }
    let log = mock.get("/mock/volume");
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .all(|c| c["path"] == "/2/likes/compliance/stream")
    );
    let violations = mock.spec().unwrap().take_violations();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn labels_and_activity_are_captured_as_compliance_and_activity_event_records() {
    let env = env();
    let mock = MockProcess::start(
        "twitter",
        env.dir.path(),
        "rate = 0.0\nkeepalive_secs = 0.2\ntotal_tweets = 10\n",
    );
    for stream in ["labels", "activity"] {
        let out = capture(
            &env,
            &mock.url,
            "x.jsonl",
            &["--stream", stream, "--partition", "1"],
        );
        assert_eq!(out.status.code(), Some(2), "{stream}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("has no partitions"),
            "{}",
            stderr(&out)
        );
    }
    let out = capture(
        &env,
        &mock.url,
        "labels.jsonl",
        &["--stream", "labels", "--max-records", "4"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let labels = env.records("labels.jsonl"); // each validated against `ingest schema`
    assert_eq!(labels.len(), 4);
    let tags: BTreeSet<String> = labels
        .iter()
        .map(|r| r["tags"][0].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        tags,
        BTreeSet::from([
            "public_tweet_notice".to_owned(),
            "public_tweet_unviewable".to_owned()
        ])
    );
    assert!(
        labels
            .iter()
            .all(|r| r["kind"] == "compliance" && r["refs"]["tweet_id"].is_string())
    );

    let out = capture(
        &env,
        &mock.url,
        "activity.jsonl",
        &["--stream", "activity", "--max-records", "3"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let events = env.records("activity.jsonl");
    assert_eq!(events.len(), 3);
    for r in &events {
        assert_eq!(r["kind"], "activity_event", "{r}");
        assert_eq!(r["tags"], serde_json::json!(["like.create", "mock"]), "{r}");
        let id = r["id"].as_str().unwrap();
        assert!(
            id.starts_with("twitter:activity:") && id.contains(":like.create:19"),
            "{r}"
        );
        assert!(r["author"]["id"].is_string(), "{r}");
    }
    let paths: BTreeSet<String> = mock
        .get("/mock/volume")
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        paths,
        BTreeSet::from([
            "/2/tweets/label/stream".to_owned(),
            "/2/activity/stream".to_owned()
        ])
    );
    let violations = mock.spec().unwrap().take_violations();
    assert!(violations.is_empty(), "{violations:?}");
}
