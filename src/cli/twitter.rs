//! `ingest twitter`, `ingest twitter-search` and `ingest twitter-counts`: the flags of the X stream, search and counts commands.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

use super::{
    Buffer, MediaArgs, RulesMode, RunArgs, StreamKind, TwitterApiArgs, named, parse_duration,
};
use crate::sources::twitter::search::counts::Granularity;
use crate::sources::twitter::stream::volume::Lang;

#[derive(Debug, Args)]
pub struct TwitterArgs {
    /// Rules file (`[[rule]] value, tag`), synced before connecting (see --rules-mode).
    #[arg(
        long,
        env = "INGEST_RULES",
        value_name = "FILE",
        conflicts_with = "track"
    )]
    pub rules: Option<PathBuf>,

    /// Retired v1.1 track syntax (comma = OR, space = AND), turned into one v2 rule.
    #[arg(long, env = "INGEST_TRACK", value_name = "TERMS")]
    pub track: Option<String>,

    /// `sync` the live rules to the rules file, or `keep` them as they are.
    #[arg(long, env = "INGEST_RULES_MODE", value_parser = named::<RulesMode>(&["sync", "keep"]))]
    pub rules_mode: Option<RulesMode>,

    /// Which X stream: `filter` (default; rules), `sample` (1%), `sample10` (10%, 2
    /// partitions), `firehose` (20 partitions), `firehose-lang` (one language's posts, with
    /// --lang: en 8 partitions, ja/ko/pt 2), `likes-firehose` (every like, 20 partitions),
    /// `likes-sample10` (10% of likes, 2 partitions), `compliance` (Post events, 4 partitions)
    /// or `user-compliance` (User events, 4 partitions).
    #[arg(long, env = "INGEST_STREAM", value_parser = named::<StreamKind>(StreamKind::NAMES))]
    pub stream: Option<StreamKind>,

    /// The partition of a partitioned stream (sample10 1-2, firehose 1-20, firehose-lang en 1-8
    /// and ja/ko/pt 1-2, likes-firehose 1-20, likes-sample10 1-2, compliance 1-4): one process
    /// per partition.
    #[arg(long, env = "INGEST_PARTITION", value_name = "N")]
    pub partition: Option<u32>,

    /// The language of `--stream firehose-lang`: en, ja, ko or pt.
    #[arg(long, env = "INGEST_LANG", value_parser = named::<Lang>(Lang::NAMES))]
    pub lang: Option<Lang>,

    #[command(flatten)]
    pub api: TwitterApiArgs,

    /// Reconnect when no byte (not even a keep-alive) arrives for this long (default 30s).
    #[arg(long, env = "INGEST_STALL_TIMEOUT", value_parser = parse_duration, value_name = "DURATION")]
    pub stall_timeout: Option<Duration>,

    /// Close every streaming connection of the app (DELETE /2/connections/all) before connecting.
    #[arg(long, env = "INGEST_RESET_CONNECTIONS", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub reset_connections: bool,

    /// Where received lines wait for the sinks: `memory` (default) or `disk`, a
    /// write-ahead log in the state dir that the next run delivers after a crash.
    #[arg(long, env = "INGEST_BUFFER", value_parser = named::<Buffer>(&["memory", "disk"]))]
    pub buffer: Option<Buffer>,

    /// `tweet.fields` to request (default created_at,lang,author_id,conversation_id,source,entities).
    #[arg(long, env = "INGEST_TWEET_FIELDS", value_name = "FIELDS")]
    pub tweet_fields: Option<String>,

    /// `expansions` to request (default author_id).
    #[arg(long, env = "INGEST_EXPANSIONS", value_name = "FIELDS")]
    pub expansions: Option<String>,

    /// `user.fields` to request (default name,username).
    #[arg(long, env = "INGEST_USER_FIELDS", value_name = "FIELDS")]
    pub user_fields: Option<String>,

    /// Ask X to resend up to this many minutes missed during a disconnect (1-5; needs access that allows it).
    #[arg(long, env = "INGEST_BACKFILL_MINUTES", value_name = "MINUTES", value_parser = clap::value_parser!(u32).range(1..=5))]
    pub backfill_minutes: Option<u32>,

    /// Start the built-in mock X API in process and capture from it (no account needed).
    #[arg(long, env = "INGEST_MOCK", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub mock: bool,

    /// Scenario file for --mock (rate, faults); see examples/scenario.toml.
    #[arg(
        long,
        env = "INGEST_MOCK_SCENARIO",
        value_name = "FILE",
        requires = "mock"
    )]
    pub mock_scenario: Option<PathBuf>,

    #[command(flatten)]
    pub media: MediaArgs,

    #[command(flatten)]
    pub run: RunArgs,
}

