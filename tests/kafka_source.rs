//! `ingest kafka`: topics → sinks with offsets committed only after the sinks
//! confirmed, against the test broker (tansu, from `scripts/services`).

#![cfg(all(feature = "kafka", feature = "mongodb"))]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

use serde_json::Value;

fn unique_topic(name: &str) -> String {
    unique(&format!("ingest-src-{name}"), '-')
}

fn tweets(first: u64, n: u64) -> String {
    (first..first + n)
        .map(|i| {
            format!(
                "{{\"data\":{{\"id\":\"{i}\",\"text\":\"tweet {i}\",\"author_id\":\"7\"}},\"matching_rules\":[{{\"id\":\"1\",\"tag\":\"t{}\"}}]}}\n",
                i % 2
            )
        })
        .collect()
}

/// Config with a Kafka sink `k` into `topic` and the Kafka source's group settings.
/// Config with a Kafka sink `k` into `topic`, a file sink `f`, a MongoDB sink
/// `docs` (collection named after the topic) and the Kafka source's settings.
fn config(topic: &str, extra: &str) -> String {
    format!(
        "[kafka]\nsession_timeout_ms = 2000\nidle_ms = 500\n\n[sinks.k]\ntype = \"kafka\"\nbrokers = \"{}\"\ntopic = \"{topic}\"\n[sinks.k.batch]\ntimeout_ms = 20\n\n[sinks.f]\ntype = \"file\"\npath = \"out.jsonl\"\n\n[sinks.docs]\ntype = \"mongodb\"\nuri = \"{}\"\ndatabase = \"ingest_test\"\ncollection = \"{}\"\n{extra}",
        service("INGEST_TEST_KAFKA_BROKERS"),
        service("INGEST_TEST_MONGODB_URI"),
        collection(topic),
    )
}

fn collection(topic: &str) -> String {
    topic.replace(['-', '.'], "_")
}

const MONGO_COUNT: &str = r#"
import sys, json
from pymongo import MongoClient
c = MongoClient(sys.argv[1], serverSelectionTimeoutMS=5000)[sys.argv[2]][sys.argv[3]]
ids = [d["_id"] for d in c.find({}, {"_id": 1})]
print(json.dumps({"count": c.count_documents({}), "distinct": len(set(ids))}))
"#;

/// (documents, distinct ids) in the topic's collection, read with pymongo.
fn mongo_count(topic: &str) -> (u64, u64) {
    let v = py(
        MONGO_COUNT,
        &[
            &service("INGEST_TEST_MONGODB_URI"),
            "ingest_test",
            &collection(topic),
        ],
    );
    (
        v["count"].as_u64().unwrap(),
        v["distinct"].as_u64().unwrap(),
    )
}

