//! One function per command: resolve settings, run, return the exit code.

use std::io::Write;
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::cli::{Command, MockCommand, RulesAction, RulesCommon, RulesMode, TelegramArgs};
use crate::config::{LoadedConfig, ReplaySettings, Settings, TwitterSettings, api_base};
use crate::mock::MockServer;
use crate::mock::telegram::TelegramScenario;
use crate::mock::twitter::Scenario;
use crate::secret::Secret;
use crate::sources::replay::ReplaySource;
use crate::sources::telegram::api::TelegramApi;
use crate::sources::telegram::polling::{PollingConfig, TelegramPolling};
use crate::sources::telegram::webhook::{TelegramWebhook, WebhookConfig};
use crate::sources::twitter::api::BEARER_TOKEN_VARS;
use crate::sources::twitter::api::XApi;
use crate::sources::twitter::rules;
use crate::sources::twitter::stream::TwitterSource;
use crate::sources::twitter::webhook::{ActivityConfig, ActivityWebhook, DEFAULT_BODY_WINDOW};
use crate::sources::webhook_server::{ServerLimits, TlsFiles};
use crate::{Error, RunSummary, exit_codes};

/// The config file a command reads (`--config`), if it names one.
pub fn config_path(command: &Command) -> Option<&Path> {
    match command {
        Command::Replay(a) => a.run.config.as_deref(),
        Command::Kafka(a) => a.run.config.as_deref(),
        Command::Twitter(a) => a.run.config.as_deref(),
        Command::TwitterSearch(a) => a.run.config.as_deref(),
        Command::Rules(r) => match &r.action {
            RulesAction::List(c) => c.config.as_deref(),
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
        Command::Mock(_) | Command::Completions { .. } | Command::Man | Command::Schema(_) => None,
    }
}

/// The pipeline options of a command that runs the pipeline.
pub fn run_args_mut(command: &mut Command) -> Option<&mut crate::cli::RunArgs> {
    match command {
        Command::Replay(a) => Some(&mut a.run),
        Command::Kafka(a) => Some(&mut a.run),
        Command::Twitter(a) => Some(&mut a.run),
        Command::TwitterSearch(a) => Some(&mut a.run),
        Command::Telegram(a) => Some(&mut a.run),
        Command::TwitterWebhook(a) => Some(&mut a.run),
        Command::Rules(_)
        | Command::Mock(_)
        | Command::Check(_)
        | Command::Completions { .. }
        | Command::Man
        | Command::Schema(_) => None,
    }
}

/// Commands that need no config and no runtime (completions, man page): their exit code.
pub fn without_config(command: &Command) -> Option<u8> {
    match command {
        Command::Completions { shell } => Some(crate::ops::completions(*shell)),
        Command::Man => Some(crate::ops::man_page()),
        Command::Schema(a) => Some(crate::schema::print(a.format)),
        _ => None,
    }
}

/// What a run prints and returns.
fn finish(summary: RunSummary, print: bool) -> u8 {
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
        Command::Replay(args) => replay(args, &loaded, shutdown).await,
        Command::Kafka(args) => kafka(args, &loaded, shutdown).await,
        Command::Twitter(args) => twitter(args, &loaded, shutdown).await,
        Command::TwitterSearch(args) => twitter_search(args, &loaded, shutdown).await,
        Command::Rules(r) => rules_command(r.action, &loaded).await,
        Command::Check(args) => crate::ops::check(&args, &loaded).await,
        Command::Completions { .. } | Command::Man | Command::Schema(_) => {
            Ok(without_config(&command).unwrap_or(exit_codes::SUCCESS))
        }
        Command::Telegram(args) => telegram(args, &loaded, shutdown).await,
        Command::TwitterWebhook(args) => twitter_webhook(args, &loaded, shutdown).await,
        Command::Mock(mock) => run_mock(mock, shutdown).await,
    }
}

