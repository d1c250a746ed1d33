//! Webhook mode: Telegram POSTs each update. The secret token header is checked
//! in constant time, bodies are capped, and the answer is 200 only once every
//! sink confirmed the update's record — otherwise 503 with `Retry-After`, so
//! Telegram delivers it again. An update is recorded once however often and
//! however concurrently it is redelivered: its `update_id` is claimed before
//! it is recorded (see [`crate::sources::redelivery`]), and a record confirmed
//! after its request already answered 503 still marks the id seen. An update
//! that cannot be used is dead-lettered and answered 200: sending it again
//! cannot make it usable.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::update_to_record;
use crate::pipeline::{Outcome, SourceBatch};
use crate::record::rfc3339;
use crate::secret::Secret;
use crate::sources::redelivery::{Claim, Redeliveries};
use crate::sources::webhook_server::{ServerLimits, TlsFiles, serve};
use crate::sources::{Source, SourceContext, SourceCounters, SourceError};

/// The header Telegram sends the secret token in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// Webhook options.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub listen: String,
    pub path: String,
    pub secret_token: Secret,
    pub chat_ids: Vec<i64>,
    /// Connection, header, body and shutdown limits of the server.
    pub limits: ServerLimits,
    /// How long a request waits for the sinks before answering 503.
    pub ack_timeout: Duration,
    /// Recent `update_id`s remembered to record redeliveries once.
    pub dedupe_window: usize,
    /// Serve HTTPS with these files; plain HTTP without.
    pub tls: Option<TlsFiles>,
}

/// The webhook source.
pub struct TelegramWebhook {
    pub config: WebhookConfig,
}

struct Shared {
    config: WebhookConfig,
    ctx: SourceContext,
    out: mpsc::Sender<SourceBatch>,
    updates: Arc<Redeliveries<i64>>,
}

/// Constant-time check of a header against the expected secret.
pub fn secret_matches(headers: &HeaderMap, name: &str, expected: &Secret) -> bool {
    let got = headers.get(name).map(|v| v.as_bytes()).unwrap_or(b"");
    let want = expected.expose().as_bytes();
    // Length differences leak only the length; the bytes compare in constant time.
    got.len() == want.len() && bool::from(got.ct_eq(want))
}

impl Source for TelegramWebhook {
    fn name(&self) -> &'static str {
        "telegram"
    }

    async fn run(
        self,
        ctx: SourceContext,
        out: mpsc::Sender<SourceBatch>,
        shutdown: CancellationToken,
    ) -> Result<(), SourceError> {
        let limits = self.config.limits;
        let path = self.config.path.clone();
        let listen = self.config.listen.clone();
        let tls = self.config.tls.clone();
        let shared = Arc::new(Shared {
            updates: Redeliveries::new(self.config.dedupe_window),
            config: self.config,
            ctx,
            out,
        });
        let app = Router::new()
            .route(&path, post(receive))
            .layer(DefaultBodyLimit::max(limits.max_body_bytes))
            .with_state(shared);
        serve(&listen, tls.as_ref(), app, limits, shutdown).await
    }
}

fn status(code: StatusCode, text: &'static str) -> Response {
    (code, text).into_response()
}

fn retry_later() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        "not confirmed by every sink yet; retry\n",
    )
        .into_response()
}

/// Dead-letters an unusable body: 200 once it is kept (a resend cannot fix
/// it), 503 when even the dead-letter file cannot take it.
fn dead_letter(s: &Shared, reason: &str, body: &[u8]) -> Response {
    SourceCounters::add(&s.ctx.counters.malformed, 1);
    match s
        .ctx
        .dead_letters
        .source_input("telegram-webhook", reason, body, body.len())
    {
        Ok(()) => status(StatusCode::OK, "unusable update; dead-lettered\n"),
        Err(e) => {
            warn!(error = %e, "an unusable update could not be dead-lettered; asking Telegram to resend it");
            retry_later()
        }
    }
}

async fn receive(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if !secret_matches(&headers, SECRET_HEADER, &s.config.secret_token) {
        warn!("webhook request with a missing or wrong secret token refused");
        return status(StatusCode::UNAUTHORIZED, "wrong or missing secret token\n");
    }
    let Some(update_id) = super::update_id(&body) else {
        return dead_letter(&s, "not a Telegram update (no update_id)", &body);
    };
    let claim = match s.updates.claim(update_id) {
        Claim::Seen => {
            SourceCounters::add(&s.ctx.counters.duplicates, 1);
            return status(StatusCode::OK, "already recorded\n");
        }
        Claim::InFlight(other) => {
            return if other.recorded_within(s.config.ack_timeout).await {
                SourceCounters::add(&s.ctx.counters.duplicates, 1);
                status(StatusCode::OK, "already recorded\n")
            } else {
                retry_later()
            };
        }
        Claim::Mine(claim) => claim,
    };
    let received_at: Arc<str> = rfc3339(chrono::Utc::now()).into();
    let record = match update_to_record(&body, &received_at, &s.ctx, &s.config.chat_ids) {
        Ok(r) => r,
        Err(e) => {
            let answer = dead_letter(&s, &e.to_string(), &body);
            claim.settle(answer.status() == StatusCode::OK);
            return answer;
        }
    };
    let Some(record) = record else {
        // Filtered out by chat: nothing to record, and done.
        claim.settle(true);
        return status(StatusCode::OK, "ok\n");
    };
    SourceCounters::add(&s.ctx.counters.records, 1);
    let (batch, ack) = SourceBatch::with_ack(vec![record]);
    if s.out.send(batch).await.is_err() {
        return retry_later();
    }
    // The claim is settled when the sinks answer, even if that is after this
    // request gave up: a redelivery then finds the update recorded.
    let outcome = claim.in_flight();
    tokio::spawn(async move {
        let recorded =
            matches!(ack.await, Ok(a) if a.accepted == 1 && a.outcome == Outcome::Delivered);
        claim.settle(recorded);
    });
    if outcome.recorded_within(s.config.ack_timeout).await {
        status(StatusCode::OK, "ok\n")
    } else {
        retry_later()
    }
}
