//! The path beyond one machine: two partitioned captures of the firehose
//! produce into one Kafka topic of 6 partitions; three `ingest kafka`
//! members of one consumer group write Parquet to S3; one member is killed
//! with SIGKILL while records flow and another joins. Every post reaches the
//! lake, duplicates stay within one batch per partition the dead member
//! held, and the offsets the group committed never run ahead of what reached
//! S3 — checked the moment after the kill and at the end, with clients that
//! are not ours (confluent-kafka for the offsets and the topic, boto3 and
//! pyarrow for the lake).

#![cfg(all(
    feature = "kafka",
    feature = "s3",
    feature = "parquet",
    feature = "mock"
))]

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// Posts each capture takes from its partition.
const PER_CAPTURE: u64 = 1500;
/// Records per Parquet object (the S3 sink's `batch.max_records`).
const BATCH: u64 = 100;
const PARTITIONS: u32 = 6;

/// Every post id in the bucket's Parquet objects, with repeats (boto3 +
/// pyarrow). Read on one thread, and the interpreter left with `os._exit`:
/// pyarrow's thread pool can abort at interpreter exit ("terminate called
/// without an active exception") after the answer was printed.
const LAKE_IDS: &str = r#"
import sys, os, json, boto3, pyarrow.parquet as pq, io
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
ids = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2]):
    for o in page.get("Contents", []):
        body = s3.get_object(Bucket=sys.argv[2], Key=o["Key"])["Body"].read()
        table = pq.read_table(io.BytesIO(body), columns=["id"], use_threads=False)
        ids.extend(table.column("id").to_pylist())
print(json.dumps(ids))
sys.stdout.flush()
os._exit(0)
"#;

/// For each partition of the topic: the offset the group committed, and the
/// keys (record ids) of every message below it (confluent-kafka, reading
/// with its own throwaway group and committing nothing).
const COMMITTED_IDS: &str = r#"
import sys, json, uuid
from confluent_kafka import Consumer, TopicPartition
brokers, group, topic = sys.argv[1:4]
c = Consumer({"bootstrap.servers": brokers, "group.id": group})
parts = sorted(c.list_topics(topic, timeout=10).topics[topic].partitions)
committed = c.committed([TopicPartition(topic, p) for p in parts], timeout=10)
c.close()
r = Consumer({"bootstrap.servers": brokers, "group.id": "reader-" + uuid.uuid4().hex,
              "enable.auto.commit": False, "auto.offset.reset": "earliest"})
out = {}
for tp in committed:
    ids = []
    if tp.offset > 0:
        r.assign([TopicPartition(topic, tp.partition, 0)])
        while len(ids) < tp.offset:
            m = r.poll(10)
            if m is None:
                raise SystemExit(f"partition {tp.partition}: {len(ids)} of {tp.offset} messages read")
            if m.error():
                continue
            if m.offset() < tp.offset:
                ids.append(m.key().decode())
    out[str(tp.partition)] = {"committed": max(tp.offset, 0), "ids": ids}
r.close()
print(json.dumps(out))
"#;

/// Every message key of the topic and its partition (confluent-kafka).
const TOPIC_IDS: &str = r#"
import sys, json, uuid
from confluent_kafka import Consumer, TopicPartition
brokers, topic, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = Consumer({"bootstrap.servers": brokers, "group.id": "reader-" + uuid.uuid4().hex,
              "enable.auto.commit": False, "auto.offset.reset": "earliest"})
parts = sorted(c.list_topics(topic, timeout=10).topics[topic].partitions)
c.assign([TopicPartition(topic, p, 0) for p in parts])
keys = []
while len(keys) < want:
    m = c.poll(10)
    if m is None:
        break
    if not m.error():
        keys.append([m.partition(), m.key().decode()])
c.close()
print(json.dumps(keys))
"#;

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

