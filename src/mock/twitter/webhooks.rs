//! The mock X webhook endpoints, behaving as docs.x.com describes them:
//!
//! - `POST /2/webhooks {"url"}`: checks the URL, then sends a real CRC `GET
//!   url?crc_token=…` and creates the webhook only if the answer is
//!   `sha256=base64(HMAC-SHA256(consumer secret, token))` within 3 s
//!   (`CrcValidationFailed` otherwise); `GET /2/webhooks`; `PUT
//!   /2/webhooks/:id` (CRC again; the webhook turns invalid if it fails);
//!   `DELETE /2/webhooks/:id`. App bearer token.
//! - Account Activity subscriptions: `POST`/`GET
//!   /2/account_activity/webhooks/:id/subscriptions/all` with OAuth 1.0a user
//!   context, verified against [`MOCK_CONSUMER_KEY`], [`MOCK_CONSUMER_SECRET`]
//!   and [`MOCK_ACCESS_TOKEN_SECRET`] (any access token `USERID-…` is a user);
//!   `GET …/subscriptions/all/list` and `DELETE …/subscriptions/:user_id/all`
//!   with the bearer token.
//! - `POST /2/webhooks/replay`: see [`super::replay`].
//! - `POST /mock/deliver` and `GET /mock/deliveries`: see [`super::deliver`].
//!
//! Unlike X, loopback `http://` URLs with a port are accepted, so tests and
//! the README walk-through need no TLS.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde_json::{Value, json};

use super::signing::{hmac_sha256_header, oauth_verify};
use super::{authorized, problem, unauthorized};
use crate::mock::lock;

/// The consumer key the mock's app has.
pub const MOCK_CONSUMER_KEY: &str = "mock-consumer-key";
/// The consumer secret the mock signs CRC checks and deliveries with.
pub const MOCK_CONSUMER_SECRET: &str = "mock-consumer-secret";
/// The access-token secret of every mock user (`USERID-anything` tokens).
pub const MOCK_ACCESS_TOKEN_SECRET: &str = "mock-access-token-secret";
/// An access token of the mock (user 2244994945).
pub const MOCK_ACCESS_TOKEN: &str = "2244994945-mockaccesstoken";
/// The mock's application id.
pub(super) const APP_ID: &str = "29884211";
const FIRST_WEBHOOK_ID: u64 = 1_146_654_567_674_912_769;
/// X waits this long for a CRC answer.
const CRC_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub(super) struct Hook {
    pub id: String,
    pub url: String,
    pub valid: bool,
    pub created_at: String,
}

impl Hook {
    fn json(&self) -> Value {
        json!({"id": self.id, "url": self.url, "valid": self.valid, "created_at": self.created_at})
    }
}

/// The webhook state of the mock.
pub(super) struct Hooks {
    pub hooks: Mutex<Vec<Hook>>,
    /// Account Activity subscriptions: webhook id → user ids.
    pub subscriptions: Mutex<BTreeMap<String, BTreeSet<String>>>,
    next_id: AtomicU64,
    pub http: reqwest::Client,
    pub deliveries: super::deliver::Log,
    /// X Activity API subscriptions, as the API returns them.
    pub activity: Mutex<Vec<Value>>,
    pub next_subscription: AtomicU64,
    /// Filtered-stream webhook links, as the API returns them.
    pub links: Mutex<Vec<Value>>,
}

