//! The X Account Activity API webhook: answers CRC challenges, accepts only
//! POSTs signed with the consumer secret, turns `tweet_create_events` into
//! `tweet` records and every other event into an `activity_event` record.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::pipeline::{Outcome, SourceBatch};
use crate::record::{Author, Platform, Record, Refs, rfc3339, transliterate};
use crate::secret::Secret;
use crate::sources::telegram::webhook::{TlsFiles, serve};
use crate::sources::{Source, SourceContext, SourceCounters, SourceError, deliver_and_wait};

/// The signature header of Account Activity POSTs.
pub const SIGNATURE_HEADER: &str = "x-twitter-webhooks-signature";

type HmacSha256 = Hmac<Sha256>;

/// `sha256=` + base64(HMAC-SHA256(key, message)).
pub fn signature(key: &Secret, message: &[u8]) -> String {
    let mut mac =
        HmacSha256::new_from_slice(key.expose().as_bytes()).expect("HMAC takes keys of any length");
    mac.update(message);
    format!(
        "sha256={}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// Checks a `sha256=<base64>` signature in constant time.
pub fn signature_valid(key: &Secret, message: &[u8], header: Option<&str>) -> bool {
    let Some(b64) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(b64) else {
        return false;
    };
    let mut mac =
        HmacSha256::new_from_slice(key.expose().as_bytes()).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.verify_slice(&sig).is_ok()
}

/// Account Activity webhook options.
#[derive(Debug, Clone)]
pub struct ActivityConfig {
    pub listen: String,
    pub path: String,
    pub consumer_secret: Secret,
    pub max_body_bytes: usize,
    pub ack_timeout: Duration,
    /// Serve HTTPS with these files; plain HTTP without.
    pub tls: Option<TlsFiles>,
}

/// The Account Activity webhook source.
pub struct ActivityWebhook {
    pub config: ActivityConfig,
}

struct Shared {
    config: ActivityConfig,
    ctx: SourceContext,
    out: mpsc::Sender<SourceBatch>,
}

impl Source for ActivityWebhook {
    fn name(&self) -> &'static str {
        "twitter-webhook"
    }

    async fn run(
        self,
        ctx: SourceContext,
        out: mpsc::Sender<SourceBatch>,
        shutdown: CancellationToken,
    ) -> Result<(), SourceError> {
        let (path, listen, limit) = (
            self.config.path.clone(),
            self.config.listen.clone(),
            self.config.max_body_bytes,
        );
        let tls = self.config.tls.clone();
        let shared = Arc::new(Shared {
            config: self.config,
            ctx,
            out,
        });
        let app = Router::new()
            .route(&path, get(crc).post(events))
            .layer(DefaultBodyLimit::max(limit))
            .with_state(shared);
        serve(&listen, tls.as_ref(), app, shutdown).await
    }
}

#[derive(Deserialize)]
struct Crc {
    crc_token: Option<String>,
}

async fn crc(State(s): State<Arc<Shared>>, Query(q): Query<Crc>) -> Response {
    match q.crc_token.filter(|t| !t.is_empty()) {
        Some(token) => {
            let body = serde_json::json!({ "response_token": signature(&s.config.consumer_secret, token.as_bytes()) });
            axum::Json(body).into_response()
        }
        None => (StatusCode::BAD_REQUEST, "missing crc_token\n").into_response(),
    }
}

/// A v1.1 tweet as Account Activity sends it.
#[derive(Deserialize)]
struct V1Tweet {
    id_str: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    full_text: Option<String>,
    #[serde(default)]
    extended_tweet: Option<Extended>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    user: Option<V1User>,
    #[serde(default)]
    in_reply_to_status_id_str: Option<String>,
}

#[derive(Deserialize)]
struct Extended {
    #[serde(default)]
    full_text: Option<String>,
}

#[derive(Deserialize)]
struct V1User {
    id_str: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    screen_name: Option<String>,
}

/// Turns one Account Activity body into records.
pub fn body_to_records(
    body: &[u8],
    received_at: &Arc<str>,
    ctx: &SourceContext,
) -> Result<Vec<Record>, String> {
    let events: std::collections::BTreeMap<String, Box<RawValue>> =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let for_user = events
        .get("for_user_id")
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
        .unwrap_or_default();
    let opts = &ctx.normalize;
    let mut records = Vec::new();
    for (kind, value) in &events {
        if kind == "for_user_id" || kind == "user_has_blocked" || kind == "users" || kind == "apps"
        {
            continue;
        }
        let Ok(items) = serde_json::from_str::<Vec<Box<RawValue>>>(value.get()) else {
            continue;
        };
        for item in items {
            let raw = opts.keep_raw.then(|| item.clone());
            let record = if kind == "tweet_create_events" {
                let t: V1Tweet = serde_json::from_str(item.get())
                    .map_err(|e| format!("tweet_create_events: {e}"))?;
                let text = t
                    .extended_tweet
                    .and_then(|e| e.full_text)
                    .or(t.full_text)
                    .or(t.text);
                Record {
                    id: format!("twitter:{}", t.id_str),
                    platform: Platform::Twitter,
                    kind: "tweet".into(),
                    text_ascii: if opts.transliterate {
                        text.as_deref().map(transliterate)
                    } else {
                        None
                    },
                    text,
                    created_at: t
                        .created_at
                        .as_deref()
                        .and_then(|c| {
                            chrono::DateTime::parse_from_str(c, "%a %b %d %H:%M:%S %z %Y").ok()
                        })
                        .map(|d| rfc3339(d.with_timezone(&chrono::Utc))),
                    received_at: received_at.clone(),
                    author: t.user.map(|u| Author {
                        id: u.id_str,
                        name: u.name,
                        username: u.screen_name,
                    }),
                    chat: None,
                    lang: t.lang,
                    source: t.source,
                    matching_rules: Vec::new(),
                    tags: Vec::new(),
                    refs: Refs {
                        tweet_id: Some(t.id_str.clone()),
                        conversation_id: t.in_reply_to_status_id_str,
                        ..Refs::default()
                    },
                    run: opts.run.clone(),
                    raw,
                }
            } else {
                let event_id = serde_json::from_str::<serde_json::Value>(item.get())
                    .ok()
                    .and_then(|v| {
                        v.get("id").map(|id| {
                            id.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| id.to_string())
                        })
                    })
                    .unwrap_or_else(|| crate::state::secret_fingerprint(item.get()));
                Record {
                    id: format!("twitter:activity:{for_user}:{kind}:{event_id}"),
                    platform: Platform::Twitter,
                    kind: "activity_event".into(),
                    text: None,
                    text_ascii: None,
                    created_at: None,
                    received_at: received_at.clone(),
                    author: None,
                    chat: None,
                    lang: None,
                    source: None,
                    matching_rules: Vec::new(),
                    tags: vec![kind.clone()],
                    refs: Refs::default(),
                    run: opts.run.clone(),
                    raw,
                }
            };
            records.push(record);
        }
    }
    Ok(records)
}

