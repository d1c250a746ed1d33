//! The config file model and `Settings::resolve`: built-in defaults < config
//! file < `INGEST_*` environment < flags (the last two through clap).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::{BufferArg, LogFormat, PlatformArg, ReplayArgs, RulesMode, RunArgs, TwitterArgs};
use crate::record::Format;
use crate::retry::Backoff;
use crate::retry::StreamBackoffConfig;
use crate::sinks::file::{FileSinkConfig, StdoutSinkConfig};
use crate::sinks::kafka::KafkaSinkConfig;
use crate::sinks::kinesis::KinesisSinkConfig;
use crate::sinks::mongodb::MongodbSinkConfig;
use crate::sinks::s3::S3SinkConfig;
use crate::sources::twitter::api::{DEFAULT_API_BASE, NewRule};
use crate::sources::twitter::stream::{Buffer, StreamConfig};

/// The config file read when `--config` is not given and it exists.
pub const DEFAULT_CONFIG_FILE: &str = "ingest.toml";
/// Default for `--shutdown-timeout`.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for `--unhealthy-after`.
pub const DEFAULT_UNHEALTHY_AFTER: Duration = Duration::from_secs(60);
/// Default for `--max-line-bytes`.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// A config problem: what, where (file, line, field) and why. Exit code 78.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", location(path, *line, field))]
    Invalid {
        path: Option<PathBuf>,
        line: Option<usize>,
        field: String,
        message: String,
    },
}

fn location(path: &Option<PathBuf>, line: Option<usize>, field: &str) -> String {
    let mut s = match path {
        Some(p) => format!("config error in {}", p.display()),
        None => "config error".to_owned(),
    };
    if let Some(line) = line {
        s.push_str(&format!(" line {line}"));
    }
    if !field.is_empty() {
        s.push_str(&format!(", field `{field}`"));
    }
    s
}

/// The config file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Where dead letters and checkpoints live.
    pub state_dir: Option<PathBuf>,
    /// Stop after this long (`"15m"`).
    #[serde(default, deserialize_with = "de_duration_opt")]
    pub duration: Option<Duration>,
    /// Stop after this many records.
    pub max_records: Option<u64>,
    /// How long stop waits for sinks to drain.
    #[serde(default, deserialize_with = "de_duration_opt")]
    pub shutdown_timeout: Option<Duration>,
    /// `text` or `json`.
    pub log_format: Option<LogFormat>,
    /// Keep the original payload in `raw` (default true).
    pub raw: Option<bool>,
    /// Add `text_ascii`.
    pub transliterate: Option<bool>,
    /// Sinks used when no `--sink` is given.
    #[serde(default)]
    pub default_sinks: Vec<String>,
    /// The replay source.
    #[serde(default)]
    pub replay: ReplayConfig,
    /// The X filtered-stream source.
    #[serde(default)]
    pub twitter: TwitterConfig,
    /// The Telegram sources.
    #[serde(default)]
    pub telegram: TelegramConfig,
    /// The Kafka source.
    #[serde(default)]
    pub kafka: crate::sources::kafka::KafkaSourceConfig,
    /// Limits of the webhook server (both webhooks).
    #[serde(default)]
    pub webhook: crate::sources::webhook_server::WebhookServerConfig,
    /// Named sinks.
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
}

/// `[replay]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    pub platform: Option<PlatformArg>,
    pub max_line_bytes: Option<usize>,
}

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

/// `[telegram]`: the Telegram sources.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// Base URL of the Bot API.
    pub api_base: Option<String>,
    /// Keep only these chats.
    #[serde(default)]
    pub chat_ids: Vec<i64>,
    /// `allowed_updates`.
    #[serde(default)]
    pub allowed_updates: Vec<String>,
    /// Long-poll timeout (0-50 s).
    pub poll_timeout_secs: Option<u32>,
    /// Webhook URL path.
    pub webhook_path: Option<String>,
    /// Largest webhook body accepted (413 above it).
    pub max_body_bytes: Option<usize>,
    /// How long a webhook request waits for the sinks before answering 503.
    #[serde(default, deserialize_with = "de_duration_opt")]
    pub ack_timeout: Option<Duration>,
}

/// One `[sinks.NAME]` table; `type` picks the sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkConfig {
    File(FileSinkConfig),
    Stdout(StdoutSinkConfig),
    Kafka(KafkaSinkConfig),
    S3(S3SinkConfig),
    Kinesis(KinesisSinkConfig),
    Mongodb(MongodbSinkConfig),
}

