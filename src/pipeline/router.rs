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
    Ack, AckState, Delivery, Outcome, SinkHandle, SinkSummary, SourceBatch, StopReason, summarize,
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

/// Routes source batches to every sink until the source ends, then drains the sinks.
///
/// `stop` tells the source to stop (a limit was reached or `shutdown` fired);
/// the router keeps taking what the source still sends until it closes its channel.
pub async fn route(
    mut source_rx: mpsc::Receiver<SourceBatch>,
    sinks: Vec<SinkHandle>,
    limits: RunLimits,
    stop: CancellationToken,
    shutdown: CancellationToken,
    abort: CancellationToken,
) -> RouterOutcome {
    let reason: Arc<Mutex<Option<StopReason>>> = Arc::new(Mutex::new(None));
    let set_reason = {
        let reason = reason.clone();
        move |r: StopReason| {
            reason
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(r);
        }
    };
    // Time limit, signals and a closed destination all go through `stop`.
    let timer = {
        let (stop, shutdown, set_reason) = (stop.clone(), shutdown.clone(), set_reason.clone());
        let duration = limits.duration;
        let closed: Vec<CancellationToken> = sinks.iter().map(|s| s.closed.clone()).collect();
        tokio::spawn(async move {
            let closed = async {
                if closed.is_empty() {
                    std::future::pending::<()>().await;
                }
                futures_util::future::select_all(closed.iter().map(|t| Box::pin(t.cancelled())))
                    .await;
            };
            let sleep = async {
                match duration {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sleep => { set_reason(StopReason::Duration); info!("time limit reached; stopping"); }
                _ = shutdown.cancelled() => { set_reason(StopReason::Signal); }
                _ = closed => { set_reason(StopReason::OutputClosed); }
                _ = stop.cancelled() => {}
            }
            stop.cancel();
        })
    };
    let mut records_in: u64 = 0;
    let mut dropped: u64 = 0;
    let senders: Vec<_> = sinks.iter().map(|s| s.tx.clone()).collect();
    while let Some(batch) = source_rx.recv().await {
        let urgent = batch.urgent();
        let SourceBatch {
            mut records, ack, ..
        } = batch;
        if let Some(max) = limits.max_records {
            let room = max.saturating_sub(records_in) as usize;
            if records.len() >= room {
                if records.len() > room {
                    dropped += (records.len() - room) as u64;
                    records.truncate(room);
                }
                if !stop.is_cancelled() {
                    set_reason(StopReason::MaxRecords);
                    info!(max_records = max, "record limit reached; stopping");
                    stop.cancel();
                }
            }
        }
        let accepted = records.len();
        records_in += accepted as u64;
        if accepted == 0 {
            if let Some(tx) = ack {
                let _ = tx.send(Ack {
                    accepted: 0,
                    outcome: Outcome::Delivered,
                });
            }
            continue;
        }
        let bytes = records.iter().map(|r| r.approx_size()).sum();
        let ack = Arc::new(AckState {
            remaining: AtomicUsize::new(senders.len()),
            worst: AtomicU8::new(0),
            accepted,
            tx: Mutex::new(ack),
        });
        let delivery = Arc::new(Delivery {
            records,
            bytes,
            ack: ack.clone(),
            urgent,
        });
        for tx in &senders {
            if tx.send(delivery.clone()).await.is_err() {
                // The worker is gone (it only stops early on abort): count the batch as lost to it.
                ack.done(Outcome::Lost);
            }
        }
    }
    drop(senders);
    timer.abort();
    if shutdown.is_cancelled() {
        set_reason(StopReason::Signal);
    }
    if sinks.iter().any(|s| s.closed.is_cancelled()) {
        set_reason(StopReason::OutputClosed);
    }
    set_reason(StopReason::EndOfInput);
    // Drain: bounded by the shutdown timeout, after which workers dead-letter what is left.
    let watchdog = {
        let (abort, timeout) = (abort.clone(), limits.shutdown_timeout);
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            warn!(
                timeout_secs = timeout.as_secs_f64(),
                "sinks did not drain within the shutdown timeout; dead-lettering what is left"
            );
            abort.cancel();
        })
    };
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
    let stop_reason = reason
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or(StopReason::EndOfInput);
    RouterOutcome {
        records_in,
        dropped_over_limit: dropped,
        stop_reason,
        per_sink,
        flush_failed,
    }
}
