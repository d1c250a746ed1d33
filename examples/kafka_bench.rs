//! Kafka sink throughput against kcat, in one run, on the same broker.
//!
//! ```text
//! scripts/services up kafka && eval "$(scripts/services env)"
//! cargo build --release && cargo run --release --example kafka_bench -- --records 300000 [--codec lz4|none|zstd|snappy|gzip]
//! ```
//!
//! 1. Generates realistic X stream lines (the same generator as `bench`).
//! 2. Runs `ingest replay --sink file` once, untimed, to get the exact record
//!    lines the Kafka sink will produce, and writes them as `key<TAB>value`.
//! 3. Times `ingest replay FILE --sink kafka` (parse + normalize + produce, every
//!    delivery report awaited) into a fresh topic, from process start to exit.
//! 4. Times `kcat -P -K '\t'` producing those same keyed records to another fresh
//!    topic with the same codec (`--codec`, default lz4: ingest's default),
//!    acks=all, idempotence, linger.ms=5 and no headers (ingest's sink with
//!    `headers = false`: kcat cannot send ingest's per-record headers), from
//!    process start to exit.
//! 5. Reads both topics back with `kcat -C -e` and requires each to hold
//!    exactly the keyed records of step 2 (same key and value, each once, no
//!    headers); only then prints both rates, CPU per record, and the ratio.
//! 6. Steps 3–5 run `--runs N` times (at least 3), into fresh topics each
//!    time; every figure is printed as min / median / max.
//!
//! `--write-input FILE` only writes the generated input lines (to profile or
//! try settings by hand). `--perf FILE` runs the timed `ingest` under `perf record -g -o FILE`.
//!
//! Brokers from `--brokers` or `INGEST_TEST_KAFKA_BROKERS`; kcat from
//! `INGEST_TEST_KCAT` or `kcat` on PATH (it needs a librdkafka that speaks to
//! the broker; `scripts/services` sets one up).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::process::{Command, Stdio};

#[path = "common/util.rs"]
mod util;
use util::{arg, ingest_bin};

#[path = "common/lines.rs"]
mod lines;

#[path = "common/spread.rs"]
mod spread;
use spread::{runs, show};

#[path = "common/child.rs"]
mod child;
use child::{Measured, maybe_perf, measure};

/// A sorted list of 64-bit hashes of `key<TAB>value` lines: a multiset that
/// two sides can be compared by without holding both texts. With `per_run`
/// false the value's `received_at` and `run` (which differ from one ingest
/// run to the next) are left out, and the key must be the value's `id`.
fn fingerprint<'a>(lines: impl Iterator<Item = &'a [u8]>, per_run: bool) -> Vec<u64> {
    let mut v: Vec<u64> = lines
        .map(|l| {
            let mut h = DefaultHasher::new();
            if per_run {
                l.hash(&mut h);
            } else {
                let tab = l.iter().position(|b| *b == b'\t').expect("key<TAB>value");
                let (key, value) = (&l[..tab], &l[tab + 1..]);
                let mut record: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(value).expect("a record");
                assert_eq!(record["id"].as_str().map(str::as_bytes), Some(key));
                record.remove("received_at");
                record.remove("run");
                key.hash(&mut h);
                serde_json::to_vec(&record).unwrap().hash(&mut h);
            }
            h.finish()
        })
        .collect();
    v.sort_unstable();
    v
}

