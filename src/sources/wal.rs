//! A write-ahead log of received stream lines (`[twitter] buffer = "disk"`).
//!
//! Invariants:
//! - Every line is appended (one `write` per chunk of lines) before it enters
//!   the pipeline, so a `kill -9` loses nothing the log accepted; the data is
//!   fsynced by a background thread every [`SYNC_INTERVAL`], at once when
//!   [`SYNC_LINES`] lines wait: a power loss takes the lines written since the
//!   last completed sync (about the last 100 ms while the disk keeps up) that
//!   the sinks had not confirmed.
//! - Each line has a sequence number: its segment file is named by the number
//!   of its first line, and lines follow in order. The sinks' acks arrive in
//!   order and move the confirmed mark (the first unconfirmed number), saved
//!   atomically in `confirmed.json` on the same interval.
//! - Segments (about [`SEGMENT_BYTES`] each) are deleted once every line in
//!   them is confirmed; only the segment being written is kept open.
//! - On open, a torn last line (the write a crash cut) is cut off: it was never
//!   whole, so it was never confirmed. What is left unconfirmed is replayed
//!   first, in order; new lines go to a new segment after it.
//! - A line is `<crc32c>\t<received_at>\t<line>`: the CRC-32C (8 hex digits)
//!   of the rest is checked on replay, and a line that fails it, or has no
//!   receive time, is handed back as [`Replayed::Bad`] with its segment and
//!   byte offset (the caller dead-letters it). Lines of the earlier format
//!   (`<received_at>\t<line>`, no checksum) are still read.
//! - A confirmed mark beyond the end of the log (a `confirmed.json` from
//!   another log, or edited) is an error that keeps every segment: nothing
//!   unconfirmed is deleted on its word.
//! - Temporary files a crash left (`.confirmed.json.tmp-<pid>` of a process
//!   that is gone) are removed on open.
//!
//! One process owns a log: the caller holds a lock file for it.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use crate::sources::spill::Entry;
use crate::state::Checkpoint;

/// How often appended lines are fsynced (and the confirmed mark saved): a line
/// received more than about this long before a power loss survives it.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(100);
/// Lines appended since the last sync that trigger a sync at once.
pub const SYNC_LINES: u64 = 1000;
/// Size at which a new segment file is started.
pub const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

const SEGMENT_EXT: &str = "seg";
const CONFIRMED_FILE: &str = "confirmed.json";

/// The log cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("write-ahead log {path}: {source}")]
pub struct WalError {
    path: PathBuf,
    source: std::io::Error,
}

/// One line read back from the log.
#[derive(Debug)]
pub enum Replayed {
    /// A whole line and its receive time.
    Line(Entry),
    /// A line that cannot be used: why (with its segment and byte offset), and its bytes.
    Bad { reason: String, bytes: Vec<u8> },
}

/// Bytes of a line's checksum field (8 hex digits) and its tab.
const CRC_FIELD: usize = 9;

/// CRC-32C (Castagnoli) of a line's `received_at\tline`.
fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

/// Appends one log line: `<crc32c>\t<received_at>\t<line>\n`.
fn push_line(buf: &mut Vec<u8>, received_at: &str, line: &[u8]) {
    let start = buf.len();
    buf.extend_from_slice(b"00000000\t");
    buf.extend_from_slice(received_at.as_bytes());
    buf.push(b'\t');
    buf.extend_from_slice(line);
    let crc = crc32c(&buf[start + CRC_FIELD..]);
    buf[start..start + 8].copy_from_slice(format!("{crc:08x}").as_bytes());
    buf.push(b'\n');
}

/// A log line (without its newline) as an entry, or why it cannot be one.
fn parse_line(line: &[u8]) -> Result<Entry, &'static str> {
    let hex = line
        .get(..8)
        .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
    let rest = match hex {
        Some(hex) if line.get(8) == Some(&b'\t') => {
            let want = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u32::from_str_radix(h, 16).ok());
            let rest = &line[CRC_FIELD..];
            if want != Some(crc32c(rest)) {
                return Err("its checksum does not match (the line changed on disk)");
            }
            rest
        }
        // The earlier format: `received_at\tline`, a time first.
        _ if line.first().is_some_and(u8::is_ascii_digit) => line,
        _ => return Err("it has no receive time and no valid checksum"),
    };
    let Some(tab) = memchr::memchr(b'\t', rest).filter(|&t| t > 0) else {
        return Err("it has no receive time");
    };
    let received_at =
        std::str::from_utf8(&rest[..tab]).map_err(|_| "its receive time is not text")?;
    if hex.is_none() && chrono::DateTime::parse_from_rfc3339(received_at).is_err() {
        return Err("it has no checksum and its receive time is not a time");
    }
    Ok((
        Arc::from(received_at),
        bytes::Bytes::copy_from_slice(&rest[tab + 1..]),
    ))
}

