//! X stream client benchmark: the built-in mock streams as fast as it can over
//! loopback; `ingest twitter … --sink file` reads, normalizes, dedupes and writes.
//!
//! ```text
//! cargo build --release && cargo run --release --example stream_bench -- --records 1000000
//! ```
//!
//! The mock is pinned to one core and the client to the other; the figures are
//! the client's: records/s (wall), records per CPU-second, peak RSS (`wait4`).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Instant;

#[path = "common/util.rs"]
mod util;
use util::{arg_or, ingest_bin};

fn pin(cmd: &mut Command, cpu: usize) {
    if std::thread::available_parallelism()
        .map(|n| n.get() > 1)
        .unwrap_or(false)
    {
        // SAFETY: only sched_setaffinity (async-signal-safe) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

fn main() {
    let records = arg_or("--records", 1_000_000u64);
    let bin = ingest_bin();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("scenario.toml");
    std::fs::write(
        &scenario,
        format!(
            "rate = 0.0\ntotal_tweets = {records}\n[[rule]]\nvalue = \"bench\"\ntag = \"bench\"\n"
        ),
    )
    .unwrap();

    let mut mock = Command::new(&bin);
    mock.args(["mock", "twitter", "--listen", "127.0.0.1:0", "--scenario"])
        .arg(&scenario)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped());
    pin(&mut mock, 1);
    let mut mock = mock.spawn().unwrap();
    let mut url = String::new();
    BufReader::new(mock.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();

    let mut client = Command::new(&bin);
    client
        .args([
            "twitter",
            "--rules-mode",
            "keep",
            "--sink",
            "file",
            "--summary",
            "--twitter-api-base",
            url.trim(),
            "--max-records",
        ])
        .arg(records.to_string())
        .arg("--file-path")
        .arg(dir.path().join("out.jsonl"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("TWITTER_BEARER_TOKEN", "bench")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    pin(&mut client, 0);
    let start = Instant::now();
    #[allow(clippy::zombie_processes)] // reaped below with wait4, which also gives the rusage
    let child = client.spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: zeroed rusage is valid; wait4 on our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(rc, pid);
    let summary = std::io::read_to_string(child.stderr.unwrap()).unwrap();
    let _ = mock.kill();
    let _ = mock.wait();
    let delivered = std::fs::read(dir.path().join("out.jsonl"))
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .unwrap_or(0);
    let cpu = usage.ru_utime.tv_sec as f64
        + usage.ru_utime.tv_usec as f64 / 1e6
        + usage.ru_stime.tv_sec as f64
        + usage.ru_stime.tv_usec as f64 / 1e6;
    assert_eq!(
        delivered as u64, records,
        "every tweet delivered; ingest said:\n{summary}"
    );
    println!(
        "mock stream → file: {delivered} tweets in {secs:.2} s = {:.0} tweets/s; client CPU {cpu:.2} s ({:.0} tweets per CPU-second); client peak RSS {:.1} MiB",
        delivered as f64 / secs,
        delivered as f64 / cpu,
        usage.ru_maxrss as f64 / 1024.0
    );
}
