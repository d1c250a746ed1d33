//! Getting an item's bytes: Telegram files through the bot (`getFile`, then
//! the file endpoint, whose URL holds the token and never reaches a message),
//! X media from their public URLs. A download is opened first (its size is
//! then known, for the memory budget) and read to its end, never past
//! `max_bytes`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::record::MediaFetch;
use crate::secret::{error_chain, redact};
use crate::sources::telegram::api::{TelegramApi, TelegramError};

/// Why an item's bytes could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Network trouble, a timeout, 429 or 5xx: try again.
    #[error("{0}")]
    Retryable(String),
    /// 404, 403, a refused file id: retrying cannot help.
    #[error("{0}")]
    Permanent(String),
    /// Over `max_bytes` (declared or counted while reading).
    #[error("larger than max_bytes")]
    TooLarge,
}

/// An opened download.
#[derive(Debug)]
pub struct Download {
    response: reqwest::Response,
    /// The size, when the server or the platform says it.
    pub len: Option<u64>,
    /// The server's `Content-Type`.
    pub content_type: Option<String>,
    /// The file name or URL path the extension comes from.
    pub name: Option<String>,
}

/// Opens and reads downloads.
#[derive(Debug, Clone)]
pub struct Downloader {
    http: reqwest::Client,
    telegram: Option<TelegramApi>,
    timeout: Duration,
}

/// Longest piece of an error body quoted in a message.
const ERROR_BODY_CHARS: usize = 200;

/// The start of an error answer's body, as text on one line (the rest is not read).
async fn error_body(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < 1024 {
        match response.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&body);
    let text: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(ERROR_BODY_CHARS)
        .collect();
    redact(&text).into_owned()
}

/// A failed answer: its status, and what its body starts with (redacted:
/// a proxy may echo the request path, which holds the bot token).
async fn failed(response: reqwest::Response, what: &str) -> FetchError {
    let status = response.status().as_u16();
    let body = error_body(response).await;
    let what = if body.is_empty() {
        what.to_owned()
    } else {
        format!("{what} ({body})")
    };
    status_error(status, &what)
}

fn status_error(status: u16, what: &str) -> FetchError {
    let m = format!("HTTP {status} from {what}");
    if status == 408 || status == 429 || status >= 500 {
        FetchError::Retryable(m)
    } else {
        FetchError::Permanent(m)
    }
}

fn telegram_error(e: TelegramError) -> FetchError {
    let m = redact(&format!("getFile: {e}")).into_owned();
    match &e {
        TelegramError::Api { description, .. } if description.contains("too big") => {
            FetchError::TooLarge
        }
        TelegramError::Api { code, .. } if *code == 429 || *code >= 500 => FetchError::Retryable(m),
        TelegramError::Api { .. } | TelegramError::Decode(_) => FetchError::Permanent(m),
        TelegramError::Network { .. } => FetchError::Retryable(m),
    }
}

