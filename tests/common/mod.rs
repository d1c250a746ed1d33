//! Helpers shared by the integration tests: a scratch directory with a scrubbed
//! environment for the real binary, readers for what it writes, the mocks as
//! their own processes, and a minimal HTTP client.

#![allow(dead_code)] // each test crate uses its own subset

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A scratch directory, extra environment variables, and the binary run in it.
pub struct Env {
    pub dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
            vars: Vec::new(),
        }
    }

    /// Sets an environment variable for every command of this env.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.vars.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Writes `./ingest.toml`.
    pub fn config(self, text: &str) -> Self {
        std::fs::write(self.path("ingest.toml"), text).unwrap();
        self
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The binary with nothing of the caller's environment that could change it.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ingest"));
        for (k, _) in std::env::vars() {
            if k.starts_with("INGEST_")
                || k.starts_with("TELEGRAM_")
                || k.starts_with("TWITTER_")
                || k == "BEARER_TOKEN"
                || k == "RUST_LOG"
                || k == "XDG_STATE_HOME"
            {
                cmd.env_remove(k);
            }
        }
        cmd.current_dir(self.dir.path())
            .env("INGEST_STATE_DIR", self.path("state"))
            .stdin(Stdio::null());
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a shell command line in a pseudo-terminal (`script`), with this env's
    /// scrubbed environment; returns what the terminal showed.
    pub fn cmd_in_pty(&self, line: &str) -> String {
        let probe = self.cmd();
        let mut cmd = Command::new("script");
        cmd.args(["-qefc", line, "/dev/null"])
            .current_dir(self.dir.path())
            .env_clear()
            .stdin(Stdio::null());
        for (k, v) in probe.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        for k in ["PATH", "HOME", "TERM"] {
            if let Ok(v) = std::env::var(k) {
                cmd.env(k, v);
            }
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// The JSONL file at `rel`, parsed; empty if it does not exist.
    pub fn records(&self, rel: &str) -> Vec<Value> {
        read_jsonl(&self.path(rel))
    }

    pub fn dead_letters(&self) -> Vec<Value> {
        read_jsonl(&self.path("state/dead-letters.jsonl"))
    }
}

pub fn read_jsonl(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect(),
        Err(_) => Vec::new(),
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `--summary` line: the last stderr line that is a JSON object with `run_id`.
pub fn summary(out: &Output) -> Value {
    summary_in(&stderr(out)).unwrap_or_else(|| panic!("no summary in stderr:\n{}", stderr(out)))
}

pub fn summary_in(text: &str) -> Option<Value> {
    text.lines().rev().find_map(|l| {
        serde_json::from_str::<Value>(l)
            .ok()
            .filter(|v| v.get("run_id").is_some())
    })
}

/// Reads lines until one contains `needle`; returns what was read.
pub fn wait_for(lines: &mut impl Iterator<Item = std::io::Result<String>>, needle: &str) -> String {
    let mut seen = String::new();
    for line in lines {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(needle) {
            return seen;
        }
    }
    panic!("stderr ended without `{needle}`:\n{seen}");
}

pub fn wait_with_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("ingest did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn signal(child: &Child, sig: i32) {
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// A loopback address nobody listens on right now.
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// A minimal HTTP/1.1 client: (status, body).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// `ingest mock twitter|telegram` as its own process, on a free port.
pub struct MockProcess {
    child: Child,
    pub url: String,
}

impl MockProcess {
    pub fn start(kind: &str, dir: &Path, scenario: &str) -> MockProcess {
        let path = dir.join(format!("{kind}-scenario.toml"));
        std::fs::write(&path, scenario).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ingest"))
            .args(["mock", kind, "--listen", "127.0.0.1:0", "--scenario"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("http://127.0.0.1:"), "mock said {line:?}");
        MockProcess {
            child,
            url: line.trim().to_owned(),
        }
    }

    /// GET a JSON document from the mock.
    pub fn get(&self, path: &str) -> Value {
        let (status, body) = http(
            self.url.trim_start_matches("http://"),
            "GET",
            path,
            &[("Authorization", "Bearer test")],
            b"",
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
