//! `ingest twitter-webhook` across its own downtime, against the built-in
//! mock X API (its own process, behind the spec-checking proxy): what X
//! tried to deliver while the receiver was stopped comes back through a
//! replay job on start and lands once; a body recorded before a restart and
//! replayed after it is not recorded again (the redelivery window is kept in
//! the state dir); `twitter-webhook replay` asks by hand.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::server::Server;
use common::*;

const CONSUMER_SECRET: &str = "mock-consumer-secret";
const PATH: &str = "/webhooks/twitter";
const BEARER: &str = "app-bearer-token";

fn receiver(env: &Env, mock: &MockProcess, addr: &str, extra: &[&str]) -> Command {
    let mut cmd = env.cmd();
    cmd.env("TWITTER_CONSUMER_SECRET", CONSUMER_SECRET)
        .env("TWITTER_BEARER_TOKEN", BEARER)
        .args(["twitter-webhook", "--listen", addr, "--path", PATH])
        .args(["--summary", "--sink", "file", "--file-path", "o.jsonl"])
        .args(["--twitter-api-base", &mock.url])
        .args(extra);
    cmd
}

fn manage(env: &Env, mock: &MockProcess, args: &[&str]) -> Output {
    env.cmd()
        .env("TWITTER_BEARER_TOKEN", BEARER)
        .arg("twitter-webhook")
        .args(args)
        .args(["--twitter-api-base", &mock.url])
        .output()
        .unwrap()
}

fn deliver(mock: &MockProcess, seq: u64) {
    let body = format!(r#"{{"kinds":["filtered_stream"],"seq":{seq},"retry_delays_ms":[]}}"#);
    let (status, answer) = http(
        mock.url.trim_start_matches("http://"),
        "POST",
        "/mock/deliver",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(status, 202, "{answer}");
}

/// Waits until the mock's log has `want` deliveries, all done.
fn deliveries_done(mock: &MockProcess, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = mock.get("/mock/deliveries");
        let list = log.as_array().unwrap().clone();
        if list.len() == want && list.iter().all(|d| d["done"] == true) {
            return list;
        }
        assert!(Instant::now() < deadline, "deliveries never done: {log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn post_id(seq: u64) -> String {
    format!("twitter:{}", 1_600_000_000_000_000_000u64 + seq)
}

fn copies(env: &Env, seq: u64) -> usize {
    let id = post_id(seq);
    env.records("o.jsonl")
        .iter()
        .filter(|r| r["id"] == id.as_str())
        .count()
}

#[test]
fn deliveries_missed_while_stopped_are_replayed_on_start_and_recorded_once() {
    let env = Env::new();
    let mock = MockProcess::start("twitter", env.dir.path(), "");
    let addr = free_addr();
    let url = format!("http://{addr}{PATH}");
    let register = ["--register", url.as_str(), "--replay-after", "0s"];
    let first = Server::start(
        receiver(&env, &mock, &addr, &register),
        "webhook registered",
    );
    assert!(
        first.wait_log("nothing to replay", Duration::from_secs(30)),
        "{}",
        first.log()
    );
    deliver(&mock, 1);
    assert_eq!(
        deliveries_done(&mock, 1)[0]["attempts"],
        serde_json::json!([200])
    );
    let (status, log) = first.stop();
    assert_eq!(status.code(), Some(0), "{log}");

    // Stopped: X tries, nobody answers, X gives up; the mock keeps the attempts.
    deliver(&mock, 2);
    deliver(&mock, 3);
    for d in &deliveries_done(&mock, 3)[1..] {
        assert_eq!(d["attempts"], serde_json::json!([0]), "{d}");
    }
    assert_eq!(copies(&env, 2), 0);

    let second = Server::start(
        receiver(&env, &mock, &addr, &register),
        "X says a replay job is over",
    );
    let (status, log) = second.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("replay job created"), "{log}");
    for seq in 1..=3 {
        assert_eq!(copies(&env, seq), 1, "post {seq}:\n{log}");
    }
    let summary = summary_in(&log).unwrap();
    assert_eq!(summary["source"]["replayed"], 2, "{summary}");
    assert_eq!(summary["source"]["records"], 2, "{summary}");
    assert_eq!(summary["source"]["duplicates"], 1, "{summary}");
    // The mock sent the three again under one job, then its status.
    let log = mock.get("/mock/deliveries");
    let replays: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["replay_job"].is_string())
        .collect();
    assert_eq!(replays.len(), 4, "{log}");
    assert_eq!(replays[3]["kind"], "replay_job_status");
    for r in replays {
        assert_eq!(r["attempts"], serde_json::json!([200]), "{r}");
    }
}

#[test]
fn a_body_recorded_before_a_restart_and_replayed_after_it_is_recorded_once() {
    let env = Env::new();
    let mock = MockProcess::start("twitter", env.dir.path(), "");
    let addr = free_addr();
    let url = format!("http://{addr}{PATH}");
    let first = Server::start(
        receiver(&env, &mock, &addr, &["--register", &url]),
        "webhook registered",
    );
    deliver(&mock, 5);
    deliveries_done(&mock, 1);
    let id = mock.get("/2/webhooks")["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    first.stop();
    assert_eq!(copies(&env, 5), 1);

    // By hand, over the delivery before the restart: a duplicate.
    let second = Server::start(
        receiver(&env, &mock, &addr, &["--webhook-id", &id, "--no-replay"]),
        "webhook listening",
    );
    let out = manage(&env, &mock, &["replay", &id, "--from", "1h"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let fields: Vec<&str> = line.trim().split('\t').collect();
    assert_eq!(fields.len(), 2, "{line}");
    assert!(fields[0].bytes().all(|b| b.is_ascii_digit()), "{line}");
    assert!(
        second.wait_log("X says a replay job is over", Duration::from_secs(60)),
        "{}",
        second.log()
    );
    let (status, log) = second.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(!log.contains("replay job created"), "--no-replay: {log}");
    assert_eq!(copies(&env, 5), 1, "{log}");
    let summary = summary_in(&log).unwrap();
    assert_eq!(summary["source"]["duplicates"], 1, "{summary}");
    assert_eq!(summary["source"]["records"], 0, "{summary}");
}

#[test]
fn replay_requests_x_would_refuse_are_clear_errors() {
    let env = Env::new();
    let mock = MockProcess::start("twitter", env.dir.path(), "");
    for (args, code, says) in [
        (vec!["replay", "12x", "--from", "1h"], 78, "1 to 19 digits"),
        (vec!["replay", "1", "--from", "2d"], 78, "24 hours"),
        (
            vec!["replay", "1", "--from", "1h", "--to", "2h"],
            78,
            "before --to",
        ),
        (vec!["replay", "1", "--from", "yesterday-ish"], 2, "--from"),
        (vec!["replay", "1", "--from", "1h"], 78, "WebhookIdInvalid"),
    ] {
        let out = manage(&env, &mock, &args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert_eq!(out.stdout, b"", "{args:?}");
    }
}
