//! The pipeline: fan-out to a bounded queue per sink, batching, retry with
//! backoff, dead letters, acks, limits and the stop path.
//!
//! ```text
//! source ──batches──▶ router ──▶ per-sink bounded queue ──▶ sink worker: batch, write, confirm
//!    ▲                                                          │
//!    └─────────── ack when every sink confirmed (or dead-lettered) ◀┘
//! ```

mod router;
mod worker;

pub use router::{RouterOutcome, RunLimits, route};
pub use worker::spawn_sink;

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::record::Record;
use crate::sinks::CommonSinkConfig;
use crate::sinks::Sink;

/// Source batches in flight between a source and the router (the router then
/// holds records within the [`MemoryBudget`]; this keeps what waits before it small).
pub const SOURCE_CHANNEL_CAPACITY: usize = 2;

/// Bytes of records (by [`Record::approx_size`]) the pipeline holds at most,
/// from the router until the last sink is done with them, unless a sink's
/// `batch.max_bytes` asks for more: the budget is at least one and a half
/// times the largest, so a sink writes (and fsyncs) one batch while the next
/// one fills.
pub const MEMORY_BUDGET_BYTES: usize = 8 * 1024 * 1024;

/// The records the pipeline holds, bounded in bytes: the router takes room for
/// a batch before handing it to the sinks and the room comes back when every
/// sink is done with it. While the router waits for room, sinks write what they
/// have instead of lingering for fuller batches.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    room: Arc<tokio::sync::Semaphore>,
    total: usize,
    starved: Arc<Starved>,
}

/// Set while the router waits for room; sinks that linger are woken.
#[derive(Debug, Default)]
struct Starved {
    flag: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
}

impl Starved {
    fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Resolves once the router starts waiting for room (at once if it is).
    async fn wait(&self) {
        let woken = self.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if !self.is_set() {
            woken.await;
        }
    }
}

impl MemoryBudget {
    /// A budget of `total` bytes (at least 1, at most `u32::MAX`).
    pub fn new(total: usize) -> Self {
        let total = total.clamp(1, u32::MAX as usize);
        MemoryBudget {
            room: Arc::new(tokio::sync::Semaphore::new(total)),
            total,
            starved: Arc::default(),
        }
    }

    /// The budget for these sinks: [`MEMORY_BUDGET_BYTES`], or what the
    /// hungriest sink holds at once plus half a batch: one and a half times
    /// its `batch.max_bytes`, one batch written while the next fills (with a
    /// budget of one batch, normalizing waited for every fsync: half the
    /// replay rate), or two and a half for a sink that keeps a batch in
    /// flight while it sends the next (Kafka: with one and a half, every
    /// other batch was cut to the half left over).
    pub fn for_sinks(sinks: &[SinkHandle]) -> Self {
        let needed = sinks
            .iter()
            .map(|s| {
                s.batch_bytes
                    .saturating_mul(s.batches_held)
                    .saturating_add(s.batch_bytes / 2)
            })
            .max()
            .unwrap_or(0);
        Self::new(MEMORY_BUDGET_BYTES.max(needed))
    }

    /// Room for `bytes` (a batch larger than the whole budget takes all of it);
    /// waits until the sinks gave enough back.
    async fn take(&self, bytes: usize) -> Room {
        let n = bytes.clamp(1, self.total) as u32;
        let permit = match self.room.clone().try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(_) => {
                self.starved.flag.store(true, Ordering::Release);
                self.starved.wake.notify_waiters();
                let p = self.room.clone().acquire_many_owned(n).await;
                self.starved.flag.store(false, Ordering::Release);
                p.expect("the budget's semaphore is never closed")
            }
        };
        Room {
            _permit: permit,
            starved: self.starved.clone(),
        }
    }

    /// Room for `bytes` of media being downloaded and stored (at most the
    /// whole budget), held until the [`Reservation`] is dropped: media bytes
    /// count in the same budget as records, so a slow media store slows the
    /// source instead of growing memory.
    pub async fn reserve(&self, bytes: usize) -> Reservation {
        Reservation(self.take(bytes).await)
    }

    /// Bytes of records held now.
    pub fn used(&self) -> usize {
        self.total - self.room.available_permits()
    }

    /// The budget's size in bytes.
    pub fn total(&self) -> usize {
        self.total
    }
}

