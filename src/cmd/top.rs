//! `ingest top`: scrapes a running ingest's `/metrics` and shows it, live
//! (redrawn every `--interval` until `q`) or once (`--once`: two scrapes an
//! interval apart, printed as plain text on stdout).

use std::time::{Duration, Instant};

use crate::cli::TopArgs;
use crate::run::Error;
use crate::top::{self, Frame, Sample, TopError, term};

/// The refresh interval without `--interval`.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Runs the view to its end; the exit code.
pub fn run(args: &TopArgs) -> Result<u8, Error> {
    let url = top::metrics_url(&args.url)?;
    let interval = args.interval.unwrap_or(DEFAULT_INTERVAL);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TopError::Runtime)?;
    let client = reqwest::Client::new();
    if args.once {
        let text = runtime.block_on(async {
            let first = top::fetch(&client, &url).await?;
            tokio::time::sleep(interval).await;
            let second = top::fetch(&client, &url).await?;
            Ok::<_, TopError>(top::render(
                &Frame::new(Some(&first), &second),
                url.as_str(),
            ))
        })?;
        return Ok(super::man::write_stdout(text.as_bytes()));
    }
    let terminal = term::Terminal::enter()
        .map_err(TopError::Terminal)?
        .ok_or(TopError::NoTerminal)?;
    let mut last: Option<Sample> = None;
    loop {
        let text = match runtime.block_on(top::fetch(&client, &url)) {
            Ok(sample) => {
                let text = top::render(&Frame::new(last.as_ref(), &sample), url.as_str());
                last = Some(sample);
                text
            }
            // The run may be restarting: say so and keep trying.
            Err(e) => format!("ingest top  {url}\n\n{e}\n"),
        };
        term::redraw(&text).map_err(TopError::Terminal)?;
        if wait_for_quit(&terminal, interval)? {
            return Ok(crate::exit_codes::SUCCESS);
        }
    }
}

/// Waits out `interval`; true when a quit key came first.
fn wait_for_quit(terminal: &term::Terminal, interval: Duration) -> Result<bool, TopError> {
    let until = Instant::now() + interval;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        match terminal.key(left).map_err(TopError::Terminal)? {
            Some(k) if term::is_quit(k) => return Ok(true),
            _ => {}
        }
    }
}