/// `ingest twitter-search`.
#[derive(Debug, Args)]
pub struct TwitterSearchArgs {
    /// The X search query (X's query language, e.g. `cats has:images -is:retweet`).
    #[arg(long, env = "INGEST_QUERY", value_name = "QUERY")]
    pub query: Option<String>,

    /// Full-archive search (/2/tweets/search/all) instead of the last 7 days.
    #[arg(long, env = "INGEST_ARCHIVE", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub archive: bool,

    /// Oldest post time: RFC 3339, a date, or that long ago (`7d`, `2h`).
    #[arg(long, env = "INGEST_START_TIME", value_name = "TIME")]
    pub start_time: Option<String>,

    /// Newest post time (exclusive): RFC 3339, a date, or that long ago (`1h`).
    #[arg(long, env = "INGEST_END_TIME", value_name = "TIME")]
    pub end_time: Option<String>,

    /// Only posts newer than this id.
    #[arg(long, env = "INGEST_SINCE_ID", value_name = "ID")]
    pub since_id: Option<String>,

    /// Only posts older than this id.
    #[arg(long, env = "INGEST_UNTIL_ID", value_name = "ID")]
    pub until_id: Option<String>,

    /// After the backfill, keep asking for newer posts this often (e.g. 60s), until --duration or a signal.
    #[arg(long, env = "INGEST_POLL", value_parser = parse_duration, value_name = "DURATION")]
    pub poll: Option<Duration>,

    /// `tweet.fields` to request (default: the stream's).
    #[arg(long, env = "INGEST_SEARCH_TWEET_FIELDS", value_name = "FIELDS")]
    pub tweet_fields: Option<String>,

    /// `expansions` to request (default: the stream's).
    #[arg(long, env = "INGEST_SEARCH_EXPANSIONS", value_name = "FIELDS")]
    pub expansions: Option<String>,

    /// `user.fields` to request (default: the stream's).
    #[arg(long, env = "INGEST_SEARCH_USER_FIELDS", value_name = "FIELDS")]
    pub user_fields: Option<String>,

    #[command(flatten)]
    pub api: TwitterApiArgs,

    /// Start the built-in mock X API in process and search it (no account needed).
    #[arg(long, env = "INGEST_MOCK", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub mock: bool,

    /// Scenario file for --mock (corpus, rate-limit budget, faults); see examples/scenario.toml.
    #[arg(
        long,
        env = "INGEST_SEARCH_MOCK_SCENARIO",
        value_name = "FILE",
        requires = "mock"
    )]
    pub mock_scenario: Option<PathBuf>,

    #[command(flatten)]
    pub media: MediaArgs,

    #[command(flatten)]
    pub run: RunArgs,
}

/// `ingest twitter-counts`.
#[derive(Debug, Args)]
pub struct TwitterCountsArgs {
    /// The X search query to count posts of (X's query language, as for twitter-search).
    #[arg(long, env = "INGEST_QUERY", value_name = "QUERY")]
    pub query: Option<String>,

    /// Count the full archive (/2/tweets/counts/all) instead of the last 7 days.
    #[arg(long, env = "INGEST_ARCHIVE", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub archive: bool,

    /// Width of a bucket: minute, hour (default) or day.
    #[arg(long, env = "INGEST_GRANULARITY", value_parser = named::<Granularity>(Granularity::NAMES))]
    pub granularity: Option<Granularity>,

    /// Oldest post time: RFC 3339, a date, or that long ago (`7d`, `2h`).
    #[arg(long, env = "INGEST_START_TIME", value_name = "TIME")]
    pub start_time: Option<String>,

    /// Newest post time (exclusive): RFC 3339, a date, or that long ago (`1h`).
    #[arg(long, env = "INGEST_END_TIME", value_name = "TIME")]
    pub end_time: Option<String>,

    /// Print the buckets as one JSON document on stdout instead of a table.
    #[arg(long, env = "INGEST_COUNTS_JSON", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new(), conflicts_with_all = ["csv", "sinks"])]
    pub json: bool,

    /// Print the buckets as CSV (start,end,count) on stdout instead of a table.
    #[arg(long, env = "INGEST_COUNTS_CSV", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new(), conflicts_with = "sinks")]
    pub csv: bool,

    #[command(flatten)]
    pub api: TwitterApiArgs,

    /// Start the built-in mock X API in process and count its search corpus (no account needed).
    #[arg(long, env = "INGEST_MOCK", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub mock: bool,

    /// Scenario file for --mock (corpus, rate-limit budget, faults); see examples/scenario.toml.
    #[arg(
        long,
        env = "INGEST_SEARCH_MOCK_SCENARIO",
        value_name = "FILE",
        requires = "mock"
    )]
    pub mock_scenario: Option<PathBuf>,

    /// With --sink NAME, every bucket becomes a record of kind `count` in the sinks
    /// (instead of the table); --summary prints the total on stderr either way.
    #[command(flatten)]
    pub run: RunArgs,
}
