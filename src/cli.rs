//! The command line (clap derive only). Resolution into settings lives in `config`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Replay captured JSONL (X stream lines or Telegram updates) from a file or stdin into sinks.
    Replay(ReplayArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PlatformArg {
    /// Tell each line's platform from its shape.
    #[default]
    Auto,
    Twitter,
    Telegram,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The JSONL file to replay, or `-` for standard input.
    #[arg(value_name = "FILE|-")]
    pub input: PathBuf,

    /// What the lines are: X filtered-stream lines, Telegram updates, or detect per line.
    #[arg(long, value_enum, env = "INGEST_PLATFORM")]
    pub platform: Option<PlatformArg>,

    /// Longest accepted line in bytes; longer lines are dead-lettered (default 16 MiB).
    #[arg(long, env = "INGEST_MAX_LINE_BYTES", value_name = "BYTES")]
    pub max_line_bytes: Option<usize>,

    #[command(flatten)]
    pub run: RunArgs,
}

/// Options shared by every command that runs the pipeline.
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// Deliver to this sink: a `[sinks.NAME]` table of the config, or a built-in type
    /// (`file`, `stdout`, `-`). Repeat to fan out.
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

    /// Path template of the built-in `file` sink (strftime fields and `{platform}`).
    #[arg(long, env = "INGEST_FILE_PATH", value_name = "TEMPLATE")]
    pub file_path: Option<String>,

    /// Print a one-line JSON summary to stderr at the end (for cron logs).
    #[arg(long, env = "INGEST_SUMMARY")]
    pub summary: bool,

    /// Leave the original payload (`raw`) out of records.
    #[arg(long, env = "INGEST_NO_RAW")]
    pub no_raw: bool,

    /// Add `text_ascii`, a plain-ASCII transliteration of `text`.
    #[arg(long, env = "INGEST_TRANSLITERATE")]
    pub transliterate: bool,
}

/// Parses a humane duration: `90s`, `15m`, `2h`, `1h 30m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); try 90s, 15m or 2h"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert!(parse_duration("soon").unwrap_err().contains("try 90s"));
        assert!(parse_duration("-5s").is_err());
    }
}
