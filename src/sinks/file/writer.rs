//! The blocking writer behind the `file` sink: open files, rotation, gzip
//! members, fsync, and the all-or-nothing batch (undo on failure).

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use tracing::{error, warn};

use super::config::{FileSinkConfig, PathTemplate, part_path};
use super::torn::repair_torn_tail;
use crate::record::{Platform, Record};
use crate::sinks::SinkError;
use crate::sinks::template::copies;

/// Serialized bytes gathered before one `write(2)`.
pub(super) const WRITE_CHUNK: usize = 1024 * 1024;

struct OpenFile {
    file: File,
    path: PathBuf,
    part: u32,
    size: u64,
    last_used: u64,
    /// This run created it (undoing a first write removes it).
    created: bool,
}

/// A file the current batch wrote to, and how to undo that.
#[derive(Debug)]
struct Touched {
    path: PathBuf,
    /// Its length before the batch.
    len: u64,
    /// The batch created it: undoing removes it.
    created: bool,
}

/// Faults injected by the tests: a disk that fills up, a truncate that fails.
#[cfg(test)]
#[derive(Debug, Default)]
pub(super) struct Faults {
    /// Bytes that may still be written; past them a write stops short and fails with ENOSPC.
    pub(super) write_budget: Option<usize>,
    /// Undos (truncates) that fail before they work again.
    pub(super) failing_undos: u32,
}

/// Open files and what the blocking writer needs; moved into `spawn_blocking` per batch.
///
/// A batch is all-or-nothing: every file it touches (several parts when it
/// rotates, one per platform) is cut back to its length before the batch if any
/// write or fsync of the batch fails, so a retry never glues onto a fragment.
/// If even the cut fails, the file is remembered as owing it: no byte is
/// appended to it until the cut has been made.
pub(super) struct Writer {
    sink: String,
    pub(super) template: PathTemplate,
    config: FileSinkConfig,
    /// At most `config.max_open_files`; the least recently used is closed
    /// before another is opened, in the middle of a batch too (every file a
    /// batch is done with is written and fsynced, and its undo goes by path).
    open: HashMap<PathBuf, OpenFile>,
    /// Counts appends: a file's `last_used` is the tick of its last one.
    tick: u64,
    /// One serialized record (reused).
    buf: Vec<u8>,
    /// Serialized records waiting for one `write` (reused).
    pending: Vec<u8>,
    /// Files the current batch wrote to.
    journal: Vec<Touched>,
    /// Files checked for a torn tail (and repaired) by this run.
    checked: HashSet<PathBuf>,
    /// Files a failed batch could not be cut back yet: the length they owe.
    dirty: HashMap<PathBuf, Touched>,
    #[cfg(test)]
    pub(super) faults: Faults,
}

pub(super) fn io_error(sink: &str, what: &str, path: &Path, e: std::io::Error) -> SinkError {
    use std::io::ErrorKind::*;
    let err = format!("{what} {}: {e}", path.display());
    match e.kind() {
        PermissionDenied | ReadOnlyFilesystem | NotADirectory | IsADirectory | InvalidFilename
        | FileTooLarge => SinkError::fatal(sink, err),
        _ => SinkError::retryable(sink, err),
    }
}

impl Writer {
    pub(super) fn new(sink: &str, template: PathTemplate, config: FileSinkConfig) -> Self {
        Writer {
            sink: sink.to_owned(),
            template,
            config,
            open: HashMap::new(),
            tick: 0,
            buf: Vec::with_capacity(4096),
            pending: Vec::with_capacity(WRITE_CHUNK + 64 * 1024),
            journal: Vec::new(),
            checked: HashSet::new(),
            dirty: HashMap::new(),
            #[cfg(test)]
            faults: Faults::default(),
        }
    }

    pub(super) fn write(&mut self, batch: &[Arc<Record>]) -> Result<(), SinkError> {
        self.retry_undos();
        match self.write_platforms(batch) {
            Ok(()) => {
                self.journal.clear();
                Ok(())
            }
            Err(e) => {
                self.roll_back();
                Err(e)
            }
        }
    }

