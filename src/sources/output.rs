//! The one handle a source sends through: batches, batches with a checkpoint
//! to confirm, dead letters for input it cannot use, and the `received_at` stamp.
//!
//! A source that checkpoints gives every record the position that confirms
//! everything before it (a log sequence number, a Telegram `update_id`) and
//! the batch the position after its last item, including items that made no
//! record. The pipeline may cut a batch at `--max-records`; the handle turns
//! the pipeline's ack into the one position confirmed in order ([`Confirmed`]),
//! so no source translates an accepted count itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::SourceCounters;
use crate::pipeline::{Ack, Outcome, SourceBatch};
use crate::record::{Record, rfc3339};
use crate::state::{DeadLetters, StateError};

/// Malformed items logged one by one before the handle only counts them.
const MALFORMED_LOGGED: u64 = 10;

/// The time an item was received, as records carry it (RFC 3339, UTC).
pub fn received_now() -> Arc<str> {
    rfc3339(chrono::Utc::now()).into()
}

/// Where unusable input came from: the dead letter's `source` and what the
/// warning calls one item.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// The `source` field of the dead letter (`telegram-webhook`, `replay`).
    pub label: &'static str,
    /// One item in the warning (`update`, `input line`).
    pub item: &'static str,
}

/// Fetches and stores the media records point at (`--media`), filling each
/// pending item's `stored`, `skipped` or `error`. The handle calls it before a
/// batch enters the pipeline, so a checkpoint that confirms a record also
/// confirms its media, and a slow media store holds the source back.
pub trait MediaResolver: Send + Sync + std::fmt::Debug {
    /// Resolves every pending media item of `records`.
    fn resolve<'a>(
        &'a self,
        records: &'a mut [Arc<Record>],
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// Records with their positions in the source's checkpoint space.
#[derive(Debug, Default)]
pub struct Tracked {
    records: Vec<Arc<Record>>,
    positions: Vec<u64>,
    end: u64,
}

impl Tracked {
    /// An empty batch whose checkpoint stands at `start`.
    pub fn starting_at(start: u64) -> Self {
        Tracked {
            end: start,
            ..Tracked::default()
        }
    }

    /// Records numbered `0..n`: confirmed whole or not at all.
    pub fn whole(records: Vec<Arc<Record>>) -> Self {
        let n = records.len() as u64;
        Tracked {
            records,
            positions: (0..n).collect(),
            end: n,
        }
    }

    /// The item at `position` was handled; `record` is what it became, if anything.
    pub fn push(&mut self, position: u64, record: Option<Arc<Record>>) {
        if let Some(record) = record {
            self.records.push(record);
            self.positions.push(position);
        }
        self.end = self.end.max(position + 1);
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records, for a source that needs no ack.
    pub fn into_records(self) -> Vec<Arc<Record>> {
        self.records
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// The position after every item of the batch.
    pub fn end(&self) -> u64 {
        self.end
    }
}

/// What the sinks confirmed of a [`Tracked`] batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmed {
    pub outcome: Outcome,
    /// Every item before this position is confirmed (in order); the rest is not.
    pub upto: u64,
    /// The batch's end: `upto == end` when the whole batch went in.
    pub end: u64,
}

impl Confirmed {
    /// Every record went in and every sink delivered it.
    pub fn all_delivered(&self) -> bool {
        self.upto == self.end && self.outcome == Outcome::Delivered
    }

