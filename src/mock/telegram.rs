//! The mock Telegram Bot API: a queue of synthetic updates across chats, Bot API
//! offset semantics, webhook methods, and scripted faults for `getUpdates`.
//!
//! Scenario (TOML, every field optional): `updates` queued at start, `rate`
//! new updates per second, `total_updates` cap, `token` (only this token is
//! accepted), `webhook_url` (start with a webhook set), and `[[call]]` tables
//! scripting the first `getUpdates` answers in order: `status` (200, 409, 429,
//! 500…), `kind = "webhook" | "other_poller"` for 409, `retry_after` for 429,
//! `delay_ms` for a slow answer. `GET /mock/state` shows the queue and calls.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{MockError, MockServer};

/// One scripted `getUpdates` answer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallScript {
    pub status: u16,
    /// With 409: `webhook` (a webhook is set) or `other_poller`.
    pub kind: Option<String>,
    /// With 429: seconds to wait.
    pub retry_after: u64,
    pub delay_ms: u64,
}

impl Default for CallScript {
    fn default() -> Self {
        CallScript {
            status: 200,
            kind: None,
            retry_after: 1,
            delay_ms: 0,
        }
    }
}

/// The scenario file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramScenario {
    pub updates: u64,
    pub rate: f64,
    pub total_updates: u64,
    pub token: Option<String>,
    pub webhook_url: Option<String>,
    pub call: Vec<CallScript>,
}

impl Default for TelegramScenario {
    fn default() -> Self {
        TelegramScenario {
            updates: 40,
            rate: 0.0,
            total_updates: 0,
            token: None,
            webhook_url: None,
            call: Vec::new(),
        }
    }
}

impl TelegramScenario {
    pub fn load(path: &Path) -> Result<Self, MockError> {
        let s: TelegramScenario = super::load_scenario(path)?;
        if !(s.rate >= 0.0 && s.rate.is_finite()) {
            return Err(MockError::Scenario {
                path: path.to_owned(),
                message: "rate must be >= 0".into(),
            });
        }
        Ok(s)
    }
}

/// The first update id the mock hands out.
pub const FIRST_UPDATE_ID: i64 = 500_000;

/// The chats updates rotate through: (id, type, title).
pub const CHATS: [(i64, &str, &str); 4] = [
    (1001, "private", "Ada"),
    (-4001, "group", "Data team"),
    (-1_002_001, "supergroup", "Researchers 🔬"),
    (-1_003_001, "channel", "Newsroom"),
];

#[derive(Debug, Clone, Serialize)]
struct CallLog {
    index: usize,
    at_ms: u64,
    method: String,
    status: u16,
    offset: Option<i64>,
}

struct Inner {
    queue: VecDeque<(i64, String)>,
    produced: u64,
    confirmed_below: i64,
    webhook_url: String,
    calls: Vec<CallLog>,
    get_updates_calls: usize,
}

struct Mock {
    scenario: TelegramScenario,
    started: Instant,
    inner: Mutex<Inner>,
    arrived: Notify,
}

/// Update number `n` (update_id = FIRST_UPDATE_ID + n) as JSON.
pub fn synthetic_update(n: u64) -> String {
    let update_id = FIRST_UPDATE_ID + n as i64;
    let (chat_id, kind, title) = CHATS[(n % 4) as usize];
    let message_id = 100 + (n / 4) as i64;
    let date = 1_795_000_000 + n as i64;
    let chat = if kind == "private" {
        json!({"id": chat_id, "type": kind, "first_name": title, "username": "ada"})
    } else {
        json!({"id": chat_id, "type": kind, "title": title})
    };
    let mut message = json!({"message_id": message_id, "date": date, "chat": chat});
    if kind == "channel" {
        message["sender_chat"] = chat.clone();
    } else {
        message["from"] = json!({"id": 7000 + (n % 5), "is_bot": false, "first_name": "User", "last_name": (n % 5).to_string(), "language_code": "en"});
    }
    let texts = [
        "hello 👋",
        "مرحبا",
        "данные без потерь",
        "データ 📡",
        "line one\nline \"two\"",
    ];
    if n % 5 == 3 {
        message["photo"] =
            json!([{"file_id": "AgAD", "file_unique_id": "AQAD", "width": 90, "height": 90}]);
        message["caption"] = json!(format!("caption #{n}"));
    } else {
        message["text"] = json!(format!("{} #{n}", texts[(n % 5) as usize]));
    }
    let field = match (n % 7 == 6, kind == "channel") {
        (false, false) => "message",
        (false, true) => "channel_post",
        (true, false) => "edited_message",
        (true, true) => "edited_channel_post",
    };
    if field.starts_with("edited") {
        message["edit_date"] = json!(date + 60);
    }
    json!({"update_id": update_id, field: message}).to_string()
}

