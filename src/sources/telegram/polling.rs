//! Long polling (`getUpdates`). The offset is a checkpoint in the state dir that
//! advances only once every sink confirmed every record of the poll (updates
//! filtered out by `--chat-id` are confirmed with them). A lock file per bot
//! keeps a second run from polling the same bot.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::api::{TelegramApi, TelegramError};
use super::update_to_record;
use crate::pipeline::{Outcome, SourceBatch};
use crate::record::{Record, rfc3339};
use crate::retry::Backoff;
use crate::sources::{Source, SourceContext, SourceCounters, SourceError};
use crate::state::{Checkpoint, LockFile, secret_fingerprint};

/// Longest long-poll Telegram allows.
pub const MAX_POLL_TIMEOUT_SECS: u32 = 50;
/// Most updates one `getUpdates` returns.
pub const MAX_LIMIT: u32 = 100;

/// Polling options.
#[derive(Debug, Clone)]
pub struct PollingConfig {
    pub chat_ids: Vec<i64>,
    pub allowed_updates: Vec<String>,
    pub poll_timeout_secs: u32,
    pub until_idle: bool,
    pub delete_webhook: bool,
}

/// Why polling stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum PollingError {
    #[error("Telegram refused the bot token ({code}: {description}); check TELEGRAM_BOT_TOKEN")]
    Unauthorized { code: u16, description: String },
    #[error(
        "a webhook is set for this bot ({url}), so getUpdates cannot work; rerun with --delete-webhook (pending updates are kept), or capture with --webhook"
    )]
    WebhookSet { url: String },
    #[error(
        "another program is polling this bot (Telegram: {0}); stop it: only one getUpdates poller per bot can run"
    )]
    OtherPoller(String),
    #[error(
        "a sink did not take the records of updates up to {last_update_id}; the offset stays at {offset}, so a rerun retries them (see the dead-letter file)"
    )]
    NotConfirmed { offset: i64, last_update_id: i64 },
}

#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    /// The next offset to ask for: every update below it is confirmed.
    offset: i64,
}

/// The `getUpdates` source.
pub struct TelegramPolling {
    pub api: TelegramApi,
    pub config: PollingConfig,
}

impl Source for TelegramPolling {
    fn name(&self) -> &'static str {
        "telegram"
    }

    async fn run(
        self,
        ctx: SourceContext,
        out: mpsc::Sender<SourceBatch>,
        shutdown: CancellationToken,
    ) -> Result<(), SourceError> {
        let bot = secret_fingerprint(self.api.token().expose());
        let _lock = LockFile::acquire(
            ctx.state_dir.join(format!("telegram-{bot}.lock")),
            "this Telegram bot",
        )?;
        let checkpoint = Checkpoint::new(ctx.state_dir.join(format!("telegram-{bot}.offset.json")));
        let mut offset = checkpoint.load::<Saved>()?.map_or(0, |s| s.offset);
        info!(offset, checkpoint = %checkpoint.path().display(), "polling Telegram");
        if self.config.delete_webhook {
            info!("deleting the webhook (pending updates are kept)");
            self.api
                .delete_webhook()
                .await
                .map_err(|e| SourceError::Telegram(e.to_string()))?;
        }
        let timeout = if self.config.until_idle {
            0
        } else {
            self.config.poll_timeout_secs.min(MAX_POLL_TIMEOUT_SECS)
        };
        let start_offset = offset;
        let result = self
            .poll(&ctx, &out, &shutdown, &checkpoint, &mut offset, timeout)
            .await;
        if offset != start_offset {
            // Tell Telegram what is confirmed now rather than at the next run (best effort).
            let _ = self
                .api
                .get_updates(offset, 1, 0, &self.config.allowed_updates)
                .await;
        }
        result
    }
}

