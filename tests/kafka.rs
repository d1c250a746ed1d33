//! The `kafka` sink against a real Kafka-protocol broker (tansu, started by
//! `scripts/services`; some tests start and kill a broker of their own), read
//! back with an independent client (kcat, on its own librdkafka).

#![cfg(feature = "kafka")]

use std::collections::BTreeMap;
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
    assert_eq!(
        counts(messages.iter().map(|m| m.key.clone())),
        once((1000..1300).map(|i| format!("twitter:{i}"))),
        "exactly the records, each once"
    );
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

/// The partitions of `topic`, from kcat's metadata listing.
fn partitions(brokers: &str, topic: &str) -> Vec<i32> {
    let out = Command::new(service("INGEST_TEST_KCAT"))
        .args(["-L", "-b", brokers, "-t", topic, "-J"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["topics"][0]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["partition"].as_i64().unwrap() as i32)
        .collect()
}

/// One record batch as the broker stores and serves it.
#[derive(Debug)]
struct StoredBatch {
    /// The batch attributes' low 3 bits: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    codec: u8,
    records: u32,
}

/// Reads every record batch of `topic` off the broker with raw Fetch (v4)
/// requests, without decoding them: the attributes say how each batch is
/// compressed on the broker, which no client that decompresses can show.
/// Stops when `want` records were seen or 20 s passed.
fn stored_batches(broker: &str, topic: &str, want: u32) -> Vec<StoredBatch> {
    use std::io::Read;
    let parts = partitions(broker, topic);
    let mut next: BTreeMap<i32, i64> = parts.iter().map(|p| (*p, 0)).collect();
    let mut batches = Vec::new();
    let mut conn = std::net::TcpStream::connect(broker).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    for correlation in 1i32.. {
        let seen: u32 = batches.iter().map(|b: &StoredBatch| b.records).sum();
        if seen >= want || Instant::now() > deadline {
            break;
        }
        // Fetch v4: replica -1, max wait 100 ms, min 1 byte, max 64 MiB,
        // read_uncommitted, one topic with every partition from its next offset.
        let mut body = Vec::new();
        body.extend(1i16.to_be_bytes()); // api key: Fetch
        body.extend(4i16.to_be_bytes());
        body.extend(correlation.to_be_bytes());
        body.extend(6i16.to_be_bytes());
        body.extend(b"ingest");
        body.extend((-1i32).to_be_bytes());
        body.extend(100i32.to_be_bytes());
        body.extend(1i32.to_be_bytes());
        body.extend((64i32 << 20).to_be_bytes());
        body.push(0);
        body.extend(1i32.to_be_bytes());
        body.extend((topic.len() as i16).to_be_bytes());
        body.extend(topic.as_bytes());
        body.extend((next.len() as i32).to_be_bytes());
        for (p, offset) in &next {
            body.extend(p.to_be_bytes());
            body.extend(offset.to_be_bytes());
            body.extend((16i32 << 20).to_be_bytes());
        }
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend(body);
        conn.write_all(&frame).unwrap();
        let mut len = [0u8; 4];
        conn.read_exact(&mut len).unwrap();
        let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
        conn.read_exact(&mut resp).unwrap();
        let mut r = Reader(&resp);
        assert_eq!(r.i32(), correlation);
        r.i32(); // throttle time
        for _ in 0..r.i32() {
            let name_len = r.i16() as usize;
            assert_eq!(r.take(name_len), topic.as_bytes());
            for _ in 0..r.i32() {
                let partition = r.i32();
                let error = r.i16();
                assert_eq!(error, 0, "fetch error on partition {partition}");
                r.i64(); // high watermark
                r.i64(); // last stable offset
                let aborted = r.i32();
                for _ in 0..aborted.max(0) {
                    r.take(16);
                }
                let size = r.i32();
                let mut set = Reader(r.take(size.max(0) as usize));
                // Record batches (magic 2); a partial one at the end is skipped.
                while set.0.len() >= 61 {
                    let base_offset = set.i64();
                    let batch_len = set.i32() as usize;
                    if set.0.len() < batch_len {
                        break;
                    }
                    let mut b = Reader(set.take(batch_len));
                    b.i32(); // partition leader epoch
                    assert_eq!(b.take(1), [2], "record batch magic");
                    b.take(4); // crc
                    let attributes = b.i16();
                    let last_delta = b.i32();
                    b.take(8 + 8 + 8 + 2 + 4); // timestamps, producer id, epoch, sequence
                    let records = b.i32() as u32;
                    batches.push(StoredBatch {
                        codec: (attributes & 0x7) as u8,
                        records,
                    });
                    next.insert(partition, base_offset + i64::from(last_delta) + 1);
                }
            }
        }
        if batches.iter().map(|b| b.records).sum::<u32>() < want {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    batches
}

/// A cursor over a Kafka response, big-endian.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take(2).try_into().unwrap())
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take(4).try_into().unwrap())
    }
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take(8).try_into().unwrap())
    }
}

