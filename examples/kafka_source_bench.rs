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
//! - `kcat -C -e` writing each message value to a file (no group, no commits),
//! - `kcat -G GROUP -e` the same, as a member of a fresh group (the same group
//!   join as ingest; librdkafka's auto-commit on).
//!
//! Each case runs `--runs N` times (at least 3), each run of a group
//! consumer in a group of its own that nobody joined before, and prints the
//! minimum, median and maximum.
//!
//! A group join on a fresh group takes the broker seconds (tansu here, like
//! Kafka's `group.initial.rebalance.delay.ms`), so for the two group
//! consumers it also prints the time from the assignment (their stderr line
//! saying so) to exit.
//!
//! Figures are printed only once each side read every record exactly once:
//! the ids in ingest's file and in each kcat's values are the same
//! `--records` ids, each once. `--perf FILE` runs the timed `ingest` under
//! `perf record -g -o FILE`.

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
use child::{Measured, maybe_perf, measure, measure_until};

#[path = "common/spread.rs"]
mod spread;
use spread::{runs, show};

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
    let perf = arg("--perf");
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
    let ingest = |args: &[&str], perf: Option<&str>| {
        let mut c = maybe_perf(&bin, perf);
        c.args(args)
            .arg("--state-dir")
            .arg(path("state"))
            .current_dir(dir.path())
            .env("RUST_LOG", "warn,ingest::sources::kafka=info")
            .stdout(Stdio::null());
        c
    };
    measure(&mut ingest(&["replay", "in.jsonl", "--sink", "k"], None));
    println!("topic {topic}: {records} records produced by ingest (lz4)");

    let runs = runs();
    let (mut ingest_runs, mut kcat_runs, mut kcat_group_runs) = (vec![], vec![], vec![]);
    let mut bytes = 0;
    for run in 0..runs {
        for f in ["out.jsonl", "kcat.out", "kcat-group.out"] {
            let _ = std::fs::remove_file(path(f));
        }
        // A fresh group on both group sides, every run.
        let group = format!("ingest-{nanos}-{run}");
        let ingest_run = measure_until(
            &mut ingest(
                &[
                    "kafka",
                    "--brokers",
                    &brokers,
                    "--topic",
                    &topic,
                    "--group",
                    &group,
                    "--until-idle",
                    "--summary",
                    "--sink",
                    "file",
                    "--file-path",
                    "out.jsonl",
                ],
                perf.as_deref().filter(|_| run == 0),
            ),
            Some("partitions assigned"),
        );
        bytes = std::fs::metadata(path("out.jsonl"))
            .map(|m| m.len())
            .unwrap_or(0);
        let kcat_out = std::fs::File::create(path("kcat.out")).unwrap();
        let kcat_run = measure(
            Command::new(&kcat)
                .args(["-C", "-b", &brokers, "-t", &topic])
                .args(["-o", "beginning", "-e", "-q", "-f", "%s\\n"])
                .stdout(kcat_out),
        );
        let kcat_group_out = std::fs::File::create(path("kcat-group.out")).unwrap();
        let kcat_group_run = measure_until(
            Command::new(&kcat)
                .args(["-b", &brokers, "-G", &format!("kcat-{nanos}-{run}")])
                .args(["-X", "auto.offset.reset=earliest"])
                .args(["-X", "session.timeout.ms=10000"])
                .args(["-e", "-f", "%s\\n", &topic])
                .stdout(kcat_group_out),
            Some("assigned:"),
        );
        // Exactly once on each side, and the same ids on both.
        let ingest_ids = ids_once(&path("out.jsonl"), records, "ingest");
        let kcat_ids = ids_once(&path("kcat.out"), records, "kcat");
        assert!(ingest_ids == kcat_ids, "ingest and kcat read different ids");
        let kcat_group_ids = ids_once(&path("kcat-group.out"), records, "kcat -G");
        assert!(
            ingest_ids == kcat_group_ids,
            "ingest and kcat -G read different ids"
        );
        ingest_runs.push(ingest_run);
        kcat_runs.push(kcat_run);
        kcat_group_runs.push(kcat_group_run);
    }
    println!(
        "every run, both sides read the {records} records exactly once (the same ids); {runs} runs each"
    );
    let line = |what: &str, ms: &[Measured]| {
        let of = |f: &dyn Fn(&Measured) -> f64| ms.iter().map(f).collect::<Vec<f64>>();
        println!("{what} (process start to exit):");
        println!("  wall       {}", show(&of(&|m| m.wall), 2, "s"));
        println!(
            "  records/s  {}",
            show(&of(&|m| records as f64 / m.wall), 0, "")
        );
        println!(
            "  CPU        {}",
            show(&of(&|m| m.cpu_us_per(records)), 2, "µs/record")
        );
        println!("  max RSS    {}", show(&of(&|m| m.max_rss_mib), 0, "MiB"));
        let after: Vec<f64> = ms
            .iter()
            .filter_map(|m| m.marked.map(|t| m.wall - t))
            .collect();
        if after.len() == ms.len() {
            println!(
                "  from the assignment to exit {} (the group join left out)",
                show(&after, 2, "s")
            );
        }
    };
    line(
        &format!(
            "ingest kafka → file ({:.1} MB written, fsync, offsets committed, a fresh group)",
            bytes as f64 / 1e6
        ),
        &ingest_runs,
    );
    line("kcat -C -e → file (no group, no commits)", &kcat_runs);
    line(
        "kcat -G -e → file (a fresh group, auto-commit)",
        &kcat_group_runs,
    );
}
