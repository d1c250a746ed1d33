//! `--media`: the photos, videos and files records point at, stored beside
//! the records. The real binary against the mock Bot API (its own process,
//! behind the spec-checking proxy) and the local S3 server; every stored
//! object is checked against the mock's own bytes (SHA-256).
#![cfg(feature = "mock")]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ingest::mock::media::{self, FILES};
use serde_json::Value;
use sha2::{Digest, Sha256};

mod common;
use common::*;

const BOT_TOKEN: &str = "424242:media-secret-token-QWERTY";

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SHA-256 of each catalog file's bytes, by the record key the Telegram mock gives it.
fn telegram_expected() -> BTreeMap<String, (String, usize)> {
    FILES
        .iter()
        .filter(|f| f.size < 1_000_000)
        .map(|f| {
            let key = format!("u-{}", f.name.split('.').next().unwrap());
            (key, (sha256(&media::bytes(f)), f.size))
        })
        .collect()
}

fn tg_env() -> Env {
    Env::new()
        .with("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
        .with("RUST_LOG", "info")
}

/// Messages only: 40 updates, 8 of them with media (the shared photo twice,
/// a video, the fail-twice photo, the one over 20 MiB, the gone one, a voice
/// note and a PDF).
fn mock(env: &Env, extra: &str) -> MockProcess {
    let updates = if extra.contains("updates =") {
        ""
    } else {
        "updates = 40\n"
    };
    MockProcess::start(
        "telegram",
        env.dir.path(),
        &format!("every_type = false\n{updates}{extra}"),
    )
}

/// Every media item of the records, with the record's id.
fn items(records: &[Value]) -> Vec<(String, Value)> {
    records
        .iter()
        .flat_map(|r| {
            let id = r["id"].as_str().unwrap().to_owned();
            r["media"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |m| (id.clone(), m))
        })
        .collect()
}

/// Checks a stored item: its file holds the mock's bytes.
fn check_stored_file(m: &Value, expected: &BTreeMap<String, (String, usize)>) {
    let key = m["key"].as_str().unwrap();
    let (sha, size) = &expected[key];
    let stored = &m["stored"];
    assert_eq!(stored["sha256"], *sha, "{m}");
    assert_eq!(stored["bytes"], *size as u64, "{m}");
    let path = stored["uri"]
        .as_str()
        .unwrap()
        .strip_prefix("file://")
        .unwrap();
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(sha256(&bytes), *sha, "{path}");
    assert!(
        path.contains(&format!("/media/telegram/{}/{sha}.", &sha[..2])),
        "{path}"
    );
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn capture(env: &Env, api: &str, extra: &[&str]) -> std::process::Output {
    env.cmd()
        .args(["telegram", "--until-idle", "--media", "--sink", "file"])
        .args([
            "--file-path",
            "out.jsonl",
            "--summary",
            "--telegram-api-base",
            api,
        ])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn telegram_media_is_stored_once_each_and_marked_in_its_record() {
    let env = tg_env();
    let mock = mock(&env, "");
    let out = capture(&env, &mock.url, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = env.records("out.jsonl");
    assert_eq!(records.len(), 40);
    let expected = telegram_expected();
    let items = items(&records);
    assert_eq!(items.len(), 8, "{items:?}");
    let by_key = |k: &str| -> Vec<&Value> {
        items
            .iter()
            .filter(|(_, m)| m["key"] == k)
            .map(|(_, m)| m)
            .collect()
    };
    for key in ["u-photo-shared", "u-clip", "u-flaky", "u-note", "u-paper"] {
        for m in by_key(key) {
            check_stored_file(m, &expected);
        }
    }
    // The shared photo: two records, one object.
    let shared = by_key("u-photo-shared");
    assert_eq!(shared.len(), 2);
    assert_eq!(shared[0]["stored"], shared[1]["stored"]);
    assert_eq!(
        files_under(&env.path("media")).len(),
        5,
        "one file per distinct photo/file"
    );
    // Over the limit: skipped before any byte; gone: an error after no retry.
    let huge = by_key("u-huge");
    assert_eq!(
        (huge[0]["stored"].clone(), huge[0]["skipped"].clone()),
        (Value::Null, "too_large".into())
    );
    let gone = by_key("u-gone");
    assert!(gone[0]["stored"].is_null());
    assert!(
        gone[0]["error"].as_str().unwrap().contains("404"),
        "{}",
        gone[0]
    );
    let s = summary(&out);
    let media = &s["source"]["media"];
    assert_eq!(
        (
            &media["stored"],
            &media["reused"],
            &media["skipped"],
            &media["failed"],
            &media["retries"]
        ),
        (&5.into(), &1.into(), &1.into(), &1.into(), &2.into()),
        "{s}"
    );
    let photo_bytes: u64 = ["u-photo-shared", "u-clip", "u-flaky", "u-note", "u-paper"]
        .iter()
        .map(|k| expected[*k].1 as u64)
        .sum();
    assert_eq!(media["bytes"], photo_bytes);
    // The fail-twice file was asked for three times; no file was asked for twice otherwise.
    let state = mock.get("/mock/state");
    let downloads = state["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["method"] == "file")
        .count();
    assert_eq!(
        downloads,
        5 + 2 + 1,
        "5 stored, 2 failed attempts of the flaky one, 1 gone: {state}"
    );
}

#[test]
fn items_over_max_bytes_or_of_types_not_asked_for_are_skipped() {
    let env = tg_env().config("[media]\nmax_bytes = 30000\ntypes = [\"photo\", \"voice\"]\n");
    let mock = mock(&env, "");
    let out = capture(&env, &mock.url, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = env.records("out.jsonl");
    let skipped: BTreeMap<String, String> = items(&records)
        .into_iter()
        .filter(|(_, m)| m["skipped"].is_string())
        .map(|(_, m)| {
            (
                m["key"].as_str().unwrap().to_owned(),
                m["skipped"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(skipped["u-clip"], "type");
    assert_eq!(skipped["u-paper"], "type");
    assert_eq!(skipped["u-huge"], "type");
    // The photos are 24 000 and 15 000 bytes, the voice note 8 000: under the limit.
    assert!(!skipped.contains_key("u-photo-shared") && !skipped.contains_key("u-note"));
    let env = tg_env().config("[media]\nmax_bytes = 20000\n");
    let mock = self::mock(&env, "");
    let out = capture(&env, &mock.url, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shared: Vec<_> = items(&env.records("out.jsonl"))
        .into_iter()
        .filter(|(_, m)| m["key"] == "u-photo-shared")
        .collect();
    assert_eq!(shared.len(), 2);
    assert!(
        shared.iter().all(|(_, m)| m["skipped"] == "too_large"),
        "{shared:?}"
    );
}

#[test]
fn the_bot_token_reaches_no_record_log_dead_letter_or_metric() {
    let env = tg_env()
        .with("RUST_LOG", "debug")
        .config("[sinks.refuses]\ntype = \"file\"\npath = \"blocker/x.jsonl\"\nretry = { max_attempts = 1 }\n");
    std::fs::write(
        env.path("blocker"),
        "a file where the sink wants a directory",
    )
    .unwrap();
    // The file server quotes the request path (the token in it) in its error
    // bodies: the gone file's error and the flaky file's retries carry it
    // towards the record, the log and (through the sink that cannot write)
    // the dead letters.
    let mock = mock(&env, "echo_path_in_errors = true");
    let logged = |name: &str| std::fs::File::create(env.path(name)).unwrap();
    let first = env
        .cmd()
        .args([
            "telegram",
            "--until-idle",
            "--media",
            "--sink",
            "file",
            "--sink",
            "refuses",
        ])
        .args([
            "--file-path",
            "first.jsonl",
            "--summary",
            "--telegram-api-base",
            &mock.url,
        ])
        .stderr(logged("first.log"))
        .status()
        .unwrap();
    assert_eq!(first.code(), Some(1), "the refusing sink dead-letters");
    assert!(!env.dead_letters().is_empty());
    // The offset stayed: a second run takes the same updates, with metrics.
    let metrics = free_addr();
    let mut child = env
        .cmd()
        .args([
            "telegram",
            "--media",
            "--sink",
            "file",
            "--file-path",
            "out.jsonl",
        ])
        .args([
            "--summary",
            "--telegram-api-base",
            &mock.url,
            "--poll-timeout",
            "1",
        ])
        .args(["--metrics-addr", &metrics])
        .stderr(logged("second.log"))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.records("out.jsonl").len() < 40 {
        assert!(Instant::now() < deadline, "the records did not arrive");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, metrics_text) = http(&metrics, "GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    assert!(
        metrics_text.contains("ingest_media_items"),
        "{metrics_text}"
    );
    signal(&child, libc::SIGTERM);
    assert!(wait_with_timeout(&mut child, Duration::from_secs(30)).success());
    let log = std::fs::read_to_string(env.path("first.log")).unwrap();
    assert!(log.contains("media download failed; retrying"), "{log}");
    let mut texts = vec![("metrics".to_owned(), metrics_text)];
    for f in files_under(env.dir.path()) {
        if f.components().any(|c| c.as_os_str() == "media") {
            continue; // the mock's bytes
        }
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        texts.push((f.display().to_string(), text));
    }
    // The quoted path reached the record and the dead letters, redacted.
    for name in ["first.jsonl", "dead-letters.jsonl"] {
        let (_, text) = texts.iter().find(|(n, _)| n.ends_with(name)).unwrap();
        assert!(
            text.contains("HTTP 404") && text.contains("/file/bot***/photos/gone.jpg"),
            "{name}: {text}"
        );
    }
    let secret = BOT_TOKEN.split_once(':').unwrap().1;
    for (name, text) in &texts {
        assert!(!text.contains(secret), "the token is in {name}");
    }
}

/// Every stored item of `records` is readable and holds the mock's bytes.
fn check_all_stored(records: &[Value]) {
    let expected = telegram_expected();
    for (id, m) in items(records) {
        if !m["stored"].is_null() {
            check_stored_file(&m, &expected);
        } else {
            assert!(
                ["u-huge", "u-gone"].contains(&m["key"].as_str().unwrap()),
                "{id}: {m}"
            );
        }
    }
}

#[test]
fn kill_9_during_media_downloads_then_a_rerun_leaves_every_confirmed_records_media_readable() {
    let env = tg_env();
    // Downloads take 300 ms each: a kill lands inside one.
    let mock = mock(
        &env,
        "updates = 8\nrate = 20.0\ntotal_updates = 40\nmedia_delay_ms = 300",
    );
    let mut child = env
        .cmd()
        .args([
            "telegram",
            "--media",
            "--sink",
            "file",
            "--file-path",
            "out.jsonl",
        ])
        .args(["--telegram-api-base", &mock.url, "--poll-timeout", "1"])
        .stderr(std::fs::File::create(env.path("first.log")).unwrap())
        .spawn()
        .unwrap();
    let offset_file = || {
        std::fs::read_dir(env.path("state"))
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(".offset.json"))
    };
    // Wait for a committed offset, then for a download the run started after
    // it and has not finished (the last call the mock saw is that download).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut calls_at_checkpoint = None;
    loop {
        assert!(Instant::now() < deadline, "no download after a checkpoint");
        let calls = mock.get("/mock/state")["calls"].as_array().unwrap().clone();
        match calls_at_checkpoint {
            None if offset_file().is_some() => calls_at_checkpoint = Some(calls.len()),
            Some(n) if calls.len() > n && calls.last().unwrap()["method"] == "file" => break,
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // What the killed run confirmed: every update below the offset is in the
    // file with its media readable.
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(offset_file().unwrap()).unwrap()).unwrap();
    let offset = saved["offset"].as_i64().unwrap();
    assert!(offset > 500_000, "{saved}");
    let before = env.records("out.jsonl");
    let confirmed: Vec<Value> = before
        .iter()
        .filter(|r| r["refs"]["update_id"].as_i64().unwrap() < offset)
        .cloned()
        .collect();
    assert_eq!(confirmed.len() as i64, offset - 500_000);
    assert!(
        !items(&confirmed).is_empty(),
        "a confirmed record with media"
    );
    check_all_stored(&before);
    // The rerun delivers the rest, media included.
    let deadline = Instant::now() + Duration::from_secs(30);
    while mock.get("/mock/state")["produced"] != 40 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = capture(&env, &mock.url, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = env.records("out.jsonl");
    let ids: std::collections::BTreeSet<i64> = after
        .iter()
        .map(|r| r["refs"]["update_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (500_000..500_040).collect());
    check_all_stored(&after);
    let with_media: std::collections::BTreeSet<&str> = after
        .iter()
        .filter(|r| r["media"].is_array())
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(with_media.len(), 8);
}

#[cfg(feature = "s3")]
const S3_MEDIA: &str = r#"
import boto3, sys, json, hashlib
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
if sys.argv[3] == "create":
    s3.create_bucket(Bucket=sys.argv[2])
    print("[]")
    sys.exit(0)
out = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2]):
    for o in page.get("Contents", []):
        got = s3.get_object(Bucket=sys.argv[2], Key=o["Key"])
        body = got["Body"].read()
        out.append({"key": o["Key"], "sha256": hashlib.sha256(body).hexdigest(),
                    "bytes": len(body), "content_type": got.get("ContentType")})
print(json.dumps(out))
"#;

#[cfg(feature = "s3")]
#[test]
fn telegram_media_goes_to_s3_once_per_file_under_the_prefix() {
    let endpoint = service("INGEST_TEST_S3_ENDPOINT");
    let bucket = unique("media", '-');
    py(S3_MEDIA, &[&endpoint, &bucket, "create"]);
    let env = tg_env()
        .with("AWS_ACCESS_KEY_ID", "test")
        .with("AWS_SECRET_ACCESS_KEY", "test")
        .with("AWS_REGION", "us-east-1")
        .with("AWS_EC2_METADATA_DISABLED", "true")
        .config(&format!(
            "[media]\nstore = \"s3\"\nbucket = \"{bucket}\"\nprefix = \"archive/\"\nendpoint = \"{endpoint}\"\nforce_path_style = true\n"
        ));
    let mock = mock(&env, "");
    let out = capture(&env, &mock.url, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let objects = py(S3_MEDIA, &[&endpoint, &bucket, "list"]);
    let objects = objects.as_array().unwrap();
    let expected = telegram_expected();
    let want: std::collections::BTreeSet<&str> =
        ["u-photo-shared", "u-clip", "u-flaky", "u-note", "u-paper"]
            .iter()
            .map(|k| expected[*k].0.as_str())
            .collect();
    let got: std::collections::BTreeSet<&str> = objects
        .iter()
        .map(|o| o["sha256"].as_str().unwrap())
        .collect();
    assert_eq!(got, want, "{objects:?}");
    assert_eq!(objects.len(), 5, "one object per distinct file");
    for o in objects {
        let (key, sha) = (o["key"].as_str().unwrap(), o["sha256"].as_str().unwrap());
        assert!(
            key.starts_with(&format!("archive/media/telegram/{}/{sha}.", &sha[..2])),
            "{key}"
        );
    }
    let records = env.records("out.jsonl");
    for (_, m) in items(&records) {
        if let Some(uri) = m["stored"]["uri"].as_str() {
            let key = uri.strip_prefix(&format!("s3://{bucket}/")).unwrap();
            let o = objects.iter().find(|o| o["key"] == key).unwrap();
            assert_eq!(o["sha256"], m["stored"]["sha256"]);
            assert_eq!(o["content_type"], m["stored"]["content_type"]);
        }
    }
}

#[test]
fn check_writes_reads_back_and_deletes_a_probe_in_the_media_store() {
    let env = Env::new();
    let out = env.run(&["check", "--media"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("ok   media store (file): write, read back and delete in file://"),
        "{text}"
    );
    // Nothing left behind but the directory.
    assert_eq!(files_under(&env.path("media")).len(), 0);
    // A store that cannot be written: FAIL and exit 1.
    let env = Env::new().config("[media]\nenabled = true\npath = \"blocked/{sha256}\"\n");
    std::fs::write(
        env.path("blocked"),
        "a file where the store wants a directory",
    )
    .unwrap();
    let out = env.run(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL media store (file)") && text.contains("blocked"),
        "{text}"
    );
}

#[cfg(feature = "s3")]
#[test]
fn check_probes_the_s3_media_store() {
    let endpoint = service("INGEST_TEST_S3_ENDPOINT");
    let bucket = unique("media", '-');
    py(S3_MEDIA, &[&endpoint, &bucket, "create"]);
    let env = Env::new()
        .with("AWS_ACCESS_KEY_ID", "test")
        .with("AWS_SECRET_ACCESS_KEY", "test")
        .with("AWS_REGION", "us-east-1")
        .with("AWS_EC2_METADATA_DISABLED", "true")
        .config(&format!(
            "[media]\nenabled = true\nstore = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nforce_path_style = true\n"
        ));
    let out = env.run(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains(&format!(
            "ok   media store (s3): PUT, GET and DELETE of s3://{bucket}/media/.ingest-probe-"
        )),
        "{text}"
    );
    assert_eq!(
        py(S3_MEDIA, &[&endpoint, &bucket, "list"]),
        serde_json::json!([])
    );
    let env = Env::new()
        .with("AWS_ACCESS_KEY_ID", "test")
        .with("AWS_SECRET_ACCESS_KEY", "test")
        .with("AWS_EC2_METADATA_DISABLED", "true")
        .config(&format!(
            "[media]\nenabled = true\nstore = \"s3\"\nbucket = \"no-such-{bucket}\"\nendpoint = \"{endpoint}\"\nforce_path_style = true\n"
        ));
    let out = env.run(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL media store (s3)") && text.contains("does not exist"),
        "{text}"
    );
}
