//! The config file model and `Settings::resolve`: built-in defaults < config
//! file < `INGEST_*` environment < flags (the last two through clap).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::LogFormat;
use crate::duration::de_duration_opt;
pub use crate::locate::{ConfigError, FileAt, ResolveError, find_field_line};
use crate::locate::{key_on_line, locate, table_at};
use crate::sinks::SinkConfig;
pub use crate::sources::replay::ReplayConfig;
pub use crate::sources::telegram::config::TelegramConfig;
pub use crate::sources::twitter::search::config::TwitterSearchConfig;
pub use crate::sources::twitter::stream::config::TwitterConfig;

mod resolve;
pub use resolve::*;

/// The config file read when `--config` is not given and it exists.
pub const DEFAULT_CONFIG_FILE: &str = "ingest.toml";
/// Default for `--shutdown-timeout`.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for `--unhealthy-after`.
pub const DEFAULT_UNHEALTHY_AFTER: Duration = Duration::from_secs(60);

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
    /// X search (`ingest twitter-search`).
    #[serde(default)]
    pub twitter_search: TwitterSearchConfig,
    /// The Telegram sources.
    #[serde(default)]
    pub telegram: TelegramConfig,
    /// The Kafka source.
    #[serde(default)]
    pub kafka: crate::sources::kafka::KafkaSourceConfig,
    /// Limits of the webhook server (both webhooks).
    #[serde(default)]
    pub webhook: crate::sources::http::WebhookServerConfig,
    /// Media beside the records (`--media`).
    #[serde(default)]
    pub media: crate::media::MediaConfig,
    /// Named sinks.
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
}

/// A config file and where it came from.
#[derive(Debug, Default)]
pub struct LoadedConfig {
    pub path: Option<PathBuf>,
    pub text: String,
    pub file: FileConfig,
    /// One line per deprecated key the file uses, naming the new key (the
    /// binary logs them at warn once logging is set up).
    pub deprecations: Vec<String>,
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
                let mut loaded = LoadedConfig {
                    path,
                    text,
                    file,
                    deprecations: Vec::new(),
                };
                loaded.check_values()?;
                loaded.move_deprecated_keys();
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

    /// `[telegram] max_body_bytes` and `ack_timeout` belong to `[webhook]`
    /// (both webhook servers use them): the old spellings keep working, moved
    /// there, with one deprecation line each; `[webhook]` wins when both are set.
    fn move_deprecated_keys(&mut self) {
        let (telegram, webhook) = (&mut self.file.telegram, &mut self.file.webhook);
        if let Some(v) = telegram.max_body_bytes.take() {
            webhook.max_body_bytes = webhook.max_body_bytes.or(Some(v));
            self.deprecations.push(
                "`[telegram] max_body_bytes` is deprecated: write `max_body_bytes` in `[webhook]`"
                    .into(),
            );
        }
        if let Some(v) = telegram.ack_timeout.take() {
            webhook.ack_timeout = webhook.ack_timeout.or(Some(v));
            self.deprecations.push(
                "`[telegram] ack_timeout` is deprecated: write `ack_timeout` in `[webhook]`".into(),
            );
        }
    }

    /// An error about `field` (a dotted path such as `sinks.lake.format`), pointing at its line.
    pub fn error(&self, field: &str, message: impl Into<String>) -> ConfigError {
        self.at().error(field, message)
    }

    /// The file, for a connector's `resolve`.
    pub fn at(&self) -> FileAt<'_> {
        FileAt {
            path: self.path.as_deref(),
            text: &self.text,
        }
    }
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
    let err = SinkConfig::parse_error(&kind?, &snippet)?;
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

#[cfg(test)]
mod tests;
