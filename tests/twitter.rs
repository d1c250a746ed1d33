//! The X source end to end: the real binary against the built-in mock X API
//! (started as its own process), faults, back-off, rules, limits.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::*;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/rules.toml");
const TOKEN: &str = "test-token-9f8e7d6c5b4a";

/// Fast reconnects and a short stall timeout, so faults resolve in milliseconds.
const FAST: &str = "[twitter]\nstall_timeout = \"700ms\"\n[twitter.backoff]\nnetwork_step_ms = 20\nnetwork_max_ms = 100\nhttp_initial_ms = 100\nhttp_max_ms = 1000\nrate_limit_initial_ms = 300\nrate_limit_max_ms = 2000\n";

fn env_with(config: &str) -> Env {
    Env::new()
        .config(config)
        .with("TWITTER_BEARER_TOKEN", TOKEN)
}

fn mock_twitter(env: &Env, scenario: &str) -> MockProcess {
    MockProcess::start("twitter", env.dir.path(), scenario)
}

fn tweet_id(seq: u64) -> String {
    format!("twitter:{}", 1_600_000_000_000_000_000u64 + seq)
}

#[test]
fn every_fault_leaves_every_whole_tweet_delivered_exactly_once() {
    let env = env_with(FAST);
    let mock = mock_twitter(
        &env,
        r#"
rate = 400.0
keepalive_secs = 0.2
total_tweets = 80
[[rule]]
value = "cats"
tag = "pets"
[[connection]]
tweets = 5
fault = "cut_mid_line"
[[connection]]
burst = 20
tweets = 3
fault = "operational_disconnect"
[[connection]]
duplicates = 4
tweets = 5
fault = "stall"
[[connection]]
tweets = 5
fault = "close"
"#,
    );
    // 80 tweets, one of them cut: 79 arrive whole.
    let out = env.run(&[
        "twitter",
        "--twitter-api-base",
        &mock.url,
        "--rules-mode",
        "keep",
        "--sink",
        "file",
        "--file-path",
        "out.jsonl",
        "--max-records",
        "79",
        "--duration",
        "60s",
        "--summary",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = mock.get("/mock/connections").as_array().unwrap().clone();
    assert!(log.len() >= 5, "{log:#?}");
    let cut: Vec<u64> = log.iter().filter_map(|c| c["cut_seq"].as_u64()).collect();
    assert_eq!(cut.len(), 1);
    let mut expected = BTreeSet::new();
    for c in &log {
        if let (Some(a), Some(b)) = (c["first_seq"].as_u64(), c["last_seq"].as_u64()) {
            expected.extend((a..=b).map(tweet_id));
        }
    }
    assert_eq!(expected.len(), 79, "{log:#?}");
    let records = env.records("out.jsonl");
    let ids: Vec<String> = records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), unique.len(), "no duplicates delivered");
    assert_eq!(unique, expected, "every whole tweet, none of the cut one");
    assert!(!unique.contains(&tweet_id(cut[0])));
    let s = summary(&out);
    assert_eq!(s["source"]["duplicates"], 4, "{s}");
    assert_eq!(s["source"]["control"], 1, "the operational-disconnect line");
    let err = stderr(&out);
    assert!(err.contains("stalled"), "{err}");
    assert!(err.contains("operational disconnect"), "{err}");
    assert!(err.contains("cut by the disconnect"), "{err}");
    // Records carry what the mock sent: authors from includes, rules.
    let r = &records[0];
    assert!(r["author"]["username"].is_string() && r["lang"].is_string());
    assert_eq!(r["tags"][0], "pets");
}

