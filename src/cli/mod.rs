//! The command line (clap derive only). Resolution into settings lives in `config`.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{BoolishValueParser, PossibleValuesParser, TypedValueParser};
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

mod flags;
pub mod telegram;
pub mod twitter;
pub mod twitter_webhook;

pub use telegram::TelegramArgs;
pub use twitter::{TwitterArgs, TwitterCountsArgs, TwitterSearchArgs};

pub use crate::duration::parse_duration;

pub use crate::report::TimeField;

pub use crate::sources::InputPlatform;
pub use crate::sources::kafka::StartFrom;
pub use crate::sources::twitter::stream::Buffer;
pub use crate::sources::twitter::stream::rules::RulesMode;
pub use crate::sources::twitter::stream::volume::StreamKind;

/// A flag whose values are a library enum's serde names (`earliest`, `disk`…):
/// the library types stay free of clap, and `--help` still lists the values.
pub(crate) fn named<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names).map(|name| {
        use serde::de::value::{Error, StrDeserializer};
        T::deserialize(StrDeserializer::<Error>::new(&name))
            .expect("every listed name is a variant's serde name")
    })
}

/// A listen address: `HOST:PORT` with a numeric host; a bare port is refused
/// with the address to write instead.
fn parse_listen_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    let s = s.trim();
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    if s.parse::<u16>().is_ok() {
        return Err(format!(
            "`{s}` is a port alone: give HOST:PORT, e.g. 127.0.0.1:{s} (this machine only) or 0.0.0.0:{s} (every interface)"
        ));
    }
    Err(format!(
        "`{s}` is not HOST:PORT with a numeric address, e.g. 127.0.0.1:9464 or [::1]:9464"
    ))
}

/// Capture live social data, normalize every item into one record, deliver it without loss.
#[derive(Debug, Parser)]
#[command(name = "ingest", version, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Docs: README.md; configuration: config.example.toml. Logs go to stderr (RUST_LOG filters them); stdout belongs to data."
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "INGEST_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    pub log_format: Option<LogFormat>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture the X filtered stream into sinks (bearer token in TWITTER_BEARER_TOKEN).
    Twitter(TwitterArgs),
    /// Search X (recent, or full-archive with --archive) page by page into sinks, then exit or --poll for newer posts.
    TwitterSearch(TwitterSearchArgs),
    /// Count the posts an X search query matches, per minute, hour or day (recent, or full-archive with --archive): a table, --json, --csv, or records into sinks.
    TwitterCounts(TwitterCountsArgs),
    /// Receive X webhook deliveries (Account Activity, X Activity, filtered stream; CRC + signed POSTs; secret in TWITTER_CONSUMER_SECRET), or manage webhooks and subscriptions.
    TwitterWebhook(TwitterWebhookArgs),
    /// Capture Telegram bot updates by long polling or webhook (token in TELEGRAM_BOT_TOKEN).
    Telegram(TelegramArgs),
    /// Manage X filtered-stream rules: list, validate, sync, clear.
    Rules(RulesArgs),
    /// Replay captured JSONL (X stream lines or Telegram updates) from a file or stdin into sinks.
    Replay(ReplayArgs),
    /// Consume Kafka topics into sinks, committing offsets only after every sink confirmed.
    Kafka(KafkaArgs),
    /// Run a built-in mock API, for demos and CI.
    #[command(subcommand)]
    Mock(MockCommand),
    /// Check the config, every named sink and the source credentials; one line per check, exit 1 if any fails.
    Check(CheckArgs),
    /// Print a shell completion script on stdout (e.g. `ingest completions bash > /etc/bash_completion.d/ingest`).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout (e.g. `ingest man > ingest.1`), or with
    /// `--dir DIR` write one page per command there (ingest.1, ingest-twitter.1, …).
    Man {
        /// Write every command's page (ingest.1, ingest-twitter.1, …) into this directory.
        #[arg(long, env = "INGEST_MAN_DIR", value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print the record's schema on stdout: JSON Schema (default), the Arrow schema of the Parquet files, or their Parquet message type.
    Schema(SchemaArgs),
    /// A live view of a running ingest from its /metrics: records/s per source and sink, queues, memory, retries, dead letters, uptime, RSS (`q` quits).
    Top(TopArgs),
    /// Read captured records (JSONL or Parquet) and print what to check first: counts, per-minute rate and gaps, top tags, duplicates, broken lines.
    Report(ReportArgs),
}

