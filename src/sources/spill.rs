//! An ordered queue between a socket reader and the pipeline that never makes
//! the reader wait on slow sinks: lines stay in memory up to a limit, then go to
//! a spill file in the state dir, and come back in order as the sinks catch up.
//! Past the spill file's limit the reader waits (and says so).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;
use tracing::{info, warn};

/// One received line and when it arrived. The line usually shares the bytes
/// of the chunk it was read from.
pub type Entry = (Arc<str>, Bytes);

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

/// Write buffer of the spill file: blocks go to disk in large writes, not one
/// system call each (the file is flushed before it is read back).
const SPILL_WRITE_BUFFER: usize = 256 * 1024;

/// Bytes of a block's header besides its receive time: two tabs, two
/// decimal numbers of at most 20 digits, a newline.
const BLOCK_HEADER_BYTES: u64 = 43;

struct SpillFile {
    writer: BufWriter<File>,
    reader: BufReader<File>,
    /// Lines in the file not read back yet.
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
///
/// The spill file holds blocks, one per read that spilled: a header
/// `<received_at>\t<lines>\t<body bytes>\n`, then the lines, each ended by
/// `\n` (a stream line holds no newline). A block is written with one copy
/// into the write buffer and read back with one read into one buffer that
/// its lines then share.
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
    /// the spill file (as one block); waits (line by line) only when both are
    /// full.
    pub async fn push_many(
        &self,
        received_at: &Arc<str>,
        lines: &mut Vec<Bytes>,
    ) -> Result<(), SpillError> {
        let mut rest = lines.drain(..);
        let mut left: Vec<Bytes> = Vec::new();
        {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            for line in rest.by_ref() {
                if inner.file.is_some()
                    || inner.memory_bytes + line.len() > self.config.memory_bytes
                {
                    left.push(line);
                    break;
                }
                inner.memory_bytes += line.len();
                inner.memory.push_back((received_at.clone(), line));
            }
            left.extend(rest);
            let spilled = self.spill(&mut inner, received_at, &left)?;
            left.drain(..spilled);
        }
        self.data.notify_one();
        for line in left {
            self.push(received_at, line).await?;
        }
        Ok(())
    }

    /// Appends as many of `lines` as fit to the spill file, as one block
    /// (opening the file first); returns how many.
    fn spill(
        &self,
        inner: &mut Inner,
        received_at: &Arc<str>,
        lines: &[Bytes],
    ) -> Result<usize, SpillError> {
        if lines.is_empty() {
            return Ok(0);
        }
        let used = inner.file.as_ref().map_or(0, |f| f.bytes);
        let mut size = received_at.len() as u64 + BLOCK_HEADER_BYTES;
        let mut fit = 0;
        for line in lines {
            let next = size + line.len() as u64 + 1;
            if used + next > self.config.max_file_bytes {
                break;
            }
            size = next;
            fit += 1;
        }
        if fit == 0 {
            if !inner.warned_full {
                inner.warned_full = true;
                warn!(
                    spill_bytes = used,
                    limit = self.config.max_file_bytes,
                    "the spill file is full: the reader waits for the sinks to catch up (the server may disconnect a slow reader)"
                );
            }
            return Ok(0);
        }
        if inner.file.is_none() {
            info!(path = %self.config.path.display(), "sinks are behind: spilling received lines to disk, in order");
            inner.file = Some(self.open()?);
        }
        let file = inner.file.as_mut().expect("opened above");
        let block = &lines[..fit];
        let body: usize = block.iter().map(|l| l.len() + 1).sum();
        let w = &mut file.writer;
        let header = format!("{received_at}\t{fit}\t{body}\n");
        let written = w.write_all(header.as_bytes()).and_then(|()| {
            block
                .iter()
                .try_for_each(|l| w.write_all(l).and_then(|()| w.write_all(b"\n")))
        });
        written.map_err(|e| self.err(e))?;
        file.entries += fit as u64;
        file.bytes += size;
        inner.spilled_total += fit as u64;
        inner.warned_full = false;
        Ok(fit)
    }