async fn replay(
    args: crate::cli::ReplayArgs,
    loaded: &LoadedConfig,
    shutdown: CancellationToken,
) -> Result<u8, Error> {
    let settings = Settings::resolve(&args.run, loaded)?;
    let replay = ReplaySettings::resolve(&args, loaded)?;
    let source = ReplaySource {
        input: replay.input,
        platform: replay.platform,
        max_line_bytes: replay.max_line_bytes,
    };
    let summary = crate::run(&settings, source, shutdown).await?;
    Ok(finish(summary, settings.summary))
}

#[cfg(not(feature = "kafka"))]
async fn kafka(
    _args: crate::cli::KafkaArgs,
    _loaded: &LoadedConfig,
    _shutdown: CancellationToken,
) -> Result<u8, Error> {
    Err(Error::CompiledOut(
        crate::sources::kafka::COMPILED_OUT.to_owned(),
    ))
}

#[cfg(feature = "kafka")]
async fn kafka(
    args: crate::cli::KafkaArgs,
    loaded: &LoadedConfig,
    shutdown: CancellationToken,
) -> Result<u8, Error> {
    let settings = Settings::resolve(&args.run, loaded)?;
    let source = crate::sources::kafka::KafkaSource {
        settings: crate::config::kafka_source_settings(&args, loaded)?,
    };
    let summary = crate::run(&settings, source, shutdown).await?;
    Ok(finish(summary, settings.summary))
}

async fn twitter(
    args: crate::cli::TwitterArgs,
    loaded: &LoadedConfig,
    shutdown: CancellationToken,
) -> Result<u8, Error> {
    let settings = Settings::resolve(&args.run, loaded)?;
    let twitter = TwitterSettings::resolve(&args, loaded)?;
    let (api, mock) = x_api_or_mock(&twitter.mock, &twitter.api_base, "capturing from").await?;
    let result = capture(&settings, &twitter, api, shutdown).await;
    if let Some(m) = mock {
        m.stop().await;
    }
    Ok(finish(result?, settings.summary))
}

/// The X API client: the built-in mock's (`--mock [SCENARIO]`, started here,
/// any token accepted) or the one at `api_base` with the bearer token from
/// the environment. The caller stops the mock when the run ends.
async fn x_api_or_mock(
    mock: &Option<Option<PathBuf>>,
    api_base: &str,
    doing: &str,
) -> Result<(XApi, Option<MockServer>), Error> {
    let mock = match mock {
        Some(scenario) => {
            let scenario = scenario
                .as_deref()
                .map(Scenario::load)
                .transpose()?
                .unwrap_or_default();
            let server = crate::mock::twitter::start("127.0.0.1:0", scenario).await?;
            info!(url = %server.base_url(), "{doing} the built-in mock X API (--mock)");
            Some(server)
        }
        None => None,
    };
    let base = mock
        .as_ref()
        .map(|m| m.base_url())
        .unwrap_or_else(|| api_base.to_owned());
    let token = match (Secret::from_env(&BEARER_TOKEN_VARS), &mock) {
        (Some(t), _) => t,
        (None, Some(_)) => Secret::new("mock-token"),
        (None, None) => return Err(missing_token()),
    };
    Ok((XApi::new(&base, token)?, mock))
}

async fn twitter_search(
    args: crate::cli::TwitterSearchArgs,
    loaded: &LoadedConfig,
    shutdown: CancellationToken,
) -> Result<u8, Error> {
    let settings = Settings::resolve(&args.run, loaded)?;
    let search = crate::config::SearchSettings::resolve(&args, loaded)?;
    let (api, mock) = x_api_or_mock(&search.mock, &search.api_base, "searching").await?;
    let source = crate::sources::twitter::search::TwitterSearch {
        api,
        config: search.config,
    };
    let result = crate::run(&settings, source, shutdown).await;
    if let Some(m) = mock {
        m.stop().await;
    }
    Ok(finish(result?, settings.summary))
}

