//! `[telegram]`, as written in the config file: both Telegram sources' keys,
//! and [`resolve`], the one place they are resolved (defaults < this table <
//! flags). `max_body_bytes` and `ack_timeout` are the deprecated spellings of
//! the `[webhook]` keys (the loader moves them there, with a warning).

use std::time::Duration;

use serde::Deserialize;

use super::api::DEFAULT_API_BASE;
use super::polling::{DEFAULT_POLL_TIMEOUT_SECS, MAX_POLL_TIMEOUT_SECS};
use crate::duration::de_duration_opt;

/// `[telegram]`: the Telegram sources.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// Base URL of the Bot API.
    pub api_base: Option<String>,
    /// Keep only these chats.
    #[serde(default)]
    pub chat_ids: Vec<i64>,
    /// `allowed_updates`.
    #[serde(default)]
    pub allowed_updates: Vec<String>,
    /// Long-poll timeout (0-50 s).
    pub poll_timeout_secs: Option<u32>,
    /// Webhook URL path.
    pub webhook_path: Option<String>,
    /// Deprecated spelling of `[webhook] max_body_bytes` (moved there at load).
    pub max_body_bytes: Option<usize>,
    /// Deprecated spelling of `[webhook] ack_timeout` (moved there at load).
    #[serde(default, deserialize_with = "de_duration_opt")]
    pub ack_timeout: Option<Duration>,
}

/// What the command line says about `ingest telegram` (flags and `INGEST_*`).
#[derive(Debug, Clone, Default)]
pub struct TelegramFlags {
    pub api_base: Option<String>,
    pub chat_ids: Vec<i64>,
    pub allowed_updates: Vec<String>,
    pub poll_timeout: Option<u32>,
    pub webhook_path: Option<String>,
}

/// Both Telegram sources' settings, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramSettings {
    pub api_base: String,
    /// Keep only these chats (all when empty).
    pub chat_ids: Vec<i64>,
    pub allowed_updates: Vec<String>,
    /// Long-poll timeout, at most the Bot API's 50 s.
    pub poll_timeout_secs: u32,
    /// The webhook's URL path.
    pub webhook_path: String,
}

/// The webhook's path when neither `--webhook-path` nor the table names one.
pub const DEFAULT_WEBHOOK_PATH: &str = "/telegram";

/// The Bot API base: flag/env, else `[telegram] api_base`, else the public API.
pub fn api_base(flag: Option<&str>, t: &TelegramConfig) -> String {
    flag.map(str::to_owned)
        .or_else(|| t.api_base.clone())
        .unwrap_or_else(|| DEFAULT_API_BASE.to_owned())
}

/// Resolves `ingest telegram`: defaults < `[telegram]` < flags.
pub fn resolve(flags: &TelegramFlags, t: &TelegramConfig) -> TelegramSettings {
    let list =
        |flag: &Vec<String>, file: &Vec<String>| if flag.is_empty() { file } else { flag }.clone();
    TelegramSettings {
        api_base: api_base(flags.api_base.as_deref(), t),
        chat_ids: if flags.chat_ids.is_empty() {
            t.chat_ids.clone()
        } else {
            flags.chat_ids.clone()
        },
        allowed_updates: list(&flags.allowed_updates, &t.allowed_updates),
        poll_timeout_secs: flags
            .poll_timeout
            .or(t.poll_timeout_secs)
            .unwrap_or(DEFAULT_POLL_TIMEOUT_SECS)
            .min(MAX_POLL_TIMEOUT_SECS),
        webhook_path: flags
            .webhook_path
            .clone()
            .or_else(|| t.webhook_path.clone())
            .unwrap_or_else(|| DEFAULT_WEBHOOK_PATH.to_owned()),
    }
}
