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
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::record::{
    Author, NormalizeOptions, Platform, Record, Refs, hashtag_list, rfc3339, transliterate,
};
use crate::secret::Secret;
use crate::sources::http::{PerClientLimit, ServerLimits, TlsFiles, retry_later, serve};
use crate::sources::redelivery::{Delivered, RecordOnce, Remember};
use crate::sources::twitter::webhooks::memory::{BodyKey, WebhookMemory};
use crate::sources::twitter::webhooks::replay::{STATUS_EVENT, finished_job};
use crate::sources::{Origin, Source, SourceContext, SourceError, SourceOutput, received_now};

/// The signature header of Account Activity POSTs.
pub const SIGNATURE_HEADER: &str = "x-twitter-webhooks-signature";
/// The longest `crc_token` answered.
pub const MAX_CRC_TOKEN_BYTES: usize = 256;
/// CRC requests answered per client and minute; past it 429.
pub const CRC_PER_MINUTE: u32 = 10;
/// Signed bodies remembered to record a replay once.
pub const DEFAULT_BODY_WINDOW: usize = 100_000;

type HmacSha256 = Hmac<Sha256>;

const ORIGIN: Origin = Origin {
    label: "twitter-webhook",
    item: "webhook body",
};

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
    /// The recorded bodies and the last confirmed delivery, kept in the
    /// state dir between runs; `None` keeps the window in memory only.
    pub memory: Option<Arc<WebhookMemory>>,
}

/// The window's link to the state dir: a body recorded by this run is
/// appended to the recorded-bodies file, moves the last confirmed delivery,
/// and counts as replayed while a replay job is under way.
#[derive(Debug)]
struct Remembered {
    memory: Arc<WebhookMemory>,
    counters: Arc<crate::sources::SourceCounters>,
    window: usize,
}

impl Remember<BodyKey> for Remembered {
    fn earlier(&self) -> Vec<BodyKey> {
        self.memory
            .bodies
            .load(self.window)
            .unwrap_or_else(|e| {
                warn!(error = %e, "cannot read the recorded bodies of earlier runs; a redelivery of one of them may be recorded again");
                Vec::new()
            })
    }

    fn recorded(&self, key: &BodyKey) {
        if let Err(e) = self.memory.bodies.append(key) {
            warn!(error = %e, "cannot keep a recorded body's key; after a restart, a redelivery of it may be recorded again");
        }
        if let Err(e) = self.memory.last.confirmed(chrono::Utc::now()) {
            warn!(error = %e, "cannot save the time of the last confirmed delivery");
        }
        if self.memory.replaying() {
            crate::sources::SourceCounters::add(&self.counters.replayed, 1);
        }
    }
}

/// The Account Activity webhook source.
pub struct ActivityWebhook {
    pub config: ActivityConfig,
}

struct Shared {
    config: ActivityConfig,
    ctx: SourceContext,
    crc_limit: PerClientLimit,
    once: RecordOnce<[u8; 32]>,
}

