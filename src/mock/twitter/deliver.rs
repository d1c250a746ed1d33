//! `POST /mock/deliver`: the mock pushes signed deliveries of each kind X
//! sends to webhooks, to every valid registered webhook, and retries each one
//! that is not answered 200 the way the Account Activity docs describe
//! (three retries; X waits 3 s, 30 s and 5 min, the mock by default a tenth
//! of that, or `retry_delays_ms`). `GET /mock/deliveries` lists every
//! delivery with the status of each attempt (0: no answer), answered or not:
//! a replay job ([`super::replay`]) sends them again.
//!
//! Body (every field optional): `{"kinds": ["account_activity",
//! "x_activity", "filtered_stream", "unknown"], "seq": 0, "text_bytes": 0,
//! "retry_delays_ms": [300, 3000, 30000]}`. `seq` picks the post (the same
//! post number the mock stream sends, so the same id); `text_bytes` pads the
//! Account Activity post's text.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::rules::LiveRule;
use super::signing::hmac_sha256_header;
use super::webhooks::{Hooks, MOCK_CONSUMER_SECRET};
use crate::mock::lock;

/// The header X signs each delivery in (docs.x.com, "Securing webhooks").
const SIGNATURE_HEADER: &str = "x-twitter-webhooks-signature";

pub const KINDS: [&str; 4] = [
    "account_activity",
    "x_activity",
    "filtered_stream",
    "unknown",
];
/// X's retry delays divided by ten.
const DEFAULT_DELAYS_MS: [u64; 3] = [300, 3_000, 30_000];

/// One delivery and its attempts, kept (answered or not) for replay jobs.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub webhook_id: String,
    pub kind: String,
    /// When the first attempt was made (RFC 3339).
    pub attempted_at: String,
    /// HTTP status of each attempt; 0 when nothing (or no answer in 3 s) came back.
    pub attempts: Vec<u16>,
    /// Answered 200, or given up after the last retry.
    pub done: bool,
    /// The replay job this delivery is part of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_job: Option<String>,
    /// The signed body, as sent.
    #[serde(skip)]
    pub body: Vec<u8>,
}

impl Log {
    /// Logs a new delivery; returns its index.
    pub(super) fn push(
        &self,
        webhook_id: &str,
        kind: &str,
        body: &[u8],
        job: Option<&str>,
    ) -> usize {
        let mut log = lock(&self.0);
        log.push(Delivery {
            webhook_id: webhook_id.to_owned(),
            kind: kind.to_owned(),
            attempted_at: crate::record::rfc3339(chrono::Utc::now()),
            attempts: Vec::new(),
            done: false,
            replay_job: job.map(str::to_owned),
            body: body.to_vec(),
        });
        log.len() - 1
    }

    /// Every delivery so far.
    pub(super) fn all(&self) -> Vec<Delivery> {
        lock(&self.0).clone()
    }
}

#[derive(Default)]
pub(super) struct Log(Mutex<Vec<Delivery>>);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DeliverRequest {
    #[serde(default)]
    kinds: Option<Vec<String>>,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    text_bytes: usize,
    #[serde(default)]
    retry_delays_ms: Option<Vec<u64>>,
}

