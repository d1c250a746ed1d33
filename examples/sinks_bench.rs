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
//! sink (with the venv's boto3), runs the real binary once per sink and prints
//! records/s and MB/s of input, from the first byte read to the last record
//! confirmed. The local servers set the ceiling: moto and nx-27017 are Python,
//! and ferrokinesis with `--enforce-limits` throttles each shard to 1000
//! records/s and 1 MiB/s, as Kinesis does.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

#[path = "common/util.rs"]
mod util;
use util::{arg_or, ingest_bin};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the servers with `scripts/services up s3 kinesis mongodb` and `eval \"$(scripts/services env)\"`")
    })
}

fn py(script: &str, args: &[&str]) {
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
}

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

/// Replays `input` (`records` lines) into `sink`; refuses to print a figure
/// unless ingest read every generated record and settled each.
#[allow(clippy::too_many_arguments)]
fn run(
    bin: &Path,
    dir: &Path,
    input: &Path,
    input_bytes: u64,
    records: u64,
    sink: &str,
    config: &str,
) {
    let cfg = dir.join(format!("{sink}.toml"));
    std::fs::write(&cfg, config).unwrap();
    let start = Instant::now();
    let out = Command::new(bin)
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
        .env("RUST_LOG", "warn")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
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
        "replay → {sink} did not settle every record (exit {:?}):\n{stderr}",
        out.status.code()
    );
    println!(
        "replay → {sink:8} {delivered} records in {secs:.2} s = {:>8.0} records/s, {:>6.1} MB/s; {} write calls, {} records retried, {} dead-lettered",
        delivered as f64 / secs,
        input_bytes as f64 / secs / 1e6,
        s["batches"],
        s["retried"],
        s["dead_lettered"],
    );
    if let Some(first) = std::fs::read_to_string(dir.join("state/dead-letters.jsonl"))
        .ok()
        .and_then(|t| t.lines().next().map(str::to_owned))
    {
        let v: Value = serde_json::from_str(&first).unwrap();
        println!("  first dead letter: {}", v["error"]);
        let _ = std::fs::remove_file(dir.join("state/dead-letters.jsonl"));
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
    let tag = format!("bench-{}", std::process::id());
    for sink in sinks.split(',') {
        match sink {
            "s3" => {
                let endpoint = var("INGEST_TEST_S3_ENDPOINT");
                py(CREATE_BUCKET, &[&endpoint, &tag]);
                let config = format!(
                    "[sinks.s3]\ntype = \"s3\"\nbucket = \"{tag}\"\nendpoint = \"{endpoint}\"\nforce_path_style = true\n"
                );
                run(
                    &bin,
                    dir.path(),
                    &input,
                    input_bytes,
                    records,
                    "s3",
                    &config,
                );
                let config = format!("{config}gzip = true\n");
                let config = config.replace("[sinks.s3]", "[sinks.s3gz]");
                run(
                    &bin,
                    dir.path(),
                    &input,
                    input_bytes,
                    records,
                    "s3gz",
                    &config,
                );
            }
            "kinesis" => {
                let endpoint = var("INGEST_TEST_KINESIS_ENDPOINT");
                py(CREATE_STREAM, &[&endpoint, &tag, &shards.to_string()]);
                let config = format!(
                    "[sinks.kinesis]\ntype = \"kinesis\"\nstream_name = \"{tag}\"\nendpoint = \"{endpoint}\"\n"
                );
                println!("(kinesis: {shards} shards; the server throttles each to 1000 records/s)");
                run(
                    &bin,
                    dir.path(),
                    &input,
                    input_bytes,
                    records,
                    "kinesis",
                    &config,
                );
                py(DELETE_STREAM, &[&endpoint, &tag]);
            }
            "mongodb" => {
                let uri = var("INGEST_TEST_MONGODB_URI");
                let collection = tag.replace('-', "_");
                let config = format!(
                    "[sinks.mongodb]\ntype = \"mongodb\"\nuri = \"{uri}\"\ndatabase = \"bench\"\ncollection = \"{collection}\"\n"
                );
                run(
                    &bin,
                    dir.path(),
                    &input,
                    input_bytes,
                    records,
                    "mongodb",
                    &config,
                );
            }
            other => panic!("unknown sink `{other}`: s3, kinesis or mongodb"),
        }
    }
}
