//! The `stdout` sink: JSONL on standard output; a closed pipe stops the run.

use std::io::Write;
use std::sync::Arc;

use super::config::StdoutSinkConfig;
use crate::record::{Format, Record};
use crate::sinks::{Sink, SinkError};
/// Writes JSONL to standard output.
pub struct StdoutSink {
    name: String,
    format: Format,
}

impl StdoutSink {
    pub fn new(name: &str, config: &StdoutSinkConfig) -> Self {
        StdoutSink {
            name: name.to_owned(),
            format: config.format,
        }
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn target(&self) -> String {
        "standard output".to_owned()
    }

    async fn healthcheck(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    async fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<(), SinkError> {
        let (batch, format, name) = (batch.to_vec(), self.format, self.name.clone());
        tokio::task::spawn_blocking(move || {
            let mut buf = Vec::with_capacity(batch.len() * 512);
            for r in &batch {
                r.write_line(format, &mut buf);
            }
            let mut out = std::io::stdout().lock();
            out.write_all(&buf)
                .and_then(|_| out.flush())
                .map_err(|e| match e.kind() {
                    // The reader left (`| head`): stop the run, as a Unix tool would on SIGPIPE.
                    std::io::ErrorKind::BrokenPipe => SinkError::Closed {
                        sink: name.clone(),
                        source: "standard output was closed by its reader (broken pipe)".into(),
                    },
                    _ => {
                        SinkError::retryable(&name, format!("cannot write to standard output: {e}"))
                    }
                })
        })
        .await
        .map_err(|e| SinkError::fatal(&self.name, format!("the stdout writer panicked: {e}")))?
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
