//! Runs the real `ingest` binary: replay into file and stdout sinks, limits,
//! signals, malformed input, bad config, unwritable paths.

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

mod common;
use common::*;

use serde_json::Value;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sample.jsonl");

/// Drops the fields that change from run to run.
fn stable(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    o.remove("received_at");
    o.remove("run");
    v
}

/// The lines of the sample that are items (not blank, not control messages).
fn sample_items() -> Vec<String> {
    std::fs::read_to_string(SAMPLE)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("{\"errors\""))
        .map(str::to_owned)
        .collect()
}

fn tweet(i: usize) -> String {
    format!(
        r#"{{"data":{{"id":"{i}","text":"tweet {i}","author_id":"42"}},"includes":{{"users":[{{"id":"42","name":"N","username":"n"}}]}}}}"#
    )
}

#[test]
fn replay_to_file_writes_the_expected_records() {
    let env = Env::new();
    let out = env.run(&[
        "replay",
        SAMPLE,
        "--sink",
        "file",
        "--file-path",
        "out.jsonl",
        "--summary",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Vec<Value> = read_jsonl(&env.path("out.jsonl"))
        .into_iter()
        .map(stable)
        .collect();
    let expected: Vec<Value> = read_jsonl(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sample.expected.jsonl"
    )));
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e);
    }
    // `raw` is the input line, untouched.
    let raws: Vec<String> = got.iter().map(|r| r["raw"].to_string()).collect();
    let inputs: Vec<String> = sample_items()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap().to_string())
        .collect();
    assert_eq!(raws, inputs);
    let s = summary(&out);
    assert_eq!(s["records_in"], 31);
    assert_eq!(s["source"]["control"], 1);
    assert_eq!(s["sinks"]["file"]["delivered"], 31);
    assert_eq!(s["stop_reason"], "end_of_input");
    assert_eq!(s["exit_code"], 0);
}

