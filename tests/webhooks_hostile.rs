//! Both webhooks against hostile clients, end to end with the real binary: a
//! forged X CRC, unfinished bodies at shutdown, slow headers and bodies,
//! connection floods, redeliveries and replays, malformed updates, and
//! config values that cannot work.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::*;

const SECRET: &str = "hostile-secret-token";
const CONSUMER_SECRET: &str = "consumer-secret";
const X_PATH: &str = "/webhooks/twitter";

/// A running webhook: the child and everything it logged so far.
struct Running {
    child: Child,
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Running {
    /// Starts `ingest ARGS` (stderr captured) and waits until it listens.
    fn start(mut cmd: Command) -> Running {
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let reader = {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            })
        };
        let running = Running {
            child,
            log,
            reader: Some(reader),
        };
        assert!(
            running.wait_log("webhook listening", Duration::from_secs(30)),
            "the webhook did not start:\n{}",
            running.log()
        );
        running
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The address the webhook bound (it was given port 0 and logs the one
    /// the system chose: no port is picked, released and reused).
    fn addr(&self) -> String {
        bound_addr(&self.log())
    }

    /// Polls the log for `needle` until `limit`.
    fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// SIGTERM, then the exit status (within `limit`) and the whole log.
    fn stop_within(mut self, limit: Duration) -> (ExitStatus, String) {
        signal(&self.child, libc::SIGTERM);
        let status = wait_with_timeout(&mut self.child, limit);
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        (status, self.log())
    }

    fn stop(self) -> (ExitStatus, String) {
        self.stop_within(Duration::from_secs(60))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Any port: the webhook binds port 0 and logs the one it got.
const ANY_PORT: &str = "127.0.0.1:0";

/// The `addr=` of the "webhook listening" line in a log.
fn bound_addr(log: &str) -> String {
    log.lines()
        .find(|l| l.contains("webhook listening"))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("addr=")))
        .unwrap_or_else(|| panic!("no bound address in the log:\n{log}"))
        .to_owned()
}

fn telegram_cmd(env: &Env, addr: &str, sink: &[&str]) -> Command {
    let mut cmd = env.cmd();
    cmd.args([
        "telegram",
        "--webhook",
        addr,
        "--secret-token",
        SECRET,
        "--summary",
    ])
    .args(sink);
    cmd
}

fn x_cmd(env: &Env, addr: &str) -> Command {
    let mut cmd = env.cmd();
    cmd.env("TWITTER_CONSUMER_SECRET", CONSUMER_SECRET).args([
        "twitter-webhook",
        "--listen",
        addr,
        "--sink",
        "file",
        "--file-path",
        "o.jsonl",
        "--summary",
    ]);
    cmd
}

const FILE_SINK: [&str; 4] = ["--sink", "file", "--file-path", "o.jsonl"];

fn post_update(addr: &str, update: &str) -> (u16, String) {
    http(
        addr,
        "POST",
        "/telegram",
        &[
            ("Content-Type", "application/json"),
            ("X-Telegram-Bot-Api-Secret-Token", SECRET),
        ],
        update.as_bytes(),
    )
}

/// Every byte but `[A-Za-z0-9]` as `%XX`.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `sha256=` + base64(HMAC-SHA256(consumer secret, body)), computed by Python.
fn python_signature(body: &[u8]) -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys,hmac,hashlib,base64;print('sha256='+base64.b64encode(hmac.new(sys.argv[1].encode(),sys.stdin.buffer.read(),hashlib.sha256).digest()).decode())", CONSUMER_SECRET])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(body)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn crc(addr: &str, token: &str) -> (u16, String) {
    http(
        addr,
        "GET",
        &format!("{X_PATH}?crc_token={}", percent_encode(token)),
        &[],
        b"",
    )
}

fn crc_vector() -> String {
    let v = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/crc_vector.txt"
    ))
    .unwrap();
    format!("sha256={}", v.trim())
}

