//! Helpers shared by the integration tests: a scratch directory with a scrubbed
//! environment for the real binary, readers for what it writes, the mocks as
//! their own processes, the local servers `scripts/services` starts (and a
//! Python with boto3 and pymongo to read them back), and a minimal HTTP client.
//! Every record these readers see must validate against `ingest schema`.

#![allow(dead_code)] // each test crate uses its own subset

pub mod server;
pub mod spec;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
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

    /// `ingest replay -` into the file sink at `o.jsonl`, with `--summary` and
    /// `extra` flags; standard input from `stdin`, standard error piped.
    pub fn spawn_replay_to_file(&self, stdin: Stdio, extra: &[&str]) -> Child {
        self.cmd()
            .args(["replay", "-", "--sink", "file", "--file-path", "o.jsonl"])
            .arg("--summary")
            .args(extra)
            .stdin(stdin)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
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

/// The JSONL file at `path`, parsed; empty if it does not exist. Every record
/// in it (and in a dead letter's `record`) must validate against `ingest schema`.
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|l| {
                let v = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                check_records_in(&v);
                v
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The JSON Schema `ingest schema` prints, compiled once per test binary.
fn record_validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_ingest"))
            .arg("schema")
            .env_remove("INGEST_SCHEMA_FORMAT")
            .output()
            .unwrap();
        assert!(out.status.success(), "ingest schema: {}", stderr(&out));
        let schema: Value = serde_json::from_slice(&out.stdout).expect("ingest schema prints JSON");
        jsonschema::validator_for(&schema).expect("ingest schema prints a valid JSON Schema")
    })
}

/// Whether `v` is a record (not a raw payload, a dead letter or a summary).
pub fn is_record(v: &Value) -> bool {
    v.get("id").is_some() && v.get("platform").is_some() && v.get("run").is_some()
}

/// Panics unless the record `v` validates against `ingest schema`.
pub fn validate_record(v: &Value) {
    let errors: Vec<String> = record_validator()
        .iter_errors(v)
        .map(|e| format!("{e} (at `{}`)", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "a record does not validate against `ingest schema`: {errors:?}\n{v}"
    );
}

/// Validates every record found in `v`: `v` itself, any object or array
/// inside it, and JSON lines inside its strings (S3 object bodies, Kinesis
/// data). A MongoDB document is its record plus `_id`.
pub fn check_records_in(v: &Value) {
    match v {
        Value::Object(map) if is_record(v) => {
            let mut record = map.clone();
            record.remove("_id");
            validate_record(&Value::Object(record));
        }
        Value::Object(map) => map.values().for_each(check_records_in),
        Value::Array(items) => items.iter().for_each(check_records_in),
        Value::String(text) if text.starts_with('{') => {
            for line in text.lines() {
                if let Ok(v) = serde_json::from_str::<Value>(line) {
                    check_records_in(&v);
                }
            }
        }
        _ => {}
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

/// Waits at most `limit` for `child`; its status and all it wrote on (piped) stderr.
pub fn finish(child: &mut Child, limit: Duration) -> (std::process::ExitStatus, String) {
    let status = wait_with_timeout(child, limit);
    let mut err = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut err).unwrap();
    }
    (status, err)
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

/// A server answering every request `200` with `body` (`None`: it reads the
/// request and never answers).
pub fn canned_server(body: Option<&'static str>) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in l.incoming() {
            let mut conn = conn.unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut buf = vec![0; length];
            let _ = reader.read_exact(&mut buf);
            match body {
                Some(b) => {
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                        b.len()
                    );
                    let _ = conn.write_all(resp.as_bytes());
                }
                None => held.push(conn),
            }
        }
    });
    url
}

/// `ingest mock twitter|telegram` as its own process, on a port it bound
/// itself, behind a [`spec::SpecProxy`]: `url` is the proxy's, so every
/// request the client sends and every answer the mock gives is held to X's
/// or Telegram's published spec, and a violation fails the test.
pub struct MockProcess {
    child: Child,
    pub url: String,
    /// The mock itself, past the proxy.
    pub mock_url: String,
    proxy: Option<spec::SpecProxy>,
}

