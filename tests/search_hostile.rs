//! `ingest twitter-search` against a hostile search server (a tiny HTTP
//! server in this file, scripted per call): next_tokens that repeat or cycle,
//! pages of posts already received, ids that are not post ids, a token no URL
//! can carry, a 429 whose reset is already past, and a checkpoint edited by hand.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::*;

const TOKEN: &str = "test-token-hostile-search";
const ENDPOINT: &str = "/2/tweets/search/recent";

/// One answer: status, extra headers, body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn page(body: String) -> Reply {
        Reply {
            status: 200,
            headers: Vec::new(),
            body,
        }
    }
}

/// A call the server saw: when (since the server started) and its query parameters.
#[derive(Debug, Clone)]
struct Call {
    at: Duration,
    params: Vec<(String, String)>,
}

impl Call {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

type Script = dyn Fn(usize, &Call) -> Reply + Send + Sync;

/// The hostile server: answers call `n` (0-based) with `script(n, call)`.
struct Hostile {
    url: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Hostile {
    fn start(script: impl Fn(usize, &Call) -> Reply + Send + Sync + 'static) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let started = Instant::now();
        let log = calls.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    continue;
                }
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                let target = first.split(' ').nth(1).unwrap_or("").to_owned();
                let query = target.split_once('?').map_or("", |(_, q)| q);
                let call = Call {
                    at: started.elapsed(),
                    params: query
                        .split('&')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (decode(k), decode(v)))
                        .collect(),
                };
                let n = {
                    let mut log = log.lock().unwrap();
                    log.push(call.clone());
                    log.len() - 1
                };
                let reply = script(n, &call);
                let mut head = format!(
                    "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                    reply.status,
                    reply.body.len()
                );
                for (k, v) in &reply.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(reply.body.as_bytes());
            }
        });
        Hostile { url, calls }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

/// Percent-decoding of a query part (`+` is a space).
fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A search page holding posts `ids` (newest first) and `next_token`.
fn page(ids: &[u64], next_token: Option<&str>) -> String {
    let data: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id.to_string(), "text": format!("post {id}"), "author_id": "42"}))
        .collect();
    let mut meta = json!({"result_count": ids.len()});
    if let (Some(newest), Some(oldest)) = (ids.first(), ids.last()) {
        meta["newest_id"] = json!(newest.to_string());
        meta["oldest_id"] = json!(oldest.to_string());
    }
    if let Some(t) = next_token {
        meta["next_token"] = json!(t);
    }
    json!({"data": data, "includes": {"users": [{"id": "42", "name": "N", "username": "n"}]}, "meta": meta})
        .to_string()
}

/// Posts `from` down to `from - n + 1`.
fn posts(from: u64, n: u64) -> Vec<u64> {
    (0..n).map(|i| from - i).collect()
}

fn new_env() -> Env {
    Env::new().with("TWITTER_BEARER_TOKEN", TOKEN)
}

fn search(env: &Env, server: &Hostile, extra: &[&str]) -> std::process::Output {
    env.cmd()
        .args(["twitter-search", "--twitter-api-base", &server.url])
        .args([
            "--query",
            "cats",
            "--sink",
            "file",
            "--file-path",
            "o.jsonl",
        ])
        .args(["--summary", "--duration", "60s"])
        .args(extra)
        .output()
        .unwrap()
}

fn ids(env: &Env) -> Vec<String> {
    env.records("o.jsonl")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The search checkpoint files in the state dir, with their text.
fn checkpoints(env: &Env) -> Vec<(std::path::PathBuf, String)> {
    let Ok(dir) = std::fs::read_dir(env.path("state")) else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let p = e.ok()?.path();
        let name = p.file_name()?.to_str()?.to_owned();
        (name.starts_with("twitter-search-") && name.ends_with(".json"))
            .then(|| (p.clone(), std::fs::read_to_string(&p).unwrap()))
    })
    .collect()
}

fn assert_exit(out: &std::process::Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", stderr(out));
}

/// A server that answers the same ten posts with `next_token: "SAME"` (and,
/// so that a client that follows it forever still ends, a last page after 30
/// calls): the second page ends the pass, exit 1 naming the endpoint, and the
/// checkpoint never holds the token; the next run starts from `since_id`.
#[test]
fn a_repeated_next_token_ends_the_pass_with_exit_1_and_is_not_kept() {
    let env = new_env();
    let server = Hostile::start(|n, _| {
        let token = (n < 30).then_some("SAME");
        Reply::page(page(&posts(1_000_010, 10), token))
    });
    let out = search(&env, &server, &[]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains(ENDPOINT) && err.contains("next_token"),
        "{err}"
    );
    assert_eq!(server.calls().len(), 2, "{err}");
    assert_eq!(ids(&env).len(), 10, "each post once");
    assert_eq!(summary(&out)["source"]["duplicates"], 10, "{err}");
    let saved = checkpoints(&env);
    assert_eq!(saved.len(), 1);
    assert!(!saved[0].1.contains("SAME"), "{}", saved[0].1);
    let out = search(&env, &server, &[]);
    assert_exit(&out, 1);
    let rerun = &server.calls()[2];
    assert_eq!(rerun.param("next_token"), None, "{rerun:?}");
    assert_eq!(rerun.param("since_id"), Some("1000010"), "{rerun:?}");
}

