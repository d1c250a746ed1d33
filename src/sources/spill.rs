//! An ordered queue between a socket reader and the pipeline that never makes
//! the reader wait on slow sinks: lines stay in memory up to a limit, then go to
//! a spill file in the state dir, and come back in order as the sinks catch up.
//! Past the spill file's limit the reader waits (and says so).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tracing::{info, warn};

/// One received line and when it arrived.
pub type Entry = (Arc<str>, Vec<u8>);

/// Limits of a [`SpillQueue`].
#[derive(Debug, Clone)]
pub struct SpillConfig {
    /// Bytes of lines held in memory before spilling.
    pub memory_bytes: usize,
    /// Bytes the spill file may hold; past it the reader waits.
    pub max_file_bytes: u64,
    /// The spill file.
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[error("spill file {path}: {source}")]
pub struct SpillError {
    path: PathBuf,
    source: std::io::Error,
}

/// Write buffer of the spill file: lines go to disk in large writes, not one
/// system call each (the file is flushed before it is read back).
const SPILL_WRITE_BUFFER: usize = 256 * 1024;

struct SpillFile {
    writer: BufWriter<File>,
    reader: BufReader<File>,
    entries: u64,
    bytes: u64,
}

struct Inner {
    memory: VecDeque<Entry>,
    memory_bytes: usize,
    file: Option<SpillFile>,
    closed: bool,
    spilled_total: u64,
    warned_full: bool,
}

/// A single-producer, single-consumer ordered queue with a spill file.
pub struct SpillQueue {
    config: SpillConfig,
    inner: Mutex<Inner>,
    data: Notify,
    space: Notify,
}

impl SpillQueue {
    pub fn new(config: SpillConfig) -> Self {
        SpillQueue {
            config,
            inner: Mutex::new(Inner {
                memory: VecDeque::new(),
                memory_bytes: 0,
                file: None,
                closed: false,
                spilled_total: 0,
                warned_full: false,
            }),
            data: Notify::new(),
            space: Notify::new(),
        }
    }

    fn err(&self, source: std::io::Error) -> SpillError {
        SpillError {
            path: self.config.path.clone(),
            source,
        }
    }

    /// Lines written to the spill file so far.
    pub fn spilled_total(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .spilled_total
    }

    /// Adds lines in order, under one lock for all that fit in memory or in
    /// the spill file; waits (line by line) only when both are full.
    pub async fn push_many(
        &self,
        received_at: &Arc<str>,
        lines: &mut Vec<Vec<u8>>,
    ) -> Result<(), SpillError> {
        let mut rest = lines.drain(..).peekable();
        {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            while let Some(line) = rest.peek() {
                if inner.file.is_some()
                    || inner.memory_bytes + line.len() > self.config.memory_bytes
                {
                    break;
                }
                let line = rest.next().expect("peeked");
                inner.memory_bytes += line.len();
                inner.memory.push_back((received_at.clone(), line));
            }
            while let Some(line) = rest.peek() {
                if !self.spill(&mut inner, received_at, line)? {
                    break;
                }
                rest.next();
            }
        }
        self.data.notify_one();
        for line in rest {
            self.push(received_at, &line).await?;
        }
        Ok(())
    }

    /// Appends a line to the spill file (opening it first); false when the
    /// file is full.
    fn spill(
        &self,
        inner: &mut Inner,
        received_at: &Arc<str>,
        line: &[u8],
    ) -> Result<bool, SpillError> {
        let entry_len = (received_at.len() + line.len() + 2) as u64;
        let used = inner.file.as_ref().map_or(0, |f| f.bytes);
        if used + entry_len > self.config.max_file_bytes {
            if !inner.warned_full {
                inner.warned_full = true;
                warn!(
                    spill_bytes = used,
                    limit = self.config.max_file_bytes,
                    "the spill file is full: the reader waits for the sinks to catch up (the server may disconnect a slow reader)"
                );
            }
            return Ok(false);
        }
        if inner.file.is_none() {
            info!(path = %self.config.path.display(), "sinks are behind: spilling received lines to disk, in order");
            inner.file = Some(self.open()?);
        }
        let file = inner.file.as_mut().expect("opened above");
        let w = &mut file.writer;
        w.write_all(received_at.as_bytes())
            .and_then(|()| w.write_all(b"\t"))
            .and_then(|()| w.write_all(line))
            .and_then(|()| w.write_all(b"\n"))
            .map_err(|e| self.err(e))?;
        file.entries += 1;
        file.bytes += entry_len;
        inner.spilled_total += 1;
        inner.warned_full = false;
        Ok(true)
    }

    /// Adds a line; waits only when memory and the spill file are both full.
    pub async fn push(&self, received_at: &Arc<str>, line: &[u8]) -> Result<(), SpillError> {
        loop {
            {
                let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                // Once spilling, everything goes to the file until it drains: order is kept.
                if inner.file.is_none()
                    && inner.memory_bytes + line.len() <= self.config.memory_bytes
                {
                    inner.memory_bytes += line.len();
                    inner.memory.push_back((received_at.clone(), line.to_vec()));
                    drop(inner);
                    self.data.notify_one();
                    return Ok(());
                }
                if self.spill(&mut inner, received_at, line)? {
                    drop(inner);
                    self.data.notify_one();
                    return Ok(());
                }
            }
            self.space.notified().await;
        }
    }

