//! One function per command: resolve settings, run, return the exit code.

use std::io::Write;
use std::path::Path;

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::cli::{Command, MockCommand, RulesAction, RulesCommon, RulesMode};
use crate::config::{LoadedConfig, ReplaySettings, Settings, TwitterSettings, api_base};
use crate::mock::twitter::Scenario;
use crate::secret::Secret;
use crate::sources::replay::ReplaySource;
use crate::sources::twitter::api::XApi;
use crate::sources::twitter::rules;
use crate::sources::twitter::stream::TwitterSource;
use crate::{Error, RunSummary, exit_codes};

/// The environment variables that may hold the X bearer token, in order.
pub const BEARER_TOKEN_VARS: [&str; 2] = ["TWITTER_BEARER_TOKEN", "BEARER_TOKEN"];

/// The config file a command reads (`--config`), if it names one.
pub fn config_path(command: &Command) -> Option<&Path> {
    match command {
        Command::Replay(a) => a.run.config.as_deref(),
        Command::Twitter(a) => a.run.config.as_deref(),
        Command::Rules(r) => match &r.action {
            RulesAction::List(c) => c.config.as_deref(),
            RulesAction::Validate { common, .. }
            | RulesAction::Sync { common, .. }
            | RulesAction::Clear { common, .. } => common.config.as_deref(),
        },
        Command::Mock(_) => None,
    }
}

/// What a run prints and returns.
fn finish(summary: RunSummary, print: bool) -> u8 {
    if print {
        eprintln!(
            "{}",
            serde_json::to_string(&summary).expect("the summary serializes")
        );
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
        Command::Replay(args) => {
            let settings = Settings::resolve(&args.run, &loaded)?;
            let replay = ReplaySettings::resolve(&args, &loaded)?;
            let source = ReplaySource {
                input: replay.input,
                platform: replay.platform,
                max_line_bytes: replay.max_line_bytes,
            };
            let summary = crate::run(&settings, source, shutdown).await?;
            Ok(finish(summary, settings.summary))
        }
        Command::Twitter(args) => {
            let settings = Settings::resolve(&args.run, &loaded)?;
            let twitter = TwitterSettings::resolve(&args, &loaded)?;
            let mock = match &twitter.mock {
                Some(scenario) => {
                    let scenario = scenario
                        .as_deref()
                        .map(Scenario::load)
                        .transpose()?
                        .unwrap_or_default();
                    let server = crate::mock::twitter::start("127.0.0.1:0", scenario).await?;
                    info!(url = %server.base_url(), "capturing from the built-in mock X API (--mock)");
                    Some(server)
                }
                None => None,
            };
            let base = mock
                .as_ref()
                .map(|m| m.base_url())
                .unwrap_or_else(|| twitter.api_base.clone());
            let token = match (Secret::from_env(&BEARER_TOKEN_VARS), &mock) {
                (Some(t), _) => t,
                (None, Some(_)) => Secret::new("mock-token"),
                (None, None) => return Err(missing_token()),
            };
            let api = XApi::new(&base, token)?;
            let result = capture(&settings, &twitter, api, shutdown).await;
            if let Some(m) = mock {
                m.stop().await;
            }
            Ok(finish(result?, settings.summary))
        }
        Command::Rules(r) => rules_command(r.action, &loaded).await,
        Command::Mock(MockCommand::Twitter(args)) => {
            let scenario = args
                .scenario
                .as_deref()
                .map(Scenario::load)
                .transpose()?
                .unwrap_or_default();
            let server = crate::mock::twitter::start(&args.listen, scenario).await?;
            // The base URL on stdout, for scripts that start the mock on port 0.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", server.base_url());
            let _ = out.flush();
            drop(out);
            shutdown.cancelled().await;
            server.stop().await;
            Ok(exit_codes::SUCCESS)
        }
    }
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
    if let (Some(wanted), RulesMode::Sync) = (&twitter.rules, twitter.rules_mode) {
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
