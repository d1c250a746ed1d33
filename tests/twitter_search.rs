//! `ingest twitter-search` end to end: the real binary against the built-in
//! mock X API (its own process, so the corpus outlives each run): backfill,
//! kill and resume, cron reruns, polling, rate-limit budgets, faults, refusals.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::*;

const TOKEN: &str = "test-token-5e4d3c2b1a";
const FIRST_ID: u64 = 1_650_000_000_000_000_000;
const LONG: Duration = Duration::from_secs(120);

fn new_env() -> Env {
    Env::new().with("TWITTER_BEARER_TOKEN", TOKEN)
}

fn start_mock(env: &Env, scenario: &str) -> MockProcess {
    MockProcess::start("twitter", env.dir.path(), scenario)
}

/// `ingest twitter-search` against `mock` into `o.jsonl`, with `--summary` and `extra`.
fn search(env: &Env, mock: &MockProcess, extra: &[&str]) -> std::process::Command {
    let mut cmd = env.cmd();
    cmd.args(["twitter-search", "--twitter-api-base", &mock.url])
        .args(["--sink", "file", "--file-path", "o.jsonl", "--summary"])
        .args(extra);
    cmd
}

fn run(env: &Env, mock: &MockProcess, extra: &[&str]) -> std::process::Output {
    search(env, mock, extra).output().unwrap()
}

fn ids(env: &Env) -> Vec<u64> {
    env.records("o.jsonl")
        .iter()
        .map(|r| {
            r["id"].as_str().unwrap()["twitter:".len()..]
                .parse()
                .unwrap()
        })
        .collect()
}

fn calls(mock: &MockProcess) -> Vec<Value> {
    mock.get("/mock/search/calls").as_array().unwrap().clone()
}

fn add_posts(mock: &MockProcess, n: u64) {
    let (status, body) = http(
        mock.url.trim_start_matches("http://"),
        "POST",
        "/mock/tweets",
        &[("Content-Type", "application/json")],
        format!("{{\"count\":{n}}}").as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
}

/// Waits (generously) until `cond` holds.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < LONG, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_exit(out: &std::process::Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", stderr(out));
}

#[test]
fn a_backfill_delivers_every_post_once_across_pages_and_a_rerun_only_newer_ones() {
    let env = new_env();
    let mock = start_mock(&env, "[search]\nposts = 250\n");
    let out = run(&env, &mock, &["--query", "cats -is:retweet"]);
    assert_exit(&out, 0);
    let got = ids(&env);
    let unique: BTreeSet<u64> = got.iter().copied().collect();
    assert_eq!(got.len(), 250, "every post exactly once");
    assert_eq!(unique, (1..=250).map(|s| FIRST_ID + s).collect());
    assert!(got.windows(2).all(|w| w[0] > w[1]), "newest first");
    let log = calls(&mock);
    assert_eq!(log.len(), 3, "100 + 100 + 50: {log:?}");
    assert!(
        log.iter()
            .all(|c| c["endpoint"] == "recent" && c["params"]["max_results"] == "100")
    );
    assert!(log[0]["params"].get("next_token").is_none());
    assert!(log[1]["params"]["next_token"].is_string());
    assert_eq!(log[0]["params"]["expansions"], "author_id");
    let r = &env.records("o.jsonl")[0];
    assert_eq!(r["kind"], "tweet");
    assert!(r["author"]["username"].is_string(), "includes joined: {r}");
    assert!(r.get("matching_rules").is_none());
    assert_eq!(summary(&out)["source"]["name"], "twitter-search");

    // Cron mode: nothing new, nothing collected, exit 0; then only the new posts.
    let out = run(&env, &mock, &["--query", "cats -is:retweet"]);
    assert_exit(&out, 0);
    assert_eq!(ids(&env).len(), 250);
    let since = calls(&mock)[3]["params"]["since_id"].clone();
    assert_eq!(since, (FIRST_ID + 250).to_string());
    add_posts(&mock, 7);
    let out = run(&env, &mock, &["--query", "cats -is:retweet"]);
    assert_exit(&out, 0);
    let got = ids(&env);
    assert_eq!(got.len(), 257);
    assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), 257);

    // Another query with the same state dir starts its own backfill.
    let out = run(&env, &mock, &["--query", "dogs"]);
    assert_exit(&out, 0);
    assert_eq!(ids(&env).len(), 257 + 257);
    let state: Vec<_> = std::fs::read_dir(env.path("state"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("twitter-search-") && n.ends_with(".json"))
        .collect();
    assert_eq!(state.len(), 2, "{state:?}");
}

