//! The `s3` and `kinesis` sinks against local S3 (moto) and Kinesis
//! (ferrokinesis with `--enforce-limits`) servers, read back with boto3.
//! Run through `scripts/test`, which starts the servers and exports their addresses.
#![cfg(all(feature = "s3", feature = "kinesis"))]

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

use serde_json::Value;

/// The binary's environment: test credentials, no IMDS lookups.
fn aws_env() -> Env {
    Env::new()
        .with("AWS_ACCESS_KEY_ID", "test")
        .with("AWS_SECRET_ACCESS_KEY", "test")
        .with("AWS_REGION", "us-east-1")
        .with("AWS_EC2_METADATA_DISABLED", "true")
        .with("RUST_LOG", "warn")
}

fn tweet(i: usize, text: &str) -> String {
    format!(
        r#"{{"data":{{"id":"{i}","text":"{text}","author_id":"{}"}}}}"#,
        i % 7
    )
}

fn write_input(env: &Env, lines: impl Iterator<Item = String>) -> String {
    let path = env.path("in.jsonl");
    let mut text = String::new();
    for l in lines {
        text.push_str(&l);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Replays `input` into `sink` and the `copy` file sink; the run must succeed; its summary.
fn replay_with_copy(env: &Env, input: &str, sink: &str) -> Value {
    let out = env.run(&[
        "replay",
        input,
        "--sink",
        sink,
        "--sink",
        "copy",
        "--summary",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    summary(&out)
}

/// The lines of a JSONL file, sorted.
fn sorted_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(str::to_owned).collect();
    v.sort();
    v
}

const S3_CREATE: &str = r#"
import boto3, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
s3.create_bucket(Bucket=sys.argv[2])
print("{}")
"#;

const S3_READ: &str = r#"
import boto3, sys, json, gzip
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
out = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2]):
    for o in page.get("Contents", []):
        got = s3.get_object(Bucket=sys.argv[2], Key=o["Key"])
        body = got["Body"].read()
        enc = got.get("ContentEncoding")
        if enc == "gzip":
            body = gzip.decompress(body)
        out.append({"key": o["Key"], "size": o["Size"], "etag": o["ETag"], "encoding": enc,
                    "content_type": got.get("ContentType"), "body": body.decode("utf-8")})
print(json.dumps(out))
"#;

fn s3_bucket() -> (String, String) {
    let endpoint = service("INGEST_TEST_S3_ENDPOINT");
    let bucket = unique("ingest", '-');
    py(S3_CREATE, &[&endpoint, &bucket]);
    (endpoint, bucket)
}

fn s3_config(endpoint: &str, bucket: &str, extra: &str, batch: &str) -> String {
    format!(
        r#"
[sinks.archive]
type = "s3"
bucket = "{bucket}"
endpoint = "{endpoint}"
force_path_style = true
{extra}

[sinks.archive.batch]
{batch}

[sinks.copy]
type = "file"
path = "copy.jsonl"
"#
    )
}

fn key_matches(key: &str, suffix: &str) -> bool {
    // twitter/context_date=YYYY-MM-DD/YYYYMMDDTHHMMSS.mmmZ-<uuid>.jsonl
    let Some(rest) = key.strip_prefix("twitter/context_date=") else {
        return false;
    };
    let (date, file) = rest.split_once('/').unwrap_or(("", ""));
    let date_ok = date.len() == 10 && date.chars().filter(|c| *c == '-').count() == 2;
    let Some(file) = file.strip_suffix(suffix) else {
        return false;
    };
    let (ts, uuid) = file.split_at(file.find('-').unwrap_or(0));
    date_ok
        && ts.len() == 20
        && ts.ends_with('Z')
        && ts[..8] == date.replace('-', "")
        && uuid.len() == 37
        && uuid[1..].chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

#[test]
fn s3_objects_follow_the_key_template_and_hold_every_record_once() {
    let (endpoint, bucket) = s3_bucket();
    let env = aws_env().config(&s3_config(&endpoint, &bucket, "", "max_records = 300"));
    let input = write_input(&env, (0..1000).map(|i| tweet(i, "hi")));
    let s = replay_with_copy(&env, &input, "archive");
    assert_eq!(s["sinks"]["archive"]["delivered"], 1000, "{s}");
    let objects = py(S3_READ, &[&endpoint, &bucket]);
    let objects = objects.as_array().unwrap();
    assert!(
        objects.len() >= 4,
        "300 records at most per object: {}",
        objects.len()
    );
    let mut all = String::new();
    for o in objects {
        let key = o["key"].as_str().unwrap();
        assert!(key_matches(key, ".jsonl"), "{key}");
        assert_eq!(o["content_type"], "application/x-ndjson");
        assert!(o["encoding"].is_null());
        let body = o["body"].as_str().unwrap();
        assert_eq!(o["size"].as_u64().unwrap() as usize, body.len());
        assert!(body.lines().count() <= 300);
        all.push_str(body);
    }
    // Byte for byte what the file sink wrote in the same run, each record once.
    let copy = std::fs::read_to_string(env.path("copy.jsonl")).unwrap();
    assert_eq!(all.len(), copy.len());
    assert_eq!(sorted_lines(&all), sorted_lines(&copy));
    assert_eq!(
        ids_of(&all),
        once((0..1000).map(|i| format!("twitter:{i}"))),
        "each record in exactly one object, once"
    );
}

/// How often each record id occurs in JSONL text.
fn ids_of(text: &str) -> BTreeMap<String, usize> {
    counts(text.lines().map(|l| {
        serde_json::from_str::<Value>(l).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }))
}

#[test]
fn s3_gzip_raw_objects_one_per_record() {
    let (endpoint, bucket) = s3_bucket();
    let env = aws_env().config(&s3_config(
        &endpoint,
        &bucket,
        "gzip = true\nformat = \"raw\"",
        "max_records = 1",
    ));
    let lines: Vec<String> = (0..5).map(|i| tweet(i, "héllo wörld")).collect();
    let input = write_input(&env, lines.clone().into_iter());
    let out = env.run(&["replay", &input, "--sink", "archive", "--summary"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let objects = py(S3_READ, &[&endpoint, &bucket]);
    let objects = objects.as_array().unwrap();
    assert_eq!(objects.len(), 5, "one object per record");
    let mut bodies: Vec<String> = Vec::new();
    for o in objects {
        let key = o["key"].as_str().unwrap();
        assert!(key_matches(key, ".jsonl.gz"), "{key}");
        assert_eq!(o["encoding"], "gzip");
        bodies.push(o["body"].as_str().unwrap().to_owned());
    }
    bodies.sort();
    let mut expected: Vec<String> = lines.iter().map(|l| format!("{l}\n")).collect();
    expected.sort();
    assert_eq!(bodies, expected, "the raw payloads, untouched");
}

#[test]
fn s3_large_batches_go_up_as_multipart_uploads() {
    let (endpoint, bucket) = s3_bucket();
    let env = aws_env().config(&s3_config(
        &endpoint,
        &bucket,
        "multipart_threshold_bytes = 5242880\nmultipart_part_bytes = 5242880",
        "max_records = 100000\nmax_bytes = 104857600\ntimeout_ms = 60000",
    ));
    let text = "x".repeat(2000);
    let input = write_input(&env, (0..6000).map(|i| tweet(i, &text)));
    replay_with_copy(&env, &input, "archive");
    let objects = py(S3_READ, &[&endpoint, &bucket]);
    let objects = objects.as_array().unwrap();
    let copy = std::fs::read_to_string(env.path("copy.jsonl")).unwrap();
    assert!(copy.len() > 10 * 1024 * 1024);
    let mut all = String::new();
    let mut multipart = 0;
    for o in objects {
        // A multipart ETag is "<md5 of the part md5s>-<parts>".
        if o["etag"].as_str().unwrap().trim_matches('"').contains('-') {
            multipart += 1;
        }
        all.push_str(o["body"].as_str().unwrap());
    }
    assert!(multipart >= 1, "{objects:?}");
    assert_eq!(all.len(), copy.len());
    assert_eq!(sorted_lines(&all), sorted_lines(&copy));
    assert_eq!(
        ids_of(&all),
        once((0..6000).map(|i| format!("twitter:{i}"))),
        "each record once across the parts"
    );
}

#[test]
fn s3_missing_bucket_is_a_clear_error_and_exit_1() {
    let endpoint = service("INGEST_TEST_S3_ENDPOINT");
    let bucket = unique("missing", '-');
    let env = aws_env().config(&s3_config(&endpoint, &bucket, "", "max_records = 10"));
    let input = write_input(&env, (0..3).map(|i| tweet(i, "hi")));
    let out = env.run(&["replay", &input, "--sink", "archive"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("the bucket `{bucket}` does not exist")),
        "{err}"
    );
}

const S3_COUNT: &str = r#"
import boto3, sys, json
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
print(json.dumps(s3.list_objects_v2(Bucket=sys.argv[2]).get("KeyCount", 0)))
"#;

const S3_DELETE_BUCKET: &str = r#"
import boto3, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
for o in s3.list_objects_v2(Bucket=sys.argv[2]).get("Contents", []):
    s3.delete_object(Bucket=sys.argv[2], Key=o["Key"])
s3.delete_bucket(Bucket=sys.argv[2])
print("{}")
"#;

#[test]
fn s3_a_bucket_deleted_mid_run_dead_letters_the_records_and_exits_1() {
    let (endpoint, bucket) = s3_bucket();
    let env = aws_env().config(&s3_config(&endpoint, &bucket, "", "timeout_ms = 100"));
    let mut child = env
        .cmd()
        .args(["replay", "-", "--sink", "archive", "--summary"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..3 {
        writeln!(stdin, "{}", tweet(i, "before")).unwrap();
    }
    stdin.flush().unwrap();
    let start = Instant::now();
    while py(S3_COUNT, &[&endpoint, &bucket]) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no object written"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    py(S3_DELETE_BUCKET, &[&endpoint, &bucket]);
    for i in 3..6 {
        writeln!(stdin, "{}", tweet(i, "after")).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["sinks"]["archive"]["delivered"], 3, "{s}");
    assert_eq!(s["sinks"]["archive"]["dead_lettered"], 3, "{s}");
    let letters = env.dead_letters();
    let ids: Vec<&str> = letters
        .iter()
        .map(|d| d["record"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["twitter:3", "twitter:4", "twitter:5"]);
    let reason = letters[0]["error"].as_str().unwrap();
    assert!(
        reason.contains(&format!("the bucket `{bucket}` does not exist")),
        "{reason}"
    );
}

const KINESIS_CREATE: &str = r#"
import boto3, sys, time
k = boto3.client("kinesis", endpoint_url=sys.argv[1])
k.create_stream(StreamName=sys.argv[2], ShardCount=int(sys.argv[3]))
for _ in range(200):
    if k.describe_stream_summary(StreamName=sys.argv[2])["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
        break
    time.sleep(0.05)
print("{}")
"#;

const KINESIS_READ: &str = r#"
import boto3, sys, json
k = boto3.client("kinesis", endpoint_url=sys.argv[1])
out = []
for shard in k.list_shards(StreamName=sys.argv[2])["Shards"]:
    it = k.get_shard_iterator(StreamName=sys.argv[2], ShardId=shard["ShardId"],
                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    while it:
        r = k.get_records(ShardIterator=it, Limit=10000)
        for rec in r["Records"]:
            out.append({"key": rec["PartitionKey"], "data": rec["Data"].decode("utf-8")})
        if not r["Records"] and r.get("MillisBehindLatest", 0) == 0:
            break
        it = r.get("NextShardIterator")
print(json.dumps(out))
"#;

const KINESIS_DELETE: &str = r#"
import boto3, sys
boto3.client("kinesis", endpoint_url=sys.argv[1]).delete_stream(StreamName=sys.argv[2], EnforceConsumerDeletion=True)
print("{}")
"#;

/// A stream for one test, deleted when the test ends: ferrokinesis enforces
/// the account's limit of 10 shards.
struct Stream {
    endpoint: String,
    name: String,
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = Command::new(service("INGEST_TEST_PYTHON"))
            .arg("-c")
            .arg(KINESIS_DELETE)
            .args([&self.endpoint, &self.name])
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .output();
    }
}

fn kinesis_stream(shards: u32) -> Stream {
    let endpoint = service("INGEST_TEST_KINESIS_ENDPOINT");
    let name = unique("ingest", '-');
    py(KINESIS_CREATE, &[&endpoint, &name, &shards.to_string()]);
    Stream { endpoint, name }
}

fn kinesis_config(endpoint: &str, stream: &str, extra: &str) -> String {
    format!(
        r#"
[sinks.stream]
type = "kinesis"
stream_name = "{stream}"
endpoint = "{endpoint}"
{extra}

[sinks.stream.batch]
max_records = 500
# The default [retry] budget: 8 attempts in a row without progress.

[sinks.copy]
type = "file"
path = "copy.jsonl"
"#
    )
}

#[test]
fn kinesis_throttled_entries_are_retried_until_every_record_is_in_the_stream_once() {
    // One shard takes 1000 records/s: 5000 records at once get throttled per record.
    let stream = kinesis_stream(1);
    let (endpoint, stream) = (&stream.endpoint, &stream.name);
    let env = aws_env().config(&kinesis_config(endpoint, stream, ""));
    let input = write_input(&env, (0..5000).map(|i| tweet(i, "hi")));
    let s = replay_with_copy(&env, &input, "stream");
    assert_eq!(s["sinks"]["stream"]["delivered"], 5000, "{s}");
    assert_eq!(s["sinks"]["stream"]["dead_lettered"], 0, "{s}");
    assert!(
        s["sinks"]["stream"]["retried"].as_u64().unwrap() > 0,
        "the shard throttled nothing: {s}"
    );
    let got = py(KINESIS_READ, &[endpoint, stream]);
    let got = got.as_array().unwrap();
    assert_eq!(got.len(), 5000, "every record exactly once");
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    let mut data: Vec<String> = Vec::new();
    for r in got {
        let d = r["data"].as_str().unwrap();
        let v: Value = serde_json::from_str(d).unwrap();
        let id = v["id"].as_str().unwrap().to_owned();
        assert_eq!(r["key"].as_str().unwrap(), id, "partition key = id");
        *by_id.entry(id).or_default() += 1;
        data.push(format!("{d}\n"));
    }
    assert_eq!(by_id.len(), 5000);
    assert!(by_id.values().all(|n| *n == 1));
    // Byte for byte the records the file sink got, one Kinesis record each.
    let copy = std::fs::read_to_string(env.path("copy.jsonl")).unwrap();
    data.sort();
    assert_eq!(data.concat().len(), copy.len());
    assert_eq!(sorted_lines(&data.concat()), sorted_lines(&copy));
}

#[test]
fn kinesis_oversized_records_are_dead_lettered_and_the_rest_delivered() {
    let stream = kinesis_stream(1);
    let (endpoint, stream) = (&stream.endpoint, &stream.name);
    let env = aws_env().config(&kinesis_config(
        endpoint,
        stream,
        "partition_key = \"raw.data.author_id\"\nformat = \"raw\"",
    ));
    let big = "y".repeat(1024 * 1024 + 10);
    let lines: Vec<String> = (0..10)
        .map(|i| tweet(i, if i == 4 { &big } else { "small" }))
        .collect();
    let input = write_input(&env, lines.clone().into_iter());
    let out = env.run(&["replay", &input, "--sink", "stream", "--summary"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["sinks"]["stream"]["delivered"], 9, "{s}");
    assert_eq!(s["sinks"]["stream"]["dead_lettered"], 1, "{s}");
    let letters = env.dead_letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["record"]["id"], "twitter:4");
    let reason = letters[0]["error"].as_str().unwrap();
    assert!(reason.contains("Kinesis takes at most 1048576"), "{reason}");
    let got = py(KINESIS_READ, &[endpoint, stream]);
    let got = got.as_array().unwrap();
    assert_eq!(
        counts(got.iter().map(|r| r["data"].as_str().unwrap().to_owned())),
        once(
            lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 4)
                .map(|(_, l)| l.clone())
        ),
        "every small record once"
    );
    for r in got {
        let v: Value = serde_json::from_str(r["data"].as_str().unwrap()).unwrap();
        // Raw payloads, keyed by the author.
        assert_eq!(r["key"], v["data"]["author_id"]);
        let i: usize = v["data"]["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(r["data"].as_str().unwrap(), lines[i]);
    }
}

#[test]
fn kinesis_missing_stream_is_a_clear_error_and_exit_1() {
    let endpoint = service("INGEST_TEST_KINESIS_ENDPOINT");
    let stream = unique("missing", '-');
    let env = aws_env().config(&kinesis_config(&endpoint, &stream, ""));
    let input = write_input(&env, (0..3).map(|i| tweet(i, "hi")));
    let out = env.run(&["replay", &input, "--sink", "stream"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("the Kinesis stream `{stream}` does not exist")),
        "{err}"
    );
}

#[test]
fn aws_sinks_need_their_table_and_valid_fields() {
    let env = aws_env();
    let input = write_input(&env, (0..1).map(|i| tweet(i, "hi")));
    let out = env.run(&["replay", &input, "--sink", "s3"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("[sinks.s3]"), "{}", stderr(&out));
    let env = env
        .config("[sinks.k]\ntype = \"kinesis\"\nstream_name = \"s\"\npartition_key = \"{nope}\"\n");
    let out = env.run(&["replay", &input, "--sink", "k"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("line 4") && err.contains("sinks.k.partition_key"),
        "{err}"
    );
    let env = env.config("# s3\n[sinks.a]\ntype = \"s3\"\ngzip = true\n");
    let out = env.run(&["replay", &input, "--sink", "a"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("line 2") && err.contains("sinks.a.bucket") && err.contains("missing field"),
        "{err}"
    );
    let env = env.config("[sinks.a]\ntype = \"s3\"\nbucket = \"b\"\nkey_templat = \"x\"\n");
    let out = env.run(&["replay", &input, "--sink", "a"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("line 4") && err.contains("sinks.a.key_templat"),
        "{err}"
    );
}

const MONGO_DOCS: &str = r#"
import sys, json
from pymongo import MongoClient
c = MongoClient(sys.argv[1], serverSelectionTimeoutMS=5000)[sys.argv[2]][sys.argv[3]]
print(json.dumps(list(c.find({})), default=str))
"#;

#[test]
#[cfg(all(feature = "kafka", feature = "mongodb"))]
fn fan_out_to_all_five_sinks_gives_identical_record_sets() {
    let (s3_endpoint, bucket) = s3_bucket();
    let stream = kinesis_stream(2);
    let topic = unique("fanout", '-');
    let collection = unique("fanout", '_');
    let config = format!(
        r#"
[sinks.file]
type = "file"
path = "file.jsonl"

[sinks.bus]
type = "kafka"
brokers = "{brokers}"
topic = "{topic}"

[sinks.stream]
type = "kinesis"
stream_name = "{stream_name}"
endpoint = "{kinesis}"

[sinks.archive]
type = "s3"
bucket = "{bucket}"
endpoint = "{s3_endpoint}"
force_path_style = true

[sinks.docs]
type = "mongodb"
uri = "{mongo}"
database = "ingest_test"
collection = "{collection}"
"#,
        brokers = service("INGEST_TEST_KAFKA_BROKERS"),
        stream_name = stream.name,
        kinesis = stream.endpoint,
        mongo = service("INGEST_TEST_MONGODB_URI"),
    );
    let env = aws_env().config(&config);
    let input = write_input(&env, (0..300).map(|i| tweet(i, "fan out ☕ to every sink")));
    let out = env.run(&[
        "replay",
        &input,
        "--sink",
        "file",
        "--sink",
        "bus",
        "--sink",
        "stream",
        "--sink",
        "archive",
        "--sink",
        "docs",
        "--summary",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(&out);
    for sink in ["file", "bus", "stream", "archive", "docs"] {
        assert_eq!(s["sinks"][sink]["delivered"], 300, "{sink}: {s}");
    }

    // The file sink's lines are the reference: the exact serialized records.
    let file_text = std::fs::read_to_string(env.path("file.jsonl")).unwrap();
    assert_eq!(
        ids_of(&file_text),
        once((0..300).map(|i| format!("twitter:{i}"))),
        "the file holds each record once"
    );
    let file = counts(file_text.lines().map(str::to_owned));
    // Kafka, read with kcat: the same lines, each once.
    let kafka = counts(
        kcat_read(&service("INGEST_TEST_KAFKA_BROKERS"), &topic, 300)
            .into_iter()
            .map(|m| m.payload),
    );
    assert_eq!(kafka, file, "kafka");
    // Kinesis, read with boto3 GetRecords.
    let kinesis: Vec<String> = py(KINESIS_READ, &[&stream.endpoint, &stream.name])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["data"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(counts(kinesis), file, "kinesis holds each record once");
    // S3, read with boto3.
    let s3: Vec<String> = py(S3_READ, &[&s3_endpoint, &bucket])
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|o| {
            o["body"]
                .as_str()
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(counts(s3), file, "s3 holds each record once");
    // MongoDB, read with pymongo: one document per record, keyed by id, same content.
    let docs = py(
        MONGO_DOCS,
        &[
            &service("INGEST_TEST_MONGODB_URI"),
            "ingest_test",
            &collection,
        ],
    );
    let docs = docs.as_array().unwrap();
    assert_eq!(docs.len(), 300);
    let by_id: BTreeMap<String, Value> = file
        .keys()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["id"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    for d in docs {
        let id = d["_id"].as_str().unwrap();
        let r = &by_id[id];
        assert_eq!(d["text"], r["text"], "{id}");
        assert_eq!(d["raw"], r["raw"], "{id}");
        assert_eq!(d["run"]["id"], r["run"]["id"], "{id}");
    }
}

/// `ingest check` on an S3 sink on a machine with no AWS credentials at all (empty
/// environment, empty HOME) says so and names every place the chain looked,
/// instead of an SDK "dispatch failure" about IMDS. The endpoint is a closed
/// port: the credentials are looked for before any request.
#[test]
fn check_without_aws_credentials_says_none_were_found_and_where_it_looked() {
    let env = Env::new();
    let home = env.path("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        env.path("ingest.toml"),
        format!(
            "[sinks.lake]\ntype = \"s3\"\nbucket = \"b\"\nregion = \"us-east-1\"\nendpoint = \"http://{}\"\n",
            free_addr()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ingest"))
        .args(["check", "--sink", "lake"])
        .current_dir(env.dir.path())
        .env_clear()
        .env("HOME", &home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // IMDS may time out where nothing answers it: a generous deadline.
    let status = wait_with_timeout(&mut child, Duration::from_secs(120));
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut out).unwrap();
    assert_eq!(status.code(), Some(1), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("FAIL sink lake"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("no AWS credentials found"), "{line}");
    for place in [
        "AWS_ACCESS_KEY_ID",
        "~/.aws/credentials",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "ECS",
        "IMDS",
    ] {
        assert!(line.contains(place), "{place} missing: {line}");
    }
    assert!(!line.contains("dispatch failure"), "{line}");
}
