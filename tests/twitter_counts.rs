//! `ingest twitter-counts` end to end: the real binary against the built-in
//! mock X API (its own process, behind the spec-checking proxy): per-bucket
//! counts that add up to what `twitter-search` captures for the same window,
//! pages followed by `next_token`, records of kind `count` into a sink, bad
//! flags, and hostile answers.
#![cfg(feature = "mock")]

use serde_json::Value;

mod common;
use common::*;

const TOKEN: &str = "test-token-counts-9f8e7d";

fn new_env() -> Env {
    Env::new().with("TWITTER_BEARER_TOKEN", TOKEN)
}

/// A window `from_h` to `to_h` hours ago, as X's timestamps (second precision).
fn window(from_h: i64, to_h: i64) -> (String, String) {
    let now = chrono::Utc::now();
    let t = |h| {
        (now - chrono::Duration::hours(h))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    (t(from_h), t(to_h))
}

fn counts(env: &Env, mock: &MockProcess, extra: &[&str]) -> std::process::Output {
    env.cmd()
        .args(["twitter-counts", "--twitter-api-base", &mock.url])
        .args(extra)
        .output()
        .unwrap()
}

fn assert_exit(out: &std::process::Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", stderr(out));
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn calls(mock: &MockProcess) -> Vec<Value> {
    mock.get("/mock/search/calls").as_array().unwrap().clone()
}

#[test]
fn bucket_counts_sum_to_what_twitter_search_captures_for_the_same_window() {
    let env = new_env();
    let mock = MockProcess::start(
        "twitter",
        env.dir.path(),
        "[search]\nposts = 300\nspacing_secs = 60\ncount_buckets_per_page = 50\n",
    );
    let (start, end) = window(4, 1);
    let w = [
        "--query",
        "cats",
        "--start-time",
        &start,
        "--end-time",
        &end,
    ];
    let out = env
        .cmd()
        .args(["twitter-search", "--twitter-api-base", &mock.url])
        .args(["--sink", "file", "--file-path", "o.jsonl"])
        .args(w)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let searched = env.records("o.jsonl").len() as u64;
    assert!(
        (170..=190).contains(&searched),
        "3 hours of a post a minute: {searched}"
    );

    // Minute buckets: 180 of them, 50 a page, so four pages.
    let out = counts(
        &env,
        &mock,
        &[&w[..], &["--granularity", "minute", "--json", "--summary"]].concat(),
    );
    assert_exit(&out, 0);
    let doc: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let buckets = doc["buckets"].as_array().unwrap();
    assert!((180..=181).contains(&buckets.len()), "{}", buckets.len());
    let sum: u64 = buckets
        .iter()
        .map(|b| b["post_count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        sum, searched,
        "the counts add up to the posts search returned"
    );
    assert_eq!(doc["total_post_count"], searched);
    assert!(
        buckets.windows(2).all(|p| p[0]["end"] == p[1]["start"]),
        "contiguous, oldest first"
    );
    let summary_line: Value = serde_json::from_str(stderr(&out).lines().last().unwrap()).unwrap();
    assert_eq!(summary_line["total_post_count"], searched);
    assert_eq!(summary_line["pages"], 4);
    let count_calls: Vec<Value> = calls(&mock)
        .into_iter()
        .filter(|c| c["endpoint"] == "counts/recent")
        .collect();
    assert_eq!(count_calls.len(), 4);
    assert!(
        count_calls[1..]
            .iter()
            .all(|c| c["params"]["next_token"].is_string())
    );
    assert!(
        count_calls
            .iter()
            .all(|c| c["params"]["granularity"] == "minute"
                && c["params"]["start_time"] == start.as_str())
    );

    // The default table (hour buckets) and --csv say the same.
    let out = counts(&env, &mock, &w);
    assert_exit(&out, 0);
    let table = stdout(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("start") && lines[0].ends_with("posts"),
        "{table}"
    );
    let total_line = lines.last().unwrap();
    assert!(total_line.starts_with("total"), "{table}");
    assert_eq!(
        total_line.split_whitespace().last().unwrap(),
        searched.to_string(),
        "{table}"
    );
    let rows: u64 = lines[1..lines.len() - 1]
        .iter()
        .map(|l| l.split_whitespace().last().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(rows, searched);
    let out = counts(
        &env,
        &mock,
        &[&w[..], &["--csv", "--granularity", "day"]].concat(),
    );
    assert_exit(&out, 0);
    let csv = stdout(&out);
    assert!(csv.starts_with("start,end,post_count\n"), "{csv}");
    let sum: u64 = csv
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(sum, searched);
    assert!(mock.spec().unwrap().take_violations().is_empty());
}

#[test]
fn archive_counts_become_records_of_kind_count_in_a_sink() {
    let env = new_env();
    let mock = MockProcess::start(
        "twitter",
        env.dir.path(),
        "[search]\nposts = 100\nspacing_secs = 3600\n",
    );
    // The end half an hour back: between the newest post and the next, never
    // on one (an end exactly an hour back raced the post an hour old).
    let (start, _) = window(24 * 10, 1);
    let end = (chrono::Utc::now() - chrono::Duration::minutes(30))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let out = counts(
        &env,
        &mock,
        &[
            "--query",
            "cats",
            "--archive",
            "--granularity",
            "day",
            "--start-time",
            &start,
            "--end-time",
            &end,
            "--sink",
            "file",
            "--file-path",
            "c.jsonl",
            "--summary",
        ],
    );
    assert_exit(&out, 0);
    let records = env.records("c.jsonl"); // each validated against `ingest schema`
    assert!((10..=11).contains(&records.len()), "{}", records.len());
    let total: u64 = records
        .iter()
        .map(|r| r["raw"]["post_count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        total, 100,
        "posts an hour apart, from 1 to 100 hours before the mock started: all in the window"
    );
    for r in &records {
        assert_eq!(r["kind"], "count");
        assert!(
            r["id"]
                .as_str()
                .unwrap()
                .starts_with("twitter:count:all:day:"),
            "{r}"
        );
        assert_eq!(r["created_at"], r["raw"]["start"]);
        assert_eq!(r["text"], "cats");
        assert_eq!(r["raw"]["granularity"], "day");
    }
    let err = stderr(&out);
    let total_line: Value = err
        .lines()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(|v| v.get("total_post_count").is_some())
        })
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(total_line["total_post_count"], 100);
    assert_eq!(summary(&out)["source"]["records"], records.len());
    assert!(calls(&mock).iter().all(|c| c["endpoint"] == "counts/all"));
}

#[test]
fn bad_flags_exit_2_with_clear_messages() {
    let env = new_env();
    let mock = MockProcess::start("twitter", env.dir.path(), "[search]\nposts = 5\n");
    let cases: [(&[&str], &str); 6] = [
        (
            &["--query", "cats", "--granularity", "week"],
            "possible values: minute, hour, day",
        ),
        (
            &["--query", "cats", "--start-time", "yesterday"],
            "--start-time: `yesterday` is neither",
        ),
        (
            &["--query", "cats", "--end-time", "2026-13-40"],
            "--end-time",
        ),
        (
            &["--query", "cats", "--start-time", "1h", "--end-time", "2h"],
            "is not before the end time",
        ),
        (
            &["--query", "cats", "--json", "--csv"],
            "cannot be used with",
        ),
        (&["--granularity", "day"], "--query"),
    ];
    for (args, want) in cases {
        let out = counts(&env, &mock, args);
        assert_exit(&out, 2);
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    let out = counts(
        &env,
        &mock,
        &["--query", "cats", "--sink", "file", "--no-raw"],
    );
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("--no-raw would drop it"),
        "{}",
        stderr(&out)
    );
    assert!(calls(&mock).is_empty(), "no call was made");
}

#[test]
fn hostile_answers_are_retried_waited_out_or_refused_clearly() {
    // Malformed JSON, a page without `data`, a count of the wrong type, a 429
    // (a one-second window), then a good page: the good page is printed.
    let env = new_env();
    let mut scenario = String::from("[search]\nposts = 30\nwindow_secs = 1\n");
    for body in [
        r#"{"data":[{"start""#,
        r#"{"meta":{"total_post_count":3}}"#,
        r#"{"data":[{"start":"2026-11-30T10:00:00Z","end":"2026-11-30T11:00:00Z","post_count":"3"}]}"#,
    ] {
        scenario.push_str(&format!("[[search.call]]\nbody = '{body}'\n"));
    }
    scenario.push_str("[[search.call]]\nstatus = 429\n");
    let mock = MockProcess::start_unchecked("twitter", env.dir.path(), &scenario);
    let out = counts(&env, &mock, &["--query", "cats", "--json"]);
    assert_exit(&out, 0);
    let doc: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["total_post_count"], 30);
    let err = stderr(&out);
    for want in [
        "is not JSON",
        "has no `data`",
        "`data[0].post_count` = \"3\"",
        "HTTP 429",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    let statuses: Vec<u64> = calls(&mock)
        .iter()
        .map(|c| c["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429, 200]);

    // Five unusable pages in a row: exit 1, naming the last one.
    let env = new_env();
    let mut scenario = String::from("[search]\nposts = 30\n");
    for _ in 0..5 {
        scenario.push_str("[[search.call]]\nbody = '{\"data\":{}}'\n");
    }
    let mock = MockProcess::start_unchecked("twitter", env.dir.path(), &scenario);
    let out = counts(&env, &mock, &["--query", "cats"]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("`data` = an object, not an array"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty(), "no partial table");

    // A 400: X's words, exit 78, no retry.
    let env = new_env();
    let mock = MockProcess::start("twitter", env.dir.path(), "[search]\nposts = 30\n");
    let out = counts(&env, &mock, &["--query", "(cats OR dogs"]);
    assert_exit(&out, 78);
    assert!(
        stderr(&out).contains("Missing closing parenthesis"),
        "{}",
        stderr(&out)
    );
    assert_eq!(calls(&mock).len(), 1);
}
