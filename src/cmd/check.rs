//! `ingest check`: the config, each sink and the source's credentials, one
//! line each on stdout (it is data); exit 1 if any line fails.

use std::io::Write;
use std::time::Duration;

use crate::cli::{CheckArgs, RunArgs, SourceArg};
use crate::config::{LoadedConfig, Settings};
use crate::exit_codes;
use crate::run::{Error, build_sink};
use crate::secret::Secret;
use crate::sinks::Sink;
use crate::sources::telegram::api::TelegramApi;
use crate::sources::twitter::api::TwitterApi;
use crate::sources::twitter::api_base;

/// The longest one check may take (the Kafka metadata request gives up after 5 s).
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// The outcome of one check: a line of `ingest check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    pub ok: bool,
    /// `sink lake (file)`, `source twitter`, `config`.
    pub what: String,
    pub detail: String,
}

impl std::fmt::Display for CheckLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = if self.ok { "ok  " } else { "FAIL" };
        write!(f, "{status} {}: {}", self.what, self.detail)
    }
}

fn emit(line: CheckLine, all_ok: &mut bool) {
    *all_ok &= line.ok;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", crate::secret::redact(&line.to_string()));
    let _ = out.flush();
}

/// The sinks `check` tries: those named, else `default_sinks` and every config table.
fn sink_names(args: &CheckArgs, loaded: &LoadedConfig) -> Vec<String> {
    if !args.sinks.is_empty() {
        return args.sinks.clone();
    }
    let mut names = loaded.file.default_sinks.clone();
    for name in loaded.file.sinks.keys() {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// `ingest check`: validates the config, then tries every sink and source.
/// Exit 0 only if every check passed; config errors keep their exit code (78).
pub async fn run(args: &CheckArgs, loaded: &LoadedConfig) -> Result<u8, Error> {
    let names = sink_names(args, loaded);
    let media = crate::media::config::resolve(
        &crate::media::MediaFlags {
            media: args.media,
            video: None,
        },
        &loaded.file.media,
        loaded.at(),
    )?;
    if names.is_empty() && args.sources.is_empty() && media.is_none() {
        return Err(Error::Usage(
            "nothing to check: name sinks with --sink or sources with --source, add --media, or define [sinks.NAME] tables in the config".into(),
        ));
    }
    let sinks = if names.is_empty() {
        Vec::new()
    } else {
        let run = RunArgs {
            sinks: names,
            config: args.config.clone(),
            built_in: args.built_in.clone(),
            ..RunArgs::default()
        };
        Settings::resolve(&run, loaded)?.sinks
    };
    let mut all_ok = true;
    emit(
        CheckLine {
            ok: true,
            what: "config".into(),
            detail: match &loaded.path {
                Some(p) => format!("{} valid", p.display()),
                None => "no config file; built-in defaults".into(),
            },
        },
        &mut all_ok,
    );
    for named in &sinks {
        emit(check_sink(named).await, &mut all_ok);
    }
    if let Some(media) = &media {
        emit(check_media(media).await, &mut all_ok);
    }
    for source in &args.sources {
        emit(check_source(*source, args, loaded).await, &mut all_ok);
    }
    Ok(if all_ok {
        exit_codes::SUCCESS
    } else {
        exit_codes::FAILURE
    })
}

/// Builds a sink and runs its healthcheck, bounded by [`CHECK_TIMEOUT`].
async fn check_sink(named: &crate::config::NamedSink) -> CheckLine {
    let what = format!("sink {} ({})", named.name, named.config.type_name());
    let (ok, detail) = match build_sink(named) {
        Err(e) => {
            let e = e.to_string();
            let prefix = format!("sink `{}`: ", named.name);
            (false, e.strip_prefix(&prefix).unwrap_or(&e).to_owned())
        }
        Ok(mut sink) => {
            let result = tokio::time::timeout(CHECK_TIMEOUT, sink.healthcheck()).await;
            let target = sink.target();
            // A Kafka producer may block a moment on drop: not on the async threads.
            let _ = tokio::task::spawn_blocking(move || drop(sink)).await;
            match result {
                Ok(Ok(())) => (true, target),
                // Retryable or not: `check` wants the destination working now.
                Ok(Err(e)) => (false, e.cause()),
                Err(_) => (false, no_answer()),
            }
        }
    };
    CheckLine { ok, what, detail }
}

/// The media store: a probe object written, read back and deleted, bounded by [`CHECK_TIMEOUT`].
async fn check_media(media: &crate::media::MediaSettings) -> CheckLine {
    let kind = match media.store {
        crate::media::config::StoreSettings::File => "file",
        crate::media::config::StoreSettings::S3 { .. } => "s3",
    };
    let what = format!("media store ({kind})");
    let (ok, detail) = match crate::media::MediaStore::new(&media.store) {
        Err(e) => (false, e),
        Ok(store) => {
            let probe = store.probe(media.path.static_dir());
            match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
                Ok(Ok(done)) => (true, done),
                Ok(Err(e)) => (false, e.to_string()),
                Err(_) => (false, no_answer()),
            }
        }
    };
    CheckLine { ok, what, detail }
}

/// Tries a source's credentials and endpoint, bounded by [`CHECK_TIMEOUT`].
async fn check_source(source: SourceArg, args: &CheckArgs, loaded: &LoadedConfig) -> CheckLine {
    let (what, result) = match source {
        SourceArg::Twitter => (
            "source twitter",
            tokio::time::timeout(CHECK_TIMEOUT, check_twitter(args, loaded)).await,
        ),
        SourceArg::Telegram => (
            "source telegram",
            tokio::time::timeout(CHECK_TIMEOUT, check_telegram(args, loaded)).await,
        ),
        SourceArg::Kafka => (
            "source kafka",
            tokio::time::timeout(
                CHECK_TIMEOUT,
                crate::sources::kafka::check(&loaded.file.kafka),
            )
            .await,
        ),
    };
    let (ok, detail) = match result {
        Ok(Ok(detail)) => (true, detail),
        Ok(Err(detail)) => (false, detail),
        Err(_) => (false, no_answer()),
    };
    CheckLine {
        ok,
        what: what.into(),
        detail,
    }
}

fn no_answer() -> String {
    format!("no answer within {}s", CHECK_TIMEOUT.as_secs())
}

/// X: the bearer token must list the stream rules.
async fn check_twitter(args: &CheckArgs, loaded: &LoadedConfig) -> Result<String, String> {
    let token = Secret::from_env(&crate::sources::twitter::api::BEARER_TOKEN_VARS).ok_or(
        "no X bearer token: set TWITTER_BEARER_TOKEN (or BEARER_TOKEN) in the environment",
    )?;
    let base = api_base(args.api.twitter_api_base.as_deref(), &loaded.file.twitter);
    let kind = loaded.file.twitter.stream.unwrap_or_default();
    if !kind.has_rules() {
        // Any probe of a volume or compliance stream opens a connection,
        // which could push out the running one (X's connection limit).
        let partition = crate::sources::twitter::stream::volume::check_partition(
            kind,
            loaded.file.twitter.partition,
        )?;
        return Ok(format!(
            "{} at {base}{}: bearer token set (not probed: a connection could push out a running one)",
            kind.label(),
            partition
                .map(|p| format!(", partition {p}"))
                .unwrap_or_default()
        ));
    }
    let api = TwitterApi::new(&base, token).map_err(|e| e.to_string())?;
    let rules = api.rules().await.map_err(|e| e.to_string())?;
    Ok(format!(
        "bearer token accepted by {} ({} live rule{})",
        api.base,
        rules.len(),
        if rules.len() == 1 { "" } else { "s" }
    ))
}

/// Telegram: `getMe` with the bot token.
async fn check_telegram(args: &CheckArgs, loaded: &LoadedConfig) -> Result<String, String> {
    let token = Secret::from_env(&["TELEGRAM_BOT_TOKEN"])
        .ok_or("no Telegram bot token: set TELEGRAM_BOT_TOKEN in the environment")?;
    let base = crate::sources::telegram::config::api_base(
        args.telegram_api_base.as_deref(),
        &loaded.file.telegram,
    );
    let api = TelegramApi::new(&base, token).map_err(|e| e.to_string())?;
    let me = api.get_me().await.map_err(|e| e.to_string())?;
    let username = serde_json::from_str::<serde_json::Value>(me.get())
        .ok()
        .and_then(|v| v["username"].as_str().map(str::to_owned));
    Ok(match username {
        Some(u) => format!("bot @{u} answered getMe"),
        None => "the bot answered getMe".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_aligned() {
        let ok = CheckLine {
            ok: true,
            what: "sink lake (file)".into(),
            detail: "data/ writable".into(),
        };
        let fail = CheckLine {
            ok: false,
            what: "sink bus (kafka)".into(),
            detail: "no answer".into(),
        };
        assert_eq!(ok.to_string(), "ok   sink lake (file): data/ writable");
        assert_eq!(fail.to_string(), "FAIL sink bus (kafka): no answer");
    }
}
