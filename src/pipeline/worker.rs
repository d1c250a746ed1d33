//! A sink worker: takes deliveries from its bounded queue, batches them by
//! count, bytes and time, writes with retry and backoff, dead-letters what it
//! cannot write, and marks each delivery done for its ack.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use crate::record::Record;
use crate::sinks::CommonSinkConfig;
use crate::sinks::{Sink, SinkError};
use crate::state::DeadLetters;

use super::{Delivery, Outcome, SinkCounters, SinkHandle, SinkSpec};

/// Starts a sink's worker task.
pub fn spawn_sink<S: Sink>(
    spec: SinkSpec<S>,
    dead_letters: DeadLetters,
    abort: CancellationToken,
) -> SinkHandle {
    let name = spec.sink.name().to_owned();
    let linger = Duration::from_millis(spec.config.batch.timeout_ms);
    let (tx, rx) = mpsc::channel(spec.config.queue_capacity);
    let counters = Arc::new(SinkCounters::default());
    let closed = CancellationToken::new();
    let worker = SinkWorker {
        sink: spec.sink,
        config: spec.config,
        counters: counters.clone(),
        dead_letters,
        abort,
        closed: closed.clone(),
    };
    let span = info_span!("sink", name = %name);
    let task = tokio::spawn(worker.run(rx).instrument(span));
    SinkHandle {
        name,
        kind: spec.kind,
        linger,
        tx,
        counters,
        closed,
        task,
    }
}

struct SinkWorker<S: Sink> {
    sink: S,
    config: CommonSinkConfig,
    counters: Arc<SinkCounters>,
    dead_letters: DeadLetters,
    abort: CancellationToken,
    closed: CancellationToken,
}

impl<S: Sink> SinkWorker<S> {
    async fn run(mut self, mut rx: mpsc::Receiver<Arc<Delivery>>) {
        let batch = self.config.batch;
        let linger = Duration::from_millis(batch.timeout_ms);
        loop {
            let first = tokio::select! {
                biased;
                _ = self.abort.cancelled() => break,
                d = rx.recv() => d,
            };
            let Some(first) = first else { break };
            let (mut count, mut bytes, mut urgent) =
                (first.records.len(), first.bytes, first.urgent);
            let mut pending = vec![first];
            let deadline = tokio::time::Instant::from_std(Instant::now() + linger);
            while count < batch.max_records && bytes < batch.max_bytes {
                let next = match rx.try_recv() {
                    Ok(d) => Some(d),
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                    Err(mpsc::error::TryRecvError::Empty) if urgent => None,
                    Err(mpsc::error::TryRecvError::Empty) => tokio::select! {
                        biased;
                        _ = self.abort.cancelled() => None,
                        d = rx.recv() => d,
                        _ = sleep_until(deadline) => None,
                    },
                };
                let Some(d) = next else { break };
                count += d.records.len();
                bytes += d.bytes;
                urgent |= d.urgent;
                pending.push(d);
            }
            let records: Vec<Arc<Record>> = pending
                .iter()
                .flat_map(|d| d.records.iter().cloned())
                .collect();
            let outcome = self.deliver(records).await;
            for d in pending {
                d.ack.done(outcome);
            }
        }
        // Stopped early (shutdown timeout): whatever is still queued goes to the dead letters.
        rx.close();
        while let Some(d) = rx.recv().await {
            let outcome = self.give_up(&d.records, "not delivered before the shutdown timeout");
            d.ack.done(outcome);
        }
        match self.sink.flush().await {
            Ok(()) => info!(
                delivered = self.counters.delivered.load(Ordering::Relaxed),
                "sink flushed"
            ),
            Err(e) => {
                self.counters.flush_failed.fetch_add(1, Ordering::Relaxed);
                error!(error = %e, "final flush failed: records confirmed earlier may not be durable");
            }
        }
    }

