//! The replay source: captured JSONL from a file or standard input — `ingest`
//! records (what the file sink wrote, read back as they are), X stream lines
//! or Telegram updates (normalized).
//!
//! Every line becomes a record, a control message, or a dead letter with the
//! reason; nothing is skipped silently. On stop, input already waiting in a
//! stdin pipe is still read and delivered — what the pipe held when the stop
//! came, not what a fast writer keeps adding after it. Every batch holds at
//! most one read of [`CHUNK_BYTES`] (plus the line it ends in), so memory stays
//! bounded whatever the input's size.

use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use memchr::memmem::Finder;

use serde::Deserialize;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::InputPlatform;
use super::lines::{Line, LineSplitter};
use super::{
    Origin, Source, SourceContext, SourceCounters, SourceError, SourceOutput, received_now,
    telegram, twitter,
};
use crate::locate::{FileAt, ResolveError};
use crate::record::{NormalizeError, Normalized, Record, transliterate, trim_line};

const CHUNK_BYTES: usize = 256 * 1024;
const ORIGIN: Origin = Origin {
    label: "replay",
    item: "input line",
};

/// `[replay]`, as written in the config file (resolved by [`resolve`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    pub platform: Option<InputPlatform>,
    pub max_line_bytes: Option<usize>,
}

/// Default for `--max-line-bytes`.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// What the command line says about `ingest replay`.
#[derive(Debug, Clone, Default)]
pub struct ReplayFlags {
    pub input: PathBuf,
    pub platform: Option<InputPlatform>,
    pub max_line_bytes: Option<usize>,
}

/// Resolves `ingest replay`: defaults < `[replay]` < flags.
pub fn resolve(
    flags: &ReplayFlags,
    table: &ReplayConfig,
    at: FileAt<'_>,
) -> Result<ReplaySource, ResolveError> {
    let max_line_bytes = flags
        .max_line_bytes
        .or(table.max_line_bytes)
        .unwrap_or(DEFAULT_MAX_LINE_BYTES);
    if max_line_bytes == 0 {
        return Err(at
            .error("replay.max_line_bytes", "must be at least 1")
            .into());
    }
    Ok(ReplaySource {
        input: flags.input.clone(),
        platform: flags.platform.or(table.platform).unwrap_or_default(),
        max_line_bytes,
    })
}

/// Replays JSONL from a file or stdin.
#[derive(Debug)]
pub struct ReplaySource {
    pub input: PathBuf,
    pub platform: InputPlatform,
    pub max_line_bytes: usize,
}

impl ReplaySource {
    fn is_stdin(&self) -> bool {
        self.input.as_os_str() == "-"
    }
}

/// The keys `normalize` looks for, each searcher built once (building one
/// per line was 1.5 % of a Kafka replay's CPU).
static RUN_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"run\":"));
static UPDATE_ID_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"update_id\""));
static DATA_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"data\""));
static ERRORS_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"errors\""));

/// An `ingest` record read back (a capture of ours, a Kafka message our sink
/// wrote), its `raw` and `text_ascii` following this run's options; `None`
/// for anything else. Every record has `run`, so other lines skip the
/// attempt; a line that is not UTF-8 is no record (it could not parse as
/// one), and checking it once, whole, spares serde_json a check per string.
pub fn read_back(line: &[u8], ctx: &SourceContext) -> Option<Record> {
    RUN_KEY.find(line)?;
    let mut r = serde_json::from_str::<Record>(std::str::from_utf8(line).ok()?).ok()?;
    let opts = &ctx.normalize;
    if !opts.keep_raw {
        r.raw = None;
    }
    if opts.transliterate && r.text_ascii.is_none() {
        r.text_ascii = r.text.as_deref().map(transliterate);
    }
    Some(r)
}

