//! `[twitter]`, as written in the config file: the X streams' keys, beside
//! their defaults ([`StreamConfig::default`](super::StreamConfig)), and
//! [`resolve`], the one place they are resolved: defaults < this table <
//! `INGEST_*` < flags ([`StreamFlags`], filled by the command line);
//! `[twitter_search]` falls back on its field lists.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::rules::{self, RulesMode};
use super::volume::{Lang, StreamKind, check_partition};
use super::{Buffer, StreamConfig};
use crate::duration::de_duration_opt;
use crate::locate::{FileAt, ResolveError};
use crate::retry::StreamBackoffConfig;
use crate::sources::twitter::api::{DEFAULT_API_BASE, NewRule};

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

/// What the command line says about a stream run (flags and `INGEST_*`),
/// as plain data: `None` where it says nothing.
#[derive(Debug, Clone, Default)]
pub struct StreamFlags {
    pub api_base: Option<String>,
    pub rules: Option<PathBuf>,
    pub track: Option<String>,
    pub rules_mode: Option<RulesMode>,
    pub stream: Option<StreamKind>,
    pub partition: Option<u32>,
    /// `--lang`: the language of `--stream firehose-lang`.
    pub lang: Option<Lang>,
    pub stall_timeout: Option<Duration>,
    pub reset_connections: bool,
    pub buffer: Option<Buffer>,
    pub tweet_fields: Option<String>,
    pub expansions: Option<String>,
    pub user_fields: Option<String>,
    pub backfill_minutes: Option<u32>,
    /// Run the built-in mock (with this scenario file, if any).
    pub mock: Option<Option<PathBuf>>,
}

/// What `ingest twitter` needs besides the run settings.
#[derive(Debug, Clone)]
pub struct TwitterSettings {
    pub api_base: String,
    pub stream: StreamConfig,
    /// The rules wanted (from --rules or --track), if any.
    pub rules: Option<Vec<NewRule>>,
    pub rules_mode: RulesMode,
    /// The rules come from `--track`: the sync touches only its own.
    pub track: bool,
    /// Run the built-in mock (with this scenario file, if any).
    pub mock: Option<Option<PathBuf>>,
}

/// The X API base: flag/env, else `[twitter] api_base`, else the public API.
pub fn api_base(flag: Option<&str>, table: &TwitterConfig) -> String {
    flag.map(str::to_owned)
        .or_else(|| table.api_base.clone())
        .unwrap_or_else(|| DEFAULT_API_BASE.to_owned())
}

/// Resolves `ingest twitter`: defaults < `[twitter]` < flags.
pub fn resolve(
    flags: &StreamFlags,
    table: &TwitterConfig,
    at: FileAt<'_>,
) -> Result<TwitterSettings, ResolveError> {
    let (kind, partition) = resolve_stream(flags, table)?;
    let stream = stream_config(flags, table, at, kind, partition)?;
    Ok(TwitterSettings {
        api_base: api_base(flags.api_base.as_deref(), table),
        stream,
        rules: resolve_rules(flags, table, kind)?,
        rules_mode: flags.rules_mode.or(table.rules_mode).unwrap_or_default(),
        track: flags.track.is_some(),
        mock: flags.mock.clone(),
    })
}

/// The stream and its partition (flag/env over `[twitter]`), checked before
/// anything is sent to X: a missing or bad partition is a usage error naming
/// the valid range, and rules go only with the filtered stream.
fn resolve_stream(
    flags: &StreamFlags,
    table: &TwitterConfig,
) -> Result<(StreamKind, Option<u32>), ResolveError> {
    let kind = with_lang(
        flags.stream.or(table.stream).unwrap_or_default(),
        flags.lang,
    )?;
    let partition =
        check_partition(kind, flags.partition.or(table.partition)).map_err(ResolveError::Usage)?;
    if !kind.has_rules() && (flags.rules.is_some() || flags.track.is_some()) {
        return Err(ResolveError::Usage(format!(
            "--rules and --track filter the filtered stream only; {} takes no rules",
            kind.label()
        )));
    }
    Ok((kind, partition))
}