fn err(path: &Path, source: std::io::Error) -> WalError {
    WalError {
        path: path.to_owned(),
        source,
    }
}

/// Where a log lives and how big its segments grow.
#[derive(Debug, Clone)]
pub struct WalConfig {
    pub dir: PathBuf,
    pub segment_bytes: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct ConfirmedMark {
    /// The first sequence number not confirmed.
    next: u64,
}

#[derive(Debug, Clone)]
struct Segment {
    base: u64,
    entries: u64,
    path: PathBuf,
}

impl Segment {
    fn end(&self) -> u64 {
        self.base + self.entries
    }
}

struct Inner {
    /// Oldest first; the last one is being written when `writer` is set.
    segments: VecDeque<Segment>,
    writer: Option<File>,
    writer_bytes: u64,
    next_seq: u64,
    confirmed: u64,
    saved_confirmed: u64,
    /// Rolled segments whose data is not synced yet.
    to_sync: Vec<File>,
    unsynced_lines: u64,
    dir_dirty: bool,
    closed: bool,
}

/// A write-ahead log; see the module docs.
pub struct Wal {
    config: WalConfig,
    checkpoint: Checkpoint,
    inner: Mutex<Inner>,
    wake: Condvar,
    syncer: Mutex<Option<JoinHandle<()>>>,
}

/// The unconfirmed lines found on open, read back segment by segment.
pub struct Replay {
    segments: VecDeque<Segment>,
    from: u64,
    /// The segment being read: its reader, the index of its next line and that line's byte offset.
    current: Option<(BufReader<File>, Segment, u64, u64)>,
}

/// The segments in `dir`, oldest first, each counted (a torn tail cut).
fn read_segments(dir: &Path) -> Result<Vec<Segment>, WalError> {
    let mut segments = Vec::new();
    for item in std::fs::read_dir(dir).map_err(|e| err(dir, e))? {
        let path = item.map_err(|e| err(dir, e))?.path();
        let base = (path.extension().and_then(|e| e.to_str()) == Some(SEGMENT_EXT))
            .then(|| path.file_stem()?.to_str()?.parse::<u64>().ok())
            .flatten();
        if let Some(base) = base {
            segments.push(Segment {
                base,
                entries: 0,
                path,
            });
        }
    }
    segments.sort_by_key(|s| s.base);
    for seg in &mut segments {
        seg.entries = count_and_repair(&seg.path)?;
    }
    Ok(segments)
}

/// A confirmed mark past the log's end belongs to another log (or an edit):
/// refused, every segment kept.
fn check_confirmed(
    checkpoint: &Checkpoint,
    segments: &[Segment],
    confirmed: u64,
) -> Result<(), WalError> {
    let log_end = segments
        .iter()
        .filter(|s| s.entries > 0)
        .map(Segment::end)
        .max();
    match log_end.filter(|&end| confirmed > end) {
        Some(end) => Err(err(
            checkpoint.path(),
            std::io::Error::other(format!(
                "says the first {confirmed} lines are confirmed, but the log ends at line {end}: it belongs to another log or was edited. Every segment is kept; if its lines were never delivered, delete {} to deliver them all (duplicates are possible), else delete the segments",
                checkpoint.path().display()
            )),
        )),
        None => Ok(()),
    }
}

impl Wal {
    /// Opens (or creates) the log in `config.dir`, cuts a torn tail, drops
    /// confirmed segments, and starts the sync thread. Returns the lines left
    /// unconfirmed, to be delivered before any new one.
    pub fn open(config: WalConfig) -> Result<(Arc<Wal>, Replay), WalError> {
        let dir = &config.dir;
        std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
        crate::state::remove_stale_temp_files(dir);
        let checkpoint = Checkpoint::new(dir.join(CONFIRMED_FILE));
        let confirmed = checkpoint
            .load::<ConfirmedMark>()
            .map_err(|e| err(checkpoint.path(), std::io::Error::other(e)))?
            .map_or(0, |c| c.next);
        let segments = read_segments(dir)?;
        check_confirmed(&checkpoint, &segments, confirmed)?;
        let mut kept = VecDeque::new();
        let mut next_seq = confirmed;
        for seg in segments {
            next_seq = next_seq.max(seg.end());
            if seg.entries == 0 || seg.end() <= confirmed {
                std::fs::remove_file(&seg.path).map_err(|e| err(&seg.path, e))?;
            } else {
                kept.push_back(seg);
            }
        }
        let unconfirmed: u64 = kept.iter().map(|s| s.end() - s.base.max(confirmed)).sum();
        if unconfirmed > 0 {
            info!(lines = unconfirmed, dir = %dir.display(), "the write-ahead log holds unconfirmed lines from an earlier run: delivering them first");
        }
        let replay = Replay {
            segments: kept.clone(),
            from: confirmed,
            current: None,
        };
        let wal = Arc::new(Wal {
            checkpoint,
            inner: Mutex::new(Inner {
                segments: kept,
                writer: None,
                writer_bytes: 0,
                next_seq,
                confirmed,
                saved_confirmed: confirmed,
                to_sync: Vec::new(),
                unsynced_lines: 0,
                dir_dirty: false,
                closed: false,
            }),
            wake: Condvar::new(),
            syncer: Mutex::new(None),
            config,
        });
        let syncer = {
            let weak = Arc::downgrade(&wal);
            std::thread::Builder::new()
                .name("ingest-wal-sync".into())
                .spawn(move || sync_loop(&weak))
                .map_err(|e| err(&wal.config.dir, e))?
        };
        *wal.syncer.lock().unwrap_or_else(|p| p.into_inner()) = Some(syncer);
        Ok((wal, replay))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sequence number the next appended line gets.
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// Appends lines received at `received_at`; returns the number of the first.
    pub fn append(&self, received_at: &str, lines: &[bytes::Bytes]) -> Result<u64, WalError> {
        let mut inner = self.lock();
        let first = inner.next_seq;
        if lines.is_empty() {
            return Ok(first);
        }
        let mut buf = Vec::with_capacity(
            lines
                .iter()
                .map(|l| l.len() + received_at.len() + CRC_FIELD + 2)
                .sum(),
        );
        for line in lines {
            push_line(&mut buf, received_at, line);
        }
        if inner.writer.is_none() || inner.writer_bytes >= self.config.segment_bytes {
            let path = self.config.dir.join(format!("{first:020}.{SEGMENT_EXT}"));
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)
                .map_err(|e| err(&path, e))?;
            if let Some(old) = inner.writer.replace(file) {
                inner.to_sync.push(old);
            }
            inner.writer_bytes = 0;
            inner.dir_dirty = true;
            inner.segments.push_back(Segment {
                base: first,
                entries: 0,
                path,
            });
        }
        let seg = inner
            .segments
            .back()
            .expect("a segment is open")
            .path
            .clone();
        let writer = inner.writer.as_mut().expect("opened above");
        if let Err(e) = writer.write_all(&buf) {
            // A short write would leave a torn line: cut it off so the next append starts clean.
            let len = inner.writer_bytes;
            if let Some(w) = inner.writer.as_ref() {
                let _ = w.set_len(len);
            }
            return Err(err(&seg, e));
        }
        inner.writer_bytes += buf.len() as u64;
        let n = lines.len() as u64;
        inner
            .segments
            .back_mut()
            .expect("a segment is open")
            .entries += n;
        inner.next_seq += n;
        inner.unsynced_lines += n;
        if inner.unsynced_lines >= SYNC_LINES {
            self.wake.notify_one();
        }
        Ok(first)
    }

