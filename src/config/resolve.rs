//! Resolution: defaults < config file < `INGEST_*` environment < flags, into
//! the settings each command runs with. Each connector checks its own fields;
//! this layer composes and says where a problem is.

use std::path::PathBuf;
use std::time::Duration;

use super::{
    DEFAULT_MAX_LINE_BYTES, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_UNHEALTHY_AFTER, LoadedConfig,
};
use crate::cli::{ReplayArgs, RunArgs, TwitterArgs};
use crate::locate::{ConfigError, find_field_line};
use crate::record::Format;
use crate::sinks::SinkConfig;
use crate::sources::InputPlatform;
use crate::sources::twitter::api::{DEFAULT_API_BASE, NewRule};
use crate::sources::twitter::stream::StreamConfig;
use crate::sources::twitter::stream::rules::RulesMode;
use crate::sources::twitter::stream::volume::{StreamKind, check_partition};

/// Everything a run needs, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sinks: Vec<NamedSink>,
    pub state_dir: PathBuf,
    pub duration: Option<Duration>,
    pub max_records: Option<u64>,
    pub shutdown_timeout: Duration,
    pub keep_raw: bool,
    pub transliterate: bool,
    pub summary: bool,
    /// Where to serve /metrics and /healthz.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// How long a sink may owe records without confirming any before /healthz says 503.
    pub unhealthy_after: Duration,
    /// Show the status line on stderr.
    pub progress: bool,
}

/// A sink with the name it was asked for by.
#[derive(Debug, Clone)]
pub struct NamedSink {
    pub name: String,
    pub config: SinkConfig,
}

/// What `ingest replay` reads.
#[derive(Debug, Clone)]
pub struct ReplaySettings {
    pub input: PathBuf,
    pub platform: InputPlatform,
    pub max_line_bytes: usize,
}

/// Errors of resolution: bad config (78) or bad usage (2).
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
}

impl Settings {
    /// Resolves the run options: defaults < file < env < flags.
    pub fn resolve(args: &RunArgs, loaded: &LoadedConfig) -> Result<Self, ResolveError> {
        let file = &loaded.file;
        let keep_raw = !args.no_raw && file.raw.unwrap_or(true);
        let sinks = resolve_sinks(args, loaded, keep_raw)?;
        let stderr_tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        // Records on the same terminal would run into the status line.
        let records_on_tty = sinks
            .iter()
            .any(|s| matches!(s.config, SinkConfig::Stdout(_)))
            && std::io::IsTerminal::is_terminal(&std::io::stdout());
        let progress = stderr_tty && !args.quiet && !args.json_logs && !records_on_tty;
        Ok(Settings {
            sinks,
            state_dir: args
                .state_dir
                .clone()
                .or_else(|| file.state_dir.clone())
                .unwrap_or_else(crate::state::default_state_dir),
            duration: args.duration.or(file.duration),
            max_records: args.max_records.or(file.max_records),
            shutdown_timeout: args
                .shutdown_timeout
                .or(file.shutdown_timeout)
                .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
            keep_raw,
            transliterate: args.transliterate || file.transliterate.unwrap_or(false),
            summary: args.summary,
            metrics_addr: args.metrics_addr,
            unhealthy_after: args.unhealthy_after.unwrap_or(DEFAULT_UNHEALTHY_AFTER),
            progress,
        })
    }
}

/// The sinks a run writes to: `--sink` names, else `default_sinks`; each a
/// config table or a built-in type's defaults (with the built-in sinks' flags
/// applied), validated.
fn resolve_sinks(
    args: &RunArgs,
    loaded: &LoadedConfig,
    keep_raw: bool,
) -> Result<Vec<NamedSink>, ResolveError> {
    let file = &loaded.file;
    let names: Vec<String> = if args.sinks.is_empty() {
        file.default_sinks.clone()
    } else {
        args.sinks.clone()
    };
    if names.is_empty() {
        return Err(ResolveError::Usage(
            "no sink: name one with --sink (for example `--sink file` or `--sink stdout`), or set `default_sinks` in the config".into(),
        ));
    }
    // A bad name from `default_sinks` is the config's mistake (78, with its
    // line); from `--sink`, a usage error (2).
    let bad_name = |message: String| -> ResolveError {
        if args.sinks.is_empty() {
            loaded.error("default_sinks", message).into()
        } else {
            ResolveError::Usage(message)
        }
    };
    let mut sinks: Vec<NamedSink> = Vec::new();
    for name in names {
        let name = name.trim().to_owned();
        if sinks.iter().any(|s| s.name == name) {
            return Err(bad_name(format!("sink `{name}` is named twice")));
        }
        let mut config = match file.sinks.get(&name) {
            Some(c) => c.clone(),
            None => match SinkConfig::defaults_for(&name) {
                Some(Ok(config)) => config,
                Some(Err(needs_table)) => return Err(bad_name(needs_table)),
                None => {
                    let known: Vec<&str> = file.sinks.keys().map(String::as_str).collect();
                    let message = format!(
                        "unknown sink `{name}`: it is neither a [sinks.{name}] table{} nor a built-in type ({})",
                        if known.is_empty() {
                            String::new()
                        } else {
                            format!(" (the config has: {})", known.join(", "))
                        },
                        SinkConfig::BUILT_IN.join(", ")
                    );
                    return Err(bad_name(message));
                }
            },
        };
        if let (SinkConfig::File(c), Some(path), false) = (
            &mut config,
            &args.built_in.file_path,
            file.sinks.contains_key(&name),
        ) {
            c.path = path.clone();
        }
        if let (SinkConfig::Kafka(c), false) = (&mut config, file.sinks.contains_key(&name)) {
            if let Some(brokers) = &args.built_in.kafka_brokers {
                c.brokers = brokers.clone();
            }
            if let Some(topic) = &args.built_in.kafka_topic {
                c.topic = topic.clone();
            }
        }
        validate_sink(&name, &config, keep_raw, loaded)?;
        sinks.push(NamedSink { name, config });
    }
    Ok(sinks)
}

