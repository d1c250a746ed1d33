//! The `file` sink (JSONL files from a path template, rotation, gzip, fsync) and
//! the `stdout` sink.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Deserialize;
use tracing::{error, warn};

use super::common::{BatchConfig, RetryConfig, default_queue_capacity};
use super::{Sink, SinkError};
use crate::record::{Format, Platform, Record};

/// Default path template of the `file` sink.
pub const DEFAULT_PATH: &str = "ingest-{platform}-%Y-%m-%d.jsonl";
/// Serialized bytes gathered before one `write(2)`.
const WRITE_CHUNK: usize = 1024 * 1024;
/// Files kept open at once; the least recently used beyond this are closed.
const MAX_OPEN_FILES: usize = 16;

/// `[sinks.NAME]` with `type = "file"`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Path template: strftime fields (UTC, at write time) and `{platform}`.
    #[serde(default = "default_path")]
    pub path: String,
    /// `record` (default) or `raw`.
    #[serde(default)]
    pub format: Format,
    /// Gzip each batch (one gzip member per batch; `gzip -d` and `zcat` read the file whole).
    #[serde(default)]
    pub gzip: bool,
    /// Start a new part (`name.1.jsonl`, `name.2.jsonl`, …) before a file would pass this size; 0 = never.
    #[serde(default)]
    pub max_file_bytes: u64,
    /// fsync every batch before confirming it (default true).
    #[serde(default = "yes")]
    pub fsync: bool,
    /// Permission bits of the files the sink creates (before the umask); default 0600.
    #[serde(default)]
    pub file_mode: FileMode,
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub retry: RetryConfig,
}

impl Default for FileSinkConfig {
    fn default() -> Self {
        FileSinkConfig {
            path: default_path(),
            format: Format::Record,
            gzip: false,
            max_file_bytes: 0,
            fsync: true,
            file_mode: FileMode::default(),
            queue_capacity: default_queue_capacity(),
            batch: BatchConfig::default(),
            retry: RetryConfig::default(),
        }
    }
}

/// `[sinks.NAME]` with `type = "stdout"`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {
    #[serde(default)]
    pub format: Format,
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub retry: RetryConfig,
}

impl Default for StdoutSinkConfig {
    fn default() -> Self {
        StdoutSinkConfig {
            format: Format::Record,
            queue_capacity: default_queue_capacity(),
            batch: BatchConfig::default(),
            retry: RetryConfig::default(),
        }
    }
}

/// Permission bits of new files: `file_mode = "0640"` (an octal string) or
/// `file_mode = 0o640` (a TOML integer). The owner must keep read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode(pub u32);

/// Output files hold private chats: only their owner reads them unless told otherwise.
pub const DEFAULT_FILE_MODE: u32 = 0o600;

impl Default for FileMode {
    fn default() -> Self {
        FileMode(DEFAULT_FILE_MODE)
    }
}