    /// Every line numbered below `next` is confirmed by the sinks.
    pub fn confirm(&self, next: u64) {
        let mut inner = self.lock();
        inner.confirmed = inner.confirmed.max(next.min(inner.next_seq));
    }

    /// Syncs what was appended, saves the confirmed mark, deletes confirmed segments.
    pub fn sync(&self) -> Result<(), WalError> {
        let (writer, rolled, dir_dirty, unsynced, confirmed) = {
            let mut inner = self.lock();
            let writer = if inner.unsynced_lines > 0 {
                inner
                    .writer
                    .as_ref()
                    .map(File::try_clone)
                    .transpose()
                    .map_err(|e| err(&self.config.dir, e))?
            } else {
                None
            };
            let unsynced = inner.unsynced_lines;
            inner.unsynced_lines = 0;
            let dir_dirty = std::mem::take(&mut inner.dir_dirty);
            let confirmed = (inner.confirmed != inner.saved_confirmed).then_some(inner.confirmed);
            (
                writer,
                std::mem::take(&mut inner.to_sync),
                dir_dirty,
                unsynced,
                confirmed,
            )
        };
        let dir = &self.config.dir;
        let synced = (|| {
            for f in rolled.iter().chain(writer.as_ref()) {
                f.sync_data()?;
            }
            if dir_dirty {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        if let Err(e) = synced {
            // Try again next time.
            let mut inner = self.lock();
            inner.unsynced_lines += unsynced;
            inner.dir_dirty |= dir_dirty;
            return Err(err(dir, e));
        }
        let Some(next) = confirmed else {
            return Ok(());
        };
        self.checkpoint
            .save(&ConfirmedMark { next })
            .map_err(|e| err(self.checkpoint.path(), std::io::Error::other(e)))?;
        let doomed: Vec<Segment> = {
            let mut inner = self.lock();
            inner.saved_confirmed = next;
            let open = inner.writer.is_some();
            let mut doomed = Vec::new();
            // The segment being written is never deleted: appends would go to an unlinked file.
            while inner.segments.len() > usize::from(open)
                && inner.segments.front().is_some_and(|s| s.end() <= next)
            {
                doomed.extend(inner.segments.pop_front());
            }
            doomed
        };
        for seg in doomed {
            std::fs::remove_file(&seg.path).map_err(|e| err(&seg.path, e))?;
        }
        Ok(())
    }

    /// Stops the sync thread after a last sync; a log wholly confirmed is
    /// left with no segment (so a leftover segment means unconfirmed lines).
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
        let handle = self.syncer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        let doomed: Vec<Segment> = {
            let mut inner = self.lock();
            let saved = inner.saved_confirmed;
            if inner.segments.iter().all(|s| s.end() <= saved) {
                inner.writer = None;
                inner.segments.drain(..).collect()
            } else {
                Vec::new()
            }
        };
        for seg in doomed {
            if let Err(e) = std::fs::remove_file(&seg.path) {
                warn!(path = %seg.path.display(), error = %e, "cannot delete a confirmed write-ahead log segment");
            }
        }
    }

    /// The first unconfirmed sequence number (for tests and logs).
    pub fn confirmed(&self) -> u64 {
        self.lock().confirmed
    }
}

/// True if `dir` holds a log segment: lines an earlier run left unconfirmed.
pub fn holds_lines(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|items| {
        items
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == SEGMENT_EXT))
    })
}

