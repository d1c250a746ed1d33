//! The X filtered-stream client.
//!
//! A reader task keeps the HTTP body flowing no matter how slow the sinks are:
//! it splits lines, handles keep-alives and control messages, and pushes every
//! line into a [`SpillQueue`] (and, with the disk buffer, the write-ahead log
//! first). The forwarder (`stream/forward.rs`) normalizes, drops duplicates by
//! id, and feeds the pipeline. Reconnects follow X's documented back-off classes.

pub mod config;
mod forward;
pub mod rules;
pub mod volume;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, warn};

use crate::record::trim_line;
use crate::retry::{StreamBackoff, StreamBackoffConfig, StreamFailure};
use crate::sources::lines::{Line, LineSplitter};
use crate::sources::spill::{SpillConfig, SpillQueue};
use crate::sources::twitter::api::{TwitterApi, parse_problem};
use crate::sources::wal::{SEGMENT_BYTES, Wal, WalConfig};
use crate::sources::{
    Source, SourceContext, SourceCounters, SourceError, SourceOutput, received_now,
};
use crate::state::{LockFile, secret_fingerprint};
use forward::{Logged, ORIGIN, forward, forward_logged};
use volume::StreamKind;

/// Chunks already received that the reader takes in one go.
const READY_CHUNKS: usize = 256;

/// Default `tweet.fields`: what the record needs.
pub const DEFAULT_TWEET_FIELDS: &str = "created_at,lang,author_id,conversation_id,source,entities";
/// Default `expansions`.
pub const DEFAULT_EXPANSIONS: &str = "author_id";
/// Default `user.fields`.
pub const DEFAULT_USER_FIELDS: &str = "name,username";

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
    /// Which stream: the filtered stream, a volume stream or a compliance stream.
    pub kind: StreamKind,
    /// The partition, for the streams that have them (checked by `volume::check_partition`).
    pub partition: Option<u32>,
    pub tweet_fields: String,
    pub expansions: String,
    pub user_fields: String,
    /// `media.fields` (with `--media`; empty: not sent).
    pub media_fields: String,
    pub backfill_minutes: Option<u32>,
    pub stall_timeout: Duration,
    pub backoff: StreamBackoffConfig,
    pub dedupe_window: usize,
    pub reset_connections: bool,
    pub max_line_bytes: usize,
    pub spill_memory_bytes: usize,
    pub spill_max_bytes: u64,
    pub buffer: Buffer,
    /// The `--track` groups (comma = OR, space = AND), to tag each post with
    /// the ones it matched; empty without `--track`.
    pub track: Vec<Vec<String>>,
}

impl StreamConfig {
    /// Asks for the posts' media too (`--media`).
    pub fn with_media(&mut self) {
        self.expansions = crate::sources::twitter::api::with_media_expansion(&self.expansions);
        self.media_fields = crate::sources::twitter::api::MEDIA_FIELDS.to_owned();
    }
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            kind: StreamKind::Filter,
            partition: None,
            tweet_fields: DEFAULT_TWEET_FIELDS.into(),
            expansions: DEFAULT_EXPANSIONS.into(),
            user_fields: DEFAULT_USER_FIELDS.into(),
            media_fields: String::new(),
            backfill_minutes: None,
            stall_timeout: Duration::from_secs(30),
            backoff: StreamBackoffConfig::default(),
            dedupe_window: 100_000,
            reset_connections: false,
            max_line_bytes: 16 * 1024 * 1024,
            spill_memory_bytes: 4 * 1024 * 1024,
            spill_max_bytes: 1024 * 1024 * 1024,
            buffer: Buffer::Memory,
            track: Vec::new(),
        }
    }
}

