//! The mock Telegram Bot API: a queue of synthetic updates across chats, Bot API
//! offset semantics, webhook methods, and scripted faults for `getUpdates`.
//!
//! Scenario (TOML, every field optional): `updates` messages queued at start,
//! then (`every_type`, on by default) one update of every other `Update`
//! field of Bot API 10.1, `rate` new updates per second, `total_updates` cap,
//! `token` (only this token is accepted), `webhook_url` (start with a webhook
//! set), `allowed_updates` (the bot's setting at start), and `[[call]]` tables
//! scripting the first `getUpdates` answers in order: `status` (200, 409, 429,
//! 500…), `kind = "webhook" | "other_poller"` for 409, `retry_after` for 429,
//! `delay_ms` for a slow answer; `media_delay_ms` slows every file download.
//! `GET /mock/state` shows the queue and calls (file downloads as `file`).
//!
//! Media messages (every fifth update from the fourth) carry the files of the
//! shared catalog (`mock::media`) in turn; `getFile` and
//! `/file/bot<token>/<file_path>` serve them.
//!
//! As the Bot API documents it: a call with a higher `offset` confirms the
//! updates below it the moment it arrives (a slow answer does not delay
//! that); `allowed_updates` decides which updates are created from then on,
//! not which already queued ones are delivered; parameters come in the query
//! string, a form, JSON or multipart.
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
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{MockError, MockServer, elapsed_ms, lock, media};

pub use scenario::{CallScript, TelegramScenario};
pub use updates::{CHATS, FIRST_UPDATE_ID, OTHER_TYPES, synthetic_update};

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

    /// Queues update `n`'s JSON if the bot's setting lets it have its type:
    /// an update the bot did not ask for is never created.
    fn create(&mut self, update: String) {
        let id = FIRST_UPDATE_ID + self.produced as i64;
        self.produced += 1;
        if updates::wanted(&get_updates::update_type(&update), &self.allowed_updates) {
            self.queue.push_back((id, update));
        }
    }
}

struct Mock {
    /// Downloads of the media catalog's files.
    files: media::Served,
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
            let mut update = synthetic_update(n);
            if self.scenario.distinct_photo_bytes > 0 {
                update =
                    updates::with_distinct_photo(&update, n, self.scenario.distinct_photo_bytes);
            }
            inner.create(update);
        }
        self.arrived.notify_waiters();
    }

    /// One update of every type besides the plain messages.
    fn produce_every_type(&self, inner: &mut Inner) {
        for kind in OTHER_TYPES {
            if self.scenario.total_updates > 0 && inner.produced >= self.scenario.total_updates {
                break;
            }
            let id = FIRST_UPDATE_ID + inner.produced as i64;
            inner.create(updates::other_update(id, kind));
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
    let mut inner = Inner::new(scenario.webhook_url.clone().unwrap_or_default());
    inner.allowed_updates = scenario.allowed_updates.clone();
    let mock = Arc::new(Mock {
        inner: Mutex::new(inner),
        files: media::Served::default(),
        scenario,
        started: Instant::now(),
        arrived: Notify::new(),
    });
    mock.produce(&mut lock(&mock.inner), mock.scenario.updates);
    if mock.scenario.every_type {
        mock.produce_every_type(&mut lock(&mock.inner));
    }
    if mock.scenario.rate > 0.0 {
        tokio::spawn(produce_at_rate(mock.clone(), shutdown.clone()));
    }
    let app = Router::new()
        .route("/mock/state", get(state))
        .route("/mock/produce", axum::routing::post(produce_now))
        .route("/{bot}/{method}", any(method))
        .route("/file/{bot}/{*path}", get(download))
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

/// `POST /mock/produce?count=N`: N more message updates now, created under
/// the bot's current `allowed_updates` setting.
async fn produce_now(State(mock): State<Arc<Mock>>, RawQuery(query): RawQuery) -> Response {
    let count = form_pairs(query.as_deref().unwrap_or(""))
        .get("count")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let mut inner = lock(&mock.inner);
    mock.produce(&mut inner, count);
    axum::Json(json!({"produced": inner.produced})).into_response()
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

/// A text parameter (query string, form or multipart) as the value it
/// stands for: JSON when it is JSON (numbers, booleans, serialized arrays),
/// else the string.
fn text_value(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_owned()))
}

/// `name=value` pairs of a query string or a form, percent-decoded.
fn form_pairs(text: &str) -> Map<String, Value> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), text_value(&decode(v)))
        })
        .collect()
}

/// The fields of a `multipart/form-data` body (RFC 7578), files as their names.
fn multipart_fields(body: &[u8], boundary: &str) -> Option<Map<String, Value>> {
    let text = std::str::from_utf8(body).ok()?;
    let delimiter = format!("--{boundary}");
    let mut out = Map::new();
    for part in text.split(delimiter.as_str()) {
        let Some(part) = part.strip_prefix("\r\n") else {
            continue; // the preamble, or the closing `--`
        };
        let (head, value) = part.split_once("\r\n\r\n")?;
        let name = head.split("name=\"").nth(1)?.split('"').next()?;
        let value = value.strip_suffix("\r\n").unwrap_or(value);
        out.insert(name.to_owned(), text_value(value));
    }
    Some(out)
}

