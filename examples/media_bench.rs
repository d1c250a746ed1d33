//! Media benchmark: `ingest telegram --until-idle` from the mock Bot API into
//! a file, with `--media` off and on. With media on, every message carries a
//! photo of its own (`distinct_photo_bytes`), downloaded through `getFile`
//! and the file endpoint, hashed, and stored content-addressed in files.
//! Prints the record rate both ways and the media throughput (MB/s,
//! objects/s); each case runs `--runs N` times (at least 3), each in a fresh
//! directory; the figures are min / median / max.
//!
//! ```text
//! cargo build --release && cargo run --release --example media_bench -- --updates 2000 --photo-bytes 65536 --concurrency 4
//! ```

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

#[path = "common/util.rs"]
mod util;
use util::{arg_or, ingest_bin};

#[path = "common/spread.rs"]
mod spread;
use spread::{runs, show};

/// One run's figures.
struct Run {
    records_per_sec: f64,
    mb_per_sec: f64,
    objects_per_sec: f64,
}

/// Starts the mock Bot API with `updates` messages, each with a distinct
/// photo of `photo_bytes`; its URL.
fn start_mock(
    bin: &Path,
    dir: &Path,
    updates: u64,
    photo_bytes: u64,
) -> (std::process::Child, String) {
    let scenario = dir.join("scenario.toml");
    std::fs::write(
        &scenario,
        format!("updates = {updates}\nrate = 0.0\nevery_type = false\ndistinct_photo_bytes = {photo_bytes}\n"),
    )
    .unwrap();
    let mut mock = Command::new(bin)
        .args(["mock", "telegram", "--listen", "127.0.0.1:0", "--scenario"])
        .arg(&scenario)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(mock.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    (mock, url.trim().to_owned())
}

/// The run's `--summary` line (the last JSON line on stderr).
fn summary(stderr: &[u8]) -> serde_json::Value {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("a summary line")
}

fn once(bin: &Path, dir: &Path, updates: u64, photo_bytes: u64, media: Option<usize>) -> Run {
    let (mut mock, url) = start_mock(bin, dir, updates, photo_bytes);
    std::fs::write(
        dir.join("ingest.toml"),
        format!("[media]\nconcurrency = {}\n", media.unwrap_or(1)),
    )
    .unwrap();
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir)
        .args([
            "telegram",
            "--until-idle",
            "--sink",
            "file",
            "--file-path",
            "out.jsonl",
        ])
        .args([
            "--summary",
            "--telegram-api-base",
            &url,
            "--state-dir",
            "state",
        ])
        .env("TELEGRAM_BOT_TOKEN", "1:bench-token")
        .env("RUST_LOG", "warn");
    if media.is_some() {
        cmd.arg("--media");
    }
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let secs = start.elapsed().as_secs_f64();
    let _ = mock.kill();
    let _ = mock.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&out.stderr);
    assert_eq!(s["records_in"], updates, "{s}");
    let m = &s["source"]["media"];
    if media.is_some() {
        assert_eq!(m["stored"], updates, "every photo distinct and stored: {s}");
    }
    let bytes = m["bytes"].as_f64().unwrap_or(0.0);
    let objects = m["stored"].as_f64().unwrap_or(0.0);
    Run {
        records_per_sec: updates as f64 / secs,
        mb_per_sec: bytes / 1e6 / secs,
        objects_per_sec: objects / secs,
    }
}

fn main() {
    let updates = arg_or("--updates", 2_000u64);
    let photo_bytes = arg_or("--photo-bytes", 65_536u64);
    let concurrency = arg_or("--concurrency", 4usize);
    let bin = ingest_bin();
    let runs = runs();
    println!(
        "{runs} runs per case; {updates} Telegram messages, polled 100 per getUpdates, each batch committed after confirmation"
    );
    let fresh = || tempfile::tempdir().unwrap();
    let off: Vec<Run> = (0..runs)
        .map(|_| once(&bin, fresh().path(), updates, photo_bytes, None))
        .collect();
    let on: Vec<Run> = (0..runs)
        .map(|_| {
            once(
                &bin,
                fresh().path(),
                updates,
                photo_bytes,
                Some(concurrency),
            )
        })
        .collect();
    let col = |xs: &[Run], f: fn(&Run) -> f64| xs.iter().map(f).collect::<Vec<f64>>();
    println!(
        "media off → file: records/s {}",
        show(&col(&off, |r| r.records_per_sec), 0, "")
    );
    println!(
        "media on ({photo_bytes}-byte photo per message, concurrency {concurrency}, file store): records/s {}",
        show(&col(&on, |r| r.records_per_sec), 0, "")
    );
    println!(
        "media throughput: MB/s {}; objects/s {}",
        show(&col(&on, |r| r.mb_per_sec), 1, ""),
        show(&col(&on, |r| r.objects_per_sec), 0, "")
    );
}
