//! The X stream's disk buffer (`[twitter] buffer = "disk"`) end to end: the
//! real binary against the mock X API (its own process, which keeps counting
//! tweets across our restarts), killed with SIGKILL while a slow sink holds
//! most lines unconfirmed.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::*;

const TOKEN: &str = "test-token-9f8e7d6c5b4a";

/// A slow sink: standard output into a pipe nobody reads until the process is
/// dead. About 64 KiB of records get through (and are confirmed); the rest wait.
const SLOW: &str = "[twitter]\nbuffer = \"disk\"\n[sinks.slow]\ntype = \"stdout\"\nqueue_capacity = 1\n[sinks.slow.batch]\nmax_records = 10\n";

fn seq_of(id: &str) -> u64 {
    id.trim_start_matches("twitter:").parse::<u64>().unwrap() - 1_600_000_000_000_000_000
}

/// The stream line id of tweet `seq`, as the mock writes it.
fn line_id(seq: u64) -> String {
    format!("\"id\":\"{}\"", 1_600_000_000_000_000_000u64 + seq)
}

/// The highest tweet number the mock has sent whole so far.
fn sent_so_far(mock: &MockProcess) -> Option<u64> {
    mock.get("/mock/connections")
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["last_seq"].as_u64())
        .max()
}

/// Everything in the write-ahead log's segment files.
fn wal_text(state: &Path) -> String {
    let mut text = String::new();
    let Ok(dirs) = std::fs::read_dir(state) else {
        return text;
    };
    for d in dirs {
        let d = d.unwrap().path();
        if d.extension().is_none_or(|e| e != "wal") {
            continue;
        }
        for f in std::fs::read_dir(&d).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "seg") {
                text.push_str(&String::from_utf8_lossy(
                    &std::fs::read(&f).unwrap_or_default(),
                ));
            }
        }
    }
    text
}

fn poll(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(env: &Env, mock: &MockProcess, sink: &[&str], log: &str) -> Child {
    env.cmd()
        .args([
            "twitter",
            "--twitter-api-base",
            &mock.url,
            "--rules-mode",
            "keep",
        ])
        .args(sink)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(env.path(log)).unwrap())
        .spawn()
        .unwrap()
}

/// Ids in JSONL text; a torn last line (a write the kill cut) is not counted.
fn ids_in(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Three runs into a slow sink are killed with SIGKILL once the last tweet the
/// mock sent is in the log (a line is logged before the pipeline sees it); a
/// fourth run with a working sink delivers, first and in order, everything the
/// sink had not confirmed: no tweet a killed run received is lost. (With
/// `buffer = "memory"` the same runs lose every line the slow sink held.)
#[test]
fn kill_9_loops_lose_no_line_the_stream_received() {
    let env = Env::new().config(SLOW).with("TWITTER_BEARER_TOKEN", TOKEN);
    let mock = MockProcess::start(
        "twitter",
        env.dir.path(),
        "rate = 300.0\nkeepalive_secs = 0.2\n[[rule]]\nvalue = \"cats\"\n",
    );
    let state = env.path("state");
    // Ids the slow sink confirmed (read from its pipe after each kill).
    let mut confirmed: BTreeSet<String> = BTreeSet::new();
    // The last tweet each killed run had received (and logged) before its kill.
    let mut received_before_kill = Vec::new();
    for round in 0..3 {
        let mut child = start(&env, &mock, &["--sink", "slow"], &format!("run{round}.log"));
        let before = sent_so_far(&mock);
        poll(
            "the mock to send 150 more tweets",
            Duration::from_secs(30),
            || sent_so_far(&mock).is_some_and(|s| s >= before.map_or(150, |b| b + 150)),
        );
        let sent = sent_so_far(&mock).unwrap();
        // The last tweet the mock sent is received and logged: kill now.
        poll(
            "the log to hold the last tweet sent",
            Duration::from_secs(30),
            || wal_text(&state).contains(&line_id(sent)),
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        confirmed.extend(ids_in(&out));
        received_before_kill.push(sent);
    }
    // Owed: what each killed run's connection sent up to that point. What the
    // mock sent after it may have died in the socket with the process.
    let log = mock.get("/mock/connections").as_array().unwrap().clone();
    assert_eq!(log.len(), 3, "one connection per run: {log:#?}");
    let owed: Vec<u64> = log
        .iter()
        .zip(&received_before_kill)
        .flat_map(|(c, &last)| c["first_seq"].as_u64().unwrap()..=last)
        .collect();
    assert!(
        confirmed.len() < owed.len() / 2,
        "the sink was slow: most lines were unconfirmed at the kills ({} of {})",
        confirmed.len(),
        owed.len()
    );
    // A working sink: the log drains first, then the stream goes on.
    let mut child = start(
        &env,
        &mock,
        &["--sink", "file", "--file-path", "out.jsonl"],
        "final.log",
    );
    let missing = || -> Vec<u64> {
        let got: BTreeSet<u64> = read_jsonl_lenient(&env.path("out.jsonl"))
            .iter()
            .chain(confirmed.iter())
            .map(|id| seq_of(id))
            .collect();
        owed.iter().copied().filter(|s| !got.contains(s)).collect()
    };
    let start_wait = Instant::now();
    while !missing().is_empty() && start_wait.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&child, libc::SIGTERM);
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    let log = std::fs::read_to_string(env.path("final.log")).unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("delivering them first"), "{log}");
    let ids: Vec<u64> = env
        .records("out.jsonl")
        .iter()
        .map(|r| seq_of(r["id"].as_str().unwrap()))
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "recovered lines first, in the order received, then new ones, no duplicate: {ids:?}"
    );
    let all: BTreeSet<u64> = ids
        .iter()
        .copied()
        .chain(confirmed.iter().map(|id| seq_of(id)))
        .collect();
    assert_eq!(wal_text(&state), "", "a clean stop leaves the log empty");
    let missing: Vec<u64> = owed.iter().copied().filter(|s| !all.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "lost across the kills ({} of {}): {missing:?}",
        missing.len(),
        owed.len()
    );
}

