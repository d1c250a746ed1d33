//! Throughput and memory benchmark: normalize alone, and replay → file end to end.
//!
//! ```text
//! cargo build --release && cargo run --release --example bench -- --records 1000000
//! ```
//!
//! It generates realistic X filtered-stream lines itself (authors in
//! `includes.users`, matching rules, emoji, right-to-left text, long posts),
//! measures the normalizer in process, then pipes the lines into the real
//! `ingest replay - --sink file` binary pinned to one core and reports
//! records/s, MB/s, CPU time and peak RSS (from `wait4`). Beside it, two
//! writers of the same output bytes to the same disk on the same core: one
//! that fdatasyncs after each batch, in as many batches of the same size as
//! ingest's file sink wrote (its `--summary` counts them) — the like-for-like
//! floor, since ingest fsyncs every batch — and `cat`, which leaves them in
//! the page cache (named as such). Each case runs `--runs N` times (at least
//! 3); the figures are min / median / max. `--no-raw` passes `--no-raw` to
//! the binary.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use ingest::record::{NormalizeOptions, Normalized, RunInfo};
use ingest::sources::twitter::normalize_line;

/// The allocator the binary uses, so the in-process figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/lines.rs"]
mod lines;
use lines::line;

#[path = "common/util.rs"]
mod util;
use util::{arg_or, ingest_bin};

#[path = "common/spread.rs"]
mod spread;
use spread::{runs, show};

fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET and sched_setaffinity get valid pointers.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// One end-to-end run of `replay - → file`.
struct Replay {
    records: u64,
    secs: f64,
    cpu: f64,
    max_rss_mib: f64,
    input_bytes: u64,
    /// The file sink's batches (each one write and one fdatasync).
    batches: u64,
}

/// Pipes `records` generated lines into `ingest replay - --sink file` at `out`
/// (pinned to one core when there are two), and checks every record arrived.
fn replay_once(records: u64, out: &std::path::Path, state: &std::path::Path) -> Replay {
    let mut cmd = Command::new(ingest_bin());
    cmd.args(["replay", "-", "--sink", "file", "--summary", "--file-path"])
        .arg(out)
        .arg("--state-dir")
        .arg(state)
        .args(
            std::env::args()
                .any(|a| a == "--no-raw")
                .then_some("--no-raw"),
        )
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let two_cores = two_cores();
    if two_cores {
        // SAFETY: only async-signal-safe calls (sched_setaffinity) between fork and exec.
        unsafe {
            cmd.pre_exec(|| pin_to_cpu(0));
        }
    }
    let start = Instant::now();
    #[allow(clippy::zombie_processes)] // reaped below with wait4, which also gives the rusage
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        if two_cores {
            let _ = pin_to_cpu(1);
        }
        let mut buf = Vec::with_capacity(1 << 20);
        let mut total = 0u64;
        for i in 0..records {
            line(i, &mut buf);
            if buf.len() > (1 << 20) - 8192 {
                stdin.write_all(&buf).unwrap();
                total += buf.len() as u64;
                buf.clear();
            }
        }
        stdin.write_all(&buf).unwrap();
        total + buf.len() as u64
    });
    let input_bytes = writer.join().unwrap();
    let stderr = child.stderr.take().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: zeroed rusage is valid; wait4 on our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(rc, pid, "wait4 failed");
    let log = std::io::read_to_string(stderr).unwrap();
    // Counted through a small buffer: reading the whole output into memory
    // would raise this process's RSS, which the next run's child would count
    // as its own peak (it starts as a copy of this process).
    let delivered = newlines(out);
    assert_eq!(
        delivered as u64, records,
        "every record delivered; ingest said:\n{log}"
    );
    let summary: serde_json::Value = log
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("the --summary line");
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Replay {
        records,
        secs,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        input_bytes,
        batches: summary["sinks"]["file"]["batches"].as_u64().unwrap().max(1),
    }
}

/// The lines of the file at `path` (0 when it cannot be read).
fn newlines(path: &std::path::Path) -> usize {
    let Ok(mut f) = std::fs::File::open(path) else {
        return 0;
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0;
    loop {
        match std::io::Read::read(&mut f, &mut buf) {
            Ok(0) | Err(_) => return n,
            Ok(len) => n += buf[..len].iter().filter(|c| **c == b'\n').count(),
        }
    }
}

impl Replay {
    fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.secs
    }
}

fn two_cores() -> bool {
    std::thread::available_parallelism()
        .map(|n| n.get() > 1)
        .unwrap_or(false)
}

/// Writes `bytes` to a new file at `to` in `batches` equal parts (cut at line
/// ends), each one write and one fdatasync, as the file sink writes a batch;
/// on core 0 like ingest. The seconds it took.
fn synced_copy(bytes: &[u8], to: &std::path::Path, batches: u64) -> f64 {
    std::thread::scope(|s| {
        s.spawn(|| {
            if two_cores() {
                let _ = pin_to_cpu(0);
            }
            let start = Instant::now();
            let mut f = std::fs::File::create(to).unwrap();
            let per = (bytes.len() as u64).div_ceil(batches) as usize;
            let mut rest = bytes;
            while !rest.is_empty() {
                let cut = if rest.len() <= per {
                    rest.len()
                } else {
                    rest[per..]
                        .iter()
                        .position(|b| *b == b'\n')
                        .map_or(rest.len(), |i| per + i + 1)
                };
                f.write_all(&rest[..cut]).unwrap();
                f.sync_data().unwrap();
                rest = &rest[cut..];
            }
            start.elapsed().as_secs_f64()
        })
        .join()
        .unwrap()
    })
}