impl FileMode {
    /// Parses `"0640"`, `"640"` or `"0o640"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let digits = t.strip_prefix("0o").unwrap_or(t);
        if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(format!(
                "`{text}` is not an octal file mode; write it like \"0640\""
            ));
        }
        let bits = u32::from_str_radix(digits, 8)
            .map_err(|_| format!("`{text}` is not a file mode (at most 0777)"))?;
        Self::from_bits(i64::from(bits), text)
    }

    fn from_bits(bits: i64, shown: &str) -> Result<Self, String> {
        if !(0..=0o777).contains(&bits) {
            let hint = if shown.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                format!(" (a decimal number; write \"0{shown}\" or 0o{shown})")
            } else {
                String::new()
            };
            return Err(format!(
                "file mode {shown} is out of range: at most 0777{hint}"
            ));
        }
        let bits = bits as u32;
        if bits & 0o600 != 0o600 {
            return Err(format!(
                "file mode {bits:04o} must let the owner read and write (0600 at least)"
            ));
        }
        Ok(FileMode(bits))
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = FileMode;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an octal file mode such as \"0640\" or 0o640")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileMode, E> {
                FileMode::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<FileMode, E> {
                FileMode::from_bits(v, &v.to_string()).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<FileMode, E> {
                let v = i64::try_from(v).unwrap_or(i64::MAX);
                FileMode::from_bits(v, &v.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn default_path() -> String {
    DEFAULT_PATH.to_owned()
}

fn yes() -> bool {
    true
}

impl FileSinkConfig {
    /// Checks the path template; the message says what is wrong with it.
    pub fn validate(&self) -> Result<(), String> {
        PathTemplate::parse(&self.path).map(|_| ())
    }
}

/// A parsed path template.
#[derive(Debug, Clone)]
pub struct PathTemplate {
    template: String,
    has_time: bool,
}

impl PathTemplate {
    pub fn parse(template: &str) -> Result<Self, String> {
        if template.trim().is_empty() {
            return Err("the path is empty".into());
        }
        if template.ends_with('/') {
            return Err(format!(
                "`{template}` names a directory; add a file name, e.g. `{template}%Y-%m-%d.jsonl`"
            ));
        }
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').map(|c| open + c);
            match close {
                Some(close) if &rest[open..=close] == "{platform}" => rest = &rest[close + 1..],
                Some(close) => {
                    return Err(format!(
                        "unknown placeholder `{}` in `{template}`; the only one is `{{platform}}`",
                        &rest[open..=close]
                    ));
                }
                None => return Err(format!("unclosed `{{` in `{template}`")),
            }
        }
        if StrftimeItems::new(template).any(|i| matches!(i, Item::Error)) {
            return Err(format!(
                "`{template}` has an invalid strftime field (write a literal % as %%)"
            ));
        }
        Ok(PathTemplate {
            template: template.to_owned(),
            has_time: template.contains('%'),
        })
    }

    pub fn render(&self, platform: Platform, now: DateTime<Utc>) -> PathBuf {
        let with_platform = self.template.replace("{platform}", platform.as_str());
        if self.has_time {
            PathBuf::from(now.format(&with_platform).to_string())
        } else {
            PathBuf::from(with_platform)
        }
    }

    /// The directory that holds every file the template can name: the part
    /// before the first placeholder, up to its last `/`.
    pub fn fixed_dir(&self) -> PathBuf {
        let cut = self
            .template
            .find(['%', '{'])
            .unwrap_or(self.template.len());
        let fixed = &self.template[..cut];
        match fixed.rfind('/') {
            Some(0) => PathBuf::from("/"),
            Some(i) => PathBuf::from(&fixed[..i]),
            None => PathBuf::from("."),
        }
    }
}

/// The file of part `n` of a base path: `a/x.jsonl.gz` → `a/x.2.jsonl.gz`.
pub fn part_path(base: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return base.to_owned();
    }
    let name = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dot = name
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '.')
        .map(|(i, _)| i);
    let new = match dot {
        Some(i) => format!("{}.{n}{}", &name[..i], &name[i..]),
        None => format!("{name}.{n}"),
    };
    base.with_file_name(new)
}

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
struct Faults {
    /// Bytes that may still be written; past them a write stops short and fails with ENOSPC.
    write_budget: Option<usize>,
    /// Undos (truncates) that fail before they work again.
    failing_undos: u32,
}

/// Open files and what the blocking writer needs; moved into `spawn_blocking` per batch.
///
/// A batch is all-or-nothing: every file it touches (several parts when it
/// rotates, one per platform) is cut back to its length before the batch if any
/// write or fsync of the batch fails, so a retry never glues onto a fragment.
/// If even the cut fails, the file is remembered as owing it: no byte is
/// appended to it until the cut has been made.
struct Writer {
    sink: String,
    template: PathTemplate,
    config: FileSinkConfig,
    open: HashMap<PathBuf, OpenFile>,
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
    faults: Faults,
}

fn io_error(sink: &str, what: &str, path: &Path, e: std::io::Error) -> SinkError {
    use std::io::ErrorKind::*;
    let err = format!("{what} {}: {e}", path.display());
    match e.kind() {
        PermissionDenied | ReadOnlyFilesystem | NotADirectory | IsADirectory | InvalidFilename
        | FileTooLarge => SinkError::fatal(sink, err),
        _ => SinkError::retryable(sink, err),
    }
}

impl Writer {
    fn write(&mut self, batch: &[Arc<Record>]) -> Result<(), SinkError> {
        self.tick += 1;
        self.retry_undos();
        match self.write_platforms(batch) {
            Ok(()) => {
                self.journal.clear();
                self.close_idle();
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
        // A batch mixes platforms only in `auto` replays: write each platform's
        // records in turn, serialized into a reused buffer and written in chunks.
        for platform in [Platform::Twitter, Platform::Telegram] {
            let mut records = batch.iter().filter(|r| r.platform == platform).peekable();
            if records.peek().is_none() {
                continue;
            }
            let base = self.template.render(platform, now);
            let mut buf = std::mem::take(&mut self.buf);
            let mut gz = self
                .config
                .gzip
                .then(|| GzEncoder::new(Vec::with_capacity(WRITE_CHUNK), Compression::default()));
            let mut result = Ok(());
            for r in records {
                buf.clear();
                r.write_line(self.config.format, &mut buf);
                if let Some(enc) = gz.as_mut() {
                    enc.write_all(&buf).expect("writing to a Vec cannot fail");
                    continue;
                }
                self.pending.extend_from_slice(&buf);
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
        if !self.open.contains_key(base) {
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

    fn close_idle(&mut self) {
        while self.open.len() > MAX_OPEN_FILES {
            let oldest = self
                .open
                .iter()
                .min_by_key(|(_, f)| f.last_used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.open.remove(&k);
            }
        }
    }

    fn sync_all(&mut self) -> Result<(), SinkError> {
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

/// Bytes read at a time while looking backwards for the end of the last whole line or member.
const SCAN_BLOCK: u64 = 64 * 1024;
/// The first bytes of a gzip member: magic and the deflate method.
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// Checks the end of a file the sink is about to append to, once per file and
/// run. A write cut short by a crash leaves a torn tail: for JSONL, bytes after
/// the last newline; for gzip, bytes after the last whole member. The tail is
/// saved beside the file (`<file>.torn-<unix time>`, mode 0600), cut off, and
/// reported; a file whose end is whole is not touched. Returns the new size.
fn repair_torn_tail(file: &File, path: &Path, size: u64, gzip: bool) -> std::io::Result<u64> {
    let keep = if gzip {
        match gzip_whole_end(file, size)? {
            Some(end) => end,
            None => {
                warn!(file = %path.display(),
                    "the file does not start with a gzip member although `gzip = true`; appending to it as it is");
                size
            }
        }
    } else {
        jsonl_whole_end(file, size)?
    };
    if keep == size {
        return Ok(size);
    }
    let saved = save_torn_tail(file, path, keep, size)?;
    file.set_len(keep)?;
    file.sync_all()?;
    warn!(file = %path.display(), torn_bytes = size - keep, saved_to = %saved.display(),
        "cut off a torn tail (a write cut short by a crash; it was never confirmed, so its records are delivered again)");
    Ok(keep)
}

/// The length of a JSONL file up to and including its last newline.
fn jsonl_whole_end(file: &File, size: u64) -> std::io::Result<u64> {
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, size - 1)?;
    if last[0] == b'\n' {
        return Ok(size);
    }
    let mut end = size;
    let mut block = vec![0u8; SCAN_BLOCK as usize];
    while end > 0 {
        let start = end.saturating_sub(SCAN_BLOCK);
        let chunk = &mut block[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// The end of the last whole gzip member; `None` if the file does not start with one at all
/// (not a file this sink wrote: left alone).
///
/// Looks backwards for member headers and decodes from each until one decodes
/// whole (its CRC and length check out): the file is whole up to where it ends.
fn gzip_whole_end(file: &File, size: u64) -> std::io::Result<Option<u64>> {
    let mut end = size;
    let mut block = vec![0u8; SCAN_BLOCK as usize + GZIP_MAGIC.len()];
    while end > 0 {
        let start = end.saturating_sub(SCAN_BLOCK);
        // Read a little past `end` so a header across blocks is seen.
        let stop = (end + GZIP_MAGIC.len() as u64 - 1).min(size);
        let chunk = &mut block[..(stop - start) as usize];
        file.read_exact_at(chunk, start)?;
        let mut candidates: Vec<u64> = memchr::memmem::find_iter(chunk, &GZIP_MAGIC)
            .map(|i| start + i as u64)
            .filter(|&p| p < end)
            .collect();
        candidates.reverse();
        for p in candidates {
            if let Some(member_end) = gzip_member_end(file, p)? {
                return Ok(Some(member_end));
            }
        }
        end = start;
    }
    let mut head = [0u8; 3];
    let starts_gzip = size >= 3 && file.read_exact_at(&mut head, 0).is_ok() && head == GZIP_MAGIC;
    Ok(starts_gzip.then_some(0))
}

/// Where a gzip member starting at `at` ends, if one decodes whole from there.
fn gzip_member_end(file: &File, at: u64) -> std::io::Result<Option<u64>> {
    let mut reader = BufReader::new(file);
    reader.seek(SeekFrom::Start(at))?;
    let mut decoder = flate2::bufread::GzDecoder::new(reader);
    if std::io::copy(&mut decoder, &mut std::io::sink()).is_err() {
        return Ok(None);
    }
    let mut reader = decoder.into_inner();
    Ok(Some(reader.stream_position()?))
}

/// Copies bytes `from..to` of `file` to a new file beside it; returns its path.
fn save_torn_tail(file: &File, path: &Path, from: u64, to: u64) -> std::io::Result<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut n = 0u32;
    let (mut out, saved) = loop {
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("-{n}")
        };
        let saved = path.with_file_name(format!("{name}.torn-{secs}{suffix}"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(DEFAULT_FILE_MODE)
            .open(&saved)
        {
            Ok(f) => break (f, saved),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) => return Err(e),
        }
    };
    let mut reader = BufReader::new(file);
    reader.seek(SeekFrom::Start(from))?;
    std::io::copy(&mut reader.take(to - from), &mut out)?;
    out.sync_all()?;
    Ok(saved)
}

/// Writes JSONL files.
pub struct FileSink {
    name: String,
    writer: Option<Box<Writer>>,
}

impl FileSink {
    pub fn new(name: &str, config: FileSinkConfig) -> Result<Self, String> {
        let template = PathTemplate::parse(&config.path)?;
        Ok(FileSink {
            name: name.to_owned(),
            writer: Some(Box::new(Writer {
                sink: name.to_owned(),
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
            })),
        })
    }

    /// Runs `f` on the writer off the async threads.
    async fn with_writer<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Writer) -> Result<T, SinkError> + Send + 'static,
    ) -> Result<T, SinkError> {
        let mut writer = self
            .writer
            .take()
            .ok_or_else(|| SinkError::fatal(&self.name, "the writer was lost after a panic"))?;
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let r = f(&mut writer);
            (writer, r)
        })
        .await
        .map_err(|e| SinkError::fatal(&self.name, format!("the file writer panicked: {e}")))?;
        self.writer = Some(writer);
        result
    }
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

impl crate::sinks::SinkType for FileSinkConfig {
    fn type_name(&self) -> &'static str {
        "file"
    }
    crate::common_sink_fields!();
    fn format(&self) -> Format {
        self.format
    }
    fn validate(&self) -> Result<(), crate::sinks::FieldError> {
        self.validate()
            .map_err(|m| crate::sinks::FieldError::new("path", m))
    }
    fn build(&self, name: &str) -> Result<super::AnySink, crate::sinks::BuildError> {
        let sink = FileSink::new(name, self.clone()).map_err(crate::sinks::BuildError::Invalid)?;
        Ok(Box::new(sink))
    }
}

impl crate::sinks::SinkType for StdoutSinkConfig {
    fn type_name(&self) -> &'static str {
        "stdout"
    }
    crate::common_sink_fields!();
    fn format(&self) -> Format {
        self.format
    }
    fn validate(&self) -> Result<(), crate::sinks::FieldError> {
        Ok(())
    }
    fn build(&self, name: &str) -> Result<super::AnySink, crate::sinks::BuildError> {
        Ok(Box::new(StdoutSink::new(name, self)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{NormalizeOptions, Normalized, RunInfo};
    use chrono::TimeZone;
    use std::io::Read;

    fn rec(id: u32, platform: Platform) -> Arc<Record> {
        let opts = NormalizeOptions::new(Arc::new(RunInfo::new(None)));
        let n = match platform {
            Platform::Twitter => crate::sources::twitter::normalize_line(
                format!(r#"{{"data":{{"id":"{id}","text":"t{id}"}}}}"#).as_bytes(),
                &"now".into(),
                &opts,
            ),
            Platform::Telegram => crate::sources::telegram::normalize_update(
                format!(r#"{{"update_id":{id},"message":{{"message_id":{id},"chat":{{"id":1,"type":"private"}},"text":"m"}}}}"#).as_bytes(),
                &"now".into(),
                &opts,
            ),
        };
        match n.unwrap() {
            Normalized::Record(r) => Arc::new(*r),
            _ => panic!(),
        }
    }

    #[test]
    fn templates_render_platform_and_time() {
        let t = PathTemplate::parse("out/{platform}/%Y/%m/%d/%H.jsonl").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 7, 5, 0).unwrap();
        assert_eq!(
            t.render(Platform::Telegram, now),
            PathBuf::from("out/telegram/2026/11/22/07.jsonl")
        );
        assert_eq!(t.fixed_dir(), PathBuf::from("out"));
        assert_eq!(
            PathTemplate::parse("x.jsonl").unwrap().fixed_dir(),
            PathBuf::from(".")
        );
        assert_eq!(
            PathTemplate::parse("/abs/%Y.jsonl").unwrap().fixed_dir(),
            PathBuf::from("/abs")
        );
        assert_eq!(
            PathTemplate::parse("100%%.jsonl")
                .unwrap()
                .render(Platform::Twitter, now),
            PathBuf::from("100%.jsonl")
        );
    }

    #[test]
    fn bad_templates_say_why() {
        assert!(PathTemplate::parse("").unwrap_err().contains("empty"));
        assert!(
            PathTemplate::parse("out/")
                .unwrap_err()
                .contains("directory")
        );
        assert!(
            PathTemplate::parse("{platfrom}.jsonl")
                .unwrap_err()
                .contains("unknown placeholder")
        );
        assert!(
            PathTemplate::parse("{platform.jsonl")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(
            PathTemplate::parse("%Q.jsonl")
                .unwrap_err()
                .contains("strftime")
        );
    }

    #[test]
    fn part_paths_go_before_the_extensions() {
        assert_eq!(
            part_path(Path::new("a/x.jsonl.gz"), 2),
            PathBuf::from("a/x.2.jsonl.gz")
        );
        assert_eq!(part_path(Path::new("a/x"), 1), PathBuf::from("a/x.1"));
        assert_eq!(
            part_path(Path::new(".hidden"), 1),
            PathBuf::from(".hidden.1")
        );
        assert_eq!(part_path(Path::new("x.jsonl"), 0), PathBuf::from("x.jsonl"));
    }

    #[tokio::test]
    async fn writes_jsonl_per_platform_and_rotates_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let config = FileSinkConfig {
            path: format!("{}/{{platform}}.jsonl", dir.path().display()),
            max_file_bytes: 1000,
            ..FileSinkConfig::default()
        };
        let mut sink = FileSink::new("f", config).unwrap();
        sink.healthcheck().await.unwrap();
        for i in 0..10 {
            sink.write_batch(&[rec(i, Platform::Twitter), rec(i, Platform::Telegram)])
                .await
                .unwrap();
        }
        sink.flush().await.unwrap();
        let mut twitter_lines = 0;
        let mut files = 0;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.len() <= 1000,
                "{} is {} bytes",
                path.display(),
                text.len()
            );
            files += 1;
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("twitter")
            {
                twitter_lines += text.lines().count();
            }
        }
        assert_eq!(twitter_lines, 10);
        assert!(files > 2, "size rotation made parts: {files}");
        assert!(dir.path().join("twitter.1.jsonl").exists());
    }

    #[tokio::test]
    async fn gzip_batches_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl.gz");
        let config = FileSinkConfig {
            path: path.display().to_string(),
            gzip: true,
            format: Format::Raw,
            ..FileSinkConfig::default()
        };
        let mut sink = FileSink::new("f", config).unwrap();
        sink.write_batch(&[rec(1, Platform::Twitter)])
            .await
            .unwrap();
        sink.write_batch(&[rec(2, Platform::Twitter), rec(3, Platform::Twitter)])
            .await
            .unwrap();
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(File::open(&path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["data"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(ids, ["1", "2", "3"]);
    }

    #[tokio::test]
    async fn an_unwritable_directory_is_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("a-file");
        std::fs::write(&blocker, b"").unwrap();
        let config = FileSinkConfig {
            path: format!("{}/sub/x.jsonl", blocker.display()),
            ..FileSinkConfig::default()
        };
        let mut sink = FileSink::new("f", config).unwrap();
        let err = sink.healthcheck().await.unwrap_err();
        assert!(err.to_string().contains("cannot create directory"), "{err}");
        let err = sink
            .write_batch(&[rec(1, Platform::Twitter)])
            .await
            .unwrap_err();
        assert!(matches!(err, SinkError::Fatal { .. }), "{err}");
    }

    fn twitter_batch(range: std::ops::Range<u32>) -> Vec<Arc<Record>> {
        range.map(|i| rec(i, Platform::Twitter)).collect()
    }

    /// The ids in a JSONL (or gzip JSONL) file; panics on a line that is not JSON.
    fn ids_in(path: &Path, gzip: bool) -> Vec<String> {
        let mut text = String::new();
        if gzip {
            flate2::read::MultiGzDecoder::new(File::open(path).unwrap())
                .read_to_string(&mut text)
                .unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()));
        } else {
            text = std::fs::read_to_string(path).unwrap();
        }
        assert!(text.is_empty() || text.ends_with('\n'), "a torn last line");
        text.lines()
            .map(|l| {
                let v: serde_json::Value =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:.80}"));
                v["id"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    fn expect_ids(got: Vec<String>, range: std::ops::Range<u32>) {
        let want: Vec<String> = range.map(|i| format!("twitter:{i}")).collect();
        assert_eq!(got.len(), want.len(), "every record once");
        assert_eq!(got, want);
    }

    fn sink_at(path: &Path, gzip: bool) -> FileSink {
        let config = FileSinkConfig {
            path: path.display().to_string(),
            gzip,
            ..FileSinkConfig::default()
        };
        FileSink::new("f", config).unwrap()
    }

    fn writer(sink: &mut FileSink) -> &mut Writer {
        sink.writer.as_mut().unwrap()
    }

    /// A disk that fills up in the middle of a batch (after one whole 1 MiB
    /// chunk of it was written), then stays full for one retry, then has room.
    async fn disk_full_then_freed(gzip: bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(if gzip { "x.jsonl.gz" } else { "x.jsonl" });
        let mut sink = sink_at(&path, gzip);
        sink.write_batch(&twitter_batch(0..10)).await.unwrap();
        let big = twitter_batch(10..8000);
        let budget = if gzip { 5000 } else { WRITE_CHUNK + 5000 };
        writer(&mut sink).faults.write_budget = Some(budget);
        let err = sink.write_batch(&big).await.unwrap_err();
        assert!(matches!(err, SinkError::Retryable { .. }), "{err}");
        // Still full: the retry fails at once.
        assert!(sink.write_batch(&big).await.is_err());
        expect_ids(ids_in(&path, gzip), 0..10);
        writer(&mut sink).faults.write_budget = None;
        sink.write_batch(&big).await.unwrap();
        sink.write_batch(&twitter_batch(8000..8010)).await.unwrap();
        sink.flush().await.unwrap();
        expect_ids(ids_in(&path, gzip), 0..8010);
    }

    #[tokio::test]
    async fn a_batch_that_fails_half_way_leaves_nothing_and_its_retry_writes_it_once() {
        disk_full_then_freed(false).await;
    }

    #[tokio::test]
    async fn a_gzip_batch_that_fails_half_way_leaves_no_partial_member() {
        disk_full_then_freed(true).await;
    }

    #[tokio::test]
    async fn a_failed_batch_is_undone_in_every_part_and_platform_it_touched() {
        let dir = tempfile::tempdir().unwrap();
        let config = FileSinkConfig {
            path: format!("{}/{{platform}}.jsonl", dir.path().display()),
            max_file_bytes: WRITE_CHUNK as u64 * 3 / 2,
            ..FileSinkConfig::default()
        };
        let mut sink = FileSink::new("f", config).unwrap();
        sink.write_batch(&twitter_batch(0..10)).await.unwrap();
        let before = std::fs::read(dir.path().join("twitter.jsonl")).unwrap();
        // Twitter's records fill part 0 and go on into part 1, where the disk fills up.
        let mut batch = twitter_batch(10..8000);
        batch.push(rec(1, Platform::Telegram));
        writer(&mut sink).faults.write_budget = Some(WRITE_CHUNK + 5000);
        sink.write_batch(&batch).await.unwrap_err();
        assert_eq!(
            std::fs::read(dir.path().join("twitter.jsonl")).unwrap(),
            before
        );
        assert!(!dir.path().join("twitter.1.jsonl").exists());
        // Twitter's part is written whole; Telegram's write fails: both are undone.
        let twitter_bytes: usize = batch[..7990]
            .iter()
            .map(|r| {
                let mut line = Vec::new();
                r.write_line(Format::Record, &mut line);
                line.len()
            })
            .sum();
        writer(&mut sink).faults.write_budget = Some(twitter_bytes + 10);
        sink.write_batch(&batch).await.unwrap_err();
        assert_eq!(
            std::fs::read(dir.path().join("twitter.jsonl")).unwrap(),
            before
        );
        assert!(!dir.path().join("twitter.1.jsonl").exists());
        assert!(!dir.path().join("telegram.jsonl").exists());
        writer(&mut sink).faults.write_budget = None;
        sink.write_batch(&batch).await.unwrap();
        let mut ids = ids_in(&dir.path().join("twitter.jsonl"), false);
        ids.extend(ids_in(&dir.path().join("twitter.1.jsonl"), false));
        expect_ids(ids, 0..8000);
        assert_eq!(ids_in(&dir.path().join("telegram.jsonl"), false).len(), 1);
    }

    #[tokio::test]
    async fn a_cut_that_fails_is_made_before_anything_more_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        let mut sink = sink_at(&path, false);
        sink.write_batch(&twitter_batch(0..10)).await.unwrap();
        let w = writer(&mut sink);
        w.faults.write_budget = Some(300);
        w.faults.failing_undos = 3;
        sink.write_batch(&twitter_batch(10..20)).await.unwrap_err();
        // The fragment is still there: the next attempt must not append after it.
        writer(&mut sink).faults.write_budget = None;
        let err = sink.write_batch(&twitter_batch(10..20)).await.unwrap_err();
        assert!(err.to_string().contains("failed write"), "{err}");
        assert!(sink.flush().await.is_err(), "a flush owes the cut too");
        sink.write_batch(&twitter_batch(10..20)).await.unwrap();
        expect_ids(ids_in(&path, false), 0..20);
    }

    fn torn_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains(".torn-"))
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn a_torn_jsonl_tail_is_cut_off_and_saved_beside_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        let mut sink = sink_at(&path, false);
        sink.write_batch(&twitter_batch(0..3)).await.unwrap();
        drop(sink);
        // A crash in the middle of the next batch's write.
        let torn = b"{\"id\":\"twitter:3\",\"platform\":\"twi";
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(torn)
            .unwrap();
        let mut sink = sink_at(&path, false);
        sink.write_batch(&twitter_batch(3..5)).await.unwrap();
        expect_ids(ids_in(&path, false), 0..5);
        let saved = torn_files(dir.path());
        assert_eq!(saved.len(), 1, "{saved:?}");
        assert_eq!(std::fs::read(&saved[0]).unwrap(), torn);
        assert_eq!(mode_of(&saved[0]), 0o600);
        // Once per file and run: a whole file is left alone.
        drop(sink);
        let mut sink = sink_at(&path, false);
        sink.write_batch(&twitter_batch(5..6)).await.unwrap();
        expect_ids(ids_in(&path, false), 0..6);
        assert_eq!(torn_files(dir.path()).len(), 1);
    }

    #[tokio::test]
    async fn a_torn_gzip_member_is_cut_off_and_saved_beside_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl.gz");
        let mut sink = sink_at(&path, true);
        sink.write_batch(&twitter_batch(0..3)).await.unwrap();
        sink.write_batch(&twitter_batch(3..6)).await.unwrap();
        drop(sink);
        // Cut the second member at every few bytes, and a tail of a bare magic.
        let whole = std::fs::read(&path).unwrap();
        let first_len = {
            let f = File::open(&path).unwrap();
            gzip_member_end(&f, 0).unwrap().unwrap() as usize
        };
        let mut cuts: Vec<usize> = (first_len + 1..whole.len()).step_by(7).collect();
        cuts.push(whole.len() - 1);
        for cut in cuts {
            let case = dir.path().join(format!("c{cut}"));
            std::fs::create_dir(&case).unwrap();
            let p = case.join("x.jsonl.gz");
            std::fs::write(&p, &whole[..cut]).unwrap();
            let mut sink = sink_at(&p, true);
            sink.write_batch(&twitter_batch(6..8)).await.unwrap();
            let got = ids_in(&p, true);
            assert_eq!(got.len(), 5, "cut at {cut}: {got:?}");
            assert_eq!(got[..3], ["twitter:0", "twitter:1", "twitter:2"]);
            let saved = torn_files(&case);
            assert_eq!(saved.len(), 1, "cut at {cut}");
            assert_eq!(std::fs::read(&saved[0]).unwrap(), &whole[first_len..cut]);
        }
        // Trailing junk after whole members, and a first member torn.
        let p = dir.path().join("junk.jsonl.gz");
        let mut bytes = whole.clone();
        bytes.extend_from_slice(&[0x1f, 0x8b]);
        std::fs::write(&p, &bytes).unwrap();
        let mut sink = sink_at(&p, true);
        sink.write_batch(&twitter_batch(6..7)).await.unwrap();
        expect_ids(ids_in(&p, true), 0..7);
        let p = dir.path().join("first.jsonl.gz");
        std::fs::write(&p, &whole[..first_len / 2]).unwrap();
        let mut sink = sink_at(&p, true);
        sink.write_batch(&twitter_batch(0..1)).await.unwrap();
        expect_ids(ids_in(&p, true), 0..1);
    }

    #[tokio::test]
    async fn whole_files_are_not_touched() {
        let dir = tempfile::tempdir().unwrap();
        for gzip in [false, true] {
            let path = dir.path().join(format!("x{gzip}"));
            let mut sink = sink_at(&path, gzip);
            sink.write_batch(&twitter_batch(0..3)).await.unwrap();
            drop(sink);
            let mut sink = sink_at(&path, gzip);
            sink.write_batch(&twitter_batch(3..4)).await.unwrap();
            expect_ids(ids_in(&path, gzip), 0..4);
        }
        // Not a gzip file although `gzip = true`: left as it is.
        let path = dir.path().join("plain.jsonl");
        std::fs::write(&path, b"not gzip").unwrap();
        let mut sink = sink_at(&path, true);
        sink.write_batch(&twitter_batch(0..1)).await.unwrap();
        assert!(std::fs::read(&path).unwrap().starts_with(b"not gzip"));
        assert!(torn_files(dir.path()).is_empty());
    }

    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn umask() -> u32 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
        u32::from_str_radix(line.split_whitespace().nth(1).unwrap(), 8).unwrap()
    }

    #[tokio::test]
    async fn new_files_are_private_unless_file_mode_says_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("private.jsonl");
        sink_at(&path, false)
            .write_batch(&twitter_batch(0..1))
            .await
            .unwrap();
        assert_eq!(mode_of(&path), 0o600);
        let config: FileSinkConfig = toml::from_str(&format!(
            "path = \"{}/shared-{{platform}}.jsonl\"\nfile_mode = \"0640\"\nmax_file_bytes = 1\n",
            dir.path().display()
        ))
        .unwrap();
        let mut sink = FileSink::new("f", config).unwrap();
        sink.write_batch(&twitter_batch(0..1)).await.unwrap();
        sink.write_batch(&twitter_batch(1..2)).await.unwrap();
        for name in ["shared-twitter.jsonl", "shared-twitter.1.jsonl"] {
            assert_eq!(mode_of(&dir.path().join(name)), 0o640 & !umask(), "{name}");
        }
    }

    #[test]
    fn file_modes_parse_as_octal_and_bad_ones_say_why() {
        let parse = |v: &str| toml::from_str::<FileSinkConfig>(&format!("file_mode = {v}"));
        assert_eq!(parse("\"0640\"").unwrap().file_mode, FileMode(0o640));
        assert_eq!(parse("\"600\"").unwrap().file_mode, FileMode(0o600));
        assert_eq!(parse("\"0o644\"").unwrap().file_mode, FileMode(0o644));
        assert_eq!(parse("0o660").unwrap().file_mode, FileMode(0o660));
        assert_eq!(
            toml::from_str::<FileSinkConfig>("").unwrap().file_mode,
            FileMode(0o600)
        );
        for (bad, why) in [
            ("\"rw-r-----\"", "not an octal file mode"),
            ("\"0680\"", "not an octal file mode"),
            ("\"\"", "not an octal file mode"),
            ("\"01777\"", "at most 0777"),
            ("640", "write \"0640\""),
            ("-1", "at most 0777"),
            ("\"0440\"", "owner read and write"),
            ("0o200", "owner read and write"),
            ("true", "octal file mode"),
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
