//! Throughput of the S3, Kinesis and MongoDB sinks: `ingest replay FILE` into
//! each, against the local servers of `scripts/services`.
//!
//! ```text
//! scripts/services up s3 kinesis mongodb && eval "$(scripts/services env)"
//! cargo build --release && cargo run --release --example sinks_bench -- --records 100000
//! cargo run --release --example sinks_bench -- --records 20000 --sinks kinesis --shards 8
//! ```
//!
//! It generates X stream lines, creates a fresh bucket / stream / collection per
//! sink and run (with the venv's boto3), runs the real binary `--runs N` times
//! per sink (at least 3) and prints, as min / median / max: records/s and MB/s
//! of input from the first byte read to the last record confirmed, ingest's CPU
//! per record (user + system, from `wait4`), and the latency of its write calls
//! (p50 / p99 / max of one run's calls, from its `write call` debug lines). A
//! run counts only once every record was read back from the server with an
//! independent client (boto3, pymongo) — each id once. The local servers set
//! the ceiling: moto and nx-27017 are Python, and ferrokinesis with
//! `--enforce-limits` throttles each shard to 1000 records/s and 1 MiB/s, as
//! Kinesis does.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;

#[path = "common/util.rs"]
mod util;
use util::{arg_or, ingest_bin};

#[path = "common/spread.rs"]
mod spread;
use spread::{runs, show};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the servers with `scripts/services up s3 kinesis mongodb` and `eval \"$(scripts/services env)\"`")
    })
}

fn py(script: &str, args: &[&str]) -> String {
    let out = Command::new(var("INGEST_TEST_PYTHON"))
        .arg("-c")
        .arg(script)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads every record back: `{"records": N, "distinct": D}` on stdout.
const READ_S3: &str = r#"
import boto3, gzip, json, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
ids, n = set(), 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2]):
    for o in page.get("Contents", []):
        body = s3.get_object(Bucket=sys.argv[2], Key=o["Key"])["Body"].read()
        if o["Key"].endswith(".gz"):
            body = gzip.decompress(body)
        for line in body.splitlines():
            if line:
                n += 1
                ids.add(json.loads(line)["id"])
print(json.dumps({"records": n, "distinct": len(ids)}))
"#;

