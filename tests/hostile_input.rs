//! Endless input: reading stops at a record limit, whatever the writer does.
//! (SIGTERM with an open pipe: `cli::sigterm_delivers_every_line_written_before_it`.)

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn tweet(i: usize) -> String {
    format!(r#"{{"data":{{"id":"{i}","text":"t {i}","author_id":"4"}}}}"#)
}

/// `ingest replay -` fed by a writer that never stops (`yes`): the record limit
/// ends the run, and what it reads is bounded as the README says, not by what
/// the writer keeps adding: the reads already on their way when the stop came
/// (the one that reached the limit, `SOURCE_CHANNEL_CAPACITY` = 2 queued, one
/// being handed over; each one read of the pipe, at most 256 KiB) and what
/// the pipe held at the stop (at most its capacity).
#[test]
fn replay_stops_reading_an_endless_pipe_at_the_record_limit() {
    let env = Env::new();
    let mut writer = Command::new("yes")
        .arg(tweet(7))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = writer.stdout.take().unwrap();
    // SAFETY: F_GETPIPE_SZ on a pipe this process holds open.
    let cap = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&pipe), libc::F_GETPIPE_SZ) };
    assert!(cap > 0);
    let cap = cap as u64;
    let stdin = Stdio::from(pipe);
    let mut child = env.spawn_replay_to_file(stdin, &["--max-records", "10"]);
    let (status, err) = finish(&mut child, Duration::from_secs(60));
    let _ = writer.kill();
    let _ = writer.wait();
    assert!(status.success(), "{err}");
    let s = summary_in(&err).unwrap_or_else(|| panic!("no summary:\n{err}"));
    assert_eq!(s["stop_reason"], "max_records", "{err}");
    assert_eq!(s["records_in"], 10);
    // Four reads (a read takes at most what the pipe holds) and the drain of
    // one full pipe; each read may end inside a line.
    let line_len = tweet(7).len() as u64 + 1;
    let read_max = cap.min(256 * 1024);
    let bound = (4 * read_max + cap) / line_len + 4;
    let read = s["source"]["records"].as_u64().unwrap();
    assert!(
        read <= bound,
        "read {read} records after a limit of 10 (bound {bound}):\n{s}"
    );
    assert_eq!(read_jsonl(&env.path("o.jsonl")).len(), 10);
}