/// A method's parameters, however the Bot API takes them: the query string,
/// then a JSON, form or multipart body over it; `None` for a body that cannot
/// be read as its content type says.
fn params(query: &str, content_type: &str, body: &[u8]) -> Option<Map<String, Value>> {
    let mut params = form_pairs(query);
    if body.is_empty() {
        return Some(params);
    }
    let mime = content_type.split(';').next().unwrap_or("").trim();
    let from_body = match mime {
        "application/x-www-form-urlencoded" => form_pairs(std::str::from_utf8(body).ok()?),
        "multipart/form-data" => {
            let boundary = content_type
                .split("boundary=")
                .nth(1)?
                .trim_matches('"')
                .to_owned();
            multipart_fields(body, &boundary)?
        }
        // JSON, declared or not (curl users often leave the type out).
        _ => serde_json::from_slice(body).ok()?,
    };
    params.extend(from_body);
    Some(params)
}

async fn method(
    State(mock): State<Arc<Mock>>,
    UrlPath((bot, method)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
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
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(params) = params(query.as_deref().unwrap_or(""), content_type, &body) else {
        return fail(400, "Bad Request: can't parse parameters", None);
    };
    let int = |k: &str| params.get(k).and_then(Value::as_i64);
    // Bot API method names are case-insensitive.
    match method.to_ascii_lowercase().as_str() {
        "getme" => ok(
            json!({"id": 123456, "is_bot": true, "first_name": "Mock Bot", "username": "ingest_mock_bot"}),
        ),
        "getwebhookinfo" => {
            let inner = lock(&mock.inner);
            ok(
                json!({"url": inner.webhook_url, "has_custom_certificate": false, "pending_update_count": inner.queue.len()}),
            )
        }
        "setwebhook" => set_webhook(&mock, &params),
        "getfile" => get_file(&params),
        "deletewebhook" => delete_webhook(&mock, &params),
        "getupdates" => {
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

/// `getFile`: where a catalog file is; the file over 20 MB is refused as
/// the Bot API refuses it.
fn get_file(params: &Map<String, Value>) -> Response {
    let Some(file_id) = params.get("file_id").and_then(Value::as_str) else {
        return fail(400, "Bad Request: file_id is required", None);
    };
    let generated = file_id
        .strip_prefix("mockfile-")
        .and_then(|name| Some((name, media::generated_size(name)?)));
    if let Some((name, size)) = generated {
        return ok(json!({
            "file_id": file_id,
            "file_unique_id": updates::file_unique_id(name),
            "file_size": size,
            "file_path": format!("photos/{name}"),
        }));
    }
    let Some(f) = media::FILES
        .iter()
        .find(|f| updates::file_id(f.name) == file_id)
    else {
        return fail(400, "Bad Request: invalid file_id", None);
    };
    if f.size > 20 * 1024 * 1024 {
        return fail(400, "Bad Request: file is too big", None);
    }
    ok(json!({
        "file_id": file_id,
        "file_unique_id": updates::file_unique_id(f.name),
        "file_size": f.size,
        "file_path": updates::file_path(f),
    }))
}

/// `GET /file/bot<token>/<file_path>`: the bytes of a catalog file (the
/// fail-twice file answers 500 twice first; the gone one 404).
async fn download(
    State(mock): State<Arc<Mock>>,
    UrlPath((bot, path)): UrlPath<(String, String)>,
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
    let name = path.rsplit('/').next().unwrap_or("");
    {
        let mut inner = lock(&mock.inner);
        mock.log(&mut inner, "file", 200, None);
    }
    if mock.scenario.media_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(mock.scenario.media_delay_ms)).await;
    }
    let echo = format!("GET /file/{bot}/{path}");
    mock.files.answer(
        name,
        mock.scenario.echo_path_in_errors.then_some(echo.as_str()),
    )
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
    fn parameters_come_from_the_query_a_form_json_or_multipart() {
        let q = "offset=-3&url=https%3A%2F%2Fx";
        let p = params(q, "", b"").unwrap();
        assert_eq!(p["offset"], json!(-3));
        assert_eq!(p["url"], json!("https://x"));
        let p = params(q, "application/json", br#"{"limit": 5}"#).unwrap();
        assert_eq!(
            (p["limit"].clone(), p["offset"].clone()),
            (json!(5), json!(-3))
        );
        assert!(params(q, "application/json", b"not json").is_none());
        let p = params(
            "",
            "application/x-www-form-urlencoded",
            b"offset=7&allowed_updates=%5B%22message%22%5D",
        )
        .unwrap();
        assert_eq!(p["offset"], json!(7));
        assert_eq!(p["allowed_updates"], json!(["message"]));
        let body = b"--b1\r\nContent-Disposition: form-data; name=\"offset\"\r\n\r\n9\r\n--b1\r\nContent-Disposition: form-data; name=\"timeout\"\r\n\r\n0\r\n--b1--\r\n";
        let p = params("", "multipart/form-data; boundary=b1", body).unwrap();
        assert_eq!(
            (p["offset"].clone(), p["timeout"].clone()),
            (json!(9), json!(0))
        );
    }
}