    /// A record limit cut the batch: some items were not taken.
    pub fn cut(&self) -> bool {
        self.upto < self.end
    }
}

/// The position an ack confirms: the first record not accepted, or the end.
fn confirmed_upto(positions: &[u64], end: u64, accepted: usize) -> u64 {
    positions.get(accepted).copied().unwrap_or(end)
}

/// The ack of a [`Tracked`] batch, still to come.
#[derive(Debug)]
pub struct PendingAck {
    positions: Vec<u64>,
    end: u64,
    rx: Option<oneshot::Receiver<Ack>>,
}

impl PendingAck {
    /// What was confirmed; `None` when the pipeline is gone without an answer.
    pub async fn confirmed(self) -> Option<Confirmed> {
        let Some(rx) = self.rx else {
            return Some(Confirmed {
                outcome: Outcome::Delivered,
                upto: self.end,
                end: self.end,
            });
        };
        let ack = rx.await.ok()?;
        Some(Confirmed {
            outcome: ack.outcome,
            upto: confirmed_upto(&self.positions, self.end, ack.accepted),
            end: self.end,
        })
    }
}

/// How a source hands records to the pipeline. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SourceOutput {
    tx: mpsc::Sender<SourceBatch>,
    counters: Arc<SourceCounters>,
    dead_letters: DeadLetters,
    malformed: Arc<AtomicU64>,
    media: Option<Arc<dyn MediaResolver>>,
}

impl SourceOutput {
    pub fn new(
        tx: mpsc::Sender<SourceBatch>,
        counters: Arc<SourceCounters>,
        dead_letters: DeadLetters,
    ) -> Self {
        SourceOutput {
            tx,
            counters,
            dead_letters,
            malformed: Arc::default(),
            media: None,
        }
    }

    /// Resolves the records' media with `media` before they enter the pipeline.
    pub fn with_media(mut self, media: Option<Arc<dyn MediaResolver>>) -> Self {
        self.media = media;
        self
    }

    /// The records' media, fetched and stored (when media capture is on).
    async fn resolve_media(&self, records: &mut [Arc<Record>]) {
        if let Some(media) = &self.media
            && records.iter().any(|r| r.has_pending_media())
        {
            media.resolve(records).await;
        }
    }

    /// The counters of the run's source.
    pub fn counters(&self) -> &SourceCounters {
        &self.counters
    }

    /// Sends records that need no ack (counted as produced); false once the
    /// pipeline is gone. An empty batch is not sent.
    pub async fn send(&self, mut records: Vec<Arc<Record>>) -> bool {
        if records.is_empty() {
            return true;
        }
        self.resolve_media(&mut records).await;
        SourceCounters::add(&self.counters.records, records.len() as u64);
        self.tx.send(SourceBatch::new(records)).await.is_ok()
    }

    /// Sends a batch whose ack the source will await. `lingering`: the source
    /// keeps sending meanwhile, so sinks may wait for fuller batches. A batch
    /// without records is confirmed at once without entering the pipeline.
    /// `None` once the pipeline is gone.
    pub async fn send_tracked(&self, batch: Tracked, lingering: bool) -> Option<PendingAck> {
        let Tracked {
            mut records,
            positions,
            end,
        } = batch;
        if records.is_empty() {
            return Some(PendingAck {
                positions,
                end,
                rx: None,
            });
        }
        self.resolve_media(&mut records).await;
        SourceCounters::add(&self.counters.records, records.len() as u64);
        let (batch, rx) = if lingering {
            SourceBatch::with_ack_lingering(records)
        } else {
            SourceBatch::with_ack(records)
        };
        self.tx.send(batch).await.ok()?;
        Some(PendingAck {
            positions,
            end,
            rx: Some(rx),
        })
    }

    /// Sends a batch and waits for what the sinks confirmed of it.
    pub async fn send_and_wait(&self, batch: Tracked) -> Option<Confirmed> {
        self.send_tracked(batch, false).await?.confirmed().await
    }