async fn twitter_webhook(
    mut args: crate::cli::TwitterWebhookArgs,
    loaded: &LoadedConfig,
    shutdown: CancellationToken,
) -> Result<u8, Error> {
    if let Some(action) = args.action.take() {
        return crate::webhook_commands::run(action, loaded).await;
    }
    let listen = args.listen.take().ok_or_else(|| {
        Error::Usage("twitter-webhook needs --listen ADDR (or an action: register, list…)".into())
    })?;
    let settings = Settings::resolve(&args.run, loaded)?;
    let secret = Secret::from_env(&["TWITTER_CONSUMER_SECRET"]).ok_or_else(|| {
        Error::MissingSecret(
            "no X consumer secret: set TWITTER_CONSUMER_SECRET (CRC answers and signatures need it)"
                .into(),
        )
    })?;
    let config = ActivityConfig {
        listen: listen.clone(),
        path: args.path,
        consumer_secret: secret,
        tls: tls_files(args.tls_cert, args.tls_key),
        limits: webhook_limits(&settings, loaded),
        ack_timeout: loaded
            .file
            .telegram
            .ack_timeout
            .unwrap_or(DEFAULT_ACK_TIMEOUT),
        dedupe_window: DEFAULT_BODY_WINDOW,
    };
    let registering = args.register.map(|url| {
        let base = api_base(args.register_api.twitter_api_base.as_deref(), loaded);
        tokio::spawn(register_when_listening(listen, base, url, shutdown.clone()))
    });
    let summary = crate::run(&settings, ActivityWebhook { config }, shutdown).await?;
    if let Some(task) = registering {
        if !task.is_finished() {
            task.abort();
        } else if let Ok(Err(e)) = task.await {
            return Err(e);
        }
    }
    Ok(finish(summary, settings.summary))
}

/// `--register URL`: once the server answers, registers the URL (or validates
/// the webhook X has for it); on failure, stops the run.
async fn register_when_listening(
    listen: String,
    base: String,
    url: String,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let limit = std::time::Duration::from_secs(30);
    if !crate::webhook_commands::wait_listening(&listen, limit).await {
        shutdown.cancel();
        return Err(Error::Usage(format!(
            "--register: nothing listens on {listen} after {limit:?}"
        )));
    }
    match crate::webhook_commands::register_or_validate(&base, &url).await {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(
                "--register {url} failed: {}",
                crate::secret::redact(&e.to_string())
            );
            shutdown.cancel();
            Err(e)
        }
    }
}

/// `ingest mock twitter|telegram`: serves until a signal.
async fn run_mock(command: MockCommand, shutdown: CancellationToken) -> Result<u8, Error> {
    let server = match command {
        MockCommand::Telegram(args) => {
            let scenario = args
                .scenario
                .as_deref()
                .map(TelegramScenario::load)
                .transpose()?
                .unwrap_or_default();
            crate::mock::telegram::start(&args.listen, scenario).await?
        }
        MockCommand::Twitter(args) => {
            let scenario = args
                .scenario
                .as_deref()
                .map(Scenario::load)
                .transpose()?
                .unwrap_or_default();
            crate::mock::twitter::start(&args.listen, scenario).await?
        }
    };
    print_url(&server.base_url());
    shutdown.cancelled().await;
    server.stop().await;
    Ok(exit_codes::SUCCESS)
}

/// The base URL on stdout, for scripts that start a mock on port 0.
fn print_url(url: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{url}");
    let _ = out.flush();
}

/// Default cap on webhook bodies.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default wait for the sinks before a webhook answers 503.
pub const DEFAULT_ACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The webhook server's limits: `[webhook]`, `[telegram] max_body_bytes`, and
/// the run's shutdown timeout for requests still in progress at a stop.
fn webhook_limits(settings: &Settings, loaded: &LoadedConfig) -> ServerLimits {
    ServerLimits::new(
        &loaded.file.webhook,
        loaded
            .file
            .telegram
            .max_body_bytes
            .unwrap_or(DEFAULT_MAX_BODY_BYTES),
        settings.shutdown_timeout,
    )
}