/// The address `ingest top` reads by default: the one the README's
/// examples serve metrics on (`--metrics-addr 127.0.0.1:9464`).
pub const DEFAULT_TOP_URL: &str = "http://127.0.0.1:9464/metrics";

/// `ingest top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The running ingest's metrics: a URL, or the HOST:PORT of its --metrics-addr (`/metrics` is added).
    #[arg(long, env = "INGEST_TOP_URL", default_value = DEFAULT_TOP_URL, value_name = "URL")]
    pub url: String,

    /// Print one frame as plain text on stdout and exit (two samples a second apart, for the rates).
    #[arg(long, env = "INGEST_TOP_ONCE", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub once: bool,

    /// How often the view refreshes (default 1s).
    #[arg(long, env = "INGEST_TOP_INTERVAL", value_parser = parse_duration, value_name = "DURATION")]
    pub interval: Option<Duration>,
}

/// `ingest report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Captured records: JSONL as the file sink writes them, or the Parquet files of `format = "parquet"` (told apart by their content).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Print the report as one JSON document instead of text.
    #[arg(long, env = "INGEST_REPORT_JSON", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub json: bool,

    /// Also write the report as one self-contained HTML page (inline SVG charts, no network) to this file.
    #[arg(long, env = "INGEST_REPORT_HTML", value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// The time the per-minute rate and the gaps use: `received` (received_at, when ingest read it; default) or `created` (created_at).
    #[arg(long, env = "INGEST_REPORT_BY", value_parser = named::<TimeField>(&["received", "created"]))]
    pub by: Option<TimeField>,
}

/// `ingest schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which schema to print.
    #[arg(
        long,
        value_enum,
        env = "INGEST_SCHEMA_FORMAT",
        default_value = "json-schema",
        value_name = "FORMAT"
    )]
    pub format: SchemaFormat,
}

/// What `ingest schema` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaFormat {
    /// JSON Schema (draft 2020-12) of one record as the JSON sinks write it.
    JsonSchema,
    /// The Arrow schema of the Parquet files, as JSON (name, type, nullable, children).
    Arrow,
    /// The Parquet message type of the files (what `parquet-tools schema` shows).
    Parquet,
}

/// What `ingest check` tries.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A sink to try (repeat). Default: `default_sinks` and every `[sinks.NAME]` table of the config.
    #[arg(
        long = "sink",
        value_name = "NAME",
        env = "INGEST_SINK",
        value_delimiter = ','
    )]
    pub sinks: Vec<String>,

    /// A source to try: X (`GET` rules with the bearer token), Telegram (`getMe`) or Kafka (`[kafka]` brokers and topics).
    #[arg(
        long = "source",
        value_enum,
        value_name = "SOURCE",
        env = "INGEST_SOURCE",
        value_delimiter = ','
    )]
    pub sources: Vec<SourceArg>,

    /// Check the media store too (`[media]`; a probe object written, read back
    /// and deleted). On by itself when `[media] enabled = true`.
    #[arg(long, env = "INGEST_MEDIA", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub media: bool,

    /// Config file (default: ./ingest.toml when present).
    #[arg(long, env = "INGEST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub api: TwitterApiArgs,

    /// Base URL of the Telegram Bot API.
    #[arg(long, env = "INGEST_TELEGRAM_API_BASE", value_name = "URL")]
    pub telegram_api_base: Option<String>,

    #[command(flatten)]
    pub built_in: BuiltInSinkArgs,
}

/// Settings of the built-in sinks (`--sink file`, `--sink kafka` without a config table).
#[derive(Debug, Args, Default, Clone)]
pub struct BuiltInSinkArgs {
    /// Path template of the built-in `file` sink (strftime fields and `{platform}`).
    #[arg(long, env = "INGEST_FILE_PATH", value_name = "TEMPLATE")]
    pub file_path: Option<String>,

    /// Brokers of the built-in `kafka` sink, comma-separated host:port (default localhost:9092).
    #[arg(long, env = "INGEST_KAFKA_BROKERS", value_name = "HOST:PORT,...")]
    pub kafka_brokers: Option<String>,