impl TelegramPolling {
    async fn poll(
        &self,
        ctx: &SourceContext,
        out: &mpsc::Sender<SourceBatch>,
        shutdown: &CancellationToken,
        checkpoint: &Checkpoint,
        offset: &mut i64,
        timeout: u32,
    ) -> Result<(), SourceError> {
        let mut backoff_attempt = 0u32;
        let backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let polled = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                r = self.api.get_updates(*offset, MAX_LIMIT, timeout, &self.config.allowed_updates) => r,
            };
            SourceCounters::add(&ctx.counters.connections, 1);
            let updates = match polled {
                Ok(u) => {
                    backoff_attempt = 0;
                    SourceCounters::add(&ctx.counters.connected, 1);
                    u
                }
                Err(e) => {
                    let wait = match &e {
                        TelegramError::Api {
                            code: 401 | 404,
                            description,
                            ..
                        } => {
                            return Err(PollingError::Unauthorized {
                                code: e.code().unwrap_or(401),
                                description: description.clone(),
                            }
                            .into());
                        }
                        TelegramError::Api {
                            code: 409,
                            description,
                            ..
                        } => {
                            let info = self.api.webhook_info().await.unwrap_or_default();
                            if !info.url.is_empty() {
                                return Err(PollingError::WebhookSet { url: info.url }.into());
                            }
                            return Err(PollingError::OtherPoller(description.clone()).into());
                        }
                        TelegramError::Api {
                            code: 429,
                            retry_after,
                            ..
                        } => Duration::from_secs(retry_after.unwrap_or(5)),
                        _ => {
                            backoff_attempt += 1;
                            backoff.delay(backoff_attempt)
                        }
                    };
                    ctx.counters.reconnected(match &e {
                        TelegramError::Api { code: 429, .. } => "rate_limited",
                        TelegramError::Network { .. } => "network_error",
                        _ => "http_error",
                    });
                    warn!(error = %e, wait_ms = wait.as_millis() as u64, "getUpdates failed; waiting");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
            };
            if updates.is_empty() {
                if self.config.until_idle {
                    info!("no pending updates: done (--until-idle)");
                    return Ok(());
                }
                continue;
            }
            let received_at: Arc<str> = rfc3339(chrono::Utc::now()).into();
            let mut records: Vec<Arc<Record>> = Vec::with_capacity(updates.len());
            let mut record_update_ids: Vec<i64> = Vec::with_capacity(updates.len());
            let mut last_update_id = *offset - 1;
            for raw in &updates {
                let bytes = raw.get().as_bytes();
                let id = super::update_id(bytes);
                if let Some(id) = id {
                    last_update_id = last_update_id.max(id);
                }
                match update_to_record(bytes, &received_at, ctx, &self.config.chat_ids) {
                    Ok(Some(r)) => {
                        records.push(r);
                        record_update_ids.push(id.unwrap_or(last_update_id));
                    }
                    Ok(None) => debug!(update_id = ?id, "update filtered out by --chat-id"),
                    Err(e) => {
                        SourceCounters::add(&ctx.counters.malformed, 1);
                        warn!(error = %e, "unusable update dead-lettered");
                        ctx.dead_letters.source_input(
                            "telegram",
                            &e.to_string(),
                            bytes,
                            bytes.len(),
                        )?;
                    }
                }
            }
            let next = if records.is_empty() {
                last_update_id + 1
            } else {
                let n = records.len();
                SourceCounters::add(&ctx.counters.records, n as u64);
                let (batch, ack) = SourceBatch::with_ack(records);
                if out.send(batch).await.is_err() {
                    return Ok(());
                }
                let Ok(ack) = ack.await else { return Ok(()) };
                if ack.outcome != Outcome::Delivered {
                    return Err(PollingError::NotConfirmed {
                        offset: *offset,
                        last_update_id,
                    }
                    .into());
                }
                if ack.accepted < n {
                    // A record limit cut the batch: confirm only what went in.
                    match ack.accepted.checked_sub(1).map(|i| record_update_ids[i]) {
                        Some(id) => id + 1,
                        None => *offset,
                    }
                } else {
                    last_update_id + 1
                }
            };
            if next != *offset {
                checkpoint.save(&Saved { offset: next })?;
                ctx.counters.checkpointed();
                debug!(offset = next, "offset committed");
                *offset = next;
            }
        }
    }
}
