//! `ingest twitter-search`: X recent or full-archive search, backfill then polling.

use tokio_util::sync::CancellationToken;

use super::finish;
use super::twitter::twitter_api_or_mock;
use crate::config::{LoadedConfig, Settings};
use crate::run::Error;

pub async fn run(
    args: crate::cli::TwitterSearchArgs,
    loaded: &LoadedConfig,
    shutdown: CancellationToken,
) -> Result<u8, Error> {
    let mut settings = Settings::resolve(&args.run, loaded)?;
    if args.mock {
        super::mock::keep_state_apart(&mut settings, &args.run, loaded);
    }
    let file = &loaded.file;
    let search = crate::sources::twitter::search::config::resolve(
        &args.flags(),
        &file.twitter_search,
        &file.twitter,
        loaded.at(),
    )?;
    settings.media = crate::media::config::resolve(&args.media.flags(), &file.media, loaded.at())?;
    let mut search = search;
    if settings.media.is_some() {
        search.config.fields.with_media();
    }
    let (api, mock) = twitter_api_or_mock(&search.mock, &search.api_base, "searching").await?;
    let source = crate::sources::twitter::search::TwitterSearch {
        api,
        config: search.config,
    };
    let result = crate::run::run(&settings, source, shutdown).await;
    if let Some(m) = mock {
        m.stop().await;
    }
    Ok(finish(result?, settings.summary))
}