/// Normalizes one line: an `ingest` record is read back as it is (whatever
/// `platform` says), anything else normalized for `platform`.
pub fn normalize(
    platform: InputPlatform,
    line: &[u8],
    received_at: &Arc<str>,
    ctx: &SourceContext,
) -> Result<Normalized, NormalizeError> {
    if let Some(r) = read_back(trim_line(line), ctx) {
        return Ok(Normalized::Record(Box::new(r)));
    }
    let opts = &ctx.normalize;
    match platform {
        InputPlatform::Twitter => twitter::normalize_line(line, received_at, opts),
        InputPlatform::Telegram => telegram::normalize_update(line, received_at, opts),
        InputPlatform::Auto => {
            let trimmed = trim_line(line);
            if trimmed.is_empty() {
                return Ok(Normalized::Nothing);
            }
            if !trimmed.starts_with(b"{") {
                // Let the X parser produce the JSON error.
                return twitter::normalize_line(trimmed, received_at, opts);
            }
            // A Telegram update has a top-level `update_id`; an X line never has that key.
            if UPDATE_ID_KEY.find(trimmed).is_some() {
                telegram::normalize_update(trimmed, received_at, opts)
            } else if DATA_KEY.find(trimmed).is_some() || ERRORS_KEY.find(trimmed).is_some() {
                twitter::normalize_line(trimmed, received_at, opts)
            } else {
                serde_json::from_slice::<serde::de::IgnoredAny>(trimmed)?;
                Err(NormalizeError::UnknownPlatform)
            }
        }
    }
}

/// Turns lines into batches; reports what it cannot use.
struct LineHandler<'a> {
    ctx: &'a SourceContext,
    out: &'a SourceOutput,
    platform: InputPlatform,
    max_line_bytes: usize,
    received_at: Arc<str>,
    batch: Vec<Arc<Record>>,
    error: Option<SourceError>,
}

impl LineHandler<'_> {
    fn line(&mut self, line: Line<'_>) {
        match line {
            Line::Complete(bytes) => {
                match normalize(self.platform, bytes, &self.received_at, self.ctx) {
                    Ok(Normalized::Record(r)) => self.batch.push(Arc::from(r)),
                    Ok(Normalized::Control(raw)) => {
                        SourceCounters::add(&self.ctx.counters.control, 1);
                        info!(
                            message = raw.get(),
                            "control message in the input (not a record)"
                        );
                    }
                    Ok(Normalized::Nothing) => {}
                    Err(e) => self.reject(&e.to_string(), bytes, bytes.len()),
                }
            }
            Line::Oversized { len, prefix } => {
                let reason = format!(
                    "line of {len} bytes is over the limit of {} bytes (--max-line-bytes)",
                    self.max_line_bytes
                );
                self.reject(&reason, prefix, len);
            }
        }
    }

    fn reject(&mut self, reason: &str, input: &[u8], len: usize) {
        if let Err(e) = self.out.dead_letter(ORIGIN, reason, input, len) {
            self.error.get_or_insert(e.into());
        }
    }

    /// Splits a chunk of input into lines and handles them, stamped now.
    fn chunk(&mut self, splitter: &mut LineSplitter, bytes: &[u8]) {
        self.received_at = received_now();
        splitter.push(bytes, |l| self.line(l));
    }

    /// Sends what the lines so far produced; false once the pipeline is gone.
    async fn send(&mut self) -> bool {
        self.out.send(std::mem::take(&mut self.batch)).await
    }

    /// What a writer put in the pipe before the stop was received: deliver it.
    /// Only that much: a writer that keeps writing (`yes`, a 90 MB `cat`)
    /// must not keep the run reading after a stop or a record limit.
    async fn drain(&mut self, p: &PipeReader, splitter: &mut LineSplitter, buf: &mut [u8]) -> bool {
        let mut left = p.available();
        let mut drained = 0usize;
        while left > 0 {
            let want = left.min(buf.len());
            let n = match p.try_read(&mut buf[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            left -= n;
            drained += n;
            self.chunk(splitter, &buf[..n]);
            if !self.send().await {
                return false;
            }
        }
        debug!(bytes = drained, "drained standard input on stop");
        true
    }

    /// A line still without its newline at a stop may be unfinished: keep it as a dead letter.
    fn reject_unfinished(&mut self, splitter: &mut LineSplitter) {
        splitter.finish(|l| match l {
            Line::Complete(bytes) => self.reject(
                "incomplete line at stop (no newline yet)",
                bytes,
                bytes.len(),
            ),
            Line::Oversized { len, prefix } => {
                self.reject("incomplete oversized line at stop", prefix, len)
            }
        });
    }
}

/// A non-blocking pipe on stdin, read through the reactor so a stop can drain it.
struct PipeReader {
    fd: AsyncFd<RawFd>,
}

impl PipeReader {
    fn new(fd: RawFd) -> std::io::Result<Self> {
        // SAFETY: fcntl on a valid descriptor (stdin) with valid flags.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        // SAFETY: `fd` is standard input, open for the whole life of the process.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?;
        Ok(PipeReader { fd })
    }

    /// Bytes waiting in the pipe right now (FIONREAD).
    fn available(&self) -> usize {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int into `n`, which we own.
        let rc = unsafe { libc::ioctl(*self.fd.get_ref(), libc::FIONREAD, &mut n) };
        if rc == 0 { n.max(0) as usize } else { 0 }
    }

    fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let n = unsafe { libc::read(*self.fd.get_ref(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|_| self.try_read(buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        // Give stdin back in blocking mode: the descriptor may be shared with the caller.
        let fd = *self.fd.get_ref();
        // SAFETY: as in `new`.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
            }
        }
    }
}

fn stdin_is_pipe_or_socket() -> bool {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into `st`, a valid stat buffer.
    let rc = unsafe { libc::fstat(std::io::stdin().as_raw_fd(), &mut st) };
    rc == 0 && matches!(st.st_mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFSOCK)
}

enum Input {
    Pipe(PipeReader),
    Stream(Box<dyn AsyncRead + Unpin + Send>),
}

impl ReplaySource {
    fn describe(&self) -> String {
        if self.is_stdin() {
            "standard input".to_owned()
        } else {
            self.input.display().to_string()
        }
    }

    async fn open(&self) -> std::io::Result<Input> {
        Ok(if self.is_stdin() {
            if stdin_is_pipe_or_socket() {
                Input::Pipe(PipeReader::new(std::io::stdin().as_raw_fd())?)
            } else {
                Input::Stream(Box::new(tokio::io::stdin()))
            }
        } else {
            Input::Stream(Box::new(tokio::fs::File::open(&self.input).await?))
        })
    }
}

impl Input {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Input::Pipe(p) => p.read(buf).await,
            Input::Stream(s) => s.read(buf).await,
        }
    }
}

