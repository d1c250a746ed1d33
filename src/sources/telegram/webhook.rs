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
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::update_to_record;
use crate::secret::Secret;
use crate::sources::http::{ServerLimits, TlsFiles, retry_later, serve};
use crate::sources::redelivery::{Delivered, RecordOnce};
use crate::sources::{Origin, Source, SourceContext, SourceError, SourceOutput, received_now};

const ORIGIN: Origin = Origin {
    label: "telegram-webhook",
    item: "update",
};

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

/// Recent `update_id`s the webhook remembers by default.
pub const DEFAULT_UPDATE_WINDOW: usize = 100_000;

/// The webhook source.
pub struct TelegramWebhook {
    pub config: WebhookConfig,
}

struct Shared {
    config: WebhookConfig,
    ctx: SourceContext,
    once: RecordOnce<i64>,
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
        out: SourceOutput,
        shutdown: CancellationToken,
    ) -> Result<(), SourceError> {
        let limits = self.config.limits;
        let path = self.config.path.clone();
        let listen = self.config.listen.clone();
        let tls = self.config.tls.clone();
        let (window, ack_timeout) = (self.config.dedupe_window, self.config.ack_timeout);
        let shared = Arc::new(Shared {
            once: RecordOnce::new(window, ack_timeout, out, ORIGIN),
            config: self.config,
            ctx,
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

async fn receive(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if !secret_matches(&headers, SECRET_HEADER, &s.config.secret_token) {
        warn!("webhook request with a missing or wrong secret token refused");
        return status(StatusCode::UNAUTHORIZED, "wrong or missing secret token\n");
    }
    let Some(update_id) = super::update_id(&body) else {
        return answer(
            s.once
                .dead_letter("not a Telegram update (no update_id)", &body),
        );
    };
    let make = || {
        let received_at = received_now();
        match update_to_record(&body, &received_at, &s.ctx, &s.config.chat_ids) {
            // Filtered out by chat: nothing to record, and done.
            Ok(record) => Ok(record.into_iter().collect()),
            Err(e) => Err(e.to_string()),
        }
    };
    let delivered = s.once.record(update_id, &body, make).await;
    answer(delivered)
}

fn answer(delivered: Delivered) -> Response {
    match delivered {
        Delivered::Recorded => status(StatusCode::OK, "ok\n"),
        Delivered::Duplicate => status(StatusCode::OK, "already recorded\n"),
        Delivered::DeadLettered => status(StatusCode::OK, "unusable update; dead-lettered\n"),
        Delivered::RetryLater => retry_later(),
    }
}
