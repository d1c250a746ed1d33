//! The router: takes source batches, applies the record limit and the time
//! limit, fans every batch out to every sink queue, then drains the sinks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{
    Ack, AckState, Delivery, MemoryBudget, Outcome, SinkHandle, SinkSummary, SourceBatch,
    StopReason, summarize,
};

/// Limits and timeouts of a run.
#[derive(Debug, Clone)]
pub struct RunLimits {
    pub duration: Option<Duration>,
    pub max_records: Option<u64>,
    pub shutdown_timeout: Duration,
}

/// What the router saw.
#[derive(Debug)]
pub struct RouterOutcome {
    pub records_in: u64,
    pub dropped_over_limit: u64,
    pub stop_reason: StopReason,
    pub per_sink: BTreeMap<String, SinkSummary>,
    pub flush_failed: bool,
}

/// Why the run stops: the first reason set wins.
#[derive(Clone, Default)]
struct StopCause(Arc<Mutex<Option<StopReason>>>);

impl StopCause {
    fn set(&self, reason: StopReason) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(reason);
    }

    fn get(&self) -> StopReason {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or(StopReason::EndOfInput)
    }
}

/// Routes source batches to every sink until the source ends, then drains the sinks.
///
/// `stop` tells the source to stop (a limit was reached or `shutdown` fired);
/// the router keeps taking what the source still sends until it closes its channel.
pub async fn route(
    mut source_rx: mpsc::Receiver<SourceBatch>,
    sinks: Vec<SinkHandle>,
    limits: RunLimits,
    budget: MemoryBudget,
    stop: CancellationToken,
    shutdown: CancellationToken,
    abort: CancellationToken,
) -> RouterOutcome {
    let cause = StopCause::default();
    let closed: Vec<CancellationToken> = sinks.iter().map(|s| s.closed.clone()).collect();
    let timer = spawn_stop_timer(&limits, &stop, &shutdown, closed, &cause);
    let mut limit = RecordLimit {
        max: limits.max_records,
        records_in: 0,
        dropped: 0,
    };
    let senders: Vec<_> = sinks.iter().map(|s| s.tx.clone()).collect();
    while let Some(batch) = source_rx.recv().await {
        let urgent = batch.urgent();
        let SourceBatch {
            mut records, ack, ..
        } = batch;
        if limit.admit(&mut records) && !stop.is_cancelled() {
            cause.set(StopReason::MaxRecords);
            info!(
                max_records = limit.max.unwrap_or_default(),
                "record limit reached; stopping"
            );
            stop.cancel();
        }
        fan_out(&senders, &budget, records, ack, urgent).await;
    }
    drop(senders);
    timer.abort();
    if shutdown.is_cancelled() {
        cause.set(StopReason::Signal);
    }
    if sinks.iter().any(|s| s.closed.is_cancelled()) {
        cause.set(StopReason::OutputClosed);
    }
    cause.set(StopReason::EndOfInput);
    let (per_sink, flush_failed) = drain(sinks, abort, limits.shutdown_timeout).await;
    RouterOutcome {
        records_in: limit.records_in,
        dropped_over_limit: limit.dropped,
        stop_reason: cause.get(),
        per_sink,
        flush_failed,
    }
}

/// Time limit, signals and a closed destination all go through `stop`.
fn spawn_stop_timer(
    limits: &RunLimits,
    stop: &CancellationToken,
    shutdown: &CancellationToken,
    closed: Vec<CancellationToken>,
    cause: &StopCause,
) -> tokio::task::JoinHandle<()> {
    let (stop, shutdown, cause) = (stop.clone(), shutdown.clone(), cause.clone());
    let duration = limits.duration;
    tokio::spawn(async move {
        let closed = async {
            if closed.is_empty() {
                std::future::pending::<()>().await;
            }
            futures_util::future::select_all(closed.iter().map(|t| Box::pin(t.cancelled()))).await;
        };
        let sleep = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => { cause.set(StopReason::Duration); info!("time limit reached; stopping"); }
            _ = shutdown.cancelled() => { cause.set(StopReason::Signal); }
            _ = closed => { cause.set(StopReason::OutputClosed); }
            _ = stop.cancelled() => {}
        }
        stop.cancel();
    })
}

/// `--max-records`: what came in, and what was read past the limit.
struct RecordLimit {
    max: Option<u64>,
    records_in: u64,
    dropped: u64,
}

impl RecordLimit {
    /// Cuts `records` to the room left and counts them in; true once the limit is reached.
    fn admit(&mut self, records: &mut Vec<Arc<crate::record::Record>>) -> bool {
        let mut reached = false;
        if let Some(max) = self.max {
            let room = max.saturating_sub(self.records_in) as usize;
            if records.len() >= room {
                if records.len() > room {
                    self.dropped += (records.len() - room) as u64;
                    records.truncate(room);
                }
                reached = true;
            }
        }
        self.records_in += records.len() as u64;
        reached
    }
}

/// Hands one batch to every sink queue; its ack fires when all are done with it.
async fn fan_out(
    senders: &[mpsc::Sender<Arc<Delivery>>],
    budget: &MemoryBudget,
    records: Vec<Arc<crate::record::Record>>,
    ack: Option<tokio::sync::oneshot::Sender<Ack>>,
    urgent: bool,
) {
    let accepted = records.len();
    if accepted == 0 {
        if let Some(tx) = ack {
            let _ = tx.send(Ack {
                accepted: 0,
                outcome: Outcome::Delivered,
            });
        }
        return;
    }
    let bytes = records.iter().map(|r| r.approx_size()).sum();
    let ack = Arc::new(AckState {
        remaining: AtomicUsize::new(senders.len()),
        worst: AtomicU8::new(0),
        accepted,
        tx: Mutex::new(ack),
    });
    let room = budget.take(bytes).await;
    let delivery = Arc::new(Delivery {
        records,
        bytes,
        ack: ack.clone(),
        urgent,
        room,
    });
    for tx in senders {
        if tx.send(delivery.clone()).await.is_err() {
            // The worker is gone (it only stops early on abort): count the batch as lost to it.
            ack.done(Outcome::Lost);
        }
    }
}

/// Closes every sink queue and waits for the workers, bounded by the shutdown
/// timeout, after which workers dead-letter what is left.
async fn drain(
    sinks: Vec<SinkHandle>,
    abort: CancellationToken,
    timeout: Duration,
) -> (BTreeMap<String, SinkSummary>, bool) {
    let watchdog = tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        warn!(
            timeout_secs = timeout.as_secs_f64(),
            "sinks did not drain within the shutdown timeout; dead-lettering what is left"
        );
        abort.cancel();
    });
    let mut per_sink = BTreeMap::new();
    let mut flush_failed = false;
    for sink in sinks {
        let SinkHandle {
            name,
            kind,
            tx,
            counters,
            task,
            ..
        } = sink;
        drop(tx);
        if let Err(e) = task.await {
            error!(sink = %name, error = %e, "sink worker panicked");
            flush_failed = true;
        }
        flush_failed |= counters.flush_failed.load(Ordering::Relaxed) > 0;
        per_sink.insert(name, summarize(kind, &counters));
    }
    watchdog.abort();
    (per_sink, flush_failed)
}
