//! `ingest mock twitter|telegram`: the built-in mock APIs, for demos and CI.

use std::io::Write;

use tokio_util::sync::CancellationToken;

use crate::cli::MockCommand;
use crate::mock::telegram::TelegramScenario;
use crate::mock::twitter::Scenario;
use crate::run::Error;

/// `ingest mock twitter|telegram`: serves until a signal.
pub async fn run(command: MockCommand, shutdown: CancellationToken) -> Result<u8, Error> {
    let server = match command {
        MockCommand::Telegram(args) => {
            let scenario = args
                .scenario
                .as_deref()
                .map(TelegramScenario::load)
                .transpose()?
                .unwrap_or_default();
            crate::mock::telegram::start(&args.listen, scenario).await?
        }
        MockCommand::Twitter(args) => {
            let scenario = args
                .scenario
                .as_deref()
                .map(Scenario::load)
                .transpose()?
                .unwrap_or_default();
            crate::mock::twitter::start(&args.listen, scenario).await?
        }
    };
    print_url(&server.base_url());
    shutdown.cancelled().await;
    server.stop().await;
    Ok(crate::exit_codes::SUCCESS)
}

/// The base URL on stdout, for scripts that start a mock on port 0.
fn print_url(url: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{url}");
    let _ = out.flush();
}
