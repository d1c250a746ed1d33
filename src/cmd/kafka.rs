//! `ingest kafka`: records from a Kafka topic (the second stage), or exit 78
//! in a build without the `kafka` feature.

use tokio_util::sync::CancellationToken;

use crate::config::LoadedConfig;
#[cfg(feature = "kafka")]
use crate::config::Settings;
use crate::run::Error;

#[cfg(not(feature = "kafka"))]
pub async fn run(
    _args: crate::cli::KafkaArgs,
    _loaded: &LoadedConfig,
    _shutdown: CancellationToken,
) -> Result<u8, Error> {
    Err(Error::CompiledOut(
        crate::sources::kafka::COMPILED_OUT.to_owned(),
    ))
}

#[cfg(feature = "kafka")]
pub async fn run(
    args: crate::cli::KafkaArgs,
    loaded: &LoadedConfig,
    shutdown: CancellationToken,
) -> Result<u8, Error> {
    let settings = Settings::resolve(&args.run, loaded)?;
    let source = crate::sources::kafka::KafkaSource {
        settings: crate::sources::kafka::config::resolve(
            &args.flags(),
            &loaded.file.kafka,
            loaded.at(),
        )?,
    };
    let summary = crate::run::run(&settings, source, shutdown).await?;
    Ok(super::finish(summary, settings.summary))
}