#[test]
fn a_killed_backfill_resumes_at_the_first_unconfirmed_page() {
    let env = new_env();
    // 1000 posts: 10 pages of 100, each answered after 150 ms.
    let mut scenario = String::from("[search]\nposts = 1000\n");
    for _ in 0..10 {
        scenario.push_str("[[search.call]]\ndelay_ms = 150\n");
    }
    let mock = start_mock(&env, &scenario);
    let mut child: Child = search(&env, &mock, &["--query", "cats"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("a few pages in the file", || ids(&env).len() >= 350);
    signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    let before = ids(&env).len();
    assert!(before < 1000, "killed mid-backfill ({before} written)");
    let first_rerun_call = calls(&mock).len();

    let out = run(&env, &mock, &["--query", "cats"]);
    assert_exit(&out, 0);
    let log = calls(&mock);
    assert!(
        log[first_rerun_call]["params"]["next_token"].is_string(),
        "the rerun resumed at a page, not the start: {:?}",
        log[first_rerun_call]
    );
    let got = ids(&env);
    let mut count: BTreeMap<u64, u32> = BTreeMap::new();
    for id in &got {
        *count.entry(*id).or_default() += 1;
    }
    assert_eq!(
        count.keys().copied().collect::<BTreeSet<_>>(),
        (1..=1000).map(|s| FIRST_ID + s).collect(),
        "every id at least once"
    );
    let dupes: Vec<u64> = count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    assert!(count.values().all(|n| *n <= 2));
    assert!(
        dupes.len() <= 100,
        "duplicates only from one page: {}",
        dupes.len()
    );
    if let (Some(lo), Some(hi)) = (dupes.first(), dupes.last()) {
        assert_eq!(
            hi - lo + 1,
            dupes.len() as u64,
            "one run of consecutive posts (one page)"
        );
        assert_eq!(
            (hi - FIRST_ID) % 100,
            0,
            "a page boundary: the newest post of a page"
        );
    }
}

#[test]
fn a_budget_of_two_calls_per_window_waits_for_the_reset_and_never_gets_429() {
    let env = new_env();
    let mock = start_mock(
        &env,
        "[search]\nposts = 500\ncalls_per_window = 2\nwindow_secs = 2\n",
    );
    let out = run(&env, &mock, &["--query", "cats"]);
    assert_exit(&out, 0);
    assert_eq!(ids(&env).iter().collect::<BTreeSet<_>>().len(), 500);
    let log = calls(&mock);
    let statuses: Vec<u64> = log.iter().map(|c| c["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [200; 5], "no call that would 429");
    assert!(
        stderr(&out).contains("waiting for the reset"),
        "{}",
        stderr(&out)
    );
    // Calls 3 and 5 came after a reset: at least a window after the first of their window.
    let at = |i: usize| log[i]["at_ms"].as_u64().unwrap();
    assert!(at(2) - at(0) >= 1000 && at(4) - at(2) >= 1000, "{log:?}");
}

#[test]
fn the_wait_shows_in_metrics_while_the_budget_is_spent() {
    let env = new_env();
    let mock = start_mock(
        &env,
        "[search]\nposts = 300\ncalls_per_window = 1\nwindow_secs = 4\n",
    );
    // Port 0: the metrics listener logs the port it bound.
    let mut child = search(
        &env,
        &mock,
        &["--query", "cats", "--metrics-addr", "127.0.0.1:0"],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let serving = wait_for(&mut lines, "serving /metrics");
    let addr = serving
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("addr=")))
        .expect("the bound address")
        .to_owned();
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).count());
    let mut seen = String::new();
    wait_until("a rate-limit wait in /metrics", || {
        let (_, body) = http(&addr, "GET", "/metrics", &[], b"");
        seen = body
            .lines()
            .find(|l| l.starts_with("ingest_source_rate_limit_wait_seconds{"))
            .unwrap_or("")
            .to_owned();
        seen.rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| v > 0.0)
    });
    assert!(seen.contains("source=\"twitter-search\""), "{seen}");
    let (status, _) = finish(&mut child, LONG);
    let _ = rest.join();
    assert!(status.success());
    assert_eq!(ids(&env).len(), 300);
}

#[test]
fn a_429_a_503_and_a_page_cut_mid_body_are_waited_out() {
    let env = new_env();
    let mock = start_mock(
        &env,
        "[search]\nposts = 250\nwindow_secs = 2\n[[search.call]]\nstatus = 429\n[[search.call]]\nstatus = 503\n[[search.call]]\ncut = true\n",
    );
    let out = run(&env, &mock, &["--query", "cats"]);
    assert_exit(&out, 0);
    let got = ids(&env);
    assert_eq!(got.len(), 250, "every post once");
    assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), 250);
    let statuses: Vec<u64> = calls(&mock)
        .iter()
        .map(|c| c["status"].as_u64().unwrap())
        .collect();
    assert_eq!(&statuses[..3], &[429, 503, 200]);
    let s = summary(&out);
    assert_eq!(
        s["source"]["connections"], 6,
        "3 failed calls and 3 pages: {s}"
    );
}

#[test]
fn poll_picks_up_posts_added_after_the_backfill() {
    let env = new_env();
    let mock = start_mock(&env, "[search]\nposts = 120\n");
    let mut child = search(
        &env,
        &mock,
        &["--query", "cats", "--poll", "300ms", "--duration", "10m"],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_until("the backfill", || ids(&env).len() == 120);
    add_posts(&mock, 15);
    wait_until("the new posts", || ids(&env).len() >= 135);
    signal(&child, libc::SIGTERM);
    let (status, err) = finish(&mut child, LONG);
    assert!(status.success(), "{err}");
    let got = ids(&env);
    assert_eq!(got.len(), 135, "{err}");
    assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), 135);
    let polls: Vec<Value> = calls(&mock)
        .into_iter()
        .filter(|c| c["params"]["since_id"].is_string())
        .collect();
    assert!(!polls.is_empty());
    assert!(
        polls
            .iter()
            .all(|c| c["params"].get("start_time").is_none())
    );
}