impl SinkConfig {
    /// The built-in sink types a `--sink NAME` may name without a config table.
    pub const BUILT_IN: [&'static str; 4] = ["file", "stdout", "-", "kafka"];

    pub fn type_name(&self) -> &'static str {
        match self {
            SinkConfig::File(_) => "file",
            SinkConfig::Stdout(_) => "stdout",
            SinkConfig::Kafka(_) => "kafka",
            SinkConfig::S3(_) => "s3",
            SinkConfig::Kinesis(_) => "kinesis",
            SinkConfig::Mongodb(_) => "mongodb",
        }
    }

    pub fn common(&self) -> CommonSinkConfig {
        let (queue_capacity, batch, retry) = match self {
            SinkConfig::File(c) => (c.queue_capacity, c.batch, c.retry),
            SinkConfig::Stdout(c) => (c.queue_capacity, c.batch, c.retry),
            SinkConfig::Kafka(c) => (c.queue_capacity, c.batch, c.retry),
            SinkConfig::S3(c) => (c.queue_capacity, c.batch, c.retry),
            SinkConfig::Kinesis(c) => (c.queue_capacity, c.batch, c.retry),
            SinkConfig::Mongodb(c) => (c.queue_capacity, c.batch, c.retry),
        };
        CommonSinkConfig {
            queue_capacity,
            batch,
            retry,
        }
    }

    pub fn format(&self) -> Format {
        match self {
            SinkConfig::File(c) => c.format,
            SinkConfig::Stdout(c) => c.format,
            SinkConfig::Kafka(c) => c.format,
            SinkConfig::S3(c) => c.format,
            SinkConfig::Kinesis(c) => c.format,
            SinkConfig::Mongodb(c) => c.format,
        }
    }
}

/// Fields every sink table has (`queue_capacity`, `[batch]`, `[retry]`), gathered.
///
/// Each sink config repeats the three fields itself: serde cannot combine
/// `flatten` with `deny_unknown_fields`, and unknown fields must be errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonSinkConfig {
    /// Source batches the sink's queue holds before it pushes back.
    pub queue_capacity: usize,
    pub batch: BatchConfig,
    pub retry: RetryConfig,
}

impl Default for CommonSinkConfig {
    fn default() -> Self {
        CommonSinkConfig {
            queue_capacity: default_queue_capacity(),
            batch: BatchConfig::default(),
            retry: RetryConfig::default(),
        }
    }
}

pub(crate) fn default_queue_capacity() -> usize {
    64
}

/// `[sinks.NAME.batch]`: a write happens when any limit is reached.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    #[serde(default = "default_batch_records")]
    pub max_records: usize,
    #[serde(default = "default_batch_bytes")]
    pub max_bytes: usize,
    #[serde(default = "default_batch_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_records: default_batch_records(),
            max_bytes: default_batch_bytes(),
            timeout_ms: default_batch_timeout_ms(),
        }
    }
}

fn default_batch_records() -> usize {
    10_000
}
fn default_batch_bytes() -> usize {
    8 * 1024 * 1024
}
fn default_batch_timeout_ms() -> u64 {
    1000
}

/// `[sinks.NAME.retry]`: capped exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per batch, the first included; then the records are dead-lettered.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
        }
    }
}

impl RetryConfig {
    pub fn backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(self.initial_backoff_ms),
            Duration::from_millis(self.max_backoff_ms),
        )
    }
}

fn default_max_attempts() -> u32 {
    8
}
fn default_initial_backoff_ms() -> u64 {
    200
}
fn default_max_backoff_ms() -> u64 {
    30_000
}

pub(crate) fn de_duration_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    crate::cli::parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// A config file and where it came from.
#[derive(Debug, Default)]
pub struct LoadedConfig {
    pub path: Option<PathBuf>,
    pub text: String,
    pub file: FileConfig,
}

impl LoadedConfig {
    /// Loads `--config FILE`, else `./ingest.toml` when present, else nothing.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let path = match explicit {
            Some(p) => p.to_owned(),
            None => {
                let p = PathBuf::from(DEFAULT_CONFIG_FILE);
                if !p.exists() {
                    return Ok(LoadedConfig::default());
                }
                p
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(Some(path), text)
    }

