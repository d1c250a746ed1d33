//! Telegram polling and webhook, and the X Account Activity webhook, end to end:
//! the real binary against the mock Bot API (its own process) and real HTTP.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::*;

const BOT_TOKEN: &str = "424242:test-bot-token-ZYX";
const FIRST: i64 = 500_000;

fn tg_env() -> Env {
    Env::new().with("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
}

/// The mock with messages only (these tests count messages by chat and
/// offset); `every_update_type_…` and `types_the_bot_did_not_ask_for_…`
/// run its default, which adds one update of every other type.
fn mock_telegram(env: &Env, scenario: &str) -> MockProcess {
    let scenario = if scenario.contains("every_type") {
        scenario.to_owned()
    } else {
        format!("every_type = false\n{scenario}")
    };
    MockProcess::start("telegram", env.dir.path(), &scenario)
}

fn update_ids(records: &[Value]) -> BTreeSet<i64> {
    records
        .iter()
        .map(|r| r["refs"]["update_id"].as_i64().unwrap())
        .collect()
}

#[test]
fn chat_filter_and_until_idle_confirm_every_update() {
    let env = tg_env();
    let mock = mock_telegram(&env, "updates = 40\n");
    let out = env.run(&[
        "telegram",
        "--telegram-api-base",
        &mock.url,
        "--chat-id",
        "-4001",
        "--until-idle",
        "--sink",
        "file",
        "--file-path",
        "o.jsonl",
        "--summary",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = env.records("o.jsonl");
    assert_eq!(records.len(), 10);
    assert!(
        records
            .iter()
            .all(|r| r["chat"]["id"] == -4001 && r["chat"]["type"] == "group")
    );
    // The mock's senders have `language_code: "en"`: it becomes the record's `lang`.
    assert!(
        records
            .iter()
            .filter(|r| r["raw"]["message"]["from"]["language_code"] == "en")
            .all(|r| r["lang"] == "en")
    );
    assert!(
        records.iter().any(|r| r["lang"] == "en"),
        "{:?}",
        records[0]
    );
    // Filtered-out updates are confirmed too: nothing is pending.
    let state = mock.get("/mock/state");
    assert_eq!(state["pending"], 0, "{state}");
    assert_eq!(state["confirmed_below"], FIRST + 40);
    // A rerun finds nothing and writes nothing.
    let out = env.run(&[
        "telegram",
        "--telegram-api-base",
        &mock.url,
        "--until-idle",
        "--sink",
        "file",
        "--file-path",
        "o.jsonl",
    ]);
    assert!(out.status.success());
    assert_eq!(env.records("o.jsonl").len(), 10);
}

/// `hashtag` entities (offsets in UTF-16 units, past an emoji) become the
/// record's `hashtags`; a `#7` the Bot API did not mark stays text.
#[test]
fn hashtag_entities_become_the_records_hashtags() {
    let env = tg_env();
    let mock = mock_telegram(&env, "updates = 20\n");
    let out = env.run(&[
        "telegram",
        "--telegram-api-base",
        &mock.url,
        "--until-idle",
        "--sink",
        "file",
        "--file-path",
        "o.jsonl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = env.records("o.jsonl");
    let (tagged, plain): (Vec<&Value>, Vec<&Value>) = records
        .iter()
        .filter(|r| r["text"].is_string())
        .partition(|r| r["text"].as_str().unwrap().contains("#greetings"));
    assert!(!tagged.is_empty() && !plain.is_empty(), "{records:#?}");
    for r in tagged {
        assert_eq!(r["hashtags"], serde_json::json!(["greetings"]), "{r}");
    }
    for r in plain {
        assert!(r.get("hashtags").is_none(), "{r}");
    }
}

#[test]
fn a_failing_sink_keeps_the_offset_and_a_rerun_delivers_the_rest() {
    let env = tg_env();
    let mock = mock_telegram(&env, "updates = 20\n");
    std::fs::create_dir_all(env.path("out/telegram.jsonl")).unwrap();
    let args = [
        "telegram",
        "--telegram-api-base",
        mock.url.as_str(),
        "--until-idle",
        "--sink",
        "file",
        "--file-path",
        "out/{platform}.jsonl",
    ];
    let out = env.run(&args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the offset stays at 0"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        mock.get("/mock/state")["pending"],
        20,
        "nothing confirmed to Telegram"
    );
    std::fs::remove_dir(env.path("out/telegram.jsonl")).unwrap();
    let out = env.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        update_ids(&env.records("out/telegram.jsonl")),
        (FIRST..FIRST + 20).collect()
    );
    assert_eq!(mock.get("/mock/state")["pending"], 0);
}

/// Waits until `cond` holds of the mock's state, or panics after 60 s.
fn wait_state(mock: &MockProcess, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = mock.get("/mock/state");
        if cond(&state) {
            return state;
        }
        assert!(Instant::now() < deadline, "never: {what}: {state}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn kill_9_with_a_batch_in_a_blocked_sink_replays_exactly_the_unconfirmed_tail() {
    let env = tg_env();
    let mock = mock_telegram(&env, "updates = 300\n");
    std::fs::write(
        env.path("ingest.toml"),
        "[telegram]\npoll_timeout_secs = 0\n",
    )
    .unwrap();
    // The sink is our stdout pipe: we read the first poll's 100 records, then
    // stop reading, so the second poll's batch (over the pipe's 64 KiB) is
    // written to a blocked sink and never confirmed.
    let mut child = env
        .cmd()
        .args([
            "telegram",
            "--telegram-api-base",
            &mock.url,
            "--sink",
            "stdout",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Vec<Value> = (0..100)
        .map(|_| serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap())
        .collect();
    assert_eq!(update_ids(&first), (FIRST..FIRST + 100).collect());
    // The first poll confirmed by the sink, the second fetched (its call
    // confirms the first to Telegram the moment it arrives) and in flight.
    let state = wait_state(&mock, "a second poll", |s| {
        s["calls"].as_array().unwrap().len() >= 2
    });
    assert_eq!(state["calls"][1]["offset"], FIRST + 100, "{state}");
    assert_eq!(state["confirmed_below"], FIRST + 100, "{state}");
    std::thread::sleep(Duration::from_millis(300));
    let state = mock.get("/mock/state");
    assert_eq!(
        state["calls"].as_array().unwrap().len(),
        2,
        "a third poll while the second batch is unconfirmed: {state}"
    );
    assert_eq!(state["confirmed_below"], FIRST + 100, "{state}");
    child.kill().unwrap(); // SIGKILL, with the second batch in the blocked sink
    child.wait().unwrap();
    drop(lines);

    let out = env.run(&[
        "telegram",
        "--telegram-api-base",
        &mock.url,
        "--until-idle",
        "--sink",
        "file",
        "--file-path",
        "b.jsonl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rerun: Vec<i64> = env
        .records("b.jsonl")
        .iter()
        .map(|r| r["refs"]["update_id"].as_i64().unwrap())
        .collect();
    // Exactly the unconfirmed tail, each once: nothing confirmed comes back,
    // nothing unconfirmed is missing.
    assert_eq!(counts(rerun), once(FIRST + 100..FIRST + 300));
    assert_eq!(mock.get("/mock/state")["pending"], 0);
}

#[test]
fn every_update_type_becomes_a_record_of_its_kind() {
    let env = tg_env();
    // Every type created: the bot's setting at start names them all.
    let all: Vec<String> = [
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(spec::telegram().update_fields().into_iter().filter(|f| {
        ![
            "message",
            "edited_message",
            "channel_post",
            "edited_channel_post",
        ]
        .contains(&f.as_str())
    }))
    .collect();
    let quoted: Vec<String> = all.iter().map(|t| format!("{t:?}")).collect();
    let mock = mock_telegram(
        &env,
        &format!(
            "every_type = true\nupdates = 28\nallowed_updates = [{}]\n",
            quoted.join(", ")
        ),
    );
    let out = env.run(&[
        "telegram",
        "--telegram-api-base",
        &mock.url,
        "--until-idle",
        "--sink",
        "file",
        "--file-path",
        "o.jsonl",
        "--summary",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env.dead_letters().is_empty(), "{:?}", env.dead_letters());
    let records = env.records("o.jsonl");
    let kinds: BTreeSet<String> = records
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_owned())
        .collect();
    let want: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(
        kinds, want,
        "every Update field of the Bot API, as its kind"
    );
    // Each record's kind is the field its update carries.
    for r in &records {
        let raw = &r["raw"];
        assert!(raw.get(r["kind"].as_str().unwrap()).is_some(), "{r}");
    }
    let business = records
        .iter()
        .find(|r| r["kind"] == "business_message")
        .unwrap();
    assert_eq!(business["text"], "a business message");
    assert_eq!(mock.get("/mock/state")["pending"], 0);
}

#[test]
fn types_the_bot_did_not_ask_for_are_recorded_not_dropped() {
    let env = tg_env();
    // Updates of every type are queued before ingest asks for messages only:
    // the Bot API delivers them anyway (allowed_updates does not affect
    // updates created before the call), and ingest records each one.
    let mock = mock_telegram(&env, "every_type = true\nupdates = 2\n");
    let out = env.run(&[
        "telegram",
        "--telegram-api-base",
        &mock.url,
        "--allowed-updates",
        "message",
        "--until-idle",
        "--sink",
        "file",
        "--file-path",
        "o.jsonl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let state = mock.get("/mock/state");
    assert_eq!(
        state["calls"][0]["allowed_updates"][0], "message",
        "{state}"
    );
    let records = env.records("o.jsonl");
    let unasked = records.iter().filter(|r| r["kind"] != "message").count();
    // The default setting at creation leaves out the three opt-in types.
    assert_eq!(unasked, OTHER_TYPE_COUNT - 3, "{records:?}");
    assert_eq!(records.len(), 2 + OTHER_TYPE_COUNT - 3);
    assert_eq!(state["pending"], 0);
}

/// `Update` fields besides the four plain message kinds (Bot API 10.1).
const OTHER_TYPE_COUNT: usize = 21;

#[test]
fn the_lock_file_stops_a_second_poller_of_the_same_bot() {
    let env = tg_env();
    let mock = mock_telegram(&env, "updates = 5\n");
    let mut first = env
        .cmd()
        .args([
            "telegram",
            "--telegram-api-base",
            &mock.url,
            "--sink",
            "file",
            "--file-path",
            "o.jsonl",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(first.stderr.take().unwrap()).lines();
    wait_for(&mut lines, "polling Telegram");
    let out = env.run(&[
        "telegram",
        "--telegram-api-base",
        &mock.url,
        "--until-idle",
        "--sink",
        "stdout",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("another ingest run is polling this Telegram bot"),
        "{err}"
    );
    assert!(!err.contains("test-bot-token"), "the token leaked: {err}");
    let locks: Vec<String> = std::fs::read_dir(env.path("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        locks.iter().any(|n| n.ends_with(".lock"))
            && locks.iter().all(|n| !n.contains("test-bot-token")),
        "{locks:?}"
    );
    signal(&first, libc::SIGTERM);
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert_eq!(first.wait().unwrap().code(), Some(0), "{rest:?}");
    assert_eq!(env.records("o.jsonl").len(), 5);
}

#[test]
fn conflicts_say_which_and_how_to_fix() {
    let env = tg_env();
    let mock = mock_telegram(
        &env,
        "updates = 3\nwebhook_url = \"https://example.invalid/hook\"\n",
    );
    let out = env.run(&[
        "telegram",
        "--telegram-api-base",
        &mock.url,
        "--until-idle",
        "--sink",
        "stdout",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("a webhook is set for this bot (https://example.invalid/hook)")
            && err.contains("--delete-webhook"),
        "{err}"
    );
    let out = env.run(&[
        "telegram",
        "--telegram-api-base",
        &mock.url,
        "--until-idle",
        "--delete-webhook",
        "--sink",
        "file",
        "--file-path",
        "o.jsonl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.records("o.jsonl").len(), 3, "pending updates kept");

    let env = tg_env();
    let mock = mock_telegram(
        &env,
        "updates = 3\n[[call]]\nstatus = 409\nkind = \"other_poller\"\n",
    );
    let out = env.run(&[
        "telegram",
        "--telegram-api-base",
        &mock.url,
        "--until-idle",
        "--sink",
        "stdout",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("another program is polling this bot"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rate_limits_wait_retry_after_and_server_errors_back_off() {
    let env = tg_env();
    let mock = mock_telegram(
        &env,
        "updates = 3\n[[call]]\nstatus = 429\nretry_after = 1\n[[call]]\nstatus = 500\n",
    );
    let out = env.run(&[
        "telegram",
        "--telegram-api-base",
        &mock.url,
        "--until-idle",
        "--sink",
        "file",
        "--file-path",
        "o.jsonl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.records("o.jsonl").len(), 3);
    let calls = mock.get("/mock/state")["calls"].as_array().unwrap().clone();
    let statuses: Vec<u64> = calls
        .iter()
        .map(|c| c["status"].as_u64().unwrap())
        .collect();
    assert_eq!(&statuses[..3], [429, 500, 200]);
    let gap = calls[1]["at_ms"].as_u64().unwrap() - calls[0]["at_ms"].as_u64().unwrap();
    assert!(gap >= 990, "waited retry_after = 1 s, not {gap} ms");
}

#[test]
fn a_refused_token_is_fatal_and_never_printed() {
    let env = tg_env();
    let mock = mock_telegram(&env, "token = \"1:the-right-one\"\n");
    let start = Instant::now();
    let out = env.run(&[
        "telegram",
        "--telegram-api-base",
        &mock.url,
        "--until-idle",
        "--sink",
        "stdout",
        "--log-format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(start.elapsed() < Duration::from_secs(20));
    let err = stderr(&out);
    assert!(
        err.contains("Telegram refused the bot token") && err.contains("TELEGRAM_BOT_TOKEN"),
        "{err}"
    );
    assert!(!err.contains("test-bot-token"), "the token leaked: {err}");
    let out = env
        .cmd()
        .env_remove("TELEGRAM_BOT_TOKEN")
        .args(["telegram", "--sink", "stdout"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
}

#[test]
fn webhook_checks_the_secret_caps_bodies_and_records_redeliveries_once() {
    let env = tg_env();
    let addr = free_addr();
    let mut child = env
        .cmd()
        .args([
            "telegram",
            "--webhook",
            &addr,
            "--secret-token",
            "s3cret-token",
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
    wait_for(&mut lines, "webhook listening");
    let update = r#"{"update_id":77,"message":{"message_id":5,"date":1795000000,"chat":{"id":-4001,"type":"group","title":"Data team"},"from":{"id":9,"is_bot":false,"first_name":"Ada"},"text":"via webhook"}}"#;
    let json = ("Content-Type", "application/json");
    let (status, _) = http(&addr, "POST", "/telegram", &[json], update.as_bytes());
    assert_eq!(status, 401, "missing secret");
    let (status, _) = http(
        &addr,
        "POST",
        "/telegram",
        &[json, ("X-Telegram-Bot-Api-Secret-Token", "s3cret-tokeN")],
        update.as_bytes(),
    );
    assert_eq!(status, 401, "wrong secret");
    let good = [json, ("X-Telegram-Bot-Api-Secret-Token", "s3cret-token")];
    let big = format!(
        r#"{{"update_id":78,"message":{{"message_id":6,"date":1,"chat":{{"id":1,"type":"private"}},"text":"{}"}}}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let (status, _) = http(&addr, "POST", "/telegram", &good, big.as_bytes());
    assert_eq!(status, 413, "oversized body");
    let (status, _) = http(&addr, "POST", "/telegram", &good, b"{not json");
    assert_eq!(status, 200, "dead-lettered: Telegram must not resend it");
    for _ in 0..3 {
        let (status, body) = http(&addr, "POST", "/telegram", &good, update.as_bytes());
        assert_eq!(status, 200, "{body}");
    }
    signal(&child, libc::SIGTERM);
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{rest:?}");
    let records = env.records("o.jsonl");
    assert_eq!(records.len(), 1, "recorded once");
    assert_eq!(records[0]["id"], "telegram:-4001:5");
    assert_eq!(records[0]["text"], "via webhook");
    let summary: Value = rest
        .iter()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap();
    assert_eq!(summary["source"]["duplicates"], 2);
}

#[test]
fn account_activity_crc_signatures_and_events() {
    let env = tg_env();
    let addr = free_addr();
    let mut child = env
        .cmd()
        .env("TWITTER_CONSUMER_SECRET", "consumer-secret")
        .args([
            "twitter-webhook",
            "--listen",
            &addr,
            "--sink",
            "file",
            "--file-path",
            "o.jsonl",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    wait_for(&mut lines, "webhook listening");
    let (status, body) = http(
        &addr,
        "GET",
        "/webhooks/twitter?crc_token=crc-token-123",
        &[],
        b"",
    );
    assert_eq!(status, 200);
    let vector = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/crc_vector.txt"
    ))
    .unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["response_token"], format!("sha256={}", vector.trim()));
    let (status, _) = http(&addr, "GET", "/webhooks/twitter", &[], b"");
    assert_eq!(status, 400);

    let payload = r#"{"for_user_id":"2244994945","tweet_create_events":[{"created_at":"Wed Oct 10 20:19:24 +0000 2018","id":1050118621198921728,"id_str":"1050118621198921728","text":"To make room for more expression…","source":"Twitter Web Client","user":{"id":6253282,"id_str":"6253282","name":"Twitter API","screen_name":"TwitterAPI"},"lang":"en"}],"favorite_events":[{"id":"a7ba59eab0bfcba386f7acedac279542","created_at":"Mon Mar 26 16:33:26 +0000 2018","timestamp_ms":1522082006140}]}"#;
    // The signature computed independently with Python's hmac for this exact body.
    let sig = Command::new("python3")
        .args(["-c", "import sys,hmac,hashlib,base64;print('sha256='+base64.b64encode(hmac.new(b'consumer-secret',sys.stdin.buffer.read(),hashlib.sha256).digest()).decode())"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(payload.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let sig = String::from_utf8(sig.stdout).unwrap().trim().to_owned();
    let (status, _) = http(&addr, "POST", "/webhooks/twitter", &[], payload.as_bytes());
    assert_eq!(status, 401, "missing signature");
    let (status, _) = http(
        &addr,
        "POST",
        "/webhooks/twitter",
        &[("x-twitter-webhooks-signature", "sha256=AAAA")],
        payload.as_bytes(),
    );
    assert_eq!(status, 401, "bad signature");
    let tampered = payload.replace("expression", "expressions");
    let (status, _) = http(
        &addr,
        "POST",
        "/webhooks/twitter",
        &[("x-twitter-webhooks-signature", &sig)],
        tampered.as_bytes(),
    );
    assert_eq!(status, 401, "signature of another body");
    let (status, body) = http(
        &addr,
        "POST",
        "/webhooks/twitter",
        &[("x-twitter-webhooks-signature", &sig)],
        payload.as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    signal(&child, libc::SIGTERM);
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{rest:?}");
    let records = env.records("o.jsonl");
    assert_eq!(records.len(), 2);
    let tweet = records.iter().find(|r| r["kind"] == "tweet").unwrap();
    assert_eq!(tweet["id"], "twitter:1050118621198921728");
    assert_eq!(tweet["author"]["username"], "TwitterAPI");
    assert_eq!(tweet["created_at"], "2018-10-10T20:19:24.000Z");
    let event = records
        .iter()
        .find(|r| r["kind"] == "activity_event")
        .unwrap();
    assert_eq!(
        event["id"],
        "twitter:activity:2244994945:favorite_events:a7ba59eab0bfcba386f7acedac279542"
    );
    assert_eq!(event["raw"]["timestamp_ms"], 1522082006140u64);
}

#[test]
fn webhook_serves_https_with_certificate_files() {
    let env = tg_env();
    let (cert, key) = (env.path("cert.pem"), env.path("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let addr = free_addr();
    let mut child = env
        .cmd()
        .args([
            "telegram",
            "--webhook",
            &addr,
            "--secret-token",
            "tls-secret",
            "--sink",
            "file",
            "--file-path",
            "o.jsonl",
            "--tls-cert",
        ])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    wait_for(&mut lines, "webhook listening (TLS)");
    let update = r#"{"update_id":1,"message":{"message_id":1,"date":1795000000,"chat":{"id":1,"type":"private","first_name":"Ada"},"text":"over TLS"}}"#;
    // curl: an independent TLS client that checks the certificate.
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&cert)
        .args([
            "-H",
            "Content-Type: application/json",
            "-H",
            "X-Telegram-Bot-Api-Secret-Token: tls-secret",
            "--data-binary",
            update,
        ])
        .arg(format!("https://{addr}/telegram"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Plain HTTP to the TLS port gets no HTTP answer.
    let (status, _) = http(
        &addr,
        "POST",
        "/telegram",
        &[("X-Telegram-Bot-Api-Secret-Token", "tls-secret")],
        update.as_bytes(),
    );
    assert_ne!(status, 200);
    signal(&child, libc::SIGTERM);
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{rest:?}");
    assert_eq!(env.records("o.jsonl")[0]["text"], "over TLS");
}

/// `INGEST_UNTIL_IDLE=1` is `--until-idle`: the run stops once the mock is drained
/// (before: the twin did not exist and the run polled forever). `INGEST_NO_RAW=0`
/// and `=false` leave the flag off, `=1` turns it on.
#[test]
fn boolean_environment_twins_take_1_and_0() {
    for (no_raw, want_raw) in [("0", true), ("false", true), ("1", false), ("true", false)] {
        let env = tg_env()
            .with("INGEST_UNTIL_IDLE", "1")
            .with("INGEST_NO_RAW", no_raw);
        let mut child = env
            .cmd()
            .args([
                "telegram",
                "--mock",
                "--sink",
                "file",
                "--file-path",
                "o.jsonl",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (status, err) = finish(&mut child, Duration::from_secs(120));
        assert!(status.success(), "INGEST_NO_RAW={no_raw}: {err}");
        let records = env.records("o.jsonl");
        assert!(!records.is_empty(), "{err}");
        assert!(
            records.iter().all(|r| r.get("raw").is_some() == want_raw),
            "INGEST_NO_RAW={no_raw}: raw present should be {want_raw}"
        );
    }
}

/// `--allowed-updates` reaches Telegram on every `getUpdates`, and the mock
/// filters as Telegram does: only the named types are delivered, the others are
/// dropped. A run without the flag sends the empty list (Telegram's default),
/// so a previous run's filter does not linger (an absent list keeps it).
#[test]
fn allowed_updates_are_sent_and_decide_the_updates_created_after_the_call() {
    let env = tg_env();
    let mock = mock_telegram(&env, "updates = 40\n");
    let run = |extra: &[&str], file: &str| {
        let mut args = vec!["telegram", "--telegram-api-base", &mock.url];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--until-idle", "--sink", "file", "--file-path", file]);
        let out = env.run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        env.records(file)
    };
    // The 40 updates were created before the call: the Bot API delivers them
    // whatever `allowed_updates` says, channel posts included, and ingest
    // records every one.
    let records = run(&["--allowed-updates", "message,edited_message"], "a.jsonl");
    assert_eq!(update_ids(&records), (FIRST..FIRST + 40).collect());
    assert!(records.iter().any(|r| r["kind"] == "channel_post"));
    let state = mock.get("/mock/state");
    let polls: Vec<&Value> = state["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["method"] == "getUpdates")
        .collect();
    assert!(!polls.is_empty());
    let first_calls = state["calls"].as_array().unwrap().len();
    for call in &polls {
        assert_eq!(
            call["allowed_updates"],
            serde_json::json!(["message", "edited_message"]),
            "{call}"
        );
    }
    // Updates created after the call follow the setting: the mock's update n
    // is in a channel when n % 4 == 3, an edit when n % 7 == 6.
    let (status, body) = http(
        mock.mock_url.trim_start_matches("http://"),
        "POST",
        "/mock/produce?count=40",
        &[],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    // Without the flag: the empty list (back to the default), every call.
    let records = run(&[], "b.jsonl");
    let want = (40..80).filter(|n| n % 4 != 3).count();
    assert_eq!(records.len(), want);
    assert!(records.iter().any(|r| r["kind"] == "edited_message"));
    assert!(
        records
            .iter()
            .all(|r| r["kind"] == "message" || r["kind"] == "edited_message"),
        "an update of a type the setting left out was created"
    );
    let state = mock.get("/mock/state");
    let later: Vec<&Value> = state["calls"].as_array().unwrap()[first_calls..]
        .iter()
        .filter(|c| c["method"] == "getUpdates")
        .collect();
    assert!(!later.is_empty());
    assert!(
        later
            .iter()
            .all(|c| c["allowed_updates"] == serde_json::json!([])),
        "{later:?}"
    );
}

/// "401/404 (a bad token) exit 1 at once": the Bot API answers 404 to a token
/// it does not know the shape of; the run stops after that one answer.
#[test]
fn a_404_for_the_token_is_fatal() {
    let env = Env::new().with("TELEGRAM_BOT_TOKEN", "424242:bad token!");
    let mock = mock_telegram(&env, "updates = 5\n");
    let out = env.run(&[
        "telegram",
        "--telegram-api-base",
        &mock.url,
        "--until-idle",
        "--sink",
        "stdout",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("Telegram refused the bot token") && err.contains("404"),
        "{err}"
    );
    assert!(!err.contains("bad token!"), "the token leaked: {err}");
    assert_eq!(mock.get("/mock/state")["pending"], 5, "nothing was read");
}
