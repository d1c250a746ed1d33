//! The built-in mock APIs: for demos, for our tests, and for our users' CI.

pub mod telegram;
pub mod twitter;

use std::net::SocketAddr;

/// A running mock server.
pub struct MockServer {
    pub addr: SocketAddr,
    shutdown: tokio_util::sync::CancellationToken,
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