    /// The producer found memory and the spill file full and waits for room.
    #[cfg(test)]
    fn waiting_for_room(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .warned_full
    }

    fn open(&self) -> Result<SpillFile, SpillError> {
        if let Some(dir) = self.config.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.err(e))?;
        }
        let writer = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.config.path)
            .map_err(|e| self.err(e))?;
        let writer = BufWriter::with_capacity(SPILL_WRITE_BUFFER, writer);
        let reader = BufReader::with_capacity(
            SPILL_WRITE_BUFFER,
            File::open(&self.config.path).map_err(|e| self.err(e))?,
        );
        Ok(SpillFile {
            writer,
            reader,
            entries: 0,
            bytes: 0,
        })
    }

    /// Takes up to `max` lines in order; `None` once closed and empty.
    pub async fn pop(&self, max: usize) -> Result<Option<Vec<Entry>>, SpillError> {
        loop {
            {
                let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                if inner.memory.is_empty() && inner.file.is_some() {
                    self.refill(&mut inner, max)?;
                }
                if !inner.memory.is_empty() {
                    let n = max.min(inner.memory.len());
                    let out: Vec<Entry> = inner.memory.drain(..n).collect();
                    inner.memory_bytes -= out.iter().map(|(_, l)| l.len()).sum::<usize>();
                    drop(inner);
                    self.space.notify_one();
                    return Ok(Some(out));
                }
                if inner.closed {
                    return Ok(None);
                }
            }
            self.data.notified().await;
        }
    }

    /// Moves up to `max` entries from the spill file back to memory.
    fn refill(&self, inner: &mut Inner, max: usize) -> Result<(), SpillError> {
        let Some(file) = inner.file.as_mut() else {
            return Ok(());
        };
        file.writer.flush().map_err(|e| self.err(e))?;
        let mut line = Vec::new();
        let mut moved: Vec<Entry> = Vec::new();
        while moved.len() < max && file.entries > 0 {
            line.clear();
            let n = file
                .reader
                .read_until(b'\n', &mut line)
                .map_err(|e| self.err(e))?;
            if n == 0 {
                break;
            }
            line.pop();
            let tab = memchr::memchr(b'\t', &line).unwrap_or(0);
            // The lines of one read share their stamp: share it again.
            let stamp = String::from_utf8_lossy(&line[..tab]);
            let received_at = match moved.last() {
                Some((last, _)) if **last == *stamp => last.clone(),
                _ => Arc::from(stamp.as_ref()),
            };
            moved.push((received_at, line[tab + 1..].to_vec()));
            file.entries -= 1;
        }
        let drained = file.entries == 0;
        for (r, l) in moved {
            inner.memory_bytes += l.len();
            inner.memory.push_back((r, l));
        }
        if drained {
            inner.file = None;
            let _ = std::fs::remove_file(&self.config.path);
            info!("caught up: the spill file is drained");
        }
        self.space.notify_one();
        Ok(())
    }

    /// No more pushes; `pop` returns `None` once everything was taken.
    pub fn close(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.data.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(dir: &tempfile::TempDir, memory_bytes: usize, max_file_bytes: u64) -> Arc<SpillQueue> {
        Arc::new(SpillQueue::new(SpillConfig {
            memory_bytes,
            max_file_bytes,
            path: dir.path().join("spill/x.spill"),
        }))
    }

    #[tokio::test]
    async fn order_is_kept_across_memory_and_the_spill_file() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir, 50, 1 << 20);
        let at: Arc<str> = Arc::from("2026-01-01T00:00:00.000Z");
        for i in 0..100 {
            q.push(&at, format!("line {i}").as_bytes()).await.unwrap();
        }
        assert!(q.spilled_total() > 90, "most lines went to disk");
        assert!(dir.path().join("spill/x.spill").exists());
        q.close();
        let mut got = Vec::new();
        while let Some(batch) = q.pop(7).await.unwrap() {
            for (r, l) in batch {
                assert_eq!(&*r, "2026-01-01T00:00:00.000Z");
                got.push(String::from_utf8(l).unwrap());
            }
        }
        let expected: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        assert_eq!(got, expected);
        assert!(
            !dir.path().join("spill/x.spill").exists(),
            "removed once drained"
        );
    }

    #[tokio::test]
    async fn a_full_spill_file_makes_the_producer_wait_not_drop() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir, 10, 200);
        let at: Arc<str> = Arc::from("t");
        let producer = {
            let q = q.clone();
            tokio::spawn(async move {
                for i in 0..200 {
                    q.push(&at, format!("{i:05}").as_bytes()).await.unwrap();
                }
                q.close();
            })
        };
        // Let the producer run until it reports it is waiting for room.
        tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while !q.waiting_for_room() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the producer filled memory and the spill file");
        assert!(!producer.is_finished(), "the producer waits for room");
        assert!(q.spilled_total() < 200, "it could not push everything");
        let mut n = 0;
        let mut last = -1i64;
        while let Some(batch) = q.pop(3).await.unwrap() {
            for (_, l) in batch {
                let v: i64 = String::from_utf8(l).unwrap().parse().unwrap();
                assert_eq!(v, last + 1);
                last = v;
                n += 1;
            }
        }
        assert_eq!(n, 200);
        producer.await.unwrap();
    }
}