fn poll(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

struct Lake {
    endpoint: String,
    bucket: String,
}

impl Lake {
    fn ids(&self) -> Vec<String> {
        serde_json::from_value(py(LAKE_IDS, &[&self.endpoint, &self.bucket])).unwrap()
    }
}

/// Checks that every message below an offset the group committed is in the
/// lake: offsets first, then the lake (which only grows), so a commit made
/// before its batch reached S3 would be caught. Returns the partitions' committed offsets.
fn committed_are_in_the_lake(group: &str, topic: &str, lake: &Lake) -> BTreeMap<u32, u64> {
    let committed = py(
        COMMITTED_IDS,
        &[&service("INGEST_TEST_KAFKA_BROKERS"), group, topic],
    );
    let in_lake: BTreeSet<String> = lake.ids().into_iter().collect();
    let mut offsets = BTreeMap::new();
    for (partition, v) in committed.as_object().unwrap() {
        let missing: Vec<&str> = v["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap())
            .filter(|id| !in_lake.contains(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "partition {partition}: offset {} committed, yet {} of the messages below it are not in S3: {:?}",
            v["committed"],
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        offsets.insert(partition.parse().unwrap(), v["committed"].as_u64().unwrap());
    }
    offsets
}

/// The partitions a member's log says it was last assigned (`… partitions
/// assigned partitions=topic/0,topic/3`); none before its first assignment.
fn last_assignment(log: &str) -> Vec<u32> {
    let Some(line) = log.lines().rfind(|l| l.contains("partitions assigned")) else {
        return Vec::new();
    };
    let list = line
        .split("partitions=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("");
    list.split(',')
        .filter_map(|tp| tp.rsplit('/').next()?.trim_matches('"').parse().ok())
        .collect()
}

#[test]
fn two_captures_three_consumers_a_kill_and_a_join_lose_no_post() {
    let topic = unique("ingest-scale", '-');
    let group = unique("ingest-scale-g", '-');
    let lake = Lake {
        endpoint: service("INGEST_TEST_S3_ENDPOINT"),
        bucket: unique("scale", '-'),
    };
    py(
        "import sys, boto3\nboto3.client('s3', endpoint_url=sys.argv[1]).create_bucket(Bucket=sys.argv[2])\nprint('{}')",
        &[&lake.endpoint, &lake.bucket],
    );
    create_topic(&topic, PARTITIONS);
    let brokers = service("INGEST_TEST_KAFKA_BROKERS");
    let env = Env::new()
        .with("TWITTER_BEARER_TOKEN", "scale-test-token")
        .with("AWS_ACCESS_KEY_ID", "test")
        .with("AWS_SECRET_ACCESS_KEY", "test")
        .with("AWS_REGION", "us-east-1")
        .with("AWS_EC2_METADATA_DISABLED", "true")
        .with("INGEST_KAFKA_SOURCE_BROKERS", &brokers)
        .config(&format!(
            r#"
[kafka]
session_timeout_ms = 3000
idle_ms = 500

[sinks.bus]
type = "kafka"
brokers = "{brokers}"
topic = "{topic}"
[sinks.bus.batch]
timeout_ms = 20

[sinks.lake]
type = "s3"
bucket = "{bucket}"
endpoint = "{endpoint}"
force_path_style = true
format = "parquet"
key_template = "platform={{platform}}/{{timestamp}}-{{uuid}}.parquet"
[sinks.lake.batch]
max_records = {BATCH}
timeout_ms = 200
"#,
            bucket = lake.bucket,
            endpoint = lake.endpoint,
        ));
    // A firehose paced at 100 posts/s per partition: the captures run for
    // about 15 s, time enough on a loaded machine to see a member's first
    // commit and kill it while they still produce.
    let mock = MockProcess::start("twitter", env.dir.path(), "rate = 100.0\n");
    let member = |name: &str| -> Child {
        env.cmd()
            .args([
                "kafka", "--topic", &topic, "--group", &group, "--from", "earliest",
            ])
            .args(["--sink", "lake", "--duration", "180s", "--summary"])
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(env.path(&format!("{name}.log"))).unwrap())
            .spawn()
            .unwrap()
    };
    let log =
        |name: &str| std::fs::read_to_string(env.path(&format!("{name}.log"))).unwrap_or_default();

    let mut a = member("a");
    let mut b = member("b");
    let mut c = member("c");
    // The group settled: the three members' assignments split the six partitions.
    poll(
        "three members sharing the partitions",
        Duration::from_secs(60),
        || {
            let mut all: Vec<u32> = ["a", "b", "c"]
                .iter()
                .flat_map(|m| last_assignment(&log(m)))
                .collect();
            all.sort();
            ["a", "b", "c"]
                .iter()
                .all(|m| !last_assignment(&log(m)).is_empty())
                && all == (0..PARTITIONS).collect::<Vec<_>>()
        },
    );
    let capture = |partition: &str| -> Child {
        env.cmd()
            .args(["twitter", "--twitter-api-base", &mock.url])
            .args(["--stream", "firehose", "--partition", partition])
            .args(["--sink", "bus", "--max-records", &PER_CAPTURE.to_string()])
            .stderr(std::fs::File::create(env.path(&format!("capture{partition}.log"))).unwrap())
            .spawn()
            .unwrap()
    };
    let mut captures = [capture("1"), capture("2")];

    // Mid-run: A has written to S3 and committed on its partitions, and the
    // captures still produce.
    let a_held = last_assignment(&log("a"));
    poll("a's first commit", Duration::from_secs(60), || {
        let offsets = committed_are_in_the_lake(&group, &topic, &lake);
        a_held
            .iter()
            .any(|p| offsets.get(p).is_some_and(|o| *o > 0))
    });
    assert!(
        captures.iter_mut().all(|c| c.try_wait().unwrap().is_none()),
        "the kill lands while the captures still produce"
    );
    a.kill().unwrap(); // SIGKILL
    a.wait().unwrap();
    committed_are_in_the_lake(&group, &topic, &lake);
    let mut d = member("d");

    for (i, c) in captures.iter_mut().enumerate() {
        let status = wait_with_timeout(c, Duration::from_secs(120));
        assert!(
            status.success(),
            "capture {}: {}",
            i + 1,
            log(&format!("capture{}", i + 1))
        );
    }
    let produced: Vec<(u32, String)> = serde_json::from_value(py(
        TOPIC_IDS,
        &[&brokers, &topic, &(2 * PER_CAPTURE).to_string()],
    ))
    .unwrap();
    let wanted: BTreeSet<String> = produced.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(
        wanted.len() as u64,
        2 * PER_CAPTURE,
        "the partitions carry disjoint posts"
    );
    let partitions_used: BTreeSet<u32> = produced.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        partitions_used.len() as u32,
        PARTITIONS,
        "keys spread over every partition"
    );

    poll("every post in the lake", Duration::from_secs(120), || {
        let got: BTreeSet<String> = lake.ids().into_iter().collect();
        wanted.is_subset(&got)
    });
    for child in [&b, &c, &d] {
        signal(child, 15);
    }
    for (name, child) in [("b", &mut b), ("c", &mut c), ("d", &mut d)] {
        let status = wait_with_timeout(child, Duration::from_secs(60));
        assert!(status.success(), "{name}: {}", log(name));
    }
    let d_log = log("d");
    assert!(
        d_log.contains("partitions assigned"),
        "the member that joined got partitions: {d_log}"
    );
    assert!(
        summary_in(&d_log).is_some_and(|s| s["records_in"].as_u64().unwrap_or(0) > 0),
        "and wrote from them: {d_log}"
    );

    let offsets = committed_are_in_the_lake(&group, &topic, &lake);
    assert_eq!(
        offsets.values().sum::<u64>(),
        2 * PER_CAPTURE,
        "every message committed at the end: {offsets:?}"
    );
    let ids = lake.ids();
    let copies = counts(ids.iter().cloned());
    assert!(
        copies.keys().all(|id| wanted.contains(id)),
        "nothing in the lake that was not produced"
    );
    let duplicates: usize = copies.values().map(|n| n - 1).sum();
    let bound = a_held.len() as u64 * BATCH;
    assert!(
        (duplicates as u64) <= bound,
        "{duplicates} duplicate rows; at most one batch ({BATCH}) per partition the killed member held ({a_held:?})"
    );
}