async fn telegram(
    args: TelegramArgs,
    loaded: &LoadedConfig,
    shutdown: CancellationToken,
) -> Result<u8, Error> {
    let t = &loaded.file.telegram;
    let common = TelegramCommon {
        settings: Settings::resolve(&args.run, loaded)?,
        chat_ids: if args.chat_ids.is_empty() {
            t.chat_ids.clone()
        } else {
            args.chat_ids.clone()
        },
        allowed: if args.allowed_updates.is_empty() {
            t.allowed_updates.clone()
        } else {
            args.allowed_updates.clone()
        },
        base: crate::config::telegram_api_base(args.telegram_api_base.as_deref(), loaded),
    };
    match args.webhook.clone() {
        Some(listen) => telegram_webhook(args, listen, common, loaded, shutdown).await,
        None => telegram_polling(args, common, loaded, shutdown).await,
    }
}

/// What both Telegram modes resolve alike.
struct TelegramCommon {
    settings: Settings,
    chat_ids: Vec<i64>,
    allowed: Vec<String>,
    base: String,
}

fn bot_token() -> Option<Secret> {
    Secret::from_env(&["TELEGRAM_BOT_TOKEN"])
}

async fn telegram_webhook(
    args: TelegramArgs,
    listen: String,
    common: TelegramCommon,
    loaded: &LoadedConfig,
    shutdown: CancellationToken,
) -> Result<u8, Error> {
    let t = &loaded.file.telegram;
    // A secret read from a file often ends in a newline: Telegram never sends one.
    let secret = args
        .secret_token
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Secret::new)
        .ok_or_else(|| {
            Error::MissingSecret(
                "webhook mode needs a secret token: --secret-token or TELEGRAM_SECRET_TOKEN".into(),
            )
        })?;
    if let Some(url) = &args.set_webhook {
        let token = bot_token().ok_or_else(missing_bot_token)?;
        TelegramApi::new(&common.base, token)?
            .set_webhook(url, &secret, &common.allowed)
            .await?;
        info!(url = %url, "webhook set");
    }
    let settings = common.settings;
    let config = WebhookConfig {
        listen,
        path: args
            .webhook_path
            .or(t.webhook_path.clone())
            .unwrap_or_else(|| "/telegram".into()),
        secret_token: secret,
        chat_ids: common.chat_ids,
        limits: webhook_limits(&settings, loaded),
        ack_timeout: t.ack_timeout.unwrap_or(DEFAULT_ACK_TIMEOUT),
        dedupe_window: 100_000,
        tls: tls_files(args.tls_cert, args.tls_key),
    };
    let summary = crate::run(&settings, TelegramWebhook { config }, shutdown).await?;
    Ok(finish(summary, settings.summary))
}

async fn telegram_polling(
    args: TelegramArgs,
    common: TelegramCommon,
    loaded: &LoadedConfig,
    shutdown: CancellationToken,
) -> Result<u8, Error> {
    let t = &loaded.file.telegram;
    let mock = match (args.mock, &args.mock_scenario) {
        (true, scenario) => {
            let scenario = scenario
                .as_deref()
                .map(TelegramScenario::load)
                .transpose()?
                .unwrap_or_default();
            let server = crate::mock::telegram::start("127.0.0.1:0", scenario).await?;
            info!(url = %server.base_url(), "capturing from the built-in mock Telegram API (--mock)");
            Some(server)
        }
        (false, _) => None,
    };
    let token = match (bot_token(), &mock) {
        (Some(t), _) => t,
        (None, Some(_)) => Secret::new("123456:mock-token"),
        (None, None) => return Err(missing_bot_token()),
    };
    let base = mock.as_ref().map(|m| m.base_url()).unwrap_or(common.base);
    let api = TelegramApi::new(&base, token)?;
    let config = PollingConfig {
        chat_ids: common.chat_ids,
        allowed_updates: common.allowed,
        poll_timeout_secs: args
            .poll_timeout
            .or(t.poll_timeout_secs)
            .unwrap_or(30)
            .min(50),
        until_idle: args.until_idle,
        delete_webhook: args.delete_webhook,
    };
    let settings = common.settings;
    let result = crate::run(&settings, TelegramPolling { api, config }, shutdown).await;
    if let Some(m) = mock {
        m.stop().await;
    }
    Ok(finish(result?, settings.summary))
}