    /// Adds a line; waits only when memory and the spill file are both full.
    pub async fn push(&self, received_at: &Arc<str>, line: Bytes) -> Result<(), SpillError> {
        let one = [line];
        loop {
            {
                let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                // Once spilling, everything goes to the file until it drains: order is kept.
                if inner.file.is_none()
                    && inner.memory_bytes + one[0].len() <= self.config.memory_bytes
                {
                    inner.memory_bytes += one[0].len();
                    let [line] = one;
                    inner.memory.push_back((received_at.clone(), line));
                    drop(inner);
                    self.data.notify_one();
                    return Ok(());
                }
                if self.spill(&mut inner, received_at, &one)? == 1 {
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

    /// Moves whole blocks from the spill file back to memory, until at least
    /// `max` lines moved or the file is drained.
    fn refill(&self, inner: &mut Inner, max: usize) -> Result<(), SpillError> {
        let Some(file) = inner.file.as_mut() else {
            return Ok(());
        };
        file.writer.flush().map_err(|e| self.err(e))?;
        let mut moved: Vec<Entry> = Vec::new();
        while moved.len() < max && file.entries > 0 {
            let (received_at, body) =
                read_block(&mut file.reader, moved.last()).map_err(|e| self.err(e))?;
            let mut rest = body;
            while let Some(end) = memchr::memchr(b'\n', &rest) {
                let line = rest.split_to(end + 1);
                moved.push((received_at.clone(), line.slice(..end)));
                file.entries = file.entries.saturating_sub(1);
            }
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

/// Reads one block: its receive time (shared with `last` when equal) and its
/// body of `\n`-ended lines, in one buffer.
fn read_block(
    reader: &mut BufReader<File>,
    last: Option<&Entry>,
) -> std::io::Result<(Arc<str>, Bytes)> {
    let bad = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("damaged block: {what}"),
        )
    };
    let mut header = Vec::new();
    reader.read_until(b'\n', &mut header)?;
    if header.pop() != Some(b'\n') {
        return Err(bad("the file ends inside a header"));
    }
    let header = std::str::from_utf8(&header).map_err(|_| bad("a header that is not text"))?;
    let mut fields = header.rsplitn(3, '\t');
    let body_len: usize = fields
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| bad("no body length"))?;
    let _lines: u64 = fields
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| bad("no line count"))?;
    let stamp = fields.next().ok_or_else(|| bad("no receive time"))?;
    let received_at = match last {
        // The blocks of one read share their stamp: share it again.
        Some((at, _)) if **at == *stamp => at.clone(),
        _ => Arc::from(stamp),
    };
    let mut body = vec![0; body_len];
    reader.read_exact(&mut body)?;
    Ok((received_at, Bytes::from(body)))
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
            q.push(&at, Bytes::from(format!("line {i}"))).await.unwrap();
        }
        assert!(q.spilled_total() > 90, "most lines went to disk");
        assert!(dir.path().join("spill/x.spill").exists());
        q.close();
        let mut got = Vec::new();
        while let Some(batch) = q.pop(7).await.unwrap() {
            for (r, l) in batch {
                assert_eq!(&*r, "2026-01-01T00:00:00.000Z");
                got.push(String::from_utf8(l.to_vec()).unwrap());
            }
        }
        let expected: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        assert_eq!(got, expected);
        assert!(
            !dir.path().join("spill/x.spill").exists(),
            "removed once drained"
        );
    }

    /// Once memory is full, the lines of one read go to the file as one
    /// block (one header), and come back sharing one buffer, in order.
    #[tokio::test]
    async fn a_read_that_spills_is_one_block_read_back_into_one_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir, 0, 1 << 20);
        let at: Arc<str> = Arc::from("2026-01-01T00:00:00.000Z");
        let mut lines: Vec<Bytes> = (0..50)
            .map(|i| Bytes::from(format!("line {i:02}")))
            .collect();
        q.push_many(&at, &mut lines).await.unwrap();
        assert_eq!(q.spilled_total(), 50);
        q.close();
        let batch = q.pop(100).await.unwrap().expect("the block");
        assert_eq!(batch.len(), 50);
        for (i, (r, l)) in batch.iter().enumerate() {
            assert_eq!(&**r, "2026-01-01T00:00:00.000Z");
            assert_eq!(&l[..], format!("line {i:02}").as_bytes());
        }
        assert!(
            Arc::ptr_eq(&batch[0].0, &batch[49].0),
            "one stamp per block"
        );
        for pair in batch.windows(2) {
            let (a, b) = (&pair[0].1, &pair[1].1);
            assert_eq!(
                unsafe { a.as_ptr().add(a.len() + 1) },
                b.as_ptr(),
                "one buffer"
            );
        }
        assert!(q.pop(100).await.unwrap().is_none());
    }

    #[test]
    fn a_damaged_block_header_is_an_error_not_a_guess() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["t\t1\n", "t\tx\t3\nab\n", "t\t1\t99\nab\n", "t\t1"] {
            let path = dir.path().join("bad.spill");
            std::fs::write(&path, bad).unwrap();
            let mut reader = BufReader::new(File::open(&path).unwrap());
            let err = read_block(&mut reader, None).expect_err(bad);
            assert!(
                matches!(
                    err.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                ),
                "{bad:?}: {err}"
            );
        }
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
                    q.push(&at, Bytes::from(format!("{i:05}"))).await.unwrap();
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
                let v: i64 = std::str::from_utf8(&l).unwrap().parse().unwrap();
                assert_eq!(v, last + 1);
                last = v;
                n += 1;
            }
        }
        assert_eq!(n, 200);
        producer.await.unwrap();
    }
}
