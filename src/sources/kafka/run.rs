//! The run loop: reads messages into batches, hands them to the pipeline,
//! applies what the acks confirm to the [`Offsets`] it alone owns, commits,
//! and acts on the rebalance signals.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::KafkaSourceSettings;
use super::decode::read_message;
use super::offsets::{Entry, Offsets, TopicNames, Tp};
use super::rebalance::{ConsumerCtx, RebalanceSignal, apply, drops_all, partitions};
use crate::pipeline::Outcome;
use crate::sources::output::{PendingAck, Tracked};
use crate::sources::{Source, SourceContext, SourceCounters, SourceError, SourceOutput};

/// How long a partial batch waits for more messages; also how often
/// `--until-idle` looks at the clock (not once per message).
const LINGER: Duration = Duration::from_millis(100);

/// How often a consumer without partitions looks for missing topics again
/// (and warns) when it runs without `--until-idle`.
const TOPIC_CHECK_EVERY: Duration = Duration::from_secs(60);

/// How long the brokers get to answer a metadata request.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

type KafkaConsumer = StreamConsumer<ConsumerCtx>;

/// Consumes Kafka topics.
pub struct KafkaSource {
    pub settings: KafkaSourceSettings,
}

/// One batch handed to the pipeline: its messages in the order read (a
/// message's position in the [`Tracked`] batch is its index here), and the
/// ack (none when the pipeline stopped).
struct PendingBatch {
    entries: Vec<Entry>,
    ack: Option<PendingAck>,
}

/// What the acker tells the loop: a batch's messages and how many of them,
/// in the order read, are handled (confirmed by every sink, or no record).
struct HandledBatch {
    entries: Vec<Entry>,
    handled: usize,
}

/// What woke the loop.
enum Event<'a> {
    Signal(RebalanceSignal),
    Handled(HandledBatch),
    Tick,
    Message(KafkaResult<BorrowedMessage<'a>>),
}

impl Source for KafkaSource {
    fn name(&self) -> &'static str {
        "kafka"
    }

    async fn run(
        self,
        ctx: SourceContext,
        out: crate::sources::SourceOutput,
        shutdown: CancellationToken,
    ) -> Result<(), SourceError> {
        let s = self.settings;
        let (signal_tx, signals) = mpsc::unbounded_channel();
        let consumer: Arc<KafkaConsumer> = Arc::new(
            s.client_config()
                .map_err(SourceError::Kafka)?
                .create_with_context(ConsumerCtx::new(signal_tx))
                .map_err(|e| {
                    SourceError::Kafka(format!("the Kafka client refuses the configuration: {e}"))
                })?,
        );
        let topics: Vec<&str> = s.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| SourceError::Kafka(format!("cannot subscribe to {topics:?}: {e}")))?;
        SourceCounters::add(&ctx.counters.connections, 1);
        info!(brokers = %s.brokers, topics = ?s.topics, group = %s.group, "consuming");

        let (inflight_tx, inflight_rx) = mpsc::unbounded_channel();
        let (confirmed_tx, confirmed) = mpsc::unbounded_channel();
        let acker = tokio::spawn(await_acks(inflight_rx, confirmed_tx));
        let now = Instant::now();
        let mut reader = Reader {
            batch: Tracked::starting_at(0),
            entries: Vec::with_capacity(s.batch_max_messages),
            unassigned_since: None,
            next_topic_check: now,
            settings: s,
            ctx,
            consumer,
            offsets: Offsets::default(),
            topics: TopicNames::default(),
            signals,
            confirmed,
            inflight: inflight_tx,
            out: Some(out),
        };
        let result = reader.read(&shutdown).await;
        reader.finish(acker).await;
        result
    }
}

/// Awaits the acks in the order the batches were sent and passes on what
/// each confirmed.
async fn await_acks(
    mut inflight: mpsc::UnboundedReceiver<PendingBatch>,
    confirmed: mpsc::UnboundedSender<HandledBatch>,
) {
    while let Some(batch) = inflight.recv().await {
        let handled = match batch.ack {
            None => 0,
            Some(pending) => match pending.confirmed().await {
                Some(c) if c.outcome == Outcome::Lost => {
                    error!(
                        "records were lost (the dead-letter file cannot be written): offsets are no longer committed, a rerun reads them again"
                    );
                    0
                }
                // Positions are indexes into the batch's entries.
                Some(c) => c.upto as usize,
                None => 0, // the pipeline stopped before confirming
            },
        };
        let entries = batch.entries;
        if confirmed.send(HandledBatch { entries, handled }).is_err() {
            return;
        }
    }
}