/// The webhook routes, with their own state (merged into the mock's router).
pub(super) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let hooks = Arc::new(Hooks {
        hooks: Mutex::new(Vec::new()),
        subscriptions: Mutex::new(BTreeMap::new()),
        next_id: AtomicU64::new(FIRST_WEBHOOK_ID),
        http: reqwest::Client::builder()
            .timeout(CRC_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client builds"),
        deliveries: super::deliver::Log::default(),
        activity: Mutex::new(Vec::new()),
        next_subscription: AtomicU64::new(FIRST_WEBHOOK_ID + 1_000_000),
        links: Mutex::new(Vec::new()),
    });
    let sub = "/2/account_activity/webhooks/{id}/subscriptions";
    Router::new()
        .route("/2/webhooks", post(create).get(list))
        .route("/2/webhooks/replay", post(super::replay::create))
        .route("/2/webhooks/{id}", put(validate).delete(remove))
        .route(
            &format!("{sub}/all"),
            post(subscribe).get(check_subscription),
        )
        .route(&format!("{sub}/all/list"), get(list_subscriptions))
        .route(&format!("{sub}/{{user_id}}/all"), delete(unsubscribe))
        .route(
            "/2/activity/subscriptions",
            post(super::activity::create).get(super::activity::list),
        )
        .route(
            "/2/activity/subscriptions/{id}",
            delete(super::activity::remove),
        )
        .route("/2/tweets/search/webhooks", get(super::activity::links))
        .route(
            "/2/tweets/search/webhooks/{id}",
            post(super::activity::link).delete(super::activity::unlink),
        )
        .route("/mock/deliver", post(super::deliver::deliver))
        .route("/mock/deliveries", get(super::deliver::deliveries))
        .with_state(hooks)
}

fn invalid(title: &str, detail: &str) -> Response {
    problem(StatusCode::BAD_REQUEST, title, detail, "invalid-request")
}

pub(super) fn unknown_webhook() -> Response {
    invalid(
        "WebhookIdInvalid",
        "The provided webhook_id was not found or is not associated with your app.",
    )
}

/// X's URL requirements (https, no port), loosened for loopback.
fn url_problem(url: &str) -> Option<&'static str> {
    if url.is_empty() || url.len() > 200 {
        return Some("The url must be 1 to 200 characters long.");
    }
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Some("The url is not a valid URL.");
    };
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match (parsed.scheme(), loopback) {
        ("https", _) if parsed.port().is_none() || loopback => None,
        ("https", _) => Some("The url cannot include a port specification."),
        ("http", true) => None,
        _ => Some("The url must use https."),
    }
}

/// A CRC check of `url`: true if it answered the right `response_token` in time.
pub(super) async fn crc_passes(http: &reqwest::Client, url: &str) -> bool {
    let token = format!("mock-crc-{:016x}", rand_u64());
    let Ok(resp) = http.get(url).query(&[("crc_token", &token)]).send().await else {
        return false;
    };
    if resp.status() != StatusCode::OK {
        return false;
    }
    let Ok(body) = resp.json::<Value>().await else {
        return false;
    };
    let expected = hmac_sha256_header(MOCK_CONSUMER_SECRET, token.as_bytes());
    body.get("response_token").and_then(Value::as_str) == Some(expected.as_str())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

fn crc_failed() -> Response {
    invalid(
        "CrcValidationFailed",
        "The callback URL did not respond correctly to the CRC check (e.g., timed out, wrong response).",
    )
}

async fn create(State(h): State<Arc<Hooks>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let url = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("url").and_then(Value::as_str).map(str::to_owned));
    let Some(url) = url else {
        return invalid(
            "Invalid Request",
            "The body must be a JSON object with `url`.",
        );
    };
    if let Some(detail) = url_problem(&url) {
        return invalid("UrlValidationFailed", detail);
    }
    if lock(&h.hooks).iter().any(|w| w.url == url) {
        return invalid(
            "DuplicateUrlFailed",
            "A webhook is already registered by your application for the provided callback URL.",
        );
    }
    if !crc_passes(&h.http, &url).await {
        return crc_failed();
    }
    let hook = Hook {
        id: h.next_id.fetch_add(1, Ordering::Relaxed).to_string(),
        url,
        valid: true,
        created_at: crate::record::rfc3339(chrono::Utc::now()),
    };
    let answer = hook.json();
    lock(&h.hooks).push(hook);
    // 2.167: the config under `data` (docs.x.com's example shows it bare;
    // the client reads both).
    axum::Json(json!({ "data": answer })).into_response()
}

async fn list(State(h): State<Arc<Hooks>>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let hooks: Vec<Value> = lock(&h.hooks).iter().map(Hook::json).collect();
    let n = hooks.len();
    let mut body = json!({"meta": {"result_count": n}});
    if n > 0 {
        body["data"] = Value::Array(hooks);
    }
    axum::Json(body).into_response()
}

