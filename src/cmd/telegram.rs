//! `ingest telegram`: Telegram Bot API updates by long polling or by webhook.

use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{finish, tls_files, webhook_limits};
use crate::cli::TelegramArgs;
use crate::config::{LoadedConfig, Settings};
use crate::run::Error;
use crate::secret::Secret;
use crate::sources::telegram::api::TelegramApi;
use crate::sources::telegram::config::{self, TelegramSettings};
use crate::sources::telegram::polling::{PollingConfig, TelegramPolling};
use crate::sources::telegram::webhook::{DEFAULT_UPDATE_WINDOW, TelegramWebhook, WebhookConfig};

pub async fn run(
    args: TelegramArgs,
    loaded: &LoadedConfig,
    shutdown: CancellationToken,
) -> Result<u8, Error> {
    let mut settings = Settings::resolve(&args.run, loaded)?;
    settings.media =
        crate::media::config::resolve(&args.media.flags(), &loaded.file.media, loaded.at())?;
    if args.mock {
        super::mock::keep_state_apart(&mut settings, &args.run, loaded);
    }
    let common = TelegramCommon {
        settings,
        telegram: config::resolve(&args.flags(), &loaded.file.telegram),
    };
    match args.webhook.clone() {
        Some(listen) => telegram_webhook(args, listen, common, loaded, shutdown).await,
        None => telegram_polling(args, common, shutdown).await,
    }
}

/// What both Telegram modes resolve alike.
struct TelegramCommon {
    settings: Settings,
    telegram: TelegramSettings,
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
        TelegramApi::new(&common.telegram.api_base, token)?
            .set_webhook(url, &secret, &common.telegram.allowed_updates)
            .await?;
        info!(url = %url, "webhook set");
    }
    let (mut settings, telegram) = (common.settings, common.telegram);
    if let Some(media) = settings.media.as_mut() {
        // Files are fetched through the bot: webhook mode needs its token too.
        let token = bot_token().ok_or_else(|| {
            Error::MissingSecret(
                "--media downloads files through the bot: set TELEGRAM_BOT_TOKEN in the environment"
                    .into(),
            )
        })?;
        media.telegram = Some(TelegramApi::new(&telegram.api_base, token)?);
    }
    let config = WebhookConfig {
        listen,
        path: telegram.webhook_path,
        secret_token: secret,
        chat_ids: telegram.chat_ids,
        limits: webhook_limits(&settings, loaded),
        ack_timeout: loaded.file.webhook.ack_timeout(),
        dedupe_window: DEFAULT_UPDATE_WINDOW,
        tls: tls_files(args.tls_cert, args.tls_key),
    };
    let summary = crate::run::run(&settings, TelegramWebhook { config }, shutdown).await?;
    Ok(finish(summary, settings.summary))
}

async fn telegram_polling(
    args: TelegramArgs,
    common: TelegramCommon,
    shutdown: CancellationToken,
) -> Result<u8, Error> {
    let mock = match (args.mock, &args.mock_scenario) {
        (true, scenario) => {
            let server = super::mock::start_telegram("127.0.0.1:0", scenario.as_deref()).await?;
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
    let telegram = common.telegram;
    let base = mock
        .as_ref()
        .map(|m| m.base_url())
        .unwrap_or(telegram.api_base);
    let api = TelegramApi::new(&base, token)?;
    let config = PollingConfig {
        chat_ids: telegram.chat_ids,
        allowed_updates: telegram.allowed_updates,
        poll_timeout_secs: telegram.poll_timeout_secs,
        until_idle: args.until_idle,
        delete_webhook: args.delete_webhook,
    };
    let mut settings = common.settings;
    if let Some(media) = settings.media.as_mut() {
        media.telegram = Some(api.clone());
    }
    let result = crate::run::run(&settings, TelegramPolling { api, config }, shutdown).await;
    if let Some(m) = mock {
        m.stop().await;
    }
    Ok(finish(result?, settings.summary))
}

fn missing_bot_token() -> Error {
    Error::MissingSecret(
        "no Telegram bot token: set TELEGRAM_BOT_TOKEN in the environment, or try `--mock`".into(),
    )
}
