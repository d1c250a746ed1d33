//! `ingest twitter-webhook --listen ADDR`: the X Account Activity webhook
//! server (CRC answers, signed deliveries, `--register URL`); and
//! `ingest twitter-webhook register|list|validate|delete|replay|subscribe|unsubscribe|subscriptions`;
//! on start, a replay job for what X tried to deliver while the receiver was down.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{finish, tls_files, webhook_limits};
use crate::cli::twitter_webhook::WebhookAction;
use crate::config::{LoadedConfig, Settings};
use crate::run::Error;
use crate::secret::Secret;
use crate::sources::twitter::api::BEARER_TOKEN_VARS;
use crate::sources::twitter::api_base;
use crate::sources::twitter::search::window::parse_time;
use crate::sources::twitter::webhooks::activity::{LinkFields, NewActivitySubscription};
use crate::sources::twitter::webhooks::manage::{WebhookConfig, WebhooksApi};
use crate::sources::twitter::webhooks::memory::WebhookMemory;
use crate::sources::twitter::webhooks::oauth1::UserCredentials;
use crate::sources::twitter::webhooks::receive::{
    ActivityConfig, ActivityWebhook, DEFAULT_BODY_WINDOW,
};
use crate::sources::twitter::webhooks::replay::{ReplayOnStart, replay_on_start};

