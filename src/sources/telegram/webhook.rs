//! Webhook mode: Telegram POSTs each update. The secret token header is checked
//! in constant time, bodies are capped, and the answer is 200 only once every
//! sink confirmed the update's record — otherwise 503 with `Retry-After`, so
//! Telegram delivers it again. Redelivered `update_id`s are recorded once.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
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
use tracing::{info, warn};

use super::update_to_record;
use crate::pipeline::{Outcome, SourceBatch};
use crate::record::rfc3339;
use crate::secret::Secret;
use crate::sources::{Source, SourceContext, SourceCounters, SourceError, deliver_and_wait};

/// The header Telegram sends the secret token in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// Webhook options.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub listen: String,
    pub path: String,
    pub secret_token: Secret,
    pub chat_ids: Vec<i64>,
    pub max_body_bytes: usize,
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
    seen: Mutex<(HashSet<i64>, VecDeque<i64>)>,
}

/// Constant-time check of a header against the expected secret.
pub fn secret_matches(headers: &HeaderMap, name: &str, expected: &Secret) -> bool {
    let got = headers.get(name).map(|v| v.as_bytes()).unwrap_or(b"");
    let want = expected.expose().as_bytes();
    // Length differences leak only the length; the bytes compare in constant time.
    got.len() == want.len() && bool::from(got.ct_eq(want))
}

/// TLS certificate and key (PEM files) for a webhook listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Binds, serves (over TLS with `tls`) until `shutdown`, and drains in-flight requests.
pub async fn serve(
    listen: &str,
    tls: Option<&TlsFiles>,
    app: Router,
    shutdown: CancellationToken,
) -> Result<(), SourceError> {
    let listen_err = |source| SourceError::Listen {
        addr: listen.to_owned(),
        source,
    };
    let Some(tls) = tls else {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(listen_err)?;
        let addr = listener.local_addr().map_err(listen_err)?;
        info!(%addr, "webhook listening (plain HTTP)");
        return axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(listen_err);
    };
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
        .await
        .map_err(|e| SourceError::Listen {
            addr: listen.to_owned(),
            source: std::io::Error::new(
                e.kind(),
                format!(
                    "TLS certificate {} / key {}: {e}",
                    tls.cert.display(),
                    tls.key.display()
                ),
            ),
        })?;
    let addr: std::net::SocketAddr = tokio::net::lookup_host(listen)
        .await
        .map_err(listen_err)?
        .next()
        .ok_or_else(|| listen_err(std::io::Error::other("the address resolves to nothing")))?;
    let handle = axum_server::Handle::new();
    {
        let handle = handle.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            handle.graceful_shutdown(Some(Duration::from_secs(30)));
        });
    }
    let server = axum_server::bind_rustls(addr, config).handle(handle.clone());
    let serving = tokio::spawn(server.serve(app.into_make_service()));
    if let Some(bound) = handle.listening().await {
        info!(addr = %bound, "webhook listening (TLS)");
    }
    serving
        .await
        .map_err(|e| listen_err(std::io::Error::other(e)))?
        .map_err(listen_err)
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
        let limit = self.config.max_body_bytes;
        let path = self.config.path.clone();
        let listen = self.config.listen.clone();
        let tls = self.config.tls.clone();
        let shared = Arc::new(Shared {
            config: self.config,
            ctx,
            out,
            seen: Mutex::new((HashSet::new(), VecDeque::new())),
        });
        let app = Router::new()
            .route(&path, post(receive))
            .layer(DefaultBodyLimit::max(limit))
            .with_state(shared);
        serve(&listen, tls.as_ref(), app, shutdown).await
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
        SourceCounters::add(&s.ctx.counters.malformed, 1);
        let _ = s.ctx.dead_letters.source_input(
            "telegram-webhook",
            "not a Telegram update (no update_id)",
            &body,
            body.len(),
        );
        return status(StatusCode::BAD_REQUEST, "not a Telegram update\n");
    };
    if s.seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .0
        .contains(&update_id)
    {
        SourceCounters::add(&s.ctx.counters.duplicates, 1);
        return status(StatusCode::OK, "already recorded\n");
    }
    let received_at: Arc<str> = rfc3339(chrono::Utc::now()).into();
    let record = match update_to_record(&body, &received_at, &s.ctx, &s.config.chat_ids) {
        Ok(r) => r,
        Err(e) => {
            SourceCounters::add(&s.ctx.counters.malformed, 1);
            let _ = s.ctx.dead_letters.source_input(
                "telegram-webhook",
                &e.to_string(),
                &body,
                body.len(),
            );
            return status(StatusCode::BAD_REQUEST, "unusable update\n");
        }
    };
    if let Some(record) = record {
        SourceCounters::add(&s.ctx.counters.records, 1);
        match deliver_and_wait(&s.out, vec![record], s.config.ack_timeout).await {
            Some(ack) if ack.accepted == 1 && ack.outcome == Outcome::Delivered => {}
            _ => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "5")],
                    "not confirmed by every sink yet; retry\n",
                )
                    .into_response();
            }
        }
    }
    let mut seen = s.seen.lock().unwrap_or_else(|p| p.into_inner());
    if seen.0.insert(update_id) {
        seen.1.push_back(update_id);
        if seen.1.len() > s.config.dedupe_window
            && let Some(old) = seen.1.pop_front()
        {
            seen.0.remove(&old);
        }
    }
    status(StatusCode::OK, "ok\n")
}