impl Source for ActivityWebhook {
    fn name(&self) -> &'static str {
        "twitter-webhook"
    }

    async fn run(
        self,
        ctx: SourceContext,
        out: SourceOutput,
        shutdown: CancellationToken,
    ) -> Result<(), SourceError> {
        let (path, listen, limits) = (
            self.config.path.clone(),
            self.config.listen.clone(),
            self.config.limits,
        );
        let tls = self.config.tls.clone();
        let (window, ack_timeout) = (self.config.dedupe_window, self.config.ack_timeout);
        let memory = self.config.memory.clone().map(|memory| {
            Arc::new(Remembered {
                memory,
                counters: ctx.counters.clone(),
                window,
            }) as Arc<dyn Remember<BodyKey>>
        });
        let shared = Arc::new(Shared {
            crc_limit: PerClientLimit::new(CRC_PER_MINUTE),
            once: RecordOnce::remembering(window, memory, ack_timeout, out, ORIGIN),
            config: self.config,
            ctx,
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
    /// Read only for hashtags, and leniently: a damaged `entities` loses them, not the post.
    #[serde(default)]
    entities: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct Extended {
    #[serde(default)]
    full_text: Option<String>,
    /// Read only for hashtags, and leniently: a damaged `entities` loses them, not the post.
    #[serde(default)]
    entities: Option<Box<RawValue>>,
}

/// v1.1 `entities`: only the hashtags (`[{text, indices}]`) are read.
#[derive(Deserialize)]
struct V1Entities {
    #[serde(default)]
    hashtags: Vec<V1Hashtag>,
}

#[derive(Deserialize)]
struct V1Hashtag {
    text: String,
}

#[derive(Deserialize)]
struct V1User {
    id_str: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    screen_name: Option<String>,
}

/// Turns one webhook body of any kind X delivers into records
/// ([`kinds`](crate::sources::twitter::webhooks::kinds) tells the kinds apart).
pub fn body_to_records(
    body: &[u8],
    received_at: &Arc<str>,
    ctx: &SourceContext,
) -> Result<Vec<Record>, String> {
    use crate::sources::twitter::webhooks::kinds::{
        BodyKind, classify, stream_posts, unknown_record, x_activity_record,
    };
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let opts = &ctx.normalize;
    let mut records = match classify(&value) {
        BodyKind::AccountActivity => return account_activity_records(body, received_at, ctx),
        BodyKind::FilteredStream => return stream_posts(body, &value, received_at, opts),
        BodyKind::ActivityApi => vec![x_activity_record(&value, text.trim(), opts)],
        BodyKind::Unknown => {
            crate::sources::SourceCounters::add(&ctx.counters.unknown, 1);
            warn!(
                "a webhook body of no known kind recorded as an `activity_event` tagged `unknown`"
            );
            vec![unknown_record(text.trim(), opts)]
        }
    };
    for r in &mut records {
        r.received_at = received_at.clone();
    }
    Ok(records)
}

/// Turns one Account Activity body into records.
fn account_activity_records(
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
            let mut record = if kind == "tweet_create_events" {
                tweet_record(&item, opts).map_err(|e| format!("tweet_create_events: {e}"))?
            } else {
                activity_record(kind, &for_user, &item, opts)
            };
            record.received_at = received_at.clone();
            record.raw = raw.map(crate::record::RawJson::from);
            records.push(record);
        }
    }
    Ok(records)
}

/// A `tweet` record from a v1.1 tweet (`received_at` and `raw` still to set).
fn tweet_record(item: &RawValue, opts: &NormalizeOptions) -> Result<Record, serde_json::Error> {
    let t: V1Tweet = serde_json::from_str(item.get())?;
    // A long post's full text and its entities are in `extended_tweet`.
    let (text, entities) = match t.extended_tweet {
        Some(Extended {
            full_text: Some(full),
            entities,
        }) => (Some(full), entities.or(t.entities)),
        _ => (t.full_text.or(t.text), t.entities),
    };
    let hashtags = entities
        .and_then(|e| serde_json::from_str::<V1Entities>(e.get()).ok())
        .map(|e| hashtag_list(e.hashtags.iter().map(|h| h.text.as_str())))
        .unwrap_or_default();
    Ok(Record {
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
            .and_then(|c| chrono::DateTime::parse_from_str(c, "%a %b %d %H:%M:%S %z %Y").ok())
            .map(|d| rfc3339(d.with_timezone(&chrono::Utc))),
        received_at: Arc::from(""),
        author: t.user.map(|u| Author {
            id: u.id_str,
            name: u.name,
            username: u.screen_name,
        }),
        chat: None,
        lang: t.lang,
        source: t
            .source
            .as_deref()
            .map(crate::sources::twitter::webhooks::kinds::plain_source),
        matching_rules: Vec::new(),
        tags: Vec::new(),
        hashtags,
        refs: Refs {
            tweet_id: Some(t.id_str.clone()),
            conversation_id: t.in_reply_to_status_id_str,
            ..Refs::default()
        },
        media: Vec::new(),
        run: opts.run.clone(),
        raw: None,
    })
}

/// An `activity_event` record for any other event (`received_at` and `raw` still to set).
fn activity_record(kind: &str, for_user: &str, item: &RawValue, opts: &NormalizeOptions) -> Record {
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
        received_at: Arc::from(""),
        author: None,
        chat: None,
        lang: None,
        source: None,
        matching_rules: Vec::new(),
        tags: vec![kind.to_owned()],
        hashtags: Vec::new(),
        refs: Refs::default(),
        media: Vec::new(),
        run: opts.run.clone(),
        raw: None,
    }
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
    if replay_finished(&s, &body) {
        return (StatusCode::OK, "ok\n").into_response();
    }
    let make = || {
        let records = body_to_records(&body, &received_now(), &s.ctx)?;
        Ok(records.into_iter().map(Arc::new).collect())
    };
    let delivered = s
        .once
        .record(Sha256::digest(&body).into(), &body, make)
        .await;
    match delivered {
        Delivered::Recorded => (StatusCode::OK, "ok\n").into_response(),
        Delivered::Duplicate => (StatusCode::OK, "already recorded\n").into_response(),
        Delivered::DeadLettered => {
            (StatusCode::OK, "unusable body; dead-lettered\n").into_response()
        }
        Delivered::RetryLater => retry_later(),
    }
}

