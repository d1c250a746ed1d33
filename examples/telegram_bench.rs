//! Telegram benchmarks: long polling from the mock Bot API into a file, and
//! webhook requests/s with confirmation (every 200 means every sink confirmed).
//!
//! ```text
//! cargo build --release && cargo run --release --example telegram_bench -- --updates 200000 --requests 20000 --clients 16
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/util.rs"]
mod util;
use util::{arg_or, ingest_bin};

fn rusage_wait(child: std::process::Child) -> (f64, f64) {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: zeroed rusage is valid; wait4 on our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid);
    let cpu = usage.ru_utime.tv_sec as f64
        + usage.ru_utime.tv_usec as f64 / 1e6
        + usage.ru_stime.tv_sec as f64
        + usage.ru_stime.tv_usec as f64 / 1e6;
    (cpu, usage.ru_maxrss as f64 / 1024.0)
}

/// One keep-alive POST; returns the status.
fn post(stream: &mut BufReader<TcpStream>, body: &str) -> u16 {
    let req = format!(
        "POST /telegram HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nX-Telegram-Bot-Api-Secret-Token: bench-secret\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.get_mut().write_all(req.as_bytes()).unwrap();
    let mut status_line = String::new();
    stream.read_line(&mut status_line).unwrap();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        stream.read_line(&mut h).unwrap();
        if h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).unwrap();
    status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let updates = arg_or("--updates", 200_000u64);
    let requests = arg_or("--requests", 20_000u64);
    let clients = arg_or("--clients", 16u64);
    let bin = ingest_bin();
    let dir = tempfile::tempdir().unwrap();

    // 1. Long polling: mock → ingest telegram --until-idle → file.
    let scenario = dir.path().join("scenario.toml");
    std::fs::write(&scenario, format!("updates = {updates}\nrate = 0.0\n")).unwrap();
    let mut mock = Command::new(&bin)
        .args(["mock", "telegram", "--listen", "127.0.0.1:0", "--scenario"])
        .arg(&scenario)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(mock.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let start = Instant::now();
    #[allow(clippy::zombie_processes)] // reaped by wait4 in rusage_wait
    let child = Command::new(&bin)
        .args([
            "telegram",
            "--until-idle",
            "--sink",
            "file",
            "--telegram-api-base",
            url.trim(),
            "--file-path",
        ])
        .arg(dir.path().join("poll.jsonl"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("TELEGRAM_BOT_TOKEN", "1:bench")
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let (cpu, rss) = rusage_wait(child);
    let secs = start.elapsed().as_secs_f64();
    let _ = mock.kill();
    let _ = mock.wait();
    let got = std::fs::read(dir.path().join("poll.jsonl"))
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .unwrap_or(0);
    assert_eq!(got as u64, updates);
    println!(
        "polling → file: {got} updates in {secs:.2} s = {:.0} updates/s (100 per getUpdates, each committed after confirmation); CPU {cpu:.2} s; peak RSS {rss:.1} MiB",
        got as f64 / secs
    );

    // 2. Webhook: `clients` keep-alive connections POST distinct updates.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    #[allow(clippy::zombie_processes)] // reaped by wait4 in rusage_wait
    let server = Command::new(&bin)
        .args([
            "telegram",
            "--webhook",
            &addr,
            "--secret-token",
            "bench-secret",
            "--sink",
            "file",
            "--file-path",
        ])
        .arg(dir.path().join("hook.jsonl"))
        .arg("--state-dir")
        .arg(dir.path().join("state2"))
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "the webhook did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let per_client = requests / clients;
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut s = BufReader::new(TcpStream::connect(&addr).unwrap());
                for i in 0..per_client {
                    let id = c * per_client + i;
                    let body = format!(r#"{{"update_id":{id},"message":{{"message_id":{id},"date":1795000000,"chat":{{"id":-4001,"type":"group","title":"Data team"}},"from":{{"id":9,"is_bot":false,"first_name":"Ada"}},"text":"webhook bench {id} 🚀"}}}}"#);
                    assert_eq!(post(&mut s, &body), 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let (cpu, rss) = rusage_wait(server);
    let total = per_client * clients;
    let got = std::fs::read(dir.path().join("hook.jsonl"))
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .unwrap_or(0);
    assert_eq!(got as u64, total);
    println!(
        "webhook: {total} requests from {clients} keep-alive clients in {secs:.2} s = {:.0} requests/s, each answered 200 only after the file sink confirmed it; server CPU {cpu:.2} s; peak RSS {rss:.1} MiB",
        total as f64 / secs
    );
}
