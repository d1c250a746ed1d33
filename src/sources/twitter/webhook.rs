//! The X Account Activity API webhook: answers CRC challenges, accepts only
//! POSTs signed with the consumer secret, turns `tweet_create_events` into
//! `tweet` records and every other event into an `activity_event` record.
//!
//! The CRC answer and a POST's signature are the same HMAC of the same secret,
//! so the CRC endpoint must never sign something that could be a body: it
//! answers only tokens shaped like X's ([`crc_token_shaped`]: short, a
//! base64/URL-safe charset, never JSON) and at most [`CRC_PER_MINUTE`] per
//! client. A signed body delivered again (X retries, or a replay) is recorded
//! once: bodies are claimed by their SHA-256 before they are recorded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::pipeline::{Outcome, SourceBatch};
use crate::record::{Author, Platform, Record, Refs, rfc3339, transliterate};
use crate::secret::Secret;
use crate::sources::redelivery::{Claim, Redeliveries};
use crate::sources::webhook_server::{PerClientLimit, ServerLimits, TlsFiles, serve};
use crate::sources::{Source, SourceContext, SourceCounters, SourceError};

/// The signature header of Account Activity POSTs.
pub const SIGNATURE_HEADER: &str = "x-twitter-webhooks-signature";
/// The longest `crc_token` answered.
pub const MAX_CRC_TOKEN_BYTES: usize = 256;
/// CRC requests answered per client and minute; past it 429.
pub const CRC_PER_MINUTE: u32 = 10;
/// Signed bodies remembered to record a replay once.
pub const DEFAULT_BODY_WINDOW: usize = 100_000;

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

/// Whether a `crc_token` looks like one X sends (a short random token of
/// `[A-Za-z0-9_=+/.-]`), so that its HMAC cannot serve as the signature of a
/// forged event: a body is JSON, and no JSON value passes.
pub fn crc_token_shaped(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_CRC_TOKEN_BYTES
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-=+/.".contains(&b))
        && serde_json::from_str::<serde::de::IgnoredAny>(token).is_err()
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
    /// Connection, header, body and shutdown limits of the server.
    pub limits: ServerLimits,
    pub ack_timeout: Duration,
    /// Signed bodies remembered (by hash) to record a replay once.
    pub dedupe_window: usize,
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
    crc_limit: PerClientLimit,
    bodies: Arc<Redeliveries<[u8; 32]>>,
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
        let (path, listen, limits) = (
            self.config.path.clone(),
            self.config.listen.clone(),
            self.config.limits,
        );
        let tls = self.config.tls.clone();
        let shared = Arc::new(Shared {
            crc_limit: PerClientLimit::new(CRC_PER_MINUTE),
            bodies: Redeliveries::new(self.config.dedupe_window),
            config: self.config,
            ctx,
            out,
        });
        let app = Router::new()
            .route(&path, get(crc).post(events))
            .layer(DefaultBodyLimit::max(limits.max_body_bytes))
            .with_state(shared);
        serve(&listen, tls.as_ref(), app, limits, shutdown).await
    }
}

#[derive(Deserialize)]
struct Crc {
    crc_token: Option<String>,
}

async fn crc(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<Crc>,
) -> Response {
    if !s.crc_limit.allow(peer.ip()) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "60")],
            "too many CRC requests; retry later\n",
        )
            .into_response();
    }
    match q.crc_token.filter(|t| !t.is_empty()) {
        Some(token) if crc_token_shaped(&token) => {
            let body = serde_json::json!({ "response_token": signature(&s.config.consumer_secret, token.as_bytes()) });
            axum::Json(body).into_response()
        }
        Some(_) => {
            warn!(client = %peer.ip(), "CRC request with a token not shaped like X's refused");
            (
                StatusCode::BAD_REQUEST,
                "crc_token is not shaped like X's (up to 256 of A-Z a-z 0-9 _ - = + / .)\n",
            )
                .into_response()
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
    let claim = match s.bodies.claim(Sha256::digest(&body).into()) {
        Claim::Seen => {
            SourceCounters::add(&s.ctx.counters.duplicates, 1);
            return (StatusCode::OK, "already recorded\n").into_response();
        }
        Claim::InFlight(other) => {
            return if other.recorded_within(s.config.ack_timeout).await {
                SourceCounters::add(&s.ctx.counters.duplicates, 1);
                (StatusCode::OK, "already recorded\n").into_response()
            } else {
                retry_later()
            };
        }
        Claim::Mine(claim) => claim,
    };
    let received_at: Arc<str> = rfc3339(chrono::Utc::now()).into();
    let records = match body_to_records(&body, &received_at, &s.ctx) {
        Ok(r) => r,
        Err(e) => {
            // Kept in the dead-letter file; a resend cannot make it usable.
            SourceCounters::add(&s.ctx.counters.malformed, 1);
            return match s
                .ctx
                .dead_letters
                .source_input("twitter-webhook", &e, &body, body.len())
            {
                Ok(()) => {
                    claim.settle(true);
                    (StatusCode::OK, "unusable body; dead-lettered\n").into_response()
                }
                Err(e) => {
                    warn!(error = %e, "an unusable body could not be dead-lettered; asking X to resend it");
                    retry_later()
                }
            };
        }
    };
    if records.is_empty() {
        claim.settle(true);
        return (StatusCode::OK, "ok\n").into_response();
    }
    let n = records.len();
    SourceCounters::add(&s.ctx.counters.records, n as u64);
    let (batch, ack) = SourceBatch::with_ack(records.into_iter().map(Arc::new).collect());
    if s.out.send(batch).await.is_err() {
        return retry_later();
    }
    // Settled when the sinks answer, even after this request gave up.
    let outcome = claim.in_flight();
    tokio::spawn(async move {
        let recorded =
            matches!(ack.await, Ok(a) if a.accepted == n && a.outcome == Outcome::Delivered);
        claim.settle(recorded);
    });
    if outcome.recorded_within(s.config.ack_timeout).await {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        retry_later()
    }
}

fn retry_later() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        "not confirmed by every sink yet; retry\n",
    )
        .into_response()
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
    fn only_tokens_shaped_like_x_are_answered() {
        for good in [
            "crc-token-123",
            "OTNiZmQ5ZjItYzYxNy00NmVmLWE0ZjQtNjM4NmI4NGZmMmQy",
            "a+b/c=d_e.f",
            &"A".repeat(MAX_CRC_TOKEN_BYTES),
        ] {
            assert!(crc_token_shaped(good), "{good}");
        }
        for bad in [
            "",
            r#"{"for_user_id":"1","tweet_create_events":[]}"#,
            "[1]",
            "\"s\"",
            "12345",
            "1.5e3",
            "-7",
            "true",
            "null",
            "a b",
            "tok\n",
            &"A".repeat(MAX_CRC_TOKEN_BYTES + 1),
        ] {
            assert!(!crc_token_shaped(bad), "{bad:?}");
        }
    }

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
