//! The commands, one file each: what a command resolves, starts and prints.
//! This module finds a command's config file and dispatches; the exit code of
//! a run comes from [`crate::run`], which maps every error to its code.

use std::path::Path;

use tokio_util::sync::CancellationToken;

use crate::cli::{Command, RulesAction};
use crate::config::{LoadedConfig, Settings};
use crate::run::{Error, RunSummary};
use crate::sources::http::{ServerLimits, TlsFiles};

pub mod check;
pub mod completions;
pub mod kafka;
pub mod man;
pub mod mock;
pub mod replay;
pub mod report;
pub mod rules;
pub mod schema;
pub mod telegram;
pub mod top;
pub mod twitter;
pub mod twitter_counts;
pub mod twitter_search;
pub mod twitter_webhook;

/// The config file a command reads (`--config`), if it names one.
pub fn config_path(command: &Command) -> Option<&Path> {
    match command {
        Command::Replay(a) => a.run.config.as_deref(),
        Command::Kafka(a) => a.run.config.as_deref(),
        Command::Twitter(a) => a.run.config.as_deref(),
        Command::TwitterSearch(a) => a.run.config.as_deref(),
        Command::TwitterCounts(a) => a.run.config.as_deref(),
        Command::Rules(r) => match &r.action {
            RulesAction::List(c) | RulesAction::Counts(c) => c.config.as_deref(),
            RulesAction::Validate { common, .. }
            | RulesAction::Sync { common, .. }
            | RulesAction::Clear { common, .. } => common.config.as_deref(),
        },
        Command::Telegram(a) => a.run.config.as_deref(),
        Command::TwitterWebhook(a) => match &a.action {
            Some(action) => action.common().config.as_deref(),
            None => a.run.config.as_deref(),
        },
        Command::Check(a) => a.config.as_deref(),
        Command::Mock(_)
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Schema(_)
        | Command::Top(_)
        | Command::Report(_) => None,
    }
}

/// The pipeline options of a command that runs the pipeline.
pub fn run_args_mut(command: &mut Command) -> Option<&mut crate::cli::RunArgs> {
    match command {
        Command::Replay(a) => Some(&mut a.run),
        Command::Kafka(a) => Some(&mut a.run),
        Command::Twitter(a) => Some(&mut a.run),
        Command::TwitterSearch(a) => Some(&mut a.run),
        Command::TwitterCounts(a) => Some(&mut a.run),
        Command::Telegram(a) => Some(&mut a.run),
        Command::TwitterWebhook(a) => Some(&mut a.run),
        Command::Rules(_)
        | Command::Mock(_)
        | Command::Check(_)
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Schema(_)
        | Command::Top(_)
        | Command::Report(_) => None,
    }
}

/// Commands that need no config and no shared runtime (completions, man
/// page, schema, report; top starts its own): their result.
pub fn without_config(command: &Command) -> Option<Result<u8, Error>> {
    match command {
        Command::Completions { shell } => Some(Ok(completions::run(*shell))),
        Command::Man { dir } => Some(Ok(man::run(dir.as_deref()))),
        Command::Schema(a) => Some(schema::print(a.format)),
        Command::Report(a) => Some(report::run(a)),
        Command::Top(a) => Some(top::run(a)),
        _ => None,
    }
}

/// What a run prints and returns.
pub(super) fn finish(summary: RunSummary, print: bool) -> u8 {
    if print {
        let json = serde_json::to_string(&summary).expect("the summary serializes");
        eprintln!("{}", crate::secret::redact(&json));
    }
    summary.exit_code
}

/// Runs a command to its end.
pub async fn run(
    command: Command,
    loaded: LoadedConfig,
    shutdown: CancellationToken,
) -> Result<u8, Error> {
    match command {
        Command::Replay(args) => replay::run(args, &loaded, shutdown).await,
        Command::Kafka(args) => kafka::run(args, &loaded, shutdown).await,
        Command::Twitter(args) => twitter::run(args, &loaded, shutdown).await,
        Command::TwitterSearch(args) => twitter_search::run(args, &loaded, shutdown).await,
        Command::TwitterCounts(args) => twitter_counts::run(args, &loaded, shutdown).await,
        Command::Rules(r) => rules::run(r.action, &loaded).await,
        Command::Check(args) => check::run(&args, &loaded).await,
        Command::Completions { .. }
        | Command::Man { .. }
        | Command::Schema(_)
        | Command::Top(_)
        | Command::Report(_) => without_config(&command).unwrap_or(Ok(crate::exit_codes::SUCCESS)),
        Command::Telegram(args) => telegram::run(args, &loaded, shutdown).await,
        Command::TwitterWebhook(args) => twitter_webhook::run(args, &loaded, shutdown).await,
        Command::Mock(mock) => mock::run(mock, shutdown).await,
    }
}

// What both webhook servers (X Account Activity, Telegram) resolve alike.

/// The webhook server's limits: `[webhook]` (where the deprecated `[telegram]`
/// spellings of `max_body_bytes` and `ack_timeout` end up, see
/// [`LoadedConfig::parse`]), and the run's shutdown timeout for requests still
/// in progress at a stop.
pub(super) fn webhook_limits(settings: &Settings, loaded: &LoadedConfig) -> ServerLimits {
    ServerLimits::new(&loaded.file.webhook, settings.shutdown_timeout)
}

pub(super) fn tls_files(
    cert: Option<std::path::PathBuf>,
    key: Option<std::path::PathBuf>,
) -> Option<TlsFiles> {
    Some(TlsFiles {
        cert: cert?,
        key: key?,
    })
}
