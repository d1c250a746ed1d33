//! The `kafka` sink against a real Kafka-protocol broker (tansu, started by
//! `scripts/services`; some tests start and kill a broker of their own), read
//! back with an independent client (kcat, on its own librdkafka).

#![cfg(feature = "kafka")]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

use serde_json::Value;

fn brokers() -> String {
    service("INGEST_TEST_KAFKA_BROKERS")
}

/// A topic no other test (or earlier run) uses.
fn topic(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("ingest-test-{name}-{nanos}")
}

/// `n` X stream lines, ids from `first`, each matching a rule tagged `tag-<i % 3>`.
fn tweets(first: u64, n: u64, text_len: usize) -> String {
    let mut out = String::new();
    for i in first..first + n {
        let text = format!("tweet {i} ☕ {}", "x".repeat(text_len));
        let line = serde_json::json!({
            "data": {"id": i.to_string(), "text": text, "author_id": "42", "created_at": "2026-11-22T07:00:00.000Z"},
            "includes": {"users": [{"id": "42", "username": "k", "name": "K"}]},
            "matching_rules": [{"id": "9", "tag": format!("tag-{}", i % 3)}]
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

fn config(name: &str, brokers: &str, topic: &str, extra: &str) -> String {
    format!(
        "[sinks.{name}]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopic = \"{topic}\"\n{extra}\n\n[sinks.{name}.batch]\ntimeout_ms = 50\n"
    )
}

/// A broker of this test's own, on a free port, killed when dropped.
struct Broker {
    child: Child,
}

impl Broker {
    fn start_at(addr: &str) -> Broker {
        let tansu = service("INGEST_TEST_TANSU");
        let url = format!("tcp://{addr}");
        let child = Command::new(&tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = Command::new(&tansu)
                .args(["topic", "list", "--broker", &url])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "tansu at {addr} not ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        Broker { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn ids(records: &[Value]) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn replay_into_kafka_reads_back_with_kcat_keys_headers_and_payloads() {
    let (b, t) = (brokers(), topic("replay"));
    let env = Env::new().config(&config("k", &b, &t, ""));
    std::fs::write(env.path("in.jsonl"), tweets(1000, 300, 20)).unwrap();
    let out = env.run(&["replay", "in.jsonl", "--sink", "k", "--summary"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["sinks"]["k"]["delivered"], 300, "{s}");
    assert_eq!(s["dead_letters"], 0);

    let messages = kcat_read(&b, &t, 300);
    assert_eq!(messages.len(), 300, "exactly the records, no duplicates");
    let keys: BTreeSet<&str> = messages.iter().map(|m| m.key.as_str()).collect();
    let want: BTreeSet<String> = (1000..1300).map(|i| format!("twitter:{i}")).collect();
    assert_eq!(keys, want.iter().map(String::as_str).collect());
    for m in &messages {
        let record: Value = serde_json::from_str(&m.payload).unwrap();
        assert_eq!(record["id"], m.key.as_str(), "key = record id");
        let n: u64 = m.key.trim_start_matches("twitter:").parse().unwrap();
        assert!(
            record["text"]
                .as_str()
                .unwrap()
                .starts_with(&format!("tweet {n} ☕"))
        );
        let h: BTreeMap<&str, &str> = m
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(h.get("platform"), Some(&"twitter"), "{:?}", m.headers);
        assert_eq!(h.get("kind"), Some(&"tweet"));
        let tag = format!("tag-{}", n % 3);
        assert_eq!(h.get("rule_tag"), Some(&tag.as_str()));
    }
}

#[test]
fn every_compression_codec_round_trips() {
    let b = brokers();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let t = topic(&format!("codec-{codec}"));
        let env = Env::new().config(&config("k", &b, &t, &format!("compression = \"{codec}\"")));
        std::fs::write(env.path("in.jsonl"), tweets(1, 120, 300)).unwrap();
        let out = env.run(&["replay", "in.jsonl", "--sink", "k", "--summary"]);
        assert!(out.status.success(), "{codec}: {}", stderr(&out));
        let messages = kcat_read(&b, &t, 120);
        assert_eq!(messages.len(), 120, "{codec}");
        let texts: BTreeSet<String> = messages
            .iter()
            .map(|m| {
                let r: Value = serde_json::from_str(&m.payload).unwrap();
                r["text"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(texts.len(), 120, "{codec}");
        assert!(
            texts.iter().all(|t| t.ends_with(&"x".repeat(300))),
            "{codec}"
        );
    }
}

#[test]
fn fan_out_to_kafka_and_file_writes_identical_records() {
    let (b, t) = (brokers(), topic("fanout"));
    let env = Env::new().config(&format!(
        "{}\n[sinks.f]\ntype = \"file\"\npath = \"out.jsonl\"\n",
        config("k", &b, &t, "")
    ));
    std::fs::write(env.path("in.jsonl"), tweets(5000, 200, 10)).unwrap();
    let out = env.run(&["replay", "in.jsonl", "--sink", "k", "--sink", "f"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let file: BTreeSet<String> = std::fs::read_to_string(env.path("out.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let kafka: BTreeSet<String> = kcat_read(&b, &t, 200)
        .into_iter()
        .map(|m| m.payload)
        .collect();
    assert_eq!(file.len(), 200);
    assert_eq!(kafka, file, "the same bytes in both sinks");
}

#[test]
fn raw_format_writes_the_original_payload() {
    let (b, t) = (brokers(), topic("raw"));
    let env = Env::new().config(&config("k", &b, &t, "format = \"raw\"\nheaders = false"));
    let input = tweets(1, 20, 5);
    std::fs::write(env.path("in.jsonl"), &input).unwrap();
    let out = env.run(&["replay", "in.jsonl", "--sink", "k"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got: BTreeSet<String> = kcat_read(&b, &t, 20)
        .into_iter()
        .map(|m| {
            assert!(m.headers.is_empty(), "{:?}", m.headers);
            m.payload
        })
        .collect();
    let want: BTreeSet<String> = input.lines().map(str::to_owned).collect();
    assert_eq!(got, want);
}

#[test]
fn built_in_kafka_sink_takes_brokers_and_topic_from_flags() {
    let (b, t) = (brokers(), topic("flags"));
    let env = Env::new();
    std::fs::write(env.path("in.jsonl"), tweets(1, 10, 5)).unwrap();
    let out = env.run(&[
        "replay",
        "in.jsonl",
        "--sink",
        "kafka",
        "--kafka-brokers",
        &b,
        "--kafka-topic",
        &format!("{t}-{{platform}}"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(kcat_read(&b, &format!("{t}-twitter"), 10).len(), 10);
}

#[test]
fn a_broker_started_after_ingest_still_gets_every_record() {
    let addr = free_addr();
    let t = topic("late");
    let env = Env::new().config(&config("k", &addr, &t, ""));
    std::fs::write(env.path("in.jsonl"), tweets(1, 150, 10)).unwrap();
    let mut child = env
        .cmd()
        .args(["replay", "in.jsonl", "--sink", "k", "--summary"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let _broker = Broker::start_at(&addr);
    let status = wait_with_timeout(&mut child, Duration::from_secs(90));
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    assert!(
        err.contains("not reachable yet") || err.contains("brokers are down"),
        "the broker was away at the start:\n{err}"
    );
    let s = summary_in(&err).unwrap();
    assert_eq!(s["sinks"]["k"]["delivered"], 150, "{s}");
    assert_eq!(kcat_read(&addr, &t, 150).len(), 150);
}

#[test]
fn a_broker_killed_mid_run_means_exit_1_and_every_undelivered_record_dead_lettered() {
    let addr = free_addr();
    let mut broker = Broker::start_at(&addr);
    let t = topic("killed");
    let env = Env::new().config(&format!(
        "{}\n[sinks.k.retry]\nmax_attempts = 1000\ninitial_backoff_ms = 100\nmax_backoff_ms = 500\n",
        config("k", &addr, &t, "message_timeout_ms = 1000")
    ));
    let mut child = env
        .cmd()
        .args(["replay", "-", "--sink", "k", "--summary"])
        .args(["--duration", "12s", "--shutdown-timeout", "2s"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(tweets(1, 50, 10).as_bytes()).unwrap();
    stdin.flush().unwrap();
    assert_eq!(kcat_read(&addr, &t, 50).len(), 50, "first half delivered");
    broker.kill();
    stdin.write_all(tweets(51, 30, 10).as_bytes()).unwrap();
    stdin.flush().unwrap();
    let status = wait_with_timeout(&mut child, Duration::from_secs(60));
    drop(stdin);
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("write failed; retrying"),
        "retries are reported:\n{err}"
    );
    let s = summary_in(&err).unwrap();
    assert_eq!(s["records_in"], 80, "{s}");
    assert_eq!(s["sinks"]["k"]["delivered"], 50, "{s}");
    assert_eq!(s["sinks"]["k"]["dead_lettered"], 30, "{s}");
    assert!(s["sinks"]["k"].get("lost").is_none(), "nothing lost: {s}");
    let dead = env.dead_letters();
    assert_eq!(dead.len(), 30, "every undelivered record, once");
    let dead_ids: BTreeSet<String> = dead
        .iter()
        .map(|d| {
            assert_eq!(d["component"], "k", "{d}");
            d["record"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    let want: BTreeSet<String> = (51..81).map(|i| format!("twitter:{i}")).collect();
    assert_eq!(dead_ids, want);
}

#[test]
fn a_record_over_the_size_limit_is_dead_lettered_and_the_rest_delivered() {
    let (b, t) = (brokers(), topic("toolarge"));
    let env = Env::new().config(&config("k", &b, &t, ""));
    let mut input = tweets(1, 10, 10);
    input.push_str(&tweets(11, 1, 1_200_000)); // over message.max.bytes (1 MB)
    input.push_str(&tweets(12, 10, 10));
    std::fs::write(env.path("in.jsonl"), input).unwrap();
    let out = env.run(&["replay", "in.jsonl", "--sink", "k", "--summary"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["sinks"]["k"]["delivered"], 20, "{s}");
    assert_eq!(s["sinks"]["k"]["dead_lettered"], 1, "{s}");
    let dead = env.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["record"]["id"], "twitter:11");
    let reason = dead[0]["error"].as_str().unwrap();
    assert!(reason.contains("larger than"), "{reason}");
    let got = kcat_read(&b, &t, 20);
    assert_eq!(got.len(), 20);
    assert!(!got.iter().any(|m| m.key == "twitter:11"));
    let got_ids: Vec<Value> = got
        .iter()
        .map(|m| serde_json::from_str(&m.payload).unwrap())
        .collect();
    assert_eq!(ids(&got_ids).len(), 20);
}

#[test]
fn bad_kafka_config_is_refused_with_the_field_and_line() {
    let env = Env::new()
        .config("[sinks.k]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:1\"\nacks = \"leader\"\n");
    let out = env.run(&["replay", "-", "--sink", "k"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("sinks.k.idempotence") && err.contains("acks"),
        "{err}"
    );

    let env = Env::new().config("[sinks.k]\ntype = \"kafka\"\ntopic = \"a b\"\n");
    let out = env.run(&["replay", "-", "--sink", "k"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("line 3"), "{}", stderr(&out));

    let env = Env::new().config("[sinks.k]\ntype = \"kafka\"\ncompresion = \"gzip\"\n");
    let out = env.run(&["replay", "-", "--sink", "k"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("compresion"), "{}", stderr(&out));

    let env = Env::new().config(
        "[sinks.k]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:1\"\n[sinks.k.properties]\n\"no.such.thing\" = \"1\"\n\"sasl.password\" = \"hunter2\"\n",
    );
    let out = env.run(&["replay", "-", "--sink", "k"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no.such.thing") && !err.contains("hunter2"),
        "{err}"
    );
}
