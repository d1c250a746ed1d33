//! Kafka source throughput: topic → file, against kcat reading the same topic.
//!
//! ```text
//! scripts/services up kafka && eval "$(scripts/services env)"
//! cargo build --release && cargo run --release --example kafka_source_bench -- --records 300000
//! ```
//!
//! Fills a fresh topic with `ingest replay --sink kafka` (untimed, realistic X
//! lines from the shared generator, lz4), then times, each from process start
//! to exit:
//!
//! - `ingest kafka --until-idle --sink file` (join a fresh group, decode each
//!   record, deliver with fsync, commit offsets after the sink confirmed, stop
//!   once every partition reported its end: `idle_ms = 0`, the same stop rule
//!   as kcat's `-e`), and
//! - `kcat -C -e` writing each message value to a file (no group, no commits).
//!
//! Figures are printed only once each side read every record exactly once:
//! the ids in ingest's file and in kcat's values are each the `--records`
//! produced ids, each once.

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};

#[path = "common/util.rs"]
mod util;
use util::{arg, ingest_bin};

#[path = "common/lines.rs"]
mod lines;

#[path = "common/child.rs"]
mod child;
use child::{Measured, measure};

/// The `id` of every JSON line in `path`, checked to be `records` distinct ids.
fn ids_once(path: &std::path::Path, records: u64, who: &str) -> HashSet<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    let text = std::fs::read(path).unwrap_or_default();
    let mut ids = HashSet::with_capacity(records as usize);
    let mut n = 0u64;
    for l in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        n += 1;
        let id = serde_json::from_slice::<Id>(l)
            .unwrap_or_else(|e| panic!("{who}: a line is not a record: {e}"))
            .id;
        assert!(ids.insert(id), "{who}: a record was read twice");
    }
    assert_eq!(n, records, "{who}: every record read exactly once");
    ids
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
    // idle_ms = 0: stop as soon as every partition reported its end (kcat -e).
    std::fs::write(
        path("ingest.toml"),
        format!(
            "[kafka]\nsession_timeout_ms = 10000\nidle_ms = 0\n\n[sinks.k]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopic = \"{topic}\"\n"
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
            .stdout(Stdio::null());
        c
    };
    measure(
        &mut ingest(&["replay", "in.jsonl", "--sink", "k"]),
        &path("fill"),
    );
    println!("topic {topic}: {records} records produced by ingest (lz4)");

    let ingest_run = measure(
        &mut ingest(&[
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
        ]),
        &path("ingest"),
    );
    let bytes = std::fs::metadata(path("out.jsonl"))
        .map(|m| m.len())
        .unwrap_or(0);

    let kcat_out = std::fs::File::create(path("kcat.out")).unwrap();
    let kcat_run = measure(
        Command::new(&kcat)
            .args(["-C", "-b", &brokers, "-t", &topic])
            .args(["-o", "beginning", "-e", "-q", "-f", "%s\\n"])
            .stdout(kcat_out),
        &path("kcat"),
    );
    // Exactly once on each side, and the same ids on both.
    let ingest_ids = ids_once(&path("out.jsonl"), records, "ingest");
    let kcat_ids = ids_once(&path("kcat.out"), records, "kcat");
    assert!(ingest_ids == kcat_ids, "ingest and kcat read different ids");
    println!("both sides read the {records} records exactly once (the same ids)");
    let line = |what: &str, m: &Measured| {
        println!(
            "{what} (process start to exit): {:.2} s = {:.0} records/s; CPU {:.2} s = {:.2} µs/record; max RSS {:.0} MiB",
            m.wall,
            records as f64 / m.wall,
            m.cpu,
            m.cpu_us_per(records),
            m.max_rss_mib
        );
    };
    line(
        &format!(
            "ingest kafka → file ({:.1} MB written, fsync, offsets committed)",
            bytes as f64 / 1e6
        ),
        &ingest_run,
    );
    line("kcat -C -e → file (no group, no commits)", &kcat_run);
    println!(
        "ratio ingest/kcat: {:.2}× in records/s, {:.2}× in records per CPU second",
        kcat_run.wall / ingest_run.wall,
        kcat_run.cpu / ingest_run.cpu
    );
    // When the group was joined: the first "consuming"/assignment log line is
    // not timestamped relative to start, so show ingest's own log tail instead.
    if let Some(l) = ingest_run.stderr.lines().rev().find(|l| l.contains("records")) {
        println!("ingest's summary: {}", l.trim());
    }
}
