//! Operating the binary: `ingest check` against the mocks, a bad path and a
//! closed Kafka port; completions and the man page.

use std::process::Output;
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
    let started = Instant::now();
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
    let elapsed = started.elapsed();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(elapsed < Duration::from_secs(12), "check took {elapsed:?}");
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
}