/// Reads until the peer closes (`true`) or `limit` passes with the connection still open (`false`).
fn closed_by_peer(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Opens a connection, sends headers asking for `100 Continue` and one chunk
/// of a chunked body, and returns once the server asked for the body (so the
/// request is in progress on the server) — the body is never finished.
fn unfinished_chunked_body(addr: &str, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("\r\n\r\n") {
        let n = s.read(&mut buf).expect("the server answers 100 Continue");
        assert!(n > 0, "closed before 100 Continue");
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    s.write_all(b"5\r\n{\"upd\r\n").unwrap();
    s
}

#[test]
fn x_crc_refuses_tokens_not_shaped_like_x_so_a_forged_post_is_not_recorded() {
    let env = Env::new();
    let x = Running::start(x_cmd(&env, ANY_PORT));
    let addr = x.addr();
    // The attack: have the CRC endpoint sign a JSON body, then POST that body with it.
    let forged = r#"{"for_user_id":"1","tweet_create_events":[{"id_str":"666","text":"forged","user":{"id_str":"1","name":"Victim","screen_name":"victim"}}]}"#;
    let (status, body) = crc(&addr, forged);
    let forged_post = match serde_json::from_str::<Value>(&body) {
        Ok(v) if status == 200 => http(
            &addr,
            "POST",
            X_PATH,
            &[(
                "x-twitter-webhooks-signature",
                v["response_token"].as_str().unwrap(),
            )],
            forged.as_bytes(),
        ),
        _ => (0, String::new()),
    };
    assert_eq!(status, 400, "the CRC endpoint signed a JSON body: {body}");
    assert_ne!(forged_post.0, 200, "a forged POST was accepted");
    // JSON scalars and anything outside the token charset or length are refused too.
    for token in ["12345", "true", "a b", "<script>", &"A".repeat(257)] {
        let (status, body) = crc(&addr, token);
        assert_eq!(status, 400, "crc_token {token:?} answered: {body}");
    }
    // A token shaped like X's still gets the right HMAC (the fixed vector).
    let (status, body) = crc(&addr, "crc-token-123");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["response_token"], crc_vector());
    let (status, log) = x.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        env.records("o.jsonl").is_empty(),
        "a forged event was recorded"
    );
    assert_eq!(summary_in(&log).unwrap()["source"]["records"], 0);
}

