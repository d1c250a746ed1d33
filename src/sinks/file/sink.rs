//! The `file` sink's client: JSONL (or Parquet) files from a path template,
//! rotation, gzip, fsync.

use std::path::Path;
use std::sync::Arc;

#[cfg(feature = "parquet")]
use super::parquet;
use super::writer::{Writer, io_error};
use super::{FileSinkConfig, PathTemplate};
use crate::record::Record;
use crate::sinks::{Sink, SinkError};

/// Writes JSONL files (or Parquet files, with `format = "parquet"`).
pub struct FileSink {
    name: String,
    writer: Option<Box<Writer>>,
    #[cfg(feature = "parquet")]
    parquet: Option<Box<parquet::ParquetFiles>>,
}

impl FileSink {
    pub fn new(name: &str, config: FileSinkConfig) -> Result<Self, String> {
        config.validate().map_err(|(f, m)| format!("`{f}` {m}"))?;
        let template = PathTemplate::parse(&config.path_template())?;
        Ok(FileSink {
            name: name.to_owned(),
            #[cfg(feature = "parquet")]
            parquet: config
                .format
                .is_parquet()
                .then(|| Box::new(parquet::ParquetFiles::new(name, template.clone(), &config))),
            writer: Some(Box::new(Writer::new(name, template, config))),
        })
    }

    /// Runs `f` on the writer off the async threads.
    async fn with_writer<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Writer) -> Result<T, SinkError> + Send + 'static,
    ) -> Result<T, SinkError> {
        blocking(&self.name, &mut self.writer, f).await
    }
}

/// Runs `f` on the writer in `slot` off the async threads, and puts it back.
async fn blocking<W: Send + 'static, T: Send + 'static>(
    name: &str,
    slot: &mut Option<Box<W>>,
    f: impl FnOnce(&mut W) -> Result<T, SinkError> + Send + 'static,
) -> Result<T, SinkError> {
    let mut writer = slot
        .take()
        .ok_or_else(|| SinkError::fatal(name, "the writer was lost after a panic"))?;
    let (writer, result) = tokio::task::spawn_blocking(move || {
        let r = f(&mut writer);
        (writer, r)
    })
    .await
    .map_err(|e| SinkError::fatal(name, format!("the file writer panicked: {e}")))?;
    *slot = Some(writer);
    result
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn target(&self) -> String {
        match &self.writer {
            Some(w) => format!("{}/ writable", w.template.fixed_dir().display()),
            None => "writable".to_owned(),
        }
    }

    async fn healthcheck(&mut self) -> Result<(), SinkError> {
        let name = self.name.clone();
        self.with_writer(move |w| {
            let dir = w.template.fixed_dir();
            std::fs::create_dir_all(&dir)
                .map_err(|e| io_error(&name, "cannot create directory", &dir, e))?;
            writable(&dir).map_err(|e| io_error(&name, "cannot write in", &dir, e))?;
            Ok(())
        })
        .await
    }

    async fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<(), SinkError> {
        let batch = batch.to_vec();
        #[cfg(feature = "parquet")]
        if self.parquet.is_some() {
            return blocking(&self.name, &mut self.parquet, move |p| p.write(&batch)).await;
        }
        self.with_writer(move |w| w.write(&batch)).await
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.with_writer(|w| w.sync_all()).await
    }
}

/// Fails unless the current user may create files in `dir`.
fn writable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let rc = unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests;