    /// Parses config text; errors name the file, the line and the field.
    pub fn parse(path: Option<PathBuf>, text: String) -> Result<Self, ConfigError> {
        match toml::from_str::<FileConfig>(&text) {
            Ok(file) => {
                let loaded = LoadedConfig { path, text, file };
                loaded.check_values()?;
                Ok(loaded)
            }
            Err(e) => {
                let mut message = e.message().trim().to_owned();
                let (mut line, mut field) = match e.span() {
                    Some(span) => locate(&text, span.start, &message),
                    None => (None, String::new()),
                };
                // Errors inside a `[sinks.NAME]` table come back pointing at the
                // whole table (serde buffers tagged enums); parse the table alone
                // for the exact line and field.
                let sink = field
                    .strip_prefix("sinks.")
                    .map(|f| f.split('.').next().unwrap_or("").to_owned());
                if let Some((l, f, m)) = sink.and_then(|name| reparse_sink(&text, &name)) {
                    (line, field, message) = (Some(l), f, m);
                }
                Err(ConfigError::Invalid {
                    path,
                    line,
                    field,
                    message,
                })
            }
        }
    }

    /// Values that parse but can never work, refused at load (with file and line).
    fn check_values(&self) -> Result<(), ConfigError> {
        if self.file.telegram.max_body_bytes == Some(0) {
            return Err(self.error(
                "telegram.max_body_bytes",
                "must be at least 1 (0 would refuse every webhook request)",
            ));
        }
        if let Err((field, message)) = self.file.webhook.validate() {
            return Err(self.error(&format!("webhook.{field}"), message));
        }
        Ok(())
    }

    /// An error about `field` (a dotted path such as `sinks.lake.format`), pointing at its line.
    pub fn error(&self, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            line: find_field_line(&self.text, field),
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The dotted table path in force at `line` (1-based): the last `[header]` above it.
fn table_at(text: &str, line: usize) -> String {
    let mut table = String::new();
    for l in text.lines().take(line) {
        if let Some(h) = header_path(l) {
            table = h;
        }
    }
    table
}

/// The dotted path a `[table]` or `[[array]]` header line names, quotes and
/// escapes resolved (`[sinks."a]b"]` is `sinks.a]b`).
fn header_path(line: &str) -> Option<String> {
    let rest = line.trim().strip_prefix('[')?;
    let rest = rest.strip_prefix('[').unwrap_or(rest);
    // The header ends at the first `]` outside quotes.
    let (mut quote, mut escaped, mut end) = (None, false, rest.len());
    for (i, c) in rest.char_indices() {
        match (quote, c) {
            (Some('"'), _) if escaped => escaped = false,
            (Some('"'), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, ']') => {
                end = i;
                break;
            }
            (None, _) => {}
        }
    }
    let key = &rest[..end];
    // TOML itself reads the dotted key; a broken one is taken as written.
    let Ok(mut table) = toml::from_str::<toml::Table>(&format!("{key} = 0")) else {
        return Some(key.trim().replace(['"', '\'', ' '], ""));
    };
    let mut path = Vec::new();
    while let Some((k, v)) = table.into_iter().next() {
        path.push(k);
        match v {
            toml::Value::Table(inner) => table = inner,
            _ => break,
        }
    }
    Some(path.join("."))
}

/// The key written on a line, if it is a `key = value` line.
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?.trim();
    if l.starts_with('[') || l.starts_with('#') {
        return None;
    }
    let key = l.split('=').next()?.trim();
    (!key.is_empty() && !key.contains(' ')).then(|| key.trim_matches('"').to_owned())
}

/// Turns a parse error's position into (line, dotted field). When the error names
/// a field (`unknown field `x``, `missing field `y``) that sits inside the spanned
/// table, the line of that field is used.
fn locate(text: &str, offset: usize, message: &str) -> (Option<usize>, String) {
    let mut line = line_of(text, offset);
    let named = message.split('`').nth(1).map(str::to_owned);
    if let (Some(name), true) = (&named, message.starts_with("unknown field")) {
        // The span covers the whole table; find the offending key inside it.
        let table = table_at(text, line);
        let start_line = line;
        for (i, l) in text.lines().enumerate().skip(start_line - 1) {
            let t = l.trim();
            if i + 1 > start_line && t.starts_with('[') && table_at(text, i + 1) != table {
                break;
            }
            if key_on_line(text, i + 1).as_deref() == Some(name.as_str()) {
                line = i + 1;
                break;
            }
        }
    }
    let table = table_at(text, line);
    let key = key_on_line(text, line).or_else(|| {
        if message.starts_with("missing field") || message.starts_with("unknown field") {
            named.clone()
        } else {
            None
        }
    });
    let field = match (table.is_empty(), key) {
        (true, Some(k)) => k,
        (false, Some(k)) => format!("{table}.{k}"),
        (_, None) => table,
    };
    (Some(line), field)
}

/// Parses the `[sinks.NAME]` table (and its sub-tables) on its own, as the
/// sink type it names, keeping line numbers; returns (line, field, message).
fn reparse_sink(text: &str, name: &str) -> Option<(usize, String, String)> {
    let main = format!("sinks.{name}");
    let sub = format!("{main}.");
    let mut kind = None;
    let mut snippet = String::with_capacity(text.len());
    let mut current = String::new();
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            current = table_at(text, i + 1);
            if let Some(rest) = current.strip_prefix(&sub) {
                snippet.push_str(&format!("[{rest}]"));
            }
        } else if current == main && key_on_line(text, i + 1).as_deref() == Some("type") {
            kind = t
                .split('=')
                .nth(1)
                .map(|v| v.trim().trim_matches(['"', '\'']).to_owned());
        } else if current == main || current.starts_with(&sub) {
            snippet.push_str(l);
        }
        snippet.push('\n');
    }
    let err = match kind?.as_str() {
        "file" => toml::from_str::<FileSinkConfig>(&snippet).err()?,
        "stdout" => toml::from_str::<StdoutSinkConfig>(&snippet).err()?,
        "kafka" => toml::from_str::<KafkaSinkConfig>(&snippet).err()?,
        "s3" => toml::from_str::<S3SinkConfig>(&snippet).err()?,
        "kinesis" => toml::from_str::<KinesisSinkConfig>(&snippet).err()?,
        "mongodb" => toml::from_str::<MongodbSinkConfig>(&snippet).err()?,
        _ => return None,
    };
    let message = err.message().trim().to_owned();
    let (mut line, field) = locate(&snippet, err.span()?.start, &message);
    if message.starts_with("missing field") {
        // A missing field has no line of its own: point at the table.
        line = find_field_line(text, &main).or(line);
    }
    let field = if field.is_empty() {
        main
    } else {
        format!("{main}.{field}")
    };
    Some((line?, field, message))
}

