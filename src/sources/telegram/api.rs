//! The Bot API methods `ingest` calls. The token is part of every URL
//! (`/bot<token>/<method>`), so URLs are never logged and errors are stripped of them.

use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::secret::Secret;

/// What a file path segment keeps as it is (RFC 3986 unreserved characters).
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

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

/// What `getFile` says: where to download the file from (valid for an hour).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TgFile {
    #[serde(default)]
    pub file_size: Option<u64>,
    #[serde(default)]
    pub file_path: Option<String>,
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

    /// `getFile`: the file's path for [`TelegramApi::download`].
    pub async fn get_file(&self, file_id: &str) -> Result<TgFile, TelegramError> {
        let raw = self
            .call(
                "getFile",
                &serde_json::json!({ "file_id": file_id }),
                Duration::from_secs(30),
            )
            .await?;
        serde_json::from_str(raw.get()).map_err(|e| TelegramError::Decode(format!("getFile: {e}")))
    }

    /// Starts the download of a file `getFile` named (`{base}/file/bot<token>/<path>`).
    /// The URL holds the token: errors are stripped of it (`without_url`).
    pub async fn download(
        &self,
        file_path: &str,
        timeout: Duration,
    ) -> Result<reqwest::Response, TelegramError> {
        if file_path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(TelegramError::Decode(format!(
                "getFile gave the path `{}`, which has an empty, `.` or `..` segment",
                file_path.escape_debug()
            )));
        }
        let path: String = file_path
            .split('/')
            .map(|s| percent_encoding::utf8_percent_encode(s, PATH_SEGMENT).to_string())
            .collect::<Vec<_>>()
            .join("/");
        let url = format!("{}/file/bot{}/{path}", self.base, self.token.expose());
        self.http
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| TelegramError::Network {
                base: self.base.clone(),
                message: crate::secret::error_chain(&e.without_url()),
            })
    }

    pub async fn get_me(&self) -> Result<Box<RawValue>, TelegramError> {
        self.call("getMe", &serde_json::json!({}), Duration::from_secs(15))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_paths_that_could_leave_the_file_endpoint_are_refused() {
        let api = TelegramApi::new("http://127.0.0.1:1", Secret::new("1:unit-test-token")).unwrap();
        for path in [
            "../bot1:x/getMe",
            "photos/../../x",
            "a//b",
            "./x",
            "",
            "photos/",
        ] {
            let e = api
                .download(path, Duration::from_secs(1))
                .await
                .unwrap_err();
            assert!(matches!(e, TelegramError::Decode(_)), "{path:?}: {e}");
            assert!(!e.to_string().contains("unit-test-token"));
        }
    }
}