/// A cycle of tokens A → B → A over pages of new posts: the third page ends the pass.
#[test]
fn a_cycle_of_next_tokens_ends_the_pass() {
    let env = new_env();
    let server = Hostile::start(|n, _| {
        let token = match n {
            _ if n >= 30 => None,
            _ if n % 2 == 0 => Some("A"),
            _ => Some("B"),
        };
        Reply::page(page(&posts(2_000_000 - 10 * n as u64, 10), token))
    });
    let out = search(&env, &server, &[]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains(ENDPOINT) && err.contains("after 3 pages"),
        "{err}"
    );
    assert_eq!(server.calls().len(), 3);
    assert_eq!(ids(&env).len(), 30);
    assert!(!checkpoints(&env)[0].1.contains("\"A\""));
}

/// New tokens every time, but the same posts: a page of posts the run has
/// already received ends the pass; duplicates within a run are dropped and counted.
#[test]
fn pages_of_posts_already_received_are_dropped_as_duplicates_and_end_the_pass() {
    let env = new_env();
    let server = Hostile::start(|n, _| {
        let token = format!("T{n}");
        Reply::page(page(&posts(3_000_010, 10), (n < 30).then_some(&token)))
    });
    let out = search(&env, &server, &[]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains(ENDPOINT) && err.contains("already received"),
        "{err}"
    );
    assert_eq!(server.calls().len(), 2);
    assert_eq!(ids(&env).len(), 10);

    // Overlapping pages: the overlap is delivered once and counted.
    let env = new_env();
    let server = Hostile::start(|n, _| match n {
        0 => Reply::page(page(&posts(4_000_020, 10), Some("next"))),
        _ => Reply::page(page(&posts(4_000_013, 10), None)),
    });
    let out = search(&env, &server, &[]);
    assert_exit(&out, 0);
    let got = ids(&env);
    assert_eq!(got.len(), 17, "{got:?}");
    assert_eq!(counts(&got).values().max(), Some(&1));
    assert_eq!(summary(&out)["source"]["duplicates"], 3);
}

/// Ids that are not post ids make a page unusable: five in a row end the run;
/// nothing of them is delivered or kept as a `since_id`.
#[test]
fn ids_that_are_not_post_ids_make_pages_unusable() {
    for bad in [
        json!({"data": [{"id": "../../x", "text": "t"}], "meta": {"result_count": 1}}),
        json!({"data": [{"id": "7", "text": "t"}], "meta": {"result_count": 1, "newest_id": "abc&x=1", "oldest_id": "7"}}),
        json!({"data": [{"id": "7", "text": "t"}], "meta": {"result_count": 1, "newest_id": "7", "oldest_id": "12345678901234567890"}}),
    ] {
        let env = new_env();
        let body = bad.to_string();
        let server = Hostile::start(move |_, _| Reply::page(body.clone()));
        let out = search(&env, &server, &[]);
        assert_exit(&out, 1);
        let err = stderr(&out);
        assert!(
            err.contains("5 unusable search pages") && err.contains("not a post id"),
            "{bad}: {err}"
        );
        assert_eq!(server.calls().len(), 5);
        assert!(ids(&env).is_empty());
        assert!(checkpoints(&env).iter().all(|(_, t)| !t.contains("abc")));
    }
}

/// A 200 000-character `next_token` is an unusable page, not a network error
/// retried for as long as the run lasts.
#[test]
fn a_token_no_url_can_carry_counts_as_an_unusable_page() {
    let env = new_env();
    let long = "t".repeat(200_000);
    let server = Hostile::start(move |_, _| Reply::page(page(&posts(5_000_010, 10), Some(&long))));
    let out = search(&env, &server, &[]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("unusable search pages") && err.contains("next_token"),
        "{err}"
    );
    assert!(!err.contains("cannot reach"), "{err}");
    assert_eq!(server.calls().len(), 5);
}

/// A checkpoint edited by hand: an error naming the file and the way out,
/// before any call to X.
#[test]
fn a_checkpoint_with_a_bad_id_names_the_file_and_how_to_reset_it() {
    let env = new_env();
    let server = Hostile::start(|_, _| Reply::page(page(&posts(6_000_010, 10), None)));
    assert_exit(&search(&env, &server, &[]), 0);
    let (path, text) = checkpoints(&env).pop().unwrap();
    assert!(text.contains("6000010"), "{text}");
    std::fs::write(&path, text.replace("6000010", "abc&x=1")).unwrap();
    let out = search(&env, &server, &[]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains(&path.display().to_string())
            && err.contains("newest_id")
            && err.contains("delete the file")
            && !err.contains("X refused"),
        "{err}"
    );
    assert_eq!(server.calls().len(), 1, "no call with the bad id");
}

/// A 429 whose reset is already past: the waits grow (1 s, 2 s, 4 s), not a
/// call a second for as long as the run lasts.
#[test]
fn a_429_whose_reset_is_past_backs_off_growing() {
    let env = new_env();
    let server = Hostile::start(|n, _| {
        if n < 4 {
            let past = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                - 100;
            Reply {
                status: 429,
                headers: vec![
                    ("x-rate-limit-remaining".into(), "0".into()),
                    ("x-rate-limit-reset".into(), past.to_string()),
                ],
                body: r#"{"title":"Too Many Requests","detail":"Too Many Requests","type":"about:blank","status":429}"#.into(),
            }
        } else {
            Reply::page(page(&posts(7_000_010, 10), None))
        }
    });
    let out = search(&env, &server, &[]);
    assert_exit(&out, 0);
    assert_eq!(ids(&env).len(), 10);
    let at: Vec<Duration> = server.calls().iter().map(|c| c.at).collect();
    assert_eq!(at.len(), 5);
    // Lower bounds only: each wait is at least its backoff.
    for (i, least) in [(1, 1), (2, 2), (3, 4), (4, 8)] {
        assert!(
            at[i] - at[i - 1] >= Duration::from_secs(least),
            "wait {i} shorter than {least} s: {at:?}"
        );
    }
}