impl ReplaySettings {
    pub fn resolve(args: &ReplayArgs, loaded: &LoadedConfig) -> Result<Self, ResolveError> {
        let max_line_bytes = args
            .max_line_bytes
            .or(loaded.file.replay.max_line_bytes)
            .unwrap_or(DEFAULT_MAX_LINE_BYTES);
        if max_line_bytes == 0 {
            return Err(loaded
                .error("replay.max_line_bytes", "must be at least 1")
                .into());
        }
        Ok(ReplaySettings {
            input: args.input.clone(),
            platform: args
                .platform
                .or(loaded.file.replay.platform)
                .unwrap_or_default(),
            max_line_bytes,
        })
    }
}

/// Resolves `ingest kafka`: flags < `[kafka]` < defaults.
pub fn kafka_source_settings(
    args: &crate::cli::KafkaArgs,
    loaded: &LoadedConfig,
) -> Result<crate::sources::kafka::KafkaSourceSettings, ResolveError> {
    use crate::sources::kafka;
    let k = &loaded.file.kafka;
    let settings = kafka::KafkaSourceSettings {
        brokers: args
            .brokers
            .clone()
            .or(k.brokers.clone())
            .unwrap_or_else(|| kafka::DEFAULT_BROKERS.to_owned()),
        topics: if args.topics.is_empty() {
            k.topics.clone()
        } else {
            args.topics.clone()
        },
        group: args
            .group
            .clone()
            .or(k.group.clone())
            .unwrap_or_else(|| kafka::DEFAULT_GROUP.to_owned()),
        from: args.from.or(k.from).unwrap_or_default(),
        platform: args.platform.or(k.platform).unwrap_or_default(),
        session_timeout_ms: k.session_timeout_ms.unwrap_or(10_000),
        batch_max_messages: k.batch_max_messages.unwrap_or(1000),
        idle: Duration::from_millis(k.idle_ms.unwrap_or(1000)),
        until_idle: args.until_idle,
        properties: k.properties.clone(),
    };
    kafka::validate(&settings).map_err(|(field, message)| {
        let from_flag = match field.as_str() {
            "topics" => !args.topics.is_empty() || k.topics.is_empty(),
            "brokers" => args.brokers.is_some(),
            "group" => args.group.is_some(),
            _ => false,
        };
        if from_flag || loaded.path.is_none() {
            ResolveError::Usage(format!("kafka {field}: {message}"))
        } else {
            loaded.error(&format!("kafka.{field}"), message).into()
        }
    })?;
    Ok(settings)
}

/// What `ingest twitter` needs besides the run settings.
#[derive(Debug, Clone)]
pub struct TwitterSettings {
    pub api_base: String,
    pub stream: StreamConfig,
    /// The rules wanted (from --rules or --track), if any.
    pub rules: Option<Vec<NewRule>>,
    pub rules_mode: RulesMode,
    /// Run the built-in mock (with this scenario file, if any).
    pub mock: Option<Option<PathBuf>>,
}

/// The X API base: flag/env, else config, else the public API.
pub fn api_base(flag: Option<&str>, loaded: &LoadedConfig) -> String {
    flag.map(str::to_owned)
        .or_else(|| loaded.file.twitter.api_base.clone())
        .unwrap_or_else(|| DEFAULT_API_BASE.to_owned())
}

/// The Telegram Bot API base: flag/env, else config, else the public API.
pub fn telegram_api_base(flag: Option<&str>, loaded: &LoadedConfig) -> String {
    flag.map(str::to_owned)
        .or_else(|| loaded.file.telegram.api_base.clone())
        .unwrap_or_else(|| crate::sources::telegram::api::DEFAULT_API_BASE.to_owned())
}

/// The stream and its partition (flag/env over `[twitter]`), checked before
/// anything is sent to X: a missing or bad partition is a usage error naming
/// the valid range, and rules go only with the filtered stream.
fn resolve_stream(
    args: &TwitterArgs,
    loaded: &LoadedConfig,
) -> Result<(StreamKind, Option<u32>), ResolveError> {
    let t = &loaded.file.twitter;
    let kind = args.stream.or(t.stream).unwrap_or_default();
    let partition =
        check_partition(kind, args.partition.or(t.partition)).map_err(ResolveError::Usage)?;
    if !kind.has_rules() && (args.rules.is_some() || args.track.is_some()) {
        return Err(ResolveError::Usage(format!(
            "--rules and --track filter the filtered stream only; {} takes no rules",
            kind.label()
        )));
    }
    Ok((kind, partition))
}