/// The loop's state; the one owner of the offsets.
struct Reader {
    settings: KafkaSourceSettings,
    ctx: SourceContext,
    consumer: Arc<KafkaConsumer>,
    offsets: Offsets,
    topics: TopicNames,
    signals: mpsc::UnboundedReceiver<RebalanceSignal>,
    confirmed: mpsc::UnboundedReceiver<HandledBatch>,
    inflight: mpsc::UnboundedSender<PendingBatch>,
    /// The pipeline's input; `None` once the run is finishing.
    out: Option<SourceOutput>,
    /// The batch being filled: its records at the index of their message,
    /// and every message read for it.
    batch: Tracked,
    entries: Vec<Entry>,
    /// The group answered and left this member without partitions, since then.
    unassigned_since: Option<Instant>,
    /// When a consumer without partitions next asks the brokers about its topics.
    next_topic_check: Instant,
}

impl Reader {
    /// Reads until shutdown, the pipeline stops, a fatal consumer error, or
    /// (`--until-idle`) every partition is at its end and the idle time passed.
    async fn read(&mut self, shutdown: &CancellationToken) -> Result<(), SourceError> {
        let consumer = self.consumer.clone();
        let tick = tokio::time::sleep(LINGER);
        tokio::pin!(tick);
        let mut last_message = Instant::now();
        let mut seen_since_tick = false;
        loop {
            let event = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                Some(signal) = self.signals.recv() => Event::Signal(signal),
                Some(c) = self.confirmed.recv() => Event::Handled(c),
                _ = &mut tick => Event::Tick,
                m = consumer.recv() => Event::Message(m),
            };
            let send_now = match event {
                Event::Signal(signal) => {
                    self.on_rebalance(signal).await;
                    false
                }
                Event::Handled(c) => {
                    self.on_confirmed(c);
                    false
                }
                Event::Tick => {
                    let now = Instant::now();
                    tick.as_mut().reset(now + LINGER);
                    if std::mem::take(&mut seen_since_tick) {
                        last_message = now;
                    }
                    if !self.send_batch().await {
                        return Ok(()); // the pipeline stopped
                    }
                    if self.idle_at_end(last_message) {
                        info!("every assigned partition reached its end (--until-idle)");
                        return Ok(());
                    }
                    if self.offsets.assigned() == 0 && self.without_partitions().await? {
                        return Ok(());
                    }
                    false
                }
                Event::Message(m) => {
                    seen_since_tick |= m.is_ok();
                    let mut send_now = self.on_message(m)?;
                    // What librdkafka already holds is taken without going
                    // back through the select: one wake-up per run of
                    // messages, not per message. Bounded by the batch size;
                    // a rebalance event ends the run (recv is then pending),
                    // so its signal is handled before the next message.
                    while !send_now {
                        let Some(m) = consumer.recv().now_or_never() else {
                            break;
                        };
                        seen_since_tick |= m.is_ok();
                        send_now = self.on_message(m)?;
                    }
                    send_now
                }
            };
            if send_now && !self.send_batch().await {
                return Ok(()); // the pipeline stopped
            }
        }
    }

    /// Takes one message (or consumer event); `true` when the batch should go now.
    fn on_message(&mut self, m: KafkaResult<BorrowedMessage<'_>>) -> Result<bool, SourceError> {
        match m {
            Ok(m) => {
                self.offsets.message_on(m.partition());
                let Some(out) = &self.out else {
                    return Ok(true);
                };
                let position = self.entries.len() as u64;
                let entry = read_message(
                    &m,
                    self.settings.platform,
                    &self.ctx,
                    out,
                    &mut self.topics,
                    (&mut self.batch, position),
                )?;
                self.entries.push(entry);
                Ok(self.entries.len() >= self.settings.batch_max_messages)
            }
            Err(KafkaError::PartitionEOF(p)) => {
                self.offsets.eof_on(p);
                Ok(true)
            }
            Err(e @ KafkaError::MessageConsumptionFatal(_)) => {
                Err(SourceError::Kafka(format!("fatal consumer error: {e}")))
            }
            Err(e) => {
                warn!(error = %e, "Kafka consumer error (librdkafka retries)");
                Ok(false)
            }
        }
    }

    fn idle_at_end(&self, last_message: Instant) -> bool {
        self.settings.until_idle
            && last_message.elapsed() >= self.settings.idle
            && self.offsets.all_at_end()
    }

    /// Hands the batch being filled to the pipeline (with an ack when it has
    /// records) and to the acker; `false` when the pipeline stopped.
    async fn send_batch(&mut self) -> bool {
        if self.entries.is_empty() {
            return true;
        }
        let Some(out) = &self.out else {
            return false;
        };
        let batch = std::mem::replace(&mut self.batch, Tracked::starting_at(0));
        let entries = std::mem::take(&mut self.entries);
        let ack = out.send_tracked(batch, false).await;
        let running = ack.is_some();
        let _ = self.inflight.send(PendingBatch { entries, ack });
        running
    }

    /// A tick with no partition assigned. A subscribed topic that the brokers
    /// do not know (or refuse) ends an `--until-idle` run with an error naming
    /// it; without `--until-idle` the consumer waits for it, warning every
    /// minute. A member the group answered with no partition (more members
    /// than partitions) ends an `--until-idle` run after the idle time: there
    /// is nothing for it to drain. `Ok(true)`: stop.
    async fn without_partitions(&mut self) -> Result<bool, SourceError> {
        let now = Instant::now();
        let until_idle = self.settings.until_idle;
        if now >= self.next_topic_check {
            self.next_topic_check = now
                + if until_idle {
                    self.settings.idle.max(Duration::from_secs(1))
                } else {
                    TOPIC_CHECK_EVERY
                };
            let missing = self.missing_topics().await;
            if !missing.is_empty() {
                let what = format!(
                    "the Kafka brokers {} have no topic {}",
                    self.settings.brokers,
                    missing.join(", ")
                );
                if until_idle {
                    return Err(SourceError::Kafka(format!(
                        "{what}: nothing to drain (--until-idle); check the topic name"
                    )));
                }
                warn!("{what}: waiting for it (checked again in a minute)");
                return Ok(false);
            }
        }
        if until_idle
            && self.entries.is_empty()
            && self
                .unassigned_since
                .is_some_and(|since| since.elapsed() >= self.settings.idle)
        {
            info!(
                group = %self.settings.group,
                "the group gave this member no partition (its other members hold them all): nothing to drain (--until-idle)"
            );
            return Ok(true);
        }
        Ok(false)
    }

    /// The subscribed topics the brokers do not have (or refuse), each with
    /// the brokers' reason; empty when all exist or the brokers do not answer
    /// (then librdkafka's own errors say why). Patterns (`^…`) are not checked.
    async fn missing_topics(&self) -> Vec<String> {
        let consumer = self.consumer.clone();
        let wanted: Vec<String> = self
            .settings
            .topics
            .iter()
            .filter(|t| !t.starts_with('^'))
            .cloned()
            .collect();
        let answer = tokio::task::spawn_blocking(move || {
            let metadata = match consumer.fetch_metadata(None, METADATA_TIMEOUT) {
                Ok(m) => m,
                Err(e) => {
                    debug!(error = %e, "no metadata from the brokers");
                    return Vec::new();
                }
            };
            wanted
                .into_iter()
                .filter_map(|t| match metadata.topics().iter().find(|m| m.name() == t) {
                    None => Some(t),
                    Some(m) => m
                        .error()
                        .map(|e| format!("{t} ({})", rdkafka::error::RDKafkaErrorCode::from(e))),
                })
                .collect()
        });
        answer.await.unwrap_or_default()
    }

    /// A batch's ack came back: confirm its offsets and commit them.
    fn on_confirmed(&mut self, c: HandledBatch) {
        self.offsets.confirm(&c.entries, c.handled);
        let ready = self.offsets.to_commit(None);
        debug!(
            handled = c.handled,
            assigned = self.offsets.assigned(),
            to_commit = ready.len(),
            "batch confirmed"
        );
        if ready.is_empty() {
            return;
        }
        match self.consumer.commit(&list(&ready), CommitMode::Async) {
            Ok(()) => self.offsets.mark_committed(&ready),
            Err(e) => warn!(error = %e, "offset commit failed; retried with the next batch"),
        }
    }

    /// Acks already back are applied without waiting for the loop's turn.
    fn take_confirmations(&mut self) {
        while let Ok(c) = self.confirmed.try_recv() {
            self.offsets.confirm(&c.entries, c.handled);
        }
    }

    /// Acts on what the coordinator decided. Before partitions are revoked,
    /// what is confirmed for them is committed; librdkafka holds the
    /// rebalance until [`apply`] makes the new assignment.
    async fn on_rebalance(&mut self, signal: RebalanceSignal) {
        match &signal {
            RebalanceSignal::Assign(tpl) => self.offsets.assign(partitions(tpl)),
            RebalanceSignal::Revoke(tpl) => {
                let revoked: HashSet<Tp> = partitions(tpl).into_iter().collect();
                self.take_confirmations();
                let ready = self.offsets.to_commit(Some(&revoked));
                if !ready.is_empty() {
                    match self.commit_sync(ready).await {
                        Ok(n) => info!(
                            partitions = n,
                            "committed confirmed offsets before the rebalance"
                        ),
                        Err(e) => {
                            warn!(error = %e, "cannot commit before the rebalance: the next owner re-reads from the last commit")
                        }
                    }
                }
                self.offsets.revoke(&revoked);
            }
            RebalanceSignal::Failed(_, tpl) => {
                if drops_all(&*self.consumer) {
                    self.offsets.revoke_all();
                } else {
                    self.offsets.revoke(&partitions(tpl));
                }
            }
        }
        apply(&*self.consumer, &signal);
        if let RebalanceSignal::Assign(_) = signal {
            self.unassigned_since = (self.offsets.assigned() == 0).then(Instant::now);
        }
    }

    /// Commits and waits for the brokers' answer (off the async threads);
    /// `Ok` with the number of partitions committed.
    async fn commit_sync(&mut self, ready: Vec<(Tp, i64)>) -> Result<usize, String> {
        let consumer = self.consumer.clone();
        let tpl = list(&ready);
        tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| format!("the commit task failed: {e}"))?
            .map_err(|e| e.to_string())?;
        self.offsets.mark_committed(&ready);
        Ok(ready.len())
    }

    /// What was read goes to the sinks; then every ack is awaited, the last
    /// offsets committed, and the group left.
    async fn finish(mut self, acker: JoinHandle<()>) {
        self.send_batch().await;
        // With both senders gone, the acker ends after the last ack, and the
        // pipeline sees the end of the input.
        self.out = None;
        let (inflight, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.inflight, inflight));
        while let Some(c) = self.confirmed.recv().await {
            self.offsets.confirm(&c.entries, c.handled);
        }
        if let Err(e) = acker.await {
            error!(error = %e, "the offset task failed");
        }
        let ready = self.offsets.to_commit(None);
        if !ready.is_empty() {
            match self.commit_sync(ready).await {
                Ok(n) => info!(partitions = n, "final offsets committed"),
                Err(e) => {
                    error!(error = %e, "the final offset commit failed: the next run re-reads the confirmed tail")
                }
            }
        }
        // From here on the callback applies rebalances itself; one already
        // signalled is applied now (its offsets were just committed).
        self.signals.close();
        while let Ok(signal) = self.signals.try_recv() {
            apply(&*self.consumer, &signal);
        }
        // Leave the group now rather than at drop, so partitions move at once.
        let c = self.consumer.clone();
        let _ = tokio::task::spawn_blocking(move || c.unsubscribe()).await;
    }
}

/// A librdkafka partition list of offsets to commit.
fn list(offsets: &[(Tp, i64)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in offsets {
        let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset));
    }
    tpl
}