    fn write_platforms(&mut self, batch: &[Arc<Record>]) -> Result<(), SinkError> {
        let now = Utc::now();
        // Each file's records in turn, serialized into a reused buffer and written in chunks.
        for (base, indexes) in groups(&self.template, self.config.split_tags, batch, now) {
            let records = indexes.iter().map(|&i| &batch[i]);
            let mut buf = std::mem::take(&mut self.buf);
            let mut gz = self
                .config
                .gzip
                .then(|| GzEncoder::new(Vec::with_capacity(WRITE_CHUNK), Compression::default()));
            let mut result = Ok(());
            for r in records {
                if let Some(enc) = gz.as_mut() {
                    buf.clear();
                    r.write_line(self.config.format.lines(), &mut buf);
                    enc.write_all(&buf).expect("writing to a Vec cannot fail");
                    continue;
                }
                // Serialized straight into the write buffer: no copy per record.
                r.write_line(self.config.format.lines(), &mut self.pending);
                if self.pending.len() >= WRITE_CHUNK {
                    result = self.write_pending(&base);
                    if result.is_err() {
                        break;
                    }
                }
            }
            self.buf = buf;
            if let Some(enc) = gz {
                // One gzip member per batch: a failed batch is cut off whole.
                self.pending = enc
                    .finish()
                    .expect("finishing a gzip stream into a Vec cannot fail");
            }
            result.and_then(|_| self.write_pending(&base))?;
            if self.config.fsync {
                self.sync(&base)?;
            }
        }
        Ok(())
    }

    /// Cuts every file the failed batch touched back to its length before the
    /// batch and closes it (the next batch reopens it and reads its size anew).
    fn roll_back(&mut self) {
        self.pending.clear();
        let journal = std::mem::take(&mut self.journal);
        self.open
            .retain(|_, of| !journal.iter().any(|t| t.path == of.path));
        for t in journal {
            if let Err(e) = self.undo(&t) {
                error!(file = %t.path.display(), len = t.len, error = %e,
                    "cannot cut the file back after a failed write; nothing more is written to it until that works");
                self.dirty.insert(t.path.clone(), t);
            }
        }
    }

    /// Cuts a file back to `t.len` (removes it if the batch created it).
    fn undo(&mut self, t: &Touched) -> std::io::Result<()> {
        #[cfg(test)]
        if self.faults.failing_undos > 0 {
            self.faults.failing_undos -= 1;
            return Err(std::io::Error::other("injected truncate failure"));
        }
        if t.created && t.len == 0 {
            match std::fs::remove_file(&t.path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(_) => {} // try to empty it instead
            }
        }
        let file = match OpenOptions::new().write(true).open(&t.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && t.len == 0 => return Ok(()),
            f => f?,
        };
        if file.metadata()?.len() > t.len {
            file.set_len(t.len)?;
            file.sync_data()?;
        }
        Ok(())
    }

    /// Tries again the cuts that failed before.
    fn retry_undos(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        for (path, t) in dirty {
            match self.undo(&t) {
                Ok(()) => {
                    warn!(file = %path.display(), len = t.len, "cut the file back after the failed write")
                }
                Err(_) => {
                    self.dirty.insert(path, t);
                }
            }
        }
    }