impl Source for ReplaySource {
    fn name(&self) -> &'static str {
        "replay"
    }

    async fn run(
        self,
        ctx: SourceContext,
        out: SourceOutput,
        shutdown: CancellationToken,
    ) -> Result<(), SourceError> {
        let what = self.describe();
        let read_err = |source| SourceError::Read {
            what: what.clone(),
            source,
        };
        let mut input = self.open().await.map_err(read_err)?;
        info!(input = %what, platform = ?self.platform, "replaying");
        let mut splitter = LineSplitter::new(self.max_line_bytes);
        let mut handler = LineHandler {
            ctx: &ctx,
            out: &out,
            platform: self.platform,
            max_line_bytes: self.max_line_bytes,
            received_at: Arc::from(""),
            batch: Vec::new(),
            error: None,
        };
        let mut buf = vec![0u8; CHUNK_BYTES];
        let mut stopped = false;
        loop {
            let n = tokio::select! {
                biased;
                _ = shutdown.cancelled() => { stopped = true; break; }
                n = input.read(&mut buf) => n.map_err(read_err)?,
            };
            if n == 0 {
                break;
            }
            handler.chunk(&mut splitter, &buf[..n]);
            if let Some(e) = handler.error.take() {
                return Err(e);
            }
            if !handler.send().await {
                return Ok(());
            }
        }
        if stopped {
            if let Input::Pipe(p) = &input
                && !handler.drain(p, &mut splitter, &mut buf).await
            {
                return Ok(());
            }
            handler.reject_unfinished(&mut splitter);
        } else if splitter.partial_len() > 0 {
            // The input's last line has no newline: take it as it is.
            handler.received_at = received_now();
            splitter.finish(|l| handler.line(l));
        }
        if let Some(e) = handler.error.take() {
            return Err(e);
        }
        handler.send().await;
        info!(input = %what, stopped, "replay finished");
        Ok(())
    }
}