/// A batch's share of the [`MemoryBudget`], given back when dropped.
#[derive(Debug)]
struct Room {
    _permit: tokio::sync::OwnedSemaphorePermit,
    starved: Arc<Starved>,
}

/// Room in the [`MemoryBudget`] held outside the router (media downloads).
#[derive(Debug)]
pub struct Reservation(#[allow(dead_code)] Room);

/// How a source batch ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Outcome {
    /// Every sink confirmed every record.
    Delivered = 0,
    /// Some records went to the dead-letter file instead: kept, not delivered.
    DeadLettered = 1,
    /// Some records could be neither delivered nor dead-lettered.
    Lost = 2,
}

/// The ack a source receives for a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// How many records of the batch entered the pipeline (a record limit may cut a batch).
    pub accepted: usize,
    pub outcome: Outcome,
}

/// Records from a source, with an optional ack channel.
#[derive(Debug)]
pub struct SourceBatch {
    pub records: Vec<Arc<Record>>,
    pub ack: Option<oneshot::Sender<Ack>>,
    /// The source keeps sending while this ack is pending.
    keeps_sending: bool,
}

impl SourceBatch {
    /// A source that waits for this batch's ack sends nothing more until then:
    /// sinks write it at once instead of lingering for a fuller batch.
    fn urgent(&self) -> bool {
        self.ack.is_some() && !self.keeps_sending
    }
}

impl SourceBatch {
    /// A batch whose source needs no ack.
    pub fn new(records: Vec<Arc<Record>>) -> Self {
        SourceBatch {
            records,
            ack: None,
            keeps_sending: false,
        }
    }

    /// A batch and the receiver of its ack.
    pub fn with_ack(records: Vec<Arc<Record>>) -> (Self, oneshot::Receiver<Ack>) {
        let (tx, rx) = oneshot::channel();
        (
            SourceBatch {
                records,
                ack: Some(tx),
                keeps_sending: false,
            },
            rx,
        )
    }

    /// A batch with an ack that its source does not wait for before sending
    /// more (it only records it): sinks linger for fuller batches as usual.
    pub fn with_ack_lingering(records: Vec<Arc<Record>>) -> (Self, oneshot::Receiver<Ack>) {
        let (mut batch, rx) = Self::with_ack(records);
        batch.keeps_sending = true;
        (batch, rx)
    }
}

/// Fires a batch's ack once every sink is done with it.
#[derive(Debug)]
struct AckState {
    remaining: AtomicUsize,
    worst: AtomicU8,
    accepted: usize,
    tx: Mutex<Option<oneshot::Sender<Ack>>>,
}

impl AckState {
    fn done(&self, outcome: Outcome) {
        self.worst.fetch_max(outcome as u8, Ordering::AcqRel);
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let outcome = match self.worst.load(Ordering::Acquire) {
                0 => Outcome::Delivered,
                1 => Outcome::DeadLettered,
                _ => Outcome::Lost,
            };
            if let Some(tx) = self.tx.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = tx.send(Ack {
                    accepted: self.accepted,
                    outcome,
                });
            }
        }
    }
}

/// One source batch on its way through a sink's queue.
#[derive(Debug)]
struct Delivery {
    records: Vec<Arc<Record>>,
    bytes: usize,
    ack: Arc<AckState>,
    urgent: bool,
    /// Its share of the memory budget, until every sink is done with it.
    room: Room,
}

