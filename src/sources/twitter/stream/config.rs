//! `[twitter]`, as written in the config file: the X streams' keys, beside
//! their defaults ([`StreamConfig::default`](super::StreamConfig)). The
//! command resolves them (`config::TwitterSettings::resolve`): defaults <
//! this table < `INGEST_*` < flags; `[twitter_search]` falls back on its
//! field lists.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Buffer;
use super::rules::RulesMode;
use super::volume::StreamKind;
use crate::duration::de_duration_opt;
use crate::retry::StreamBackoffConfig;

/// `[twitter]`: the X filtered-stream source.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwitterConfig {
    /// Base URL of the X API.
    pub api_base: Option<String>,
    /// Rules file.
    pub rules: Option<PathBuf>,
    /// `sync` or `keep`.
    pub rules_mode: Option<RulesMode>,
    /// `filter`, `sample`, `sample10`, `firehose`, `compliance` or `user-compliance`.
    pub stream: Option<StreamKind>,
    /// The partition of a partitioned stream.
    pub partition: Option<u32>,
    /// Reconnect when no byte arrives for this long (`"30s"`).
    #[serde(default, deserialize_with = "de_duration_opt")]
    pub stall_timeout: Option<Duration>,
    pub tweet_fields: Option<String>,
    pub expansions: Option<String>,
    pub user_fields: Option<String>,
    /// 1-5 minutes of backfill after a disconnect.
    pub backfill_minutes: Option<u32>,
    /// Recent tweet ids remembered to drop duplicates.
    pub dedupe_window: Option<usize>,
    /// Longest accepted stream line.
    pub max_line_bytes: Option<usize>,
    /// Received lines held in memory before spilling to disk.
    pub spill_memory_bytes: Option<usize>,
    /// Largest spill file; past it the reader waits.
    pub spill_max_bytes: Option<u64>,
    /// Reconnect back-off bases.
    pub backoff: Option<StreamBackoffConfig>,
    /// `memory` or `disk` (a write-ahead log in the state dir).
    pub buffer: Option<Buffer>,
}