impl MockProcess {
    pub fn start(kind: &str, dir: &Path, scenario: &str) -> MockProcess {
        let mut m = Self::start_unchecked(kind, dir, scenario);
        let api = match kind {
            "twitter" => spec::Api::X,
            "telegram" => spec::Api::Telegram,
            other => panic!("no mock {other}"),
        };
        let proxy = spec::SpecProxy::start(api, &m.mock_url);
        m.url = proxy.url.clone();
        m.proxy = Some(proxy);
        m
    }

    /// The mock with no checking proxy: for tests that send it what the spec
    /// forbids on purpose (to see the mock refuse it as X would).
    pub fn start_unchecked(kind: &str, dir: &Path, scenario: &str) -> MockProcess {
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
            mock_url: line.trim().to_owned(),
            proxy: None,
        }
    }

    /// The checking proxy, if this mock has one.
    pub fn spec(&self) -> Option<&spec::SpecProxy> {
        self.proxy.as_ref()
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

/// A variable `scripts/services` exports (a server address, a client's path).
pub fn service(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tests with `scripts/test`, which starts the local Kafka, S3, Kinesis and MongoDB servers and exports their addresses")
    })
}

/// A name no other test (or earlier run) uses: the prefix, the pid, the time
/// and a counter joined by `sep` (S3 buckets want `-`, nx-27017 collections `_`).
/// How many times each item occurs: compare these, not sets, wherever a
/// duplicate would break a promise.
pub fn counts<T: Ord>(items: impl IntoIterator<Item = T>) -> std::collections::BTreeMap<T, usize> {
    let mut m = std::collections::BTreeMap::new();
    for item in items {
        *m.entry(item).or_insert(0) += 1;
    }
    m
}

/// Each of `items` exactly once.
pub fn once<T: Ord>(items: impl IntoIterator<Item = T>) -> std::collections::BTreeMap<T, usize> {
    items.into_iter().map(|i| (i, 1)).collect()
}

pub fn unique(prefix: &str, sep: char) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}{sep}{}{sep}{nanos}{sep}{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a Python snippet in the services' virtualenv (boto3, pymongo) with the
/// test AWS credentials; returns its stdout as JSON.
pub fn py(script: &str, args: &[&str]) -> Value {
    let out = Command::new(service("INGEST_TEST_PYTHON"))
        .arg("-c")
        .arg(script)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    check_records_in(&v);
    v
}

/// One message as kcat prints it with `-J`.
#[derive(Debug)]
pub struct Message {
    pub key: String,
    pub payload: String,
    pub headers: Vec<(String, String)>,
}

/// Consumes `topic` from the beginning to its end with kcat, until `want`
/// messages are there or 20 s pass.
pub fn kcat_read(brokers: &str, topic: &str, want: usize) -> Vec<Message> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new(service("INGEST_TEST_KCAT"))
            .args([
                "-C",
                "-b",
                brokers,
                "-t",
                topic,
                "-o",
                "beginning",
                "-e",
                "-J",
                "-q",
            ])
            .args(["-X", "topic.metadata.refresh.interval.ms=500"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let messages: Vec<Message> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                let headers = v["headers"]
                    .as_array()
                    .map(|h| {
                        h.chunks(2)
                            .map(|kv| {
                                (
                                    kv[0].as_str().unwrap().to_owned(),
                                    kv[1].as_str().unwrap_or("").to_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                check_records_in(&v["payload"]);
                Message {
                    key: v["key"].as_str().unwrap_or_default().to_owned(),
                    payload: v["payload"].as_str().unwrap_or_default().to_owned(),
                    headers,
                }
            })
            .collect();
        if messages.len() >= want || Instant::now() > deadline {
            return messages;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}
