//! Sources: where records come from. A source normalizes what it reads into
//! records, sends them in batches, and may wait for each batch's ack (every sink
//! confirmed it) before it commits a checkpoint.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;

use crate::record::NormalizeOptions;
use crate::state::DeadLetters;

pub mod http;
pub mod kafka;
pub mod lines;
pub mod output;
pub mod redelivery;
pub mod replay;
pub mod seen;
pub mod spill;
pub mod telegram;
pub mod twitter;
pub mod wal;

pub use output::{MediaResolver, Origin, SourceOutput, Tracked, received_now};

/// Which platform raw input is from (`--platform`, `platform =`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputPlatform {
    /// Tell each line's platform from its shape.
    #[default]
    Auto,
    Twitter,
    Telegram,
}

impl InputPlatform {
    pub const NAMES: &'static [&'static str] = &["auto", "twitter", "telegram"];
}

/// A source failed for good.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {what}: {source}")]
    Read {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Spill(#[from] spill::SpillError),
    #[error(transparent)]
    Wal(#[from] wal::WalError),
    #[error(transparent)]
    TwitterApi(#[from] twitter::api::ApiError),
    #[error(transparent)]
    Polling(#[from] telegram::polling::PollingError),
    #[error("Telegram: {0}")]
    Telegram(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "the stream has no rules: add one with `ingest rules sync --rules rules.toml` (or run `ingest twitter --rules rules.toml`)"
    )]
    NoRules,
    #[error("Kafka: {0}")]
    Kafka(String),
    #[error(transparent)]
    Search(#[from] twitter::search::SearchError),
}

/// Counters a source keeps; they end up in the run summary.
#[derive(Debug, Default)]
pub struct SourceCounters {
    /// Records produced.
    pub records: AtomicU64,
    /// Input that could not become a record (dead-lettered).
    pub malformed: AtomicU64,
    /// Control messages (X `errors` lines): not records.
    pub control: AtomicU64,
    /// Items seen again (after a reconnect or backfill) and dropped by id.
    pub duplicates: AtomicU64,
    /// Items of no kind the source knows, recorded as they are (X webhook bodies).
    pub unknown: AtomicU64,
    /// Items recorded from a replay (X webhook replay jobs).
    pub replayed: AtomicU64,
    /// Connections opened (live sources).
    pub connections: AtomicU64,
    /// Connections that were accepted (X: HTTP 200 on the stream).
    pub connected: AtomicU64,
    /// Reconnects of a live source, by reason (`stall`, `dropped`, `network_error`,
    /// `http_error`, `rate_limited`). Rare events: a lock is fine.
    pub reconnects: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// When a checkpoint was last committed, in seconds since the epoch (0: never).
    pub checkpoint_unix_secs: AtomicU64,
    /// Until when the source waits for a rate-limit reset, in Unix milliseconds (0: not waiting).
    pub rate_limit_until_ms: AtomicU64,
    /// What became of the records' media (`--media`).
    pub media: MediaCounters,
}

/// Media items by outcome (`--media`), for the summary and the metrics.
#[derive(Debug, Default)]
pub struct MediaCounters {
    /// Items downloaded and stored by this run.
    pub stored: AtomicU64,
    /// Items stored earlier in the run (the same file in another record): not fetched again.
    pub reused: AtomicU64,
    /// Items skipped: over `max_bytes`, or of a type not asked for.
    pub skipped: AtomicU64,
    /// Items that failed for good after their retries.
    pub failed: AtomicU64,
    /// Bytes downloaded and stored.
    pub bytes: AtomicU64,
    /// Attempts retried.
    pub retries: AtomicU64,
}

impl SourceCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Notes a reconnect and why.
    pub fn reconnected(&self, reason: &'static str) {
        *self
            .reconnects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    /// Reconnects so far, by reason.
    pub fn reconnects(&self) -> Vec<(&'static str, u64)> {
        let map = self.reconnects.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// Notes that a checkpoint was just committed.
    pub fn checkpointed(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.checkpoint_unix_secs.store(now, Ordering::Relaxed);
    }
}

/// What the pipeline hands a source.
#[derive(Debug, Clone)]
pub struct SourceContext {
    pub normalize: NormalizeOptions,
    /// The state dir, for spill files and checkpoints.
    pub state_dir: std::path::PathBuf,
    pub dead_letters: DeadLetters,
    pub counters: Arc<SourceCounters>,
}

/// A producer of records.
pub trait Source: Send + 'static {
    /// The source's name in logs and the summary.
    fn name(&self) -> &'static str;

    /// Runs until the input ends or `shutdown` is cancelled, sending batches
    /// (and dead letters) through `out`.
    fn run(
        self,
        ctx: SourceContext,
        out: SourceOutput,
        shutdown: CancellationToken,
    ) -> impl Future<Output = Result<(), SourceError>> + Send;
}
