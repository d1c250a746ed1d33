//! The file sink under faults, run as the real binary: a file size limit hit
//! in the middle of a batch, kill -9 at any point then a rerun, file modes;
//! and the stdout sink when its reader leaves (`| head`).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::*;

use serde_json::Value;

/// An X stream line whose text is `text_len` characters that compress poorly.
fn tweet(i: usize, text_len: usize) -> String {
    let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let text: String = (0..text_len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let c = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _"
                [(x % 64) as usize];
            c as char
        })
        .collect();
    format!(
        r#"{{"data":{{"id":"{i}","text":"{text}","author_id":"42"}},"includes":{{"users":[{{"id":"42","name":"N","username":"n"}}]}}}}"#
    )
}

fn write_input(path: &Path, n: usize, text_len: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        writeln!(out, "{}", tweet(i, text_len)).unwrap();
    }
    out.flush().unwrap();
}

/// The record ids of a JSONL or gzip JSONL file: panics on anything a reader
/// could not parse (a torn line, a broken gzip member).
fn ids_in(path: &Path, gzip: bool) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let text = if gzip {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()));
        text
    } else {
        String::from_utf8(bytes).expect("UTF-8")
    };
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{} ends in a torn line",
        path.display()
    );
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l:.100}", path.display()));
            v["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn file_sink_config(path: &str, gzip: bool) -> String {
    format!(
        "[sinks.out]\ntype = \"file\"\npath = \"{path}\"\ngzip = {gzip}\n[sinks.out.batch]\nmax_records = 50\n"
    )
}

/// Runs `ingest` with a file size limit (RLIMIT_FSIZE) and SIGXFSZ ignored, so
/// a write past the limit stops short and then fails with EFBIG, as on a full disk.
fn run_with_file_size_limit(env: &Env, args: &[&str], limit: u64) -> std::process::Output {
    let mut cmd = env.cmd();
    cmd.args(args);
    // SAFETY: only async-signal-safe calls (signal, setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().unwrap()
}

