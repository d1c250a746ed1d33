//! Kafka sink throughput against kcat, in one run, on the same broker.
//!
//! ```text
//! scripts/services up kafka && eval "$(scripts/services env)"
//! cargo build --release && cargo run --release --example kafka_bench -- --records 300000
//! ```
//!
//! 1. Generates realistic X stream lines (the same generator as `bench`).
//! 2. Runs `ingest replay --sink file` once, untimed, to get the exact record
//!    lines the Kafka sink will produce, and writes them as `key<TAB>value`.
//! 3. Times `ingest replay FILE --sink kafka` (parse + normalize + produce, every
//!    delivery report awaited) into a fresh topic.
//! 4. Times `kcat -P -K '\t'` producing those same keyed records to another fresh
//!    topic with the same producer settings (acks=all, idempotence, the codec
//!    below) and the same headers: none (ingest's sink with `headers = false`:
//!    kcat cannot send ingest's per-record `rule_tag` headers).
//! 5. Reads both topics back with `kcat -C -e` and requires `records` messages
//!    in each, then prints both rates and ingest/kcat as a ratio.
//!
//! Brokers from `--brokers` or `INGEST_TEST_KAFKA_BROKERS`; kcat from
//! `INGEST_TEST_KCAT` or `kcat` on PATH (it needs a librdkafka that speaks to
//! the broker; `scripts/services` sets one up).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

#[path = "common/util.rs"]
mod util;
use util::{arg, ingest_bin};

#[path = "common/lines.rs"]
mod lines;

fn timed(cmd: &mut Command) -> f64 {
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    secs
}

fn main() {
    let records: u64 = arg("--records")
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let brokers = arg("--brokers")
        .or_else(|| std::env::var("INGEST_TEST_KAFKA_BROKERS").ok())
        .expect("name the brokers with --brokers or INGEST_TEST_KAFKA_BROKERS (scripts/services up kafka)");
    let kcat = std::env::var("INGEST_TEST_KCAT").unwrap_or_else(|_| "kcat".into());
    let bin = ingest_bin();
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p);

    let mut input = std::io::BufWriter::new(std::fs::File::create(path("in.jsonl")).unwrap());
    let mut buf = Vec::with_capacity(4096);
    for i in 0..records {
        buf.clear();
        lines::line(i, &mut buf);
        input.write_all(&buf).unwrap();
    }
    input.flush().unwrap();
    drop(input);

    let ingest = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.args(args)
            .arg("--state-dir")
            .arg(path("state"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    // The exact records, keyed, for kcat.
    let records_file = path("records.jsonl");
    let file_secs = timed(
        ingest(&[
            "replay",
            "in.jsonl",
            "--sink",
            "file",
            "--file-path",
            records_file.to_str().unwrap(),
        ])
        .current_dir(dir.path()),
    );
    let text = std::fs::read_to_string(&records_file).unwrap();
    let mut keyed = Vec::with_capacity(text.len() + text.len() / 8);
    let mut bytes = 0usize;
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        writeln!(keyed, "{}\t{l}", v["id"].as_str().unwrap()).unwrap();
        bytes += l.len();
    }
    assert_eq!(text.lines().count() as u64, records);
    std::fs::write(path("keyed.tsv"), &keyed).unwrap();
    println!(
        "{records} records, {:.1} MB of record JSON (avg {} B)",
        bytes as f64 / 1e6,
        bytes as u64 / records
    );

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    const CODEC: &str = "lz4";
    let ingest_topic = format!("bench-ingest-{nanos}");
    let kcat_topic = format!("bench-kcat-{nanos}");
    let config = format!(
        "[sinks.k]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopic = \"{ingest_topic}\"\ncompression = \"{CODEC}\"\nheaders = false\n"
    );
    std::fs::write(path("ingest.toml"), config).unwrap();
    let ingest_secs = timed(
        ingest(&[
            "replay",
            "in.jsonl",
            "--sink",
            "k",
            "--config",
            path("ingest.toml").to_str().unwrap(),
        ])
        .current_dir(dir.path()),
    );
    let kcat_secs = timed(
        Command::new(&kcat)
            .args(["-P", "-b", &brokers, "-t", &kcat_topic])
            .args(["-K", "\t", "-z", CODEC, "-X", "acks=all", "-X"])
            .args(["enable.idempotence=true", "-X", "linger.ms=5", "-l"])
            .arg(path("keyed.tsv"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    // Both topics hold every record once, with no headers, before any figure.
    for topic in [&ingest_topic, &kcat_topic] {
        let out = Command::new(&kcat)
            .args([
                "-C",
                "-b",
                &brokers,
                "-t",
                topic,
                "-o",
                "beginning",
                "-e",
                "-q",
            ])
            .args(["-f", "%k\\t%h\\n"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "kcat could not read {topic} back");
        let text = String::from_utf8_lossy(&out.stdout);
        let keys: std::collections::HashSet<&str> = text
            .lines()
            .map(|l| l.split('\t').next().unwrap())
            .collect();
        assert_eq!(text.lines().count() as u64, records, "{topic}: messages");
        assert_eq!(
            keys.len() as u64,
            records,
            "{topic}: one message per record"
        );
        assert!(
            text.lines()
                .all(|l| l.split('\t').nth(1).is_none_or(str::is_empty)),
            "{topic}: headers were sent"
        );
    }
    println!(
        "both sides: codec {CODEC}, acks=all, idempotent, no headers; both topics read back whole"
    );
    let rate = |secs: f64| records as f64 / secs;
    let mb = |secs: f64| bytes as f64 / secs / 1e6;
    println!(
        "ingest replay → kafka: {:.2} s = {:.0} records/s, {:.1} MB/s (parse + normalize + produce, all acked)",
        ingest_secs,
        rate(ingest_secs),
        mb(ingest_secs)
    );
    println!(
        "kcat -P (same records): {:.2} s = {:.0} records/s, {:.1} MB/s",
        kcat_secs,
        rate(kcat_secs),
        mb(kcat_secs)
    );
    println!("ratio ingest/kcat: {:.2}×", kcat_secs / ingest_secs);
    println!(
        "for reference, ingest replay → file (same input, fsync): {file_secs:.2} s = {:.0} records/s",
        rate(file_secs)
    );
}
