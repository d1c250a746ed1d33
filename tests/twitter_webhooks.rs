//! `ingest twitter-webhook` end to end against the built-in mock X API (its
//! own process): register/list/validate/delete with real CRC checks,
//! Account Activity subscriptions signed with OAuth 1.0a, every delivery kind
//! landing as its record kind, redelivery after a 503, and `--register`.

use std::io::{BufRead, BufReader};
use std::process::{ChildStdout, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::server::Server;
use common::*;

const CONSUMER_KEY: &str = "mock-consumer-key";
const CONSUMER_SECRET: &str = "mock-consumer-secret";
const ACCESS_TOKEN: &str = "2244994945-mockaccesstoken";
const ACCESS_TOKEN_SECRET: &str = "mock-access-token-secret";
const PATH: &str = "/webhooks/twitter";

fn listen_cmd(env: &Env, addr: &str, secret: &str, sink: &[&str]) -> Command {
    let mut cmd = env.cmd();
    cmd.env("TWITTER_CONSUMER_SECRET", secret)
        .args([
            "twitter-webhook",
            "--listen",
            addr,
            "--path",
            PATH,
            "--summary",
        ])
        .args(sink);
    cmd
}

fn file_sink() -> [&'static str; 4] {
    ["--sink", "file", "--file-path", "o.jsonl"]
}

/// `ingest twitter-webhook ARGS… --twitter-api-base MOCK` with the bearer token.
fn manage(env: &Env, mock: &MockProcess, args: &[&str]) -> Output {
    let mut cmd = env.cmd();
    cmd.env("TWITTER_BEARER_TOKEN", "app-bearer-token")
        .arg("twitter-webhook")
        .args(args)
        .args(["--twitter-api-base", &mock.url]);
    cmd.output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn url_of(addr: &str) -> String {
    format!("http://{addr}{PATH}")
}

/// Registers `url`; returns the new webhook's id.
fn register(env: &Env, mock: &MockProcess, url: &str) -> String {
    let out = manage(env, mock, &["register", "--url", url]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line = stdout(&out);
    let fields: Vec<&str> = line.trim().split('\t').collect();
    assert_eq!(fields[1], url, "{line}");
    assert_eq!(fields[2], "valid", "{line}");
    fields[0].to_owned()
}

#[test]
fn register_succeeds_only_when_the_server_answers_the_crc_right() {
    let env = Env::new();
    let mock = MockProcess::start("twitter", env.dir.path(), "");
    // Nothing listens: X's CRC GET fails.
    let nobody = url_of(&free_addr());
    let out = manage(&env, &mock, &["register", "--url", &nobody]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("CrcValidationFailed"),
        "{}",
        stderr(&out)
    );

    // A server with the wrong consumer secret answers a wrong CRC token.
    let wrong_addr = free_addr();
    let wrong = Server::start(
        listen_cmd(&env, &wrong_addr, "not-the-consumer-secret", &file_sink()),
        "webhook listening",
    );
    let out = manage(&env, &mock, &["register", "--url", &url_of(&wrong_addr)]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "CrcValidationFailed: The callback URL did not respond correctly to the CRC check"
        ),
        "{err}"
    );
    drop(wrong);

    // The right secret: registered, listed, validated, deleted.
    let addr = free_addr();
    let server = Server::start(
        listen_cmd(&env, &addr, CONSUMER_SECRET, &file_sink()),
        "webhook listening",
    );
    let id = register(&env, &mock, &url_of(&addr));
    let out = manage(&env, &mock, &["register", "--url", &url_of(&addr)]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("DuplicateUrlFailed"),
        "{}",
        stderr(&out)
    );
    let out = manage(&env, &mock, &["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with(&format!("{id}\t{}\tvalid\t", url_of(&addr))));
    let out = manage(&env, &mock, &["list", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["webhooks"][0]["id"], id.as_str());
    assert_eq!(v["webhooks"][0]["valid"], true);
    let out = manage(&env, &mock, &["validate", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{id}\tvalid\n"));
    let out = manage(&env, &mock, &["delete", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = manage(&env, &mock, &["validate", &id]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("WebhookIdInvalid"),
        "{}",
        stderr(&out)
    );
    let out = manage(&env, &mock, &["list", "--json"]);
    assert_eq!(stdout(&out).trim(), r#"{"webhooks":[]}"#);
    let (status, log) = server.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    // The CRC checks were answered by the server, not recorded.
    assert!(!env.path("o.jsonl").exists() || env.records("o.jsonl").is_empty());
}

#[test]
fn validate_turns_a_webhook_invalid_when_the_crc_answer_goes_wrong() {
    let env = Env::new();
    let mock = MockProcess::start("twitter", env.dir.path(), "");
    let addr = free_addr();
    let server = Server::start(
        listen_cmd(&env, &addr, CONSUMER_SECRET, &file_sink()),
        "webhook listening",
    );
    let id = register(&env, &mock, &url_of(&addr));
    server.stop();
    let wrong = Server::start(
        listen_cmd(&env, &addr, "rotated-secret", &file_sink()),
        "webhook listening",
    );
    let out = manage(&env, &mock, &["validate", &id]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("CrcValidationFailed"));
    let out = manage(&env, &mock, &["list"]);
    assert!(stdout(&out).contains("\tinvalid\t"), "{}", stdout(&out));
    drop(wrong);
}

fn oauth_env(token_secret: &str) -> Env {
    Env::new()
        .with("TWITTER_CONSUMER_KEY", CONSUMER_KEY)
        .with("TWITTER_CONSUMER_SECRET", CONSUMER_SECRET)
        .with("TWITTER_ACCESS_TOKEN", ACCESS_TOKEN)
        .with("TWITTER_ACCESS_TOKEN_SECRET", token_secret)
        .with("RUST_LOG", "trace")
}

#[test]
fn subscribe_is_signed_with_oauth1_and_a_wrong_secret_is_refused_without_showing_it() {
    let env = Env::new();
    let mock = MockProcess::start("twitter", env.dir.path(), "");
    let addr = free_addr();
    let _server = Server::start(
        listen_cmd(&env, &addr, CONSUMER_SECRET, &file_sink()),
        "webhook listening",
    );
    let id = register(&env, &mock, &url_of(&addr));

    let wrong_secret = "wrong-access-token-secret-5f2c";
    let bad = oauth_env(wrong_secret);
    let out = manage(&bad, &mock, &["subscribe", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        all.contains("HTTP 401") && all.contains("Unauthorized"),
        "{all}"
    );
    for secret in [wrong_secret, CONSUMER_SECRET] {
        assert!(!all.contains(secret), "a secret in the output: {all}");
    }
    let out = manage(&env, &mock, &["subscriptions", &id]);
    assert_eq!(stdout(&out), "", "{}", stderr(&out));

    let good = oauth_env(ACCESS_TOKEN_SECRET);
    let out = manage(&good, &mock, &["subscribe", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{id}\tsubscribed\n"));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    for secret in [ACCESS_TOKEN_SECRET, CONSUMER_SECRET] {
        assert!(!all.contains(secret), "a secret in the output: {all}");
    }
    let out = manage(&env, &mock, &["subscriptions", &id]);
    assert_eq!(stdout(&out), "2244994945\n", "{}", stderr(&out));
    let out = manage(&env, &mock, &["subscriptions", &id, "--json"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["webhook_id"], id.as_str());
    assert_eq!(v["subscriptions"][0]["user_id"], "2244994945");
    let out = manage(
        &env,
        &mock,
        &["unsubscribe", &id, "--user-id", "2244994945"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = manage(&env, &mock, &["subscriptions", &id]);
    assert_eq!(stdout(&out), "");

    // Missing credentials: named, exit 78, no request made.
    let out = manage(&Env::new(), &mock, &["subscribe", &id]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("TWITTER_ACCESS_TOKEN_SECRET"),
        "{}",
        stderr(&out)
    );
}

/// Polls the mock's delivery log until every delivery is done.
fn deliveries_done(mock: &MockProcess, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
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

fn post_mock(mock: &MockProcess, path: &str, body: &str) -> (u16, String) {
    http(
        mock.url.trim_start_matches("http://"),
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

#[test]
fn every_delivery_kind_lands_as_its_record_kind() {
    let env = Env::new();
    let mock = MockProcess::start("twitter", env.dir.path(), "");
    let addr = free_addr();
    let server = Server::start(
        listen_cmd(&env, &addr, CONSUMER_SECRET, &file_sink()),
        "webhook listening",
    );
    register(&env, &mock, &url_of(&addr));
    let (status, body) = post_mock(&mock, "/mock/deliver", r#"{"seq": 5}"#);
    assert_eq!(status, 202, "{body}");
    let done = deliveries_done(&mock, 4);
    for d in &done {
        assert_eq!(d["attempts"], serde_json::json!([200]), "{d}");
    }
    let (status, log) = server.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    let summary = summary_in(&log).unwrap();
    assert_eq!(summary["source"]["unknown"], 1, "{summary}");
    assert_eq!(summary["source"]["records"], 5, "{summary}");
    let records = env.records("o.jsonl");
    let find = |pred: &dyn Fn(&Value) -> bool| -> Value {
        records
            .iter()
            .find(|r| pred(r))
            .cloned()
            .unwrap_or_else(|| panic!("missing in {records:#?}"))
    };
    // Account Activity: the post (plain `source`) and the like.
    let aaa = find(&|r| r["id"] == "twitter:1500000000000000005");
    assert_eq!(aaa["kind"], "tweet");
    assert_eq!(aaa["source"], "Twitter Web App");
    assert_eq!(aaa["lang"], "en", "X webhook posts keep their language");
    assert_eq!(aaa["hashtags"], serde_json::json!(["XDev"]));
    let like = find(&|r| r["tags"][0] == "favorite_events");
    assert_eq!(like["kind"], "activity_event");
    // X Activity API.
    let bio = find(&|r| r["tags"][0] == "profile.update.bio");
    assert_eq!(bio["kind"], "activity_event");
    assert_eq!(bio["author"]["id"], "2244994945");
    // Filtered stream by webhook: the id the mock stream gives post 5.
    let post = find(&|r| r["id"] == "twitter:1600000000000000005");
    assert_eq!(post["kind"], "tweet");
    assert_eq!(post["matching_rules"][0]["tag"], "webhook");
    // Unknown: recorded, body in raw.
    let unknown = find(&|r| r["tags"][0] == "unknown");
    assert_eq!(unknown["kind"], "activity_event");
    assert_eq!(unknown["raw"]["mystery_kind"]["id"], "m-5");
    assert_eq!(records.len(), 5, "{records:#?}");
}

fn drain(out: ChildStdout) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).collect())
}

#[test]
fn a_delivery_answered_503_is_sent_again_and_recorded_once() {
    // The stdout sink writes into a pipe nobody reads yet: the sink cannot
    // confirm within the 1 s ack timeout, so the webhook answers 503.
    let env = Env::new().config("[webhook]\nack_timeout = \"1s\"\n");
    let mock = MockProcess::start("twitter", env.dir.path(), "");
    let addr = free_addr();
    let mut cmd = listen_cmd(&env, &addr, CONSUMER_SECRET, &["--sink", "stdout"]);
    cmd.stdout(Stdio::piped());
    let mut server = Server::start(cmd, "webhook listening");
    let out = server.child.stdout.take().unwrap();
    register(&env, &mock, &url_of(&addr));
    let (status, body) = post_mock(
        &mock,
        "/mock/deliver",
        r#"{"kinds":["account_activity"],"seq":7,"text_bytes":300000,"retry_delays_ms":[500,2000,5000]}"#,
    );
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while mock.get("/mock/deliveries")[0]["attempts"][0] != 503 {
        assert!(
            Instant::now() < deadline,
            "{}",
            mock.get("/mock/deliveries")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let reader = drain(out);
    let done = deliveries_done(&mock, 1);
    let attempts = done[0]["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 2, "{attempts:?}");
    assert_eq!(attempts.last().unwrap(), 200, "{attempts:?}");
    let (status, log) = server.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    let lines = reader.join().unwrap();
    let copies = lines
        .iter()
        .filter(|l| l.contains("\"twitter:1500000000000000007\""))
        .count();
    assert_eq!(copies, 1, "the post was recorded {copies} times");
}

#[test]
fn register_flag_registers_once_listening_and_validates_on_the_next_start() {
    let env = Env::new().with("TWITTER_BEARER_TOKEN", "app-bearer-token");
    let mock = MockProcess::start("twitter", env.dir.path(), "");
    let addr = free_addr();
    let url = url_of(&addr);
    let start = |secret: &str| {
        let mut cmd = listen_cmd(&env, &addr, secret, &file_sink());
        cmd.args(["--register", &url, "--twitter-api-base", &mock.url]);
        cmd
    };
    let server = Server::start(start(CONSUMER_SECRET), "webhook registered");
    let out = manage(&env, &mock, &["list"]);
    assert!(
        stdout(&out).contains(&format!("\t{url}\tvalid\t")),
        "{}",
        stdout(&out)
    );
    let (status, log) = server.stop();
    assert_eq!(status.code(), Some(0), "{log}");

    let server = Server::start(
        start(CONSUMER_SECRET),
        "already registered; CRC check passed again",
    );
    server.stop();
    let out = manage(&env, &mock, &["list", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["webhooks"].as_array().unwrap().len(), 1, "{v}");

    // A wrong secret: the server stops with X's message and exit 78.
    let mut child = start("wrong-secret")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_with_timeout(&mut child, Duration::from_secs(60));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(78), "{err}");
    assert!(err.contains("CrcValidationFailed"), "{err}");
}

#[test]
fn x_activity_subscriptions_and_stream_links_round_trip() {
    let env = Env::new();
    let mock = MockProcess::start("twitter", env.dir.path(), "");
    let addr = free_addr();
    let _server = Server::start(
        listen_cmd(&env, &addr, CONSUMER_SECRET, &file_sink()),
        "webhook listening",
    );
    let id = register(&env, &mock, &url_of(&addr));

    let out = manage(
        &env,
        &mock,
        &[
            "activity-subscribe",
            &id,
            "--event-type",
            "profile.update.nope",
            "--user-id",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("event_type must be one of"),
        "{}",
        stderr(&out)
    );
    let out = manage(
        &env,
        &mock,
        &[
            "activity-subscribe",
            &id,
            "--event-type",
            "profile.update.bio",
            "--user-id",
            "2244994945",
            "--tag",
            "bios",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line = stdout(&out);
    let fields: Vec<&str> = line.trim().split('\t').collect();
    assert_eq!(
        fields[1..],
        [
            "profile.update.bio",
            r#"{"user_id":"2244994945"}"#,
            &id,
            "bios"
        ]
    );
    let sub_id = fields[0].to_owned();
    let out = manage(&env, &mock, &["activity-subscriptions", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["subscriptions"][0]["subscription_id"], sub_id.as_str());
    let out = manage(&env, &mock, &["activity-unsubscribe", &sub_id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = manage(&env, &mock, &["activity-subscriptions"]);
    assert_eq!(stdout(&out), "");

    let out = manage(&env, &mock, &["stream-link", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{id}\tlinked\n"));
    let out = manage(&env, &mock, &["stream-links", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["links"][0]["webhook_id"], id.as_str());
    assert_eq!(
        v["links"][0]["fields"][0],
        "tweet.fields=created_at,lang,author_id,conversation_id,source,entities"
    );
    let out = manage(&env, &mock, &["stream-unlink", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = manage(&env, &mock, &["stream-unlink", &id]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("WebhookIdInvalid"));
}

#[test]
fn urls_x_would_refuse_and_an_unreachable_api_are_clear_errors() {
    let env = Env::new();
    let mock = MockProcess::start("twitter", env.dir.path(), "");
    for (url, detail) in [
        ("http://example.com/webhooks/twitter", "must use https"),
        (
            "https://example.com:5000/webhooks/twitter",
            "port specification",
        ),
        ("not a url", "not a valid URL"),
    ] {
        let out = manage(&env, &mock, &["register", "--url", url]);
        assert_eq!(out.status.code(), Some(78), "{url}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("UrlValidationFailed") && err.contains(detail),
            "{url}: {err}"
        );
        assert_eq!(stdout(&out), "");
    }
    // Nobody answers at the API base: exit 1, the base named.
    let dead = format!("http://{}", free_addr());
    let mut cmd = env.cmd();
    let out = cmd
        .env("TWITTER_BEARER_TOKEN", "t")
        .args(["twitter-webhook", "list", "--twitter-api-base", &dead])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("cannot reach the X API at {dead}")));
    // The mock's deliver endpoint refuses what it does not know.
    let (status, body) = post_mock(&mock, "/mock/deliver", r#"{"kinds":["nope"]}"#);
    assert_eq!(status, 400, "{body}");
    let (status, body) = post_mock(&mock, "/mock/deliver", "{not json");
    assert_eq!(status, 400, "{body}");
}
