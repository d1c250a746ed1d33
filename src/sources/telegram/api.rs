//! The Bot API methods `ingest` calls. The token is part of every URL
//! (`/bot<token>/<method>`), so URLs are never logged and errors are stripped of them.

use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::secret::Secret;

/// The public Bot API.
pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";

/// A Bot API failure.
#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    #[error("cannot reach the Telegram Bot API at {base}: {message}")]
    Network { base: String, message: String },
    #[error("Telegram answered {code}: {description}")]
    Api {
        code: u16,
        description: String,
        retry_after: Option<u64>,
    },
    #[error("unexpected answer from the Telegram Bot API: {0}")]
    Decode(String),
}

impl TelegramError {
    pub fn code(&self) -> Option<u16> {
        match self {
            TelegramError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    ok: bool,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// What `getWebhookInfo` says.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WebhookInfo {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub pending_update_count: u64,
}

/// A Bot API client for one bot.
#[derive(Debug, Clone)]
pub struct TelegramApi {
    base: String,
    token: Secret,
    http: reqwest::Client,
}

impl TelegramApi {
    pub fn new(base: &str, token: Secret) -> Result<Self, TelegramError> {
        let http = reqwest::Client::builder()
            .user_agent(crate::sources::twitter::api::user_agent())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| TelegramError::Network {
                base: base.to_owned(),
                message: crate::secret::error_chain(&e.without_url()),
            })?;
        Ok(TelegramApi {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    pub fn token(&self) -> &Secret {
        &self.token
    }

    /// Calls `method` with JSON `params`; returns the raw `result`.
    pub async fn call(
        &self,
        method: &str,
        params: &serde_json::Value,
        timeout: Duration,
    ) -> Result<Box<RawValue>, TelegramError> {
        let url = format!("{}/bot{}/{method}", self.base, self.token.expose());
        let network = |e: reqwest::Error| TelegramError::Network {
            base: self.base.clone(),
            message: crate::secret::error_chain(&e.without_url()),
        };
        let resp = self
            .http
            .post(url)
            .json(params)
            .timeout(timeout)
            .send()
            .await
            .map_err(network)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(network)?;
        let env: Envelope<'_> = serde_json::from_slice(&body).map_err(|_| TelegramError::Api {
            code: status,
            description: String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .to_owned(),
            retry_after: None,
        })?;
        if env.ok {
            return env
                .result
                .map(RawValue::to_owned)
                .ok_or_else(|| TelegramError::Decode(format!("{method}: `ok` without `result`")));
        }
        Err(TelegramError::Api {
            code: env.error_code.unwrap_or(status),
            description: env.description.unwrap_or_else(|| "no description".into()),
            retry_after: env.parameters.and_then(|p| p.retry_after),
        })
    }

    /// `getUpdates`: the raw updates, in order.
    pub async fn get_updates(
        &self,
        offset: i64,
        limit: u32,
        timeout_secs: u32,
        allowed: &[String],
    ) -> Result<Vec<Box<RawValue>>, TelegramError> {
        // Always sent, even empty (Telegram's default types): an absent list
        // keeps the setting of the bot's previous call, a previous run's filter.
        let params = serde_json::json!({
            "offset": offset, "limit": limit, "timeout": timeout_secs, "allowed_updates": allowed,
        });
        let raw = self
            .call(
                "getUpdates",
                &params,
                Duration::from_secs(timeout_secs as u64 + 15),
            )
            .await?;
        serde_json::from_str(raw.get())
            .map_err(|e| TelegramError::Decode(format!("getUpdates: {e}")))
    }

    pub async fn webhook_info(&self) -> Result<WebhookInfo, TelegramError> {
        let raw = self
            .call(
                "getWebhookInfo",
                &serde_json::json!({}),
                Duration::from_secs(15),
            )
            .await?;
        serde_json::from_str(raw.get())
            .map_err(|e| TelegramError::Decode(format!("getWebhookInfo: {e}")))
    }

    /// `deleteWebhook` without dropping pending updates.
    pub async fn delete_webhook(&self) -> Result<(), TelegramError> {
        self.call(
            "deleteWebhook",
            &serde_json::json!({"drop_pending_updates": false}),
            Duration::from_secs(15),
        )
        .await
        .map(|_| ())
    }

    pub async fn set_webhook(
        &self,
        url: &str,
        secret_token: &Secret,
        allowed: &[String],
    ) -> Result<(), TelegramError> {
        // Always sent, even empty: an absent list keeps the previous setting.
        let params = serde_json::json!({
            "url": url, "secret_token": secret_token.expose(), "allowed_updates": allowed,
        });
        self.call("setWebhook", &params, Duration::from_secs(15))
            .await
            .map(|_| ())
    }

    pub async fn get_me(&self) -> Result<Box<RawValue>, TelegramError> {
        self.call("getMe", &serde_json::json!({}), Duration::from_secs(15))
            .await
    }
}
