//! Secrets never reach what `ingest` shows, whatever the origin of the text:
//! here a "proxy" (or a wrong `--telegram-api-base`) echoes the request path,
//! bot token included, in its error bodies.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread;

use common::*;

const TOKEN: &str = "987654:leaky-Token_AAA";

/// A server that answers every request with `status` and a body echoing the
/// request line (the way many proxies and default error pages do).
fn echoing_server(status: &'static str, json: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                // Read the headers (and ignore any body).
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let echoed = request_line.trim();
                let body = if json {
                    format!(
                        r#"{{"ok":false,"error_code":400,"description":"Bad Request: no route for {echoed}"}}"#
                    )
                } else {
                    format!("<html><body>upstream failed: {echoed}</body></html>")
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    format!("http://{addr}")
}

fn assert_no_token(what: &str, text: &str) {
    assert!(
        !text.contains(TOKEN),
        "the bot token leaked into {what}:\n{text}"
    );
    assert!(
        !text.contains("leaky-Token") && !text.contains("leaky%2DToken"),
        "part of the bot token leaked into {what}:\n{text}"
    );
}

fn env() -> Env {
    Env::new().with("TELEGRAM_BOT_TOKEN", TOKEN)
}

#[test]
fn an_echoed_bot_token_never_reaches_logs_summary_or_dead_letters() {
    for (status, json) in [
        ("400 Bad Request", true),
        ("502 Bad Gateway", false),
        ("200 OK", false),
    ] {
        let env = env();
        let base = echoing_server(status, json);
        for log_format in ["text", "json"] {
            let out = env.run(&[
                "telegram",
                "--telegram-api-base",
                &base,
                "--until-idle",
                "--duration",
                "3s",
                "--sink",
                "file",
                "--summary",
                "--log-format",
                log_format,
            ]);
            let err = stderr(&out);
            // The echo did reach ingest: the error it shows names the path, token redacted.
            assert!(
                err.contains("/bot***/"),
                "{status}: no redacted echo in:\n{err}"
            );
            assert_no_token(&format!("stderr ({status}, {log_format})"), &err);
            assert_no_token("stdout", &String::from_utf8_lossy(&out.stdout));
            if let Some(summary) = summary_in(&err) {
                assert_no_token("the summary", &summary.to_string());
            }
            let dead =
                std::fs::read_to_string(env.path("state/dead-letters.jsonl")).unwrap_or_default();
            assert_no_token("the dead letters", &dead);
        }
    }
}

#[test]
fn check_redacts_an_echoed_bot_token() {
    let env = env();
    let base = echoing_server("400 Bad Request", true);
    let out = env.run(&[
        "check",
        "--source",
        "telegram",
        "--sink",
        "file",
        "--telegram-api-base",
        &base,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FAIL") && stdout.contains("/bot***/"),
        "{stdout}"
    );
    assert_no_token("check's stdout", &stdout);
    assert_no_token("check's stderr", &stderr(&out));
}

/// A normal X run and a normal Telegram run with every debug log on (our
/// crates' and the HTTP stack's): neither the bearer token nor the bot token
/// shows anywhere, although both were sent on every request.
#[test]
fn no_token_under_rust_log_debug_in_normal_runs() {
    const BEARER: &str = "AAAAbearer-Secret-9f8e7d";
    let env = Env::new()
        .with("TWITTER_BEARER_TOKEN", BEARER)
        .with("TELEGRAM_BOT_TOKEN", TOKEN)
        .with("RUST_LOG", "debug");
    let x = MockProcess::start(
        "twitter",
        env.dir.path(),
        "rate = 500.0\ntotal_tweets = 20\n[[rule]]\nvalue = \"cats\"\n",
    );
    let tg = MockProcess::start(
        "telegram",
        env.dir.path(),
        "updates = 10\nevery_type = false\n",
    );
    for args in [
        vec![
            "twitter",
            "--twitter-api-base",
            x.url.as_str(),
            "--max-records",
            "20",
        ],
        vec![
            "telegram",
            "--telegram-api-base",
            tg.url.as_str(),
            "--until-idle",
        ],
    ] {
        let out = env
            .cmd()
            .args(&args)
            .args(["--sink", "file", "--file-path", "o.jsonl", "--summary"])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(out.status.success(), "{args:?}: {err}");
        // Debug logs really were on (else this proves nothing).
        assert!(err.contains("DEBUG"), "{args:?}: no debug line in:\n{err}");
        for (name, secret) in [("bearer token", BEARER), ("bot token", TOKEN)] {
            assert!(
                !err.contains(secret),
                "the {name} leaked into stderr ({args:?})"
            );
            assert!(
                !String::from_utf8_lossy(&out.stdout).contains(secret),
                "the {name} leaked into stdout"
            );
        }
        assert!(!err.contains("bearer-Secret") && !err.contains("leaky-Token"));
    }
    let records = std::fs::read_to_string(env.path("o.jsonl")).unwrap();
    assert!(!records.contains(BEARER) && !records.contains(TOKEN));
    assert_eq!(records.lines().count(), 30);
}