fn main() {
    let records: u64 = arg("--records")
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let codec = arg("--codec").unwrap_or_else(|| "lz4".into());
    let perf = arg("--perf");
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
    if let Some(to) = arg("--write-input") {
        std::fs::copy(path("in.jsonl"), &to).unwrap();
        println!("{records} input lines written to {to}");
        return;
    }

    let ingest = |args: &[&str], perf: Option<&str>| {
        let mut c = maybe_perf(&bin, perf);
        c.args(args)
            .arg("--state-dir")
            .arg(path("state"))
            .current_dir(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        c
    };
    // The exact records, keyed, for kcat.
    let records_file = path("records.jsonl");
    let file = measure(&mut ingest(
        &[
            "replay",
            "in.jsonl",
            "--sink",
            "file",
            "--file-path",
            records_file.to_str().unwrap(),
        ],
        None,
    ));
    let text = std::fs::read_to_string(&records_file).unwrap();
    let mut keyed = Vec::with_capacity(text.len() + text.len() / 8);
    let mut bytes = 0usize;
    for l in text.lines() {
        #[derive(serde::Deserialize)]
        struct Id<'a> {
            #[serde(borrow)]
            id: &'a str,
        }
        let id = serde_json::from_str::<Id>(l).unwrap().id;
        writeln!(keyed, "{id}\t{l}").unwrap();
        bytes += l.len();
    }
    assert_eq!(text.lines().count() as u64, records);
    drop(text);
    let keyed_lines = || keyed.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    let expected = fingerprint(keyed_lines(), true);
    let expected_any_run = fingerprint(keyed_lines(), false);
    std::fs::write(path("keyed.tsv"), &keyed).unwrap();
    drop(keyed);
    println!(
        "{records} records, {:.1} MB of record JSON (avg {} B)",
        bytes as f64 / 1e6,
        bytes as u64 / records
    );

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let runs = runs();
    let (mut ingest_runs, mut kcat_runs) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let ingest_topic = format!("bench-ingest-{nanos}-{run}");
        let kcat_topic = format!("bench-kcat-{nanos}-{run}");
        let config = format!(
            "[sinks.k]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopic = \"{ingest_topic}\"\ncompression = \"{codec}\"\nheaders = false\n"
        );
        std::fs::write(path("ingest.toml"), config).unwrap();
        let ingest_run = measure(&mut ingest(
            &[
                "replay",
                "in.jsonl",
                "--sink",
                "k",
                "--config",
                path("ingest.toml").to_str().unwrap(),
            ],
            perf.as_deref().filter(|_| run == 0),
        ));
        let kcat_run = measure(
            Command::new(&kcat)
                .args(["-P", "-b", &brokers, "-t", &kcat_topic, "-K", "\t"])
                .args(["-X", &format!("compression.codec={codec}")])
                .args(["-X", "acks=all", "-X", "enable.idempotence=true"])
                .args(["-X", "linger.ms=5", "-l"])
                .arg(path("keyed.tsv"))
                .stdout(Stdio::null()),
        );
        // Both topics hold exactly the keyed records, once each, with no headers,
        // before any figure is printed: kcat's byte for byte, ingest's but for the
        // `received_at` and `run` of its own run.
        for (topic, per_run) in [(&ingest_topic, false), (&kcat_topic, true)] {
            let out = Command::new(&kcat)
                .args(["-C", "-b", &brokers, "-t", topic])
                .args(["-o", "beginning", "-e", "-q"])
                .args(["-f", "%h\\t%k\\t%s\\n"])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .unwrap();
            assert!(out.status.success(), "kcat could not read {topic} back");
            let lines: Vec<&[u8]> = out
                .stdout
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            assert_eq!(lines.len() as u64, records, "{topic}: messages");
            // "%h" prints nothing for a message without headers: the line starts with the tab.
            assert!(
                lines.iter().all(|l| l.first() == Some(&b'\t')),
                "{topic}: headers were sent"
            );
            let got = fingerprint(lines.iter().map(|l| &l[1..]), per_run);
            let want = if per_run {
                &expected
            } else {
                &expected_any_run
            };
            assert!(
                got == *want,
                "{topic}: the messages are not exactly the keyed records"
            );
        }
        ingest_runs.push(ingest_run);
        kcat_runs.push(kcat_run);
    }
    println!(
        "both sides: codec {codec}, acks=all, idempotent, linger.ms=5, no headers; every run, both topics read back: exactly the {records} keyed records, once each; {runs} runs"
    );
    let print_runs = |what: &str, ms: &[&Measured]| {
        let of = |f: &dyn Fn(&Measured) -> f64| ms.iter().map(|m| f(m)).collect::<Vec<f64>>();
        println!("{what}:");
        println!(
            "  records/s  {}",
            show(&of(&|m| records as f64 / m.wall), 0, "")
        );
        println!(
            "  MB/s       {}",
            show(&of(&|m| bytes as f64 / m.wall / 1e6), 1, "")
        );
        println!(
            "  CPU        {}",
            show(&of(&|m| m.cpu_us_per(records)), 2, "µs/record")
        );
        println!("  max RSS    {}", show(&of(&|m| m.max_rss_mib), 0, "MiB"));
    };
    print_runs(
        "ingest replay → kafka (parse + normalize + produce, all acked)",
        &ingest_runs.iter().collect::<Vec<_>>(),
    );
    print_runs(
        "kcat -P (the same keyed records)",
        &kcat_runs.iter().collect::<Vec<_>>(),
    );
    let ratio = |f: &dyn Fn(&Measured, &Measured) -> f64| -> Vec<f64> {
        ingest_runs
            .iter()
            .zip(&kcat_runs)
            .map(|(i, k)| f(i, k))
            .collect()
    };
    println!(
        "ratio ingest/kcat ({codec}), run by run: {} in records/s, {} in records per CPU second",
        show(&ratio(&|i, k| k.wall / i.wall), 2, "×"),
        show(&ratio(&|i, k| k.cpu / i.cpu), 2, "×")
    );
    print_runs(
        "for reference, ingest replay → file (same input, fsync; one untimed-setup run)",
        &[&file],
    );
}
