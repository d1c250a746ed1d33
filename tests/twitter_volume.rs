//! The volume and compliance streams end to end: the real binary against the
//! built-in mock X API (its own process): partition checks before anything
//! is sent, disjoint partitions that together carry every post once, the
//! filtered stream's reconnect and dedupe, compliance records in a file.

use std::collections::BTreeSet;

use serde_json::Value;

mod common;
use common::*;

const TOKEN: &str = "test-token-volume-1a2b3c";

/// Fast reconnects and a short stall timeout.
const FAST: &str = "[twitter]\nstall_timeout = \"700ms\"\n[twitter.backoff]\nnetwork_step_ms = 20\nnetwork_max_ms = 100\nhttp_initial_ms = 100\nhttp_max_ms = 1000\nrate_limit_initial_ms = 300\nrate_limit_max_ms = 2000\n";

fn env_with(config: &str) -> Env {
    Env::new()
        .config(config)
        .with("TWITTER_BEARER_TOKEN", TOKEN)
}

fn tweet_id(seq: u64) -> String {
    format!("twitter:{}", 1_600_000_000_000_000_000u64 + seq)
}

fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `ingest twitter --stream … --twitter-api-base URL --sink file` plus `extra`.
fn capture(env: &Env, url: &str, out: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "twitter",
        "--twitter-api-base",
        url,
        "--sink",
        "file",
        "--file-path",
        out,
        "--duration",
        "60s",
        "--summary",
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

#[test]
fn a_bad_or_missing_partition_exits_2_before_anything_is_sent() {
    let env = env_with("");
    let mock = MockProcess::start("twitter", env.dir.path(), "total_tweets = 10\n");
    for (extra, range) in [
        (&["--stream", "sample10", "--partition", "3"][..], "1 to 2"),
        (&["--stream", "sample10"][..], "1 to 2"),
        (&["--stream", "firehose", "--partition", "0"][..], "1 to 20"),
        (
            &["--stream", "firehose", "--partition", "21"][..],
            "1 to 20",
        ),
        (
            &["--stream", "compliance", "--partition", "5"][..],
            "1 to 4",
        ),
        (
            &["--stream", "user-compliance", "--partition", "9"][..],
            "1 to 4",
        ),
        (
            &["--stream", "sample", "--partition", "1"][..],
            "no partitions",
        ),
    ] {
        let out = capture(&env, &mock.url, "out.jsonl", extra);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(range), "{extra:?}: {err}");
    }
    // The environment twins and the config keys are checked the same way.
    let out = env
        .cmd()
        .args([
            "twitter",
            "--twitter-api-base",
            &mock.url,
            "--sink",
            "stdout",
        ])
        .env("INGEST_STREAM", "sample10")
        .env("INGEST_PARTITION", "3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let env2 = env_with("[twitter]\nstream = \"firehose\"\npartition = 42\n");
    let out = capture(&env2, &mock.url, "out.jsonl", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 to 20"), "{}", stderr(&out));
    // Rules belong to the filtered stream only.
    let out = capture(
        &env,
        &mock.url,
        "out.jsonl",
        &["--stream", "sample", "--track", "cats"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("takes no rules"), "{}", stderr(&out));
    assert_eq!(
        mock.get("/mock/requests")["requests"],
        0,
        "nothing was sent to X"
    );
    assert!(!env.path("out.jsonl").exists());
}

#[test]
fn decahose_partitions_1_and_2_together_deliver_every_post_once() {
    let env = env_with(FAST);
    let mock = MockProcess::start(
        "twitter",
        env.dir.path(),
        "rate = 0.0\nkeepalive_secs = 0.2\ntotal_tweets = 60\n",
    );
    let mut all = Vec::new();
    for p in ["1", "2"] {
        let file = format!("p{p}.jsonl");
        let out = capture(
            &env,
            &mock.url,
            &file,
            &[
                "--stream",
                "sample10",
                "--partition",
                p,
                "--max-records",
                "30",
            ],
        );
        assert!(out.status.success(), "partition {p}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("10% sampled stream"),
            "{}",
            stderr(&out)
        );
        let records = env.records(&file);
        assert_eq!(records.len(), 30, "partition {p}");
        for r in &records {
            assert_eq!(r["kind"], "tweet");
            assert!(r.get("matching_rules").is_none(), "{r}");
            assert!(r["author"]["username"].is_string(), "{r}");
        }
        all.push(ids(&records));
    }
    let p1: BTreeSet<_> = all[0].iter().cloned().collect();
    let p2: BTreeSet<_> = all[1].iter().cloned().collect();
    assert!(p1.is_disjoint(&p2), "the partitions overlap");
    let union: BTreeSet<_> = p1.union(&p2).cloned().collect();
    let expected: BTreeSet<_> = (0..60).map(tweet_id).collect();
    assert_eq!(union, expected, "every post once across the two partitions");
    let log = mock.get("/mock/volume");
    let log = log.as_array().unwrap();
    assert!(log.iter().all(|c| c["path"] == "/2/tweets/sample10/stream"));
    let partitions: BTreeSet<u64> = log.iter().filter_map(|c| c["partition"].as_u64()).collect();
    assert_eq!(partitions, BTreeSet::from([1, 2]));
}

#[test]
fn a_volume_stream_reconnects_and_drops_the_backfill_duplicates() {
    let env = env_with(FAST);
    // Firehose partition 7 of 20 carries posts 6, 26, 46, … of the corpus: 10 of 200.
    let mock = MockProcess::start(
        "twitter",
        env.dir.path(),
        r#"
rate = 0.0
keepalive_secs = 0.2
total_tweets = 200
[[connection]]
status = 503
[[connection]]
tweets = 4
fault = "close"
[[connection]]
duplicates = 3
tweets = 3
fault = "stall"
"#,
    );
    let out = capture(
        &env,
        &mock.url,
        "out.jsonl",
        &[
            "--stream",
            "firehose",
            "--partition",
            "7",
            "--backfill-minutes",
            "2",
            "--max-records",
            "10",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let got = ids(&env.records("out.jsonl"));
    let unique: BTreeSet<_> = got.iter().cloned().collect();
    assert_eq!(got.len(), unique.len(), "no duplicate delivered");
    let expected: BTreeSet<_> = (0..10).map(|n| tweet_id(n * 20 + 6)).collect();
    assert_eq!(unique, expected);
    let s = summary(&out);
    assert_eq!(s["source"]["duplicates"], 3, "{s}");
    let err = stderr(&out);
    assert!(err.contains("stalled"), "{err}");
    let log = mock.get("/mock/volume");
    let log = log.as_array().unwrap();
    assert!(log.len() >= 4, "{log:#?}");
    assert_eq!(log[0]["status"], 503);
    assert!(log.iter().all(|c| c["partition"] == 7), "{log:#?}");
}

#[test]
fn compliance_events_reach_the_file_sink_as_compliance_records() {
    let env = env_with(FAST);
    let mock = MockProcess::start(
        "twitter",
        env.dir.path(),
        "rate = 0.0\nkeepalive_secs = 0.2\ntotal_tweets = 40\n",
    );
    // Partition 2 of 4: the events about posts 1, 5, 9, … 37.
    let out = capture(
        &env,
        &mock.url,
        "events.jsonl",
        &[
            "--stream",
            "compliance",
            "--partition",
            "2",
            "--max-records",
            "10",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let records = env.records("events.jsonl");
    assert_eq!(records.len(), 10);
    let log = mock.get("/mock/volume");
    let sent: Vec<(String, String)> = log[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e[0].as_str().unwrap().to_owned(),
                e[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(log[0]["path"], "/2/tweets/compliance/stream");
    assert!(sent.iter().any(|(t, _)| t == "delete"), "{sent:?}");
    for (r, (event_type, post)) in records.iter().zip(&sent) {
        assert_eq!(r["kind"], "compliance", "{r}");
        assert_eq!(r["tags"], serde_json::json!([event_type]), "{r}");
        assert_eq!(r["refs"]["tweet_id"], post.as_str(), "{r}");
        let id = r["id"].as_str().unwrap();
        assert!(
            id.starts_with(&format!("twitter:compliance:{event_type}:{post}:")),
            "{id}"
        );
        assert!(r["raw"]["data"][event_type].is_object(), "{r}");
        assert!(r.get("matching_rules").is_none());
    }
    // The User compliance stream: events about the corpus authors.
    let out = capture(
        &env,
        &mock.url,
        "users.jsonl",
        &[
            "--stream",
            "user-compliance",
            "--partition",
            "1",
            "--max-records",
            "3",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let users = env.records("users.jsonl");
    assert_eq!(users.len(), 3);
    assert!(users.iter().all(|r| r["kind"] == "compliance"
        && r["tags"][0].as_str().unwrap().starts_with("user_")
        && r["author"]["id"].is_string()));
}

#[test]
fn x_refusing_a_volume_stream_request_stops_the_run_with_its_message() {
    let env = env_with(FAST);
    let mock = MockProcess::start(
        "twitter",
        env.dir.path(),
        "total_tweets = 10\n[[connection]]\nstatus = 400\n",
    );
    let out = capture(
        &env,
        &mock.url,
        "out.jsonl",
        &["--stream", "sample10", "--partition", "1"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("HTTP 400"), "{}", stderr(&out));
    let log = mock.get("/mock/volume");
    assert_eq!(log.as_array().unwrap().len(), 1, "not retried: {log}");
}

#[test]
fn check_validates_the_configured_partition_without_connecting() {
    let mock_dir = tempfile::tempdir().unwrap();
    let mock = MockProcess::start("twitter", mock_dir.path(), "");
    let check = |config: &str| {
        let env = env_with(config);
        let out = env.run(&[
            "check",
            "--source",
            "twitter",
            "--twitter-api-base",
            &mock.url,
        ]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = check("[twitter]\nstream = \"firehose\"\npartition = 3\n");
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("the firehose") && text.contains("partition 3"),
        "{text}"
    );
    let (code, text) = check("[twitter]\nstream = \"compliance\"\n");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("1 to 4"), "{text}");
    assert_eq!(
        mock.get("/mock/requests")["requests"],
        0,
        "no connection opened"
    );
}
