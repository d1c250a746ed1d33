//! The X filtered-stream client.
//!
//! A reader task keeps the HTTP body flowing no matter how slow the sinks are:
//! it splits lines, handles keep-alives and control messages, and pushes every
//! line into a [`SpillQueue`]. A forwarder normalizes, drops duplicates by id,
//! and feeds the pipeline. Reconnects follow X's documented back-off classes.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, warn};

use super::api::{STREAM_PATH, XApi, parse_problem};
use super::normalize::normalize_line;
use crate::pipeline::SourceBatch;
use crate::record::{Normalized, Record, rfc3339, trim_line};
use crate::retry::{StreamBackoff, StreamBackoffConfig, StreamFailure};
use crate::sources::lines::{Line, LineSplitter};
use crate::sources::spill::{SpillConfig, SpillQueue};
use crate::sources::{Source, SourceContext, SourceCounters, SourceError};

/// Default `tweet.fields`: what the record needs.
pub const DEFAULT_TWEET_FIELDS: &str = "created_at,lang,author_id,conversation_id,source";
/// Default `expansions`.
pub const DEFAULT_EXPANSIONS: &str = "author_id";
/// Default `user.fields`.
pub const DEFAULT_USER_FIELDS: &str = "name,username";
/// Records per batch handed to the pipeline.
const BATCH_RECORDS: usize = 1000;

/// Everything the stream client needs.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub tweet_fields: String,
    pub expansions: String,
    pub user_fields: String,
    pub backfill_minutes: Option<u32>,
    pub stall_timeout: Duration,
    pub backoff: StreamBackoffConfig,
    pub dedupe_window: usize,
    pub reset_connections: bool,
    pub max_line_bytes: usize,
    pub spill_memory_bytes: usize,
    pub spill_max_bytes: u64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            tweet_fields: DEFAULT_TWEET_FIELDS.into(),
            expansions: DEFAULT_EXPANSIONS.into(),
            user_fields: DEFAULT_USER_FIELDS.into(),
            backfill_minutes: None,
            stall_timeout: Duration::from_secs(30),
            backoff: StreamBackoffConfig::default(),
            dedupe_window: 100_000,
            reset_connections: false,
            max_line_bytes: 16 * 1024 * 1024,
            spill_memory_bytes: 64 * 1024 * 1024,
            spill_max_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// The filtered-stream source.
pub struct TwitterSource {
    pub api: XApi,
    pub config: StreamConfig,
}