const READ_KINESIS: &str = r#"
import boto3, json, sys, time
k = boto3.client("kinesis", endpoint_url=sys.argv[1])
ids, n = set(), 0
for shard in k.list_shards(StreamName=sys.argv[2])["Shards"]:
    it = k.get_shard_iterator(StreamName=sys.argv[2], ShardId=shard["ShardId"],
                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    while it:
        try:
            r = k.get_records(ShardIterator=it, Limit=10000)
        except k.exceptions.ProvisionedThroughputExceededException:
            time.sleep(0.2)
            continue
        for rec in r["Records"]:
            n += 1
            ids.add(json.loads(rec["Data"])["id"])
        if not r["Records"] and r.get("MillisBehindLatest", 0) == 0:
            break
        it = r.get("NextShardIterator")
print(json.dumps({"records": n, "distinct": len(ids)}))
"#;

const READ_MONGODB: &str = r#"
import json, sys
from pymongo import MongoClient
c = MongoClient(sys.argv[1], serverSelectionTimeoutMS=5000)["bench"][sys.argv[2]]
ids = [d["_id"] for d in c.find({}, {"_id": 1})]
print(json.dumps({"records": len(ids), "distinct": len(set(ids))}))
"#;

const CREATE_BUCKET: &str = r#"
import boto3, sys
boto3.client("s3", endpoint_url=sys.argv[1]).create_bucket(Bucket=sys.argv[2])
"#;

const CREATE_STREAM: &str = r#"
import boto3, sys, time
k = boto3.client("kinesis", endpoint_url=sys.argv[1])
k.create_stream(StreamName=sys.argv[2], ShardCount=int(sys.argv[3]))
while k.describe_stream_summary(StreamName=sys.argv[2])["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
    time.sleep(0.05)
"#;

const DELETE_STREAM: &str = r#"
import boto3, sys
boto3.client("kinesis", endpoint_url=sys.argv[1]).delete_stream(StreamName=sys.argv[2], EnforceConsumerDeletion=True)
"#;

/// One X stream line, ~600 bytes, for tweet `i`.
fn line(i: u64, out: &mut Vec<u8>) {
    let author = 1_000_000 + (i * 7919) % 50_000;
    let id = 1_600_000_000_000_000_000u64 + i;
    writeln!(
        out,
        r#"{{"data":{{"id":"{id}","text":"Just shipped a new release of our data pipeline 🚀 #rustlang #dataengineering {i}","author_id":"{author}","created_at":"2026-11-22T07:00:00.000Z","lang":"en","conversation_id":"{id}","source":"Twitter for iPhone","public_metrics":{{"retweet_count":{rt},"reply_count":3,"like_count":7,"quote_count":0}}}},"includes":{{"users":[{{"id":"{author}","name":"User {author}","username":"user_{author}"}}]}},"matching_rules":[{{"id":"1590000000000000001","tag":"rust"}}]}}"#,
        rt = i % 1000
    )
    .unwrap();
}

/// What one run of one sink measured.
struct Run {
    secs: f64,
    /// User + system CPU seconds of ingest.
    cpu: f64,
    /// Milliseconds each write call took.
    calls_ms: Vec<f64>,
    delivered: u64,
}

/// Replays `input` (`records` lines) into `sink`; refuses to return a figure
/// unless ingest read every generated record and settled each.
fn run(bin: &Path, dir: &Path, input: &Path, records: u64, sink: &str, config: &str) -> Run {
    let cfg = dir.join(format!("{sink}.toml"));
    std::fs::write(&cfg, config).unwrap();
    let start = Instant::now();
    #[allow(clippy::zombie_processes)] // reaped below with wait4, which also gives the rusage
    let mut child = Command::new(bin)
        .arg("replay")
        .arg(input)
        // A file replays faster than a throttled stream drains: no drain deadline.
        .args([
            "--sink",
            sink,
            "--summary",
            "--shutdown-timeout",
            "1h",
            "--config",
        ])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env("RUST_LOG", "warn,ingest::pipeline::worker=debug")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(pipe).unwrap());
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: zeroed rusage is valid; wait4 on our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(rc, pid, "wait4 failed");
    let stderr = reader.join().unwrap();
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let summary: Value = stderr
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no summary from ingest:\n{stderr}"));
    let s = &summary["sinks"][sink];
    let delivered = s["delivered"].as_u64().unwrap_or(0);
    let dead = s["dead_lettered"].as_u64().unwrap_or(0);
    // A figure is a figure only if ingest read every generated record…
    assert_eq!(
        summary["records_in"].as_u64(),
        Some(records),
        "replay → {sink} read a different number of records than generated:\n{stderr}"
    );
    // …and every one was written or dead-lettered (the dead letters are reported below).
    assert_eq!(
        delivered + dead,
        summary["records_in"].as_u64().unwrap_or(u64::MAX),
        "replay → {sink} did not settle every record (exit {status}):\n{stderr}"
    );
    if dead > 0 {
        println!(
            "  replay → {sink}: {dead} dead-lettered, {} retried",
            s["retried"]
        );
    }
    if let Some(first) = std::fs::read_to_string(dir.join("state/dead-letters.jsonl"))
        .ok()
        .and_then(|t| t.lines().next().map(str::to_owned))
    {
        let v: Value = serde_json::from_str(&first).unwrap();
        println!("  first dead letter: {}", v["error"]);
        let _ = std::fs::remove_file(dir.join("state/dead-letters.jsonl"));
    }
    let calls_ms = stderr
        .lines()
        .filter(|l| l.contains("write call"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("elapsed_ms="))
                .and_then(|v| v.parse().ok())
        })
        .collect();
    Run {
        secs,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        calls_ms,
        delivered,
    }
}

/// Checks the server holds exactly the run's records (`{"records", "distinct"}`
/// from a reader script) and that none is missing.
fn read_back(answer: &str, sink: &str, delivered: u64, records: u64) {
    let v: Value = serde_json::from_str(answer.trim()).unwrap();
    assert_eq!(
        (v["records"].as_u64(), v["distinct"].as_u64()),
        (Some(delivered), Some(records)),
        "{sink}: the server holds {v}, ingest delivered {delivered} of {records}"
    );
}

/// The p-th percentile (nearest rank) of `xs`, sorted.
fn pct(xs: &[f64], p: f64) -> f64 {
    let i = ((p / 100.0) * xs.len() as f64).ceil() as usize;
    xs[i.clamp(1, xs.len()) - 1]
}

