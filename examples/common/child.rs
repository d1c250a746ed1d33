//! Runs one child process to its exit and measures it: wall time from spawn
//! to exit, CPU time (user + system, from `wait4`) and peak RSS; optionally
//! the time at which a line first appears on its stderr. Included with
//! `#[path]` by the Kafka benchmarks and `stream_bench`.

#![allow(dead_code)] // each benchmark uses its own subset

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Instant;

/// What one run cost.
pub struct Measured {
    /// Process start to exit.
    pub wall: f64,
    /// User + system CPU seconds of the process and its threads.
    pub cpu: f64,
    /// The user and system parts of `cpu`.
    pub user: f64,
    pub sys: f64,
    pub max_rss_mib: f64,
    pub stderr: String,
    /// Seconds from spawn to the first stderr line with the marker, if asked.
    pub marked: Option<f64>,
}

impl Measured {
    /// CPU microseconds per record.
    pub fn cpu_us_per(&self, records: u64) -> f64 {
        self.cpu * 1e6 / records as f64
    }
}

/// `program`, or with `--perf FILE` on the benchmark's command line,
/// `perf record -g -o FILE -- program` (the profile of that one run; its
/// figures then include perf's own overhead).
pub fn maybe_perf(program: &std::path::Path, perf: Option<&str>) -> Command {
    match perf {
        None => Command::new(program),
        Some(out) => {
            let mut c = Command::new("perf");
            c.args(["record", "-F", "999", "-g", "-o", out, "--"])
                .arg(program);
            c
        }
    }
}

/// Spawns `cmd` (stdin closed, stderr read as it comes), waits with `wait4`,
/// and panics with its stderr unless it exited 0. `marker`: note when a
/// stderr line first contains it.
pub fn measure_until(cmd: &mut Command, marker: Option<&'static str>) -> Measured {
    let (reader, writer) = std::io::pipe().unwrap();
    cmd.stdin(Stdio::null()).stderr(writer);
    // A hook before exec makes std fork rather than posix_spawn (vfork): a
    // vforked child starts with the parent's peak RSS as its own, and this
    // parent held the whole test data earlier. A forked one starts from the
    // parent's current RSS (small by then).
    // SAFETY: the hook does nothing, so it is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || Ok(()));
    }
    let start = Instant::now();
    #[allow(clippy::zombie_processes)] // reaped below with wait4, which also gives the rusage
    let child = cmd.spawn().unwrap();
    // Our copy of the pipe's writing end goes, so the reader sees the end.
    let shown = format!("{cmd:?}");
    *cmd = Command::new("true");
    let watcher = std::thread::spawn(move || {
        let (mut all, mut seen) = (String::new(), None);
        for line in std::io::BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if seen.is_none() && marker.is_some_and(|m| line.contains(m)) {
                seen = Some(start.elapsed().as_secs_f64());
            }
            all.push_str(&line);
            all.push('\n');
        }
        (all, seen)
    });
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 on our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed().as_secs_f64();
    assert_eq!(rc, pid, "wait4 failed");
    let (stderr, marked) = watcher.join().unwrap();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{shown} failed ({status}):\n{stderr}"
    );
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let (user, sys) = (secs(usage.ru_utime), secs(usage.ru_stime));
    Measured {
        wall,
        cpu: user + sys,
        user,
        sys,
        max_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        stderr,
        marked,
    }
}

/// [`measure_until`] with no marker.
pub fn measure(cmd: &mut Command) -> Measured {
    measure_until(cmd, None)
}
