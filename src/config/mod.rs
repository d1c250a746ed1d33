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
mod tests {
    use super::*;
    use crate::cli::RunArgs;
    use crate::sources::twitter::stream::Buffer;

    #[test]
    fn telegram_webhook_keys_move_to_webhook_with_a_deprecation_naming_the_new_key() {
        let old = parse("[telegram]\nmax_body_bytes = 5\nack_timeout = \"2s\"\n").unwrap();
        assert_eq!(old.file.webhook.max_body_bytes, Some(5));
        assert_eq!(old.file.webhook.ack_timeout, Some(Duration::from_secs(2)));
        assert_eq!(
            old.deprecations,
            [
                "`[telegram] max_body_bytes` is deprecated: write `max_body_bytes` in `[webhook]`",
                "`[telegram] ack_timeout` is deprecated: write `ack_timeout` in `[webhook]`",
            ]
        );
        let new = parse("[webhook]\nmax_body_bytes = 5\nack_timeout = \"2s\"\n").unwrap();
        assert_eq!(new.file.webhook.max_body_bytes, Some(5));
        assert!(new.deprecations.is_empty());
        // Both set: the new key wins, and the old one is still named.
        let both =
            parse("[webhook]\nmax_body_bytes = 7\n[telegram]\nmax_body_bytes = 5\n").unwrap();
        assert_eq!(both.file.webhook.max_body_bytes, Some(7));
        assert_eq!(both.deprecations.len(), 1);
        let zero = parse("[webhook]\nmax_body_bytes = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            zero.contains("line 2, field `webhook.max_body_bytes`"),
            "{zero}"
        );
    }

    fn parse(text: &str) -> Result<LoadedConfig, ConfigError> {
        LoadedConfig::parse(Some(PathBuf::from("ingest.toml")), text.to_owned())
    }

    // The example names every sink type; a build without one refuses it (CompiledOut).
    #[cfg(all(
        feature = "kafka",
        feature = "s3",
        feature = "kinesis",
        feature = "mongodb"
    ))]
    #[test]
    fn the_example_config_parses_and_resolves() {
        let text = include_str!("../../config.example.toml");
        // The example's `${VAR}` secrets must be set, or resolving says which is not.
        for var in ["KAFKA_API_KEY", "KAFKA_API_SECRET", "MONGODB_PASSWORD"] {
            // SAFETY: test-only variables that no other test reads or unsets.
            unsafe { std::env::set_var(var, "example-value") };
        }
        let loaded = parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert!(!loaded.file.sinks.is_empty());
        // Every sink this build can run (a build without a connector's
        // feature refuses its type: tests/features.rs).
        let sinks = loaded.file.sinks.iter();
        let args = RunArgs {
            sinks: sinks
                .filter(|(_, c)| c.compiled_in())
                .map(|(name, _)| name.clone())
                .collect(),
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
            let loaded = parse(config).unwrap();
            let file = &loaded.file.twitter;
            crate::sources::twitter::stream::config::resolve(&args.flags(), file, loaded.at())
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
        // The line holding the variable, not its table's header (line 3).
        assert!(
            text.contains("line 4")
                && text.contains("sasl.password")
                && text.contains("INGEST_TEST_SURELY_UNSET_VAR"),
            "{text}"
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
}