/// What `ingest` wrote, `ingest replay` reads back: a capture replayed into
/// another sink arrives record for record, as it was (ids, times, `raw`),
/// nothing dead-lettered, whatever `--platform` says; a raw line among the
/// records is still normalized.
#[test]
fn a_capture_replays_into_another_sink_record_for_record() {
    let env = Env::new();
    let first = env.run(&["replay", SAMPLE, "--sink", "file", "--file-path", "a.jsonl"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let captured = env.records("a.jsonl");
    assert_eq!(captured.len(), 31);
    for platform in ["auto", "twitter", "telegram"] {
        let out_file = format!("b-{platform}.jsonl");
        let a = env.path("a.jsonl");
        let out = env.run(&[
            "replay",
            a.to_str().unwrap(),
            "--platform",
            platform,
            "--sink",
            "file",
            "--file-path",
            &out_file,
            "--summary",
        ]);
        assert!(out.status.success(), "{platform}: {}", stderr(&out));
        let s = summary(&out);
        assert_eq!(s["records_in"], 31, "{platform}: {s}");
        assert_eq!(s["source"]["malformed"], 0, "{platform}: {s}");
        let mut again = env.records(&out_file);
        // `run` names the run that wrote the line: the replay's own.
        for (r, c) in again.iter_mut().zip(&captured) {
            r["run"] = c["run"].clone();
        }
        assert_eq!(again, captured, "{platform}");
    }
    assert!(env.dead_letters().is_empty());
    // Records and a raw X line in one file: both kinds come out.
    let mut mixed = std::fs::read_to_string(env.path("a.jsonl")).unwrap();
    mixed.push_str(&tweet(99_001));
    mixed.push('\n');
    std::fs::write(env.path("mixed.jsonl"), mixed).unwrap();
    let m = env.path("mixed.jsonl");
    let out = env.run(&[
        "replay",
        m.to_str().unwrap(),
        "--sink",
        "file",
        "--file-path",
        "c.jsonl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let c = env.records("c.jsonl");
    assert_eq!(c.len(), 32);
    assert!(c.iter().any(|r| r["id"] == "twitter:99001"), "{c:?}");
}

#[test]
fn raw_format_writes_the_original_lines_byte_for_byte() {
    let env = Env::new();
    std::fs::write(
        env.path("ingest.toml"),
        "[sinks.lake]\ntype = \"file\"\npath = \"lake/{platform}.jsonl\"\nformat = \"raw\"\n",
    )
    .unwrap();
    let out = env.run(&["replay", SAMPLE, "--sink", "lake"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut got = std::fs::read_to_string(env.path("lake/twitter.jsonl")).unwrap();
    got.push_str(&std::fs::read_to_string(env.path("lake/telegram.jsonl")).unwrap());
    let expected: String = sample_items().iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(got, expected);
}

#[test]
fn fan_out_gives_every_sink_identical_records() {
    let env = Env::new();
    std::fs::write(
        env.path("ingest.toml"),
        "[sinks.a]\ntype = \"file\"\npath = \"a.jsonl\"\n[sinks.b]\ntype = \"file\"\npath = \"b/b.jsonl.gz\"\ngzip = true\n",
    )
    .unwrap();
    let out = env.run(&[
        "replay", SAMPLE, "--sink", "a", "--sink", "b", "--sink", "stdout",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let a = std::fs::read(env.path("a.jsonl")).unwrap();
    let mut b = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(env.path("b/b.jsonl.gz")).unwrap())
        .read_to_end(&mut b)
        .unwrap();
    assert_eq!(a.lines().count(), 31);
    assert_eq!(a, b);
    assert_eq!(
        out.stdout, a,
        "stdout gets the same records, and nothing else"
    );
}

#[test]
fn max_records_stops_after_exactly_n() {
    let env = Env::new();
    let out = env.run(&[
        "replay",
        SAMPLE,
        "--sink",
        "file",
        "--file-path",
        "o.jsonl",
        "--max-records",
        "7",
        "--summary",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read_jsonl(&env.path("o.jsonl")).len(), 7);
    let s = summary(&out);
    assert_eq!(s["stop_reason"], "max_records");
    assert_eq!(s["records_in"], 7);
}

#[test]
fn duration_stops_a_stdin_that_never_ends() {
    let env = Env::new();
    let mut child = env.spawn_replay_to_file(Stdio::piped(), &["--duration", "1s"]);
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", tweet(1)).unwrap();
    stdin.flush().unwrap();
    // stdin stays open: only the time limit can end the run.
    let (status, err) = finish(&mut child, Duration::from_secs(30));
    drop(stdin);
    assert!(status.success(), "{err}");
    assert!(err.contains("\"stop_reason\":\"duration\""), "{err}");
    assert_eq!(read_jsonl(&env.path("o.jsonl")).len(), 1);
}

#[test]
fn sigterm_delivers_every_line_written_before_it() {
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
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    wait_for(&mut lines, "replaying");
    // A slow writer: lines trickle in, the last ones just before the signal.
    for i in 0..50 {
        writeln!(stdin, "{}", tweet(i)).unwrap();
        stdin.flush().unwrap();
        if i % 10 == 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    signal(&child, libc::SIGTERM);
    let err: String = lines.map(|l| l.unwrap() + "\n").collect();
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{err}");
    let ids: Vec<String> = read_jsonl(&env.path("o.jsonl"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..50).map(|i| format!("twitter:{i}")).collect();
    assert_eq!(ids, expected, "{err}");
    assert!(err.contains("\"stop_reason\":\"signal\""), "{err}");
}

#[test]
fn a_second_signal_aborts_with_130() {
    let env = Env::new();
    // Nobody reads stdout: once the pipe is full the stdout sink blocks, so the
    // drain after the first signal cannot finish and only a second signal ends the run.
    let mut child = env
        .cmd()
        .args([
            "replay",
            "-",
            "--sink",
            "stdout",
            "--shutdown-timeout",
            "10m",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    wait_for(&mut lines, "replaying");
    for i in 0..5000 {
        writeln!(stdin, "{}", tweet(i)).unwrap();
    }
    stdin.flush().unwrap();
    signal(&child, libc::SIGTERM);
    wait_for(&mut lines, "stopping");
    signal(&child, libc::SIGINT);
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(130));
}

#[test]
fn malformed_input_is_dead_lettered_and_good_lines_still_delivered() {
    let env = Env::new();
    let mut input: Vec<u8> = Vec::new();
    let mut push = |bytes: &[u8]| {
        input.extend_from_slice(bytes);
        input.push(b'\n');
    };
    push(tweet(1).as_bytes());
    push(b"{not json at all");
    push(tweet(2).as_bytes());
    push(br#"{"data":{"id":"3","text":"cut in the mid"#); // truncated line
    push(&[0x00, 0x9f, 0xff, 0x13, 0x37, 0xde, 0xad, 0xbe, 0xef]); // binary garbage
    push(tweet(4).as_bytes());
    let mut big = br#"{"data":{"id":"5","text":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
    big.extend_from_slice(br#""}}"#);
    push(&big); // a 10 MB line, over the 1 MiB limit set below
    push(b"{\"data\":{\"id\":\"6\",\"text\":\"\xc3\x28 invalid utf-8\"}}");
    push(br#"{"neither":"x nor telegram"}"#);
    push(tweet(7).as_bytes());
    std::fs::write(env.path("in.jsonl"), &input).unwrap();
    let out = env.run(&[
        "replay",
        "in.jsonl",
        "--sink",
        "file",
        "--file-path",
        "o.jsonl",
        "--max-line-bytes",
        "1048576",
        "--summary",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ids: Vec<String> = read_jsonl(&env.path("o.jsonl"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["twitter:1", "twitter:2", "twitter:4", "twitter:7"]);
    let dead = env.dead_letters();
    assert_eq!(dead.len(), 6, "{dead:#?}");
    assert!(
        dead.iter()
            .all(|d| d["stage"] == "source" && d["component"] == "replay")
    );
    let errors: Vec<&str> = dead.iter().map(|d| d["error"].as_str().unwrap()).collect();
    assert!(errors[0].contains("invalid JSON"), "{errors:?}");
    assert!(errors[3].contains("over the limit"), "{errors:?}");
    assert_eq!(dead[3]["input_bytes"], big.len());
    assert!(errors[5].contains("cannot tell the platform"), "{errors:?}");
    assert_eq!(dead[0]["input"], "{not json at all");
    let s = summary(&out);
    assert_eq!(s["source"]["malformed"], 6);
    assert_eq!(s["exit_code"], 0);
    assert!(stderr(&out).contains("unusable input line dead-lettered"));
}

#[test]
fn bad_config_exits_78_naming_file_line_and_field() {
    let env = Env::new();
    std::fs::write(env.path("bad.toml"), "state_dir = \"s\"\n\n[sinks.lake]\ntype = \"file\"\npath = \"x.jsonl\"\nfsync = \"sometimes\"\n").unwrap();
    let out = env.run(&["replay", SAMPLE, "--config", "bad.toml", "--sink", "lake"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("bad.toml line 6"), "{err}");
    assert!(err.contains("sinks.lake.fsync"), "{err}");

    std::fs::write(
        env.path("ingest.toml"),
        "[sinks.lake]\ntype = \"file\"\npath = \"{plat}.jsonl\"\n",
    )
    .unwrap();
    let out = env.run(&["replay", SAMPLE, "--sink", "lake"]);
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    assert!(
        err.contains("ingest.toml line 3")
            && err.contains("sinks.lake.path")
            && err.contains("{plat}"),
        "{err}"
    );

    let out = env.run(&[
        "replay",
        SAMPLE,
        "--config",
        "missing.toml",
        "--sink",
        "file",
    ]);
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    let out = env.run(&["replay", SAMPLE, "--sink", "carrier-pigeon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown sink `carrier-pigeon`"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["replay", SAMPLE]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no sink"), "{}", stderr(&out));
    let out = env.run(&["replay", SAMPLE, "--sink", "file", "--duration", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("try 90s"), "{}", stderr(&out));
    let out = env.run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn unwritable_output_path_is_a_clear_error_and_exit_1() {
    let env = Env::new();
    std::fs::write(env.path("not-a-dir"), b"").unwrap();
    let out = env.run(&[
        "replay",
        SAMPLE,
        "--sink",
        "file",
        "--file-path",
        "not-a-dir/out/x.jsonl",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("sink `file` is not ready") && err.contains("not-a-dir/out"),
        "{err}"
    );
}

#[test]
fn records_a_sink_refuses_are_dead_lettered_and_exit_1() {
    let env = Env::new();
    // Telegram records go to a path that is a directory: every write fails for good.
    std::fs::create_dir_all(env.path("out/telegram.jsonl")).unwrap();
    std::fs::write(env.path("ingest.toml"), "[sinks.lake]\ntype = \"file\"\npath = \"out/{platform}.jsonl\"\n[sinks.lake.retry]\nmax_attempts = 2\ninitial_backoff_ms = 1\n").unwrap();
    let out = env.run(&["replay", SAMPLE, "--sink", "lake", "--summary"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let s = summary(&out);
    let delivered = s["sinks"]["lake"]["delivered"].as_u64().unwrap();
    let dead = s["sinks"]["lake"]["dead_lettered"].as_u64().unwrap();
    assert_eq!(delivered + dead, 31, "nothing lost: {s}");
    assert!(dead > 0);
    let letters = env.dead_letters();
    assert_eq!(letters.len() as u64, dead);
    assert!(letters.iter().all(|d| d["stage"] == "sink"
        && d["component"] == "lake"
        && d["record"]["id"].is_string()));
    assert!(
        letters[0]["error"]
            .as_str()
            .unwrap()
            .contains("telegram.jsonl"),
        "{}",
        letters[0]
    );
}

#[test]
fn help_and_version_are_tidy() {
    let env = Env::new();
    let out = env.run(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("ingest {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = env.run(&["replay", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--sink",
        "--duration",
        "--max-records",
        "--config",
        "--state-dir",
        "--summary",
        "--no-raw",
        "--transliterate",
        "--log-format",
        "--shutdown-timeout",
        "--platform",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn no_raw_transliterate_and_json_logs() {
    let env = Env::new();
    let out = env.run(&[
        "replay",
        SAMPLE,
        "--sink",
        "stdout",
        "--no-raw",
        "--transliterate",
        "--log-format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert_eq!(records.len(), 31);
    assert!(records.iter().all(|r| r.get("raw").is_none()));
    // Every record with a text has its transliteration, and it is ASCII.
    let with_text: Vec<&Value> = records.iter().filter(|r| r["text"].is_string()).collect();
    assert!(
        with_text.len() >= 20,
        "{} records with text",
        with_text.len()
    );
    for r in &with_text {
        let ascii = r["text_ascii"]
            .as_str()
            .unwrap_or_else(|| panic!("no text_ascii: {r}"));
        assert!(ascii.is_ascii(), "{ascii}");
    }
    // Non-ASCII text really was transliterated (not copied or dropped).
    let hebrew = with_text
        .iter()
        .find(|r| r["text"].as_str().unwrap().contains("שלום"))
        .expect("the sample has a Hebrew tweet");
    assert!(
        hebrew["text_ascii"].as_str().unwrap().contains("shlvm"),
        "{hebrew}"
    );
    for line in stderr(&out).lines() {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    }
}

#[test]
fn platform_flag_rejects_the_other_platform() {
    let env = Env::new();
    let out = env.run(&[
        "replay",
        SAMPLE,
        "--platform",
        "telegram",
        "--sink",
        "file",
        "--file-path",
        "o.jsonl",
        "--summary",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["records_in"], 11);
    assert_eq!(
        s["source"]["malformed"], 21,
        "20 tweets + 1 control line are not Telegram updates"
    );
}

/// A build without the `kafka` feature says so for the source, its check and
/// a `kafka` sink, with the config exit code where a run cannot start.
#[cfg(not(feature = "kafka"))]
#[test]
fn a_build_without_kafka_says_so() {
    let env = Env::new();
    let out = env.run(&["kafka", "--topic", "t"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not in this build") && stderr(&out).contains("--features kafka"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["check", "--source", "kafka"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("source kafka") && text.contains("not in this build"),
        "{text}"
    );
    let env = Env::new().config("[sinks.bus]\ntype = \"kafka\"\n");
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not in this build"),
        "{}",
        stderr(&out)
    );
}

/// A line break after an emoji survives `--transliterate` (it used to become a space).
#[test]
fn transliterate_keeps_line_breaks() {
    let env = Env::new();
    let line = r#"{"data":{"id":"7","text":"x 🧵 a\nb","author_id":"42"}}"#;
    std::fs::write(env.path("in.jsonl"), format!("{line}\n")).unwrap();
    let out = env.run(&["replay", "in.jsonl", "--sink", "stdout", "--transliterate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["text_ascii"], "x thread a\nb", "{record}");
}

/// `--tls-cert` serves HTTPS directly: the webhook help says so.
#[test]
fn webhook_help_says_tls_cert_serves_https() {
    let env = Env::new();
    for (cmd, flag) in [("twitter-webhook", "--listen"), ("telegram", "--webhook")] {
        let out = env.run(&[cmd, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout).into_owned();
        let text = help.split_whitespace().collect::<Vec<_>>().join(" ");
        // The option's own line, after any mention in the usage line.
        let at = text
            .rfind(&format!("{flag} <"))
            .unwrap_or_else(|| panic!("{help}"));
        let about = &text[at..(at + 200).min(text.len())];
        assert!(
            about.contains("HTTPS with --tls-cert"),
            "{cmd} {flag}: {about}"
        );
        assert!(
            !about.contains("plain HTTP; put TLS in front"),
            "{cmd}: {about}"
        );
    }
}

/// The README's mock demos, run twice as written (no `--state-dir`), capture
/// the same both times: a `--mock` run keeps its checkpoints apart, in a fresh
/// state dir it names on stderr, never where a real run of the query looks.
#[test]
fn a_mock_demo_run_twice_captures_the_same_both_times() {
    let env = Env::new();
    let xdg = env.path("xdg");
    let demos: [&[&str]; 2] = [
        &[
            "twitter-search",
            "--mock",
            "--query",
            "cats -is:retweet",
            "--sink",
            "stdout",
        ],
        &["telegram", "--mock", "--until-idle", "--sink", "stdout"],
    ];
    for args in demos {
        let run = || {
            let out = env
                .cmd()
                .env_remove("INGEST_STATE_DIR")
                .env("XDG_STATE_HOME", &xdg)
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(
                err.contains("keeps its checkpoints and dead letters apart"),
                "{err}"
            );
            String::from_utf8(out.stdout).unwrap().lines().count()
        };
        let first = run();
        assert!(first > 0, "{args:?} captured nothing");
        assert_eq!(run(), first, "{args:?}: the second run differs");
    }
    // Nothing of the mock runs where a real run keeps its state.
    let real = xdg.join("ingest");
    let names: Vec<String> = std::fs::read_dir(&real)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["mock"], "{names:?}");
    assert_eq!(std::fs::read_dir(real.join("mock")).unwrap().count(), 4);
}

/// Errors that used to hide their fix name it: a missing rules file is a rules
/// file, an unknown table is the table, a chat name says a numeric id is
/// needed and where to find it, a bare port says HOST:PORT, a misspelt sink
/// gets "did you mean".
#[test]
fn errors_name_their_fix() {
    let env = Env::new();
    let run = |args: &[&str]| {
        let out = env.run(args);
        (out.status.code(), stderr(&out))
    };
    let (code, err) = run(&[
        "twitter",
        "--mock",
        "--rules",
        "nosuch.toml",
        "--sink",
        "stdout",
    ]);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("cannot read rules file nosuch.toml"), "{err}");
    let (code, err) = run(&[
        "telegram",
        "--mock",
        "--chat-id",
        "mychannel",
        "--sink",
        "stdout",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("numeric id") && err.contains("chat.id"),
        "{err}"
    );
    let (code, err) = run(&[
        "replay",
        SAMPLE,
        "--sink",
        "stdout",
        "--metrics-addr",
        "9464",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("127.0.0.1:9464"), "{err}");
    let (code, err) = run(&["replay", SAMPLE, "--sink", "flie"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("did you mean `file`?"), "{err}");
    let (code, err) = run(&["replay", SAMPLE, "--sink", "zzzz"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(!err.contains("did you mean"), "{err}");
    // A network error shows its cause, not just "error sending request".
    let out = env
        .cmd()
        .env("TWITTER_BEARER_TOKEN", "t")
        .args(["rules", "list", "--twitter-api-base", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot reach the X API at http://127.0.0.1:1")
            && err.to_lowercase().contains("connection refused"),
        "{err}"
    );
    let env = Env::new().config("[twiter]\nstream = \"sample\"\n");
    let out = env.run(&["replay", SAMPLE, "--sink", "stdout"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("line 1") && err.contains("field `twiter`"),
        "{err}"
    );
    assert!(!err.contains("twiter.twiter"), "{err}");
}

/// Cron's `env -i` has no HOME: the run says where its state goes.
#[test]
fn without_home_the_state_dir_is_named_at_start() {
    let env = Env::new();
    let out = env
        .cmd()
        .env_remove("INGEST_STATE_DIR")
        .env_remove("HOME")
        .env_remove("XDG_STATE_HOME")
        .args(["replay", SAMPLE, "--sink", "file", "--file-path", "o.jsonl"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("./.ingest-state"), "{err}");
    assert!(env.path(".ingest-state").is_dir());
}
