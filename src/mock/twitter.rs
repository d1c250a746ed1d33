//! The mock X API v2: filtered-stream rules, the stream itself with scripted
//! faults, and `DELETE /2/connections/all`.
//!
//! Faults come from a TOML scenario (see `examples/scenario.toml`): one
//! `[[connection]]` table per connection attempt, in order; attempts past the
//! list get a healthy stream. `GET /mock/connections` returns what each
//! connection answered and which tweets it sent, for tests.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{MockError, MockServer};
use crate::sources::twitter::api::{CONNECTIONS_PATH, LiveRule, NewRule, RULES_PATH, STREAM_PATH};
use crate::sources::twitter::rules::MAX_RULE_CHARS;

/// What ends a scripted connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Keep streaming.
    #[default]
    None,
    /// End the body cleanly.
    Close,
    /// Send half of the next tweet's line, then end the body.
    CutMidLine,
    /// Send nothing more, not even keep-alives, and keep the connection open.
    Stall,
    /// Send X's `operational-disconnect` error line, then end the body.
    OperationalDisconnect,
}

/// One connection attempt's script.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionScript {
    /// Answer this status instead of a stream (401, 429, 503, …).
    pub status: u16,
    /// With 429: say `TooManyConnections` (another connection holds the stream).
    pub too_many_connections: bool,
    /// Wait this long before answering (a slow server).
    pub delay_ms: u64,
    /// Start by sending again the last N tweets already sent (what a reconnect or backfill does).
    pub duplicates: u64,
    /// Then send N tweets at once, unpaced.
    pub burst: u64,
    /// Then send this many paced tweets before the fault (absent: no limit).
    pub tweets: Option<u64>,
    /// What happens after `tweets`.
    pub fault: Fault,
}

impl Default for ConnectionScript {
    fn default() -> Self {
        ConnectionScript {
            status: 200,
            too_many_connections: false,
            delay_ms: 0,
            duplicates: 0,
            burst: 0,
            tweets: None,
            fault: Fault::None,
        }
    }
}

/// The scenario file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Tweets per second on a healthy connection; 0 = as fast as possible.
    pub rate: f64,
    /// Send `\r\n` after this many seconds without a tweet.
    pub keepalive_secs: f64,
    /// Stop producing tweets after this many in all (0 = never); keep-alives go on.
    pub total_tweets: u64,
    /// Start with these rules (`[[rule]] value, tag`), as if synced before.
    pub rule: Vec<NewRule>,
    /// Scripts for the first connection attempts, in order.
    pub connection: Vec<ConnectionScript>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            rate: 20.0,
            keepalive_secs: 20.0,
            total_tweets: 0,
            rule: Vec::new(),
            connection: Vec::new(),
        }
    }
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Self, MockError> {
        let s: Scenario = super::load_scenario(path)?;
        if !(s.rate >= 0.0
            && s.rate.is_finite()
            && s.keepalive_secs > 0.0
            && s.keepalive_secs.is_finite())
        {
            return Err(MockError::Scenario {
                path: path.to_owned(),
                message: "rate must be >= 0 and keepalive_secs > 0".into(),
            });
        }
        Ok(s)
    }
}

/// One connection attempt as the mock saw it.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionLog {
    pub index: usize,
    /// Milliseconds since the mock started.
    pub at_ms: u64,
    pub status: u16,
    pub fault: Fault,
    /// Tweet numbers sent whole on this connection: `[first, last]` of the fresh ones.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Tweet numbers sent again (duplicates).
    pub duplicate_seqs: Vec<u64>,
    /// The tweet cut mid-line, if any.
    pub cut_seq: Option<u64>,
}

struct Mock {
    scenario: Scenario,
    started: Instant,
    rules: Mutex<Vec<LiveRule>>,
    next_rule_id: AtomicU64,
    next_seq: AtomicU64,
    connections: Mutex<Vec<ConnectionLog>>,
    kill: Mutex<CancellationToken>,
    shutdown: CancellationToken,
    /// `DELETE /2/connections/all` calls.
    resets: AtomicU64,
}

/// The tweet id of tweet number `seq`.
pub fn tweet_id(seq: u64) -> String {
    (1_600_000_000_000_000_000u64 + seq).to_string()
}

