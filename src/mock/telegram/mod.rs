//! The mock Telegram Bot API: a queue of synthetic updates across chats, Bot API
//! offset semantics, webhook methods, and scripted faults for `getUpdates`.
//!
//! Scenario (TOML, every field optional): `updates` queued at start, `rate`
//! new updates per second, `total_updates` cap, `token` (only this token is
//! accepted), `webhook_url` (start with a webhook set), and `[[call]]` tables
//! scripting the first `getUpdates` answers in order: `status` (200, 409, 429,
//! 500…), `kind = "webhook" | "other_poller"` for 409, `retry_after` for 429,
//! `delay_ms` for a slow answer. `GET /mock/state` shows the queue and calls.
//!
//! - `scenario`: the scenario file.
//! - `updates`: the synthetic updates.
//! - `get_updates`: `getUpdates` (scripted failures, offsets, long polling).
//! - here: the shared state and call log, the routes, the other Bot API methods.

mod get_updates;
mod scenario;
mod updates;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{MockError, MockServer, elapsed_ms, lock};

pub use scenario::{CallScript, TelegramScenario};
pub use updates::{CHATS, FIRST_UPDATE_ID, synthetic_update};

#[derive(Debug, Clone, Serialize)]
struct CallLog {
    index: usize,
    at_ms: u64,
    method: String,
    status: u16,
    offset: Option<i64>,
    /// The `allowed_updates` the call sent, when it sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_updates: Option<Vec<String>>,
}

struct Inner {
    queue: VecDeque<(i64, String)>,
    produced: u64,
    confirmed_below: i64,
    webhook_url: String,
    calls: Vec<CallLog>,
    get_updates_calls: usize,
    /// The bot's `allowed_updates` setting: kept until a call sends another
    /// (empty: Telegram's default, every type but the opt-in ones).
    allowed_updates: Vec<String>,
}

impl Inner {
    fn new(webhook_url: String) -> Inner {
        Inner {
            queue: VecDeque::new(),
            produced: 0,
            confirmed_below: 0,
            webhook_url,
            calls: Vec::new(),
            get_updates_calls: 0,
            allowed_updates: Vec::new(),
        }
    }
}

struct Mock {
    scenario: TelegramScenario,
    started: Instant,
    inner: Mutex<Inner>,
    arrived: Notify,
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
            at_ms: elapsed_ms(self.started),
            method: method.to_owned(),
            status,
            offset,
            allowed_updates: None,
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
    let (listener, local) = super::bind(addr).await?;
    let shutdown = CancellationToken::new();
    let mock = Arc::new(Mock {
        inner: Mutex::new(Inner::new(scenario.webhook_url.clone().unwrap_or_default())),
        scenario,
        started: Instant::now(),
        arrived: Notify::new(),
    });
    mock.produce(&mut lock(&mock.inner), mock.scenario.updates);
    if mock.scenario.rate > 0.0 {
        tokio::spawn(produce_at_rate(mock.clone(), shutdown.clone()));
    }
    let app = Router::new()
        .route("/mock/state", get(state))
        .route("/{bot}/{method}", any(method))
        .with_state(mock);
    Ok(super::serve(
        listener,
        local,
        app,
        shutdown,
        "mock Telegram Bot API",
    ))
}

/// Queues one update per period of the scenario's `rate` until `token` is cancelled.
async fn produce_at_rate(mock: Arc<Mock>, token: CancellationToken) {
    let period = Duration::from_secs_f64(1.0 / mock.scenario.rate);
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => mock.produce(&mut lock(&mock.inner), 1),
        }
    }
}

async fn state(State(mock): State<Arc<Mock>>) -> Response {
    let inner = lock(&mock.inner);
    axum::Json(json!({
        "pending": inner.queue.len(),
        "produced": inner.produced,
        "confirmed_below": inner.confirmed_below,
        "get_updates_started": inner.get_updates_calls,
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

/// A method's parameters: a JSON body, else the query string (as curl users
/// send them, each value read as JSON when it is JSON); `None` for a body that
/// is no JSON object.
fn params(query: Map<String, Value>, body: &[u8]) -> Option<Map<String, Value>> {
    if !body.is_empty() {
        return serde_json::from_slice(body).ok();
    }
    Some(
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
            .collect(),
    )
}

async fn method(
    State(mock): State<Arc<Mock>>,
    UrlPath((bot, method)): UrlPath<(String, String)>,
    Query(query): Query<Map<String, Value>>,
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
    let Some(params) = params(query, &body) else {
        return fail(400, "Bad Request: can't parse JSON object", None);
    };
    let int = |k: &str| params.get(k).and_then(Value::as_i64);
    match method.as_str() {
        "getMe" => ok(
            json!({"id": 123456, "is_bot": true, "first_name": "Mock Bot", "username": "ingest_mock_bot"}),
        ),
        "getWebhookInfo" => {
            let inner = lock(&mock.inner);
            ok(
                json!({"url": inner.webhook_url, "has_custom_certificate": false, "pending_update_count": inner.queue.len()}),
            )
        }
        "setWebhook" => set_webhook(&mock, &params),
        "deleteWebhook" => delete_webhook(&mock, &params),
        "getUpdates" => {
            let Ok(allowed) = allowed_updates(&params) else {
                return fail(400, "Bad Request: can't parse allowed updates", None);
            };
            let request = get_updates::Request {
                offset: int("offset"),
                limit: int("limit"),
                timeout: int("timeout"),
                allowed,
            };
            get_updates::get_updates(mock, request).await
        }
        _ => fail(404, "Not Found: method not found", None),
    }
}

/// The `allowed_updates` parameter: absent (keep the setting), or a list of
/// update type names; anything else is refused as Telegram refuses it.
fn allowed_updates(params: &Map<String, Value>) -> Result<Option<Vec<String>>, ()> {
    match params.get("allowed_updates") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or(()))
            .collect::<Result<Vec<_>, ()>>()
            .map(Some),
        Some(_) => Err(()),
    }
}

fn set_webhook(mock: &Mock, params: &Map<String, Value>) -> Response {
    let url = params
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let Ok(allowed) = allowed_updates(params) else {
        return fail(400, "Bad Request: can't parse allowed updates", None);
    };
    let mut inner = lock(&mock.inner);
    inner.webhook_url = url;
    if let Some(allowed) = allowed {
        inner.allowed_updates = allowed;
    }
    mock.log(&mut inner, "setWebhook", 200, None);
    ok(json!(true))
}

fn delete_webhook(mock: &Mock, params: &Map<String, Value>) -> Response {
    let mut inner = lock(&mock.inner);
    inner.webhook_url.clear();
    if params.get("drop_pending_updates").and_then(Value::as_bool) == Some(true) {
        inner.queue.clear();
    }
    mock.log(&mut inner, "deleteWebhook", 200, None);
    ok(json!(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_for_shape() {
        assert!(valid_token("123456:ABC-def_1"));
        assert!(!valid_token("123456"));
        assert!(!valid_token(":abc"));
        assert!(!valid_token("12a:abc"));
        assert!(!valid_token("1:a/b"));
    }

    #[test]
    fn parameters_come_from_the_body_else_the_query() {
        let query: Map<String, Value> =
            serde_json::from_str(r#"{"offset": "-3", "url": "https://x"}"#).unwrap();
        let p = params(query.clone(), b"").unwrap();
        assert_eq!(p["offset"], json!(-3));
        assert_eq!(p["url"], json!("https://x"));
        let p = params(query.clone(), br#"{"limit": 5}"#).unwrap();
        assert_eq!(p.len(), 1);
        assert!(params(query, b"not json").is_none());
    }
}
