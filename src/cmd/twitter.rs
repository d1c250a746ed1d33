//! `ingest twitter`: the X filtered stream (and the other streams), rules
//! synced first when asked; the X client or the built-in mock for every X command.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::finish;
use super::mock::MockServer;
use crate::cli::RulesMode;
use crate::config::{LoadedConfig, Settings};
use crate::run::{Error, RunSummary};
use crate::secret::Secret;
use crate::sources::twitter::api::{BEARER_TOKEN_VARS, TwitterApi};
use crate::sources::twitter::stream::config::TwitterSettings;
use crate::sources::twitter::stream::rules;
use crate::sources::twitter::stream::{self, TwitterSource};

pub async fn run(
    args: crate::cli::TwitterArgs,
    loaded: &LoadedConfig,
    shutdown: CancellationToken,
) -> Result<u8, Error> {
    let mut settings = Settings::resolve(&args.run, loaded)?;
    if args.mock {
        super::mock::keep_state_apart(&mut settings, &args.run, loaded);
    }
    let mut twitter = stream::config::resolve(&args.flags(), &loaded.file.twitter, loaded.at())?;
    settings.media =
        crate::media::config::resolve(&args.media.flags(), &loaded.file.media, loaded.at())?;
    if settings.media.is_some() {
        twitter.stream.with_media();
    }
    let (api, mock) =
        twitter_api_or_mock(&twitter.mock, &twitter.api_base, "capturing from").await?;
    let result = capture(&settings, &twitter, api, shutdown).await;
    if let Some(m) = mock {
        m.stop().await;
    }
    Ok(finish(result?, settings.summary))
}

/// The X API client: the built-in mock's (`--mock [SCENARIO]`, started here,
/// any token accepted) or the one at `api_base` with the bearer token from
/// the environment. The caller stops the mock when the run ends.
pub(super) async fn twitter_api_or_mock(
    mock: &Option<Option<PathBuf>>,
    api_base: &str,
    doing: &str,
) -> Result<(TwitterApi, Option<MockServer>), Error> {
    let mock = match mock {
        Some(scenario) => {
            let server = super::mock::start_twitter("127.0.0.1:0", scenario.as_deref()).await?;
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
    Ok((TwitterApi::new(&base, token)?, mock))
}

async fn capture(
    settings: &Settings,
    twitter: &TwitterSettings,
    api: TwitterApi,
    shutdown: CancellationToken,
) -> Result<RunSummary, Error> {
    let has_rules = twitter.stream.kind.has_rules();
    if let (Some(wanted), RulesMode::Sync, true) = (&twitter.rules, twitter.rules_mode, has_rules) {
        // `--track` manages the rules it made and no others; a rules file is
        // the app's whole set, and every deletion it makes is said at WARN.
        let scope = match twitter.track {
            true => rules::Scope::Tagged(rules::TRACK_TAG),
            false => rules::Scope::All,
        };
        let plan = rules::sync(&api, wanted, scope).await?;
        for line in plan.describe() {
            match line.starts_with("- ") {
                true => warn!("rules: deleting a live rule of the app: {line}"),
                false => info!("rules: {line}"),
            }
        }
    }
    let source = TwitterSource {
        api,
        config: twitter.stream.clone(),
    };
    crate::run::run(settings, source, shutdown).await
}

pub(super) fn missing_token() -> Error {
    Error::MissingSecret(
        "no X bearer token: set TWITTER_BEARER_TOKEN (or BEARER_TOKEN) in the environment, or try `--mock`".into(),
    )
}