#[test]
fn backoff_classes_follow_the_documented_sequence() {
    let env = env_with(FAST);
    let mock = mock_twitter(
        &env,
        r#"
rate = 200.0
[[rule]]
value = "cats"
[[connection]]
status = 503
[[connection]]
status = 500
[[connection]]
status = 503
[[connection]]
status = 429
too_many_connections = true
[[connection]]
status = 429
too_many_connections = true
"#,
    );
    let out = env.run(&[
        "twitter",
        "--twitter-api-base",
        &mock.url,
        "--sink",
        "file",
        "--file-path",
        "o.jsonl",
        "--max-records",
        "5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = mock.get("/mock/connections").as_array().unwrap().clone();
    let statuses: Vec<u64> = log.iter().map(|c| c["status"].as_u64().unwrap()).collect();
    assert_eq!(&statuses[..6], [503, 500, 503, 429, 429, 200]);
    let at: Vec<i64> = log.iter().map(|c| c["at_ms"].as_i64().unwrap()).collect();
    let gaps: Vec<i64> = at.windows(2).map(|w| w[1] - w[0]).collect();
    // HTTP errors: 100, 200, 400 ms (exponential); then 429: 300, 600 ms (its own, higher base).
    let floors = [100, 200, 400, 300, 600];
    for (i, (gap, floor)) in gaps.iter().zip(floors).enumerate() {
        assert!(
            *gap >= floor - 5,
            "gap {i} = {gap} ms, expected at least {floor} ({gaps:?})"
        );
        assert!(
            *gap < floor + 1500,
            "gap {i} = {gap} ms, far beyond {floor} ({gaps:?})"
        );
    }
    assert!(
        gaps[1] > gaps[0] && gaps[2] > gaps[1],
        "HTTP back-off grows: {gaps:?}"
    );
    assert!(gaps[4] > gaps[3], "429 back-off grows: {gaps:?}");
    let err = stderr(&out);
    assert!(err.contains("TooManyConnections"), "{err}");
    assert!(
        err.contains("HTTP error") && err.contains("rate limited (429)"),
        "{err}"
    );
    assert_eq!(env.records("o.jsonl").len(), 5);
}

#[test]
fn unauthorized_exits_1_quickly_without_printing_the_token() {
    let env = env_with(FAST);
    let mock = mock_twitter(
        &env,
        "[[rule]]\nvalue = \"cats\"\n[[connection]]\nstatus = 401\n",
    );
    let start = Instant::now();
    let out = env.run(&[
        "twitter",
        "--twitter-api-base",
        &mock.url,
        "--sink",
        "stdout",
        "--log-format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(start.elapsed() < Duration::from_secs(20));
    let err = stderr(&out);
    assert!(
        err.contains("refused the bearer token") && err.contains("TWITTER_BEARER_TOKEN"),
        "{err}"
    );
    assert!(
        !err.contains(TOKEN) && !String::from_utf8_lossy(&out.stdout).contains(TOKEN),
        "the token leaked:\n{err}"
    );
}

#[test]
fn no_rules_names_the_fix() {
    let env = env_with(FAST);
    let mock = mock_twitter(&env, "rate = 10.0\n");
    let out = env.run(&[
        "twitter",
        "--twitter-api-base",
        &mock.url,
        "--sink",
        "stdout",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "the stream has no rules: add one with `ingest rules sync --rules rules.toml`"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_token_is_a_config_error() {
    let env = env_with("");
    let out = env
        .cmd()
        .env_remove("TWITTER_BEARER_TOKEN")
        .args(["twitter", "--sink", "stdout"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("set TWITTER_BEARER_TOKEN"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rules_sync_prints_the_diff_and_is_idempotent() {
    let env = env_with("");
    let mock = mock_twitter(&env, "[[rule]]\nvalue = \"old rule\"\ntag = \"old\"\n");
    let base = ["--twitter-api-base", mock.url.as_str()];
    let sync = |file: &str| {
        let out = env
            .cmd()
            .args(["rules", "sync", "--rules", file])
            .args(base)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let first = sync(RULES);
    // Right after a sync, `validate` of the same file passes: a live rule is valid.
    let validate = env
        .cmd()
        .args(["rules", "validate", "--rules", RULES])
        .args(base)
        .output()
        .unwrap();
    assert!(validate.status.success(), "{}", stderr(&validate));
    assert_eq!(
        String::from_utf8(validate.stdout).unwrap(),
        "3 rule(s) valid (3 already live)\n"
    );
    assert!(first.contains("- old rule  [old]"), "{first}");
    assert!(
        first.contains("+ (rust OR rustlang) -is:retweet  [rust]"),
        "{first}"
    );
    assert!(first.contains("3 added, 1 deleted, 0 kept"), "{first}");
    assert_eq!(sync(RULES), "rules in sync: 3 rule(s), nothing to change\n");
    let list = env
        .cmd()
        .args(["rules", "list"])
        .args(base)
        .output()
        .unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert_eq!(list.lines().count(), 3);
    assert!(list.contains("\tkafka has:links\t"), "{list}");
    let counts = || {
        let out = env
            .cmd()
            .args(["rules", "counts"])
            .args(base)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(counts(), "app\t3\t1000\t997\nproject\t3\t1000\t997\n");
    // Changing a tag is a delete and an add.
    std::fs::write(
        env.path("r.toml"),
        "[[rule]]\nvalue = \"kafka has:links\"\ntag = \"kafka\"\n",
    )
    .unwrap();
    let changed = sync("r.toml");
    assert!(
        changed.contains("- kafka has:links") && changed.contains("+ kafka has:links  [kafka]"),
        "{changed}"
    );
    assert!(changed.contains("1 added, 3 deleted, 0 kept"), "{changed}");
    assert_eq!(counts(), "app\t1\t1000\t999\nproject\t1\t1000\t999\n");
}

#[test]
fn invalid_rules_surface_x_own_error_and_change_nothing() {
    let env = env_with("");
    let mock = mock_twitter(&env, "[[rule]]\nvalue = \"keep me\"\n");
    std::fs::write(
        env.path("bad.toml"),
        "[[rule]]\nvalue = \"(cats OR dogs\"\n",
    )
    .unwrap();
    for action in ["validate", "sync"] {
        let out = env
            .cmd()
            .args([
                "rules",
                action,
                "--rules",
                "bad.toml",
                "--twitter-api-base",
                &mock.url,
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("UnprocessableEntity")
                && err.contains("balanced parentheses")
                && err.contains("(cats OR dogs"),
            "{err}"
        );
    }
    let rules = mock.get("/2/tweets/search/stream/rules");
    assert_eq!(
        rules["data"][0]["value"], "keep me",
        "dry run first: nothing deleted"
    );
    std::fs::write(
        env.path("long.toml"),
        format!("[[rule]]\nvalue = \"{}\"\n", "x".repeat(1100)),
    )
    .unwrap();
    let out = env
        .cmd()
        .args([
            "rules",
            "validate",
            "--rules",
            "long.toml",
            "--twitter-api-base",
            &mock.url,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("long.toml line 1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rules_clear_needs_yes() {
    let env = env_with("");
    let mock = mock_twitter(&env, "[[rule]]\nvalue = \"a\"\n[[rule]]\nvalue = \"b\"\n");
    let out = env
        .cmd()
        .args(["rules", "clear", "--twitter-api-base", &mock.url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--yes"));
    let out = env
        .cmd()
        .args(["rules", "clear", "--yes", "--twitter-api-base", &mock.url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "2 rule(s) deleted\n"
    );
    assert!(
        mock.get("/2/tweets/search/stream/rules")
            .get("data")
            .is_none()
    );
}

#[test]
fn track_becomes_one_v2_rule() {
    let env = env_with(FAST);
    let mock = mock_twitter(&env, "rate = 200.0\n");
    let out = env.run(&[
        "twitter",
        "--track",
        "rust lang,tokio",
        "--twitter-api-base",
        &mock.url,
        "--sink",
        "file",
        "--file-path",
        "o.jsonl",
        "--max-records",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--track converted"),
        "{}",
        stderr(&out)
    );
    let rules = mock.get("/2/tweets/search/stream/rules");
    assert_eq!(rules["data"].as_array().unwrap().len(), 1);
    assert_eq!(rules["data"][0]["value"], "(rust lang) OR tokio");
    assert_eq!(rules["data"][0]["tag"], "track");
    assert_eq!(env.records("o.jsonl")[0]["tags"][0], "track");
}

/// A `--track '#a,#b'` capture: each post's text holds the hashtag its rule
/// asked for (the mock matches rules against the text), the record lists its
/// `hashtags` from X's `entities`, and a `track:<term>` tag names each term
/// the text holds — never one it does not.
#[test]
fn track_tags_name_the_terms_each_post_holds() {
    let env = env_with(FAST);
    let mock = mock_twitter(&env, "rate = 200.0\n");
    let out = env.run(&[
        "twitter",
        "--track",
        "#rustlang,#tokio,async rust",
        "--twitter-api-base",
        &mock.url,
        "--sink",
        "file",
        "--file-path",
        "o.jsonl",
        "--max-records",
        "30",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = env.records("o.jsonl");
    assert_eq!(records.len(), 30);
    let mut per_term = std::collections::BTreeMap::<String, usize>::new();
    for r in &records {
        let text = r["text"].as_str().unwrap().to_lowercase();
        let tags: Vec<&str> = r["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let hashtags: Vec<String> = r["hashtags"]
            .as_array()
            .map(|h| {
                h.iter()
                    .map(|t| t.as_str().unwrap().to_lowercase())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(tags[0], "track", "{r}");
        let held = |term: &str| match term {
            "#rustlang" => hashtags.contains(&"rustlang".to_owned()) && text.contains("#rustlang"),
            "#tokio" => hashtags.contains(&"tokio".to_owned()) && text.contains("#tokio"),
            _ => {
                let words: Vec<&str> = text.split(|c: char| !c.is_alphanumeric()).collect();
                words.contains(&"async") && words.contains(&"rust")
            }
        };
        let named: Vec<&str> = tags
            .iter()
            .filter_map(|t| t.strip_prefix("track:"))
            .collect();
        assert!(!named.is_empty(), "a track post names its term: {r}");
        for term in ["#rustlang", "#tokio", "async rust"] {
            assert_eq!(named.contains(&term), held(term), "{term}: {r}");
        }
        for term in named {
            *per_term.entry(term.to_owned()).or_default() += 1;
        }
    }
    assert_eq!(
        per_term.len(),
        3,
        "every term matched some posts: {per_term:?}"
    );
}

/// `--track` manages the rules it made and no others: the app's other live
/// rules (a production rule, an untagged one) are still there after the run,
/// an old `--track` rule is replaced, and a `--rules` sync's deletions are
/// said at WARN.
#[test]
fn a_track_run_leaves_rules_it_did_not_create_in_place() {
    let env = env_with(FAST);
    let mock = mock_twitter(
        &env,
        "rate = 200.0\n[[rule]]\nvalue = \"production terms\"\ntag = \"prod\"\n[[rule]]\nvalue = \"untagged\"\n[[rule]]\nvalue = \"old terms\"\ntag = \"track\"\n",
    );
    let run = |extra: &[&str]| {
        let out = env
            .cmd()
            .args(["twitter", "--twitter-api-base", &mock.url])
            .args(extra)
            .args([
                "--sink",
                "file",
                "--file-path",
                "o.jsonl",
                "--max-records",
                "3",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    let err = run(&["--track", "rust lang,tokio"]);
    assert!(
        err.contains("2 other live rule(s) of the app left in place"),
        "{err}"
    );
    let live = |mock: &MockProcess| -> Vec<(String, String)> {
        let rules = mock.get("/2/tweets/search/stream/rules");
        let mut v: Vec<(String, String)> = rules["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let tag = r["tag"].as_str().unwrap_or("").to_owned();
                (r["value"].as_str().unwrap().to_owned(), tag)
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        live(&mock),
        [
            ("(rust lang) OR tokio".to_owned(), "track".to_owned()),
            ("production terms".to_owned(), "prod".to_owned()),
            ("untagged".to_owned(), String::new()),
        ]
    );
    // A rules file is the app's whole set: what it deletes is said at WARN.
    let err = run(&["--rules", RULES]);
    assert!(
        err.contains("WARN")
            && err.contains("deleting a live rule of the app: - production terms  [prod]"),
        "{err}"
    );
    assert!(!live(&mock).iter().any(|(v, _)| v == "production terms"));
}

/// A `--track` list past X's 1024-character rule limit becomes several rules,
/// each within the limit and tagged `track`, that X (the mock) accepts.
#[test]
fn a_long_track_list_becomes_several_rules_within_the_limit() {
    let env = env_with(FAST);
    let mock = mock_twitter(&env, "rate = 200.0\n");
    let terms: Vec<String> = (0..300).map(|i| format!("keyword{i}")).collect();
    let track = terms.join(",");
    let out = env.run(&[
        "twitter",
        "--track",
        &track,
        "--twitter-api-base",
        &mock.url,
        "--sink",
        "file",
        "--file-path",
        "o.jsonl",
        "--max-records",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rules = mock.get("/2/tweets/search/stream/rules");
    let rules = rules["data"].as_array().unwrap();
    assert!(rules.len() >= 3, "{rules:?}");
    let mut seen = Vec::new();
    for rule in rules {
        let value = rule["value"].as_str().unwrap();
        assert!(value.chars().count() <= 1024, "{value}");
        assert_eq!(rule["tag"], "track");
        seen.extend(value.split(" OR ").map(str::to_owned));
    }
    seen.sort();
    let mut want = terms.clone();
    want.sort();
    assert_eq!(seen, want, "every term in exactly one rule");
    assert_eq!(env.records("o.jsonl")[0]["tags"][0], "track");
}

#[test]
fn mock_flag_runs_with_no_account_and_duration_stops_cleanly() {
    let env = env_with("");
    let out = env
        .cmd()
        .env_remove("TWITTER_BEARER_TOKEN")
        .args([
            "twitter",
            "--mock",
            "--rules",
            RULES,
            "--sink",
            "file",
            "--file-path",
            "o.jsonl",
            "--duration",
            "2s",
            "--summary",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["stop_reason"], "duration");
    let n = env.records("o.jsonl").len() as u64;
    assert!(n > 5, "the default mock sends about 20 tweets/s; got {n}");
    assert_eq!(
        s["sinks"]["file"]["delivered"], n,
        "everything received was flushed"
    );
}

#[test]
fn sigterm_stops_the_stream_and_flushes_everything() {
    let env = env_with("");
    let mut child = env
        .cmd()
        .env_remove("TWITTER_BEARER_TOKEN")
        .args([
            "twitter",
            "--mock",
            "--rules",
            RULES,
            "--sink",
            "file",
            "--file-path",
            "o.jsonl",
            "--summary",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("connected to the filtered stream") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(800));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest:?}");
    let s: Value = rest
        .iter()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap();
    assert_eq!(s["stop_reason"], "signal");
    let n = env.records("o.jsonl").len() as u64;
    assert!(n > 0);
    assert_eq!(s["records_in"], n);
    assert_eq!(s["sinks"]["file"]["delivered"], n);
}

#[test]
fn a_slow_sink_never_stops_the_reader_lines_spill_and_come_back_in_order() {
    // A tiny in-memory queue and a slow sink (stdout into a pipe read late):
    // the reader keeps reading; lines go through the spill file, in order.
    let env = env_with(
        "[twitter]\nspill_memory_bytes = 2000\n[sinks.slow]\ntype = \"stdout\"\nqueue_capacity = 1\n[sinks.slow.batch]\nmax_records = 10\n",
    );
    let mock = mock_twitter(
        &env,
        "rate = 0.0\ntotal_tweets = 3000\n[[rule]]\nvalue = \"cats\"\n",
    );
    let mut child = env
        .cmd()
        .args([
            "twitter",
            "--twitter-api-base",
            &mock.url,
            "--sink",
            "slow",
            "--max-records",
            "3000",
            "--summary",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in err_lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        if line.contains("spilling received lines to disk") {
            break;
        }
    }
    assert!(seen.contains("spilling"), "{seen}");
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    let rest: Vec<String> = err_lines.map(|l| l.unwrap()).collect();
    assert!(child.wait().unwrap().success(), "{rest:?}");
    let ids: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let expected: Vec<String> = (0..3000).map(tweet_id).collect();
    assert_eq!(ids, expected);
    // The reader never stopped: no stall, one connection for the whole run.
    let all_err = format!("{seen}\n{}", rest.join("\n"));
    assert!(!all_err.contains("stalled"), "{all_err}");
    let connections = mock.get("/mock/connections");
    assert_eq!(connections.as_array().unwrap().len(), 1, "{connections}");
}

#[test]
fn reset_connections_closes_the_other_connection_first() {
    let env = env_with(FAST);
    let mock = mock_twitter(&env, "rate = 200.0\n[[rule]]\nvalue = \"cats\"\n");
    let out = env.run(&[
        "twitter",
        "--twitter-api-base",
        &mock.url,
        "--reset-connections",
        "--sink",
        "file",
        "--file-path",
        "o.jsonl",
        "--max-records",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mock.get("/mock/resets")["resets"], 1);
    assert!(
        stderr(&out).contains("closing every streaming connection"),
        "{}",
        stderr(&out)
    );
}

/// "401/403 exit 1 at once": a 403 on connect is fatal after that one attempt,
/// names the fix, and prints no token.
#[test]
fn forbidden_exits_1_after_one_attempt() {
    let env = env_with(FAST);
    let mock = mock_twitter(
        &env,
        "[[rule]]\nvalue = \"cats\"\n[[connection]]\nstatus = 403\n",
    );
    let out = env.run(&[
        "twitter",
        "--twitter-api-base",
        &mock.url,
        "--sink",
        "stdout",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("TWITTER_BEARER_TOKEN"), "{err}");
    assert!(!err.contains(TOKEN), "the token leaked:\n{err}");
    let attempts = mock.get("/mock/connections");
    assert_eq!(
        attempts.as_array().unwrap().len(),
        1,
        "no retry: {attempts}"
    );
}

/// The README's "a window of the last 100 000 tweet ids drops duplicates after
/// reconnects and `--backfill-minutes`", end to end with the window set to
/// 1 000 (`dedupe_window`; 100 000 posts take minutes through a debug build,
/// and `sources::seen::tests` checks the 100 000 boundary itself): the first
/// connection sends posts 0..=1 000 (1 001 ids), the second (each connection
/// asks for the backfill) resends the last 1 000 of them, all dropped; the
/// third resends all 1 001: post 0, which 1 000 newer ids pushed out of the
/// window, is delivered again.
#[test]
fn the_dedupe_window_holds_its_last_ids_across_backfills() {
    let env = env_with(&FAST.replace("[twitter]\n", "[twitter]\ndedupe_window = 1000\n"));
    let mock = mock_twitter(
        &env,
        r#"
rate = 0.0
keepalive_secs = 0.2
total_tweets = 1001
[[rule]]
value = "cats"
tag = "pets"
[[connection]]
burst = 1001
tweets = 0
fault = "close"
[[connection]]
duplicates = 1000
tweets = 0
fault = "close"
[[connection]]
duplicates = 1001
"#,
    );
    let out = env.run(&[
        "twitter",
        "--twitter-api-base",
        &mock.url,
        "--rules-mode",
        "keep",
        "--backfill-minutes",
        "2",
        "--sink",
        "file",
        "--file-path",
        "out.jsonl",
        "--no-raw",
        "--max-records",
        "1002",
        "--duration",
        "60s",
        "--summary",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(
        s["source"]["duplicates"], 1000,
        "the backfill of the last 1 000 ids was dropped whole: {s}"
    );
    let ids: Vec<String> = std::fs::read_to_string(env.path("out.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1002, "{s}");
    let n = counts(ids.iter());
    assert_eq!(n.len(), 1001, "every post");
    assert_eq!(
        n.iter()
            .filter(|(_, c)| **c == 2)
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>(),
        [tweet_id(0)],
        "only post 0, pushed out by 1 000 newer ids, came again"
    );
    assert_eq!(ids.last(), Some(&tweet_id(0)));
    let log = mock.get("/mock/connections");
    let log = log.as_array().unwrap();
    assert!(log.len() >= 3, "{log:#?}");
    assert_eq!(log[1]["duplicate_seqs"].as_array().unwrap().len(), 1000);
    assert!(
        log.iter().all(|c| c["backfill_minutes"] == "2"),
        "every connection asked X for the backfill"
    );
}
