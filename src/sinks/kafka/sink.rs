//! The producer: produces a batch and hands back its confirmation, which
//! waits for every delivery report and says by index which records failed
//! (to retry) or were refused (to dead-letter). The pipeline produces the
//! next batch while one batch's reports come in.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use tracing::{debug, error, info, warn};

use super::classify::{Verdict, classify};
use super::{KafkaSinkConfig, render_topic};
use crate::kafka::KafkaLog;
use crate::record::{Format, Platform, Record};
use crate::sinks::template::{Ctx, Target, Template, copies, merge_copies, received_at};
use crate::sinks::{RecordResults, Sent, Sink, SinkError};
use chrono_tz::Tz;

/// How long the healthcheck and the final flush wait for the brokers.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// The producer's context: logs through [`KafkaLog`].
struct LogContext(KafkaLog);

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.0.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.error(&error, reason);
    }
}

/// Delivery reports land in the batch they belong to, on librdkafka's polling
/// thread: a failure is noted by index, and the last report wakes the writer
/// (one wake-up per batch, not one per message).
impl ProducerContext for LogContext {
    type DeliveryOpaque = Box<PendingMessage>;

    fn delivery(&self, result: &DeliveryResult<'_>, message: Box<PendingMessage>) {
        if let Err((e, _)) = result {
            message.batch.fail(message.index, e.clone());
        }
        message.batch.done_one();
    }
}

/// One message on its way: its batch and its index there.
struct PendingMessage {
    batch: Arc<BatchState>,
    index: usize,
}

/// The delivery reports of one batch.
struct BatchState {
    remaining: std::sync::atomic::AtomicUsize,
    failures: std::sync::Mutex<Vec<(usize, KafkaError)>>,
    done: tokio::sync::Notify,
}

impl BatchState {
    fn new(n: usize) -> Self {
        BatchState {
            remaining: std::sync::atomic::AtomicUsize::new(n),
            failures: std::sync::Mutex::new(Vec::new()),
            done: tokio::sync::Notify::new(),
        }
    }

    fn fail(&self, index: usize, e: KafkaError) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((index, e));
    }

    fn done_one(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }

    async fn all_reported(&self) {
        while self.remaining.load(Ordering::Acquire) > 0 {
            self.done.notified().await;
        }
    }
}

/// Writes records to Kafka.
pub struct KafkaSink {
    name: String,
    config: KafkaSinkConfig,
    producer: Arc<ThreadedProducer<LogContext>>,
    /// Set by a batch's confirmation when the producer hit a fatal error: the
    /// next send replaces the producer (the failed records are retried).
    replace_producer: Arc<AtomicBool>,
    format: Format,
    headers: bool,
    /// One topic per platform when the template needs nothing else…
    topics: [String; 2],
    /// …else the template, rendered per record.
    topic_template: Option<Template>,
    /// The key template; `None` when it is the record id.
    key_template: Option<Template>,
    split_tags: bool,
    brokers: String,
}

impl KafkaSink {
    /// Builds the producer; `Err` carries a message for the user (a bad property, an unset variable).
    pub fn new(name: &str, config: &KafkaSinkConfig) -> Result<Self, String> {
        config
            .validate()
            .map_err(|e| format!("{}: {}", e.field, e.message))?;
        Ok(KafkaSink {
            name: name.to_owned(),
            producer: Self::producer(name, config)?,
            replace_producer: Arc::default(),
            config: config.clone(),
            format: config.format,
            headers: config.headers,
            topics: [
                render_topic(&config.topic, Platform::Twitter),
                render_topic(&config.topic, Platform::Telegram),
            ],
            topic_template: Some(Template::compile(&config.topic, Target::KafkaTopic)?)
                .filter(|t| !t.platform_only()),
            key_template: Some(Template::compile(&config.key, Target::Key)?).filter(|t| !t.is_id()),
            split_tags: config.split_tags,
            brokers: config.brokers.clone(),
        })
    }

    fn producer(
        name: &str,
        config: &KafkaSinkConfig,
    ) -> Result<Arc<ThreadedProducer<LogContext>>, String> {
        config
            .client_config()?
            .create_with_context(LogContext(KafkaLog::new(name)))
            .map(Arc::new)
            .map_err(|e| format!("the Kafka client refuses the configuration: {e}"))
    }

    fn topic(&self, platform: Platform) -> &str {
        match platform {
            Platform::Twitter => &self.topics[0],
            Platform::Telegram => &self.topics[1],
        }
    }

