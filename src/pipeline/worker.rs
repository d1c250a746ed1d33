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
use tracing::{Instrument, debug, error, info, info_span, warn};

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
    let batch_bytes = spec.config.batch.max_bytes;
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
        batch_bytes,
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
                    // Nothing more comes while the router waits for memory: write now.
                    Err(mpsc::error::TryRecvError::Empty) => tokio::select! {
                        biased;
                        _ = self.abort.cancelled() => None,
                        d = rx.recv() => d,
                        _ = pending[0].room.starved.wait() => None,
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
        for chunk in records.chunks(self.config.batch.max_records) {
            if self.closed.is_cancelled() {
                // Nobody reads any more: count, do not write, do not keep.
                self.counters
                    .unwritten
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                worst = worst.max(Outcome::Lost);
                continue;
            }
            worst = worst.max(self.deliver_chunk(chunk.to_vec()).await);
        }
        worst
    }

    /// One write of at most `batch.max_records`, retried until it is confirmed,
    /// dead-lettered or the run aborts.
    async fn deliver_chunk(&mut self, mut todo: Vec<Arc<Record>>) -> Outcome {
        let mut worst = Outcome::Delivered;
        let mut attempt: u32 = 1;
        loop {
            if self.abort.is_cancelled() {
                return worst.max(self.give_up(&todo, "not delivered before the shutdown timeout"));
            }
            let started = std::time::Instant::now();
            let result = tokio::select! {
                biased;
                _ = self.abort.cancelled() => continue,
                r = self.sink.write_batch(&todo) => r,
            };
            // One line per write call (not per record), for benchmarks' latency figures.
            debug!(
                records = todo.len(),
                elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                ok = result.is_ok(),
                "write call"
            );
            self.counters.batches.fetch_add(1, Ordering::Relaxed);
            self.counters
                .compliance_deleted
                .store(self.sink.compliance_deleted(), Ordering::Relaxed);
            let err = match result {
                Ok(()) => {
                    self.counters
                        .delivered
                        .fetch_add(todo.len() as u64, Ordering::Relaxed);
                    return worst;
                }
                Err(e) => e,
            };
            if let SinkError::Partial {
                failed, rejected, ..
            } = &err
            {
                let (outcome, confirmed) = self.settle_partial(&mut todo, failed, rejected, &err);
                worst = worst.max(outcome);
                if todo.is_empty() {
                    return worst;
                }
                // The destination took some: it is throttling, not down. The
                // budget counts attempts in a row without progress, and the
                // backoff starts over (`todo` shrinks, so this ends).
                if confirmed > 0 {
                    attempt = 1;
                }
            }
            if let Some(outcome) = self.stop_retrying(&err, &todo, attempt) {
                return worst.max(outcome);
            }
            let delay = self.note_retry(attempt, &todo, &err);
            tokio::select! {
                biased;
                _ = self.abort.cancelled() => {}
                _ = tokio::time::sleep(delay) => {}
            }
            attempt += 1;
        }
    }

    /// After a partial write: dead-letters the rejected records, counts the
    /// confirmed ones, keeps the failed ones in `todo`. (outcome, confirmed).
    fn settle_partial(
        &self,
        todo: &mut Vec<Arc<Record>>,
        failed: &[usize],
        rejected: &[(usize, String)],
        err: &SinkError,
    ) -> (Outcome, usize) {
        let mut outcome = Outcome::Delivered;
        if !rejected.is_empty() {
            error!(error = %err, records = rejected.len(), "records rejected for good; dead-lettering them");
            outcome = self.reject(todo, rejected);
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
        *todo = kept;
        (outcome, confirmed)
    }

    /// The outcome when `err` ends the retries: a closed destination, a
    /// permanent failure, or the retry budget spent. `None`: try again.
    fn stop_retrying(
        &self,
        err: &SinkError,
        todo: &[Arc<Record>],
        attempt: u32,
    ) -> Option<Outcome> {
        if matches!(err, SinkError::Closed { .. }) {
            warn!(error = %err, "the destination was closed; stopping the run");
            self.closed.cancel();
            self.counters
                .unwritten
                .fetch_add(todo.len() as u64, Ordering::Relaxed);
            return Some(Outcome::Lost);
        }
        if matches!(err, SinkError::Fatal { .. }) {
            error!(error = %err, records = todo.len(), "permanent failure; dead-lettering the batch");
            return Some(self.give_up(todo, &err.cause()));
        }
        if attempt >= self.config.retry.max_attempts {
            error!(error = %err, attempts = attempt, records = todo.len(), "retry budget spent; dead-lettering");
            let reason = format!("gave up after {attempt} attempts: {}", err.cause());
            return Some(self.give_up(todo, &reason));
        }
        None
    }

    /// Logs and counts a retry; the jittered backoff to wait before attempt `attempt + 1`.
    fn note_retry(&self, attempt: u32, todo: &[Arc<Record>], err: &SinkError) -> Duration {
        let delay = self.config.retry.backoff().delay(attempt);
        warn!(attempt, delay_ms = delay.as_millis() as u64, records = todo.len(), error = %err, "write failed; retrying");
        self.counters
            .retried
            .fetch_add(todo.len() as u64, Ordering::Relaxed);
        delay
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