fn tls_files(
    cert: Option<std::path::PathBuf>,
    key: Option<std::path::PathBuf>,
) -> Option<TlsFiles> {
    Some(TlsFiles {
        cert: cert?,
        key: key?,
    })
}

fn missing_bot_token() -> Error {
    Error::MissingSecret(
        "no Telegram bot token: set TELEGRAM_BOT_TOKEN in the environment, or try `--mock`".into(),
    )
}

fn missing_token() -> Error {
    Error::MissingSecret(
        "no X bearer token: set TWITTER_BEARER_TOKEN (or BEARER_TOKEN) in the environment, or try `--mock`".into(),
    )
}

async fn capture(
    settings: &Settings,
    twitter: &TwitterSettings,
    api: XApi,
    shutdown: CancellationToken,
) -> Result<RunSummary, Error> {
    let has_rules = twitter.stream.kind.has_rules();
    if let (Some(wanted), RulesMode::Sync, true) = (&twitter.rules, twitter.rules_mode, has_rules) {
        let plan = rules::sync(&api, wanted).await?;
        for line in plan.describe() {
            info!("rules: {line}");
        }
    }
    let source = TwitterSource {
        api,
        config: twitter.stream.clone(),
    };
    crate::run(settings, source, shutdown).await
}

fn api_for(common: &RulesCommon, loaded: &LoadedConfig) -> Result<XApi, Error> {
    let token = Secret::from_env(&BEARER_TOKEN_VARS).ok_or_else(missing_token)?;
    Ok(XApi::new(
        &api_base(common.api.twitter_api_base.as_deref(), loaded),
        token,
    )?)
}

async fn rules_command(action: RulesAction, loaded: &LoadedConfig) -> Result<u8, Error> {
    let mut out = Vec::new();
    match action {
        RulesAction::List(common) => {
            let api = api_for(&common, loaded)?;
            for r in api.rules().await? {
                writeln!(out, "{}\t{}\t{}", r.id, r.value, r.tag.unwrap_or_default())
                    .expect("writing to a Vec");
            }
        }
        RulesAction::Validate {
            rules: path,
            common,
        } => {
            let wanted = rules::load(&path)?;
            let api = api_for(&common, loaded)?;
            api.add_rules(&wanted, true).await?;
            writeln!(out, "{} rule(s) valid", wanted.len()).expect("writing to a Vec");
        }
        RulesAction::Sync {
            rules: path,
            common,
        } => {
            let wanted = rules::load(&path)?;
            let api = api_for(&common, loaded)?;
            for line in rules::sync(&api, &wanted).await?.describe() {
                writeln!(out, "{line}").expect("writing to a Vec");
            }
        }
        RulesAction::Clear { yes, common } => {
            if !yes {
                return Err(Error::Usage(
                    "`rules clear` deletes every live rule: add --yes to confirm".into(),
                ));
            }
            let api = api_for(&common, loaded)?;
            let live = api.rules().await?;
            api.delete_rules(&live.iter().map(|r| r.id.clone()).collect::<Vec<_>>())
                .await?;
            writeln!(out, "{} rule(s) deleted", live.len()).expect("writing to a Vec");
        }
    }
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| Error::Usage(format!("cannot write to standard output: {e}")))?;
    Ok(exit_codes::SUCCESS)
}