    /// Writes records with retries; returns the worst outcome.
    async fn deliver(&mut self, records: Vec<Arc<Record>>) -> Outcome {
        let mut worst = Outcome::Delivered;
        let retry = self.config.retry;
        let backoff = retry.backoff();
        for chunk in records.chunks(self.config.batch.max_records) {
            if self.closed.is_cancelled() {
                // Nobody reads any more: count, do not write, do not keep.
                self.counters
                    .unwritten
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                worst = worst.max(Outcome::Lost);
                continue;
            }
            let mut todo: Vec<Arc<Record>> = chunk.to_vec();
            let mut attempt: u32 = 1;
            loop {
                if self.abort.is_cancelled() {
                    worst =
                        worst.max(self.give_up(&todo, "not delivered before the shutdown timeout"));
                    break;
                }
                let result = tokio::select! {
                    biased;
                    _ = self.abort.cancelled() => continue,
                    r = self.sink.write_batch(&todo) => r,
                };
                self.counters.batches.fetch_add(1, Ordering::Relaxed);
                let err = match result {
                    Ok(()) => {
                        self.counters
                            .delivered
                            .fetch_add(todo.len() as u64, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => e,
                };
                if let SinkError::Partial {
                    failed, rejected, ..
                } = &err
                {
                    if !rejected.is_empty() {
                        error!(error = %err, records = rejected.len(), "records rejected for good; dead-lettering them");
                        worst = worst.max(self.reject(&todo, rejected));
                    }
                    let kept: Vec<Arc<Record>> = failed
                        .iter()
                        .filter_map(|&i| todo.get(i).cloned())
                        .collect();
                    let rejected = rejected.iter().filter(|(i, _)| *i < todo.len()).count();
                    let confirmed = todo.len().saturating_sub(kept.len() + rejected);
                    self.counters
                        .delivered
                        .fetch_add(confirmed as u64, Ordering::Relaxed);
                    todo = kept;
                    if todo.is_empty() {
                        break;
                    }
                    // The destination took some: it is throttling, not down. The
                    // budget counts attempts in a row without progress, and the
                    // backoff starts over (`todo` shrinks, so this ends).
                    if confirmed > 0 {
                        attempt = 1;
                    }
                }
                if matches!(err, SinkError::Closed { .. }) {
                    warn!(error = %err, "the destination was closed; stopping the run");
                    self.closed.cancel();
                    self.counters
                        .unwritten
                        .fetch_add(todo.len() as u64, Ordering::Relaxed);
                    worst = worst.max(Outcome::Lost);
                    break;
                }
                if matches!(err, SinkError::Fatal { .. }) {
                    error!(error = %err, records = todo.len(), "permanent failure; dead-lettering the batch");
                    worst = worst.max(self.give_up(&todo, &err.cause()));
                    break;
                }
                if attempt >= retry.max_attempts {
                    error!(error = %err, attempts = attempt, records = todo.len(), "retry budget spent; dead-lettering");
                    worst = worst.max(self.give_up(
                        &todo,
                        &format!("gave up after {attempt} attempts: {}", err.cause()),
                    ));
                    break;
                }
                let delay = backoff.delay(attempt);
                warn!(attempt, delay_ms = delay.as_millis() as u64, records = todo.len(), error = %err, "write failed; retrying");
                self.counters
                    .retried
                    .fetch_add(todo.len() as u64, Ordering::Relaxed);
                tokio::select! {
                    biased;
                    _ = self.abort.cancelled() => {}
                    _ = tokio::time::sleep(delay) => {}
                }
                attempt += 1;
            }
        }
        worst
    }

    /// Dead-letters the records a sink rejected for good, each with its own reason.
    fn reject(&self, batch: &[Arc<Record>], rejected: &[(usize, String)]) -> Outcome {
        let mut by_reason: BTreeMap<&str, Vec<Arc<Record>>> = BTreeMap::new();
        for (i, reason) in rejected {
            if let Some(r) = batch.get(*i) {
                by_reason.entry(reason).or_default().push(r.clone());
            }
        }
        by_reason
            .into_iter()
            .map(|(reason, records)| self.give_up(&records, reason))
            .max()
            .unwrap_or(Outcome::Delivered)
    }

    /// Puts records in the dead-letter file; `Lost` if even that fails.
    fn give_up(&self, records: &[Arc<Record>], reason: &str) -> Outcome {
        if records.is_empty() {
            return Outcome::Delivered;
        }
        match self
            .dead_letters
            .sink_records(self.sink.name(), reason, records)
        {
            Ok(()) => {
                self.counters
                    .dead_lettered
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                Outcome::DeadLettered
            }
            Err(e) => {
                self.counters
                    .lost
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                error!(error = %e, records = records.len(), "records LOST: the dead-letter file cannot be written");
                Outcome::Lost
            }
        }
    }
}