/// The line where a dotted field (`sinks.lake.format` or `sinks.lake`) is written.
pub fn find_field_line(text: &str, field: &str) -> Option<usize> {
    let (table, key) = match field.rsplit_once('.') {
        Some((t, k)) => (t, k),
        None => ("", field),
    };
    let mut current = String::new();
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            current = table_at(text, i + 1);
            if current == field {
                return Some(i + 1);
            }
            continue;
        }
        if current == table && key_on_line(text, i + 1).as_deref() == Some(key) {
            return Some(i + 1);
        }
    }
    None
}

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
    pub platform: PlatformArg,
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
                None => match name.as_str() {
                    "file" => SinkConfig::File(FileSinkConfig::default()),
                    "stdout" | "-" => SinkConfig::Stdout(StdoutSinkConfig::default()),
                    "kafka" => SinkConfig::Kafka(KafkaSinkConfig::default()),
                    "s3" | "kinesis" | "mongodb" => {
                        return Err(bad_name(format!(
                            "sink `{name}` needs a [sinks.{name}] table in the config (with `type = \"{name}\"` and its {}); see config.example.toml",
                            match name.as_str() {
                                "s3" => "`bucket`",
                                "kinesis" => "`stream_name`",
                                _ => "`database` and `collection`",
                            }
                        )));
                    }
                    _ => {
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
        let stream = StreamConfig {
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
            buffer: args
                .buffer
                .map(|b| match b {
                    BufferArg::Memory => Buffer::Memory,
                    BufferArg::Disk => Buffer::Disk,
                })
                .or(t.buffer)
                .unwrap_or(d.buffer),
        };
        let rules = match (&args.track, args.rules.as_ref().or(t.rules.as_ref())) {
            (Some(track), _) => {
                let rule = crate::sources::twitter::rules::track_to_rule(track)
                    .map_err(ResolveError::Usage)?;
                tracing::info!(track = %track, rule = %rule.value, "--track converted to one filtered-stream rule");
                Some(vec![rule])
            }
            (None, Some(path)) => Some(crate::sources::twitter::rules::load(path)?),
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
    let checked: Result<(), (String, String)> = match config {
        SinkConfig::File(c) => c.validate().map_err(|m| ("path".to_owned(), m)),
        SinkConfig::Stdout(_) => Ok(()),
        SinkConfig::Kafka(c) => c.validate(),
        SinkConfig::S3(c) => c.validate().map_err(|(f, m)| (f.to_string(), m)),
        SinkConfig::Kinesis(c) => c.validate().map_err(|(f, m)| (f.to_string(), m)),
        SinkConfig::Mongodb(c) => c.validate().map_err(|(f, m)| (f.to_string(), m)),
    };
    if let Err((f, m)) = checked {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LoadedConfig, ConfigError> {
        LoadedConfig::parse(Some(PathBuf::from("ingest.toml")), text.to_owned())
    }

    #[test]
    fn the_example_config_parses_and_resolves() {
        let text = include_str!("../config.example.toml");
        // The example's `${VAR}` secrets must be set, or resolving says which is not.
        for var in ["KAFKA_API_KEY", "KAFKA_API_SECRET", "MONGODB_PASSWORD"] {
            // SAFETY: test-only variables that no other test reads or unsets.
            unsafe { std::env::set_var(var, "example-value") };
        }
        let loaded = parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert!(!loaded.file.sinks.is_empty());
        let args = RunArgs {
            sinks: loaded.file.sinks.keys().cloned().collect(),
            ..RunArgs::default()
        };
        Settings::resolve(&args, &loaded).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn the_twitter_buffer_is_memory_unless_the_config_or_a_flag_says_disk() {
        use clap::Parser;
        let twitter = |config: &str, flags: &[&str]| {
            let cli = crate::cli::Cli::try_parse_from(
                ["ingest", "twitter", "--mock"].iter().chain(flags),
            )
            .unwrap();
            let crate::cli::Command::Twitter(args) = cli.command else {
                unreachable!()
            };
            TwitterSettings::resolve(&args, &parse(config).unwrap())
                .unwrap()
                .stream
                .buffer
        };
        assert_eq!(twitter("", &[]), Buffer::Memory);
        assert_eq!(twitter("[twitter]\nbuffer = \"disk\"\n", &[]), Buffer::Disk);
        assert_eq!(
            twitter("[twitter]\nbuffer = \"disk\"\n", &["--buffer", "memory"]),
            Buffer::Memory
        );
        assert_eq!(twitter("", &["--buffer", "disk"]), Buffer::Disk);
        let err = parse("[twitter]\nbuffer = \"tape\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("twitter.buffer"),
            "{err}"
        );
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let err = parse("state_dir = \"/tmp\"\n\n[sinks.lake]\ntype = \"file\"\npath = \"x.jsonl\"\npathh = \"y\"\n").unwrap_err().to_string();
        assert!(err.contains("ingest.toml line 6"), "{err}");
        assert!(err.contains("sinks.lake.pathh"), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn unknown_sink_type_and_wrong_value_types() {
        let err = parse("[sinks.q]\ntype = \"carrier-pigeon\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2")
                && err.contains("sinks.q.type")
                && err.contains("carrier-pigeon"),
            "{err}"
        );
        let err = parse("max_records = \"many\"\n").unwrap_err().to_string();
        assert!(
            err.contains("line 1") && err.contains("max_records"),
            "{err}"
        );
        let err = parse("[sinks.a]\ntype = \"file\"\n[sinks.a.batch]\nmax_records = -1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 4") && err.contains("sinks.a.batch.max_records"),
            "{err}"
        );
        let err = parse("duration = \"soon\"\n").unwrap_err().to_string();
        assert!(
            err.contains("line 1") && err.contains("duration") && err.contains("try 90s"),
            "{err}"
        );
        let err = parse("[sinks.a]\npath = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("type"), "{err}");
    }

    #[test]
    fn broken_toml_is_a_config_error() {
        for text in [
            "[sinks.a\ntype = 1",
            "a = = 1",
            "\u{0}",
            "[sinks.a]\ntype = \"file\"\n[sinks.a]\ntype = \"file\"\n",
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(
                err.starts_with("config error in ingest.toml line "),
                "{err}"
            );
        }
    }

    #[test]
    fn validation_errors_point_at_the_field() {
        let loaded =
            parse("raw = false\n[sinks.lake]\ntype = \"file\"\nformat = \"raw\"\n").unwrap();
        let args = RunArgs {
            sinks: vec!["lake".into()],
            ..RunArgs::default()
        };
        let err = Settings::resolve(&args, &loaded).unwrap_err().to_string();
        assert!(
            err.contains("line 4") && err.contains("sinks.lake.format"),
            "{err}"
        );
        let loaded =
            parse("[sinks.lake]\ntype = \"file\"\n[sinks.lake.batch]\nmax_records = 0\n").unwrap();
        let err = Settings::resolve(&args, &loaded).unwrap_err().to_string();
        assert!(
            err.contains("line 4") && err.contains("sinks.lake.batch.max_records"),
            "{err}"
        );
    }

    #[test]
    fn zero_webhook_limits_are_refused_at_load_with_the_line() {
        let err = parse("raw = true\n[telegram]\nmax_body_bytes = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("config error in ingest.toml line 3, field `telegram.max_body_bytes`"),
            "{err}"
        );
        let err = parse("[webhook]\nmax_connections = 8\nbody_read_timeout = \"0s\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 3") && err.contains("webhook.body_read_timeout"),
            "{err}"
        );
        let ok = parse("[webhook]\nmax_connections = 8\nheader_read_timeout = \"2s\"\n").unwrap();
        assert_eq!(ok.file.webhook.max_connections, Some(8));
    }

    #[test]
    fn layering_flags_over_file_over_defaults() {
        let loaded =
            parse("max_records = 5\nduration = \"15m\"\ndefault_sinks = [\"stdout\"]\n").unwrap();
        let s = Settings::resolve(&RunArgs::default(), &loaded).unwrap();
        assert_eq!(s.max_records, Some(5));
        assert_eq!(s.duration, Some(Duration::from_secs(900)));
        assert_eq!(s.sinks[0].config.type_name(), "stdout");
        assert_eq!(s.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT);
        assert!(s.keep_raw);
        let args = RunArgs {
            max_records: Some(9),
            sinks: vec!["file".into()],
            built_in: crate::cli::BuiltInSinkArgs {
                file_path: Some("o.jsonl".into()),
                ..Default::default()
            },
            no_raw: true,
            ..RunArgs::default()
        };
        let s = Settings::resolve(&args, &loaded).unwrap();
        assert_eq!(s.max_records, Some(9));
        assert!(!s.keep_raw);
        let SinkConfig::File(f) = &s.sinks[0].config else {
            panic!()
        };
        assert_eq!(f.path, "o.jsonl");
    }

    #[test]
    fn unknown_and_duplicate_sinks_are_usage_errors() {
        let loaded = parse("[sinks.lake]\ntype = \"file\"\n").unwrap();
        let args = RunArgs {
            sinks: vec!["lakee".into()],
            ..RunArgs::default()
        };
        let err = Settings::resolve(&args, &loaded).unwrap_err();
        assert!(matches!(err, ResolveError::Usage(_)));
        assert!(err.to_string().contains("the config has: lake"), "{err}");
        let args = RunArgs {
            sinks: vec!["file".into(), "file".into()],
            ..RunArgs::default()
        };
        assert!(matches!(
            Settings::resolve(&args, &loaded).unwrap_err(),
            ResolveError::Usage(_)
        ));
        assert!(matches!(
            Settings::resolve(&RunArgs::default(), &loaded).unwrap_err(),
            ResolveError::Usage(_)
        ));
    }

    #[test]
    fn a_bad_default_sinks_name_is_a_config_error_with_its_line() {
        let loaded = parse(
            "duration = \"1m\"\ndefault_sinks = [\"lakee\"]\n[sinks.lake]\ntype = \"file\"\n",
        )
        .unwrap();
        let err = Settings::resolve(&RunArgs::default(), &loaded).unwrap_err();
        assert!(matches!(err, ResolveError::Config(_)), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("ingest.toml") && text.contains("line 2") && text.contains("lakee"),
            "{text}"
        );
        let loaded = parse("default_sinks = [\"s3\"]\n").unwrap();
        let err = Settings::resolve(&RunArgs::default(), &loaded).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn an_unset_property_variable_is_a_config_error_with_its_line() {
        let loaded = parse(
            "[sinks.k]\ntype = \"kafka\"\n[sinks.k.properties]\n\"sasl.password\" = \"${INGEST_TEST_SURELY_UNSET_VAR}\"\n",
        )
        .unwrap();
        let args = RunArgs {
            sinks: vec!["k".into()],
            ..RunArgs::default()
        };
        let err = Settings::resolve(&args, &loaded).unwrap_err();
        assert!(matches!(err, ResolveError::Config(_)), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("line 3")
                && text.contains("sasl.password")
                && text.contains("INGEST_TEST_SURELY_UNSET_VAR"),
            "{text}"
        );
    }
}
