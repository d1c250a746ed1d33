//! The stream's forwarder: queue → normalize → drop duplicates by id →
//! pipeline. With the disk buffer every batch carries the log numbers of its
//! lines, and the log's confirmed mark follows the acks in order.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{debug, error, info};

use crate::pipeline::Outcome;
use crate::record::{NormalizeError, NormalizeOptions, Normalized};
use crate::sources::output::PendingAck;
use crate::sources::seen::SeenWindow;
use crate::sources::spill::{Entry, SpillQueue};
use crate::sources::twitter::compliance::normalize_compliance_line;
use crate::sources::twitter::normalize::normalize_shared_line;
use crate::sources::twitter::stream::rules::{TRACK_TAG, track_tags};
use crate::sources::twitter::stream::volume::StreamKind;
use crate::sources::wal::{Replay, Replayed, Wal};
use crate::sources::{Origin, SourceContext, SourceCounters, SourceError, SourceOutput, Tracked};

/// Records per batch handed to the pipeline.
const BATCH_RECORDS: usize = 500;

pub(super) const ORIGIN: Origin = Origin {
    label: "twitter",
    item: "stream line",
};

/// Lines of the disk buffer that cannot be replayed.
const WAL_ORIGIN: Origin = Origin {
    label: "twitter",
    item: "write-ahead log line",
};

/// Recently forwarded record ids (0: no dedupe). X post ids are numbers,
/// kept as `u64` in a window of their own (8 bytes a key: the 100 000-id
/// window stays small enough for the CPU's cache, where it is looked up once
/// per record); other ids (likes, compliance events) are kept as text.
pub(super) struct RecentIds {
    nums: SeenWindow<u64>,
    texts: SeenWindow<Box<str>>,
}

impl RecentIds {
    pub(super) fn new(window: usize) -> Self {
        RecentIds {
            nums: SeenWindow::new(window),
            texts: SeenWindow::new(window),
        }
    }

    /// True if `id` is new (and remembers it).
    fn insert(&mut self, id: &str) -> bool {
        match id.strip_prefix("twitter:").unwrap_or(id).parse::<u64>() {
            Ok(n) => self.nums.insert(n),
            Err(_) => self.texts.insert(id.into()),
        }
    }
}

/// Turns one stream line into a record.
/// The line comes as shared bytes: a post's `raw` keeps a slice of them.
pub(super) type Normalize =
    fn(&Bytes, &Arc<str>, &NormalizeOptions) -> Result<Normalized, NormalizeError>;

/// The normalizer of a stream's lines: posts, compliance events (and labels),
/// likes, or X Activity events; with `--track`, the posts its rules matched
/// are tagged with the terms they hold (`track:#F1`).
pub(super) struct Normalizer {
    normalize: Normalize,
    track: Vec<Vec<String>>,
}

impl Normalizer {
    pub(super) fn new(kind: StreamKind, track: Vec<Vec<String>>) -> Self {
        let normalize: Normalize = if kind.is_compliance() {
            |l, at, o| normalize_compliance_line(l, at, o)
        } else if kind.is_likes() {
            |l, at, o| crate::sources::twitter::likes::normalize_like_line(l, at, o)
        } else if kind == StreamKind::Activity {
            |l, at, o| crate::sources::twitter::webhooks::kinds::normalize_activity_line(l, at, o)
        } else {
            normalize_shared_line
        };
        Normalizer { normalize, track }
    }

    fn apply(
        &self,
        line: &Bytes,
        received_at: &Arc<str>,
        opts: &NormalizeOptions,
    ) -> Result<Normalized, NormalizeError> {
        let mut normalized = (self.normalize)(line, received_at, opts)?;
        if let Normalized::Record(r) = &mut normalized
            && !self.track.is_empty()
            && r.tags.iter().any(|t| t == TRACK_TAG)
        {
            let text = r.text.as_deref().unwrap_or("");
            let terms = track_tags(&self.track, text, &r.hashtags);
            r.tags.extend(terms);
        }
        Ok(normalized)
    }
}

/// Normalizes lines at `positions` and drops duplicates by id. Unusable lines
/// go to the dead letters.
fn normalize_entries(
    entries: &[Entry],
    positions: impl IntoIterator<Item = u64>,
    ctx: &SourceContext,
    out: &SourceOutput,
    recent: &mut RecentIds,
    normalize: &Normalizer,
) -> Result<Tracked, SourceError> {
    let mut batch = Tracked::default();
    for ((received_at, line), position) in entries.iter().zip(positions) {
        let record = match normalize.apply(line, received_at, &ctx.normalize) {
            Ok(Normalized::Record(r)) if recent.insert(&r.id) => Some(Arc::from(r)),
            Ok(Normalized::Record(r)) => {
                SourceCounters::add(&ctx.counters.duplicates, 1);
                debug!(id = %r.id, "duplicate dropped");
                None
            }
            Ok(Normalized::Control(_)) | Ok(Normalized::Nothing) => None,
            Err(e) => {
                out.dead_letter(ORIGIN, &e.to_string(), line, line.len())?;
                None
            }
        };
        batch.push(position, record);
    }
    Ok(batch)
}