const AUTHORS: [(&str, &str, &str); 8] = [
    ("2244994945", "X Developers", "XDevelopers"),
    ("1001", "Ada Lovelace", "ada"),
    ("1002", "أميرة حداد", "amira_h"),
    ("1003", "佐藤 健二", "kenji"),
    ("1004", "Zoë 🌻 Müller", "zoe_m"),
    ("1005", "Ivan Petrov", "ivan"),
    ("1006", "Noa Levi", "noa"),
    ("1007", "Data Bot 🤖", "databot"),
];
const TEXTS: [(&str, &str); 8] = [
    (
        "en",
        "Just shipped a new release of our data pipeline 🚀 #rustlang",
    ),
    ("ar", "مرحبا بالعالم — هذا اختبار للبث المباشر"),
    ("ja", "データ収集のテストです 📡"),
    ("de", "Grüße aus Köln! Streaming ohne Datenverlust 🙌"),
    ("ru", "Привет, мир! Потоковые данные идут без потерь."),
    ("he", "שלום עולם, זוהי בדיקה של זרם הנתונים"),
    (
        "en",
        "lol 😂 this is the best thread I've read all week 🧵👇 \"quoted\" and a\nnewline",
    ),
    (
        "es",
        "¿Alguien sabe si la API v2 sigue enviando keep-alives? 🤔",
    ),
];

impl Mock {
    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// One stream line (with `\r\n`) for tweet `seq`, matching `rules`.
    fn tweet_line(&self, seq: u64, rules: &[LiveRule], out: &mut Vec<u8>) {
        let (author_id, name, username) = AUTHORS[(seq % AUTHORS.len() as u64) as usize];
        let (lang, text) = TEXTS[(seq * 7 % TEXTS.len() as u64) as usize];
        let id = tweet_id(seq);
        let matching: Vec<serde_json::Value> = if rules.is_empty() {
            Vec::new()
        } else {
            let r = &rules[(seq % rules.len() as u64) as usize];
            vec![json!({"id": r.id, "tag": r.tag.clone().unwrap_or_default()})]
        };
        let line = json!({
            "data": {
                "id": id,
                "text": format!("{text} #{seq}"),
                "author_id": author_id,
                "created_at": crate::record::rfc3339(chrono::Utc::now()),
                "lang": lang,
                "conversation_id": id,
                "source": "ingest mock",
                "edit_history_tweet_ids": [id],
            },
            "includes": {"users": [{"id": author_id, "name": name, "username": username}]},
            "matching_rules": matching,
        });
        serde_json::to_writer(&mut *out, &line).expect("a JSON value serializes");
        out.extend_from_slice(b"\r\n");
    }
}

fn problem(status: StatusCode, title: &str, detail: &str, kind: &str) -> Response {
    let body = json!({"title": title, "detail": detail, "type": format!("https://api.twitter.com/2/problems/{kind}"), "status": status.as_u16()});
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| !t.trim().is_empty())
}

fn unauthorized() -> Response {
    problem(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "Unauthorized",
        "not-authorized",
    )
}

/// Starts the mock on `addr` (`127.0.0.1:0` picks a port).
pub async fn start(addr: &str, scenario: Scenario) -> Result<MockServer, MockError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| MockError::Bind {
            addr: addr.to_owned(),
            source,
        })?;
    let local: SocketAddr = listener.local_addr().map_err(|source| MockError::Bind {
        addr: addr.to_owned(),
        source,
    })?;
    let shutdown = CancellationToken::new();
    let initial: Vec<LiveRule> = scenario
        .rule
        .iter()
        .enumerate()
        .map(|(i, r)| LiveRule {
            id: (1_700_000_000_000_000_000u64 + i as u64).to_string(),
            value: r.value.clone(),
            tag: r.tag.clone(),
        })
        .collect();
    let mock = Arc::new(Mock {
        next_rule_id: AtomicU64::new(1_700_000_000_000_000_000 + initial.len() as u64),
        rules: Mutex::new(initial),
        scenario,
        started: Instant::now(),
        next_seq: AtomicU64::new(0),
        connections: Mutex::new(Vec::new()),
        kill: Mutex::new(shutdown.child_token()),
        shutdown: shutdown.clone(),
        resets: AtomicU64::new(0),
    });
    let app = Router::new()
        .route(STREAM_PATH, get(stream))
        .route(RULES_PATH, get(list_rules).post(change_rules))
        .route(CONNECTIONS_PATH, delete(kill_connections))
        .route("/mock/connections", get(connection_log))
        .route("/mock/resets", get(resets))
        .with_state(mock);
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(token.cancelled_owned())
            .await
    });
    info!(addr = %local, "mock X API listening");
    Ok(MockServer {
        addr: local,
        shutdown,
        task,
    })
}