async fn validate(
    State(h): State<Arc<Hooks>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let Some(url) = lock(&h.hooks)
        .iter()
        .find(|w| w.id == id)
        .map(|w| w.url.clone())
    else {
        return unknown_webhook();
    };
    let ok = crc_passes(&h.http, &url).await;
    if let Some(w) = lock(&h.hooks).iter_mut().find(|w| w.id == id) {
        w.valid = ok;
    }
    if !ok {
        return crc_failed();
    }
    axum::Json(json!({"data": {"valid": true}})).into_response()
}

async fn remove(
    State(h): State<Arc<Hooks>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let mut hooks = lock(&h.hooks);
    let before = hooks.len();
    hooks.retain(|w| w.id != id);
    if hooks.len() == before {
        return unknown_webhook();
    }
    lock(&h.subscriptions).remove(&id);
    axum::Json(json!({"data": {"deleted": true}})).into_response()
}

/// The user whose access token signed the request, if the signature holds.
fn signed_user(headers: &HeaderMap, method: &Method, uri: &Uri) -> Option<String> {
    let header = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let url = format!("http://{host}{}", uri);
    let token = oauth_verify(
        header,
        method.as_str(),
        &url,
        MOCK_CONSUMER_KEY,
        MOCK_CONSUMER_SECRET,
        MOCK_ACCESS_TOKEN_SECRET,
    )?;
    let user = token.split_once('-')?.0.to_owned();
    (!user.is_empty() && user.bytes().all(|b| b.is_ascii_digit())).then_some(user)
}

fn known(h: &Hooks, id: &str) -> bool {
    lock(&h.hooks).iter().any(|w| w.id == id)
}

async fn subscribe(
    State(h): State<Arc<Hooks>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(user) = signed_user(&headers, &method, &uri) else {
        return unauthorized();
    };
    if !known(&h, &id) {
        return unknown_webhook();
    }
    lock(&h.subscriptions).entry(id).or_default().insert(user);
    axum::Json(json!({"data": {"subscribed": true}})).into_response()
}

async fn check_subscription(
    State(h): State<Arc<Hooks>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(user) = signed_user(&headers, &method, &uri) else {
        return unauthorized();
    };
    if !known(&h, &id) {
        return unknown_webhook();
    }
    let subscribed = lock(&h.subscriptions)
        .get(&id)
        .is_some_and(|s| s.contains(&user));
    axum::Json(json!({"data": {"subscribed": subscribed}})).into_response()
}

async fn list_subscriptions(
    State(h): State<Arc<Hooks>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let Some(url) = lock(&h.hooks)
        .iter()
        .find(|w| w.id == id)
        .map(|w| w.url.clone())
    else {
        return unknown_webhook();
    };
    let users: Vec<Value> = lock(&h.subscriptions)
        .get(&id)
        .map(|s| s.iter().map(|u| json!({"user_id": u})).collect())
        .unwrap_or_default();
    axum::Json(json!({"data": {
        "application_id": APP_ID,
        "webhook_id": id,
        "webhook_url": url,
        "subscriptions": users,
    }}))
    .into_response()
}

async fn unsubscribe(
    State(h): State<Arc<Hooks>>,
    Path((id, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    if !known(&h, &id) {
        return unknown_webhook();
    }
    lock(&h.subscriptions).entry(id).or_default().remove(&user);
    axum::Json(json!({"data": {"subscribed": false}})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_as_x_requires_them_with_loopback_allowed() {
        assert_eq!(url_problem("https://example.com/webhooks/twitter"), None);
        assert_eq!(url_problem("http://127.0.0.1:8080/w"), None);
        assert_eq!(url_problem("https://localhost:8443/w"), None);
        assert!(url_problem("http://example.com/w").is_some());
        assert!(url_problem("https://example.com:5000/w").is_some());
        assert!(url_problem("not a url").is_some());
        assert!(url_problem("").is_some());
        assert!(url_problem(&format!("https://e.com/{}", "a".repeat(200))).is_some());
    }
}