/// Per-sink counters.
#[derive(Debug, Default)]
pub struct SinkCounters {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub lost: AtomicU64,
    pub batches: AtomicU64,
    pub flush_failed: AtomicU64,
    /// Records not written because the destination was closed (stdout's reader left).
    pub unwritten: AtomicU64,
    /// Stored posts deleted on a compliance `delete` event (MongoDB `apply_compliance`).
    pub compliance_deleted: AtomicU64,
}

/// A sink's figures in the summary.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SinkSummary {
    #[serde(rename = "type")]
    pub kind: String,
    pub delivered: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub lost: u64,
    /// Records not written because the destination was closed (`| head`).
    #[serde(skip_serializing_if = "is_zero")]
    pub unwritten: u64,
    pub batches: u64,
    /// Stored posts deleted on a compliance `delete` event (MongoDB `apply_compliance`).
    #[serde(skip_serializing_if = "is_zero")]
    pub compliance_deleted: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why the run stopped.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The source had nothing more (end of input).
    EndOfInput,
    Duration,
    MaxRecords,
    Signal,
    SourceFailed,
    /// A sink's destination was closed by its reader (stdout piped into `head`).
    OutputClosed,
}

/// A sink ready to run, with its worker's settings.
pub struct SinkSpec<S: Sink> {
    pub sink: S,
    pub kind: &'static str,
    pub config: CommonSinkConfig,
}

/// A running sink worker.
pub struct SinkHandle {
    pub name: String,
    pub kind: &'static str,
    /// How long the worker may wait to fill a batch (`batch.timeout_ms`).
    linger: Duration,
    /// `batch.max_bytes`: the memory budget makes room for it.
    batch_bytes: usize,
    /// Batches the sink holds at once besides the one filling (2 when it
    /// keeps one in flight while it sends the next).
    batches_held: usize,
    tx: mpsc::Sender<Arc<Delivery>>,
    counters: Arc<SinkCounters>,
    /// Cancelled by the worker when its destination was closed: the run stops.
    closed: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// A live view of a running sink for metrics and progress: its counters and
/// its queue, without keeping the queue open (the sender is weak).
#[derive(Debug, Clone)]
pub struct SinkProbe {
    pub name: String,
    pub kind: &'static str,
    pub counters: Arc<SinkCounters>,
    /// How long the sink may hold records to fill a batch: not a sign of trouble.
    pub linger: Duration,
    queue: mpsc::WeakSender<Arc<Delivery>>,
}

impl SinkProbe {
    /// Source batches waiting in the sink's queue (0 once the queue is closed).
    pub fn queue_depth(&self) -> usize {
        self.queue
            .upgrade()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    /// The queue's capacity, in source batches.
    pub fn queue_capacity(&self) -> usize {
        self.queue.upgrade().map_or(0, |tx| tx.max_capacity())
    }

    /// A probe with no running sink behind it, for tests of what reads probes.
    #[cfg(test)]
    pub fn detached(name: &str, counters: Arc<SinkCounters>, linger: Duration) -> Self {
        let (tx, _rx) = mpsc::channel(1);
        SinkProbe {
            name: name.to_owned(),
            kind: "test",
            counters,
            linger,
            queue: tx.downgrade(),
        }
    }
}

impl SinkHandle {
    pub fn probe(&self) -> SinkProbe {
        SinkProbe {
            name: self.name.clone(),
            kind: self.kind,
            counters: self.counters.clone(),
            linger: self.linger,
            queue: self.tx.downgrade(),
        }
    }
}

fn summarize(kind: &str, c: &SinkCounters) -> SinkSummary {
    SinkSummary {
        kind: kind.to_owned(),
        delivered: c.delivered.load(Ordering::Relaxed),
        retried: c.retried.load(Ordering::Relaxed),
        dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
        lost: c.lost.load(Ordering::Relaxed),
        unwritten: c.unwritten.load(Ordering::Relaxed),
        batches: c.batches.load(Ordering::Relaxed),
        compliance_deleted: c.compliance_deleted.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests;