impl Mock {
    fn produce(&self, inner: &mut Inner, count: u64) {
        for _ in 0..count {
            if self.scenario.total_updates > 0 && inner.produced >= self.scenario.total_updates {
                return;
            }
            let n = inner.produced;
            inner
                .queue
                .push_back((FIRST_UPDATE_ID + n as i64, synthetic_update(n)));
            inner.produced += 1;
        }
        self.arrived.notify_waiters();
    }

    fn log(&self, inner: &mut Inner, method: &str, status: u16, offset: Option<i64>) {
        let index = inner.calls.len();
        inner.calls.push(CallLog {
            index,
            at_ms: self.started.elapsed().as_millis() as u64,
            method: method.to_owned(),
            status,
            offset,
        });
    }
}

fn ok(result: Value) -> Response {
    axum::Json(json!({"ok": true, "result": result})).into_response()
}

fn fail(code: u16, description: &str, retry_after: Option<u64>) -> Response {
    let mut body = json!({"ok": false, "error_code": code, "description": description});
    if let Some(r) = retry_after {
        body["parameters"] = json!({"retry_after": r});
    }
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

/// Starts the mock on `addr`.
pub async fn start(addr: &str, scenario: TelegramScenario) -> Result<MockServer, MockError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| MockError::Bind {
            addr: addr.to_owned(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| MockError::Bind {
        addr: addr.to_owned(),
        source,
    })?;
    let shutdown = CancellationToken::new();
    let mock = Arc::new(Mock {
        inner: Mutex::new(Inner {
            queue: VecDeque::new(),
            produced: 0,
            confirmed_below: 0,
            webhook_url: scenario.webhook_url.clone().unwrap_or_default(),
            calls: Vec::new(),
            get_updates_calls: 0,
        }),
        scenario,
        started: Instant::now(),
        arrived: Notify::new(),
    });
    {
        let mut inner = mock.inner.lock().unwrap_or_else(|p| p.into_inner());
        mock.produce(&mut inner, mock.scenario.updates);
    }
    if mock.scenario.rate > 0.0 {
        let (m, token) = (mock.clone(), shutdown.clone());
        tokio::spawn(async move {
            let period = Duration::from_secs_f64(1.0 / m.scenario.rate);
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tick.tick() => {
                        let mut inner = m.inner.lock().unwrap_or_else(|p| p.into_inner());
                        m.produce(&mut inner, 1);
                    }
                }
            }
        });
    }
    let app = Router::new()
        .route("/mock/state", get(state))
        .route("/{bot}/{method}", any(method))
        .with_state(mock);
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(token.cancelled_owned())
            .await
    });
    info!(addr = %local, "mock Telegram Bot API listening");
    Ok(MockServer {
        addr: local,
        shutdown,
        task,
    })
}

async fn state(State(mock): State<Arc<Mock>>) -> Response {
    let inner = mock.inner.lock().unwrap_or_else(|p| p.into_inner());
    axum::Json(json!({
        "pending": inner.queue.len(),
        "produced": inner.produced,
        "confirmed_below": inner.confirmed_below,
        "webhook_url": inner.webhook_url,
        "calls": inner.calls,
    }))
    .into_response()
}

fn valid_token(t: &str) -> bool {
    t.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !secret.is_empty()
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

async fn method(
    State(mock): State<Arc<Mock>>,
    UrlPath((bot, method)): UrlPath<(String, String)>,
    Query(query): Query<serde_json::Map<String, Value>>,
    body: Bytes,
) -> Response {
    let Some(token) = bot.strip_prefix("bot").filter(|t| valid_token(t)) else {
        return fail(404, "Not Found", None);
    };
    if mock
        .scenario
        .token
        .as_deref()
        .is_some_and(|want| want != token)
    {
        return fail(401, "Unauthorized", None);
    }
    // Parameters: a JSON body, else the query string (as curl users send them).
    let params: serde_json::Map<String, Value> = if body.is_empty() {
        query
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    v.as_str()
                        .and_then(|s| serde_json::from_str(s).ok())
                        .unwrap_or(v),
                )
            })
            .collect()
    } else {
        match serde_json::from_slice(&body) {
            Ok(p) => p,
            Err(_) => return fail(400, "Bad Request: can't parse JSON object", None),
        }
    };
    let int = |k: &str| params.get(k).and_then(Value::as_i64);
    match method.as_str() {
        "getMe" => ok(
            json!({"id": 123456, "is_bot": true, "first_name": "Mock Bot", "username": "ingest_mock_bot"}),
        ),
        "getWebhookInfo" => {
            let inner = mock.inner.lock().unwrap_or_else(|p| p.into_inner());
            ok(
                json!({"url": inner.webhook_url, "has_custom_certificate": false, "pending_update_count": inner.queue.len()}),
            )
        }
        "setWebhook" => {
            let url = params
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let mut inner = mock.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner.webhook_url = url.clone();
            mock.log(&mut inner, "setWebhook", 200, None);
            ok(json!(true))
        }
        "deleteWebhook" => {
            let mut inner = mock.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner.webhook_url.clear();
            if params.get("drop_pending_updates").and_then(Value::as_bool) == Some(true) {
                inner.queue.clear();
            }
            mock.log(&mut inner, "deleteWebhook", 200, None);
            ok(json!(true))
        }
        "getUpdates" => get_updates(mock, int("offset"), int("limit"), int("timeout")).await,
        _ => fail(404, "Not Found: method not found", None),
    }
}