impl TwitterSettings {
    pub fn resolve(args: &TwitterArgs, loaded: &LoadedConfig) -> Result<Self, ResolveError> {
        let t = &loaded.file.twitter;
        let d = StreamConfig::default();
        let stall_timeout = args
            .stall_timeout
            .or(t.stall_timeout)
            .unwrap_or(d.stall_timeout);
        if stall_timeout.is_zero() {
            return Err(loaded
                .error("twitter.stall_timeout", "must be more than zero")
                .into());
        }
        if let Some(m) = t.backfill_minutes.filter(|m| !(1..=5).contains(m)) {
            return Err(loaded
                .error(
                    "twitter.backfill_minutes",
                    format!("{m} is out of range: X accepts 1 to 5"),
                )
                .into());
        }
        let max_line_bytes = t.max_line_bytes.unwrap_or(d.max_line_bytes);
        if max_line_bytes == 0 {
            return Err(loaded
                .error("twitter.max_line_bytes", "must be at least 1")
                .into());
        }
        let (kind, partition) = resolve_stream(args, loaded)?;
        let stream = StreamConfig {
            kind,
            partition,
            tweet_fields: args
                .tweet_fields
                .clone()
                .or(t.tweet_fields.clone())
                .unwrap_or(d.tweet_fields),
            expansions: args
                .expansions
                .clone()
                .or(t.expansions.clone())
                .unwrap_or(d.expansions),
            user_fields: args
                .user_fields
                .clone()
                .or(t.user_fields.clone())
                .unwrap_or(d.user_fields),
            backfill_minutes: args.backfill_minutes.or(t.backfill_minutes),
            stall_timeout,
            backoff: t.backoff.unwrap_or_default(),
            dedupe_window: t.dedupe_window.unwrap_or(d.dedupe_window),
            reset_connections: args.reset_connections,
            max_line_bytes,
            spill_memory_bytes: t.spill_memory_bytes.unwrap_or(d.spill_memory_bytes),
            spill_max_bytes: t.spill_max_bytes.unwrap_or(d.spill_max_bytes),
            buffer: args.buffer.or(t.buffer).unwrap_or(d.buffer),
        };
        // Only the filtered stream has rules; a rules file in the config is
        // left alone for the other streams.
        let file_rules = t.rules.as_ref().filter(|_| kind.has_rules());
        let rules = match (&args.track, args.rules.as_ref().or(file_rules)) {
            (Some(track), _) => {
                let rules = crate::sources::twitter::stream::rules::track_to_rules(track)
                    .map_err(ResolveError::Usage)?;
                let values: Vec<&str> = rules.iter().map(|r| r.value.as_str()).collect();
                tracing::info!(track = %track, rules = ?values, "--track converted to filtered-stream rules");
                Some(rules)
            }
            (None, Some(path)) => Some(crate::sources::twitter::stream::rules::load(path)?),
            (None, None) => None,
        };
        Ok(TwitterSettings {
            api_base: api_base(args.api.twitter_api_base.as_deref(), loaded),
            stream,
            rules,
            rules_mode: args.rules_mode.or(t.rules_mode).unwrap_or_default(),
            mock: args.mock.then(|| args.mock_scenario.clone()),
        })
    }
}

fn validate_sink(
    name: &str,
    config: &SinkConfig,
    keep_raw: bool,
    loaded: &LoadedConfig,
) -> Result<(), ConfigError> {
    let field = |f: &str| format!("sinks.{name}.{f}");
    let common = config.common();
    if common.queue_capacity == 0 {
        return Err(loaded.error(&field("queue_capacity"), "must be at least 1"));
    }
    if common.batch.max_records == 0 {
        return Err(loaded.error(&field("batch.max_records"), "must be at least 1"));
    }
    if common.batch.max_bytes == 0 {
        return Err(loaded.error(&field("batch.max_bytes"), "must be at least 1"));
    }
    if common.retry.max_attempts == 0 {
        return Err(loaded.error(
            &field("retry.max_attempts"),
            "must be at least 1 (the first attempt counts)",
        ));
    }
    if config.format() == Format::Raw && !keep_raw {
        return Err(loaded.error(&field("format"), "`format = \"raw\"` writes the original payload, which --no-raw (or `raw = false`) drops; use one or the other"));
    }
    if let Err(crate::sinks::FieldError {
        field: f,
        message: m,
    }) = config.validate()
    {
        // A missing optional field has no line: point at the table instead.
        let at = if find_field_line(&loaded.text, &field(&f)).is_some() {
            field(&f)
        } else {
            format!("sinks.{name}")
        };
        return Err(ConfigError::Invalid {
            path: loaded.path.clone(),
            line: find_field_line(&loaded.text, &at),
            field: field(&f),
            message: m,
        });
    }
    Ok(())
}