    /// Counts and dead-letters an item that cannot become a record. The first
    /// few are logged one by one, the rest only counted.
    pub fn dead_letter(
        &self,
        origin: Origin,
        reason: &str,
        input: &[u8],
        len: usize,
    ) -> Result<(), StateError> {
        SourceCounters::add(&self.counters.malformed, 1);
        let n = self.malformed.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= MALFORMED_LOGGED {
            warn!(
                source = origin.label,
                error = reason,
                bytes = len,
                "unusable {} dead-lettered",
                origin.item
            );
        } else if n == MALFORMED_LOGGED + 1 {
            warn!(
                "more unusable input; counting it silently from now on (see the summary and the dead-letter file)"
            );
        }
        self.dead_letters
            .source_input(origin.label, reason, input, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{NormalizeOptions, Normalized, RunInfo};

    fn record(i: u64) -> Arc<Record> {
        let opts = NormalizeOptions::new(Arc::new(RunInfo::new(None)));
        let line = format!(r#"{{"data":{{"id":"{i}","text":"t"}}}}"#);
        match crate::sources::twitter::normalize_line(line.as_bytes(), &"now".into(), &opts) {
            Ok(Normalized::Record(r)) => Arc::new(*r),
            _ => unreachable!(),
        }
    }

    fn output(capacity: usize) -> (SourceOutput, mpsc::Receiver<SourceBatch>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel(capacity);
        let out = SourceOutput::new(tx, Arc::default(), DeadLetters::new(dir.path(), "test-run"));
        (out, rx, dir)
    }

    #[test]
    fn the_ack_confirms_up_to_the_first_record_left_out() {
        // Records at 3, 5, 9 of a batch ending at 12 (the other items made no record).
        let positions = [3, 5, 9];
        assert_eq!(confirmed_upto(&positions, 12, 3), 12);
        assert_eq!(confirmed_upto(&positions, 12, 2), 9);
        assert_eq!(confirmed_upto(&positions, 12, 0), 3);
        assert_eq!(confirmed_upto(&[], 12, 0), 12);
    }

    #[test]
    fn a_tracked_batch_ends_after_its_last_item() {
        let mut t = Tracked::starting_at(7);
        assert_eq!(t.end(), 7);
        t.push(7, None);
        t.push(8, Some(record(8)));
        t.push(10, None);
        assert_eq!((t.len(), t.end()), (1, 11));
        assert_eq!(Tracked::whole(vec![record(0), record(1)]).end(), 2);
    }

    #[tokio::test]
    async fn a_cut_batch_reports_the_position_confirmed_in_order() {
        let (out, mut rx, _dir) = output(4);
        let mut t = Tracked::starting_at(0);
        t.push(0, Some(record(0)));
        t.push(1, None);
        t.push(2, Some(record(2)));
        t.push(3, Some(record(3)));
        let pending = out.send_tracked(t, false).await.unwrap();
        let batch = rx.recv().await.unwrap();
        assert_eq!(batch.records.len(), 3);
        batch
            .ack
            .unwrap()
            .send(Ack {
                accepted: 1,
                outcome: Outcome::Delivered,
            })
            .unwrap();
        let c = pending.confirmed().await.unwrap();
        assert_eq!((c.upto, c.end), (2, 4));
        assert!(c.cut() && !c.all_delivered());
    }

    #[tokio::test]
    async fn a_batch_without_records_is_confirmed_without_the_pipeline() {
        let (out, mut rx, _dir) = output(1);
        let mut t = Tracked::starting_at(5);
        t.push(6, None);
        let c = out.send_and_wait(t).await.unwrap();
        assert!(c.all_delivered());
        assert_eq!(c.upto, 7);
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_gone_pipeline_confirms_nothing() {
        let (out, rx, _dir) = output(1);
        drop(rx);
        assert!(!out.send(vec![record(0)]).await);
        assert!(
            out.send_and_wait(Tracked::whole(vec![record(0)]))
                .await
                .is_none()
        );
    }

    #[test]
    fn dead_letters_are_counted_and_written() {
        let (out, _rx, dir) = output(1);
        let origin = Origin {
            label: "replay",
            item: "input line",
        };
        for _ in 0..12 {
            out.dead_letter(origin, "bad", b"{", 1).unwrap();
        }
        assert_eq!(out.counters.malformed.load(Ordering::Relaxed), 12);
        let lines = std::fs::read_to_string(out.dead_letters.path()).unwrap();
        assert_eq!(lines.lines().count(), 12);
        drop(dir);
    }
}