/// The filtered-stream source.
pub struct TwitterSource {
    pub api: TwitterApi,
    pub config: StreamConfig,
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
        out: SourceOutput,
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
        let disk = self.open_disk_buffer(&ctx)?;
        let wal = disk.as_ref().map(|(_, logged)| logged.wal.clone());
        let window = self.config.dedupe_window;
        let normalize = &forward::Normalizer::new(self.config.kind, self.config.track.clone());
        // The connection opens at once (X does not resend what is missed while
        // the backlog drains); the recovered lines still enter the pipeline
        // before any new one, as the forwarder sends them first.
        let reader = {
            let reader = StreamReader {
                config: self.config,
                queue: queue.clone(),
                wal: wal.clone(),
                ctx: ctx.clone(),
                out: out.clone(),
                shutdown: shutdown.clone(),
            };
            let api = self.api;
            tokio::spawn(
                async move {
                    let result = reader.read_stream(&api).await;
                    reader.queue.close();
                    result
                }
                .instrument(tracing::Span::current()),
            )
        };
        let forwarded = match disk {
            None => forward(&queue, &ctx, &out, window, normalize).await,
            Some((lock, logged)) => {
                let result = forward_logged(&queue, &ctx, out, window, normalize, logged).await;
                if let Some(closing) = wal {
                    let _ = tokio::task::spawn_blocking(move || closing.close()).await;
                }
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

impl TwitterSource {
    /// With the disk buffer, one process owns the log of this account: its
    /// lock and the log. Without it, a warning if an earlier run left lines.
    fn open_disk_buffer(
        &self,
        ctx: &SourceContext,
    ) -> Result<Option<(LockFile, Logged)>, SourceError> {
        // Each stream partition is its own process: its own log and lock.
        let account = secret_fingerprint(self.api.token().expose())
            + &self.config.kind.state_suffix(self.config.partition);
        let wal_dir = ctx.state_dir.join(format!("twitter-{account}.wal"));
        if self.config.buffer == Buffer::Memory {
            if crate::sources::wal::holds_lines(&wal_dir) {
                warn!(dir = %wal_dir.display(), "an earlier run with buffer = \"disk\" left unconfirmed lines in its write-ahead log: run with --buffer disk to deliver them");
            }
            return Ok(None);
        }
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
        Ok(Some((
            lock,
            Logged {
                wal,
                replay,
                live_start,
            },
        )))
    }
}

/// The reader task: connects, reads lines into the queue (and the log first).
struct StreamReader {
    config: StreamConfig,
    queue: Arc<SpillQueue>,
    wal: Option<Arc<Wal>>,
    ctx: SourceContext,
    out: SourceOutput,
    shutdown: CancellationToken,
}

/// What one connection attempt calls for next.
enum Next {
    Stop,
    /// Reconnect at once (a stall or a drop after a good connection).
    Reconnect,
    /// Back off by this class first.
    Wait(StreamFailure, String),
}

impl StreamReader {
    /// The connect / read / back off loop.
    async fn read_stream(&self, api: &TwitterApi) -> Result<(), SourceError> {
        let config = &self.config;
        if config.reset_connections {
            info!("closing every streaming connection of the app (--reset-connections)");
            api.reset_connections().await?;
        }
        let query = stream_query(config);
        let mut backoff = StreamBackoff::new(config.backoff);
        loop {
            if self.shutdown.is_cancelled() {
                return Ok(());
            }
            let (class, reason) = match self.connect_once(api, &query, &mut backoff).await? {
                Next::Stop => return Ok(()),
                Next::Reconnect => continue,
                Next::Wait(class, reason) => (class, reason),
            };
            self.ctx.counters.reconnected(match class {
                StreamFailure::Network => "network_error",
                StreamFailure::Http => "http_error",
                StreamFailure::RateLimited => "rate_limited",
            });
            let delay = backoff.next(class);
            warn!(class = class.as_str(), reason = %reason, wait_ms = delay.as_millis() as u64, "cannot connect to the stream; backing off");
            tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One connection: open it, read it until it ends, and say what comes next.
    async fn connect_once(
        &self,
        api: &TwitterApi,
        query: &[(&str, String)],
        backoff: &mut StreamBackoff,
    ) -> Result<Next, SourceError> {
        let config = &self.config;
        SourceCounters::add(&self.ctx.counters.connections, 1);
        let request = api
            .http()
            .get(api.url(config.kind.path()))
            .query(query)
            .bearer_auth(api.token().expose())
            .send();
        let response = tokio::select! {
            _ = self.shutdown.cancelled() => return Ok(Next::Stop),
            r = tokio::time::timeout(config.stall_timeout.max(Duration::from_secs(1)), request) => r,
        };
        let resp = match response {
            Err(_) => {
                let reason = "no response within the stall timeout".to_owned();
                return Ok(Next::Wait(StreamFailure::Network, reason));
            }
            Ok(Err(e)) => {
                return Ok(Next::Wait(
                    StreamFailure::Network,
                    format!(
                        "{}: {}",
                        api.url(config.kind.path()),
                        crate::secret::error_chain(&e.without_url())
                    ),
                ));
            }
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status().as_u16();
        log_rate_limits(resp.headers());
        if status != 200 {
            let body = resp.text().await.unwrap_or_default();
            let (class, reason) = refused(config.kind, status, &body)?;
            return Ok(Next::Wait(class, reason));
        }
        backoff.reset();
        SourceCounters::add(&self.ctx.counters.connected, 1);
        info!(
            partition = config.partition,
            "connected to {}",
            config.kind.label()
        );
        match self.read_body(resp).await? {
            Ended::Stopped => return Ok(Next::Stop),
            Ended::Stalled => {
                self.ctx.counters.reconnected("stall");
                warn!(
                    stall_timeout_secs = config.stall_timeout.as_secs_f64(),
                    "the stream stalled; reconnecting at once"
                )
            }
            Ended::Dropped(reason) => {
                self.ctx.counters.reconnected("dropped");
                warn!(reason = %reason, "the stream dropped; reconnecting at once")
            }
        }
        Ok(Next::Reconnect)
    }

    async fn read_body(&self, mut resp: reqwest::Response) -> Result<Ended, SourceError> {
        let config = &self.config;
        let mut splitter = LineSplitter::new(config.max_line_bytes);
        let mut chunks: Vec<bytes::Bytes> = Vec::with_capacity(READY_CHUNKS);
        let ended = loop {
            let chunk = tokio::select! {
                _ = self.shutdown.cancelled() => break Ended::Stopped,
                c = tokio::time::timeout(config.stall_timeout, resp.chunk()) => c,
            };
            let mut end = match chunk {
                Err(_) => break Ended::Stalled,
                Ok(Err(e)) => break Ended::Dropped(e.without_url().to_string()),
                Ok(Ok(None)) => break Ended::Dropped("the server closed the stream".into()),
                Ok(Ok(Some(b))) => {
                    chunks.push(b);
                    None
                }
            };
            // X sends a chunk per post: take every chunk already received in
            // one go (one stamp, one queue push), without waiting for more.
            while chunks.len() < READY_CHUNKS {
                match resp.chunk().now_or_never() {
                    None => break,
                    Some(Ok(Some(b))) => chunks.push(b),
                    Some(Ok(None)) => {
                        end = Some(Ended::Dropped("the server closed the stream".into()));
                        break;
                    }
                    Some(Err(e)) => {
                        end = Some(Ended::Dropped(e.without_url().to_string()));
                        break;
                    }
                }
            }
            let reconnect = self.take_chunks(&mut splitter, &chunks).await?;
            chunks.clear();
            if let Some(text) = reconnect {
                break Ended::Dropped(format!("operational disconnect: {text}"));
            }
            if let Some(end) = end {
                break end;
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

    /// Splits chunks into lines: items go to the log and the queue, control
    /// messages are counted, oversized lines dead-lettered. Returns the text of
    /// an `operational-disconnect`, if one came.
    async fn take_chunks(
        &self,
        splitter: &mut LineSplitter,
        chunks: &[bytes::Bytes],
    ) -> Result<Option<String>, SourceError> {
        let counters = &self.ctx.counters;
        let mut lines: Vec<Bytes> = Vec::new();
        let mut oversized: Vec<(usize, Vec<u8>)> = Vec::new();
        for bytes in chunks {
            splitter.push(bytes, |l| match l {
                Line::Complete(l) => lines.push(share(bytes, l)),
                Line::Oversized { len, prefix } => oversized.push((len, prefix.to_vec())),
            });
        }
        let received_at = received_now();
        let mut reconnect = None;
        let mut items: Vec<Bytes> = Vec::with_capacity(lines.len());
        for line in lines {
            match classify(&line) {
                Kind::KeepAlive => {}
                Kind::Item => items.push(line),
                Kind::Reconnect(text) => {
                    SourceCounters::add(&counters.control, 1);
                    reconnect = Some(text);
                }
                Kind::Control(text) => {
                    SourceCounters::add(&counters.control, 1);
                    warn!(message = %text, "error message in the stream");
                }
            }
        }
        // The log first: a line is on disk before the pipeline can see it.
        if let Some(wal) = &self.wal {
            wal.append(&received_at, &items)?;
        }
        self.queue.push_many(&received_at, &mut items).await?;
        for (len, prefix) in oversized {
            let reason = format!(
                "stream line of {len} bytes is over the limit of {} bytes",
                self.config.max_line_bytes
            );
            self.out.dead_letter(ORIGIN, &reason, &prefix, len)?;
        }
        Ok(reconnect)
    }
}

/// A line as bytes sharing the chunk it lies in (no copy), or a copy when
/// the splitter joined it from two chunks.
fn share(chunk: &Bytes, line: &[u8]) -> Bytes {
    let within = chunk.as_ptr_range();
    let at = line.as_ptr_range();
    if !line.is_empty() && within.start <= at.start && at.end <= within.end {
        chunk.slice_ref(line)
    } else {
        Bytes::copy_from_slice(line)
    }
}

/// The stream request's query: the fields asked for, and the backfill.
fn stream_query(config: &StreamConfig) -> Vec<(&'static str, String)> {
    let mut query: Vec<(&str, String)> = Vec::new();
    if config.kind.takes_fields() {
        query.extend([
            ("tweet.fields", config.tweet_fields.clone()),
            ("expansions", config.expansions.clone()),
            ("user.fields", config.user_fields.clone()),
            ("media.fields", config.media_fields.clone()),
        ]);
    }
    query.extend(config.kind.like_query(&config.user_fields));
    query.retain(|(_, v)| !v.is_empty());
    if let Some(p) = config.partition {
        query.push(("partition", p.to_string()));
    }
    if let Some(m) = config.backfill_minutes.filter(|m| *m > 0) {
        query.push(("backfill_minutes", m.to_string()));
    }
    query
}

/// A refused connection: the back-off class and reason, or an error when
/// retrying cannot help.
fn refused(
    kind: StreamKind,
    status: u16,
    body: &str,
) -> Result<(StreamFailure, String), SourceError> {
    let problem = parse_problem(body);
    match status {
        401 | 403 => Err(crate::sources::twitter::api::ApiError::Unauthorized {
            status,
            problem: Box::new(problem),
        }
        .into()),
        409 if kind.has_rules() => Err(SourceError::NoRules),
        // A volume or compliance stream refusing its parameters (a partition
        // or backfill X does not serve): asking again cannot help.
        400 if !kind.has_rules() => Err(crate::sources::twitter::api::ApiError::Http {
            status,
            problem: Box::new(problem),
        }
        .into()),
        429 => {
            if problem.connection_issue.as_deref() == Some("TooManyConnections")
                || body.contains("TooManyConnections")
            {
                warn!(
                    "another connection holds the stream (TooManyConnections): stop it, or start with --reset-connections"
                );
            }
            Ok((StreamFailure::RateLimited, format!("HTTP 429: {problem}")))
        }
        _ => Ok((StreamFailure::Http, format!("HTTP {status}: {problem}"))),
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
    // (The finders are built once: building one per line showed in profiles.)
    static ERRORS: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"errors\""));
    static DATA: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"data\""));
    if ERRORS.find(t).is_some() && DATA.find(t).is_none() {
        let text = String::from_utf8_lossy(t).into_owned();
        if text.contains("operational-disconnect") {
            return Kind::Reconnect(text);
        }
        return Kind::Control(text);
    }
    Kind::Item
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line inside one chunk is a slice of it; a line the splitter joined
    /// from two chunks is a copy (its bytes are in neither).
    #[test]
    fn lines_share_their_chunk_unless_joined_from_two() {
        let chunk = Bytes::from_static(b"{\"a\":1}\n{\"b\"");
        let next = Bytes::from_static(b":2}\n");
        let mut splitter = LineSplitter::new(1024);
        let mut lines = Vec::new();
        for bytes in [&chunk, &next] {
            splitter.push(bytes, |l| {
                if let Line::Complete(l) = l {
                    lines.push(share(bytes, l))
                }
            });
        }
        assert_eq!(lines, [&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]]);
        assert_eq!(lines[0].as_ptr(), chunk.as_ptr(), "shared");
        let in_chunks =
            |p: *const u8| chunk.as_ptr_range().contains(&p) || next.as_ptr_range().contains(&p);
        assert!(!in_chunks(lines[1].as_ptr()), "copied");
    }

    #[test]
    fn refusals_are_classified() {
        let f = StreamKind::Filter;
        assert!(matches!(refused(f, 409, ""), Err(SourceError::NoRules)));
        assert!(matches!(
            refused(f, 401, ""),
            Err(SourceError::TwitterApi(_))
        ));
        assert!(matches!(
            refused(f, 429, "TooManyConnections"),
            Ok((StreamFailure::RateLimited, _))
        ));
        assert!(matches!(refused(f, 503, ""), Ok((StreamFailure::Http, _))));
        assert!(matches!(refused(f, 400, ""), Ok((StreamFailure::Http, _))));
    }

    #[test]
    fn volume_streams_have_no_rules_and_a_refused_partition_is_final() {
        let v = StreamKind::Sample10;
        assert!(matches!(refused(v, 409, ""), Ok((StreamFailure::Http, _))));
        assert!(matches!(
            refused(v, 400, ""),
            Err(SourceError::TwitterApi(_))
        ));
        assert!(matches!(refused(v, 503, ""), Ok((StreamFailure::Http, _))));
    }

    #[test]
    fn the_query_carries_the_partition_and_fields_only_where_they_belong() {
        let mut c = StreamConfig {
            kind: StreamKind::Sample10,
            partition: Some(2),
            backfill_minutes: Some(3),
            ..StreamConfig::default()
        };
        let q = stream_query(&c);
        assert!(q.contains(&("partition", "2".into())));
        assert!(q.contains(&("backfill_minutes", "3".into())));
        assert!(q.iter().any(|(k, _)| *k == "tweet.fields"));
        c.kind = StreamKind::Compliance;
        let q = stream_query(&c);
        assert!(
            q.iter()
                .all(|(k, _)| !k.contains('.') && *k != "expansions"),
            "{q:?}"
        );
        assert!(
            stream_query(&StreamConfig::default())
                .iter()
                .all(|(k, _)| *k != "partition")
        );
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
