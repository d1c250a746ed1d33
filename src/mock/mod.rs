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

/// Reads a scenario file; errors name the file and the line.
pub(crate) fn load_scenario<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
) -> Result<T, MockError> {
    let text = std::fs::read_to_string(path).map_err(|source| MockError::ScenarioRead {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|sp| text[..sp.start.min(text.len())].matches('\n').count() + 1);
        MockError::Scenario {
            path: path.to_owned(),
            message: format!(
                "{}{}",
                line.map(|l| format!("line {l}: ")).unwrap_or_default(),
                e.message().trim()
            ),
        }
    })
}
