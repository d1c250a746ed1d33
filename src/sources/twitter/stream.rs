//! The X filtered-stream client.
//!
//! A reader task keeps the HTTP body flowing no matter how slow the sinks are:
//! it splits lines, handles keep-alives and control messages, and pushes every
//! line into a [`SpillQueue`]. A forwarder normalizes, drops duplicates by id,
//! and feeds the pipeline. Reconnects follow X's documented back-off classes.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, warn};

use super::api::{STREAM_PATH, XApi, parse_problem};
use super::normalize::normalize_line;
use crate::pipeline::{Ack, Outcome, SourceBatch};
use crate::record::{Normalized, Record, rfc3339, trim_line};
use crate::retry::{StreamBackoff, StreamBackoffConfig, StreamFailure};
use crate::sources::lines::{Line, LineSplitter};
use crate::sources::spill::{Entry, SpillConfig, SpillQueue};
use crate::sources::wal::{Replay, SEGMENT_BYTES, Wal, WalConfig};
use crate::sources::{Source, SourceContext, SourceCounters, SourceError};
use crate::state::{LockFile, secret_fingerprint};

/// Default `tweet.fields`: what the record needs.
pub const DEFAULT_TWEET_FIELDS: &str = "created_at,lang,author_id,conversation_id,source";
/// Default `expansions`.
pub const DEFAULT_EXPANSIONS: &str = "author_id";
/// Default `user.fields`.
pub const DEFAULT_USER_FIELDS: &str = "name,username";
/// Records per batch handed to the pipeline.
const BATCH_RECORDS: usize = 1000;

/// Where received lines wait for the sinks' confirmation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Buffer {
    /// In memory (spilling to disk when the sinks are behind): a crash loses
    /// what the sinks had not confirmed.
    #[default]
    Memory,
    /// A write-ahead log in the state dir (see [`crate::sources::wal`]): what
    /// was received and not confirmed is delivered by the next run.
    Disk,
}

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
    pub buffer: Buffer,
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
            buffer: Buffer::Memory,
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
        // With the disk buffer, one process owns the log of this account.
        let account = secret_fingerprint(self.api.token().expose());
        let wal_dir = ctx.state_dir.join(format!("twitter-{account}.wal"));
        let disk = match self.config.buffer {
            Buffer::Memory => {
                if crate::sources::wal::holds_lines(&wal_dir) {
                    warn!(dir = %wal_dir.display(), "an earlier run with buffer = \"disk\" left unconfirmed lines in its write-ahead log: run with --buffer disk to deliver them");
                }
                None
            }
            Buffer::Disk => {
                let lock = LockFile::acquire(
                    ctx.state_dir.join(format!("twitter-{account}.lock")),
                    "this X account with a disk buffer",
                )?;
                let (wal, replay) = Wal::open(WalConfig {
                    dir: wal_dir,
                    segment_bytes: SEGMENT_BYTES,
                })?;
                // Taken before the reader starts appending: the number of its first line.
                let live_start = wal.next_seq();
                Some((lock, wal, replay, live_start))
            }
        };
        let wal = disk.as_ref().map(|(_, wal, _, _)| wal.clone());
        let window = self.config.dedupe_window;
        // The connection opens at once (X does not resend what is missed while
        // the backlog drains); the recovered lines still enter the pipeline
        // before any new one, as the forwarder sends them first.
        let reader = {
            let (queue, ctx, shutdown, wal) =
                (queue.clone(), ctx.clone(), shutdown.clone(), wal.clone());
            tokio::spawn(
                async move {
                    let result = read_stream(
                        &self.api,
                        &self.config,
                        &queue,
                        wal.as_deref(),
                        &ctx,
                        &shutdown,
                    )
                    .await;
                    queue.close();
                    result
                }
                .instrument(tracing::Span::current()),
            )
        };
        let forwarded = match disk {
            None => forward(&queue, &ctx, &out, window).await,
            Some((lock, wal, replay, live_start)) => {
                let result =
                    forward_logged(&queue, &ctx, out, window, &wal, replay, live_start).await;
                let closing = wal.clone();
                let _ = tokio::task::spawn_blocking(move || closing.close()).await;
                drop(lock);
                result
            }
        };
        if forwarded.is_err() {
            // Nothing takes lines any more: stop the reader instead of waiting on it forever.
            shutdown.cancel();
        }
        let read = reader.await.unwrap_or_else(|e| {
            Err(SourceError::Read {
                what: "the X stream".into(),
                source: std::io::Error::other(e),
            })
        });
        read.and(forwarded)
    }
}

