//! `ingest top`: a running ingest seen through its `/metrics`. A [`Sample`]
//! is one scrape; a [`Frame`] is what two scrapes say (rates need both); the
//! frame renders as plain text ([`render`]), which the live view redraws and
//! `--once` prints.
//!
//! Only what `/metrics` exports is shown (see `monitor::metrics`): per source
//! and per sink counts and records/s, queue depth and capacity, records owed,
//! retries, dead letters, the pipeline's memory budget, the last checkpoint's
//! age, a rate-limit wait, uptime and resident memory.

mod frame;
mod parse;
mod render;
pub mod term;

use std::time::{Duration, Instant};

pub use frame::{Frame, SinkRow, SourceRow};
pub use parse::{ParseError, Series, parse};
pub use render::render;

/// The largest `/metrics` body read (a run's is a few KiB).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// How long one scrape may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why `top` could not read the metrics.
#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error(
        "`{url}` is not a metrics URL: {reason} (give http://HOST:PORT/metrics or HOST:PORT, the run's --metrics-addr)"
    )]
    BadUrl { url: String, reason: String },
    #[error(
        "cannot read {url}: {cause} (is an ingest running with --metrics-addr on that address?)"
    )]
    Unreachable { url: String, cause: String },
    #[error("{url} answered HTTP {status}, not the metrics")]
    Status { url: String, status: u16 },
    #[error("{url} sent more than {} MiB: not an ingest's metrics", MAX_BODY_BYTES >> 20)]
    TooLarge { url: String },
    #[error("{url} did not send Prometheus metrics: {source}")]
    Malformed { url: String, source: ParseError },
    #[error("{url} sent metrics, but not an ingest run's (no `ingest_uptime_seconds`)")]
    NotIngest { url: String },
    #[error("cannot use the terminal: {0}")]
    Terminal(std::io::Error),
    #[error(
        "standard input is not a terminal: the live view reads `q` from it; use --once in scripts"
    )]
    NoTerminal,
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// One scrape of `/metrics`.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    pub series: Vec<Series>,
}

impl Sample {
    /// The samples of metric `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Series> + 'a {
        self.series.iter().filter(move |s| s.name == name)
    }

    /// The value of `name` with the label `key` = `value` (any labels when `key` is "").
    pub fn value(&self, name: &str, key: &str, value: &str) -> Option<f64> {
        self.all(name)
            .find(|s| key.is_empty() || s.label(key) == value)
            .map(|s| s.value)
    }
}

/// `HOST:PORT` → `http://HOST:PORT/metrics`; a URL without a path gets `/metrics`.
pub fn metrics_url(given: &str) -> Result<reqwest::Url, TopError> {
    let bad = |reason: String| TopError::BadUrl {
        url: given.to_owned(),
        reason,
    };
    let text = if given.contains("://") {
        given.to_owned()
    } else {
        format!("http://{given}")
    };
    let mut url = reqwest::Url::parse(&text).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!("the scheme is `{}`", url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host".into()));
    }
    if url.path() == "/" || url.path().is_empty() {
        url.set_path("/metrics");
    }
    Ok(url)
}

/// The error and its causes, `: `-joined (connection refused, DNS, TLS…).
fn chain(e: &dyn std::error::Error) -> String {
    crate::secret::error_chain(e)
}

/// One scrape of `url`, bounded in time and size.
pub async fn fetch(client: &reqwest::Client, url: &reqwest::Url) -> Result<Sample, TopError> {
    let shown = url.to_string();
    let unreachable = |e: reqwest::Error| TopError::Unreachable {
        url: shown.clone(),
        cause: chain(&e),
    };
    let mut resp = client
        .get(url.clone())
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(unreachable)?;
    if !resp.status().is_success() {
        return Err(TopError::Status {
            url: shown,
            status: resp.status().as_u16(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(TopError::TooLarge { url: shown });
        }
        body.extend_from_slice(&chunk);
    }
    let at = Instant::now();
    let text = String::from_utf8_lossy(&body);
    let series = parse(&text).map_err(|source| TopError::Malformed {
        url: shown.clone(),
        source,
    })?;
    let sample = Sample { at, series };
    if sample.value("ingest_uptime_seconds", "", "").is_none() {
        return Err(TopError::NotIngest { url: shown });
    }
    Ok(sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_becomes_a_metrics_url() {
        let url = |s| metrics_url(s).map(|u| u.to_string());
        assert_eq!(
            url("127.0.0.1:9464").unwrap(),
            "http://127.0.0.1:9464/metrics"
        );
        assert_eq!(url("http://h:1/").unwrap(), "http://h:1/metrics");
        assert_eq!(url("http://h:1/m").unwrap(), "http://h:1/m");
        assert!(url("ftp://h/x").is_err());
        assert!(url("http://").is_err());
        assert!(url("not a url").is_err());
    }
}