    fn headers_for(&self, r: &Record) -> Option<OwnedHeaders> {
        if !self.headers {
            return None;
        }
        let mut h = OwnedHeaders::new_with_capacity(2 + r.matching_rules.len())
            .insert(Header {
                key: "platform",
                value: Some(r.platform.as_str()),
            })
            .insert(Header {
                key: "kind",
                value: Some(r.kind.as_ref()),
            });
        for tag in r.matching_rules.iter().filter_map(|m| m.tag.as_deref()) {
            h = h.insert(Header {
                key: "rule_tag",
                value: Some(tag),
            });
        }
        Some(h)
    }
}

/// Results of one batch, by record index.
#[derive(Default)]
struct Outcomes {
    results: RecordResults,
    /// The producer hit a fatal error (idempotence state lost) and must be rebuilt.
    fatal: bool,
}

impl Outcomes {
    fn fail(&mut self, i: usize, e: &KafkaError) {
        self.results.note(e.to_string());
        self.fatal |= e.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal);
        match classify(e) {
            Verdict::Retry => self.results.failed.push(i),
            Verdict::Reject(why) => self.results.rejected.push((i, why)),
        }
    }
}

impl KafkaSink {
    /// Hands one message to librdkafka, waiting while its queue is full; its
    /// delivery report lands in `state` at `index`. An error means no report
    /// will come. A message refused for a full queue comes back and is offered
    /// again as it is: its opaque and headers are built once.
    async fn produce(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        r: &Record,
        state: &Arc<BatchState>,
        index: usize,
    ) -> Result<(), KafkaError> {
        let opaque = Box::new(PendingMessage {
            batch: state.clone(),
            index,
        });
        let mut message = BaseRecord::with_opaque_to(topic, opaque)
            .key(key)
            .payload(payload);
        if let Some(h) = self.headers_for(r) {
            message = message.headers(h);
        }
        loop {
            // A refused message comes back: no report will come for it.
            match self.producer.send(message) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // librdkafka's queue is full (brokers slow or away): wait for room.
                    message = back;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Produces every message of a batch; their delivery reports land in the
    /// returned state, the messages librdkafka refused in `outcomes` already.
    async fn produce_batch(
        &self,
        batch: &[Arc<Record>],
        outcomes: &mut Outcomes,
    ) -> (Arc<BatchState>, usize) {
        // With `split_tags` a record is one message per tag: each reports on
        // the record's index, and the record is confirmed when all did.
        let copies: Vec<(usize, Option<&str>)> = copies(batch, self.split_tags).collect();
        let state = Arc::new(BatchState::new(copies.len()));
        let mut payload = Vec::with_capacity(1024);
        let (mut topic_buf, mut key_buf) = (String::new(), String::new());
        let mut last_at = None;
        for &(i, tag) in &copies {
            let r = &batch[i];
            payload.clear();
            r.write_line(self.format, &mut payload);
            payload.pop(); // the newline
            if self.topic_template.is_some() || self.key_template.is_some() {
                let at = received_at(r, Tz::UTC, &mut last_at);
                let ctx = Ctx {
                    record: r,
                    tag,
                    at: &at,
                };
                if let Some(t) = &self.topic_template {
                    topic_buf.clear();
                    t.render(&ctx, &mut topic_buf);
                }
                if let Some(t) = &self.key_template {
                    key_buf.clear();
                    t.render(&ctx, &mut key_buf);
                }
            }
            let topic = match self.topic_template {
                Some(_) => topic_buf.as_str(),
                None => self.topic(r.platform),
            };
            let key = match self.key_template {
                Some(_) => key_buf.as_str(),
                None => r.id.as_str(),
            };
            if let Err(e) = self.produce(topic, key, &payload, r, &state, i).await {
                outcomes.fail(i, &e);
                state.done_one();
            }
        }
        (state, copies.len())
    }
}

/// A batch's outcome from its reports: copies merged, a fatal producer
/// marked for replacement, the first error summarized.
fn settle(
    sink: &str,
    replace_producer: &AtomicBool,
    mut outcomes: Outcomes,
    records: usize,
) -> Result<(), SinkError> {
    merge_copies(&mut outcomes.results);
    if outcomes.fatal {
        error!(
            "the Kafka producer hit a fatal error; replacing it (the failed records are retried)"
        );
        replace_producer.store(true, Ordering::Release);
    }
    let failures = outcomes.results.failed.len() + outcomes.results.rejected.len();
    if let Some(first) = outcomes.results.first.take() {
        outcomes.results.first = Some(format!(
            "{failures} of {records} deliveries failed; first error: {first}"
        ));
    }
    outcomes
        .results
        .finish(sink, records, || "deliveries failed".to_owned())
}

impl Sink for KafkaSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn target(&self) -> String {
        format!("brokers {} answered", self.brokers)
    }

    /// Asks the brokers for metadata. Unreachable brokers are a retryable
    /// failure: the run starts and the records wait for the brokers.
    async fn healthcheck(&mut self) -> Result<(), SinkError> {
        let producer = self.producer.clone();
        let result = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, METADATA_TIMEOUT)
                .map(|m| m.brokers().len())
        })
        .await
        .map_err(|e| SinkError::fatal(&self.name, format!("the metadata task failed: {e}")))?;
        match result {
            Ok(n) => {
                info!(brokers = n, bootstrap = %self.brokers, "Kafka reachable");
                Ok(())
            }
            Err(e) => Err(SinkError::retryable(
                &self.name,
                format!(
                    "no answer from the Kafka brokers {} within {} s: {e}",
                    self.brokers,
                    METADATA_TIMEOUT.as_secs()
                ),
            )),
        }
    }

    async fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<(), SinkError> {
        match self.send(batch).await {
            Sent::Done(result) => result,
            Sent::InFlight(confirmation) => confirmation.await,
        }
    }

    fn keeps_batches_in_flight(&self) -> bool {
        true
    }

    /// Produces the whole batch and returns with its delivery reports still
    /// out: the pipeline produces the next batch meanwhile. The confirmation
    /// resolves once every report came, exactly as `write_batch` would.
    async fn send(&mut self, batch: &[Arc<Record>]) -> Sent {
        if self.replace_producer.swap(false, Ordering::AcqRel) {
            match Self::producer(&self.name, &self.config) {
                Ok(p) => self.producer = p,
                Err(m) => return Sent::Done(Err(SinkError::fatal(&self.name, m))),
            }
        }
        let mut outcomes = Outcomes::default();
        let started = std::time::Instant::now();
        let (state, messages) = self.produce_batch(batch, &mut outcomes).await;
        let produced = started.elapsed();
        let (name, replace_producer) = (self.name.clone(), self.replace_producer.clone());
        // The reports come from this producer: it lives until they did, even
        // if a fatal error replaces it meanwhile.
        let producer = self.producer.clone();
        let records = batch.len();
        Sent::InFlight(Box::pin(async move {
            state.all_reported().await;
            drop(producer);
            debug!(
                messages,
                produce_ms = produced.as_millis() as u64,
                reports_ms = (started.elapsed() - produced).as_millis() as u64,
                "batch written"
            );
            let failures =
                std::mem::take(&mut *state.failures.lock().unwrap_or_else(|p| p.into_inner()));
            for (i, e) in failures {
                outcomes.fail(i, &e);
            }
            settle(&name, &replace_producer, outcomes, records)
        }))
    }

    /// Everything confirmed was confirmed by a delivery report already; what
    /// is still queued was abandoned at the deadline (and dead-lettered by the
    /// pipeline), so it gets a short chance to go out, then is purged.
    async fn flush(&mut self) -> Result<(), SinkError> {
        let producer = self.producer.clone();
        let left = tokio::task::spawn_blocking(move || {
            if producer.in_flight_count() > 0 && producer.flush(FLUSH_TIMEOUT).is_err() {
                let left = producer.in_flight_count();
                producer.purge(PurgeConfig::default().queue().inflight());
                return left;
            }
            0
        })
        .await
        .map_err(|e| SinkError::fatal(&self.name, format!("the flush task failed: {e}")))?;
        if left > 0 {
            warn!(
                messages = left,
                "messages abandoned at the deadline were purged from the producer queue (they are in the dead-letter file)"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn a_batch_is_reported_only_after_every_delivery_report() {
        let state = BatchState::new(3);
        state.done_one();
        state.fail(
            1,
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
        );
        state.done_one();
        assert!(
            state.all_reported().now_or_never().is_none(),
            "one delivery report is still out"
        );
        state.done_one();
        assert!(state.all_reported().now_or_never().is_some());
        assert_eq!(state.failures.lock().unwrap()[0].0, 1);
    }

    #[tokio::test]
    async fn the_last_report_from_librdkafkas_thread_wakes_the_writer() {
        let state = Arc::new(BatchState::new(2));
        let reporter = state.clone();
        let thread = std::thread::spawn(move || {
            for _ in 0..2 {
                std::thread::sleep(Duration::from_millis(20));
                reporter.done_one();
            }
        });
        tokio::time::timeout(Duration::from_secs(5), state.all_reported())
            .await
            .expect("woken by the last report");
        assert_eq!(
            state.remaining.load(std::sync::atomic::Ordering::Acquire),
            0
        );
        thread.join().unwrap();
    }
}