async fn events(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let sig = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if !signature_valid(&s.config.consumer_secret, &body, sig) {
        warn!("Account Activity POST with a missing or bad signature refused");
        return (
            StatusCode::UNAUTHORIZED,
            "bad or missing x-twitter-webhooks-signature\n",
        )
            .into_response();
    }
    let received_at: Arc<str> = rfc3339(chrono::Utc::now()).into();
    let records = match body_to_records(&body, &received_at, &s.ctx) {
        Ok(r) => r,
        Err(e) => {
            SourceCounters::add(&s.ctx.counters.malformed, 1);
            let _ = s
                .ctx
                .dead_letters
                .source_input("twitter-webhook", &e, &body, body.len());
            return (StatusCode::BAD_REQUEST, "unusable body\n").into_response();
        }
    };
    if records.is_empty() {
        return (StatusCode::OK, "ok\n").into_response();
    }
    let n = records.len();
    SourceCounters::add(&s.ctx.counters.records, n as u64);
    match deliver_and_wait(
        &s.out,
        records.into_iter().map(Arc::new).collect(),
        s.config.ack_timeout,
    )
    .await
    {
        Some(ack) if ack.accepted == n && ack.outcome == Outcome::Delivered => {
            (StatusCode::OK, "ok\n").into_response()
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "not confirmed by every sink yet; retry\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_a_fixed_vector() {
        // python3 -c "import hmac,hashlib,base64;print(base64.b64encode(hmac.new(b'consumer-secret',b'crc-token-123',hashlib.sha256).digest()).decode())"
        let s = Secret::new("consumer-secret");
        assert_eq!(
            signature(&s, b"crc-token-123"),
            format!("sha256={}", CRC_VECTOR)
        );
    }

    const CRC_VECTOR: &str = include_str!("../../../tests/fixtures/crc_vector.txt").trim_ascii();

    #[test]
    fn signatures_are_checked() {
        let s = Secret::new("k");
        let sig = signature(&s, b"body");
        assert!(signature_valid(&s, b"body", Some(&sig)));
        assert!(!signature_valid(&s, b"body2", Some(&sig)));
        assert!(!signature_valid(&s, b"body", None));
        assert!(!signature_valid(&s, b"body", Some("sha256=not base64!")));
        assert!(!signature_valid(
            &s,
            b"body",
            Some(sig.trim_start_matches("sha256="))
        ));
        assert!(!signature_valid(&Secret::new("other"), b"body", Some(&sig)));
    }
}
