//! Bad and endless input: reading stops at a limit or a signal, config errors
//! name their file and line.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn tweet(i: usize) -> String {
    format!(r#"{{"data":{{"id":"{i}","text":"t {i}","author_id":"4"}}}}"#)
}

/// `ingest replay -` fed by a writer that never stops (`yes`): the record limit
/// ends the run, and what it reads past the limit is bounded by what the pipe
/// held at the stop, not by what the writer keeps adding.
#[test]
fn replay_stops_reading_an_endless_pipe_at_the_record_limit() {
    let env = Env::new();
    let mut writer = Command::new("yes")
        .arg(tweet(7))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = env
        .cmd()
        .args([
            "replay",
            "-",
            "--sink",
            "file",
            "--file-path",
            "o.jsonl",
            "--max-records",
            "10",
            "--summary",
        ])
        .stdin(writer.stdout.take().unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_with_timeout(&mut child, Duration::from_secs(60));
    let _ = writer.kill();
    let _ = writer.wait();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    let s = summary_in(&err).unwrap_or_else(|| panic!("no summary:\n{err}"));
    assert_eq!(s["stop_reason"], "max_records", "{err}");
    assert_eq!(s["records_in"], 10);
    // One read in flight plus at most a full pipe (1 MiB at most by default).
    let line_len = tweet(7).len() as u64 + 1;
    let bound = (256 * 1024 + 1024 * 1024) / line_len + 10;
    let read = s["source"]["records"].as_u64().unwrap();
    assert!(
        read <= bound,
        "read {read} records after a limit of 10 (bound {bound}):\n{s}"
    );
    assert_eq!(read_jsonl(&env.path("o.jsonl")).len(), 10);
}

/// On SIGTERM, what already sat in the pipe is still delivered (nothing the
/// writer handed over is lost), and the run ends although the writer goes on.
#[test]
fn replay_drains_the_pipe_once_on_a_signal_and_ends() {
    let env = Env::new();
    let mut child = env
        .cmd()
        .args([
            "replay",
            "-",
            "--sink",
            "file",
            "--file-path",
            "o.jsonl",
            "--summary",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..100 {
        writeln!(stdin, "{}", tweet(i)).unwrap();
    }
    stdin.flush().unwrap();
    // Wait until the first lines were delivered, then stop with the pipe open.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while read_jsonl_lenient(&env.path("o.jsonl")) < 100 {
        assert!(std::time::Instant::now() < deadline, "nothing delivered");
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 100..200 {
        writeln!(stdin, "{}", tweet(i)).unwrap();
    }
    stdin.flush().unwrap();
    signal(&child, libc::SIGTERM);
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    drop(stdin);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    assert_eq!(read_jsonl(&env.path("o.jsonl")).len(), 200, "{err}");
}

fn read_jsonl_lenient(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().filter(|l| l.ends_with('}')).count())
        .unwrap_or(0)
}
