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
use crate::sinks::{BoxFuture, Sent, Sink, SinkError};
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
    // A sink that keeps a batch in flight holds two while the next fills.
    let batches_held = if spec.sink.keeps_batches_in_flight() {
        2
    } else {
        1
    };
    let batch_bytes = spec.config.batch.max_bytes;
    let (tx, rx) = mpsc::channel(spec.config.queue_capacity);
    let counters = Arc::new(SinkCounters::default());
    let closed = CancellationToken::new();
    let worker = SinkWorker {
        sink: spec.sink,
        in_flight: None,
        unacked: Outcome::Delivered,
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
        batches_held,
        tx,
        counters,
        closed,
        task,
    }
}

/// The dead-letter reason of records the shutdown timeout cut off.
const NOT_BEFORE_SHUTDOWN: &str = "not delivered before the shutdown timeout";

/// A chunk handed to the sink whose confirmations are still out.
struct InFlight {
    todo: Vec<Arc<Record>>,
    confirmation: BoxFuture<'static, Result<(), SinkError>>,
    /// The source batches to ack once this chunk is settled (the last chunk
    /// of a write; `None` for the chunks before it).
    acks: Option<Vec<Arc<Delivery>>>,
    started: Instant,
}

/// Resolves when the chunk in flight is confirmed (or failed); never without
/// one. Cancel-safe: the confirmation stays in `in_flight` until taken.
async fn confirmed(in_flight: &mut Option<InFlight>) -> Result<(), SinkError> {
    match in_flight {
        Some(f) => (&mut f.confirmation).await,
        None => std::future::pending().await,
    }
}

struct SinkWorker<S: Sink> {
    sink: S,
    /// At most one chunk waits for its confirmations while the next is sent.
    in_flight: Option<InFlight>,
    /// The worst outcome of the chunks settled since the last ack.
    unacked: Outcome,
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
                r = confirmed(&mut self.in_flight) => {
                    self.land(r).await;
                    continue;
                }
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
                        // The batch before is confirmed while this one fills.
                        r = confirmed(&mut self.in_flight) => {
                            self.land(r).await;
                            continue;
                        }
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
            self.write(records, pending).await;
        }
        // The last batch sent is confirmed (or given up, on abort) before
        // anything queued behind it is acked.
        self.settle_in_flight().await;
        // Stopped early (shutdown timeout): whatever is still queued goes to the dead letters.
        rx.close();
        while let Some(d) = rx.recv().await {
            let outcome = self.give_up(&d.records, NOT_BEFORE_SHUTDOWN);
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

    /// Writes the records of `deliveries`, in chunks of at most
    /// `batch.max_records`, and acks `deliveries` with the worst outcome once
    /// every chunk is confirmed, dead-lettered or lost.
    async fn write(&mut self, records: Vec<Arc<Record>>, deliveries: Vec<Arc<Delivery>>) {
        let size = self.config.batch.max_records.max(1);
        let chunks = records.len().div_ceil(size);
        let mut deliveries = Some(deliveries);
        for (k, chunk) in records.chunks(size).enumerate() {
            let acks = if k + 1 == chunks {
                deliveries.take()
            } else {
                None
            };
            self.write_chunk(chunk.to_vec(), acks).await;
        }
        if let Some(acks) = deliveries {
            // No records (never sent by the router, but cheap to get right).
            self.settle_in_flight().await;
            self.done(Outcome::Delivered, Some(acks));
        }
    }

    /// Sends one chunk. A sink that keeps it in flight ([`Sent::InFlight`])
    /// gets the next chunk while this one's confirmations come in; at most
    /// two chunks are out at once: the one just sent, and the one before,
    /// which is settled (confirmed, retried, dead-lettered) here and acked
    /// before the one just sent can be. So acks leave in the order the
    /// batches came, and none leaves before its own records are confirmed.
    async fn write_chunk(&mut self, todo: Vec<Arc<Record>>, acks: Option<Vec<Arc<Delivery>>>) {
        if self.closed.is_cancelled() {
            self.settle_in_flight().await;
            // Nobody reads any more: count, do not write, do not keep.
            self.counters
                .unwritten
                .fetch_add(todo.len() as u64, Ordering::Relaxed);
            self.done(Outcome::Lost, acks);
            return;
        }
        let started = Instant::now();
        let sent = if self.abort.is_cancelled() {
            None
        } else {
            tokio::select! {
                biased;
                _ = self.abort.cancelled() => None,
                s = self.sink.send(&todo) => Some(s),
            }
        };
        // The chunk before: its confirmations came in while this one was sent.
        self.settle_in_flight().await;
        match sent {
            Some(Sent::InFlight(confirmation)) => {
                self.in_flight = Some(InFlight {
                    todo,
                    confirmation,
                    acks,
                    started,
                });
            }
            Some(Sent::Done(result)) => {
                let outcome = self.deliver_chunk(todo, Some((result, started))).await;
                self.done(outcome, acks);
            }
            // Aborted: `deliver_chunk` gives the records up.
            None => {
                let outcome = self.deliver_chunk(todo, None).await;
                self.done(outcome, acks);
            }
        }
    }

    /// Waits for the chunk in flight, if any, and settles it.
    async fn settle_in_flight(&mut self) {
        let Some(mut f) = self.in_flight.take() else {
            return;
        };
        let result = tokio::select! {
            biased;
            _ = self.abort.cancelled() => None,
            r = &mut f.confirmation => Some(r),
        };
        self.in_flight = Some(f);
        match result {
            Some(r) => self.land(r).await,
            None => {
                let f = self.in_flight.take().expect("put back above");
                let outcome = self.deliver_chunk(f.todo, None).await;
                self.done(outcome, f.acks);
            }
        }
    }

    /// Settles the chunk in flight, whose confirmation resolved to `result`:
    /// retries what failed, dead-letters what cannot be written, acks.
    async fn land(&mut self, result: Result<(), SinkError>) {
        let f = self
            .in_flight
            .take()
            .expect("only a chunk in flight resolves");
        let outcome = self.deliver_chunk(f.todo, Some((result, f.started))).await;
        self.done(outcome, f.acks);
    }

    /// Notes a settled chunk's outcome; with `acks` (the last chunk of a
    /// write), acks those source batches with the worst outcome since the last ack.
    fn done(&mut self, outcome: Outcome, acks: Option<Vec<Arc<Delivery>>>) {
        self.unacked = self.unacked.max(outcome);
        if let Some(deliveries) = acks {
            let outcome = std::mem::replace(&mut self.unacked, Outcome::Delivered);
            for d in deliveries {
                d.ack.done(outcome);
            }
        }
    }

    /// One write of at most `batch.max_records`, retried until it is confirmed,
    /// dead-lettered or the run aborts. `first`: the result of a first attempt
    /// made already (by [`Sink::send`]), and when it started.
    async fn deliver_chunk(
        &mut self,
        mut todo: Vec<Arc<Record>>,
        mut first: Option<(Result<(), SinkError>, Instant)>,
    ) -> Outcome {
        let mut worst = Outcome::Delivered;
        let mut attempt: u32 = 1;
        loop {
            let (result, started) = match first.take() {
                Some(made) => made,
                None => {
                    if self.abort.is_cancelled() {
                        return worst.max(self.give_up(&todo, NOT_BEFORE_SHUTDOWN));
                    }
                    let started = Instant::now();
                    tokio::select! {
                        biased;
                        _ = self.abort.cancelled() => {
                            return worst.max(self.give_up(&todo, NOT_BEFORE_SHUTDOWN));
                        }
                        r = self.sink.write_batch(&todo) => (r, started),
                    }
                }
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
