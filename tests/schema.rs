//! `ingest schema`, and every source's records with `--mock` validated
//! against it (the readers in `tests/common` validate every record any test
//! reads; this test makes sure each source is covered).

use std::process::{Command, Stdio};

use serde_json::Value;

mod common;
use common::*;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sample.jsonl");

/// Asserts that `records` came and that each validates against `ingest schema`.
fn all_valid(what: &str, records: &[Value]) {
    assert!(!records.is_empty(), "{what}: no records");
    for r in records {
        assert!(is_record(r), "{what}: not a record: {r}");
        validate_record(r);
    }
}

#[test]
fn the_json_schema_is_printed_by_default_and_rejects_a_broken_record() {
    let env = Env::new();
    let out = env.run(&["schema"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["title"], "ingest record");
    let same = env.run(&["schema", "--format", "json-schema"]);
    assert_eq!(same.stdout, out.stdout);
    let validator = jsonschema::validator_for(&schema).unwrap();
    let good = env.run(&["replay", SAMPLE, "--sink", "file", "--file-path", "o.jsonl"]);
    assert!(good.status.success(), "{}", stderr(&good));
    let record = env.records("o.jsonl").remove(0);
    assert!(validator.is_valid(&record));
    // The schema can fail: a wrong type, a missing field, an unknown field.
    let mut bad = record.clone();
    bad["platform"] = "myspace".into();
    assert!(!validator.is_valid(&bad));
    let mut bad = record.clone();
    bad.as_object_mut().unwrap().remove("run");
    assert!(!validator.is_valid(&bad));
    let mut bad = record;
    bad["surprise"] = 1.into();
    assert!(!validator.is_valid(&bad));
    let out = env.run(&["schema", "--format", "yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[cfg(feature = "parquet")]
#[test]
fn the_arrow_schema_names_the_json_schema_fields() {
    let env = Env::new();
    let out = env.run(&["schema", "--format", "arrow"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let arrow: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = arrow["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let json: Value = serde_json::from_slice(&env.run(&["schema"]).stdout).unwrap();
    let mut props: Vec<&str> = json["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    props.sort();
    assert_eq!(sorted, props);
    let created = arrow["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "created_at")
        .unwrap();
    assert_eq!(created["type"], "Timestamp(Millisecond, UTC)");
    let out = env.run(&["schema", "--format", "parquet"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("TIMESTAMP(MILLIS,true)"), "{text}");
}

#[cfg(not(feature = "parquet"))]
#[test]
fn the_arrow_schema_is_refused_clearly_without_parquet() {
    let out = Env::new().run(&["schema", "--format", "arrow"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("--features parquet"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn twitter_mock_records_validate() {
    let env = Env::new();
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/rules.toml");
    let out = env
        .cmd()
        .args(["twitter", "--mock", "--rules", rules, "--max-records", "40"])
        .args(["--sink", "file", "--file-path", "o.jsonl"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    all_valid("twitter --mock", &env.records("o.jsonl"));
}

#[test]
fn telegram_mock_records_validate() {
    let env = Env::new();
    let out = env
        .cmd()
        .args(["telegram", "--mock", "--until-idle"])
        .args(["--sink", "file", "--file-path", "o.jsonl"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    all_valid("telegram --mock", &env.records("o.jsonl"));
}

#[test]
fn replayed_sample_records_validate_with_and_without_raw() {
    let env = Env::new();
    for (flag, path) in [("--summary", "a.jsonl"), ("--no-raw", "b.jsonl")] {
        let out = env.run(&[
            "replay",
            SAMPLE,
            flag,
            "--sink",
            "file",
            "--file-path",
            path,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let records = env.records(path);
        assert!(records.len() > 20, "{}", records.len());
        all_valid("replay", &records);
    }
}

/// `sha256=` + base64(HMAC-SHA256(secret, body)), computed by Python.
fn signature(secret: &str, body: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", "import sys,hmac,hashlib,base64;print('sha256='+base64.b64encode(hmac.new(sys.argv[1].encode(),sys.stdin.buffer.read(),hashlib.sha256).digest()).decode())", secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn x_webhook_records_validate() {
    let env = Env::new().with("TWITTER_CONSUMER_SECRET", "s3cret");
    // Port 0: the webhook logs the port it bound.
    let mut child = env
        .cmd()
        .args(["twitter-webhook", "--listen", "127.0.0.1:0", "--summary"])
        .args(["--sink", "file", "--file-path", "o.jsonl"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let payload = r#"{"for_user_id":"2244994945","tweet_create_events":[{"created_at":"Wed Oct 10 20:19:24 +0000 2018","id_str":"1050118621198921728","text":"hi","user":{"id_str":"6253282","name":"Twitter API","screen_name":"TwitterAPI"},"lang":"en"}],"favorite_events":[{"id":"a7ba59eab0bfcba386f7acedac279542","created_at":"Mon Mar 26 16:33:26 +0000 2018","timestamp_ms":1522082006140,"favorited_status":{"id_str":"1","text":"x","user":{"id_str":"2"}},"user":{"id_str":"3","name":"U","screen_name":"u"}}]}"#;
    let sig = signature("s3cret", payload.as_bytes());
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let listening = wait_for(&mut lines, "webhook listening");
    let addr = listening
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("addr=")))
        .expect("the bound address")
        .to_owned();
    let rest =
        std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
    let (status, body) = http(
        &addr,
        "POST",
        "/webhooks/twitter",
        &[("x-twitter-webhooks-signature", &sig)],
        payload.as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    signal(&child, libc::SIGTERM);
    let status = wait_with_timeout(&mut child, std::time::Duration::from_secs(60));
    let err = rest.join().unwrap();
    assert!(status.success(), "{listening}{err}");
    let records = env.records("o.jsonl");
    assert!(records.len() >= 2, "{records:?}");
    all_valid("twitter-webhook", &records);
}
