//! `ingest telegram`: the flags of both Telegram modes (long polling, webhook).

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

use super::{MediaArgs, RunArgs};

#[derive(Debug, Args)]
pub struct TelegramArgs {
    /// Keep only updates from this chat (repeat for several); the others are confirmed and skipped.
    #[arg(
        long = "chat-id",
        value_name = "ID",
        env = "INGEST_CHAT_ID",
        value_delimiter = ',',
        allow_negative_numbers = true,
        value_parser = parse_chat_id
    )]
    pub chat_ids: Vec<i64>,

    /// Stop once a poll finds nothing pending: drain, deliver, commit, exit (for cron).
    #[arg(long, env = "INGEST_UNTIL_IDLE", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new(), conflicts_with = "webhook")]
    pub until_idle: bool,

    /// Receive updates by webhook on this address instead of polling: HTTPS with
    /// --tls-cert/--tls-key, else plain HTTP (then put a TLS proxy in front).
    #[arg(long, env = "INGEST_WEBHOOK", value_name = "ADDR")]
    pub webhook: Option<String>,

    /// Secret token Telegram must send in X-Telegram-Bot-Api-Secret-Token (webhook mode).
    #[arg(
        long,
        env = "TELEGRAM_SECRET_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub secret_token: Option<String>,

    /// URL path of the webhook.
    #[arg(long, env = "INGEST_WEBHOOK_PATH", value_name = "PATH")]
    pub webhook_path: Option<String>,

    /// Serve HTTPS with this PEM certificate (chain); with --tls-key. Without: plain HTTP behind a proxy.
    #[arg(
        long,
        env = "INGEST_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key",
        requires = "webhook"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key for --tls-cert.
    #[arg(
        long,
        env = "INGEST_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Call setWebhook with this public URL (and the secret token) before listening.
    #[arg(
        long,
        env = "INGEST_SET_WEBHOOK",
        value_name = "URL",
        requires = "webhook"
    )]
    pub set_webhook: Option<String>,

    /// Call deleteWebhook (keeping pending updates) before polling.
    #[arg(long, env = "INGEST_DELETE_WEBHOOK", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new(), conflicts_with = "webhook")]
    pub delete_webhook: bool,

    /// Base URL of the Bot API.
    #[arg(long, env = "INGEST_TELEGRAM_API_BASE", value_name = "URL")]
    pub telegram_api_base: Option<String>,

    /// Long-poll timeout in seconds (default 30, at most 50).
    #[arg(long, env = "INGEST_POLL_TIMEOUT", value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(0..=50))]
    pub poll_timeout: Option<u32>,

    /// Update types to receive (`allowed_updates`), comma-separated.
    #[arg(
        long,
        env = "INGEST_ALLOWED_UPDATES",
        value_name = "TYPES",
        value_delimiter = ','
    )]
    pub allowed_updates: Vec<String>,

    /// Start the built-in mock Telegram API in process and capture from it (no bot needed).
    #[arg(long, env = "INGEST_MOCK", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new(), conflicts_with = "webhook")]
    pub mock: bool,

    /// Scenario file for --mock (queue, pace, faults); see examples/telegram-scenario.toml.
    #[arg(
        long,
        env = "INGEST_MOCK_SCENARIO",
        value_name = "FILE",
        requires = "mock"
    )]
    pub mock_scenario: Option<PathBuf>,

    #[command(flatten)]
    pub media: MediaArgs,

    #[command(flatten)]
    pub run: RunArgs,
}

/// A numeric chat id; a `@name` or a bare name is refused with how to find the id.
fn parse_chat_id(s: &str) -> Result<i64, String> {
    s.trim().parse::<i64>().map_err(|_| {
        format!(
            "`{s}` is not a chat id: Telegram filters by the numeric id (a channel's or group's is negative, like -1001234567890), not by name. Find it in a captured record's `chat.id` (run without --chat-id, or `ingest telegram --until-idle --sink stdout`)"
        )
    })
}
