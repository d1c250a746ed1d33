//! The mock X Activity API subscriptions (`/2/activity/subscriptions`) and
//! filtered-stream webhook links (`/2/tweets/search/webhooks`), app bearer
//! token, answering in the shapes of the API reference.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::webhooks::{APP_ID, Hooks, unknown_webhook};
use super::{authorized, problem, unauthorized};
use crate::mock::lock;

/// The event types of `POST /2/activity/subscriptions` (X API v2 2.167).
pub const EVENT_TYPES: [&str; 29] = [
    "profile.update.bio",
    "profile.update.profile_picture",
    "profile.update.banner_picture",
    "profile.update.screenname",
    "profile.update.geo",
    "profile.update.url",
    "profile.update.verified_badge",
    "profile.update.affiliate_badge",
    "profile.update.handle",
    "news.new",
    "follow.follow",
    "follow.unfollow",
    "spaces.start",
    "spaces.end",
    "chat.received",
    "chat.sent",
    "chat.conversation_join",
    "dm.sent",
    "dm.received",
    "dm.indicate_typing",
    "dm.read",
    "post.create",
    "post.delete",
    "post.mention.create",
    "like.create",
    "mute.mute",
    "mute.unmute",
    "block.block",
    "block.unblock",
];

fn invalid(detail: &str) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "Invalid Request",
        detail,
        "invalid-request",
    )
}

fn known_webhook(h: &Hooks, id: &str) -> bool {
    lock(&h.hooks).iter().any(|w| w.id == id)
}

/// Checks a create body; the subscription to store, or the problem.
fn new_subscription(h: &Hooks, body: &[u8]) -> Result<Value, Box<Response>> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| Box::new(invalid("The body must be JSON.")))?;
    let event_type = v["event_type"].as_str().unwrap_or("");
    if !EVENT_TYPES.contains(&event_type) {
        return Err(Box::new(invalid(&format!(
            "event_type must be one of: {}",
            EVENT_TYPES.join(", ")
        ))));
    }
    let filter = &v["filter"];
    let has = |k: &str| filter[k].as_str().is_some_and(|s| !s.is_empty());
    if !has("user_id") && !has("keyword") {
        return Err(Box::new(invalid("filter needs a user_id or a keyword.")));
    }
    if let Some(id) = v["webhook_id"].as_str()
        && !known_webhook(h, id)
    {
        return Err(Box::new(unknown_webhook()));
    }
    let now = crate::record::rfc3339(chrono::Utc::now());
    let id = h
        .next_subscription
        .fetch_add(1, Ordering::Relaxed)
        .to_string();
    let mut sub = json!({
        "subscription_id": id,
        "event_type": event_type,
        "filter": filter,
        "created_at": now,
        "updated_at": now,
    });
    for k in ["tag", "webhook_id"] {
        if let Some(s) = v[k].as_str() {
            sub[k] = s.into();
        }
    }
    Ok(sub)
}

pub(super) async fn create(
    State(h): State<Arc<Hooks>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let sub = match new_subscription(&h, &body) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let total = {
        let mut subs = lock(&h.activity);
        subs.push(sub.clone());
        subs.len()
    };
    tracing::debug!(total, "activity subscription created");
    axum::Json(json!({"data": {"subscription": sub}})).into_response()
}

pub(super) async fn list(State(h): State<Arc<Hooks>>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let subs = lock(&h.activity).clone();
    axum::Json(json!({ "data": subs })).into_response()
}

pub(super) async fn remove(
    State(h): State<Arc<Hooks>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let mut subs = lock(&h.activity);
    let before = subs.len();
    subs.retain(|s| s["subscription_id"] != id.as_str());
    if subs.len() == before {
        return invalid("The subscription_id was not found or is not associated with your app.");
    }
    axum::Json(json!({"data": {"deleted": true}})).into_response()
}

pub(super) async fn link(
    State(h): State<Arc<Hooks>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    if !known_webhook(&h, &id) {
        return unknown_webhook();
    }
    let fields: Vec<String> = query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let mut links = lock(&h.links);
    links.retain(|l| l["webhook_id"] != id.as_str());
    links.push(json!({
        "application_id": APP_ID,
        "business_user_id": "2244994945",
        "created_at": crate::record::rfc3339(chrono::Utc::now()),
        "fields": fields,
        "instance_id": "1",
        "webhook_id": id,
    }));
    axum::Json(json!({"data": {"provisioned": true}})).into_response()
}

pub(super) async fn links(State(h): State<Arc<Hooks>>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let links = lock(&h.links).clone();
    // 2.167: `data` is the array of links.
    axum::Json(json!({ "data": links })).into_response()
}

pub(super) async fn unlink(
    State(h): State<Arc<Hooks>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let mut links = lock(&h.links);
    let before = links.len();
    links.retain(|l| l["webhook_id"] != id.as_str());
    if links.len() == before {
        return unknown_webhook();
    }
    axum::Json(json!({"data": {"deleted": true}})).into_response()
}