/// Ids of the whole lines of a JSONL file that may be mid-write.
fn read_jsonl_lenient(path: &Path) -> Vec<String> {
    ids_in(&std::fs::read_to_string(path).unwrap_or_default())
}

/// A record limit stops a run in the middle of what it received: the lines
/// past the limit stay in the log, and the next run starts with them.
#[test]
fn lines_past_a_record_limit_are_delivered_by_the_next_run() {
    let env = Env::new()
        .config("[twitter]\nbuffer = \"disk\"\n")
        .with("TWITTER_BEARER_TOKEN", TOKEN);
    let mock = MockProcess::start(
        "twitter",
        env.dir.path(),
        "rate = 50.0\n[[rule]]\nvalue = \"cats\"\n[[connection]]\nburst = 100\n",
    );
    let run = |file: &str, flags: &[&str]| {
        let out = env.run(
            &[
                &[
                    "twitter",
                    "--twitter-api-base",
                    &mock.url,
                    "--rules-mode",
                    "keep",
                    "--sink",
                    "file",
                    "--file-path",
                    file,
                    "--max-records",
                    "50",
                ],
                flags,
            ]
            .concat(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let seqs: Vec<u64> = env
            .records(file)
            .iter()
            .map(|r| seq_of(r["id"].as_str().unwrap()))
            .collect();
        (seqs, stderr(&out))
    };
    let (first, _) = run("a.jsonl", &[]);
    assert_eq!(first, (0..50).collect::<Vec<_>>());
    // A run with the memory buffer leaves the log alone and says so.
    let (_, log) = run("m.jsonl", &["--buffer", "memory"]);
    assert!(log.contains("left unconfirmed lines"), "{log}");
    let (second, log) = run("b.jsonl", &[]);
    assert!(log.contains("delivering them first"), "{log}");
    assert_eq!(second.len(), 50);
    assert_eq!(
        second[0], 50,
        "the next run starts where the limit cut: {second:?}"
    );
    assert!(second.windows(2).all(|w| w[0] < w[1]), "{second:?}");
}

/// A run with the disk buffer that leaves lines 50 onwards unconfirmed in the
/// log. How many lines a run logs past a record limit before it stops depends
/// on the machine's load, so the run is killed (`kill -9`: the log is kept as
/// it is) once its log holds line 99, and the confirmed mark is then moved
/// back to 50: the log holds at least 50 unconfirmed lines on any machine, and
/// a last line the kill tore is cut off. Returns the log's directory.
fn leave_unconfirmed_lines(env: &Env, mock: &MockProcess) -> std::path::PathBuf {
    let state = env.path("state");
    let mut child = start(
        env,
        mock,
        &["--sink", "file", "--file-path", "a.jsonl"],
        "a.log",
    );
    poll("the log to hold line 99", Duration::from_secs(30), || {
        wal_text(&state).contains(&line_id(99))
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let wal = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wal"))
        .expect("a write-ahead log");
    std::fs::write(wal.join("confirmed.json"), "{\"next\":50}").unwrap();
    for seg in segments(&wal) {
        let bytes = std::fs::read(&seg).unwrap();
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        std::fs::write(&seg, &bytes[..whole]).unwrap();
    }
    wal
}

/// The segment files of a log, oldest first.
fn segments(wal: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn disk_buffer_env() -> (Env, MockProcess) {
    let env = Env::new()
        .config("[twitter]\nbuffer = \"disk\"\n")
        .with("TWITTER_BEARER_TOKEN", TOKEN);
    let mock = MockProcess::start(
        "twitter",
        env.dir.path(),
        "rate = 50.0\n[[rule]]\nvalue = \"cats\"\n[[connection]]\nburst = 100\n",
    );
    (env, mock)
}

/// A flipped byte in a logged line (which still parses: another post id) and
/// a line without its receive time are dead-lettered with the segment and
/// byte offset, not delivered or dropped; the other lines go through; a
/// temporary file a crash left is removed.
#[test]
fn damaged_log_lines_are_dead_lettered_with_their_place() {
    let (env, mock) = disk_buffer_env();
    let wal = leave_unconfirmed_lines(&env, &mock);
    let seg = segments(&wal).remove(0);
    let text = std::fs::read_to_string(&seg).unwrap();
    // Split on newlines alone: a logged line keeps whatever it held (a `\r` too).
    let mut lines: Vec<String> = text
        .strip_suffix('\n')
        .unwrap()
        .split('\n')
        .map(str::to_owned)
        .collect();
    assert!(lines.len() > 60, "{} lines logged", lines.len());
    // Line 52: one digit of its post id changed; line 53: the time and checksum gone.
    let id = line_id(52);
    assert!(lines[52].contains(&id), "{}", lines[52]);
    let offset: usize = lines[..52].iter().map(|l| l.len() + 1).sum();
    lines[52] = lines[52].replace(&id, &line_id(52).replace("052\"", "952\""));
    let json_at = lines[53].find('{').unwrap();
    lines[53] = lines[53][json_at..].to_owned();
    std::fs::write(&seg, lines.join("\n") + "\n").unwrap();
    let stale = wal.join(".confirmed.json.tmp-4999999");
    std::fs::write(&stale, b"{").unwrap();

    let out = env.run(&[
        "twitter",
        "--twitter-api-base",
        &mock.url,
        "--rules-mode",
        "keep",
        "--sink",
        "file",
        "--file-path",
        "b.jsonl",
        "--max-records",
        "20",
    ]);
    let err = stderr(&out);
    assert!(out.status.code().is_some(), "{err}");
    let got: Vec<u64> = env
        .records("b.jsonl")
        .iter()
        .map(|r| seq_of(r["id"].as_str().unwrap()))
        .collect();
    assert_eq!(got[..3], [50, 51, 54], "{got:?}\n{err}");
    assert!(!got.contains(&952), "a changed line is never delivered");
    let dead = env.dead_letters();
    assert_eq!(dead.len(), 2, "{dead:?}");
    let reason = |d: &Value| d["error"].as_str().unwrap().to_owned();
    let first = reason(&dead[0]);
    assert!(
        first.contains("checksum")
            && first.contains(&seg.display().to_string())
            && first.contains(&format!("byte {offset}")),
        "{first}"
    );
    assert!(reason(&dead[1]).contains("receive time"), "{dead:?}");
    assert!(dead[0]["input"].as_str().unwrap().contains("952"));
    assert!(
        !stale.exists(),
        "the temporary file of a dead process is gone"
    );
}

/// A `confirmed.json` ahead of the log is an error that names it and keeps
/// every unconfirmed line (it deleted them without a word).
#[test]
fn a_confirmed_mark_ahead_of_the_log_keeps_every_line() {
    let (env, mock) = disk_buffer_env();
    let wal = leave_unconfirmed_lines(&env, &mock);
    let before: Vec<(std::path::PathBuf, u64)> = segments(&wal)
        .into_iter()
        .map(|p| {
            let len = std::fs::metadata(&p).unwrap().len();
            (p, len)
        })
        .collect();
    std::fs::write(wal.join("confirmed.json"), "{\"next\":1000000}").unwrap();
    let out = env.run(&[
        "twitter",
        "--twitter-api-base",
        &mock.url,
        "--rules-mode",
        "keep",
        "--sink",
        "file",
        "--file-path",
        "b.jsonl",
        "--max-records",
        "20",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("confirmed.json") && err.contains("1000000") && err.contains("kept"),
        "{err}"
    );
    let after: Vec<(std::path::PathBuf, u64)> = segments(&wal)
        .into_iter()
        .map(|p| {
            let len = std::fs::metadata(&p).unwrap().len();
            (p, len)
        })
        .collect();
    assert_eq!(after, before, "every segment kept whole");
    assert!(env.records("b.jsonl").is_empty());
}

/// Under a file-size limit (RLIMIT_FSIZE, SIGXFSZ left at its default) the
/// log's write past the limit is an error the run reports with exit 1, like
/// a full disk — not a process killed by SIGXFSZ.
#[test]
fn a_file_size_limit_is_an_error_the_run_reports() {
    use std::os::unix::process::CommandExt;
    let (env, mock) = disk_buffer_env();
    let mut cmd = env.cmd();
    cmd.args([
        "twitter",
        "--twitter-api-base",
        &mock.url,
        "--rules-mode",
        "keep",
        "--sink",
        "stdout",
        "--max-records",
        "100000",
    ]);
    // SAFETY: only an async-signal-safe call (setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 16 * 1024,
                rlim_max: 16 * 1024,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.stdout(Stdio::null()).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{:?}: {err}", out.status);
    assert!(err.contains("File too large"), "{err}");
}

/// The write-ahead log's fsyncs, seen from outside with strace: 300 lines at
/// 200 a second (1.5 s, never the 1000 lines that trigger a sync at once)
/// give fdatasyncs of the segment between its writes — the sync thread's
/// interval at work, not only a sync at the end — and no write is left
/// unsynced when the run ends. (The interval itself, 100 ms, is
/// `SYNC_INTERVAL`; the largest write-to-sync gap seen is printed, not
/// asserted: a busy disk makes it longer, and so would the README's "about
/// 100 ms" of lines a power loss can take.)
#[test]
fn the_log_is_fsynced_on_its_interval_while_the_stream_runs() {
    use std::process::Command;
    assert!(
        Command::new("strace").arg("-V").output().is_ok(),
        "this test needs strace (Debian: apt-get install strace)"
    );
    let env = Env::new()
        .config("[twitter]\nbuffer = \"disk\"\n")
        .with("TWITTER_BEARER_TOKEN", TOKEN);
    let mock = MockProcess::start(
        "twitter",
        env.dir.path(),
        "rate = 200.0\nkeepalive_secs = 0.2\n[[rule]]\nvalue = \"cats\"\n",
    );
    let trace = env.path("trace.txt");
    let probe = env.cmd();
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-y", "-ttt", "-s", "0", "-o"])
        .arg(&trace)
        .args(["-e", "trace=write,writev,pwrite64,fdatasync,fsync", "--"])
        .arg(probe.get_program())
        .args(["twitter", "--twitter-api-base", &mock.url])
        .args(["--rules-mode", "keep", "--max-records", "300"])
        .args(["--sink", "file", "--file-path", "out.jsonl", "--summary"])
        .current_dir(env.dir.path())
        .stdin(Stdio::null());
    for (k, v) in probe.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary(&out)["records_in"], 300, "{}", stderr(&out));
    // The segments' writes (w) and syncs (s), in order, with their times.
    let text = std::fs::read_to_string(&trace).unwrap();
    let events: Vec<(char, f64)> = text
        .lines()
        .filter(|l| l.contains(".seg>") && !l.contains("resumed>"))
        .filter_map(|l| {
            let mut words = l.split_whitespace().skip(1);
            let at: f64 = words.next()?.parse().ok()?;
            let call = words.next()?;
            if call.starts_with("fdatasync(") || call.starts_with("fsync(") {
                Some(('s', at))
            } else if call.starts_with("write") || call.starts_with("pwrite") {
                Some(('w', at))
            } else {
                None
            }
        })
        .collect();
    let seq: String = events.iter().map(|(c, _)| *c).collect();
    let last_write = seq.rfind('w').expect("the log was written");
    let syncs_between = seq[..last_write].matches('s').count();
    assert!(
        seq.matches('w').count() >= 10,
        "the stream's lines came in many writes: {seq}"
    );
    assert!(
        syncs_between >= 3,
        "the log was synced while the stream ran, not only at the end: {seq}"
    );
    assert!(
        seq[last_write..].contains('s'),
        "the last write was never synced: {seq}"
    );
    // Informational: the longest time a written line waited for its sync.
    let mut worst = 0f64;
    let mut pending: Option<f64> = None;
    for (c, at) in &events {
        match c {
            'w' => {
                pending.get_or_insert(*at);
            }
            _ => {
                if let Some(w) = pending.take() {
                    worst = worst.max(at - w);
                }
            }
        }
    }
    eprintln!(
        "{} writes, {} syncs; a written line waited at most {:.0} ms for its fsync",
        seq.matches('w').count(),
        seq.matches('s').count(),
        worst * 1000.0
    );
}