    /// Topic template of the built-in `kafka` sink (default ingest-{platform}).
    #[arg(long, env = "INGEST_KAFKA_TOPIC", value_name = "TEMPLATE")]
    pub kafka_topic: Option<String>,
}

/// A live source `ingest check` can try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    Twitter,
    Telegram,
    /// The brokers and topics of the `[kafka]` config table.
    Kafka,
}

/// Where the X API is and how to reach it.
#[derive(Debug, Args, Default, Clone)]
pub struct TwitterApiArgs {
    /// Base URL of the X API (tests and proxies point it elsewhere).
    #[arg(long, env = "INGEST_TWITTER_API_BASE", value_name = "URL")]
    pub twitter_api_base: Option<String>,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    pub action: RulesAction,
}

/// Options of every `rules` action.
#[derive(Debug, Args)]
pub struct RulesCommon {
    #[command(flatten)]
    pub api: TwitterApiArgs,

    /// Config file (default: ./ingest.toml when present).
    #[arg(long, env = "INGEST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RulesAction {
    /// Print the live rules (id, value, tag; tab-separated).
    List(RulesCommon),
    /// Print how many rules the app and its project hold against their caps
    /// (scope, rules, cap, left; tab-separated).
    Counts(RulesCommon),
    /// Check the rules file with X (dry run): nothing changes.
    Validate {
        /// Rules file.
        #[arg(long, env = "INGEST_RULES", value_name = "FILE")]
        rules: PathBuf,
        #[command(flatten)]
        common: RulesCommon,
    },
    /// Make the live rules equal to the rules file; prints what changed.
    Sync {
        /// Rules file.
        #[arg(long, env = "INGEST_RULES", value_name = "FILE")]
        rules: PathBuf,
        #[command(flatten)]
        common: RulesCommon,
    },
    /// Delete every live rule.
    Clear {
        /// Yes, delete them all.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        common: RulesCommon,
    },
}

