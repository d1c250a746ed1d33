//! The `file` sink with `format = "parquet"`: every batch becomes one
//! complete Parquet file per platform, a new part of the rendered path
//! (`x.parquet`, `x.1.parquet`, …), written under a hidden temporary name,
//! fsynced, then linked to its final name (never replacing a file) and
//! the directory fsynced. A reader never sees half a file; a kill leaves at
//! most a temporary file, which the next run in that directory removes.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use tracing::{debug, warn};

use super::config::{FileSinkConfig, PathTemplate, part_path};
use super::writer::io_error;
use crate::record::Record;
use crate::sinks::SinkError;
use crate::sinks::parquet::{self, ParquetOptions, temp_name, temp_owner};

/// Writes Parquet files; moved into `spawn_blocking` per batch.
pub(super) struct ParquetFiles {
    sink: String,
    pub(super) template: PathTemplate,
    options: ParquetOptions,
    fsync: bool,
    /// With several rule tags, a record goes into each tag's file.
    split_tags: bool,
    file_mode: u32,
    /// The next part number to try for each rendered path.
    next_part: HashMap<PathBuf, u32>,
    /// Directories this run has cleaned of crashed writers' temporary files.
    cleaned: HashSet<PathBuf>,
}

impl ParquetFiles {
    pub(super) fn new(sink: &str, template: PathTemplate, config: &FileSinkConfig) -> Self {
        ParquetFiles {
            sink: sink.to_owned(),
            template,
            options: config.parquet_options(),
            fsync: config.fsync,
            split_tags: config.split_tags,
            file_mode: config.file_mode.0,
            next_part: HashMap::new(),
            cleaned: HashSet::new(),
        }
    }

    /// Writes the batch as one file per rendered path (as the JSONL writer groups it); on any failure removes the
    /// files this batch already published, so its retry writes it once.
    pub(super) fn write(&mut self, batch: &[Arc<Record>]) -> Result<(), SinkError> {
        let now = Utc::now();
        let mut published = Vec::new();
        for (base, indexes) in super::writer::groups(&self.template, self.split_tags, batch, now) {
            let records: Vec<Arc<Record>> = indexes.iter().map(|&i| batch[i].clone()).collect();
            match self.publish(&base, &records) {
                Ok(path) => published.push(path),
                Err(e) => {
                    for path in published {
                        if let Err(err) = std::fs::remove_file(&path) {
                            warn!(file = %path.display(), error = %err, "cannot remove a file of a failed batch; its records will be written again");
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Writes `records` as the next free part of `base`; returns its path.
    fn publish(&mut self, base: &Path, records: &[Arc<Record>]) -> Result<PathBuf, SinkError> {
        let bytes = parquet::encode(records, self.options)
            .map_err(|e| SinkError::fatal(&self.sink, e.to_string()))?;
        let dir = match base.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| io_error(&self.sink, "cannot create directory", &dir, e))?;
        if self.cleaned.insert(dir.clone()) {
            remove_stale_temp_files(&dir);
        }
        let name = base
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(temp_name(&name, std::process::id()));
        let result = self
            .write_temp(&tmp, &bytes)
            .and_then(|()| self.link_next_part(&tmp, base));
        let _ = std::fs::remove_file(&tmp);
        let path = result?;
        if self.fsync {
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_error(&self.sink, "cannot fsync directory", &dir, e))?;
        }
        debug!(file = %path.display(), records = records.len(), bytes = bytes.len(), "parquet file written");
        Ok(path)
    }

    fn write_temp(&self, tmp: &Path, bytes: &[u8]) -> Result<(), SinkError> {
        let err = |what, e| io_error(&self.sink, what, tmp, e);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(self.file_mode)
            .open(tmp)
            .map_err(|e| err("cannot create", e))?;
        file.write_all(bytes).map_err(|e| err("cannot write", e))?;
        if self.fsync {
            file.sync_all().map_err(|e| err("cannot fsync", e))?;
        }
        Ok(())
    }

    /// Gives the temporary file the first free part name of `base`: a hard
    /// link fails rather than replace a file another run (or writer) made.
    fn link_next_part(&mut self, tmp: &Path, base: &Path) -> Result<PathBuf, SinkError> {
        let mut n = self.next_part.get(base).copied().unwrap_or(0);
        loop {
            let target = part_path(base, n);
            match std::fs::hard_link(tmp, &target) {
                Ok(()) => {
                    self.next_part.insert(base.to_owned(), n + 1);
                    return Ok(target);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
                // No hard links on this file system: rename, which a second
                // writer at the same instant could race.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::Unsupported | std::io::ErrorKind::PermissionDenied
                    ) && !target.exists() =>
                {
                    std::fs::rename(tmp, &target)
                        .map_err(|e| io_error(&self.sink, "cannot rename to", &target, e))?;
                    self.next_part.insert(base.to_owned(), n + 1);
                    return Ok(target);
                }
                Err(e) => return Err(io_error(&self.sink, "cannot link", &target, e)),
            }
        }
    }
}

/// Removes the temporary files of writers that are gone (a kill, a crash, a
/// full disk); a live process's (this one's too) are left alone.
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = temp_owner(&name.to_string_lossy()) else {
            continue;
        };
        if pid == std::process::id() || alive(pid) {
            continue;
        }
        let path = entry.path();
        match std::fs::remove_file(&path) {
            Ok(()) => {
                warn!(file = %path.display(), pid, "removed an unfinished Parquet file of a run that stopped; its records were never confirmed")
            }
            Err(e) => {
                warn!(file = %path.display(), error = %e, "cannot remove an unfinished Parquet file of a run that stopped")
            }
        }
    }
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
