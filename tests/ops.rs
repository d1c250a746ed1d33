//! Operating the binary: `ingest check` against the mocks, a bad path and a
//! closed Kafka port; completions and the man page.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn line<'a>(text: &'a str, what: &str) -> &'a str {
    text.lines()
        .find(|l| l[5..].starts_with(what))
        .unwrap_or_else(|| panic!("no line for `{what}` in:\n{text}"))
}

#[test]
fn check_passes_for_writable_files_and_the_mock_sources() {
    let env = Env::new()
        .with("TWITTER_BEARER_TOKEN", "check-token")
        .with("TELEGRAM_BOT_TOKEN", "424242:check-token")
        .config(
            "[sinks.lake]\ntype = \"file\"\npath = \"data/%Y/{platform}.jsonl\"\n[sinks.out]\ntype = \"stdout\"\n",
        );
    let x = MockProcess::start("twitter", env.dir.path(), "");
    let tg = MockProcess::start("telegram", env.dir.path(), "");
    let out = env.run(&[
        "check",
        "--source",
        "twitter",
        "--source",
        "telegram",
        "--twitter-api-base",
        &x.url,
        "--telegram-api-base",
        &tg.url,
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(line(&text, "config").starts_with("ok   config: ingest.toml valid"));
    assert_eq!(
        line(&text, "sink lake"),
        "ok   sink lake (file): data/ writable"
    );
    assert!(line(&text, "sink out (stdout)").starts_with("ok"));
    assert!(
        line(&text, "source twitter").starts_with("ok   source twitter: bearer token accepted"),
        "{text}"
    );
    assert_eq!(
        line(&text, "source telegram"),
        "ok   source telegram: bot @ingest_mock_bot answered getMe"
    );
    assert!(
        env.path("data").is_dir(),
        "the healthcheck creates the directory"
    );
    // Secrets never show.
    assert!(!text.contains("check-token") && !stderr(&out).contains("check-token"));
}

#[cfg(feature = "kafka")]
#[test]
fn check_fails_for_a_bad_path_a_closed_kafka_port_and_bad_credentials() {
    let env = Env::new().with("TELEGRAM_BOT_TOKEN", "424242:wrong-token");
    std::fs::write(env.path("blocker"), b"").unwrap();
    let tg = MockProcess::start(
        "telegram",
        env.dir.path(),
        "token = \"424242:right-token\"\n",
    );
    let closed = free_addr();
    let out = env.run(&[
        "check",
        "--sink",
        "file",
        "--file-path",
        "blocker/sub/x.jsonl",
        "--sink",
        "kafka",
        "--kafka-brokers",
        &closed,
        "--source",
        "telegram",
        "--source",
        "twitter",
        "--telegram-api-base",
        &tg.url,
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    let file = line(&text, "sink file (file)");
    assert!(
        file.starts_with("FAIL") && file.contains("blocker/sub"),
        "{file}"
    );
    let kafka = line(&text, "sink kafka (kafka)");
    assert!(
        kafka.starts_with("FAIL sink kafka (kafka): no answer from the Kafka brokers"),
        "{kafka}"
    );
    let telegram = line(&text, "source telegram");
    assert!(
        telegram.starts_with("FAIL") && telegram.contains("401"),
        "{telegram}"
    );
    let twitter = line(&text, "source twitter");
    assert!(
        twitter.starts_with("FAIL") && twitter.contains("TWITTER_BEARER_TOKEN"),
        "{twitter}"
    );
    assert!(!text.contains("wrong-token") && !stderr(&out).contains("wrong-token"));
}

/// "Kafka must answer a metadata request within 5 s": a broker that accepts
/// the connection and never answers is a FAIL that says so, after the 5 s.
#[cfg(feature = "kafka")]
#[test]
fn check_gives_a_silent_kafka_broker_5_s() {
    let env = Env::new();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let out = env.run(&["check", "--sink", "kafka", "--kafka-brokers", &addr]);
    let elapsed = started.elapsed();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    let kafka = line(&text, "sink kafka (kafka)");
    assert!(
        kafka.starts_with("FAIL") && kafka.contains(&format!("{addr} within 5 s")),
        "{kafka}"
    );
    // It waited the whole 5 s (a lower bound: no flake under load).
    assert!(
        elapsed >= Duration::from_secs(5),
        "gave up after {elapsed:?}"
    );
    drop(silent);
}

#[test]
fn check_keeps_the_config_exit_code_and_needs_something_to_check() {
    let env = Env::new().config("[sinks.lake]\ntype = \"file\"\nfsync = \"sometimes\"\n");
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("line 3"), "{}", stderr(&out));

    let env = Env::new();
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing to check"));

    // An unset secret variable is a config error like any other: 78, with the
    // line that holds the variable (not its table's header).
    let env = Env::new().config(
        "[sinks.bus]\ntype = \"kafka\"\n[sinks.bus.properties]\n\"sasl.password\" = \"${INGEST_TEST_UNSET_SECRET}\"\n",
    );
    let out = env.run(&["check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(78), "{}\n{err}", stdout(&out));
    assert!(
        err.contains("ingest.toml line 4")
            && err.contains("sasl.password")
            && err.contains("INGEST_TEST_UNSET_SECRET"),
        "{err}"
    );
}

#[test]
fn completions_and_man_page_cover_every_subcommand() {
    let env = Env::new();
    let subcommands = ["twitter", "telegram", "replay", "rules", "mock", "check"];
    for shell in ["bash", "zsh", "fish"] {
        let out = env.run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let text = stdout(&out);
        for sub in subcommands {
            assert!(text.contains(sub), "{shell} completions lack `{sub}`");
        }
        assert!(
            text.contains("metrics-addr"),
            "{shell} completions lack the run flags"
        );
    }
    let out = env.run(&["man"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(".ie") || text.contains(".TH ingest"),
        "{text}"
    );
    for sub in subcommands {
        assert!(text.contains(sub), "man page lacks `{sub}`");
    }
    // A broken config file does not stop them: they need none.
    let env = Env::new().config("this is not toml");
    assert!(env.run(&["man"]).status.success());
    // `--dir`: one page per command, each a page of its own that names it,
    // so the top page's `ingest-twitter(1)` exists.
    let out = env.run(&["man", "--dir", "man1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    for sub in subcommands {
        let page = format!("ingest-{sub}.1");
        assert!(listed.contains(&page), "{page} not in {listed:?}");
        let text = std::fs::read_to_string(env.path("man1").join(&page)).unwrap();
        assert!(
            text.contains(&format!(".TH ingest-{sub}")),
            "{page}: {text}"
        );
    }
    assert!(listed.contains(&"ingest.1".to_owned()), "{listed:?}");
    assert!(
        listed.contains(&"ingest-rules-sync.1".to_owned()),
        "{listed:?}"
    );
}

fn tweet(i: usize) -> String {
    format!(
        r#"{{"data":{{"id":"{i}","text":"tweet {i}","author_id":"42"}},"includes":{{"users":[{{"id":"42","name":"N","username":"n"}}]}}}}"#
    )
}

/// GETs `path` once the server listens: (status, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nothing listens on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    http(addr, "GET", path, &[], b"")
}

/// Polls `path` until `done(status, body)`; returns the last answer.
fn poll(addr: &str, path: &str, done: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let start = Instant::now();
    loop {
        let (status, body) = get(addr, path);
        if done(status, &body) || start.elapsed() > Duration::from_secs(20) {
            return (status, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Any port: the metrics listener binds port 0 and logs the one it got.
const ANY_PORT: &str = "127.0.0.1:0";

/// Reads `child`'s (piped) stderr up to the line where the metrics listener
/// says where it serves; that address, and a thread collecting all of stderr
/// (so the pipe never fills).
fn metrics_addr(child: &mut std::process::Child) -> (String, std::thread::JoinHandle<String>) {
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let addr = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("stderr ended before the metrics listener started:\n{seen}"))
            .unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("serving /metrics")
            && let Some(a) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("addr="))
        {
            break a.to_owned();
        }
    };
    let rest = std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            seen.push_str(&line);
            seen.push('\n');
        }
        seen
    });
    (addr, rest)
}

#[test]
fn metrics_and_healthz_during_a_replay_from_an_open_pipe() {
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
            "--metrics-addr",
            ANY_PORT,
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, err) = metrics_addr(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..25 {
        writeln!(stdin, "{}", tweet(i)).unwrap();
    }
    writeln!(stdin, "not json").unwrap();
    stdin.flush().unwrap();
    let (status, text) = poll(&addr, "/metrics", |_, b| {
        b.contains(r#"ingest_sink_delivered_total{sink="file",type="file"} 25"#)
    });
    assert_eq!(status, 200);
    for want in [
        r#"ingest_source_records_total{source="replay"} 25"#,
        r#"ingest_source_malformed_total{source="replay"} 1"#,
        r#"ingest_sink_delivered_total{sink="file",type="file"} 25"#,
        r#"ingest_sink_dead_lettered_total{sink="file",type="file"} 0"#,
        r#"ingest_sink_queue_depth{sink="file",type="file"} 0"#,
        r#"ingest_sink_owed_records{sink="file",type="file"} 0"#,
        r#"ingest_source_up{source="replay"} 1"#,
        "# TYPE ingest_sink_retried_total counter",
        "ingest_healthy 1",
    ] {
        assert!(text.contains(want), "no `{want}` in:\n{text}");
    }
    let (status, body) = get(&addr, "/healthz");
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["status"], "ok");
    assert_eq!(doc["source"]["state"], "running");
    assert_eq!(doc["sinks"]["file"]["healthy"], true);
    drop(stdin);
    let status = wait_with_timeout(&mut child, Duration::from_secs(60));
    let err = err.join().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    // stderr is not a terminal: no status line, nothing but log lines.
    assert!(!err.contains('\r') && !err.contains("\x1b[2K"), "{err:?}");
    assert_eq!(env.records("o.jsonl").len(), 25);
}

#[cfg(feature = "kafka")]
#[test]
fn healthz_turns_503_when_a_sink_confirms_nothing() {
    let env = Env::new();
    let mut child = env
        .cmd()
        .args([
            "replay",
            "-",
            "--sink",
            "kafka",
            "--kafka-brokers",
            &free_addr(), // a port nobody listens on: the sink confirms nothing
            "--metrics-addr",
            ANY_PORT,
            "--unhealthy-after",
            "2s",
            "--shutdown-timeout",
            "1s",
        ])
        .env("RUST_LOG", "error,ingest::monitor=info")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, _err) = metrics_addr(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", tweet(1)).unwrap();
    stdin.flush().unwrap();
    let (status, body) = poll(&addr, "/healthz", |s, _| s == 503);
    assert_eq!(status, 503, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["status"], "unhealthy");
    assert_eq!(doc["sinks"]["kafka"]["healthy"], false);
    assert_eq!(doc["sinks"]["kafka"]["owed"], 1);
    let (_, text) = get(&addr, "/metrics");
    assert!(text.contains("ingest_healthy 0"), "{text}");
    drop(stdin);
    let status = wait_with_timeout(&mut child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "the record was dead-lettered");
}

#[test]
fn the_status_line_shows_on_a_terminal_only() {
    // `script` gives the binary a pseudo-terminal. It is in Debian's essential
    // `bsdutils` (util-linux elsewhere): a machine without it fails here rather
    // than passing a test that checked nothing.
    assert!(
        Command::new("script").arg("--version").output().is_ok(),
        "this test needs `script` (Debian: bsdutils; elsewhere util-linux)"
    );
    let env = Env::new();
    let bin = env!("CARGO_BIN_EXE_ingest");
    let run = |extra: &str| {
        let cmd = format!(
            "(for i in 1 2 3; do echo '{}'; sleep 1; done) | {bin} replay - --sink file --file-path o.jsonl {extra}",
            tweet(7)
        );
        env.cmd_in_pty(&cmd)
    };
    let shown = run("");
    assert!(shown.contains("\r\x1b[2Kingest: "), "{shown:?}");
    assert!(shown.contains(" in ("), "{shown:?}");
    let quiet = run("--quiet");
    assert!(!quiet.contains("\x1b[2K"), "{quiet:?}");
    let json = run("--log-format json");
    assert!(!json.contains("\x1b[2K"), "{json:?}");
    // Records on the same terminal would run into it.
    let records = run("--sink stdout");
    assert!(!records.contains("\x1b[2K"), "{records:?}");
}

#[test]
fn the_ci_smoke_script_passes_against_the_mock() {
    let env = Env::new();
    let mut cmd = Command::new("bash");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ci-smoke.sh"))
        .current_dir(env.dir.path())
        .env("INGEST_BIN", env!("CARGO_BIN_EXE_ingest"))
        .env("SMOKE_RECORDS", "30")
        .env("TMPDIR", env.dir.path())
        .stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("INGEST_") || k.starts_with("TWITTER_") || k == "BEARER_TOKEN" {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(text.contains("ok   source twitter"), "{text}");
    assert!(text.contains("smoke: delivered=30 lines=30"), "{text}");
    assert!(text.trim_end().ends_with("smoke: ok"), "{text}");
}

#[test]
fn a_metrics_address_in_use_fails_the_run_before_it_starts() {
    let env = Env::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = env.run(&[
        "replay",
        "-",
        "--sink",
        "file",
        "--file-path",
        "out/o.jsonl",
        "--metrics-addr",
        &addr,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("cannot serve metrics on {addr}")),
        "{}",
        stderr(&out)
    );
    assert!(!env.path("out").exists(), "no sink was started");
}

#[cfg(feature = "kafka")]
#[test]
fn check_passes_against_a_real_kafka_broker() {
    let brokers = service("INGEST_TEST_KAFKA_BROKERS");
    let env = Env::new().config(&format!(
        "[sinks.bus]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\n"
    ));
    let out = env.run(&["check", "--sink", "bus"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert_eq!(
        line(&text, "sink bus"),
        format!("ok   sink bus (kafka): brokers {brokers} answered")
    );
}

#[test]
fn metrics_count_x_reconnects_by_reason() {
    let env = Env::new()
        .with("TWITTER_BEARER_TOKEN", "metrics-token")
        .config("[twitter]\nstall_timeout = \"700ms\"\n[twitter.backoff]\nnetwork_step_ms = 20\nnetwork_max_ms = 100\nhttp_initial_ms = 100\nhttp_max_ms = 1000\n");
    let mock = MockProcess::start(
        "twitter",
        env.dir.path(),
        "rate = 50.0\nkeepalive_secs = 0.2\n[[rule]]\nvalue = \"cats\"\n[[connection]]\nstatus = 503\n[[connection]]\ntweets = 3\nfault = \"stall\"\n[[connection]]\ntweets = 3\nfault = \"close\"\n",
    );
    let mut child = capture_with_metrics(&env, &mock, &[]);
    let (addr, _err) = metrics_addr(&mut child);
    let (_, text) = poll(&addr, "/metrics", |_, b| {
        b.contains(r#"ingest_source_connections_total{source="twitter"} 4"#)
    });
    for want in [
        r#"ingest_source_reconnects_total{source="twitter",reason="http_error"} 1"#,
        r#"ingest_source_reconnects_total{source="twitter",reason="stall"} 1"#,
        r#"ingest_source_reconnects_total{source="twitter",reason="dropped"} 1"#,
        r#"ingest_source_stalls_total{source="twitter"} 1"#,
        r#"ingest_source_connections_total{source="twitter"} 4"#,
    ] {
        assert!(text.contains(want), "no `{want}` in:\n{text}");
    }
    let (status, _) = get(&addr, "/healthz");
    assert_eq!(status, 200, "a source that reconnects stays healthy");
    signal(&child, libc::SIGTERM);
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn healthz_turns_503_while_x_refuses_connections_and_recovers() {
    let env = Env::new()
        .with("TWITTER_BEARER_TOKEN", "health-token")
        .config("[twitter.backoff]\nhttp_initial_ms = 200\nhttp_max_ms = 400\n");
    let refusals = "[[connection]]\nstatus = 503\n".repeat(12);
    let mock = MockProcess::start(
        "twitter",
        env.dir.path(),
        &format!("rate = 50.0\nkeepalive_secs = 0.2\n[[rule]]\nvalue = \"cats\"\n{refusals}"),
    );
    let mut child = capture_with_metrics(&env, &mock, &["--unhealthy-after", "1500ms"]);
    let (addr, _err) = metrics_addr(&mut child);
    let (status, body) = poll(&addr, "/healthz", |s, _| s == 503);
    assert_eq!(status, 503, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["source"]["healthy"], false, "{doc}");
    assert!(doc["source"]["failing_connects_for_secs"].as_f64().unwrap() >= 1.5);
    // Once the mock lets it connect, records flow and health comes back.
    let (status, body) = poll(&addr, "/healthz", |s, _| s == 200);
    assert_eq!(status, 200, "{body}");
    signal(&child, libc::SIGTERM);
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn telegram_polling_errors_count_as_reconnects() {
    let env = Env::new().with("TELEGRAM_BOT_TOKEN", "424242:metrics-token");
    let tg = MockProcess::start(
        "telegram",
        env.dir.path(),
        "updates = 5\nevery_type = false\n[[call]]\nstatus = 500\n[[call]]\nstatus = 429\nretry_after = 1\n",
    );
    let mut child = env
        .cmd()
        .args([
            "telegram",
            "--telegram-api-base",
            &tg.url,
            "--poll-timeout",
            "1",
            "--sink",
            "file",
            "--file-path",
            "t.jsonl",
            "--metrics-addr",
            ANY_PORT,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, _err) = metrics_addr(&mut child);
    let (_, text) = poll(&addr, "/metrics", |_, b| {
        b.contains(r#"ingest_sink_delivered_total{sink="file",type="file"} 5"#)
    });
    for want in [
        r#"ingest_source_reconnects_total{source="telegram",reason="http_error"} 1"#,
        r#"ingest_source_reconnects_total{source="telegram",reason="rate_limited"} 1"#,
        r#"ingest_sink_delivered_total{sink="file",type="file"} 5"#,
        r#"ingest_source_last_checkpoint_timestamp_seconds{source="telegram"} "#,
    ] {
        assert!(text.contains(want), "no `{want}` in:\n{text}");
    }
    signal(&child, libc::SIGTERM);
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
}

/// `ingest twitter` against the mock X API into a file, serving metrics on a port of its choosing.
fn capture_with_metrics(env: &Env, mock: &MockProcess, extra: &[&str]) -> std::process::Child {
    env.cmd()
        .args([
            "twitter",
            "--twitter-api-base",
            &mock.url,
            "--rules-mode",
            "keep",
        ])
        .args([
            "--sink",
            "file",
            "--file-path",
            "x.jsonl",
            "--duration",
            "60s",
        ])
        .args(["--metrics-addr", ANY_PORT])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}