/// The body X would POST for `kind`.
pub fn payload(kind: &str, seq: u64, text_bytes: usize) -> Option<Vec<u8>> {
    let body = match kind {
        "account_activity" => {
            let id = (1_500_000_000_000_000_000u64 + seq).to_string();
            let head = format!("webhook post {seq} ");
            let text = format!("{head}#XDev{}", " x".repeat(text_bytes / 2));
            // v1.1 entity indices count characters: `[start, end)`.
            let start = head.chars().count();
            json!({
                "for_user_id": "2244994945",
                "tweet_create_events": [{
                    "id_str": id,
                    "text": text,
                    "created_at": "Mon Nov 30 12:00:00 +0000 2026",
                    "lang": "en",
                    "entities": {"hashtags": [{"text": "XDev", "indices": [start, start + 5]}]},
                    "source": "<a href=\"https://mobile.twitter.com\" rel=\"nofollow\">Twitter Web App</a>",
                    "user": {"id_str": "2244994945", "name": "X Developers", "screen_name": "XDevelopers"},
                }],
                "favorite_events": [{
                    "id": format!("fav-{seq}"),
                    "created_at": "Mon Nov 30 12:00:01 +0000 2026",
                    "favorited_status": {"id_str": id},
                    "user": {"id_str": "1001", "screen_name": "ada"},
                }],
            })
        }
        "x_activity" => json!({"data": {
            "event_type": "profile.update.bio",
            "filter": {"user_id": "2244994945"},
            "tag": "bio updates",
            "payload": {"before": "Old bio", "after": format!("New bio {seq}")},
        }}),
        "filtered_stream" => {
            let rules = [LiveRule {
                id: "1700000000000000000".into(),
                value: "webhook".into(),
                tag: Some("webhook".into()),
            }];
            let mut line = Vec::new();
            super::tweets::tweet_line(seq, &rules, &mut line);
            line.truncate(line.len() - 2);
            return Some(line);
        }
        "unknown" => {
            json!({"mystery_kind": {"id": format!("m-{seq}"), "note": "a kind ingest does not know"}})
        }
        _ => return None,
    };
    Some(body.to_string().into_bytes())
}

pub(super) async fn deliver(State(h): State<Arc<Hooks>>, body: Bytes) -> Response {
    let req: DeliverRequest = if body.is_empty() {
        DeliverRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("bad deliver request: {e}\n"),
                )
                    .into_response();
            }
        }
    };
    let kinds = req
        .kinds
        .unwrap_or_else(|| KINDS.iter().map(|k| k.to_string()).collect());
    let mut bodies = Vec::new();
    for k in &kinds {
        match payload(k, req.seq, req.text_bytes) {
            Some(b) => bodies.push((k.clone(), b)),
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("unknown kind {k:?}; known: {KINDS:?}\n"),
                )
                    .into_response();
            }
        }
    }
    let delays: Vec<Duration> = req
        .retry_delays_ms
        .unwrap_or(DEFAULT_DELAYS_MS.to_vec())
        .into_iter()
        .map(Duration::from_millis)
        .collect();
    let targets: Vec<(String, String)> = lock(&h.hooks)
        .iter()
        .filter(|w| w.valid)
        .map(|w| (w.id.clone(), w.url.clone()))
        .collect();
    let mut started = 0;
    for (id, url) in &targets {
        for (kind, body) in &bodies {
            let index = h.deliveries.push(id, kind, body, None);
            tokio::spawn(send(
                h.clone(),
                index,
                url.clone(),
                body.clone(),
                delays.clone(),
            ));
            started += 1;
        }
    }
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"deliveries": started})),
    )
        .into_response()
}

/// POSTs one body until a 200 or the retries run out.
pub(super) async fn send(
    h: Arc<Hooks>,
    index: usize,
    url: String,
    body: Vec<u8>,
    delays: Vec<Duration>,
) {
    let sig = hmac_sha256_header(MOCK_CONSUMER_SECRET, &body);
    for wait in std::iter::once(Duration::ZERO).chain(delays) {
        tokio::time::sleep(wait).await;
        let status = h
            .http
            .post(&url)
            .header(SIGNATURE_HEADER, &sig)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        let mut log = lock(&h.deliveries.0);
        let d = &mut log[index];
        d.attempts.push(status);
        if status == 200 {
            d.done = true;
            return;
        }
    }
    lock(&h.deliveries.0)[index].done = true;
}

pub(super) async fn deliveries(State(h): State<Arc<Hooks>>) -> Response {
    let log = h.deliveries.all();
    axum::Json(log).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn every_kind_has_a_json_payload() {
        for k in KINDS {
            let b = payload(k, 3, 10).unwrap();
            let v: Value = serde_json::from_slice(&b).unwrap();
            assert!(v.is_object(), "{k}");
        }
        assert!(payload("nope", 0, 0).is_none());
        let fs: Value = serde_json::from_slice(&payload("filtered_stream", 3, 0).unwrap()).unwrap();
        assert_eq!(fs["data"]["id"], super::super::tweet_id(3));
        assert_eq!(fs["matching_rules"][0]["tag"], "webhook");
    }
}
