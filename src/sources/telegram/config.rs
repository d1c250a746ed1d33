//! `[telegram]`, as written in the config file: both Telegram sources' keys.
//! `max_body_bytes` and `ack_timeout` are the deprecated spellings of the
//! `[webhook]` keys (the loader moves them there, with a warning).

use std::time::Duration;

use serde::Deserialize;

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