/// Each codec: the broker stores every batch compressed with it (read raw, so
/// a producer that ignored `compression` fails here), and kcat decodes every
/// record once, whole.
#[test]
fn every_compression_codec_round_trips() {
    let b = brokers();
    for (codec, bits) in [
        ("none", 0),
        ("gzip", 1),
        ("snappy", 2),
        ("lz4", 3),
        ("zstd", 4),
    ] {
        let t = topic(&format!("codec-{codec}"));
        let env = Env::new().config(&config("k", &b, &t, &format!("compression = \"{codec}\"")));
        std::fs::write(env.path("in.jsonl"), tweets(1, 120, 300)).unwrap();
        let out = env.run(&["replay", "in.jsonl", "--sink", "k", "--summary"]);
        assert!(out.status.success(), "{codec}: {}", stderr(&out));
        let batches = stored_batches(&b, &t, 120);
        assert_eq!(
            batches.iter().map(|b| b.records).sum::<u32>(),
            120,
            "{codec}: {batches:?}"
        );
        assert!(
            batches.iter().all(|b| b.codec == bits),
            "{codec}: every batch on the broker has codec bits {bits}: {batches:?}"
        );
        let messages = kcat_read(&b, &t, 120);
        let texts = counts(messages.iter().map(|m| {
            let r: Value = serde_json::from_str(&m.payload).unwrap();
            r["text"].as_str().unwrap().to_owned()
        }));
        let want = counts((1..=120).map(|i| format!("tweet {i} ☕ {}", "x".repeat(300))));
        assert_eq!(texts, want, "{codec}: each record once, whole");
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
    let file = std::fs::read_to_string(env.path("out.jsonl")).unwrap();
    let file = counts(file.lines().map(str::to_owned));
    let ids = counts(file.keys().map(|l| {
        let r: Value = serde_json::from_str(l).unwrap();
        r["id"].as_str().unwrap().to_owned()
    }));
    assert_eq!(
        ids,
        once((5000..5200).map(|i| format!("twitter:{i}"))),
        "the file holds each record once"
    );
    assert!(file.values().all(|n| *n == 1));
    let kafka = counts(kcat_read(&b, &t, 200).into_iter().map(|m| m.payload));
    assert_eq!(
        kafka, file,
        "the same bytes in both sinks, each record once"
    );
}

#[test]
fn raw_format_writes_the_original_payload() {
    let (b, t) = (brokers(), topic("raw"));
    let env = Env::new().config(&config("k", &b, &t, "format = \"raw\"\nheaders = false"));
    let input = tweets(1, 20, 5);
    std::fs::write(env.path("in.jsonl"), &input).unwrap();
    let out = env.run(&["replay", "in.jsonl", "--sink", "k"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = counts(kcat_read(&b, &t, 20).into_iter().map(|m| {
        assert!(m.headers.is_empty(), "{:?}", m.headers);
        m.payload
    }));
    assert_eq!(
        got,
        once(input.lines().map(str::to_owned)),
        "each line once"
    );
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
    let got = kcat_read(&b, &format!("{t}-twitter"), 10);
    assert_eq!(
        counts(got.into_iter().map(|m| m.key)),
        once((1..=10).map(|i| format!("twitter:{i}")))
    );
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
    assert_eq!(
        counts(kcat_read(&addr, &t, 150).into_iter().map(|m| m.key)),
        once((1..=150).map(|i| format!("twitter:{i}"))),
        "every record once"
    );
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
    let first = kcat_read(&addr, &t, 50);
    assert_eq!(
        counts(first.into_iter().map(|m| m.key)),
        once((1..=50).map(|i| format!("twitter:{i}"))),
        "first half delivered, each record once"
    );
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
    let dead_ids = counts(dead.iter().map(|d| {
        assert_eq!(d["component"], "k", "{d}");
        d["record"]["id"].as_str().unwrap().to_owned()
    }));
    assert_eq!(dead_ids, once((51..81).map(|i| format!("twitter:{i}"))));
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
    let got_ids = counts(got.iter().map(|m| {
        let r: Value = serde_json::from_str(&m.payload).unwrap();
        assert_eq!(r["id"], m.key.as_str());
        m.key.clone()
    }));
    let want = (1..=21).filter(|i| *i != 11);
    assert_eq!(got_ids, once(want.map(|i| format!("twitter:{i}"))));
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