pub async fn run(
    mut args: crate::cli::TwitterWebhookArgs,
    loaded: &LoadedConfig,
    shutdown: CancellationToken,
) -> Result<u8, Error> {
    if let Some(action) = args.action.take() {
        return manage(action, loaded).await;
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
    let replay = args.replay_flags();
    let memory = Arc::new(WebhookMemory::new(
        &settings.state_dir,
        &crate::state::secret_fingerprint(secret.expose()),
    ));
    let config = ActivityConfig {
        listen: listen.clone(),
        path: args.path,
        consumer_secret: secret,
        tls: tls_files(args.tls_cert, args.tls_key),
        limits: webhook_limits(&settings, loaded),
        ack_timeout: loaded.file.webhook.ack_timeout(),
        dedupe_window: DEFAULT_BODY_WINDOW,
        memory: Some(memory.clone()),
    };
    let base = api_base(
        args.register_api.twitter_api_base.as_deref(),
        &loaded.file.twitter,
    );
    let start = match (args.register, replay.webhook_id.clone()) {
        (Some(url), _) => Some(Target::Register(url)),
        (None, Some(id)) => {
            if replay.enabled {
                bearer()?;
            }
            Some(Target::Known(id))
        }
        (None, None) => None,
    };
    let starting = start.map(|target| {
        let on_start = OnStart {
            listen,
            base,
            memory,
            replay,
        };
        tokio::spawn(on_start.run(target, shutdown.clone()))
    });
    let summary = crate::run::run(&settings, ActivityWebhook { config }, shutdown).await?;
    if let Some(task) = starting {
        if !task.is_finished() {
            task.abort();
        } else if let Ok(Err(e)) = task.await {
            return Err(e);
        }
    }
    Ok(finish(summary, settings.summary))
}

/// How the receiver learns its webhook id.
enum Target {
    /// `--register URL`: from X, once registered (or validated).
    Register(String),
    /// `--webhook-id ID`.
    Known(String),
}

/// What the receiver does once it listens: register, then replay what it missed.
struct OnStart {
    listen: String,
    base: String,
    memory: Arc<WebhookMemory>,
    replay: ReplayOnStart,
}

impl OnStart {
    async fn run(self, target: Target, shutdown: CancellationToken) -> Result<(), Error> {
        let id = match target {
            Target::Register(url) => {
                register_when_listening(&self.listen, &self.base, &url, shutdown).await?
            }
            Target::Known(id) => {
                let limit = Duration::from_secs(30);
                if !wait_listening(&self.listen, limit).await {
                    return Ok(());
                }
                id
            }
        };
        let api = match self.replay.enabled {
            true => WebhooksApi::new(&self.base, Some(bearer()?))?,
            false => WebhooksApi::new(&self.base, None)?,
        };
        replay_on_start(&api, &self.memory, &id, &self.replay).await;
        Ok(())
    }
}

/// `--register URL`: once the server answers, registers the URL (or validates
/// the webhook X has for it); on failure, stops the run.
async fn register_when_listening(
    listen: &str,
    base: &str,
    url: &str,
    shutdown: CancellationToken,
) -> Result<String, Error> {
    let limit = std::time::Duration::from_secs(30);
    if !wait_listening(listen, limit).await {
        shutdown.cancel();
        return Err(Error::Usage(format!(
            "--register: nothing listens on {listen} after {limit:?}"
        )));
    }
    match register_or_validate(base, url).await {
        Ok(hook) => Ok(hook.id),
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

fn bearer() -> Result<Secret, Error> {
    Secret::from_env(&BEARER_TOKEN_VARS).ok_or_else(|| {
        Error::MissingSecret(
            "no X bearer token: set TWITTER_BEARER_TOKEN (or BEARER_TOKEN); the webhook endpoints use the app's bearer token".into(),
        )
    })
}

fn user_credentials() -> Result<UserCredentials, Error> {
    UserCredentials::from_env().map_err(Error::MissingSecret)
}

/// Runs one management action; prints its result on stdout.
pub async fn manage(action: WebhookAction, loaded: &LoadedConfig) -> Result<u8, Error> {
    let base = api_base(
        action.common().twitter_api_base.as_deref(),
        &loaded.file.twitter,
    );
    let timeout = action.common().api_timeout;
    let mut out = Vec::new();
    let w = |out: &mut Vec<u8>, line: String| writeln!(out, "{line}").expect("writing to a Vec");
    match action {
        WebhookAction::Register { url, .. } => {
            let api = WebhooksApi::with_timeout(&base, Some(bearer()?), timeout)?;
            w(&mut out, api.register(&url).await?.line());
        }
        WebhookAction::List { json, .. } => {
            let hooks = WebhooksApi::with_timeout(&base, Some(bearer()?), timeout)?
                .list()
                .await?;
            if json {
                w(
                    &mut out,
                    serde_json::json!({ "webhooks": hooks }).to_string(),
                );
            } else {
                hooks.iter().for_each(|h| w(&mut out, h.line()));
            }
        }
        WebhookAction::Validate { id, .. } => {
            WebhooksApi::with_timeout(&base, Some(bearer()?), timeout)?
                .validate(&id)
                .await?;
            w(&mut out, format!("{id}\tvalid"));
        }
        WebhookAction::Replay { id, from, to, .. } => {
            let api = WebhooksApi::with_timeout(&base, Some(bearer()?), timeout)?;
            w(
                &mut out,
                replay_by_hand(&api, &id, &from, to.as_deref()).await?,
            );
        }
        WebhookAction::Delete { id, .. } => {
            WebhooksApi::with_timeout(&base, Some(bearer()?), timeout)?
                .delete(&id)
                .await?;
            w(&mut out, format!("{id}\tdeleted"));
        }
        WebhookAction::Subscribe { id, .. } => {
            let creds = user_credentials()?;
            let done = WebhooksApi::with_timeout(&base, None, timeout)?
                .subscribe(&id, &creds)
                .await?;
            let state = if done { "subscribed" } else { "not subscribed" };
            w(&mut out, format!("{id}\t{state}"));
        }
        WebhookAction::Unsubscribe { id, user_id, .. } => {
            let api = WebhooksApi::with_timeout(&base, Some(bearer()?), timeout)?;
            api.unsubscribe(&id, &user_id).await?;
            w(&mut out, format!("{id}\t{user_id}\tunsubscribed"));
        }
        WebhookAction::Subscriptions { id, json, .. } => {
            let list = WebhooksApi::with_timeout(&base, Some(bearer()?), timeout)?
                .subscriptions(&id)
                .await?;
            if json {
                w(&mut out, serde_json::to_string(&list).expect("serializes"));
            } else {
                list.subscriptions
                    .iter()
                    .for_each(|s| w(&mut out, s.user_id.clone()));
            }
        }
        other => activity_and_links(other, &base, timeout, &mut out).await?,
    }
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| Error::Usage(format!("cannot write to standard output: {e}")))?;
    Ok(crate::exit_codes::SUCCESS)
}

/// `twitter-webhook replay ID --from T [--to T]`: the job's line.
async fn replay_by_hand(
    api: &WebhooksApi,
    id: &str,
    from: &str,
    to: Option<&str>,
) -> Result<String, Error> {
    let now = chrono::Utc::now();
    let time =
        |flag: &str, t: &str| parse_time(t, now).map_err(|e| Error::Usage(format!("{flag}: {e}")));
    let from = time("--from", from)?;
    let to = to.map_or(Ok(now), |t| time("--to", t))?;
    Ok(api.replay(id, from, to).await?.line())
}

/// The X Activity API and filtered-stream link actions.
async fn activity_and_links(
    action: WebhookAction,
    base: &str,
    timeout: Duration,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let api = WebhooksApi::with_timeout(base, Some(bearer()?), timeout)?;
    let mut w = |line: String| writeln!(out, "{line}").expect("writing to a Vec");
    match action {
        WebhookAction::ActivitySubscribe {
            id,
            event_type,
            user_id,
            keyword,
            tag,
            ..
        } => {
            let new = NewActivitySubscription {
                event_type,
                user_id,
                keyword,
                tag,
                webhook_id: id,
            };
            w(api.activity_subscribe(&new).await?.line());
        }
        WebhookAction::ActivitySubscriptions { json, .. } => {
            let subs = api.activity_subscriptions().await?;
            if json {
                w(serde_json::json!({ "subscriptions": subs }).to_string());
            } else {
                subs.iter().for_each(|s| w(s.line()));
            }
        }
        WebhookAction::ActivityUnsubscribe {
            subscription_id, ..
        } => {
            api.activity_unsubscribe(&subscription_id).await?;
            w(format!("{subscription_id}\tdeleted"));
        }
        WebhookAction::StreamLink {
            id,
            tweet_fields,
            expansions,
            user_fields,
            ..
        } => {
            let d = LinkFields::default();
            let fields = LinkFields {
                tweet_fields: tweet_fields.unwrap_or(d.tweet_fields),
                expansions: expansions.unwrap_or(d.expansions),
                user_fields: user_fields.unwrap_or(d.user_fields),
            };
            api.stream_link(&id, &fields).await?;
            w(format!("{id}\tlinked"));
        }
        WebhookAction::StreamLinks { json, .. } => {
            let links = api.stream_links().await?;
            if json {
                w(serde_json::json!({ "links": links }).to_string());
            } else {
                for l in links {
                    let field = |k: &str| l[k].as_str().unwrap_or("").to_owned();
                    w(format!(
                        "{}\t{}\t{}",
                        field("webhook_id"),
                        field("instance_id"),
                        field("created_at")
                    ));
                }
            }
        }
        WebhookAction::StreamUnlink { id, .. } => {
            api.stream_unlink(&id).await?;
            w(format!("{id}\tunlinked"));
        }
        _ => unreachable!("the webhook and Account Activity actions are handled by `run`"),
    }
    Ok(())
}

/// `--register URL`: validates the webhook X already has for `url`, or registers it.
pub async fn register_or_validate(base: &str, url: &str) -> Result<WebhookConfig, Error> {
    let api = WebhooksApi::new(base, Some(bearer()?))?;
    let existing = api.list().await?.into_iter().find(|h| h.url == url);
    let hook = match existing {
        Some(mut hook) => {
            api.validate(&hook.id).await?;
            hook.valid = true;
            info!(id = %hook.id, url, "webhook already registered; CRC check passed again");
            hook
        }
        None => {
            let hook = api.register(url).await?;
            info!(id = %hook.id, url, "webhook registered (CRC check passed)");
            hook
        }
    };
    Ok(hook)
}

/// Waits until something accepts connections on `listen` (the server's own
/// address; an unspecified IP is reached through loopback).
pub async fn wait_listening(listen: &str, limit: Duration) -> bool {
    let target = match listen.parse::<std::net::SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() => {
            let ip: std::net::IpAddr = if a.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            };
            std::net::SocketAddr::new(ip, a.port()).to_string()
        }
        _ => listen.to_owned(),
    };
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(&target).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
