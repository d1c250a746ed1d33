//! The built-in mock APIs: for demos, for our tests, and for our users' CI.

pub mod media;
pub mod telegram;
pub mod twitter;

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// A running mock server.
pub struct MockServer {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl MockServer {
    /// The base URL to point a client at.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Errors starting a mock.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot read the scenario file {path}: {source}")]
    ScenarioRead {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("scenario file {path}: {message}")]
    Scenario {
        path: std::path::PathBuf,
        message: String,
    },
}

/// Reads a scenario file and checks it with `check`; errors name the file
/// (and the line where TOML says which).
pub(crate) fn load_scenario<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    check: impl FnOnce(&T) -> Result<(), &'static str>,
) -> Result<T, MockError> {
    let text = std::fs::read_to_string(path).map_err(|source| MockError::ScenarioRead {
        path: path.to_owned(),
        source,
    })?;
    let scenario_error = |message: String| MockError::Scenario {
        path: path.to_owned(),
        message,
    };
    let scenario: T = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|sp| text[..sp.start.min(text.len())].matches('\n').count() + 1);
        scenario_error(format!(
            "{}{}",
            line.map(|l| format!("line {l}: ")).unwrap_or_default(),
            e.message().trim()
        ))
    })?;
    check(&scenario).map_err(|message| scenario_error(message.into()))?;
    Ok(scenario)
}

/// Binds the mock's listener; `127.0.0.1:0` picks a port.
pub(crate) async fn bind(addr: &str) -> Result<(TcpListener, SocketAddr), MockError> {
    let bind_error = |source| MockError::Bind {
        addr: addr.to_owned(),
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

/// Serves `app` on `listener` until `shutdown` is cancelled; `what` names the
/// mock in the log line.
pub(crate) fn serve(
    listener: TcpListener,
    local: SocketAddr,
    app: axum::Router,
    shutdown: CancellationToken,
    what: &'static str,
) -> MockServer {
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(token.cancelled_owned())
            .await
    });
    info!(addr = %local, "{what} listening");
    MockServer {
        addr: local,
        shutdown,
        task,
    }
}

/// Locks a mock's state; a handler that panicked left it usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Milliseconds since `started`, as the call logs show them.
pub(crate) fn elapsed_ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}