fn a_write_cut_short_leaves_whole_batches(gzip: bool) {
    let env = Env::new();
    let n = 600;
    write_input(&env.path("in.jsonl"), n, 1000);
    let name = if gzip { "out.jsonl.gz" } else { "out.jsonl" };
    // How big the whole output is, to put the limit in the middle of a batch near its end.
    std::fs::write(
        env.path("probe.toml"),
        file_sink_config(&format!("probe/{name}"), gzip),
    )
    .unwrap();
    let out = env.run(&[
        "replay",
        "in.jsonl",
        "--config",
        "probe.toml",
        "--sink",
        "out",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let whole = std::fs::metadata(env.path(&format!("probe/{name}")))
        .unwrap()
        .len();
    let limit = whole * 9 / 10 + 77;

    let env = env.config(&file_sink_config(name, gzip));
    let out = run_with_file_size_limit(
        &env,
        &["replay", "in.jsonl", "--sink", "out", "--summary"],
        limit,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("File too large"), "{err}");
    let delivered = ids_in(&env.path(name), gzip);
    let dead: Vec<String> = env
        .dead_letters()
        .iter()
        .map(|d| d["record"]["id"].as_str().unwrap().to_owned())
        .collect();
    let s = summary(&out);
    assert_eq!(s["sinks"]["out"]["delivered"], delivered.len(), "{err}");
    assert_eq!(s["sinks"]["out"]["dead_lettered"], dead.len(), "{err}");
    assert!(
        !delivered.is_empty() && !dead.is_empty(),
        "the limit fell mid-run"
    );
    let mut seen = HashSet::new();
    for id in delivered.iter().chain(&dead) {
        assert!(seen.insert(id.clone()), "{id} twice");
    }
    assert_eq!(seen.len(), n, "every record delivered or dead-lettered");
    assert!(std::fs::metadata(env.path(name)).unwrap().len() < limit);
}

#[test]
fn a_write_cut_short_by_a_full_disk_leaves_only_whole_lines() {
    a_write_cut_short_leaves_whole_batches(false);
}

#[test]
fn a_write_cut_short_by_a_full_disk_leaves_only_whole_gzip_members() {
    a_write_cut_short_leaves_whole_batches(true);
}

/// Kill -9 inside a batch's write, many times, with a source that checkpoints
/// (the Kafka source: it commits an offset only once the sinks confirmed
/// it), then a rerun without kills: every message on the topic is in the
/// output, which a reader parses whole. strace slows each write to the output
/// file (`inject=…:delay_exit`) and each fdatasync (`delay_enter`), so every
/// state of the file lasts 300 ms; the test kills as soon as the file grew:
/// right after one of a batch's writes, before its fdatasync returned, with
/// the batch in the file and not confirmed. The rerun re-delivers it (the
/// ids it holds come twice) and loses nothing: a missing id means a kill lost
/// a confirmed record, or a cut of a torn tail took one with it.
#[cfg(feature = "kafka")]
fn kill_9_inside_writes_with_a_checkpointing_source(gzip: bool) {
    assert!(
        Command::new("strace").arg("-V").output().is_ok(),
        "this test needs strace (Debian: apt-get install strace)"
    );
    let brokers = service("INGEST_TEST_KAFKA_BROKERS");
    let topic = unique("ingest-file-kill", '-');
    let group = unique("ingest-file-kill-g", '-');
    let name = if gzip { "out.jsonl.gz" } else { "out.jsonl" };
    // Source and sink batches of 1000 records of about 1.4 KiB: a sink batch
    // is two writes (1 MiB and the rest) and an fdatasync.
    let env = Env::new().config(&format!(
        "[kafka]\nsession_timeout_ms = 2000\nidle_ms = 500\nbatch_max_messages = 1000\n[sinks.out]\ntype = \"file\"\npath = \"{name}\"\ngzip = {gzip}\n[sinks.out.batch]\nmax_records = 1000\n"
    ));
    let n = 16_000;
    write_input(&env.path("in.jsonl"), n, 600);
    let kcat = Command::new(service("INGEST_TEST_KCAT"))
        .args(["-P", "-b", &brokers, "-t", &topic, "-p", "0", "-l"])
        .arg(env.path("in.jsonl"))
        .status()
        .unwrap();
    assert!(kcat.success());
    let path = env.path(name);
    let run = |strace: bool| {
        let probe = env.cmd();
        let mut cmd = if strace {
            let mut cmd = Command::new("strace");
            cmd.args(["-f", "-qq", "-o", "/dev/null", "-P"])
                .arg(&path)
                .args(["-e", "trace=write,pwrite64,writev,fdatasync,fsync"])
                .args(["-e", "inject=write,pwrite64,writev:delay_exit=300000"])
                .args(["-e", "inject=fdatasync,fsync:delay_enter=300000", "--"])
                .arg(probe.get_program());
            cmd
        } else {
            Command::new(probe.get_program())
        };
        cmd.args([
            "kafka", "--topic", &topic, "--group", &group, "--sink", "out",
        ])
        .args(["--until-idle", "--summary", "--duration", "120s"])
        .env("INGEST_KAFKA_SOURCE_BROKERS", &brokers)
        .current_dir(env.dir.path())
        .stdin(Stdio::null());
        for (k, v) in probe.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd
    };
    let len = || std::fs::metadata(&path).map_or(0, |m| m.len());
    let mut kills = 0;
    for round in 0..6 {
        let mut child = run(true)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // ingest is strace's child (read at the kill: strace forks probes
        // of its own as it starts).
        let children = format!("/proc/{0}/task/{0}/children", child.id());
        let (mut last, mut grew) = (len(), 0);
        // Each run writes a few batches more than the last (so the committed
        // offsets move on), a different number each round.
        let writes = 4 + round % 3;
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            let now = len();
            if now != last {
                (last, grew) = (now, grew + 1);
                if grew >= writes {
                    let kids = std::fs::read_to_string(&children).unwrap();
                    let ingest: i32 = kids.trim().parse().expect("one child: ingest");
                    // SAFETY: a signal to our grandchild, alive (strace waits for it).
                    let rc = unsafe { libc::kill(ingest, libc::SIGKILL) };
                    assert_eq!(rc, 0, "kill {ingest}: {}", std::io::Error::last_os_error());
                    kills += 1;
                    break;
                }
            }
            assert!(std::time::Instant::now() < deadline, "no write to catch");
            std::thread::sleep(Duration::from_millis(2));
        }
        child.wait().unwrap();
    }
    assert!(
        kills >= 4,
        "only {kills} runs were killed before the topic was drained"
    );
    let out = run(false).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let ids = counts(ids_in(&path, gzip));
    let missing: Vec<usize> = (0..n)
        .filter(|i| !ids.contains_key(&format!("twitter:{i}")))
        .collect();
    assert!(
        missing.is_empty(),
        "{} ids lost: {missing:?}",
        missing.len()
    );
    let twice = ids.values().filter(|c| **c > 1).count();
    assert!(
        twice > 0,
        "the kills left batches written but unconfirmed: the rerun delivers them again"
    );
    assert!(
        summary(&out)["records_in"].as_u64().unwrap() < n as u64,
        "the last run resumed from the committed offsets"
    );
    eprintln!("{kills} kills inside a batch; {twice} records delivered again");
}

#[cfg(feature = "kafka")]
#[test]
fn kill_9_inside_writes_then_a_rerun_delivers_every_kafka_message_as_jsonl_that_parses() {
    kill_9_inside_writes_with_a_checkpointing_source(false);
}

#[cfg(feature = "kafka")]
#[test]
fn kill_9_inside_writes_then_a_rerun_delivers_every_kafka_message_as_gzip_that_decodes() {
    kill_9_inside_writes_with_a_checkpointing_source(true);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn output_and_dead_letter_files_are_private_and_an_over_long_line_keeps_1_kib() {
    let env = Env::new();
    // One line over the default 16 MiB limit, read in many chunks, then a good one.
    let long = 17 * 1024 * 1024;
    let mut input = vec![b'x'; long];
    input.push(b'\n');
    input.extend_from_slice(tweet(1, 10).as_bytes());
    input.push(b'\n');
    std::fs::write(env.path("in.jsonl"), &input).unwrap();
    let out = env.run(&[
        "replay",
        "in.jsonl",
        "--sink",
        "file",
        "--file-path",
        "out/x.jsonl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.records("out/x.jsonl").len(), 1);
    let dead = env.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["input_bytes"], long);
    assert_eq!(dead[0]["input"].as_str().unwrap(), "x".repeat(1024));
    assert_eq!(mode(&env.path("out/x.jsonl")), 0o600);
    assert_eq!(mode(&env.path("state/dead-letters.jsonl")), 0o600);
}

#[test]
fn file_mode_is_configurable_and_checked() {
    let env = Env::new()
        .config("[sinks.shared]\ntype = \"file\"\npath = \"out.jsonl\"\nfile_mode = \"0644\"\n");
    std::fs::write(env.path("in.jsonl"), format!("{}\n", tweet(1, 10))).unwrap();
    let out = env
        .cmd()
        .args(["replay", "in.jsonl", "--sink", "shared"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The umask of the test runner may take bits away, never add them.
    let m = mode(&env.path("out.jsonl"));
    assert!(m & 0o600 == 0o600 && m & !0o644 == 0, "{m:o}");

    let env = env
        .config("[sinks.shared]\ntype = \"file\"\npath = \"out.jsonl\"\n\nfile_mode = \"0680\"\n");
    let out = env.run(&["replay", "in.jsonl", "--sink", "shared"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("ingest.toml line 5") && err.contains("sinks.shared.file_mode"),
        "{err}"
    );
}

#[test]
fn a_closed_stdout_stops_the_run_without_dead_letters() {
    let env = Env::new().config("[sinks.out]\ntype = \"stdout\"\nqueue_capacity = 1\n");
    let n = 80_000;
    write_input(&env.path("in.jsonl"), n, 400);
    let mut ingest = env
        .cmd()
        .args(["replay", "in.jsonl", "--sink", "out", "--summary"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let head = Command::new("head")
        .args(["-n", "1"])
        .stdin(Stdio::from(ingest.stdout.take().unwrap()))
        .output()
        .unwrap();
    let first: Value = serde_json::from_slice(&head.stdout).unwrap();
    assert_eq!(first["id"], "twitter:0");
    let mut err = String::new();
    let mut pipe = ingest.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        pipe.read_to_string(&mut err).unwrap();
        err
    });
    // A bound against a hang only: the run ends as soon as the reader is gone.
    let status = wait_with_timeout(&mut ingest, Duration::from_secs(120));
    let err = reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    let s = summary_in(&err).unwrap_or_else(|| panic!("no summary:\n{err}"));
    assert_eq!(s["stop_reason"], "output_closed", "{err}");
    assert_eq!(s["sinks"]["out"]["dead_lettered"], 0, "{err}");
    assert!(
        s["sinks"]["out"]["unwritten"].as_u64().unwrap() > 0,
        "{err}"
    );
    // The input was not read to its end.
    assert!(s["records_in"].as_u64().unwrap() < n as u64 / 2, "{err}");
    // At most the source's cut line at the stop (a replay keeps it, as on a signal).
    let dead = env.dead_letters();
    assert!(dead.len() <= 1, "{dead:?}");
    assert!(dead.iter().all(|d| d["stage"] == "source"), "{dead:?}");
}

/// The README's "each batch is fsynced before it counts as delivered", seen
/// from outside with strace: 100 records in batches of 10 (each batch one
/// write, well under the writer's 1 MiB chunk) give at least 10 writes to the
/// output file, and every write is followed by an fdatasync of that file
/// before the next one (the run's last sync at the end aside). With `fsync =
/// false` the writes go unsynced, which the test also checks, so it can tell.
#[test]
fn each_batch_is_fsynced_before_the_next_is_written() {
    assert!(
        Command::new("strace").arg("-V").output().is_ok(),
        "this test needs strace (Debian: apt-get install strace)"
    );
    for (gzip, fsync) in [(false, true), (true, true), (false, false)] {
        let env = Env::new().config(&format!(
            "[sinks.out]\ntype = \"file\"\npath = \"out.jsonl\"\ngzip = {gzip}\nfsync = {fsync}\n[sinks.out.batch]\nmax_records = 10\n"
        ));
        write_input(&env.path("in.jsonl"), 100, 200);
        let trace = env.path("trace.txt");
        let probe = env.cmd();
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-y", "-s", "0", "-o"])
            .arg(&trace)
            .args(["-e", "trace=write,writev,pwrite64,fdatasync,fsync", "--"])
            .arg(probe.get_program())
            .args(["replay", "in.jsonl", "--sink", "out", "--summary"])
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
        assert_eq!(summary(&out)["sinks"]["out"]["delivered"], 100);
        let ids = ids_in(&env.path("out.jsonl"), gzip);
        assert_eq!(ids.len(), 100);
        // The output file's writes (w) and syncs (s), in order.
        let file = format!("<{}>", env.path("out.jsonl").display());
        let text = std::fs::read_to_string(&trace).unwrap();
        let events: String = text
            .lines()
            .filter(|l| l.contains(&file) && !l.contains("resumed>"))
            .filter_map(|l| {
                let call = l.split_whitespace().nth(1)?;
                if call.starts_with("fdatasync(") || call.starts_with("fsync(") {
                    Some('s')
                } else if call.starts_with("write") || call.starts_with("pwrite") {
                    Some('w')
                } else {
                    None
                }
            })
            .collect();
        let writes = events.matches('w').count();
        assert!(
            writes >= 10,
            "gzip {gzip}: {writes} writes for 10 batches: {events}"
        );
        if fsync {
            assert_eq!(
                events.matches("ws").count(),
                writes,
                "gzip {gzip}: a write not followed by its fsync: {events}"
            );
        } else {
            assert!(
                events.matches("ws").count() < writes,
                "with fsync = false writes go unsynced: {events}"
            );
        }
    }
}

/// 100 000 posts with distinct tags and `path = "many/{tag}.jsonl"`, run under
/// an open-file limit of 1024 (systemd's default soft limit): the sink's pool
/// of open files opens, writes and closes them in turn, so every record is
/// delivered once and nothing is dead-lettered. (Holding every file of a
/// 10 000-record batch open at once failed each batch with "Too many open files".)
#[test]
fn a_hundred_thousand_tags_under_an_open_file_limit_of_1024_are_all_delivered() {
    let n = 100_000;
    // Without fsync: 100 000 files fsynced one by one take minutes on a VM
    // disk, and what this test is about is the open-file limit (each batch's
    // fsync is `each_batch_is_fsynced_before_the_next_is_written`).
    let env = Env::new().config(
        "[sinks.out]\ntype = \"file\"\npath = \"many/{tag}.jsonl\"\nfsync = false\n[sinks.out.batch]\nmax_records = 10000\n",
    );
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(env.path("in.jsonl")).unwrap());
        for i in 0..n {
            writeln!(
                out,
                r#"{{"data":{{"id":"{}","text":"t","author_id":"42"}},"matching_rules":[{{"id":"1","tag":"tag{i}"}}]}}"#,
                i + 1
            )
            .unwrap();
        }
        out.flush().unwrap();
    }
    let mut cmd = env.cmd();
    cmd.args(["replay", "in.jsonl", "--sink", "out", "--summary"]);
    // SAFETY: only an async-signal-safe call (setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let s = summary(&out);
    assert_eq!(s["sinks"]["out"]["delivered"], n, "{err}");
    assert_eq!(s["sinks"]["out"]["dead_lettered"], 0, "{err}");
    assert!(env.dead_letters().is_empty());
    let files = std::fs::read_dir(env.path("many")).unwrap().count();
    assert_eq!(files, n);
    for i in [0, 4_999, 50_000, n - 1] {
        let ids = ids_in(&env.path(&format!("many/tag{i}.jsonl")), false);
        assert_eq!(ids, [format!("twitter:{}", i + 1)]);
    }
}