/// A bounded window of recently seen ids (X ids are numbers: kept as `u64`).
struct RecentIds {
    set: HashSet<IdKey>,
    order: VecDeque<IdKey>,
    capacity: usize,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum IdKey {
    Num(u64),
    Text(Box<str>),
}

impl RecentIds {
    fn new(capacity: usize) -> Self {
        RecentIds {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// True if `id` is new (and remembers it).
    fn insert(&mut self, id: &str) -> bool {
        if self.capacity == 0 {
            return true;
        }
        let key = match id.strip_prefix("twitter:").unwrap_or(id).parse::<u64>() {
            Ok(n) => IdKey::Num(n),
            Err(_) => IdKey::Text(id.into()),
        };
        if self.set.contains(&key) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(key.clone());
        self.order.push_back(key);
        true
    }
}

/// Why a connection ended.
enum Ended {
    /// The server closed the body, a read failed, or it sent `operational-disconnect`.
    Dropped(String),
    /// No byte within the stall timeout.
    Stalled,
    /// We are stopping.
    Stopped,
}

impl Source for TwitterSource {
    fn name(&self) -> &'static str {
        "twitter"
    }

    async fn run(
        self,
        ctx: SourceContext,
        out: mpsc::Sender<SourceBatch>,
        shutdown: CancellationToken,
    ) -> Result<(), SourceError> {
        let spill_path = ctx
            .state_dir
            .join("spill")
            .join(format!("twitter-{}.spill", ctx.normalize.run.id));
        let queue = Arc::new(SpillQueue::new(SpillConfig {
            memory_bytes: self.config.spill_memory_bytes,
            max_file_bytes: self.config.spill_max_bytes,
            path: spill_path,
        }));
        let window = self.config.dedupe_window;
        let reader = {
            let (queue, ctx, shutdown) = (queue.clone(), ctx.clone(), shutdown.clone());
            tokio::spawn(
                async move {
                    let result =
                        read_stream(&self.api, &self.config, &queue, &ctx, &shutdown).await;
                    queue.close();
                    result
                }
                .instrument(tracing::Span::current()),
            )
        };
        let forwarded = forward(&queue, &ctx, &out, window).await;
        let read = reader.await.unwrap_or_else(|e| {
            Err(SourceError::Read {
                what: "the X stream".into(),
                source: std::io::Error::other(e),
            })
        });
        read.and(forwarded)
    }
}

/// Queue → normalize → dedupe → pipeline, until the reader is done and the queue is empty.
async fn forward(
    queue: &SpillQueue,
    ctx: &SourceContext,
    out: &mpsc::Sender<SourceBatch>,
    window: usize,
) -> Result<(), SourceError> {
    let mut recent = RecentIds::new(window);
    while let Some(entries) = queue.pop(BATCH_RECORDS).await? {
        let mut batch: Vec<Arc<Record>> = Vec::with_capacity(entries.len());
        for (received_at, line) in entries {
            match normalize_line(&line, &received_at, &ctx.normalize) {
                Ok(Normalized::Record(r)) => {
                    if recent.insert(&r.id) {
                        batch.push(Arc::from(r));
                    } else {
                        SourceCounters::add(&ctx.counters.duplicates, 1);
                        debug!(id = %r.id, "duplicate dropped");
                    }
                }
                Ok(Normalized::Control(_)) | Ok(Normalized::Nothing) => {}
                Err(e) => {
                    SourceCounters::add(&ctx.counters.malformed, 1);
                    warn!(error = %e, "unusable stream line dead-lettered");
                    ctx.dead_letters
                        .source_input("twitter", &e.to_string(), &line, line.len())?;
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        SourceCounters::add(&ctx.counters.records, batch.len() as u64);
        if out.send(SourceBatch::new(batch)).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// The connect / read / back off loop.
async fn read_stream(
    api: &XApi,
    config: &StreamConfig,
    queue: &SpillQueue,
    ctx: &SourceContext,
    shutdown: &CancellationToken,
) -> Result<(), SourceError> {
    if config.reset_connections {
        info!("closing every streaming connection of the app (--reset-connections)");
        api.reset_connections().await?;
    }
    let mut query: Vec<(&str, String)> = vec![
        ("tweet.fields", config.tweet_fields.clone()),
        ("expansions", config.expansions.clone()),
        ("user.fields", config.user_fields.clone()),
    ];
    query.retain(|(_, v)| !v.is_empty());
    if let Some(m) = config.backfill_minutes.filter(|m| *m > 0) {
        query.push(("backfill_minutes", m.to_string()));
    }
    let mut backoff = StreamBackoff::new(config.backoff);
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        SourceCounters::add(&ctx.counters.connections, 1);
        let request = api
            .http()
            .get(api.url(STREAM_PATH))
            .query(&query)
            .bearer_auth(api.token().expose())
            .send();
        let response = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = tokio::time::timeout(config.stall_timeout.max(Duration::from_secs(1)), request) => r,
        };
        let wait = match response {
            Err(_) => Some((
                StreamFailure::Network,
                "no response within the stall timeout".to_owned(),
            )),
            Ok(Err(e)) => Some((StreamFailure::Network, e.without_url().to_string())),
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                log_rate_limits(resp.headers());
                match status {
                    200 => {
                        backoff.reset();
                        SourceCounters::add(&ctx.counters.connected, 1);
                        info!("connected to the filtered stream");
                        match read_body(resp, config, queue, ctx, shutdown).await? {
                            Ended::Stopped => return Ok(()),
                            Ended::Stalled => {
                                ctx.counters.reconnected("stall");
                                warn!(
                                    stall_timeout_secs = config.stall_timeout.as_secs_f64(),
                                    "the stream stalled; reconnecting at once"
                                )
                            }
                            Ended::Dropped(reason) => {
                                ctx.counters.reconnected("dropped");
                                warn!(reason = %reason, "the stream dropped; reconnecting at once")
                            }
                        }
                        None
                    }
                    _ => {
                        let body = resp.text().await.unwrap_or_default();
                        let problem = parse_problem(&body);
                        match status {
                            401 | 403 => {
                                return Err(super::api::ApiError::Unauthorized {
                                    status,
                                    problem: Box::new(problem),
                                }
                                .into());
                            }
                            409 => return Err(SourceError::NoRules),
                            429 if problem.connection_issue.as_deref()
                                == Some("TooManyConnections")
                                || body.contains("TooManyConnections") =>
                            {
                                warn!(
                                    "another connection holds the stream (TooManyConnections): stop it, or start with --reset-connections"
                                );
                                Some((StreamFailure::RateLimited, format!("HTTP 429: {problem}")))
                            }
                            429 => {
                                Some((StreamFailure::RateLimited, format!("HTTP 429: {problem}")))
                            }
                            _ => Some((StreamFailure::Http, format!("HTTP {status}: {problem}"))),
                        }
                    }
                }
            }
        };
        if let Some((class, reason)) = wait {
            ctx.counters.reconnected(match class {
                StreamFailure::Network => "network_error",
                StreamFailure::Http => "http_error",
                StreamFailure::RateLimited => "rate_limited",
            });
            let delay = backoff.next(class);
            warn!(class = class.as_str(), reason = %reason, wait_ms = delay.as_millis() as u64, "cannot connect to the stream; backing off");
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

fn log_rate_limits(headers: &reqwest::header::HeaderMap) {
    let get = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    debug!(
        limit = %get("x-rate-limit-limit"),
        remaining = %get("x-rate-limit-remaining"),
        reset = %get("x-rate-limit-reset"),
        "rate limit"
    );
}

/// What one line of the body is.
enum Kind {
    KeepAlive,
    Item,
    Reconnect(String),
    Control(String),
}

fn classify(line: &[u8]) -> Kind {
    let t = trim_line(line);
    if t.is_empty() {
        return Kind::KeepAlive;
    }
    // Items start with `{"data"`; an error-only line has `errors` and no `data`.
    if memchr::memmem::find(t, b"\"errors\"").is_some()
        && memchr::memmem::find(t, b"\"data\"").is_none()
    {
        let text = String::from_utf8_lossy(t).into_owned();
        if text.contains("operational-disconnect") {
            return Kind::Reconnect(text);
        }
        return Kind::Control(text);
    }
    Kind::Item
}

async fn read_body(
    mut resp: reqwest::Response,
    config: &StreamConfig,
    queue: &SpillQueue,
    ctx: &SourceContext,
    shutdown: &CancellationToken,
) -> Result<Ended, SourceError> {
    let mut splitter = LineSplitter::new(config.max_line_bytes);
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut oversized: Vec<(usize, Vec<u8>)> = Vec::new();
    let ended = loop {
        let chunk = tokio::select! {
            _ = shutdown.cancelled() => break Ended::Stopped,
            c = tokio::time::timeout(config.stall_timeout, resp.chunk()) => c,
        };
        let bytes = match chunk {
            Err(_) => break Ended::Stalled,
            Ok(Err(e)) => break Ended::Dropped(e.without_url().to_string()),
            Ok(Ok(None)) => break Ended::Dropped("the server closed the stream".into()),
            Ok(Ok(Some(b))) => b,
        };
        splitter.push(&bytes, |l| match l {
            Line::Complete(l) => lines.push(l.to_vec()),
            Line::Oversized { len, prefix } => oversized.push((len, prefix.to_vec())),
        });
        let received_at: Arc<str> = rfc3339(chrono::Utc::now()).into();
        let mut reconnect = None;
        let mut items: Vec<Vec<u8>> = Vec::with_capacity(lines.len());
        for line in lines.drain(..) {
            match classify(&line) {
                Kind::KeepAlive => {}
                Kind::Item => items.push(line),
                Kind::Reconnect(text) => {
                    SourceCounters::add(&ctx.counters.control, 1);
                    reconnect = Some(text);
                }
                Kind::Control(text) => {
                    SourceCounters::add(&ctx.counters.control, 1);
                    warn!(message = %text, "error message in the stream");
                }
            }
        }
        queue.push_many(&received_at, &mut items).await?;
        for (len, prefix) in oversized.drain(..) {
            SourceCounters::add(&ctx.counters.malformed, 1);
            let reason = format!(
                "stream line of {len} bytes is over the limit of {} bytes",
                config.max_line_bytes
            );
            ctx.dead_letters
                .source_input("twitter", &reason, &prefix, len)?;
        }
        if let Some(text) = reconnect {
            break Ended::Dropped(format!("operational disconnect: {text}"));
        }
    };
    let partial = splitter.discard_partial();
    if partial > 0 && !matches!(ended, Ended::Stopped) {
        warn!(
            bytes = partial,
            "a line was cut by the disconnect; it was not received whole and X does not resend it (backfill_minutes can)"
        );
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_forget_the_oldest() {
        let mut r = RecentIds::new(2);
        assert!(r.insert("a") && r.insert("b"));
        assert!(!r.insert("a"));
        assert!(r.insert("c"));
        assert!(r.insert("a"), "a fell out of the window");
        assert!(RecentIds::new(0).insert("x") && RecentIds::new(0).insert("x"));
    }

    #[test]
    fn lines_are_classified() {
        assert!(matches!(classify(b"\r"), Kind::KeepAlive));
        assert!(matches!(classify(br#"{"data":{"id":"1"}}"#), Kind::Item));
        assert!(matches!(
            classify(br#"{"data":{"id":"1"},"errors":[{"title":"x"}]}"#),
            Kind::Item
        ));
        assert!(matches!(
            classify(br#"{"errors":[{"title":"operational-disconnect"}]}"#),
            Kind::Reconnect(_)
        ));
        assert!(matches!(
            classify(br#"{"errors":[{"title":"Other"}]}"#),
            Kind::Control(_)
        ));
    }
}