/// `--stream firehose-lang` with its `--lang`; `--lang` with no other stream.
fn with_lang(kind: StreamKind, lang: Option<Lang>) -> Result<StreamKind, ResolveError> {
    match (kind, lang) {
        (StreamKind::FirehoseLang(_), Some(l)) => Ok(StreamKind::FirehoseLang(l)),
        (StreamKind::FirehoseLang(_), None) => Err(ResolveError::Usage(
            "--stream firehose-lang needs --lang en|ja|ko|pt: X serves one firehose per language"
                .into(),
        )),
        (k, Some(l)) => Err(ResolveError::Usage(format!(
            "--lang {} picks the language of --stream firehose-lang; {} has no language",
            l.name(),
            k.label()
        ))),
        (k, None) => Ok(k),
    }
}

fn stream_config(
    flags: &StreamFlags,
    t: &TwitterConfig,
    at: FileAt<'_>,
    kind: StreamKind,
    partition: Option<u32>,
) -> Result<StreamConfig, ResolveError> {
    let d = StreamConfig::default();
    let stall_timeout = flags
        .stall_timeout
        .or(t.stall_timeout)
        .unwrap_or(d.stall_timeout);
    if stall_timeout.is_zero() {
        return Err(at
            .error("twitter.stall_timeout", "must be more than zero")
            .into());
    }
    if let Some(m) = t.backfill_minutes.filter(|m| !(1..=5).contains(m)) {
        let message = format!("{m} is out of range: X accepts 1 to 5");
        return Err(at.error("twitter.backfill_minutes", message).into());
    }
    let max_line_bytes = t.max_line_bytes.unwrap_or(d.max_line_bytes);
    if max_line_bytes == 0 {
        return Err(at
            .error("twitter.max_line_bytes", "must be at least 1")
            .into());
    }
    let pick = |flag: &Option<String>, file: &Option<String>, default: String| {
        flag.clone().or(file.clone()).unwrap_or(default)
    };
    Ok(StreamConfig {
        kind,
        partition,
        tweet_fields: pick(&flags.tweet_fields, &t.tweet_fields, d.tweet_fields),
        expansions: pick(&flags.expansions, &t.expansions, d.expansions),
        user_fields: pick(&flags.user_fields, &t.user_fields, d.user_fields),
        media_fields: d.media_fields,
        backfill_minutes: flags.backfill_minutes.or(t.backfill_minutes),
        stall_timeout,
        backoff: t.backoff.unwrap_or_default(),
        dedupe_window: t.dedupe_window.unwrap_or(d.dedupe_window),
        reset_connections: flags.reset_connections,
        max_line_bytes,
        spill_memory_bytes: t.spill_memory_bytes.unwrap_or(d.spill_memory_bytes),
        spill_max_bytes: t.spill_max_bytes.unwrap_or(d.spill_max_bytes),
        buffer: flags.buffer.or(t.buffer).unwrap_or(d.buffer),
        track: flags
            .track
            .as_deref()
            .map(rules::track_groups)
            .unwrap_or_default(),
    })
}

/// The rules wanted: `--track`, else `--rules`, else `[twitter] rules` (the
/// last only for the filtered stream; a rules file in the config is left
/// alone for the other streams).
fn resolve_rules(
    flags: &StreamFlags,
    t: &TwitterConfig,
    kind: StreamKind,
) -> Result<Option<Vec<NewRule>>, ResolveError> {
    let file_rules = t.rules.as_ref().filter(|_| kind.has_rules());
    Ok(match (&flags.track, flags.rules.as_ref().or(file_rules)) {
        (Some(track), _) => {
            let rules = rules::track_to_rules(track).map_err(ResolveError::Usage)?;
            let values: Vec<&str> = rules.iter().map(|r| r.value.as_str()).collect();
            tracing::info!(track = %track, rules = ?values, "--track converted to filtered-stream rules");
            Some(rules)
        }
        (None, Some(path)) => Some(rules::load(path)?),
        (None, None) => None,
    })
}