#[derive(Debug, Subcommand)]
pub enum MockCommand {
    /// The mock X API: rules, the filtered stream, scripted faults.
    Twitter(MockArgs),
    /// The mock Telegram Bot API: updates across chats, offsets, webhook methods, scripted faults.
    #[command(mut_arg("scenario", |a| a.help(
        "Scenario file (queue, pace, scripted getUpdates answers); see examples/telegram-scenario.toml"
    )))]
    Telegram(MockArgs),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TwitterWebhookArgs {
    /// Manage the webhook and its subscriptions instead of receiving (see `ingest twitter-webhook help`).
    #[command(subcommand)]
    pub action: Option<twitter_webhook::WebhookAction>,

    /// Address to listen on: HTTPS with --tls-cert/--tls-key, else plain HTTP
    /// (then put a TLS proxy in front).
    #[arg(long, env = "INGEST_LISTEN", value_name = "ADDR", required = true)]
    pub listen: Option<String>,

    /// Once listening, register this public URL with X (or validate the webhook already registered for it).
    #[arg(long, env = "INGEST_REGISTER", value_name = "URL")]
    pub register: Option<String>,

    #[command(flatten)]
    pub register_api: TwitterApiArgs,

    /// The webhook X delivers here (its id, as `twitter-webhook list` shows it), for the
    /// replay on start when --register does not name it.
    #[arg(
        long,
        env = "INGEST_WEBHOOK_ID",
        value_name = "ID",
        conflicts_with = "register"
    )]
    pub webhook_id: Option<String>,

    /// On start, when the last confirmed delivery is older than this, ask X to replay
    /// what it tried to deliver since (needs --register or --webhook-id).
    #[arg(long, env = "INGEST_REPLAY_AFTER", value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub replay_after: Duration,

    /// Never ask X for a replay job on start.
    #[arg(long, env = "INGEST_NO_REPLAY", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub no_replay: bool,

    /// URL path of the webhook.
    #[arg(
        long,
        env = "INGEST_WEBHOOK_PATH",
        default_value = "/webhooks/twitter",
        value_name = "PATH"
    )]
    pub path: String,

    /// Serve HTTPS with this PEM certificate (chain); with --tls-key. Without: plain HTTP behind a proxy.
    #[arg(
        long,
        env = "INGEST_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key for --tls-cert.
    #[arg(
        long,
        env = "INGEST_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct MockArgs {
    /// Address to listen on (port 0 picks one). The base URL is printed on stdout.
    #[arg(
        long,
        env = "INGEST_MOCK_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub listen: String,

    /// Scenario file (rate, keep-alives, faults); see examples/scenario.toml (X).
    #[arg(long, env = "INGEST_MOCK_SCENARIO", value_name = "FILE")]
    pub scenario: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The JSONL file to replay, or `-` for standard input.
    #[arg(value_name = "FILE|-")]
    pub input: PathBuf,

    /// What the lines are: X filtered-stream lines, Telegram updates, or detect per line.
    #[arg(long, env = "INGEST_PLATFORM", value_parser = named::<InputPlatform>(InputPlatform::NAMES))]
    pub platform: Option<InputPlatform>,

    /// Longest accepted line in bytes; longer lines are dead-lettered (default 16 MiB).
    #[arg(long, env = "INGEST_MAX_LINE_BYTES", value_name = "BYTES")]
    pub max_line_bytes: Option<usize>,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct KafkaArgs {
    /// Bootstrap brokers, comma-separated host:port (default localhost:9092).
    #[arg(
        long,
        env = "INGEST_KAFKA_SOURCE_BROKERS",
        value_name = "HOST:PORT,..."
    )]
    pub brokers: Option<String>,

    /// Topic to consume; repeat for several.
    #[arg(
        long = "topic",
        env = "INGEST_KAFKA_SOURCE_TOPICS",
        value_name = "TOPIC",
        value_delimiter = ','
    )]
    pub topics: Vec<String>,

    /// Consumer group; offsets are committed for it (default `ingest`).
    #[arg(long, env = "INGEST_KAFKA_GROUP", value_name = "GROUP")]
    pub group: Option<String>,

    /// Where a group with no committed offset starts (default earliest).
    #[arg(long, env = "INGEST_KAFKA_FROM", value_parser = named::<StartFrom>(&["earliest", "latest"]))]
    pub from: Option<StartFrom>,

    /// How values that are not ingest records are read (X lines, Telegram updates, or detect).
    #[arg(long, env = "INGEST_PLATFORM", value_parser = named::<InputPlatform>(InputPlatform::NAMES))]
    pub platform: Option<InputPlatform>,

    /// Stop once every assigned partition reached its end: deliver, commit, exit (for cron).
    #[arg(long, env = "INGEST_UNTIL_IDLE", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub until_idle: bool,

    #[command(flatten)]
    pub run: RunArgs,
}

/// `--media` and its options, on the capture commands.
#[derive(Debug, Args, Default, Clone)]
pub struct MediaArgs {
    /// Download the photos, videos and files records point at and store them
    /// beside the records (content-addressed; see `[media]` in the config, docs/media.md).
    #[arg(long, env = "INGEST_MEDIA", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub media: bool,

    /// X videos and GIFs: `best` (the highest-bitrate mp4, default) or `preview` (the preview image only). Implies --media.
    #[arg(long, env = "INGEST_MEDIA_VIDEO", value_parser = named::<crate::media::VideoChoice>(&["best", "preview"]))]
    pub media_video: Option<crate::media::VideoChoice>,
}