/// X's `replay_job_status` event: logged and counted as a control message,
/// not recorded; a finished job ends the replayed count.
fn replay_finished(s: &Shared, body: &[u8]) -> bool {
    if !body
        .windows(STATUS_EVENT.len())
        .any(|w| w == STATUS_EVENT.as_bytes())
    {
        return false;
    }
    let Some((job_id, state)) = serde_json::from_slice(body)
        .ok()
        .and_then(|v: serde_json::Value| finished_job(&v))
    else {
        return false;
    };
    crate::sources::SourceCounters::add(&s.ctx.counters.control, 1);
    tracing::info!(job_id, state, "X says a replay job is over");
    if let Some(memory) = &s.config.memory {
        memory.set_replaying(false);
    }
    true
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

    const CRC_VECTOR: &str = include_str!("../../../../tests/fixtures/crc_vector.txt").trim_ascii();

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

    fn ctx() -> SourceContext {
        use crate::record::RunInfo;
        let run = Arc::new(RunInfo::new(None));
        let state_dir = std::env::temp_dir().join("ingest-webhook-unit-unused");
        SourceContext {
            normalize: NormalizeOptions {
                keep_raw: true,
                transliterate: false,
                run: run.clone(),
                media: false,
            },
            dead_letters: crate::state::DeadLetters::new(&state_dir, &run.id),
            state_dir,
            counters: Arc::new(crate::sources::SourceCounters::default()),
        }
    }

    /// Account Activity posts keep the language and the hashtags X gives
    /// (v1.1 `lang`, `entities.hashtags[].text`; a long post's in
    /// `extended_tweet`).
    #[test]
    fn account_activity_posts_keep_lang_and_hashtags() {
        let body = br##"{"for_user_id":"1","tweet_create_events":[
            {"id_str":"9","text":"hola #F1","lang":"es","entities":{"hashtags":[{"text":"F1","indices":[5,8]}]}},
            {"id_str":"10","text":"cut #a","lang":"en","truncated":true,"entities":{"hashtags":[{"text":"a","indices":[4,6]}]},
             "extended_tweet":{"full_text":"long #a #B","entities":{"hashtags":[{"text":"a","indices":[5,7]},{"text":"B","indices":[8,10]}]}}}
        ]}"##;
        let records = body_to_records(body, &"t".into(), &ctx()).unwrap();
        assert_eq!(records[0].lang.as_deref(), Some("es"));
        assert_eq!(records[0].hashtags, ["F1"]);
        assert_eq!(records[1].text.as_deref(), Some("long #a #B"));
        assert_eq!(records[1].hashtags, ["a", "B"]);
        let line = String::from_utf8(records[0].to_line(crate::record::Format::Record)).unwrap();
        assert!(
            line.contains(r#""lang":"es""#) && line.contains(r#""hashtags":["F1"]"#),
            "{line}"
        );
    }

    #[test]
    fn account_activity_source_is_the_plain_client_name() {
        let body = br#"{"for_user_id":"1","tweet_create_events":[{"id_str":"9","text":"hi","source":"<a href=\"https://mobile.twitter.com\" rel=\"nofollow\">Twitter Web App</a>"}]}"#;
        let records = body_to_records(body, &"t".into(), &ctx()).unwrap();
        assert_eq!(records[0].source.as_deref(), Some("Twitter Web App"));
    }

    #[test]
    fn a_post_from_the_stream_and_from_a_webhook_is_the_same_record() {
        let line = r#"{"data":{"id":"1600000000000000003","text":"hello","author_id":"7","source":"Twitter Web App"},"includes":{"users":[{"id":"7","name":"A","username":"a"}]},"matching_rules":[{"id":"17","tag":"cats"}]}"#;
        let received: Arc<str> = "t".into();
        let ctx = ctx();
        let from_stream = match crate::sources::twitter::normalize_line(
            line.as_bytes(),
            &received,
            &ctx.normalize,
        )
        .unwrap()
        {
            crate::record::Normalized::Record(r) => *r,
            _ => panic!("a post"),
        };
        let from_webhook = body_to_records(line.as_bytes(), &received, &ctx).unwrap();
        assert_eq!(from_webhook.len(), 1);
        let a = serde_json::to_value(&from_stream).unwrap();
        let b = serde_json::to_value(&from_webhook[0]).unwrap();
        assert_eq!(a, b);
        assert_eq!(b["id"], "twitter:1600000000000000003");
        assert_eq!(b["matching_rules"][0]["tag"], "cats");
    }

    #[test]
    fn x_activity_and_unknown_bodies_are_activity_events() {
        let xaa = br#"{"data":{"event_type":"profile.update.bio","filter":{"user_id":"22"},"tag":"bios","payload":{"before":"a","after":"b"}}}"#;
        let r = body_to_records(xaa, &"t".into(), &ctx()).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].kind, "activity_event");
        assert_eq!(r[0].tags, ["profile.update.bio", "bios"]);
        assert!(
            r[0].id
                .starts_with("twitter:activity:22:profile.update.bio:")
        );
        assert_eq!(r[0].received_at.as_ref(), "t");
        let r = body_to_records(br#"{"brand_new":{"id":1}}"#, &"t".into(), &ctx()).unwrap();
        assert_eq!((r.len(), r[0].kind.as_ref()), (1, "activity_event"));
        assert_eq!(
            r[0].raw.as_ref().unwrap().get(),
            r#"{"brand_new":{"id":1}}"#
        );
        assert!(body_to_records(b"{not json", &"t".into(), &ctx()).is_err());
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