/// Normalizes lines and drops duplicates by id; returns the records and, for
/// each, the index of its line. Unusable lines go to the dead letters.
fn normalize_entries(
    entries: &[Entry],
    ctx: &SourceContext,
    recent: &mut RecentIds,
) -> Result<(Vec<Arc<Record>>, Vec<usize>), SourceError> {
    let mut batch: Vec<Arc<Record>> = Vec::with_capacity(entries.len());
    let mut index = Vec::with_capacity(entries.len());
    for (i, (received_at, line)) in entries.iter().enumerate() {
        match normalize_line(line, received_at, &ctx.normalize) {
            Ok(Normalized::Record(r)) => {
                if recent.insert(&r.id) {
                    batch.push(Arc::from(r));
                    index.push(i);
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
                    .source_input("twitter", &e.to_string(), line, line.len())?;
            }
        }
    }
    SourceCounters::add(&ctx.counters.records, batch.len() as u64);
    Ok((batch, index))
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
        let (batch, _) = normalize_entries(&entries, ctx, &mut recent)?;
        if batch.is_empty() {
            continue;
        }
        if out.send(SourceBatch::new(batch)).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// One batch of logged lines on its way: the log numbers of its records, the
/// number after its last line, and its ack (none when no line became a record).
struct InFlight {
    record_seqs: Vec<u64>,
    end: u64,
    ack: Option<oneshot::Receiver<Ack>>,
}

/// [`forward`] for the disk buffer: first the lines the log recovered, then
/// the queue (whose lines the reader logged, numbered on from the log's end);
/// every batch carries an ack, and the log's confirmed mark follows the acks in order.
async fn forward_logged(
    queue: &SpillQueue,
    ctx: &SourceContext,
    out: mpsc::Sender<SourceBatch>,
    window: usize,
    wal: &Arc<Wal>,
    mut replay: Replay,
    live_start: u64,
) -> Result<(), SourceError> {
    let (inflight_tx, inflight_rx) = mpsc::unbounded_channel::<InFlight>();
    let confirmer = tokio::spawn(confirm_in_order(wal.clone(), inflight_rx));
    let mut recent = RecentIds::new(window);
    let send = async |entries: Vec<Entry>, seqs: Vec<u64>, recent: &mut RecentIds| {
        let Some(&last) = seqs.last() else {
            return Ok(true);
        };
        let (records, index) = normalize_entries(&entries, ctx, recent)?;
        let record_seqs: Vec<u64> = index.iter().map(|&i| seqs[i]).collect();
        let ack = if records.is_empty() {
            None
        } else {
            let (batch, ack) = SourceBatch::with_ack_lingering(records);
            if out.send(batch).await.is_err() {
                return Ok(false);
            }
            Some(ack)
        };
        let _ = inflight_tx.send(InFlight {
            record_seqs,
            end: last + 1,
            ack,
        });
        Ok::<bool, SourceError>(true)
    };
    let result = async {
        let recovered = replay.remaining();
        let mut open = true;
        while open {
            let batch = replay.next_batch(BATCH_RECORDS)?;
            if batch.is_empty() {
                break;
            }
            let (seqs, entries): (Vec<u64>, Vec<Entry>) = batch.into_iter().unzip();
            open = send(entries, seqs, &mut recent).await?;
        }
        if recovered > 0 && open {
            info!(lines = recovered, "the recovered lines are in the pipeline");
        }
        let mut next = live_start;
        while open && let Some(entries) = queue.pop(BATCH_RECORDS).await? {
            let seqs: Vec<u64> = (next..next + entries.len() as u64).collect();
            next += entries.len() as u64;
            open = send(entries, seqs, &mut recent).await?;
        }
        Ok(())
    }
    .await;
    drop(inflight_tx);
    drop(out);
    if let Err(e) = confirmer.await {
        error!(error = %e, "the write-ahead log confirmer failed");
    }
    result
}

/// Awaits the acks in order and moves the log's confirmed mark; stops moving
/// it at the first batch not wholly confirmed (a later run delivers the rest again).
async fn confirm_in_order(wal: Arc<Wal>, mut rx: mpsc::UnboundedReceiver<InFlight>) {
    let mut stuck = false;
    while let Some(batch) = rx.recv().await {
        if stuck {
            continue;
        }
        let upto = match batch.ack {
            None => batch.end,
            Some(ack) => match ack.await {
                Ok(Ack {
                    accepted,
                    outcome: Outcome::Delivered | Outcome::DeadLettered,
                }) => match batch.record_seqs.get(accepted) {
                    None => batch.end,
                    // A record limit cut the batch: the rest waits for the next run.
                    Some(&first_left) => {
                        stuck = true;
                        first_left
                    }
                },
                Ok(Ack {
                    outcome: Outcome::Lost,
                    ..
                }) => {
                    error!(
                        "records were lost (the dead-letter file cannot be written): they stay in the write-ahead log for the next run"
                    );
                    stuck = true;
                    continue;
                }
                Err(_) => {
                    stuck = true;
                    continue;
                }
            },
        };
        wal.confirm(upto);
    }
}

/// The connect / read / back off loop.
async fn read_stream(
    api: &XApi,
    config: &StreamConfig,
    queue: &SpillQueue,
    wal: Option<&Wal>,
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
                        match read_body(resp, config, queue, wal, ctx, shutdown).await? {
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
    wal: Option<&Wal>,
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
        // The log first: a line is on disk before the pipeline can see it.
        if let Some(wal) = wal {
            wal.append(&received_at, &items)?;
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
