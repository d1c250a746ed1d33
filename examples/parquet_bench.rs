//! Parquet against JSON lines and gzip JSON lines, to files and to S3:
//! records/s (from the first byte read to the last record confirmed, the real
//! binary replaying generated X stream lines) and bytes per record written.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example parquet_bench -- --records 100000          # files only
//! scripts/services up s3 && eval "$(scripts/services env)"
//! cargo run --release --example parquet_bench -- --records 100000 --s3     # and S3 (moto)
//! ```
//!
//! Every case uses the sink's default batching (10 000 records a batch, so a
//! Parquet file or object holds up to 10 000 rows) and runs `--runs N` times
//! (at least 3; a fresh directory or bucket each time), printing records/s as
//! min / median / max (the machine varies ±20 % run to run) and the bytes per
//! record (the same every run). The S3 figures are bound by moto, a Python
//! server.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

#[path = "common/util.rs"]
mod util;
use util::{arg, arg_or, ingest_bin};

#[path = "common/spread.rs"]
mod spread;
use spread::{runs, show};

/// One X stream line, ~650 bytes, for post `i`.
fn line(i: u64, out: &mut String) {
    use std::fmt::Write;
    let author = 1_000_000 + (i * 7919) % 50_000;
    let id = 1_600_000_000_000_000_000u64 + i;
    writeln!(
        out,
        r#"{{"data":{{"id":"{id}","text":"Just shipped a new release of our data pipeline 🚀 #rustlang #dataengineering {i}","author_id":"{author}","created_at":"2026-11-22T07:00:00.000Z","lang":"en","conversation_id":"{id}","source":"Twitter for iPhone","public_metrics":{{"retweet_count":{rt},"reply_count":3,"like_count":7,"quote_count":0}}}},"includes":{{"users":[{{"id":"{author}","name":"User {author}","username":"user_{author}"}}]}},"matching_rules":[{{"id":"1590000000000000001","tag":"rust"}}]}}"#,
        rt = i % 1000
    )
    .unwrap();
}

/// Bytes of every file under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                bytes_under(&p)
            } else {
                e.metadata().map_or(0, |m| m.len())
            }
        })
        .sum()
}

fn python(script: &str, args: &[&str]) -> String {
    let py = std::env::var("INGEST_TEST_PYTHON")
        .expect("INGEST_TEST_PYTHON is not set: `eval \"$(scripts/services env)\"` first");
    let out = Command::new(py)
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
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

const CREATE_BUCKET: &str = r#"
import boto3, sys
boto3.client("s3", endpoint_url=sys.argv[1]).create_bucket(Bucket=sys.argv[2])
"#;

const BUCKET_BYTES: &str = r#"
import boto3, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
n = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2]):
    n += sum(o["Size"] for o in page.get("Contents", []))
print(n)
"#;

/// Replays `input` into the one sink of `config`; (records delivered, seconds).
fn replay(bin: &Path, dir: &Path, input: &Path, name: &str, config: &str) -> (u64, f64) {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, config).unwrap();
    let start = Instant::now();
    let out = Command::new(bin)
        .current_dir(dir)
        .arg("replay")
        .arg(input)
        .args(["--sink", "out", "--summary", "--config"])
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
    assert!(out.status.success(), "{name}: {stderr}");
    let summary: Value = stderr
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no summary from ingest:\n{stderr}"));
    let delivered = summary["sinks"]["out"]["delivered"].as_u64().unwrap_or(0);
    assert_eq!(
        delivered,
        summary["records_in"].as_u64().unwrap_or(0),
        "{name}: {stderr}"
    );
    (delivered, secs)
}

/// One case's runs: (records delivered, seconds, bytes written) each.
fn report(name: &str, runs: &[(u64, f64, u64)]) {
    let rates: Vec<f64> = runs.iter().map(|(n, s, _)| *n as f64 / s).collect();
    let (n, _, bytes) = runs[runs.len() - 1];
    println!(
        "{name:22} {n} records: records/s {}; {:>6.1} bytes/record",
        show(&rates, 0, ""),
        bytes as f64 / n.max(1) as f64
    );
}

fn main() {
    let records: u64 = arg_or("--records", 20_000);
    let s3 = std::env::args().any(|a| a == "--s3");
    let bin = ingest_bin();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let mut text = String::with_capacity(records as usize * 700);
    for i in 0..records {
        line(i, &mut text);
    }
    std::fs::write(&input, &text).unwrap();
    println!(
        "{records} X stream lines, {:.1} MB ({:.0} bytes a line), binary {}",
        text.len() as f64 / 1e6,
        text.len() as f64 / records as f64,
        bin.display()
    );
    drop(text);
    let file_cases = [
        ("file json", "path = \"{d}/x.jsonl\""),
        ("file json gzip", "path = \"{d}/x.jsonl.gz\"\ngzip = true"),
        (
            "file parquet zstd",
            "path = \"{d}/x.parquet\"\nformat = \"parquet\"",
        ),
        (
            "file parquet snappy",
            "path = \"{d}/x.parquet\"\nformat = \"parquet\"\ncompression = \"snappy\"",
        ),
        (
            "file parquet no raw",
            "path = \"{d}/x.parquet\"\nformat = \"parquet\"\nraw = false",
        ),
    ];
    let runs = runs();
    println!("{runs} runs per case");
    for (n, (name, fields)) in file_cases.iter().enumerate() {
        let measured: Vec<(u64, f64, u64)> = (0..runs)
            .map(|r| {
                let out = dir.path().join(format!("out{n}-{r}"));
                let fields = fields.replace("{d}", &out.display().to_string());
                let config = format!("[sinks.out]\ntype = \"file\"\n{fields}\n");
                let (delivered, secs) = replay(&bin, dir.path(), &input, name, &config);
                let bytes = bytes_under(&out);
                let _ = std::fs::remove_dir_all(&out);
                (delivered, secs, bytes)
            })
            .collect();
        report(name, &measured);
    }
    if !s3 {
        println!("(add --s3, with scripts/services' S3 up and its env loaded, for the S3 figures)");
        return;
    }
    let endpoint = arg("--endpoint")
        .or_else(|| std::env::var("INGEST_TEST_S3_ENDPOINT").ok())
        .expect("INGEST_TEST_S3_ENDPOINT is not set");
    let s3_cases = [
        ("s3 json", ""),
        ("s3 json gzip", "gzip = true"),
        ("s3 parquet zstd", "format = \"parquet\""),
    ];
    for (n, (name, fields)) in s3_cases.iter().enumerate() {
        let measured: Vec<(u64, f64, u64)> = (0..runs)
            .map(|r| {
                let bucket = format!("pqbench-{}-{n}-{r}", std::process::id());
                python(CREATE_BUCKET, &[&endpoint, &bucket]);
                let config = format!(
                    "[sinks.out]\ntype = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nforce_path_style = true\n{fields}\n"
                );
                let (delivered, secs) = replay(&bin, dir.path(), &input, name, &config);
                let bytes: u64 = python(BUCKET_BYTES, &[&endpoint, &bucket]).parse().unwrap();
                (delivered, secs, bytes)
            })
            .collect();
        report(name, &measured);
    }
}
