//! `ingest mock twitter|telegram`: the built-in mock APIs, for demos and CI;
//! and the mocks that `--mock` starts in process. Both need the `mock` cargo
//! feature (on by default): without it they exit 78 saying how to get it back.

use std::io::Write;
use std::path::Path;

use tokio_util::sync::CancellationToken;

use crate::cli::{MockCommand, RunArgs};
use crate::config::{LoadedConfig, Settings};
use crate::run::Error;

#[cfg(feature = "mock")]
pub(super) use crate::mock::MockServer;

/// Why `--mock` and `ingest mock` fail in a build without the mock.
pub const COMPILED_OUT: &str = "the built-in mock APIs are not in this build of ingest: rebuild with `cargo build --release --features mock` (or with the default features)";

/// Stands for the mock server in a build without it: no value exists.
#[cfg(not(feature = "mock"))]
pub(super) enum MockServer {}

#[cfg(not(feature = "mock"))]
impl MockServer {
    pub fn base_url(&self) -> String {
        match *self {}
    }

    pub async fn stop(self) {
        match self {}
    }
}

/// The mock X API on `listen`, with the scenario file, if any.
#[cfg(feature = "mock")]
pub(super) async fn start_twitter(
    listen: &str,
    scenario: Option<&Path>,
) -> Result<MockServer, Error> {
    use crate::mock::twitter::Scenario;
    let scenario = scenario
        .map(Scenario::load)
        .transpose()?
        .unwrap_or_default();
    Ok(crate::mock::twitter::start(listen, scenario).await?)
}

/// The mock Telegram Bot API on `listen`, with the scenario file, if any.
#[cfg(feature = "mock")]
pub(super) async fn start_telegram(
    listen: &str,
    scenario: Option<&Path>,
) -> Result<MockServer, Error> {
    use crate::mock::telegram::TelegramScenario;
    let scenario = scenario
        .map(TelegramScenario::load)
        .transpose()?
        .unwrap_or_default();
    Ok(crate::mock::telegram::start(listen, scenario).await?)
}

#[cfg(not(feature = "mock"))]
pub(super) async fn start_twitter(_: &str, _: Option<&Path>) -> Result<MockServer, Error> {
    Err(Error::CompiledOut(COMPILED_OUT.to_owned()))
}

#[cfg(not(feature = "mock"))]
pub(super) async fn start_telegram(_: &str, _: Option<&Path>) -> Result<MockServer, Error> {
    Err(Error::CompiledOut(COMPILED_OUT.to_owned()))
}

/// `ingest mock twitter|telegram`: serves until a signal.
pub async fn run(command: MockCommand, shutdown: CancellationToken) -> Result<u8, Error> {
    let server = match command {
        MockCommand::Telegram(args) => {
            start_telegram(&args.listen, args.scenario.as_deref()).await?
        }
        MockCommand::Twitter(args) => start_twitter(&args.listen, args.scenario.as_deref()).await?,
    };
    print_url(&server.base_url());
    shutdown.cancelled().await;
    server.stop().await;
    Ok(crate::exit_codes::SUCCESS)
}

/// How many `--mock` runs' state dirs are kept (the newest), for a look at
/// their dead letters; older ones are removed when a new one starts.
const MOCK_STATE_KEPT: usize = 10;

/// A `--mock` run keeps its state apart: unless `--state-dir` (or
/// `INGEST_STATE_DIR`, or `state_dir` in the config) names one, a fresh
/// directory under `<state dir>/mock/`, so a demo run twice captures the
/// same both times and no mock checkpoint sits where a real run of the same
/// query would find it. Says so at start.
pub(super) fn keep_state_apart(settings: &mut Settings, run: &RunArgs, loaded: &LoadedConfig) {
    if run.state_dir.is_some() || loaded.file.state_dir.is_some() {
        return;
    }
    let parent = settings.state_dir.join("mock");
    prune(&parent, MOCK_STATE_KEPT - 1);
    let name = format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        std::process::id()
    );
    settings.state_dir = parent.join(name);
    tracing::info!(
        state_dir = %settings.state_dir.display(),
        "--mock: this run starts from nothing and keeps its checkpoints and dead letters apart (--state-dir to choose)"
    );
}

/// Removes all but the newest `keep` run directories under `parent`.
fn prune(parent: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let mut dirs: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(keep);
    for dir in &dirs[..excess] {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove an old --mock state dir");
        }
    }
}

/// The base URL on stdout, for scripts that start a mock on port 0.
fn print_url(url: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{url}");
    let _ = out.flush();
}