impl Downloader {
    pub fn new(telegram: Option<TelegramApi>, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .user_agent(crate::sources::twitter::api::user_agent())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| error_chain(&e.without_url()))?;
        Ok(Downloader {
            http,
            telegram,
            timeout,
        })
    }

    /// Opens the download of `fetch`; a size declared over `max_bytes` is refused before any byte.
    pub async fn open(&self, fetch: &MediaFetch, max_bytes: u64) -> Result<Download, FetchError> {
        let download = match fetch {
            MediaFetch::Telegram { file_id, size, .. } => {
                if size.is_some_and(|s| s > max_bytes) {
                    return Err(FetchError::TooLarge);
                }
                self.open_telegram(file_id).await?
            }
            MediaFetch::Url { url, .. } => self.open_url(url).await?,
        };
        if download.len.is_some_and(|l| l > max_bytes) {
            return Err(FetchError::TooLarge);
        }
        Ok(download)
    }

    async fn open_telegram(&self, file_id: &str) -> Result<Download, FetchError> {
        let api = self.telegram.as_ref().ok_or_else(|| {
            FetchError::Permanent("a Telegram file, but no bot token to fetch it with".into())
        })?;
        let file = api.get_file(file_id).await.map_err(telegram_error)?;
        let path = file
            .file_path
            .ok_or_else(|| FetchError::Permanent("getFile gave no file_path".into()))?;
        let response = api
            .download(&path, self.timeout)
            .await
            .map_err(telegram_error)?;
        if !response.status().is_success() {
            return Err(failed(response, "the Telegram file download").await);
        }
        Ok(Download {
            len: response.content_length().or(file.file_size),
            content_type: header(&response),
            name: Some(path),
            response,
        })
    }

    async fn open_url(&self, url: &str) -> Result<Download, FetchError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| FetchError::Permanent(format!("`{url}` is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(FetchError::Permanent(format!(
                "`{url}` is not an HTTP(S) URL"
            )));
        }
        let response = self
            .http
            .get(parsed.clone())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| {
                FetchError::Retryable(format!("GET {url}: {}", error_chain(&e.without_url())))
            })?;
        if !response.status().is_success() {
            return Err(failed(response, &format!("GET {url}")).await);
        }
        Ok(Download {
            len: response.content_length(),
            content_type: header(&response),
            name: Some(parsed.path().to_owned()),
            response,
        })
    }
}

fn header(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl Download {
    /// Reads the body, stopping as soon as it passes `max_bytes`.
    pub async fn read(mut self, max_bytes: u64) -> Result<Bytes, FetchError> {
        let mut body = BytesMut::with_capacity(self.len.unwrap_or(0).min(max_bytes) as usize);
        loop {
            let chunk = self.response.chunk().await.map_err(|e| {
                FetchError::Retryable(format!(
                    "the download broke off: {}",
                    error_chain(&e.without_url())
                ))
            })?;
            let Some(chunk) = chunk else {
                break;
            };
            if body.len() as u64 + chunk.len() as u64 > max_bytes {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        if let Some(len) = self.len.filter(|l| *l != body.len() as u64) {
            return Err(FetchError::Retryable(format!(
                "the download ended after {} of {len} bytes",
                body.len()
            )));
        }
        Ok(body.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        assert!(matches!(status_error(503, "x"), FetchError::Retryable(_)));
        assert!(matches!(status_error(429, "x"), FetchError::Retryable(_)));
        assert!(matches!(status_error(404, "x"), FetchError::Permanent(_)));
        assert!(matches!(status_error(403, "x"), FetchError::Permanent(_)));
        let too_big = TelegramError::Api {
            code: 400,
            description: "Bad Request: file is too big".into(),
            retry_after: None,
        };
        assert_eq!(telegram_error(too_big), FetchError::TooLarge);
        let gone = TelegramError::Api {
            code: 400,
            description: "Bad Request: wrong file_id".into(),
            retry_after: None,
        };
        assert!(matches!(telegram_error(gone), FetchError::Permanent(_)));
    }

    #[tokio::test]
    async fn urls_that_are_not_http_are_refused() {
        let d = Downloader::new(None, Duration::from_secs(1)).unwrap();
        for url in ["file:///etc/passwd", "not a url", "ftp://h/x"] {
            let fetch = MediaFetch::Url {
                url: url.into(),
                content_type: None,
                preview: None,
            };
            assert!(
                matches!(d.open(&fetch, 10).await, Err(FetchError::Permanent(_))),
                "{url}"
            );
        }
        let fetch = MediaFetch::Telegram {
            file_id: "x".into(),
            size: Some(11),
            mime_type: None,
        };
        assert_eq!(d.open(&fetch, 10).await.unwrap_err(), FetchError::TooLarge);
        let fetch = MediaFetch::Telegram {
            file_id: "x".into(),
            size: None,
            mime_type: None,
        };
        assert!(matches!(
            d.open(&fetch, 10).await,
            Err(FetchError::Permanent(_))
        ));
    }
}