    /// Appends the pending bytes to the file for `base` (rotating first if needed).
    fn write_pending(&mut self, base: &Path) -> Result<(), SinkError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let result = self.append(base, &pending);
        self.pending = pending;
        self.pending.clear();
        if self.pending.capacity() > 4 * WRITE_CHUNK {
            self.pending.shrink_to(WRITE_CHUNK);
        }
        result
    }

    fn sync(&mut self, base: &Path) -> Result<(), SinkError> {
        let sink = self.sink.clone();
        if let Some(of) = self.open.get_mut(base) {
            of.file
                .sync_data()
                .map_err(|e| io_error(&sink, "cannot fsync", &of.path, e))?;
        }
        Ok(())
    }

    fn append(&mut self, base: &Path, bytes: &[u8]) -> Result<(), SinkError> {
        let max = self.config.max_file_bytes;
        self.tick += 1;
        if !self.open.contains_key(base) {
            self.make_room();
            let of = self.open_part(base, 0, bytes.len() as u64)?;
            self.open.insert(base.to_owned(), of);
        }
        let rotate = {
            let of = &self.open[base];
            max > 0 && of.size > 0 && of.size + bytes.len() as u64 > max
        };
        if rotate {
            let old = self.open.remove(base).expect("present");
            if self.config.fsync {
                old.file
                    .sync_data()
                    .map_err(|e| io_error(&self.sink, "cannot fsync", &old.path, e))?;
            }
            let next = self.open_part(base, old.part + 1, bytes.len() as u64)?;
            self.open.insert(base.to_owned(), next);
        }
        let (sink, tick) = (self.sink.clone(), self.tick);
        let of = self.open.get_mut(base).expect("present");
        if !self.journal.iter().any(|t| t.path == of.path) {
            self.journal.push(Touched {
                path: of.path.clone(),
                len: of.size,
                created: of.created,
            });
        }
        #[cfg(test)]
        if let Some(budget) = self.faults.write_budget.as_mut() {
            if bytes.len() > *budget {
                let short = std::mem::take(budget);
                of.file.write_all(&bytes[..short]).expect("test write");
                return Err(io_error(
                    &sink,
                    "cannot write",
                    &of.path,
                    std::io::ErrorKind::StorageFull.into(),
                ));
            }
            *budget -= bytes.len();
        }
        of.file
            .write_all(bytes)
            .map_err(|e| io_error(&sink, "cannot write", &of.path, e))?;
        of.size += bytes.len() as u64;
        of.last_used = tick;
        Ok(())
    }

    /// Opens part `part` or the first later part with room for `incoming` bytes.
    fn open_part(
        &mut self,
        base: &Path,
        mut part: u32,
        incoming: u64,
    ) -> Result<OpenFile, SinkError> {
        let max = self.config.max_file_bytes;
        if let Some(dir) = base.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| io_error(&self.sink, "cannot create directory", dir, e))?;
        }
        loop {
            let path = part_path(base, part);
            if let Some(t) = self.dirty.get(&path) {
                return Err(SinkError::retryable(
                    &self.sink,
                    format!(
                        "{} still holds part of a failed write that cannot be cut off yet (back to {} bytes)",
                        path.display(),
                        t.len
                    ),
                ));
            }
            let existed = std::fs::symlink_metadata(&path).is_ok();
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(self.config.file_mode.0)
                .open(&path)
                .map_err(|e| io_error(&self.sink, "cannot open", &path, e))?;
            let mut size = file
                .metadata()
                .map_err(|e| io_error(&self.sink, "cannot read the size of", &path, e))?
                .len();
            if !self.checked.contains(&path) {
                if size > 0 && file.metadata().is_ok_and(|m| m.is_file()) {
                    size = OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&path)
                        .and_then(|f| repair_torn_tail(&f, &path, size, self.config.gzip))
                        .map_err(|e| io_error(&self.sink, "cannot check the end of", &path, e))?;
                }
                self.checked.insert(path.clone());
            }
            if max == 0 || size == 0 || size + incoming <= max {
                return Ok(OpenFile {
                    file,
                    path,
                    part,
                    size,
                    last_used: self.tick,
                    created: !existed,
                });
            }
            part += 1;
        }
    }

    /// Closes the least recently used files until one more may be opened.
    fn make_room(&mut self) {
        while self.open.len() >= self.config.max_open_files.max(1) {
            let oldest = self
                .open
                .iter()
                .min_by_key(|(_, f)| f.last_used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.open.remove(&k);
                }
                None => return,
            }
        }
    }

    /// Files open now (for tests).
    #[cfg(test)]
    pub(super) fn open_files(&self) -> usize {
        self.open.len()
    }

    pub(super) fn sync_all(&mut self) -> Result<(), SinkError> {
        self.retry_undos();
        for of in self.open.values_mut() {
            of.file
                .sync_all()
                .map_err(|e| io_error(&self.sink, "cannot fsync", &of.path, e))?;
        }
        if let Some((path, t)) = self.dirty.iter().next() {
            return Err(SinkError::retryable(
                &self.sink,
                format!(
                    "{} still holds part of a failed write (it should be {} bytes long); cut it back before reading it",
                    path.display(),
                    t.len
                ),
            ));
        }
        Ok(())
    }
}

/// A batch's records grouped by file (JSONL and Parquet alike), in the order each file first
/// appears: one group per platform when the path names no record field,
/// else one per rendered path (a record with `split_tags` in each of its
/// tags' files).
pub(super) fn groups(
    template: &PathTemplate,
    split_tags: bool,
    batch: &[Arc<Record>],
    now: DateTime<Utc>,
) -> Vec<(PathBuf, Vec<usize>)> {
    let mut groups: Vec<(PathBuf, Vec<usize>)> = Vec::new();
    if template.platform_only() {
        // A batch mixes platforms only in `auto` replays.
        for platform in [Platform::Twitter, Platform::Telegram] {
            let idx: Vec<usize> = (0..batch.len())
                .filter(|&i| batch[i].platform == platform)
                .collect();
            if !idx.is_empty() {
                groups.push((template.render(platform, now), idx));
            }
        }
        return groups;
    }
    let mut index: HashMap<PathBuf, usize> = HashMap::new();
    for (i, tag) in copies(batch, split_tags) {
        let path = template.render_record(&batch[i], tag, now);
        match index.get(&path) {
            Some(&g) => groups[g].1.push(i),
            None => {
                index.insert(path.clone(), groups.len());
                groups.push((path, vec![i]));
            }
        }
    }
    groups
}
