//! Kafka source throughput: topic → file, against kcat reading the same topic.
//!
//! ```text
//! scripts/services up kafka && eval "$(scripts/services env)"
//! cargo build --release && cargo run --release --example kafka_source_bench -- --records 300000
//! ```
//!
//! Fills a fresh topic with `ingest replay --sink kafka` (untimed, realistic X
//! lines from the shared generator), then times `ingest kafka --until-idle
//! --sink file` (decode, deliver with fsync, commit offsets) and `kcat -C -e`
//! consuming the same topic into a file, each from process start to exit, and
//! prints both rates only once each side read every record exactly once.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

#[path = "common/util.rs"]
mod util;
use util::{arg, ingest_bin};

#[path = "common/lines.rs"]
mod lines;

fn run(cmd: &mut Command) -> (f64, String) {
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let secs = start.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{cmd:?} failed:\n{err}");
    (secs, err)
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
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let topic = format!("bench-source-{nanos}");

    let mut input = std::io::BufWriter::new(std::fs::File::create(path("in.jsonl")).unwrap());
    let mut buf = Vec::with_capacity(4096);
    for i in 0..records {
        buf.clear();
        lines::line(i, &mut buf);
        input.write_all(&buf).unwrap();
    }
    input.flush().unwrap();
    drop(input);
    std::fs::write(
        path("ingest.toml"),
        format!(
            "[kafka]\nsession_timeout_ms = 10000\nidle_ms = 1000\n\n[sinks.k]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopic = \"{topic}\"\n"
        ),
    )
    .unwrap();
    let ingest = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.args(args)
            .arg("--state-dir")
            .arg(path("state"))
            .current_dir(dir.path())
            .env("RUST_LOG", "warn,ingest::sources::kafka=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    run(&mut ingest(&["replay", "in.jsonl", "--sink", "k"]));
    println!("topic {topic}: {records} records produced by ingest");

    let (secs, err) = run(&mut ingest(&[
        "kafka",
        "--brokers",
        &brokers,
        "--topic",
        &topic,
        "--group",
        "bench",
        "--until-idle",
        "--summary",
        "--sink",
        "file",
        "--file-path",
        "out.jsonl",
    ]));
    let got = std::fs::read(path("out.jsonl"))
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .unwrap_or(0);
    let bytes = std::fs::metadata(path("out.jsonl"))
        .map(|m| m.len())
        .unwrap_or(0);
    // A fresh group on a fresh topic, one consumer: no rebalance, so exactly once.
    assert_eq!(
        got as u64, records,
        "every record delivered exactly once:\n{err}"
    );

    // kcat over the same interval: from process start to exit, into a file.
    let kcat_out = std::fs::File::create(path("kcat.out")).unwrap();
    let start = Instant::now();
    let status = Command::new(&kcat)
        .args([
            "-C",
            "-b",
            &brokers,
            "-t",
            &topic,
            "-o",
            "beginning",
            "-e",
            "-q",
        ])
        .args(["-f", "%s\\n"])
        .stdin(Stdio::null())
        .stdout(kcat_out)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let kcat_secs = start.elapsed().as_secs_f64();
    assert!(status.success(), "kcat failed");
    let n = std::fs::read(path("kcat.out"))
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .unwrap_or(0);
    assert_eq!(n as u64, records, "kcat read every message");
    // Both figures are process start to exit: ingest's includes its group join,
    // the --until-idle wait (idle_ms, 1 s) and the final commit; kcat's its
    // start and the end-of-partition wait, and no group at all.
    println!(
        "ingest kafka → file (process start to exit): {got} records in {secs:.2} s = {:.0} records/s, {:.1} MB/s written",
        got as f64 / secs,
        bytes as f64 / secs / 1e6
    );
    println!(
        "kcat -C -e → file (process start to exit): {n} messages in {kcat_secs:.2} s = {:.0} messages/s",
        n as f64 / kcat_secs
    );
}
