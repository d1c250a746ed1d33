//! The `file` sink (JSONL files from a path template, rotation, gzip, fsync) and
//! the `stdout` sink.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Deserialize;

use super::{Sink, SinkError};
use crate::config::{BatchConfig, RetryConfig, default_queue_capacity};
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
}

/// Open files and what the blocking writer needs; moved into `spawn_blocking` per batch.
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
        let now = Utc::now();
        self.tick += 1;
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
                // One gzip member per batch, so a crash never leaves a half member behind confirmed data.
                self.pending = enc
                    .finish()
                    .expect("finishing a gzip stream into a Vec cannot fail");
            }
            result.and_then(|_| self.write_pending(&base))?;
            if self.config.fsync {
                self.sync(&base)?;
            }
        }
        self.close_idle();
        Ok(())
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
            let next = self.open_part(base, old.part + 1, bytes.len() as u64)?;
            self.open.insert(base.to_owned(), next);
        }
        let (sink, fsync, tick) = (self.sink.clone(), self.config.fsync, self.tick);
        let of = self.open.get_mut(base).expect("present");
        of.file
            .write_all(bytes)
            .map_err(|e| io_error(&sink, "cannot write", &of.path, e))?;
        if fsync {
            of.file
                .sync_data()
                .map_err(|e| io_error(&sink, "cannot fsync", &of.path, e))?;
        }
        of.size += bytes.len() as u64;
        of.last_used = tick;
        Ok(())
    }

    /// Opens part `part` or the first later part with room for `incoming` bytes.
    fn open_part(&self, base: &Path, mut part: u32, incoming: u64) -> Result<OpenFile, SinkError> {
        let max = self.config.max_file_bytes;
        if let Some(dir) = base.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| io_error(&self.sink, "cannot create directory", dir, e))?;
        }
        loop {
            let path = part_path(base, part);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| io_error(&self.sink, "cannot open", &path, e))?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            if max == 0 || size == 0 || size + incoming <= max {
                return Ok(OpenFile {
                    file,
                    path,
                    part,
                    size,
                    last_used: self.tick,
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
        for of in self.open.values_mut() {
            of.file
                .sync_all()
                .map_err(|e| io_error(&self.sink, "cannot fsync", &of.path, e))?;
        }
        Ok(())
    }
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
                    std::io::ErrorKind::BrokenPipe => {
                        SinkError::fatal(&name, "standard output was closed (broken pipe)")
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{NormalizeOptions, Normalized, RunInfo};
    use chrono::TimeZone;

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
        use std::io::Read;
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
}
