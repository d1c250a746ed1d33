//! Long polling (`getUpdates`). The offset is a checkpoint in the state dir that
//! advances only once every sink confirmed every record of the poll (updates
//! filtered out by `--chat-id` are confirmed with them). A lock file per bot
//! keeps a second run from polling the same bot.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::api::{TelegramApi, TelegramError};
use super::update_to_record;
use crate::pipeline::Outcome;
use crate::retry::Backoff;
use crate::sources::{
    Origin, Source, SourceContext, SourceCounters, SourceError, SourceOutput, Tracked, received_now,
};
use crate::state::{Checkpoint, LockFile, secret_fingerprint};

/// Longest long-poll Telegram allows.
pub const MAX_POLL_TIMEOUT_SECS: u32 = 50;
/// Default long-poll timeout (`[telegram] poll_timeout_secs`, `--poll-timeout`).
pub const DEFAULT_POLL_TIMEOUT_SECS: u32 = 30;
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

const ORIGIN: Origin = Origin {
    label: "telegram",
    item: "update",
};

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
        out: SourceOutput,
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
    /// Polls, sends each poll's records and waits for their ack, and moves the
    /// offset to what the sinks confirmed.
    async fn poll(
        &self,
        ctx: &SourceContext,
        out: &SourceOutput,
        shutdown: &CancellationToken,
        checkpoint: &Checkpoint,
        offset: &mut i64,
        timeout: u32,
    ) -> Result<(), SourceError> {
        let mut failures = 0u32;
        loop {
            let Some(updates) = self
                .next_updates(ctx, shutdown, *offset, timeout, &mut failures)
                .await?
            else {
                return Ok(());
            };
            if updates.is_empty() {
                if self.config.until_idle {
                    info!("no pending updates: done (--until-idle)");
                    return Ok(());
                }
                continue;
            }
            let batch = self.to_batch(&updates, ctx, out, *offset)?;
            let last_update_id = batch.end() as i64 - 1;
            let Some(confirmed) = out.send_and_wait(batch).await else {
                return Ok(());
            };
            if confirmed.outcome != Outcome::Delivered {
                return Err(PollingError::NotConfirmed {
                    offset: *offset,
                    last_update_id,
                }
                .into());
            }
            let next = confirmed.upto as i64;
            if next != *offset {
                checkpoint.save(&Saved { offset: next })?;
                ctx.counters.checkpointed();
                debug!(offset = next, "offset committed");
                *offset = next;
            }
        }
    }

    /// The next `getUpdates` answer, waiting out transient failures; `None` on stop.
    async fn next_updates(
        &self,
        ctx: &SourceContext,
        shutdown: &CancellationToken,
        offset: i64,
        timeout: u32,
        failures: &mut u32,
    ) -> Result<Option<Vec<Box<RawValue>>>, SourceError> {
        let backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
        loop {
            if shutdown.is_cancelled() {
                return Ok(None);
            }
            let polled = tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                r = self.api.get_updates(offset, MAX_LIMIT, timeout, &self.config.allowed_updates) => r,
            };
            SourceCounters::add(&ctx.counters.connections, 1);
            let e = match polled {
                Ok(u) => {
                    *failures = 0;
                    SourceCounters::add(&ctx.counters.connected, 1);
                    return Ok(Some(u));
                }
                Err(e) => e,
            };
            let wait = match &e {
                TelegramError::Api {
                    code: 429,
                    retry_after,
                    ..
                } => Duration::from_secs(retry_after.unwrap_or(5)),
                TelegramError::Api {
                    code: 401 | 404 | 409,
                    ..
                } => {
                    return Err(self.fatal(e).await.into());
                }
                _ => {
                    *failures += 1;
                    backoff.delay(*failures)
                }
            };
            ctx.counters.reconnected(match &e {
                TelegramError::Api { code: 429, .. } => "rate_limited",
                TelegramError::Network { .. } => "network_error",
                _ => "http_error",
            });
            warn!(error = %e, wait_ms = wait.as_millis() as u64, "getUpdates failed; waiting");
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// What a 401, 404 or 409 from `getUpdates` means for the user.
    async fn fatal(&self, e: TelegramError) -> PollingError {
        let code = e.code().unwrap_or(401);
        let TelegramError::Api { description, .. } = e else {
            unreachable!("only API errors are fatal")
        };
        if code != 409 {
            return PollingError::Unauthorized { code, description };
        }
        let info = self.api.webhook_info().await.unwrap_or_default();
        if !info.url.is_empty() {
            return PollingError::WebhookSet { url: info.url };
        }
        PollingError::OtherPoller(description)
    }

    /// One poll's updates as records, each at its `update_id`; updates filtered
    /// out by `--chat-id` move the offset with them, unusable ones are dead-lettered.
    fn to_batch(
        &self,
        updates: &[Box<RawValue>],
        ctx: &SourceContext,
        out: &SourceOutput,
        offset: i64,
    ) -> Result<Tracked, SourceError> {
        let received_at = received_now();
        let mut batch = Tracked::starting_at(offset.max(0) as u64);
        for raw in updates {
            let bytes = raw.get().as_bytes();
            let id = super::update_id(bytes).and_then(|id| u64::try_from(id).ok());
            let record = match update_to_record(bytes, &received_at, ctx, &self.config.chat_ids) {
                Ok(Some(r)) => Some(r),
                Ok(None) => {
                    debug!(update_id = ?id, "update filtered out by --chat-id");
                    None
                }
                Err(e) => {
                    out.dead_letter(ORIGIN, &e.to_string(), bytes, bytes.len())?;
                    None
                }
            };
            match id {
                Some(id) => batch.push(id, record),
                // No id to place it by: with the update before it.
                None if record.is_some() => batch.push(batch.end().saturating_sub(1), record),
                None => {}
            }
        }
        Ok(batch)
    }
}
