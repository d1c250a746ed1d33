//! `ingest replay FILE|-`: a capture file back through the sinks.

use tokio_util::sync::CancellationToken;

use super::finish;
use crate::config::{LoadedConfig, Settings};
use crate::run::Error;

pub async fn run(
    args: crate::cli::ReplayArgs,
    loaded: &LoadedConfig,
    shutdown: CancellationToken,
) -> Result<u8, Error> {
    let settings = Settings::resolve(&args.run, loaded)?;
    let source = crate::sources::replay::resolve(&args.flags(), &loaded.file.replay, loaded.at())?;
    let summary = crate::run::run(&settings, source, shutdown).await?;
    Ok(finish(summary, settings.summary))
}