async fn connection_log(State(mock): State<Arc<Mock>>) -> Response {
    let log = mock
        .connections
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    axum::Json(log).into_response()
}

async fn resets(State(mock): State<Arc<Mock>>) -> Response {
    axum::Json(json!({"resets": mock.resets.load(Ordering::Relaxed)})).into_response()
}

async fn kill_connections(State(mock): State<Arc<Mock>>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    mock.resets.fetch_add(1, Ordering::Relaxed);
    let mut kill = mock.kill.lock().unwrap_or_else(|p| p.into_inner());
    kill.cancel();
    *kill = mock.shutdown.child_token();
    axum::Json(json!({"data": {"killed_connections": true}})).into_response()
}

async fn list_rules(State(mock): State<Arc<Mock>>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let rules = mock.rules.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let meta =
        json!({"sent": crate::record::rfc3339(chrono::Utc::now()), "result_count": rules.len()});
    if rules.is_empty() {
        axum::Json(json!({"meta": meta})).into_response()
    } else {
        axum::Json(json!({"data": rules, "meta": meta})).into_response()
    }
}

#[derive(Deserialize)]
struct DryRun {
    #[serde(default)]
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    #[serde(default)]
    add: Option<Vec<NewRule>>,
    #[serde(default)]
    delete: Option<DeleteIds>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteIds {
    ids: Vec<String>,
}

/// Why X would refuse a rule value, if it would.
pub fn rule_problem(value: &str) -> Option<&'static str> {
    if value.trim().is_empty() {
        return Some("Rules must contain a non-empty value");
    }
    if value.chars().count() > MAX_RULE_CHARS {
        return Some("Rule value is too long");
    }
    let mut depth: i64 = 0;
    let mut in_quotes = false;
    for c in value.chars() {
        match c {
            '"' => in_quotes = !in_quotes,
            '(' if !in_quotes => depth += 1,
            ')' if !in_quotes => {
                depth -= 1;
                if depth < 0 {
                    return Some("Rules must contain balanced parentheses");
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Some("Rules must contain balanced parentheses");
    }
    if in_quotes {
        return Some("Rules must contain balanced quotes");
    }
    None
}

async fn change_rules(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    Query(q): Query<DryRun>,
    body: Bytes,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let sent = crate::record::rfc3339(chrono::Utc::now());
    let body: ChangeBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Invalid Request",
                &format!("One or more parameters to your request was invalid: {e}"),
                "invalid-request",
            );
        }
    };
    let dry_run = q.dry_run.unwrap_or(false);
    match (body.add, body.delete) {
        (Some(add), None) => {
            let mut rules = mock.rules.lock().unwrap_or_else(|p| p.into_inner());
            let invalid: Vec<serde_json::Value> = add
                .iter()
                .filter_map(|r| rule_problem(&r.value).map(|d| json!({"value": r.value, "details": [d], "title": "UnprocessableEntity", "type": "https://api.twitter.com/2/problems/invalid-rules"})))
                .collect();
            if !invalid.is_empty() {
                let body = json!({"errors": invalid, "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.", "type": "https://api.twitter.com/2/problems/invalid-request"});
                return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
            }
            let mut seen: HashSet<String> = rules.iter().map(|r| r.value.clone()).collect();
            let mut created = Vec::new();
            let mut errors = Vec::new();
            for r in add {
                if !seen.insert(r.value.clone()) {
                    let id = rules
                        .iter()
                        .find(|l| l.value == r.value)
                        .map(|l| l.id.clone())
                        .unwrap_or_default();
                    errors.push(json!({"value": r.value, "id": id, "title": "DuplicateRule", "type": "https://api.twitter.com/2/problems/duplicate-rules"}));
                    continue;
                }
                let id = mock
                    .next_rule_id
                    .fetch_add(1, Ordering::Relaxed)
                    .to_string();
                created.push(LiveRule {
                    id,
                    value: r.value,
                    tag: r.tag,
                });
            }
            let summary = json!({"created": if dry_run { 0 } else { created.len() }, "not_created": errors.len(), "valid": created.len(), "invalid": errors.len()});
            let data = created.clone();
            if !dry_run {
                rules.extend(created);
            }
            let mut body = json!({"meta": {"sent": sent, "summary": summary}});
            if !data.is_empty() {
                body["data"] = json!(data);
            }
            if !errors.is_empty() {
                body["errors"] = json!(errors);
            }
            let status = if dry_run || data.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            (status, axum::Json(body)).into_response()
        }
        (None, Some(del)) => {
            let mut rules = mock.rules.lock().unwrap_or_else(|p| p.into_inner());
            let before = rules.len();
            if !dry_run {
                rules.retain(|r| !del.ids.contains(&r.id));
            }
            let deleted = before - rules.len();
            axum::Json(json!({"meta": {"sent": sent, "summary": {"deleted": deleted, "not_deleted": del.ids.len() - deleted}}})).into_response()
        }
        _ => problem(
            StatusCode::BAD_REQUEST,
            "Invalid Request",
            "Give exactly one of `add` or `delete`.",
            "invalid-request",
        ),
    }
}

