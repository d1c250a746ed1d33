//! The `ingest` binary: flags -> settings -> run -> exit code.

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use ingest::cli::{Cli, LogFormat};
use ingest::config::LoadedConfig;
use ingest::exit_codes;

/// mimalloc: records are allocated on the source's thread and freed on the sinks';
/// glibc's per-thread arenas make that pattern slow and fragmented.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // No transparent huge pages: mimalloc asks for them on its arenas, and a
    // 2 MiB page counts whole in the resident set however little of it is used
    // (87 MiB against 67 MiB peak RSS for the same X capture). Best effort: a
    // kernel without the option keeps its default.
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    // A file-size limit (`ulimit -f`, systemd's LimitFSIZE) is an error the
    // write reports (EFBIG), handled like a full disk, not a signal that
    // kills the process mid-batch without a word.
    // SAFETY: setting a signal's disposition to ignore, before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let mut cli = Cli::parse();
    if let Some(result) = ingest::cmd::without_config(&cli.command) {
        return ExitCode::from(result.unwrap_or_else(|e| fail(&e)));
    }
    let loaded = match LoadedConfig::load(ingest::cmd::config_path(&cli.command)) {
        Ok(l) => l,
        Err(e) => return ExitCode::from(fail(&e.into())),
    };
    let log_format = cli
        .log_format
        .or(loaded.file.log_format)
        .unwrap_or(LogFormat::Text);
    if let Some(run) = ingest::cmd::run_args_mut(&mut cli.command) {
        run.json_logs = log_format == LogFormat::Json;
    }
    init_logging(log_format);
    for line in &loaded.deprecations {
        warn!("{line}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ingest: cannot start the async runtime: {e}");
            return ExitCode::from(exit_codes::FAILURE);
        }
    };
    let shutdown = CancellationToken::new();
    // Install the handlers before any work starts: a SIGTERM that arrived
    // before the watcher task first ran would otherwise kill the process
    // without draining.
    let signals = runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Some((term, int)),
            _ => None,
        }
    });
    runtime.spawn(watch_signals(signals, shutdown.clone()));
    let result = runtime.block_on(ingest::cmd::run(cli.command, loaded, shutdown));
    // A blocking read of a terminal may still be pending: do not wait for it.
    runtime.shutdown_background();
    ExitCode::from(match result {
        Ok(code) => code,
        Err(e) => fail(&e),
    })
}

fn fail(e: &ingest::run::Error) -> u8 {
    let text = ingest::secret::redact(&e.to_string()).into_owned();
    eprintln!("ingest: {:#}", anyhow::Error::msg(text));
    e.exit_code()
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A log line that cannot be written (stderr closed) is dropped: reporting
    // it would panic in `eprintln!`, in whatever task logged — the signal
    // watcher's included, and the run would then ignore SIGTERM.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(ingest::progress::LogWriter)
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// First SIGINT/SIGTERM: stop and deliver. Second: abort with 130.
async fn watch_signals(
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
    shutdown: CancellationToken,
) {
    let Some((mut term, mut int)) = signals else {
        error!(
            "cannot install signal handlers; SIGINT/SIGTERM will kill the process without draining"
        );
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    warn!(
        signal = name,
        "stopping: delivering what was received (send the signal again to abort)"
    );
    shutdown.cancel();
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    error!(signal = name, "second signal: aborting without draining");
    std::process::exit(exit_codes::ABORTED.into());
}
