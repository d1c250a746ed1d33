//! `ingest replay FILE|-`: a capture file back through the sinks.

use tokio_util::sync::CancellationToken;

use super::finish;
use crate::config::{LoadedConfig, ReplaySettings, Settings};
use crate::run::Error;
use crate::sources::replay::ReplaySource;

pub async fn run(
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
    let summary = crate::run::run(&settings, source, shutdown).await?;
    Ok(finish(summary, settings.summary))
}