fn main() {
    let records = arg_or("--records", 1_000_000u64);
    let runs = runs();
    println!("generating {records} X stream lines per run, {runs} runs per case");

    // End to end first, while this process is small: a child's peak RSS
    // counts the parent's RSS at fork time on Linux.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let mut e2e = Vec::new();
    for _ in 0..runs {
        let _ = std::fs::remove_file(&out);
        e2e.push(replay_once(records, &out, &dir.path().join("state")));
    }
    let of = |f: fn(&Replay) -> f64| e2e.iter().map(f).collect::<Vec<f64>>();
    let n = records as f64;
    println!(
        "replay → file (fsync per batch){}:",
        if two_cores() {
            ", pinned to one core"
        } else {
            ""
        }
    );
    println!(
        "  records/s      {}",
        show(&of(|r| r.records_per_sec()), 0, "")
    );
    println!(
        "  MB/s in        {}",
        show(&of(|r| r.input_bytes as f64 / r.secs / 1e6), 1, "")
    );
    println!(
        "  CPU            {}",
        show(&of(|r| r.cpu * 1e6 / r.records as f64), 2, "µs/record")
    );
    println!(
        "  peak RSS       {}",
        show(&of(|r| r.max_rss_mib), 1, "MiB")
    );
    let batches = e2e[e2e.len() - 1].batches;

    // The same output bytes from writers that do nothing else, same disk,
    // same core: with an fdatasync per batch (like for like), and `cat`
    // (page cache only).
    let bytes = std::fs::read(&out).unwrap();
    let copy = dir.path().join("copy.jsonl");
    let synced: Vec<f64> = (0..runs)
        .map(|_| {
            let secs = synced_copy(&bytes, &copy, batches);
            assert_eq!(std::fs::metadata(&copy).unwrap().len(), bytes.len() as u64);
            n / secs
        })
        .collect();
    let cat: Vec<f64> = (0..runs)
        .map(|_| {
            let mut cat = Command::new("cat");
            cat.arg(&out).stdout(std::fs::File::create(&copy).unwrap());
            if two_cores() {
                // SAFETY: only async-signal-safe calls (sched_setaffinity) between fork and exec.
                unsafe {
                    cat.pre_exec(|| pin_to_cpu(0));
                }
            }
            let start = Instant::now();
            assert!(cat.status().unwrap().success());
            let secs = start.elapsed().as_secs_f64();
            assert_eq!(std::fs::metadata(&copy).unwrap().len(), bytes.len() as u64);
            n / secs
        })
        .collect();
    drop(std::fs::remove_file(&copy));
    println!(
        "write + fdatasync, the same {:.0} MB in {batches} batches (records/s equivalent): {}",
        bytes.len() as f64 / 1e6,
        show(&synced, 0, "")
    );
    println!(
        "cat, no fsync (page cache only), the same bytes (records/s equivalent): {}",
        show(&cat, 0, "")
    );
    let median = |xs: &[f64]| spread::spread(xs).1;
    let replay_median = median(&of(|r| r.records_per_sec()));
    println!(
        "median ratios: replay / synced writer = {:.2}, replay / cat (unsynced) = {:.2}",
        replay_median / median(&synced),
        replay_median / median(&cat)
    );
    drop(bytes);

    // Phase 1: normalize alone, in process, one thread.
    let opts = NormalizeOptions::new(Arc::new(RunInfo::new(None)));
    let received_at: Arc<str> = Arc::from("2026-11-22T07:00:00.000Z");
    let sample: u64 = records.min(1_000_000);
    let mut buf = Vec::with_capacity(4096);
    let mut bytes = 0u64;
    let mut lines = Vec::with_capacity(sample as usize);
    for i in 0..sample {
        buf.clear();
        line(i, &mut buf);
        bytes += buf.len() as u64;
        lines.push(buf.clone());
    }
    // The floor: one validating pass of serde_json over the same lines.
    let floor: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            for l in &lines {
                std::hint::black_box(serde_json::from_slice::<serde::de::IgnoredAny>(l).is_ok());
            }
            bytes as f64 / start.elapsed().as_secs_f64() / 1e6
        })
        .collect();
    println!(
        "json floor:    one serde_json validating pass, MB/s: {}",
        show(&floor, 1, "")
    );
    let normalized: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let mut n = 0u64;
            for l in &lines {
                if let Ok(Normalized::Record(r)) = normalize_line(l, &received_at, &opts) {
                    n += 1;
                    std::hint::black_box(r);
                }
            }
            assert_eq!(n, sample, "every line normalized into a record");
            n as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    println!(
        "normalize:     records/s {} (avg line {} B)",
        show(&normalized, 0, ""),
        bytes / sample
    );
}
