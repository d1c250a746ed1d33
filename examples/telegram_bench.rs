//! Telegram benchmarks: long polling from the mock Bot API into a file, and
//! webhook requests/s with confirmation (every 200 means every sink confirmed).
//! Each case runs `--runs N` times (at least 3), each in a fresh directory;
//! the figures are min / median / max.
//!
//! ```text
//! cargo build --release && cargo run --release --example telegram_bench -- --updates 200000 --requests 20000 --clients 16
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Instant;

#[path = "common/util.rs"]
mod util;
use util::{arg_or, ingest_bin};

#[path = "common/spread.rs"]
mod spread;
use spread::{runs, show};

/// Spawning with fork, not vfork: a vforked child starts with this
/// process's peak RSS as its own (and this process held a run's whole output
/// when it checked it), so its peak would not be its own.
trait ForkSpawn {
    fn fork_spawn(&mut self) -> std::process::Child;
}

impl ForkSpawn for Command {
    fn fork_spawn(&mut self) -> std::process::Child {
        // SAFETY: the hook does nothing, so it is async-signal-safe; its
        // presence makes std fork rather than posix_spawn.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(self, || Ok(()));
        }
        self.spawn().unwrap()
    }
}

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

/// Long polling: mock → `ingest telegram --until-idle` → file, once. Its
/// (updates/s, CPU s, peak RSS MiB).
fn poll_once(bin: &std::path::Path, dir: &std::path::Path, updates: u64) -> (f64, f64, f64) {
    let scenario = dir.join("scenario.toml");
    std::fs::write(&scenario, format!("updates = {updates}\nrate = 0.0\n")).unwrap();
    let mut mock = Command::new(bin)
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
    let child = Command::new(bin)
        .args([
            "telegram",
            "--until-idle",
            "--sink",
            "file",
            "--telegram-api-base",
            url.trim(),
            "--file-path",
        ])
        .arg(dir.join("poll.jsonl"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env("TELEGRAM_BOT_TOKEN", "1:bench")
        .env("RUST_LOG", "warn")
        .fork_spawn();
    let (cpu, rss) = rusage_wait(child);
    let secs = start.elapsed().as_secs_f64();
    let _ = mock.kill();
    let _ = mock.wait();
    // The mock sends `updates` messages and one update of each other type the
    // bot gets by default: every update id once.
    let text = std::fs::read_to_string(dir.join("poll.jsonl")).unwrap_or_default();
    let mut ids: Vec<i64> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a record line");
            v["refs"]["update_id"].as_i64().expect("an update id")
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let got = ids.len();
    assert_eq!(got, text.lines().count(), "each update once");
    assert!(got as u64 >= updates, "{got} of {updates} updates");
    // The span's only holes are the update types a bot gets only when it
    // asks (`chat_member`, `message_reaction`, `message_reaction_count`).
    let holes = ids[got - 1] - ids[0] + 1 - got as i64;
    assert!(holes <= 3, "{holes} updates missing");
    (got as f64 / secs, cpu, rss)
}

/// Webhook: `clients` keep-alive connections POST distinct updates, once.
/// Its (requests/s, server CPU s, peak RSS MiB).
fn webhook_once(
    bin: &std::path::Path,
    dir: &std::path::Path,
    requests: u64,
    clients: u64,
) -> (f64, f64, f64) {
    // Port 0: the webhook logs the port it bound.
    #[allow(clippy::zombie_processes)] // reaped by wait4 in rusage_wait
    let mut server = Command::new(bin)
        .args([
            "telegram",
            "--webhook",
            "127.0.0.1:0",
            "--secret-token",
            "bench-secret",
            "--sink",
            "file",
            "--file-path",
        ])
        .arg(dir.join("hook.jsonl"))
        .arg("--state-dir")
        .arg(dir.join("state2"))
        .env("RUST_LOG", "warn,ingest::sources::http=info")
        .stderr(Stdio::piped())
        .fork_spawn();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the webhook did not start").unwrap();
        if line.contains("webhook listening")
            && let Some(a) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("addr="))
        {
            break a.to_owned();
        }
    };
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).count());
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
    let _ = drain.join();
    let total = per_client * clients;
    let got = std::fs::read(dir.join("hook.jsonl"))
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .unwrap_or(0);
    assert_eq!(got as u64, total);
    (total as f64 / secs, cpu, rss)
}

fn main() {
    let updates = arg_or("--updates", 200_000u64);
    let requests = arg_or("--requests", 20_000u64);
    let clients = arg_or("--clients", 16u64);
    let bin = ingest_bin();
    let runs = runs();
    println!("{runs} runs per case");
    let fresh = || tempfile::tempdir().unwrap();
    let poll: Vec<(f64, f64, f64)> = (0..runs)
        .map(|_| poll_once(&bin, fresh().path(), updates))
        .collect();
    let col = |xs: &[(f64, f64, f64)], i: usize| -> Vec<f64> {
        xs.iter().map(|x| [x.0, x.1, x.2][i]).collect()
    };
    println!(
        "polling → file, {updates} updates (100 per getUpdates, each committed after confirmation): updates/s {}; CPU {}; peak RSS {}",
        show(&col(&poll, 0), 0, ""),
        show(&col(&poll, 1), 2, "s"),
        show(&col(&poll, 2), 1, "MiB")
    );
    let hook: Vec<(f64, f64, f64)> = (0..runs)
        .map(|_| webhook_once(&bin, fresh().path(), requests, clients))
        .collect();
    println!(
        "webhook, {} requests from {clients} keep-alive clients, each answered 200 only after the file sink confirmed it: requests/s {}; server CPU {}; peak RSS {}",
        requests / clients * clients,
        show(&col(&hook, 0), 0, ""),
        show(&col(&hook, 1), 2, "s"),
        show(&col(&hook, 2), 1, "MiB")
    );
}