async fn get_updates(
    mock: Arc<Mock>,
    offset: Option<i64>,
    limit: Option<i64>,
    timeout: Option<i64>,
) -> Response {
    let script = {
        let mut inner = mock.inner.lock().unwrap_or_else(|p| p.into_inner());
        let i = inner.get_updates_calls;
        inner.get_updates_calls += 1;
        mock.scenario.call.get(i).cloned().unwrap_or_default()
    };
    if script.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(script.delay_ms)).await;
    }
    let answer = |status: u16| {
        let mut inner = mock.inner.lock().unwrap_or_else(|p| p.into_inner());
        mock.log(&mut inner, "getUpdates", status, offset);
    };
    match script.status {
        200 => {}
        409 if script.kind.as_deref() == Some("other_poller") => {
            answer(409);
            return fail(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                None,
            );
        }
        429 => {
            answer(429);
            return fail(
                429,
                &format!("Too Many Requests: retry after {}", script.retry_after),
                Some(script.retry_after),
            );
        }
        s if s != 409 => {
            answer(s);
            return fail(s, "Internal Server Error", None);
        }
        _ => {
            answer(409);
            return fail(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
                None,
            );
        }
    }
    let limit = limit.unwrap_or(100).clamp(1, 100) as usize;
    let deadline = Instant::now() + Duration::from_secs(timeout.unwrap_or(0).clamp(0, 50) as u64);
    loop {
        let waiter = mock.arrived.notified();
        {
            let mut inner = mock.inner.lock().unwrap_or_else(|p| p.into_inner());
            if !inner.webhook_url.is_empty() {
                mock.log(&mut inner, "getUpdates", 409, offset);
                return fail(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
                    None,
                );
            }
            match offset {
                // A higher offset confirms every update below it.
                Some(o) if o > 0 => {
                    while inner.queue.front().is_some_and(|(id, _)| *id < o) {
                        inner.queue.pop_front();
                    }
                    inner.confirmed_below = inner.confirmed_below.max(o);
                }
                // A negative offset keeps only the last |o| updates.
                Some(o) if o < 0 => {
                    let keep = o.unsigned_abs() as usize;
                    while inner.queue.len() > keep {
                        if let Some((id, _)) = inner.queue.pop_front() {
                            inner.confirmed_below = inner.confirmed_below.max(id + 1);
                        }
                    }
                }
                _ => {}
            }
            if !inner.queue.is_empty() || Instant::now() >= deadline {
                let updates: Vec<Value> = inner
                    .queue
                    .iter()
                    .take(limit)
                    .map(|(_, u)| serde_json::from_str(u).expect("the mock's updates are JSON"))
                    .collect();
                mock.log(&mut inner, "getUpdates", 200, offset);
                return ok(Value::Array(updates));
            }
        }
        tokio::select! {
            _ = waiter => {}
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_updates_cover_every_chat_and_kind() {
        let kinds: std::collections::BTreeSet<String> = (0..28)
            .map(|n| {
                let v: Value = serde_json::from_str(&synthetic_update(n)).unwrap();
                v.as_object()
                    .unwrap()
                    .keys()
                    .find(|k| *k != "update_id")
                    .unwrap()
                    .clone()
            })
            .collect();
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            [
                "channel_post",
                "edited_channel_post",
                "edited_message",
                "message"
            ]
        );
        assert!(synthetic_update(3).contains("caption"));
    }

    #[test]
    fn tokens_are_checked_for_shape() {
        assert!(valid_token("123456:ABC-def_1"));
        assert!(!valid_token("123456"));
        assert!(!valid_token(":abc"));
        assert!(!valid_token("12a:abc"));
        assert!(!valid_token("1:a/b"));
    }
}