/// A CRC GET from the loopback address `from` (127.0.0.0/8 is all loopback on
/// Linux): a second client as the webhook sees it.
fn crc_from(from: std::net::Ipv4Addr, addr: &str, token: &str) -> u16 {
    use std::os::fd::FromRawFd;
    let to: std::net::SocketAddrV4 = addr.parse().unwrap();
    let sockaddr = |a: std::net::SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a fresh socket, bound and connected with valid sockaddr_in
    // values, then owned by the TcpStream.
    let mut s = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let local = sockaddr(std::net::SocketAddrV4::new(from, 0));
        assert_eq!(libc::bind(fd, (&raw const local).cast(), len), 0);
        let remote = sockaddr(to);
        assert_eq!(libc::connect(fd, (&raw const remote).cast(), len), 0);
        TcpStream::from_raw_fd(fd)
    };
    write!(
        s,
        "GET {X_PATH}?crc_token={token} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Ten CRC answers a minute per client, refilled evenly (one every 6 s): a
/// client past its ten is refused while another client is still answered,
/// and the first is answered again once its bucket refilled.
#[test]
fn x_crc_is_rate_limited_per_client() {
    let env = Env::new();
    let x = Running::start(x_cmd(&env, ANY_PORT));
    let addr = x.addr();
    let a = std::net::Ipv4Addr::new(127, 0, 0, 1);
    let b = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let answers: Vec<u16> = (0..12)
        .map(|_| crc_from(a, &addr, "crc-token-123"))
        .collect();
    assert_eq!(answers[..10], [200; 10], "{answers:?}");
    assert_eq!(answers[10..], [429, 429], "{answers:?}");
    // Another client has a bucket of its own.
    let answers: Vec<u16> = (0..11)
        .map(|_| crc_from(b, &addr, "crc-token-123"))
        .collect();
    assert_eq!(answers[..10], [200; 10], "client b: {answers:?}");
    assert_eq!(answers[10], 429, "client b: {answers:?}");
    // The first client's bucket refills: answered again within the minute,
    // one token at a time.
    let deadline = Instant::now() + Duration::from_secs(60);
    while crc_from(a, &addr, "crc-token-123") != 200 {
        assert!(
            Instant::now() < deadline,
            "client a was never answered again"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        crc_from(a, &addr, "crc-token-123"),
        429,
        "one token came back, not the whole bucket"
    );
    let (status, log) = x.stop();
    assert_eq!(status.code(), Some(0), "{log}");
}

#[test]
fn x_webhook_records_a_replayed_signed_body_once() {
    let env = Env::new();
    let x = Running::start(x_cmd(&env, ANY_PORT));
    let addr = x.addr();
    let payload = r#"{"for_user_id":"2244994945","tweet_create_events":[{"created_at":"Wed Oct 10 20:19:24 +0000 2018","id_str":"1050118621198921728","text":"once","user":{"id_str":"6253282","name":"Twitter API","screen_name":"TwitterAPI"},"lang":"en"}]}"#;
    let sig = python_signature(payload.as_bytes());
    for attempt in 0..3 {
        let (status, body) = http(
            &addr,
            "POST",
            X_PATH,
            &[("x-twitter-webhooks-signature", &sig)],
            payload.as_bytes(),
        );
        assert_eq!(status, 200, "attempt {attempt}: {body}");
    }
    let (status, log) = x.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    let records = env.records("o.jsonl");
    assert_eq!(
        records.len(),
        1,
        "the replay was recorded again: {records:?}"
    );
    assert_eq!(records[0]["id"], "twitter:1050118621198921728");
    assert_eq!(summary_in(&log).unwrap()["source"]["duplicates"], 2);
}

#[test]
fn sigterm_stops_a_webhook_held_by_an_unfinished_chunked_body() {
    for x in [false, true] {
        let env = Env::new();
        let mut cmd = if x {
            x_cmd(&env, ANY_PORT)
        } else {
            telegram_cmd(&env, ANY_PORT, &FILE_SINK)
        };
        cmd.args(["--shutdown-timeout", "1s"]);
        let running = Running::start(cmd);
        let addr = running.addr();
        let _held = unfinished_chunked_body(&addr, if x { X_PATH } else { "/telegram" });
        // The body's read timeout (30 s by default) is far above this bound:
        // only the shutdown timeout can end the wait in time.
        let (status, log) = running.stop_within(Duration::from_secs(20));
        assert_eq!(status.code(), Some(0), "x={x}: {log}");
        assert!(env.records("o.jsonl").is_empty());
    }
}

#[test]
fn slow_headers_and_slow_bodies_are_cut_by_their_read_timeouts() {
    let env = Env::new().config(
        "[webhook]\nheader_read_timeout = \"1s\"\nbody_read_timeout = \"1s\"\nmax_connections = 64\n",
    );
    let tg = Running::start(telegram_cmd(&env, ANY_PORT, &FILE_SINK));
    let addr = tg.addr();
    let mut slow_header = TcpStream::connect(&addr).unwrap();
    slow_header
        .write_all(b"POST /telegram HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut idle = TcpStream::connect(&addr).unwrap();
    let mut slow_body = unfinished_chunked_body(&addr, "/telegram");
    assert!(
        closed_by_peer(&mut slow_header, Duration::from_secs(20)),
        "a half-sent header kept its connection"
    );
    assert!(
        closed_by_peer(&mut idle, Duration::from_secs(20)),
        "an idle connection was kept"
    );
    slow_body
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = String::new();
    let _ = slow_body.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    // The server still serves.
    let update = r#"{"update_id":1,"message":{"message_id":1,"date":1795000000,"chat":{"id":1,"type":"private"},"text":"after"}}"#;
    assert_eq!(post_update(&addr, update).0, 200);
    let (status, log) = tg.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    assert_eq!(env.records("o.jsonl").len(), 1);
}

#[test]
fn the_connection_cap_sheds_idle_connections_and_a_valid_post_still_gets_through() {
    const CAP: usize = 8;
    const OPEN: usize = 20;
    let env = Env::new().config(&format!(
        "[webhook]\nmax_connections = {CAP}\nheader_read_timeout = \"60s\"\n"
    ));
    let tg = Running::start(telegram_cmd(&env, ANY_PORT, &FILE_SINK));
    let addr = tg.addr();
    let mut half_open: Vec<TcpStream> = (0..OPEN)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"POST /telegram HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    let update = r#"{"update_id":9,"message":{"message_id":9,"date":1795000000,"chat":{"id":1,"type":"private"},"text":"through the flood"}}"#;
    let (status, body) = post_update(&addr, update);
    assert_eq!(status, 200, "{body}");
    assert!(
        tg.wait_log("shedding connections", Duration::from_secs(20)),
        "nothing logged about shed connections:\n{}",
        tg.log()
    );
    // The oldest half-open connections were the ones closed to make room.
    for (i, s) in half_open.iter_mut().take(OPEN - CAP).enumerate() {
        assert!(
            closed_by_peer(s, Duration::from_secs(20)),
            "half-open connection {i} is still open"
        );
    }
    drop(half_open);
    let (status, log) = tg.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    let records = env.records("o.jsonl");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["text"], "through the flood");
}

/// Lines of the child's stdout, read on a thread from when this is called.
fn drain(stdout: ChildStdout) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect()
    })
}