async fn stream(State(mock): State<Arc<Mock>>, headers: HeaderMap) -> Response {
    let index;
    let script;
    {
        let mut log = mock.connections.lock().unwrap_or_else(|p| p.into_inner());
        index = log.len();
        script = mock
            .scenario
            .connection
            .get(index)
            .cloned()
            .unwrap_or_default();
        log.push(ConnectionLog {
            index,
            at_ms: mock.elapsed_ms(),
            status: script.status,
            fault: script.fault,
            first_seq: None,
            last_seq: None,
            duplicate_seqs: Vec::new(),
            cut_seq: None,
        });
    }
    if script.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(script.delay_ms)).await;
    }
    let set_status = |status: u16| {
        mock.connections.lock().unwrap_or_else(|p| p.into_inner())[index].status = status;
    };
    if !authorized(&headers) {
        set_status(401);
        return unauthorized();
    }
    match script.status {
        200 => {}
        401 => return unauthorized(),
        403 => {
            return problem(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "Your client app is not enrolled for this endpoint.",
                "client-forbidden",
            );
        }
        429 if script.too_many_connections => {
            let body = json!({"title": "ConnectionException", "detail": "This stream is currently at the maximum allowed connection limit.", "connection_issue": "TooManyConnections", "type": "https://api.twitter.com/2/problems/streaming-connection"});
            return (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        }
        429 => {
            return problem(
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests",
                "Too Many Requests",
                "usage-capped",
            );
        }
        s => {
            let status = StatusCode::from_u16(s).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return problem(
                status,
                status.canonical_reason().unwrap_or("Error"),
                "Scripted failure",
                "service-unavailable",
            );
        }
    }
    let rules = mock.rules.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if rules.is_empty() {
        set_status(409);
        return problem(
            StatusCode::CONFLICT,
            "ConnectionException",
            "There are no rules on this stream; add rules before connecting.",
            "streaming-connection",
        );
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let kill = mock.kill.lock().unwrap_or_else(|p| p.into_inner()).clone();
    tokio::spawn(produce(mock.clone(), index, script, rules, tx, kill));
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-rate-limit-limit", "50")
        .header("x-rate-limit-remaining", "49")
        .body(body)
        .expect("a valid response")
}

/// Writes one connection's body.
async fn produce(
    mock: Arc<Mock>,
    index: usize,
    script: ConnectionScript,
    rules: Vec<LiveRule>,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    kill: CancellationToken,
) {
    let record = |f: &dyn Fn(&mut ConnectionLog)| {
        let mut log = mock.connections.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut log[index]);
    };
    let send = |bytes: Vec<u8>| {
        let tx = tx.clone();
        let kill = kill.clone();
        async move {
            tokio::select! {
                _ = kill.cancelled() => false,
                r = tx.send(Ok(Bytes::from(bytes))) => r.is_ok(),
            }
        }
    };
    let mut buf = Vec::with_capacity(64 * 1024);
    // Duplicates: the last N tweets sent before this connection.
    let next = mock.next_seq.load(Ordering::Relaxed);
    let dups: Vec<u64> = (next.saturating_sub(script.duplicates)..next).collect();
    for &seq in &dups {
        mock.tweet_line(seq, &rules, &mut buf);
    }
    if !dups.is_empty() {
        if !send(std::mem::take(&mut buf)).await {
            return;
        }
        record(&|l| l.duplicate_seqs.extend(&dups));
    }
    let total = mock.scenario.total_tweets;
    let take_seq = || {
        let seq = mock.next_seq.fetch_add(1, Ordering::Relaxed);
        (total == 0 || seq < total).then_some(seq)
    };
    let mark_sent = |first: u64, last: u64| {
        record(&|l| {
            l.first_seq.get_or_insert(first);
            l.last_seq = Some(last);
        })
    };
    // Burst.
    let mut i = 0;
    while i < script.burst {
        let Some(first) = take_seq() else { break };
        let mut last = first;
        mock.tweet_line(first, &rules, &mut buf);
        i += 1;
        while i < script.burst && buf.len() < 60 * 1024 {
            let Some(seq) = take_seq() else { break };
            mock.tweet_line(seq, &rules, &mut buf);
            last = seq;
            i += 1;
        }
        if !send(std::mem::take(&mut buf)).await {
            return;
        }
        mark_sent(first, last);
    }
    // Paced tweets, keep-alives, then the fault.
    let limit = script.tweets.unwrap_or(u64::MAX);
    let mut sent: u64 = 0;
    let start = Instant::now();
    let keepalive = Duration::from_secs_f64(mock.scenario.keepalive_secs);
    let mut last_write = Instant::now();
    let rate = mock.scenario.rate;
    let mut exhausted = false;
    while sent < limit {
        let due = if rate == 0.0 {
            u64::MAX
        } else {
            (start.elapsed().as_secs_f64() * rate) as u64 + 1
        };
        let mut first = None;
        let mut last = 0;
        while sent < limit && sent < due && buf.len() < 60 * 1024 && !exhausted {
            match take_seq() {
                Some(seq) => {
                    mock.tweet_line(seq, &rules, &mut buf);
                    first.get_or_insert(seq);
                    last = seq;
                    sent += 1;
                }
                None => exhausted = true,
            }
        }
        if let Some(first) = first {
            if !send(std::mem::take(&mut buf)).await {
                return;
            }
            mark_sent(first, last);
            last_write = Instant::now();
            continue;
        }
        if last_write.elapsed() >= keepalive {
            if !send(b"\r\n".to_vec()).await {
                return;
            }
            last_write = Instant::now();
        }
        let wait = if rate == 0.0 || exhausted {
            keepalive
        } else {
            Duration::from_secs_f64((1.0 / rate).min(keepalive.as_secs_f64()))
        };
        let wait = wait
            .min(keepalive.saturating_sub(last_write.elapsed()))
            .max(Duration::from_millis(1));
        tokio::select! {
            _ = kill.cancelled() => return,
            _ = tx.closed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    match script.fault {
        Fault::None | Fault::Close => {}
        Fault::CutMidLine => {
            if let Some(seq) = take_seq() {
                mock.tweet_line(seq, &rules, &mut buf);
                buf.truncate(buf.len() / 2);
                send(std::mem::take(&mut buf)).await;
                record(&|l| l.cut_seq = Some(seq));
            }
        }
        Fault::Stall => {
            tokio::select! {
                _ = kill.cancelled() => {}
                _ = tx.closed() => {}
            }
        }
        Fault::OperationalDisconnect => {
            let line = json!({"errors": [{"title": "operational-disconnect", "disconnect_type": "UpstreamOperationalDisconnect", "detail": "This stream has been disconnected upstream for operational reasons.", "type": "https://api.twitter.com/2/problems/operational-disconnect"}]});
            send(format!("{line}\r\n").into_bytes()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_values_are_validated_like_x() {
        assert!(rule_problem("").is_some());
        assert!(rule_problem("   ").is_some());
        assert!(
            rule_problem("(cats OR dogs")
                .unwrap()
                .contains("parentheses")
        );
        assert!(rule_problem("cats)").unwrap().contains("parentheses"));
        assert!(rule_problem("\"open quote").unwrap().contains("quotes"));
        assert!(
            rule_problem(&"a".repeat(1025))
                .unwrap()
                .contains("too long")
        );
        assert!(rule_problem("\"(not a paren\" lang:en").is_none());
        assert!(rule_problem("(a b) OR c").is_none());
    }

    #[test]
    fn scenario_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(&p, "rate = 5.0\n[[connection]]\nstatus = 503\n[[connection]]\ntweets = 3\nfault = \"cut_mid_line\"\n").unwrap();
        let s = Scenario::load(&p).unwrap();
        assert_eq!(s.connection.len(), 2);
        assert_eq!(s.connection[1].fault, Fault::CutMidLine);
        std::fs::write(&p, "rate = 5.0\n[[connection]]\nfault = \"explode\"\n").unwrap();
        let err = Scenario::load(&p).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("explode"), "{err}");
        std::fs::write(&p, "rate = -1.0\n").unwrap();
        assert!(Scenario::load(&p).is_err());
        std::fs::write(&p, "rat = 1.0\n").unwrap();
        assert!(
            Scenario::load(&p)
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );
    }

    #[test]
    fn the_example_scenario_parses() {
        Scenario::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/scenario.toml"
        )))
        .unwrap();
    }
}