/// Options shared by every command that runs the pipeline.
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// Deliver to this sink: a `[sinks.NAME]` table of the config, or a built-in type
    /// (`file`, `stdout`, `-`, `kafka`). Repeat to fan out.
    #[arg(
        long = "sink",
        value_name = "NAME",
        env = "INGEST_SINK",
        value_delimiter = ','
    )]
    pub sinks: Vec<String>,

    /// Config file (default: ./ingest.toml when present).
    #[arg(long, env = "INGEST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where dead letters and checkpoints live (default: $XDG_STATE_HOME/ingest).
    #[arg(long, env = "INGEST_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Stop after this long, delivering everything received (e.g. 90s, 15m, 2h).
    #[arg(long, env = "INGEST_DURATION", value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<Duration>,

    /// Stop after this many records.
    #[arg(long, env = "INGEST_MAX_RECORDS", value_name = "N")]
    pub max_records: Option<u64>,

    /// How long to wait for sinks to drain on stop before dead-lettering what is left.
    #[arg(long, env = "INGEST_SHUTDOWN_TIMEOUT", value_parser = parse_duration, value_name = "DURATION")]
    pub shutdown_timeout: Option<Duration>,

    #[command(flatten)]
    pub built_in: BuiltInSinkArgs,

    /// Print a one-line JSON summary to stderr at the end (for cron logs).
    #[arg(long, env = "INGEST_SUMMARY", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub summary: bool,

    /// Leave the original payload (`raw`) out of records.
    #[arg(long, env = "INGEST_NO_RAW", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub no_raw: bool,

    /// Add `text_ascii`, a plain-ASCII transliteration of `text`.
    #[arg(long, env = "INGEST_TRANSLITERATE", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub transliterate: bool,

    /// Serve Prometheus metrics at /metrics and a health check at /healthz on this address.
    #[arg(long, env = "INGEST_METRICS_ADDR", value_name = "HOST:PORT", value_parser = parse_listen_addr)]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// /healthz turns 503 after this long of failed connects, or of a sink owing records and confirming none (default 60s).
    #[arg(long, env = "INGEST_UNHEALTHY_AFTER", value_parser = parse_duration, value_name = "DURATION")]
    pub unhealthy_after: Option<Duration>,

    /// No status line on stderr (it is shown only on a terminal, and never with JSON logs).
    #[arg(long, short = 'q', env = "INGEST_QUIET", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub quiet: bool,

    /// Logs are JSON (set from --log-format by main): no status line then.
    #[arg(skip)]
    pub json_logs: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Flags with no `INGEST_*` twin on purpose (the README lists them):
    /// `--help`/`--version` print and exit, and `rules clear --yes` confirms a
    /// deletion, which must be typed, not inherited from the environment.
    const NO_ENV: &[&str] = &["help", "version", "yes"];

    /// Every flag of a command and its subcommands, as (command path, arg).
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Arg)>) {
        let path = format!("{path} {}", cmd.get_name());
        for arg in cmd.get_arguments() {
            out.push((path.clone(), arg.clone()));
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &path, out);
        }
    }

    fn all_flags() -> Vec<(String, clap::Arg)> {
        let mut cmd = Cli::command();
        cmd.build();
        let mut out = Vec::new();
        walk(&cmd, "", &mut out);
        out.retain(|(_, arg)| !arg.is_positional());
        out
    }

    #[test]
    fn every_flag_has_an_environment_twin() {
        let flags = all_flags();
        assert!(flags.len() > 60, "the walk reached the subcommands");
        let missing: Vec<String> = flags
            .iter()
            .filter(|(_, arg)| arg.get_env().is_none())
            .filter(|(_, arg)| !NO_ENV.contains(&arg.get_id().as_str()))
            .map(|(path, arg)| format!("{path} --{}", arg.get_id()))
            .collect();
        assert!(
            missing.is_empty(),
            "flags without an INGEST_* twin: {missing:?}"
        );
    }

    /// A boolean flag's twin takes `1`/`true` and `0`/`false` (and refuses junk).
    #[test]
    fn boolean_twins_take_one_zero_true_false() {
        let mut flags = 0;
        for (path, arg) in all_flags() {
            if !matches!(arg.get_action(), ArgAction::SetTrue) || arg.get_env().is_none() {
                continue;
            }
            flags += 1;
            // The flag's own value parser, fed the way clap feeds it an env value.
            let probe = clap::Command::new("probe").arg(
                clap::Arg::new("x")
                    .long("x")
                    .action(ArgAction::Set)
                    .value_parser(arg.get_value_parser().clone()),
            );
            let parse = |text: &str| {
                probe
                    .clone()
                    .try_get_matches_from(["probe", "--x", text])
                    .map(|m| *m.get_one::<bool>("x").expect("a bool flag"))
            };
            let name = format!("{path} --{}", arg.get_id());
            for (text, want) in [("1", true), ("true", true), ("0", false), ("false", false)] {
                assert_eq!(parse(text).ok(), Some(want), "{name} = {text}");
            }
            assert!(parse("maybe").is_err(), "{name} refuses junk");
        }
        assert!(flags >= 8, "found {flags} boolean flags");
    }
}