/// Until the reader is done and the queue is empty.
pub(super) async fn forward(
    queue: &SpillQueue,
    ctx: &SourceContext,
    out: &SourceOutput,
    window: usize,
    normalize: &Normalizer,
) -> Result<(), SourceError> {
    let mut recent = RecentIds::new(window);
    while let Some(entries) = queue.pop(BATCH_RECORDS).await? {
        let batch = normalize_entries(&entries, 0.., ctx, out, &mut recent, normalize)?;
        if !out.send(batch.into_records()).await {
            break;
        }
    }
    Ok(())
}

/// The disk buffer's write-ahead log and where its live lines start.
pub(super) struct Logged {
    pub wal: Arc<Wal>,
    pub replay: Replay,
    /// The log number of the reader's first line.
    pub live_start: u64,
}

/// [`forward`] for the disk buffer: first the lines the log recovered, then
/// the queue (whose lines the reader logged, numbered on from the log's end);
/// every batch carries an ack, and the log's confirmed mark follows the acks in order.
pub(super) async fn forward_logged(
    queue: &SpillQueue,
    ctx: &SourceContext,
    out: SourceOutput,
    window: usize,
    normalize: &Normalizer,
    logged: Logged,
) -> Result<(), SourceError> {
    let Logged {
        wal,
        mut replay,
        live_start,
    } = logged;
    let (inflight_tx, inflight_rx) = mpsc::unbounded_channel::<PendingAck>();
    let confirmer = tokio::spawn(confirm_in_order(wal, inflight_rx));
    let mut recent = RecentIds::new(window);
    // False once the pipeline is gone. `skipped`: log numbers of lines
    // dead-lettered already, confirmed with the batch.
    let send =
        async |entries: Vec<Entry>, seqs: Vec<u64>, skipped: Vec<u64>, recent: &mut RecentIds| {
            if entries.is_empty() && skipped.is_empty() {
                return Ok(true);
            }
            let mut batch = normalize_entries(&entries, seqs, ctx, &out, recent, normalize)?;
            for seq in skipped {
                batch.push(seq, None);
            }
            let Some(ack) = out.send_tracked(batch, true).await else {
                return Ok(false);
            };
            let _ = inflight_tx.send(ack);
            Ok::<bool, SourceError>(true)
        };
    let result = async {
        let recovered = replay.remaining();
        let mut open = true;
        while open {
            let batch = replay.next_batch(BATCH_RECORDS)?;
            if batch.is_empty() {
                break;
            }
            let (mut seqs, mut entries, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
            for (seq, item) in batch {
                match item {
                    Replayed::Line(entry) => {
                        seqs.push(seq);
                        entries.push(entry);
                    }
                    Replayed::Bad { reason, bytes } => {
                        out.dead_letter(WAL_ORIGIN, &reason, &bytes, bytes.len())?;
                        skipped.push(seq);
                    }
                }
            }
            open = send(entries, seqs, skipped, &mut recent).await?;
        }
        if recovered > 0 && open {
            info!(lines = recovered, "the recovered lines are in the pipeline");
        }
        let mut next = live_start;
        while open && let Some(entries) = queue.pop(BATCH_RECORDS).await? {
            let seqs: Vec<u64> = (next..next + entries.len() as u64).collect();
            next += entries.len() as u64;
            open = send(entries, seqs, Vec::new(), &mut recent).await?;
        }
        Ok(())
    }
    .await;
    drop(inflight_tx);
    drop(out);
    if let Err(e) = confirmer.await {
        error!(error = %e, "the write-ahead log confirmer failed");
    }
    result
}

/// Awaits the acks in order and moves the log's confirmed mark; stops moving
/// it at the first batch not wholly confirmed (a later run delivers the rest again).
async fn confirm_in_order(wal: Arc<Wal>, mut rx: mpsc::UnboundedReceiver<PendingAck>) {
    let mut stuck = false;
    while let Some(pending) = rx.recv().await {
        if stuck {
            continue;
        }
        match pending.confirmed().await {
            Some(c) if c.outcome != Outcome::Lost => {
                // A record limit cut the batch: the rest waits for the next run.
                stuck = c.cut();
                wal.confirm(c.upto);
            }
            Some(_) => {
                error!(
                    "records were lost (the dead-letter file cannot be written): they stay in the write-ahead log for the next run"
                );
                stuck = true;
            }
            None => stuck = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_forget_the_oldest() {
        let mut r = RecentIds::new(2);
        assert!(r.insert("a") && r.insert("b"));
        assert!(!r.insert("a"));
        assert!(r.insert("c"));
        assert!(r.insert("a"), "a fell out of the window");
        assert!(RecentIds::new(0).insert("x") && RecentIds::new(0).insert("x"));
    }

    #[test]
    fn numeric_ids_match_with_or_without_the_prefix() {
        let mut r = RecentIds::new(4);
        assert!(r.insert("twitter:12"));
        assert!(!r.insert("12"));
    }
}
