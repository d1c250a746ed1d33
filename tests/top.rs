//! `ingest top`: `--once` against a capture from the built-in X mock, its
//! figures checked against `/metrics` scraped before and after; the live
//! view in a pseudo-terminal, refreshed and quit with `q`; bad URLs and
//! hostile bodies.

mod common;

use std::io::{BufRead, Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Env, canned_server, free_addr, signal, stderr, wait_with_timeout};

/// Reads `child`'s stderr to the line where the metrics listener says where it
/// serves; that address. The rest of stderr is drained on a thread.
fn metrics_addr(child: &mut Child) -> String {
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let addr = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("stderr ended before the metrics listener started:\n{seen}"))
            .unwrap();
        seen.push_str(&line);
        if line.contains("serving /metrics")
            && let Some(a) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("addr="))
        {
            break a.to_owned();
        }
    };
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    addr
}

/// `ingest twitter --mock` into a file for a minute, serving metrics on a port of its own.
fn capture(env: &Env) -> (Child, String) {
    let mut child = env
        .cmd()
        .args(["twitter", "--mock", "--track", "rust", "--sink", "file"])
        .args(["--file-path", "x.jsonl", "--duration", "60s"])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = metrics_addr(&mut child);
    (child, addr)
}

/// One value of the scrape: the line that starts with `series` (name and labels).
fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no `{series}` in:\n{metrics}"))
        .parse()
        .unwrap()
}

fn scrape(addr: &str) -> String {
    let (status, body) = common::http(addr, "GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    body
}

/// The cells of the row of `table` output that starts with `name`.
fn row<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&name))
        .unwrap_or_else(|| panic!("no row `{name}` in:\n{text}"))
}

fn mib(cell: &str) -> f64 {
    cell.parse::<f64>().unwrap() * 1024.0 * 1024.0
}