/// Syncs every [`SYNC_INTERVAL`] (sooner after [`SYNC_LINES`] lines) until the
/// log is closed or dropped.
fn sync_loop(weak: &std::sync::Weak<Wal>) {
    loop {
        let Some(wal) = weak.upgrade() else { return };
        let closed = {
            let inner = wal.lock();
            let (inner, _) = wal
                .wake
                .wait_timeout_while(inner, SYNC_INTERVAL, |i| {
                    !i.closed && i.unsynced_lines < SYNC_LINES
                })
                .unwrap_or_else(|p| p.into_inner());
            inner.closed
        };
        if let Err(e) = wal.sync() {
            error!(error = %e, "cannot sync the write-ahead log; retrying");
        }
        if closed {
            return;
        }
    }
}

/// Counts the whole lines of a segment and cuts a torn tail off.
fn count_and_repair(path: &Path) -> Result<u64, WalError> {
    let bytes = std::fs::read(path).map_err(|e| err(path, e))?;
    let whole = memchr::memrchr(b'\n', &bytes).map_or(0, |i| i + 1);
    if whole < bytes.len() {
        warn!(
            path = %path.display(),
            bytes = bytes.len() - whole,
            "cut a torn line off the write-ahead log (a crash interrupted its write: it was never confirmed)"
        );
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| err(path, e))?;
        f.set_len(whole as u64).map_err(|e| err(path, e))?;
        f.sync_all().map_err(|e| err(path, e))?;
    }
    Ok(memchr::memchr_iter(b'\n', &bytes[..whole]).count() as u64)
}

impl Replay {
    /// Lines left to replay in all.
    pub fn remaining(&self) -> u64 {
        let from = self.from;
        self.segments
            .iter()
            .map(|s| s.end() - s.base.max(from))
            .sum::<u64>()
            + self
                .current
                .as_ref()
                .map_or(0, |(_, s, i, _)| s.end() - (s.base + *i).max(from))
    }

    /// Up to `max` lines with their sequence numbers, in order; empty when done.
    pub fn next_batch(&mut self, max: usize) -> Result<Vec<(u64, Replayed)>, WalError> {
        let mut out = Vec::new();
        let mut line = Vec::new();
        while out.len() < max {
            if self.current.is_none() {
                let Some(seg) = self.segments.pop_front() else {
                    break;
                };
                let file = File::open(&seg.path).map_err(|e| err(&seg.path, e))?;
                self.current = Some((BufReader::new(file), seg, 0, 0));
            }
            let (reader, seg, index, offset) = self.current.as_mut().expect("set above");
            if *index >= seg.entries {
                self.current = None;
                continue;
            }
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| err(&seg.path, e))?;
            if n == 0 {
                // Shorter than counted (changed underneath): nothing more here.
                self.current = None;
                continue;
            }
            let seq = seg.base + *index;
            let at = *offset;
            *index += 1;
            *offset += n as u64;
            if seq < self.from {
                continue;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            let item = match parse_line(&line) {
                Ok(entry) => Replayed::Line(entry),
                Err(why) => Replayed::Bad {
                    reason: format!(
                        "write-ahead log line {seq} (segment {}, byte {at}): {why}",
                        seg.path.display()
                    ),
                    bytes: std::mem::take(&mut line),
                },
            };
            out.push((seq, item));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
