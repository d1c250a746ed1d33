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
//! records/s, MB/s, CPU time and peak RSS (from `wait4`), then times `cat`
//! writing the same output bytes to the same disk on the same core and prints
//! the ratio. `--no-raw` passes `--no-raw` to the binary.

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

fn main() {
    let records = arg_or("--records", 1_000_000u64);
    println!("generating {records} X stream lines per phase");

    // End to end first, while this process is small: a child's peak RSS
    // counts the parent's RSS at fork time on Linux.
    // The real binary, replay - → file, pinned to one core.
    let bin = ingest_bin();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let mut cmd = Command::new(&bin);
    cmd.args(["replay", "-", "--sink", "file", "--summary", "--file-path"])
        .arg(&out)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args(
            std::env::args()
                .any(|a| a == "--no-raw")
                .then_some("--no-raw"),
        )
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let one_core = std::thread::available_parallelism()
        .map(|n| n.get() > 1)
        .unwrap_or(false);
    if one_core {
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
        if one_core {
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
    let summary = std::io::read_to_string(stderr).unwrap();
    let delivered = std::fs::read(&out)
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .unwrap_or(0);
    let cpu = usage.ru_utime.tv_sec as f64
        + usage.ru_utime.tv_usec as f64 / 1e6
        + usage.ru_stime.tv_sec as f64
        + usage.ru_stime.tv_usec as f64 / 1e6;
    assert_eq!(
        delivered as u64, records,
        "every record delivered; ingest said:\n{summary}"
    );
    println!(
        "replay → file: {delivered} records in {secs:.2} s = {:.0} records/s, {:.1} MB/s in; CPU {cpu:.2} s ({:.0} records per CPU-second){}; peak RSS {:.1} MiB",
        delivered as f64 / secs,
        input_bytes as f64 / secs / 1e6,
        delivered as f64 / cpu,
        if one_core { ", pinned to one core" } else { "" },
        usage.ru_maxrss as f64 / 1024.0
    );

    // The same output bytes written by `cat` on the same disk, same core: the
    // rate a writer that does nothing else reaches.
    let out_bytes = std::fs::metadata(&out).unwrap().len();
    let copy = dir.path().join("cat.jsonl");
    let mut cat = Command::new("cat");
    cat.arg(&out).stdout(std::fs::File::create(&copy).unwrap());
    if one_core {
        // SAFETY: only async-signal-safe calls (sched_setaffinity) between fork and exec.
        unsafe {
            cat.pre_exec(|| pin_to_cpu(0));
        }
    }
    let start = Instant::now();
    assert!(cat.status().unwrap().success());
    let cat_secs = start.elapsed().as_secs_f64();
    assert_eq!(std::fs::metadata(&copy).unwrap().len(), out_bytes);
    println!(
        "cat → file:    the same {:.0} MB of output in {cat_secs:.2} s = {:.0} records/s equivalent; replay / cat = {:.2}",
        out_bytes as f64 / 1e6,
        records as f64 / cat_secs,
        cat_secs / secs
    );
    drop(std::fs::remove_file(&copy));

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
    let start = Instant::now();
    for l in &lines {
        std::hint::black_box(serde_json::from_slice::<serde::de::IgnoredAny>(l).is_ok());
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "json floor:    one serde_json validating pass = {:.0} lines/s, {:.1} MB/s",
        sample as f64 / secs,
        bytes as f64 / secs / 1e6
    );
    let start = Instant::now();
    let mut n = 0u64;
    for l in &lines {
        if let Ok(Normalized::Record(r)) = normalize_line(l, &received_at, &opts) {
            n += 1;
            std::hint::black_box(r);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(n, sample, "every line normalized into a record");
    println!(
        "normalize:     {n} records in {secs:.2} s = {:.0} records/s, {:.1} MB/s (avg line {} B)",
        n as f64 / secs,
        bytes as f64 / secs / 1e6,
        bytes / sample
    );
}