#[test]
fn top_once_shows_the_figures_of_metrics() {
    let env = Env::new();
    let (mut child, addr) = capture(&env);
    let records = r#"ingest_source_records_total{source="twitter"}"#;
    let delivered = r#"ingest_sink_delivered_total{sink="file",type="file"}"#;
    // Wait (on the condition) until records flow.
    let start = Instant::now();
    let before = loop {
        let m = scrape(&addr);
        if value(&m, delivered) >= 5.0 {
            break m;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no records:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = env.run(&["top", "--once", "--url", &addr]);
    let after = scrape(&addr);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();

    let source = row(&text, "twitter");
    let n: f64 = source[1].parse().unwrap();
    assert!(
        value(&before, records) <= n && n <= value(&after, records),
        "{text}"
    );
    let rate: f64 = source[2].parse().unwrap();
    assert!(rate > 0.0, "the mock streams: {text}");
    assert_eq!(source[6], "yes");

    let sink = row(&text, "file");
    assert_eq!(sink[1], "file");
    let n: f64 = sink[2].parse().unwrap();
    assert!(
        value(&before, delivered) <= n && n <= value(&after, delivered),
        "{text}"
    );
    // The file sink confirms a batch a second: over one second its rate may be 0.
    assert!(sink[3].parse::<f64>().unwrap() >= 0.0, "{text}");
    let capacity = value(
        &after,
        r#"ingest_sink_queue_capacity{sink="file",type="file"}"#,
    );
    assert_eq!(
        sink[4].split('/').nth(1),
        Some(capacity.to_string().as_str())
    );
    for (cell, metric) in [(6, "retried"), (7, "dead_lettered"), (8, "lost")] {
        let series = format!(r#"ingest_sink_{metric}_total{{sink="file",type="file"}}"#);
        assert_eq!(
            sink[cell].parse::<f64>().unwrap(),
            value(&after, &series),
            "{metric}"
        );
    }

    // uptime H:MM:SS, rss and the memory budget in MiB.
    let header = row(&text, "uptime");
    let clock: Vec<f64> = header[1].split(':').map(|p| p.parse().unwrap()).collect();
    let uptime = clock[0] * 3600.0 + clock[1] * 60.0 + clock[2];
    let (up0, up1) = (
        value(&before, "ingest_uptime_seconds"),
        value(&after, "ingest_uptime_seconds"),
    );
    assert!(
        up0.floor() <= uptime && uptime <= up1,
        "{uptime} not in {up0}..{up1}"
    );
    assert_eq!(header[2..4], ["healthy", "yes"]);
    let rss = mib(header[5]);
    let rss_metric = value(&after, "ingest_process_resident_memory_bytes");
    assert!(
        rss > rss_metric / 2.0 && rss < rss_metric * 2.0,
        "{rss} vs {rss_metric}"
    );
    let budget = mib(header[11]);
    let budget_metric = value(&after, "ingest_pipeline_memory_budget_bytes");
    assert!(
        (budget - budget_metric).abs() < 0.1 * 1024.0 * 1024.0,
        "{budget} vs {budget_metric}"
    );

    signal(&child, libc::SIGTERM);
    assert_eq!(
        wait_with_timeout(&mut child, Duration::from_secs(30)).code(),
        Some(0)
    );
}

#[test]
fn the_live_view_refreshes_every_second_and_q_quits() {
    let env = Env::new();
    let (mut child, addr) = capture(&env);
    let probe = env.cmd();
    let bin = probe.get_program().to_string_lossy().into_owned();
    // `script` gives `top` a terminal and forwards what we write to it.
    let mut view = std::process::Command::new("script")
        .args(["-qefc", &format!("{bin} top --url {addr}"), "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut screen = view.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = screen.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let start = Instant::now();
    let frames = |s: &[u8]| String::from_utf8_lossy(s).matches("\x1b[2J").count();
    while frames(&seen) < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            String::from_utf8_lossy(&seen)
        );
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.extend(chunk);
        }
    }
    let elapsed = start.elapsed();
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(text.contains("press q to quit"), "{text}");
    assert!(
        text.contains("twitter") && text.contains("DELIVERED"),
        "{text}"
    );
    // Three frames a second apart take about two seconds.
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    view.stdin.as_mut().unwrap().write_all(b"q").unwrap();
    let status = wait_with_timeout(&mut view, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    signal(&child, libc::SIGTERM);
    wait_with_timeout(&mut child, Duration::from_secs(30));
}

#[test]
fn top_without_a_terminal_or_with_a_bad_url_says_what_to_do() {
    let env = Env::new();
    let out = env.run(&["top", "--url", &free_addr()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("use --once in scripts"),
        "{}",
        stderr(&out)
    );

    let out = env.run(&["top", "--once", "--url", "ftp://example/metrics"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is not a metrics URL"),
        "{}",
        stderr(&out)
    );

    let addr = free_addr();
    let out = env.run(&["top", "--once", "--url", &addr]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot read http://{addr}/metrics")),
        "{err}"
    );
    assert!(err.to_lowercase().contains("refused"), "the cause: {err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn hostile_metrics_bodies_are_refused_with_the_reason() {
    let env = Env::new();
    let huge: &'static str =
        Box::leak("ingest_uptime_seconds 1\n".repeat(300_000).into_boxed_str());
    for (body, want) in [
        (
            "<html><body>hello</body></html>",
            "did not send Prometheus metrics: line 1",
        ),
        ("up 1\nprocess_cpu_seconds_total 3\n", "not an ingest run's"),
        (
            "ingest_uptime_seconds 1\ningest_x{a=\"1} 2\n",
            "line 2: an unterminated label value",
        ),
        (huge, "sent more than 4 MiB"),
    ] {
        let url = canned_server(Some(body));
        let out = env.run(&["top", "--once", "--url", &url]);
        assert_eq!(out.status.code(), Some(1), "{want}");
        assert!(stderr(&out).contains(want), "{want}: {}", stderr(&out));
    }
    // A server that never answers: the scrape gives up after its timeout.
    let url = canned_server(None);
    let out = env.run(&["top", "--once", "--url", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
}
