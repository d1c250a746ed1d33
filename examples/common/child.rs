//! Runs one child process to its exit and measures it: wall time from spawn
//! to exit, CPU time (user + system, from `wait4`) and peak RSS. Included
//! with `#[path]` by the Kafka benchmarks.

#![allow(dead_code)] // each benchmark uses its own subset

use std::process::{Command, Stdio};
use std::time::Instant;

/// What one run cost.
pub struct Measured {
    /// Process start to exit.
    pub wall: f64,
    /// User + system CPU seconds of the process and its threads.
    pub cpu: f64,
    pub max_rss_mib: f64,
    pub stderr: String,
}

impl Measured {
    /// CPU microseconds per record.
    pub fn cpu_us_per(&self, records: u64) -> f64 {
        self.cpu * 1e6 / records as f64
    }
}

/// Spawns `cmd` (stdin closed, stderr to a file beside `scratch`), waits with
/// `wait4`, and panics with its stderr unless it exited 0.
pub fn measure(cmd: &mut Command, scratch: &std::path::Path) -> Measured {
    let err_path = scratch.with_extension("stderr");
    let err_file = std::fs::File::create(&err_path).unwrap();
    cmd.stdin(Stdio::null()).stderr(err_file);
    let start = Instant::now();
    #[allow(clippy::zombie_processes)] // reaped below with wait4, which also gives the rusage
    let child = cmd.spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 on our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed().as_secs_f64();
    assert_eq!(rc, pid, "wait4 failed");
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed ({status}):\n{stderr}"
    );
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Measured {
        wall,
        cpu: secs(usage.ru_utime) + secs(usage.ru_stime),
        max_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        stderr,
    }
}