#[test]
fn telegram_redeliveries_in_flight_and_after_a_late_write_are_recorded_once() {
    // The stdout sink writes into a pipe nobody reads yet: a sink that stays
    // busy until the test starts reading, so the ack comes after the 503.
    // The deprecated `[telegram]` spelling of `[webhook] ack_timeout` still works.
    let env = Env::new().config("[telegram]\nack_timeout = \"1s\"\n");
    let mut cmd = telegram_cmd(&env, ANY_PORT, &["--sink", "stdout"]);
    cmd.stdout(Stdio::piped());
    let mut tg = Running::start(cmd);
    let addr = tg.addr();
    let stdout = tg.child.stdout.take().unwrap();
    let big = "x".repeat(300_000);
    let update = format!(
        r#"{{"update_id":4242,"message":{{"message_id":42,"date":1795000000,"chat":{{"id":-7,"type":"group","title":"t"}},"text":"{big}"}}}}"#
    );
    let (status, body) = post_update(&addr, &update);
    assert_eq!(status, 503, "the sink cannot have confirmed yet: {body}");
    // Concurrent redeliveries while the first copy is still in flight.
    let redeliveries: Vec<_> = (0..3)
        .map(|_| {
            let (addr, update) = (addr.clone(), update.clone());
            std::thread::spawn(move || post_update(&addr, &update).0)
        })
        .collect();
    let answers: Vec<u16> = redeliveries
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(answers.iter().all(|s| *s == 503), "{answers:?}");
    // Let the write finish, then redeliver until Telegram would get its 200.
    let reader = drain(stdout);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = post_update(&addr, &update);
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "never confirmed");
    }
    let (status, log) = tg.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    let deprecation = "`[telegram] ack_timeout` is deprecated: write `ack_timeout` in `[webhook]`";
    assert_eq!(log.matches(deprecation).count(), 1, "{log}");
    let lines = reader.join().unwrap();
    let copies = lines
        .iter()
        .filter(|l| l.contains("\"telegram:-7:42\""))
        .count();
    assert_eq!(copies, 1, "update 4242 recorded {copies} times");
}

#[test]
fn telegram_answers_200_to_updates_it_dead_lettered() {
    let env = Env::new();
    let tg = Running::start(telegram_cmd(&env, ANY_PORT, &FILE_SINK));
    let addr = tg.addr();
    let (status, body) = post_update(&addr, "{not json");
    assert_eq!(status, 200, "{body}");
    let unusable = r#"{"update_id":31,"message":"not an object"}"#;
    for _ in 0..2 {
        let (status, body) = post_update(&addr, unusable);
        assert_eq!(status, 200, "{body}");
    }
    let (status, log) = tg.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    let summary = summary_in(&log).unwrap();
    assert_eq!(summary["source"]["malformed"], 2, "{summary}");
    let file = summary["dead_letter_file"].as_str().unwrap();
    assert_eq!(read_jsonl(std::path::Path::new(file)).len(), 2);
    assert!(env.records("o.jsonl").is_empty());
}

#[test]
fn telegram_secret_token_from_the_environment_is_trimmed() {
    let env = Env::new().with("TELEGRAM_SECRET_TOKEN", &format!("{SECRET}\n"));
    let mut cmd = env.cmd();
    cmd.args(["telegram", "--webhook", ANY_PORT])
        .args(FILE_SINK);
    let tg = Running::start(cmd);
    let addr = tg.addr();
    let update = r#"{"update_id":3,"message":{"message_id":3,"date":1795000000,"chat":{"id":1,"type":"private"},"text":"trimmed"}}"#;
    let (status, body) = post_update(&addr, update);
    assert_eq!(status, 200, "{body}");
    let (status, log) = tg.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    assert_eq!(env.records("o.jsonl").len(), 1);
}

#[test]
fn zero_webhook_limits_are_config_errors_with_file_and_line() {
    for (text, field) in [
        (
            "[telegram]\nmax_body_bytes = 0\n",
            "telegram.max_body_bytes",
        ),
        (
            "[webhook]\nmax_connections = 0\n",
            "webhook.max_connections",
        ),
        ("[webhook]\nmax_body_bytes = 0\n", "webhook.max_body_bytes"),
    ] {
        let env = Env::new().config(&format!("# limits\n{text}"));
        let out = env
            .cmd()
            .args(["telegram", "--webhook", ANY_PORT, "--secret-token", SECRET])
            .args(FILE_SINK)
            .args(["--duration", "2s"])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(78), "{err}");
        assert!(
            err.contains("ingest.toml line 3") && err.contains(field),
            "{err}"
        );
    }
}

#[test]
fn sigterm_stops_a_webhook_whose_log_reader_went_away() {
    // A supervisor's log pipe can die before the service: logging then fails,
    // and the signal must still stop the run.
    let env = Env::new();
    let mut child = env
        .cmd()
        .args(["telegram", "--webhook", ANY_PORT, "--secret-token", SECRET])
        .args(FILE_SINK)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("webhook listening") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no start");
    }
    drop(stderr);
    signal(&child, libc::SIGTERM);
    let status = wait_with_timeout(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
}