/// Fills `topic` with `n` records through our own Kafka sink.
fn produce(env: &Env, first: u64, n: u64) {
    std::fs::write(env.path("produce.jsonl"), tweets(first, n)).unwrap();
    let out = env.run(&["replay", "produce.jsonl", "--sink", "k"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn consume(env: &Env, topic: &str, group: &str) -> std::process::Output {
    env.cmd()
        .args(["kafka", "--topic", topic, "--group", group])
        .args(["--sink", "f", "--sink", "docs"])
        .args(["--until-idle", "--summary", "--duration", "60s"])
        .env(
            "INGEST_KAFKA_SOURCE_BROKERS",
            service("INGEST_TEST_KAFKA_BROKERS"),
        )
        .output()
        .unwrap()
}

fn ids_in(env: &Env, file: &str) -> Vec<String> {
    env.records(file)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

const COMMITTED: &str = r#"
import sys, json
from confluent_kafka import Consumer, TopicPartition
brokers, group, topic = sys.argv[1:4]
c = Consumer({"bootstrap.servers": brokers, "group.id": group})
parts = c.list_topics(topic, timeout=10).topics[topic].partitions
got = c.committed([TopicPartition(topic, p) for p in parts], timeout=10)
c.close()
print(json.dumps(sum(max(tp.offset, 0) for tp in got)))
"#;

/// The sum of the offsets `group` committed on `topic`'s partitions, read
/// from the broker with confluent-kafka (not with our client).
fn committed(group: &str, topic: &str) -> u64 {
    py(
        COMMITTED,
        &[&service("INGEST_TEST_KAFKA_BROKERS"), group, topic],
    )
    .as_u64()
    .unwrap()
}

/// Bytes waiting in a pipe we read (FIONREAD), and its capacity.
fn pipe_fill(fd: std::os::fd::RawFd) -> (usize, usize) {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD and F_GETPIPE_SZ on a pipe this process holds open.
    let (rc, cap) = unsafe {
        (
            libc::ioctl(fd, libc::FIONREAD, &mut n),
            libc::fcntl(fd, libc::F_GETPIPE_SZ),
        )
    };
    assert!(rc == 0 && cap > 0);
    (n as usize, cap as usize)
}

/// A sink writing to a pipe we do not read is blocked once the pipe is
/// full: its fill stops moving (short of the capacity when writes left
/// partial pages: the kernel counts pages) and the offsets the group
/// committed stop moving with it. `condition` polls for that: `true` when
/// (fill, committed) is the same as the last time, the pipe holds at least
/// half its capacity, and something was committed.
fn blocked_and_committed(fd: std::os::fd::RawFd, group: &str, topic: &str) -> impl FnMut() -> bool {
    let mut last = (0, 0);
    move || {
        let (held, cap) = pipe_fill(fd);
        let now = (held, committed(group, topic));
        std::mem::replace(&mut last, now) == now && held * 2 >= cap && now.1 > 0
    }
}

/// Polls `done` until it holds, failing after `limit`.
fn poll(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn drains_a_topic_once_then_finds_nothing_new() {
    let topic = unique_topic("drain");
    let env = Env::new().config(&config(&topic, ""));
    let group = unique_topic("g");
    produce(&env, 1, 250);
    let out = consume(&env, &topic, &group);
    let s = summary(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(s["records_in"], 250, "{s}");
    assert_eq!(
        counts(ids_in(&env, "out.jsonl")),
        once((1..=250).map(|i| format!("twitter:{i}"))),
        "each record once"
    );
    // The records come through unchanged: each is the record on the topic
    // (read with kcat), value for value, with the id, text and tags of its line.
    let on_topic: BTreeMap<String, Value> =
        kcat_read(&service("INGEST_TEST_KAFKA_BROKERS"), &topic, 250)
            .into_iter()
            .map(|m| {
                let v: Value = serde_json::from_str(&m.payload).unwrap();
                (v["id"].as_str().unwrap().to_owned(), v)
            })
            .collect();
    assert_eq!(on_topic.len(), 250);
    let producer_run = on_topic["twitter:1"]["run"].clone();
    assert!(producer_run["id"].is_string(), "{producer_run}");
    for r in env.records("out.jsonl") {
        let id = r["id"].as_str().unwrap();
        let i: u64 = id.trim_start_matches("twitter:").parse().unwrap();
        assert_eq!(r["text"], format!("tweet {i}"), "{r}");
        assert_eq!(r["tags"], serde_json::json!([format!("t{}", i % 2)]), "{r}");
        assert_eq!(r["raw"]["data"]["id"], i.to_string(), "{r}");
        assert_eq!(
            r["run"], producer_run,
            "the producing run, not the consuming one: {r}"
        );
        assert_eq!(r, on_topic[id], "the record as produced");
    }
    assert_eq!(
        mongo_count(&topic),
        (250, 250),
        "MongoDB, read with pymongo"
    );

    // Offsets were committed: the same group finds nothing new.
    let out2 = consume(&env, &topic, &group);
    assert!(out2.status.success(), "{}", stderr(&out2));
    assert_eq!(summary(&out2)["records_in"], 0, "{}", stderr(&out2));
    assert_eq!(ids_in(&env, "out.jsonl").len(), 250);
    assert_eq!(mongo_count(&topic), (250, 250), "no new documents");
}

#[test]
fn kill_9_mid_run_then_rerun_delivers_everything_and_replays_only_the_unconfirmed_tail() {
    let topic = unique_topic("crash");
    let group = unique_topic("g");
    // Source batches of 50: one ack and one commit each.
    let env = Env::new().config(
        &config(
            &topic,
            "[sinks.out]\ntype = \"stdout\"\n[sinks.out.batch]\nmax_records = 50\n",
        )
        .replace(
            "idle_ms = 500\n",
            "idle_ms = 500\nbatch_max_messages = 50\n",
        ),
    );
    produce(&env, 1, 3000);
    // The first run writes to a pipe nobody reads: once the pipe is full the
    // stdout sink blocks, so the run is stuck mid-way with some batches
    // confirmed (and committed) and the rest not. Then kill -9.
    let mut child = env
        .cmd()
        .args([
            "kafka", "--topic", &topic, "--group", &group, "--sink", "out", "--sink", "docs",
        ])
        .args(["--until-idle", "--duration", "60s"])
        .env(
            "INGEST_KAFKA_SOURCE_BROKERS",
            service("INGEST_TEST_KAFKA_BROKERS"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill once the stdout sink is stuck in a write with a batch in flight
    // (its pipe full) and earlier batches are committed (read back from the
    // broker): the window the test claims to survive.
    let fd = std::os::fd::AsRawFd::as_raw_fd(child.stdout.as_ref().unwrap());
    let mut blocked = blocked_and_committed(fd, &group, &topic);
    poll(
        "the sink blocked on a full pipe with offsets committed",
        Duration::from_secs(60),
        || {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the first run must still be running"
            );
            blocked()
        },
    );
    signal(&child, 9);
    let _ = child.wait();
    let mut text = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut text).unwrap();
    let first: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!first.is_empty() && first.len() < 3000, "{}", first.len());

    let out = consume(&env, &topic, &group);
    assert!(out.status.success(), "{}", stderr(&out));
    let second = summary(&out)["records_in"].as_u64().unwrap() as usize;
    let rerun = ids_in(&env, "out.jsonl");
    assert_eq!(rerun.len(), second, "{}", stderr(&out));
    let first_counts = counts(first.iter());
    assert!(
        first_counts.values().all(|n| *n == 1),
        "the first run wrote each record once"
    );
    assert!(
        counts(rerun.iter()).values().all(|n| *n == 1),
        "the rerun wrote each record once"
    );
    let all = counts(first.iter().chain(&rerun).cloned());
    assert_eq!(
        all.keys().cloned().collect::<BTreeSet<String>>(),
        (1..=3000).map(|i| format!("twitter:{i}")).collect(),
        "every record delivered across the two runs"
    );
    // What both runs delivered is the unconfirmed tail: records the first run
    // wrote whose source batch was not confirmed (so not committed) at the
    // kill. Everything before the stdout sink batch stuck in its write was
    // confirmed by both sinks and committed seconds before the kill, so the
    // tail is at most that sink batch (< 50 whole lines written) plus the part
    // already written of the oldest source batch it overlaps (< 50): fewer
    // than two batches of 50.
    let twice = all.values().filter(|n| **n == 2).count();
    assert_eq!(first.len() + rerun.len(), 3000 + twice);
    assert!(
        twice < 2 * 50,
        "the rerun re-delivered {twice} records the first run wrote: more than the unconfirmed tail"
    );
    assert!(
        second < 3000,
        "the rerun resumed from the committed offsets, not from the start ({second})"
    );
    assert_eq!(
        mongo_count(&topic),
        (3000, 3000),
        "MongoDB holds every record once: redeliveries are upserts on _id"
    );
    eprintln!(
        "first run delivered {} before kill -9; the rerun read {second}; {twice} delivered twice (the unconfirmed tail)",
        first.len()
    );
}

/// Produces `key\tvalue` lines to partition 0 of `topic` with kcat.
fn kcat_produce(topic: &str, lines: &str) {
    let mut kcat = Command::new(service("INGEST_TEST_KCAT"))
        .args([
            "-P",
            "-b",
            &service("INGEST_TEST_KAFKA_BROKERS"),
            "-t",
            topic,
        ])
        .args(["-K", "\t", "-p", "0"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    kcat.stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    assert!(kcat.wait().unwrap().success());
}

/// Creates `topic` with `partitions` partitions on the test broker.
fn create_topic(topic: &str, partitions: u32) {
    let status = Command::new(service("INGEST_TEST_TANSU"))
        .args(["topic", "create", topic, "--partitions"])
        .arg(partitions.to_string())
        .args([
            "--broker",
            &format!("tcp://{}", service("INGEST_TEST_KAFKA_BROKERS")),
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_poison_message_is_dead_lettered_with_its_coordinates_and_the_rest_delivered() {
    let topic = unique_topic("poison");
    let env = Env::new().config(&config(&topic, ""));
    // Raw X lines and Telegram updates (not records) plus garbage, produced by kcat.
    let mut lines = String::new();
    lines.push_str("k1\t{\"data\":{\"id\":\"11\",\"text\":\"raw x line\"}}\n");
    lines.push_str("k2\tthis is not json\n");
    lines.push_str("k3\t{\"update_id\":5,\"message\":{\"message_id\":1,\"date\":1764000000,\"chat\":{\"id\":-100,\"type\":\"channel\"},\"text\":\"tg\"}}\n");
    lines.push_str("k4\t{\"unknown\":true}\n");
    kcat_produce(&topic, &lines);

    let out = consume(&env, &topic, &unique_topic("g"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["records_in"], 2, "{s}");
    assert_eq!(s["source"]["malformed"], 2, "{s}");
    assert_eq!(
        counts(ids_in(&env, "out.jsonl")),
        once(["twitter:11", "telegram:-100:1"].map(String::from))
    );
    let dead = env.dead_letters();
    assert_eq!(dead.len(), 2, "{dead:?}");
    let errors: Vec<&str> = dead.iter().map(|d| d["error"].as_str().unwrap()).collect();
    assert!(
        errors[0].contains(&format!("topic {topic} partition 0 offset 1"))
            && errors[0].contains("key k2"),
        "{errors:?}"
    );
    assert!(errors[1].contains("offset 3"), "{errors:?}");
    assert_eq!(dead[0]["input"], "this is not json");
}

#[test]
fn two_consumers_in_one_group_share_the_partitions_and_deliver_everything_once() {
    let topic = unique_topic("group");
    let group = unique_topic("g");
    let env = Env::new().config(&config(&topic, ""));
    // Create the topic (4 partitions, auto-created) before the consumers join.
    produce(&env, 1, 4);
    let spawn = |file: &str| {
        let mut child = env
            .cmd()
            .args(["kafka", "--topic", &topic, "--group", &group])
            .args(["--from", "latest", "--summary", "--duration", "40s"])
            .args(["--sink", "file", "--file-path", file])
            .env(
                "INGEST_KAFKA_SOURCE_BROKERS",
                service("INGEST_TEST_KAFKA_BROKERS"),
            )
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        (child, lines)
    };
    let (mut a, mut a_err) = spawn("a.jsonl");
    wait_for(&mut a_err, "partitions assigned");
    let (mut b, mut b_err) = spawn("b.jsonl");
    wait_for(&mut b_err, "partitions assigned");
    // a gave some partitions up to b: wait for a's new assignment.
    wait_for(&mut a_err, "partitions assigned");
    std::thread::sleep(Duration::from_secs(1));
    produce(&env, 1000, 400);
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.records("a.jsonl").len() + env.records("b.jsonl").len() < 400 {
        assert!(Instant::now() < deadline, "not everything arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(&a, 15);
    signal(&b, 15);
    let collect = |lines: &mut dyn Iterator<Item = std::io::Result<String>>| {
        lines.map_while(Result::ok).collect::<Vec<_>>().join("\n")
    };
    let (a_rest, b_rest) = (collect(&mut a_err), collect(&mut b_err));
    assert!(
        wait_with_timeout(&mut a, Duration::from_secs(30)).success(),
        "{a_rest}"
    );
    assert!(
        wait_with_timeout(&mut b, Duration::from_secs(30)).success(),
        "{b_rest}"
    );
    let a_ids = ids_in(&env, "a.jsonl");
    let b_ids = ids_in(&env, "b.jsonl");
    assert!(
        !a_ids.is_empty() && !b_ids.is_empty(),
        "both consumers took a share"
    );
    let mut all: BTreeMap<String, u32> = BTreeMap::new();
    for id in a_ids.iter().chain(&b_ids) {
        *all.entry(id.clone()).or_default() += 1;
    }
    // The 4 records from before the consumers joined may be read by either
    // (tansu's "latest" is approximate); the 400 produced after both joined
    // were each delivered exactly once.
    let new: Vec<u32> = all
        .iter()
        .filter(|(id, _)| id.trim_start_matches("twitter:").parse::<u64>().unwrap() >= 1000)
        .map(|(_, n)| *n)
        .collect();
    assert_eq!(new.len(), 400);
    assert!(
        new.iter().all(|n| *n == 1),
        "each record delivered once: {all:?}"
    );
    let _: Value = summary_in(&a_rest).unwrap();
}

#[test]
fn bad_source_settings_are_clear_errors() {
    let env = Env::new();
    let out = env.run(&["kafka", "--sink", "stdout"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no topic"), "{}", stderr(&out));
    let env = Env::new().config(
        "[kafka]\ntopics = [\"ok\"]\n[kafka.properties]\n\"enable.auto.commit\" = \"true\"\n",
    );
    let out = env.run(&["kafka", "--sink", "stdout"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("kafka.properties.enable.auto.commit"),
        "{}",
        stderr(&out)
    );
    let env = Env::new().config("[kafka]\ntopicz = [\"ok\"]\n");
    let out = env.run(&["kafka", "--sink", "stdout"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("topicz"), "{}", stderr(&out));
}

#[test]
fn check_tries_the_brokers_and_the_topics() {
    let topic = unique_topic("check");
    let env = Env::new().config(&config(&topic, ""));
    produce(&env, 1, 3);
    let b = service("INGEST_TEST_KAFKA_BROKERS");
    let env = Env::new().config(&format!(
        "[kafka]\nbrokers = \"{b}\"\ntopics = [\"{topic}\"]\n"
    ));
    let out = env.run(&["check", "--source", "kafka"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("source kafka") && text.contains(&topic),
        "{text}"
    );

    let env = Env::new().config(&format!(
        "[kafka]\nbrokers = \"{b}\"\ntopics = [\"{topic}-missing\"]\n"
    ));
    let out = env.run(&["check", "--source", "kafka"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("FAIL") && text.contains("do not exist"),
        "{text}"
    );
}

#[test]
fn until_idle_drains_several_topics() {
    // The sink's `{platform}` template puts X posts and Telegram messages in two topics.
    let base = unique_topic("multi");
    let env = Env::new().config(&config(&format!("{base}-{{platform}}"), ""));
    let mut input = tweets(1, 120);
    for i in 1..=80 {
        input.push_str(&format!(
            "{{\"update_id\":{i},\"message\":{{\"message_id\":{i},\"date\":1764000000,\"chat\":{{\"id\":-100,\"type\":\"channel\"}},\"text\":\"tg {i}\"}}}}\n"
        ));
    }
    std::fs::write(env.path("produce.jsonl"), input).unwrap();
    let out = env.run(&["replay", "produce.jsonl", "--sink", "k"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env
        .cmd()
        .args(["kafka", "--topic", &format!("{base}-twitter")])
        .args([
            "--topic",
            &format!("{base}-telegram"),
            "--group",
            &unique_topic("g"),
        ])
        .args([
            "--sink",
            "f",
            "--until-idle",
            "--summary",
            "--duration",
            "60s",
        ])
        .env(
            "INGEST_KAFKA_SOURCE_BROKERS",
            service("INGEST_TEST_KAFKA_BROKERS"),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["records_in"], 200, "{s}");
    assert_eq!(
        s["stop_reason"], "end_of_input",
        "stopped at the end, not the duration: {s}"
    );
    let want = (1..=120)
        .map(|i| format!("twitter:{i}"))
        .chain((1..=80).map(|i| format!("telegram:-100:{i}")));
    assert_eq!(
        counts(ids_in(&env, "out.jsonl")),
        once(want),
        "both topics drained, each record once"
    );
}

/// A dead letter that cannot be written fails the run, and the poison
/// message's offset is not committed: a rerun that can write the dead-letter
/// file reads it again, and nothing is lost between the two runs.
#[test]
fn an_unwritable_dead_letter_fails_the_run_and_the_poison_message_is_not_committed() {
    let topic = unique_topic("dlfail");
    let group = unique_topic("g");
    let env = Env::new().config(&config(&topic, ""));
    kcat_produce(
        &topic,
        "k1\t{\"data\":{\"id\":\"11\",\"text\":\"before\"}}\n\
         k2\tthis is not json\n\
         k3\t{\"data\":{\"id\":\"13\",\"text\":\"after\"}}\n",
    );
    // A directory where the dead-letter file goes: no write can succeed,
    // not even as root.
    std::fs::create_dir_all(env.path("state/dead-letters.jsonl")).unwrap();
    let out = consume(&env, &topic, &group);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("dead-letters.jsonl"),
        "the error names the file: {}",
        stderr(&out)
    );
    let first = ids_in(&env, "out.jsonl");
    assert!(
        !first.contains(&"twitter:13".to_owned()),
        "nothing after the poison message: {first:?}"
    );

    std::fs::remove_dir(env.path("state/dead-letters.jsonl")).unwrap();
    let out = consume(&env, &topic, &group);
    assert!(out.status.success(), "{}", stderr(&out));
    let dead = env.dead_letters();
    assert_eq!(dead.len(), 1, "the poison message was read again: {dead:?}");
    assert_eq!(dead[0]["input"], "this is not json");
    assert!(
        dead[0]["error"]
            .as_str()
            .unwrap()
            .contains(&format!("topic {topic} partition 0 offset 1")),
        "{dead:?}"
    );
    let all = counts(ids_in(&env, "out.jsonl"));
    assert_eq!(
        all.keys().cloned().collect::<BTreeSet<String>>(),
        ["twitter:11", "twitter:13"].map(String::from).into(),
        "both valid messages delivered across the runs"
    );
}

/// `--until-idle` on a topic the brokers do not have ends with an error that
/// names it, instead of waiting for it for ever (a typo in a cron job).
#[test]
fn until_idle_on_a_missing_topic_ends_with_an_error_naming_it() {
    let topic = unique_topic("missing");
    let env = Env::new().config(&config(&topic, ""));
    let mut child = env
        .cmd()
        .args(["kafka", "--topic", &topic, "--group", &unique_topic("g")])
        .args(["--sink", "f", "--until-idle", "--summary"])
        .env(
            "INGEST_KAFKA_SOURCE_BROKERS",
            service("INGEST_TEST_KAFKA_BROKERS"),
        )
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, err) = finish(&mut child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{err}");
    let s = summary_in(&err).unwrap();
    let error = s["source"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("no topic {topic}")),
        "the error names the topic: {s}"
    );
}

/// Without `--until-idle` the consumer waits for a missing topic, saying so.
#[test]
fn without_until_idle_a_missing_topic_is_waited_for_with_a_warning() {
    let topic = unique_topic("later");
    let env = Env::new().config(&config(&topic, ""));
    let out = env
        .cmd()
        .args(["kafka", "--topic", &topic, "--group", &unique_topic("g")])
        .args(["--sink", "f", "--summary", "--duration", "3s"])
        .env(
            "INGEST_KAFKA_SOURCE_BROKERS",
            service("INGEST_TEST_KAFKA_BROKERS"),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary(&out)["stop_reason"], "duration");
    assert!(
        stderr(&out).contains(&format!("no topic {topic}: waiting for it")),
        "{}",
        stderr(&out)
    );
}

/// A drain member the group gives no partition (one partition, held by a
/// running member) ends after the idle time with a line saying so.
#[test]
fn an_until_idle_member_without_a_partition_ends_after_the_idle_time() {
    let topic = unique_topic("onepart");
    let group = unique_topic("g");
    // Sticky: the member holding the partition keeps it when the drain joins.
    let env = Env::new().config(&config(
        &topic,
        "[kafka.properties]\n\"partition.assignment.strategy\" = \"cooperative-sticky\"\n",
    ));
    create_topic(&topic, 1);
    kcat_produce(&topic, "k\t{\"data\":{\"id\":\"1\",\"text\":\"t\"}}\n");
    let brokers = service("INGEST_TEST_KAFKA_BROKERS");
    let mut holder = env
        .cmd()
        .args(["kafka", "--topic", &topic, "--group", &group])
        .args([
            "--sink",
            "file",
            "--file-path",
            "a.jsonl",
            "--duration",
            "120s",
        ])
        .env("INGEST_KAFKA_SOURCE_BROKERS", &brokers)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut holder_err = BufReader::new(holder.stderr.take().unwrap()).lines();
    wait_for(&mut holder_err, "partitions assigned");
    let holder_log = std::thread::spawn(move || {
        holder_err
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    });

    let mut drain = env
        .cmd()
        .args(["kafka", "--topic", &topic, "--group", &group])
        .args(["--sink", "file", "--file-path", "b.jsonl"])
        .args(["--until-idle", "--summary", "--duration", "100s"])
        .env("INGEST_KAFKA_SOURCE_BROKERS", &brokers)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, err) = finish(&mut drain, Duration::from_secs(90));
    signal(&holder, 15);
    let holder_status = wait_with_timeout(&mut holder, Duration::from_secs(30));
    let holder_log = holder_log.join().unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("gave this member no partition"), "{err}");
    assert_eq!(
        summary_in(&err).unwrap()["stop_reason"],
        "end_of_input",
        "{err}"
    );
    assert!(holder_status.success(), "{holder_log}");
    assert_eq!(
        ids_in(&env, "a.jsonl"),
        ["twitter:1"],
        "the holder drained it"
    );
}

/// Whole JSONL lines in `bytes` (a torn last line is left out), by id.
fn line_ids(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let whole = text.rfind('\n').map_or("", |i| &text[..i]);
    whole
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Commit-before-revoke with records in flight. Consumer A writes to a pipe
/// the test stops reading: A blocks in its stdout sink with some batches
/// confirmed (and committed) and more read but unconfirmed. Consumer B joins
/// the group; the rebalance moves partitions to B while A still holds records
/// in flight. B (and A, for partitions it gets back) must start from what A
/// confirmed: of the records A had written before B joined, fewer than two
/// batches of 50 (the sink batch stuck in its write and the unconfirmed start
/// of the oldest source batch it overlaps, as in the kill -9 test) may be
/// delivered again; everything is delivered across A and B.
#[test]
fn a_rebalance_with_records_in_flight_rereads_only_the_unconfirmed_tail() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::sync::{Arc, Mutex};

    let topic = unique_topic("rebalance");
    let group = unique_topic("g");
    let env = Env::new().config(
        &config(
            &topic,
            "[sinks.out]\ntype = \"stdout\"\n[sinks.out.batch]\nmax_records = 50\n",
        )
        .replace(
            "idle_ms = 500\n",
            "idle_ms = 500\nbatch_max_messages = 50\n",
        ),
    );
    produce(&env, 1, 2000);
    let brokers = service("INGEST_TEST_KAFKA_BROKERS");
    let mut a = env
        .cmd()
        .args([
            "kafka", "--topic", &topic, "--group", &group, "--sink", "out",
        ])
        .args(["--summary", "--duration", "120s"])
        .env("INGEST_KAFKA_SOURCE_BROKERS", &brokers)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(env.path("a.log")).unwrap())
        .spawn()
        .unwrap();
    let mut a_out = a.stdout.take().unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while head.iter().filter(|b| **b == b'\n').count() < 300 {
        let n = a_out.read(&mut buf).unwrap();
        assert!(n > 0, "A stopped early");
        head.extend_from_slice(&buf[..n]);
    }
    let fd = a_out.as_raw_fd();
    let cap = pipe_fill(fd).1;
    // A fills the pipe and blocks with a batch in its sink's write; its
    // confirmed batches are committed (read back from the broker).
    let mut blocked = blocked_and_committed(fd, &group, &topic);
    poll(
        "A blocked on a full pipe with its confirmed offsets committed",
        Duration::from_secs(60),
        || {
            assert!(a.try_wait().unwrap().is_none(), "A must still run");
            blocked()
        },
    );
    let held = pipe_fill(fd).0;
    // Everything A wrote before B joined is within these bytes.
    let written_before = head.len() + cap;

    let mut b = env
        .cmd()
        .args(["kafka", "--topic", &topic, "--group", &group])
        .args(["--sink", "file", "--file-path", "b.jsonl"])
        .args(["--until-idle", "--summary", "--duration", "90s"])
        .env("INGEST_KAFKA_SOURCE_BROKERS", &brokers)
        .stderr(std::fs::File::create(env.path("b.log")).unwrap())
        .spawn()
        .unwrap();
    // B subscribes while A is still stuck with records in flight. (The
    // rebalance itself waits for A's loop, as the README says: it completes
    // once A's sink moves, with A's read-ahead still unconfirmed.)
    poll("B to subscribe", Duration::from_secs(60), || {
        std::fs::read_to_string(env.path("b.log")).is_ok_and(|l| l.contains("consuming"))
    });
    assert_eq!(
        pipe_fill(fd).0,
        held,
        "A's sink is still blocked as B joins"
    );
    // Now A's records trickle out (2 KiB every 50 ms, a sink slower than the
    // source): A stays stuck with records in flight until B is assigned,
    // then its sink runs at full speed.
    let a_bytes = Arc::new(Mutex::new(head));
    let fast = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (a_bytes, fast) = (a_bytes.clone(), fast.clone());
        std::thread::spawn(move || {
            loop {
                let slow = !fast.load(std::sync::atomic::Ordering::Relaxed);
                let want = if slow { 2048 } else { buf.len() };
                let n = a_out.read(&mut buf[..want]).unwrap();
                if n == 0 {
                    return;
                }
                a_bytes.lock().unwrap().extend_from_slice(&buf[..n]);
                if slow {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        })
    };
    poll("B's assignment", Duration::from_secs(60), || {
        std::fs::read_to_string(env.path("b.log")).is_ok_and(|l| l.contains("partitions assigned"))
    });
    let a_when_b_assigned = line_ids(&a_bytes.lock().unwrap()).len();
    fast.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(
        a_when_b_assigned < 2000,
        "A still had records to deliver when B was assigned"
    );
    let b_status = wait_with_timeout(&mut b, Duration::from_secs(120));
    let b_log = std::fs::read_to_string(env.path("b.log")).unwrap();
    assert!(b_status.success(), "{b_log}");
    // B left; A takes every partition again and reads the rest.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut ids = line_ids(&a_bytes.lock().unwrap());
        ids.extend(ids_in(&env, "b.jsonl"));
        if counts(ids).len() >= 2000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not everything arrived:\n{}",
            std::fs::read_to_string(env.path("a.log")).unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    signal(&a, 15);
    let a_status = wait_with_timeout(&mut a, Duration::from_secs(30));
    reader.join().unwrap();
    let a_log = std::fs::read_to_string(env.path("a.log")).unwrap();
    assert!(a_status.success(), "{a_log}");
    assert!(
        a_log.contains("partitions revoked"),
        "A took part in the rebalance: {a_log}"
    );

    let a_bytes = a_bytes.lock().unwrap();
    let a_ids = line_ids(&a_bytes);
    let b_ids = ids_in(&env, "b.jsonl");
    assert!(!b_ids.is_empty(), "B got partitions and read from them");
    let all = counts(a_ids.iter().chain(&b_ids).cloned());
    assert_eq!(
        all.keys().cloned().collect::<BTreeSet<String>>(),
        (1..=2000).map(|i| format!("twitter:{i}")).collect(),
        "every record delivered by A or B"
    );
    let before = line_ids(&a_bytes[..written_before.min(a_bytes.len())]);
    let again: Vec<&String> = before.iter().filter(|id| all[*id] > 1).collect();
    let twice = all.values().filter(|n| **n > 1).count();
    eprintln!(
        "A wrote {} records before B joined, {} in all; B read {}; {} of A's early records came again, {twice} records in all",
        before.len(),
        a_ids.len(),
        b_ids.len(),
        again.len()
    );
    assert!(
        again.len() < 2 * 50,
        "{} of the records A confirmed before the rebalance were read again: {again:?}",
        again.len()
    );
}