/// Prints one sink's runs.
fn report(sink: &str, runs: &[Run], records: u64, input_bytes: u64) {
    let of = |f: &dyn Fn(&Run) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
    println!(
        "replay → {sink} ({} runs, every record read back from the server each run):",
        runs.len()
    );
    println!(
        "  records/s     {}",
        show(&of(&|r| r.delivered as f64 / r.secs), 0, "")
    );
    println!(
        "  MB/s in       {}",
        show(&of(&|r| input_bytes as f64 / r.secs / 1e6), 1, "")
    );
    println!(
        "  CPU           {}",
        show(&of(&|r| r.cpu * 1e6 / records as f64), 1, "µs/record")
    );
    println!(
        "  write calls   {}",
        show(&of(&|r| r.calls_ms.len() as f64), 0, "per run")
    );
    let lat = |p: f64| -> Vec<f64> {
        runs.iter()
            .filter(|r| !r.calls_ms.is_empty())
            .map(|r| {
                let mut v = r.calls_ms.clone();
                v.sort_by(f64::total_cmp);
                pct(&v, p)
            })
            .collect()
    };
    if runs.iter().all(|r| !r.calls_ms.is_empty()) {
        println!("  call p50      {}", show(&lat(50.0), 1, "ms"));
        println!("  call p99      {}", show(&lat(99.0), 1, "ms"));
        println!("  call max      {}", show(&lat(100.0), 1, "ms"));
    }
}

fn main() {
    let records: u64 = arg_or("--records", 100_000);
    let shards: u32 = arg_or("--shards", 4);
    let sinks = arg_or("--sinks", String::from("s3,kinesis,mongodb"));
    let bin = ingest_bin();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let mut buf = Vec::with_capacity(records as usize * 700);
    for i in 0..records {
        line(i, &mut buf);
    }
    std::fs::write(&input, &buf).unwrap();
    let input_bytes = buf.len() as u64;
    drop(buf);
    println!(
        "{records} X stream lines, {:.1} MB, binary {}",
        input_bytes as f64 / 1e6,
        bin.display()
    );
    let runs = runs();
    for sink in sinks.split(',') {
        let mut plain = Vec::new();
        let mut gz = Vec::new();
        for n in 0..runs {
            let tag = format!("bench-{}-{n}", std::process::id());
            match sink {
                "s3" => {
                    let endpoint = var("INGEST_TEST_S3_ENDPOINT");
                    for (name, gzip, out) in [("s3", false, &mut plain), ("s3gz", true, &mut gz)] {
                        let bucket = format!("{tag}-{name}");
                        py(CREATE_BUCKET, &[&endpoint, &bucket]);
                        let config = format!(
                            "[sinks.{name}]\ntype = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nforce_path_style = true\ngzip = {gzip}\n"
                        );
                        let r = run(&bin, dir.path(), &input, records, name, &config);
                        read_back(
                            &py(READ_S3, &[&endpoint, &bucket]),
                            name,
                            r.delivered,
                            records,
                        );
                        out.push(r);
                    }
                }
                "kinesis" => {
                    let endpoint = var("INGEST_TEST_KINESIS_ENDPOINT");
                    py(CREATE_STREAM, &[&endpoint, &tag, &shards.to_string()]);
                    let config = format!(
                        "[sinks.kinesis]\ntype = \"kinesis\"\nstream_name = \"{tag}\"\nendpoint = \"{endpoint}\"\n"
                    );
                    if n == 0 {
                        println!(
                            "(kinesis: {shards} shards; the server throttles each to 1000 records/s)"
                        );
                    }
                    let r = run(&bin, dir.path(), &input, records, "kinesis", &config);
                    read_back(
                        &py(READ_KINESIS, &[&endpoint, &tag]),
                        "kinesis",
                        r.delivered,
                        records,
                    );
                    plain.push(r);
                    py(DELETE_STREAM, &[&endpoint, &tag]);
                }
                "mongodb" => {
                    let uri = var("INGEST_TEST_MONGODB_URI");
                    let collection = tag.replace('-', "_");
                    let config = format!(
                        "[sinks.mongodb]\ntype = \"mongodb\"\nuri = \"{uri}\"\ndatabase = \"bench\"\ncollection = \"{collection}\"\n"
                    );
                    let r = run(&bin, dir.path(), &input, records, "mongodb", &config);
                    read_back(
                        &py(READ_MONGODB, &[&uri, &collection]),
                        "mongodb",
                        r.delivered,
                        records,
                    );
                    plain.push(r);
                }
                other => panic!("unknown sink `{other}`: s3, kinesis or mongodb"),
            }
        }
        report(sink, &plain, records, input_bytes);
        if !gz.is_empty() {
            report("s3 (gzip)", &gz, records, input_bytes);
        }
    }
}