#[test]
fn x_refusals_exit_78_for_a_bad_query_and_1_for_credentials() {
    let env = new_env();
    let mock = start_mock(
        &env,
        "[search]\nposts = 20\n[[search.call]]\n[[search.call]]\nstatus = 401\n[[search.call]]\nstatus = 403\n",
    );
    let out = run(&env, &mock, &["--query", "(cats OR dogs"]);
    assert_exit(&out, 78);
    let err = stderr(&out);
    assert!(
        err.contains("Missing closing parenthesis") && err.contains("Invalid Request"),
        "{err}"
    );
    for status in ["401", "403"] {
        let out = run(&env, &mock, &["--query", "cats"]);
        assert_exit(&out, 1);
        assert!(
            stderr(&out).contains(&format!("HTTP {status}")),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(calls(&mock).len(), 3, "no retry after 400, 401 or 403");
    assert!(ids(&env).is_empty());
    let out = run(
        &env,
        &mock,
        &["--query", "cats", "--start-time", "last week"],
    );
    assert_exit(&out, 2);
    let out = run(&env, &mock, &[]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--query"));
}

#[test]
fn hostile_pages_are_retried_then_refused_with_a_clear_error() {
    let env = new_env();
    let mut scenario =
        String::from("[search]\nposts = 30\n[[search.call]]\nbody = '{\"data\":[{\"id\":\"1\"'\n");
    scenario.push_str("[[search.call]]\nbody = '{\"data\":[]}'\n");
    let mock = start_mock(&env, &scenario);
    let out = run(&env, &mock, &["--query", "cats"]);
    assert_exit(&out, 0);
    assert_eq!(ids(&env).len(), 30, "the good page after two bad ones");
    // The planted truncated page is the one answer off the spec.
    let planted = mock.spec().unwrap().take_violations();
    assert_eq!(planted.len(), 1, "{planted:?}");
    assert!(planted[0].message.contains("EOF"), "{planted:?}");

    let env = new_env();
    let mut scenario = String::from("[search]\nposts = 30\n");
    for _ in 0..5 {
        scenario.push_str("[[search.call]]\nbody = '{\"data\":[{\"id\":\"1\"}],\"meta\":{\"result_count\":100}}'\n");
    }
    let mock = start_mock(&env, &scenario);
    let out = run(&env, &mock, &["--query", "cats"]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("unusable search pages") && stderr(&out).contains("truncated"),
        "{}",
        stderr(&out)
    );

    let env = new_env().config("[twitter_search]\nmax_page_bytes = 2000\n");
    let mock = start_mock(&env, "[search]\nposts = 30\n");
    let out = run(&env, &mock, &["--query", "cats"]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("larger than 2000 bytes"),
        "{}",
        stderr(&out)
    );

    // A post that cannot become a record is dead-lettered; the others go through.
    let env = new_env();
    let mock = start_mock(
        &env,
        "[search]\nposts = 5\n[[search.call]]\nbody = '{\"data\":[{\"text\":\"no id\"},{\"id\":\"7\",\"text\":\"ok\"}],\"meta\":{\"result_count\":2,\"newest_id\":\"7\",\"oldest_id\":\"7\"}}'\n",
    );
    let out = run(&env, &mock, &["--query", "cats"]);
    assert_exit(&out, 0);
    assert_eq!(ids(&env), [7]);
    assert_eq!(env.dead_letters().len(), 1);
}

#[test]
fn two_runs_of_one_query_do_not_share_the_checkpoint() {
    let env = new_env();
    let mut scenario = String::from("[search]\nposts = 300\n");
    for _ in 0..3 {
        scenario.push_str("[[search.call]]\ndelay_ms = 1500\n");
    }
    let mock = start_mock(&env, &scenario);
    let mut first = search(&env, &mock, &["--query", "cats"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the first run's first call", || !calls(&mock).is_empty());
    let out = env
        .cmd()
        .args([
            "twitter-search",
            "--twitter-api-base",
            &mock.url,
            "--query",
            "cats",
        ])
        .args(["--sink", "file", "--file-path", "other.jsonl"])
        .output()
        .unwrap();
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("another ingest run"),
        "{}",
        stderr(&out)
    );
    let (status, _) = finish(&mut first, LONG);
    assert!(status.success());
    assert_eq!(ids(&env).len(), 300);
}

#[test]
fn the_built_in_mock_answers_the_readme_command() {
    let env = new_env();
    let out = env
        .cmd()
        .args([
            "twitter-search",
            "--mock",
            "--query",
            "cats",
            "--archive",
            "--start-time",
            "30d",
        ])
        .args([
            "--sink",
            "file",
            "--file-path",
            "o.jsonl",
            "--max-records",
            "120",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(ids(&env).len(), 120);
}
