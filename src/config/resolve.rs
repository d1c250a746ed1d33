//! The run-wide settings (defaults < config file < `INGEST_*` environment <
//! flags) and the sinks a run writes to. Each source resolves its own table
//! (`sources/*/config.rs`, `resolve`); each sink checks its own fields; this
//! layer composes and says where a problem is.

use std::path::PathBuf;
use std::time::Duration;

use super::{DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_UNHEALTHY_AFTER, LoadedConfig};
use crate::cli::RunArgs;
use crate::locate::{ConfigError, ResolveError, find_field_line};
use crate::record::Format;
use crate::sinks::SinkConfig;

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
    /// Media capture (`--media`, `[media]`); set by the capture commands.
    pub media: Option<crate::media::MediaSettings>,
}

/// A sink with the name it was asked for by.
#[derive(Debug, Clone)]
pub struct NamedSink {
    pub name: String,
    pub config: SinkConfig,
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
            media: None,
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
                None => return Err(bad_name(unknown_sink(&name, file))),
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
        parquet_batch_defaults(&name, &mut config, &loaded.text);
        validate_sink(&name, &config, keep_raw, loaded)?;
        sinks.push(NamedSink { name, config });
    }
    Ok(sinks)
}

/// Parquet's own batch defaults. A Parquet file (or S3 object) is one batch,
/// written whole and confirmed when it is closed: with the JSON defaults (1 s)
/// a capture wrote a file a second. Unless `[sinks.NAME.batch]` sets them, a
/// Parquet file rolls at 5 minutes, 128 MiB of records or 1 000 000 records,
/// whichever comes first (and at the end of the run; a spent memory budget
/// makes the sinks write what they hold early).
fn parquet_batch_defaults(name: &str, config: &mut SinkConfig, text: &str) {
    let batch = match config {
        SinkConfig::File(c) if c.format.is_parquet() => &mut c.batch,
        SinkConfig::S3(c) if c.format.is_parquet() => &mut c.batch,
        _ => return,
    };
    let set = |key: &str| find_field_line(text, &format!("sinks.{name}.batch.{key}")).is_some();
    if !set("timeout_ms") {
        batch.timeout_ms = PARQUET_BATCH_TIMEOUT_MS;
    }
    if !set("max_bytes") {
        batch.max_bytes = PARQUET_BATCH_BYTES;
    }
    if !set("max_records") {
        batch.max_records = PARQUET_BATCH_RECORDS;
    }
}

/// Parquet's default `[batch] timeout_ms`: 5 minutes.
pub const PARQUET_BATCH_TIMEOUT_MS: u64 = 5 * 60 * 1000;
/// Parquet's default `[batch] max_bytes`: 128 MiB of records.
pub const PARQUET_BATCH_BYTES: usize = 128 * 1024 * 1024;
/// Parquet's default `[batch] max_records`.
pub const PARQUET_BATCH_RECORDS: usize = 1_000_000;

/// Why `name` is no sink, with the closest name when one is close.
fn unknown_sink(name: &str, file: &super::FileConfig) -> String {
    let known: Vec<&str> = file.sinks.keys().map(String::as_str).collect();
    let closest = known
        .iter()
        .copied()
        .chain(SinkConfig::BUILT_IN)
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    format!(
        "unknown sink `{name}`: it is neither a [sinks.{name}] table{} nor a built-in type ({}){}",
        if known.is_empty() {
            String::new()
        } else {
            format!(" (the config has: {})", known.join(", "))
        },
        SinkConfig::BUILT_IN.join(", "),
        closest
            .map(|(_, k)| format!("; did you mean `{k}`?"))
            .unwrap_or_default()
    )
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
