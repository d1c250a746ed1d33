//! The Kafka source: consume topics into any sink, committing offsets only
//! after every sink confirmed every record up to them.
//!
//! Each message's value is an `ingest` record (what the Kafka sink writes with
//! `format = "record"`), else a raw X stream line or Telegram update,
//! normalized as `replay` does; anything else goes to the dead-letter file with
//! its topic, partition and offset. Auto-commit is off: the source sends a
//! batch with an ack, a task awaits the acks in order and commits the next
//! offset of each partition once its records are confirmed (delivered or
//! dead-lettered). Before partitions are revoked in a rebalance, what is
//! confirmed for them is committed synchronously; on stop, every pending ack
//! is awaited and the last offsets committed. A crash replays at most the
//! unconfirmed tail (at-least-once; record ids make duplicates easy to drop).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::{Source, SourceContext, SourceCounters, SourceError};
use crate::pipeline::{Ack, Outcome, SourceBatch};
use crate::record::{Normalized, Record, rfc3339, transliterate};
use crate::sources::InputPlatform;

/// Default bootstrap brokers.
pub const DEFAULT_BROKERS: &str = "localhost:9092";
/// Default consumer group.
pub const DEFAULT_GROUP: &str = "ingest";
/// librdkafka properties that have a field or flag of their own.
const OWN_PROPERTIES: [(&str, &str); 7] = [
    ("bootstrap.servers", "brokers"),
    ("metadata.broker.list", "brokers"),
    ("group.id", "group"),
    ("auto.offset.reset", "from"),
    (
        "enable.auto.commit",
        "(always off: offsets are committed after the sinks confirm)",
    ),
    ("enable.auto.offset.store", "(always off)"),
    ("session.timeout.ms", "session_timeout_ms"),
];

/// Where a group with no committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// The oldest message still in the topic.
    #[default]
    Earliest,
    /// Only messages produced after the group joined.
    Latest,
}

/// `[kafka]` in the config: the Kafka source.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Bootstrap brokers, comma-separated `host:port`.
    pub brokers: Option<String>,
    /// Topics to consume.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Consumer group.
    pub group: Option<String>,
    /// `earliest` or `latest`, for a group with no committed offset.
    pub from: Option<StartFrom>,
    /// How raw (non-record) values are read.
    pub platform: Option<InputPlatform>,
    /// The group's session timeout (librdkafka's `session.timeout.ms`).
    pub session_timeout_ms: Option<u64>,
    /// Messages per batch sent to the sinks.
    pub batch_max_messages: Option<usize>,
    /// `--until-idle`: also wait this long without a message before stopping.
    pub idle_ms: Option<u64>,
    /// Any librdkafka consumer property; `${VAR}` takes an environment variable.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// What the Kafka source needs, resolved.
#[derive(Clone)]
pub struct KafkaSourceSettings {
    pub brokers: String,
    pub topics: Vec<String>,
    pub group: String,
    pub from: StartFrom,
    pub platform: InputPlatform,
    pub session_timeout_ms: u64,
    pub batch_max_messages: usize,
    pub idle: Duration,
    pub until_idle: bool,
    pub properties: BTreeMap<String, String>,
}

impl std::fmt::Debug for KafkaSourceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSourceSettings")
            .field("brokers", &self.brokers)
            .field("topics", &self.topics)
            .field("group", &self.group)
            .field("from", &self.from)
            .field("until_idle", &self.until_idle)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Checks the source's settings; `Err((field, message))`.
pub fn validate(s: &KafkaSourceSettings) -> Result<(), (String, String)> {
    let err = |f: &str, m: String| Err((f.to_owned(), m));
    if s.brokers.split(',').any(|b| b.trim().is_empty()) {
        return err(
            "brokers",
            format!("`{}` is not a list of host:port brokers", s.brokers),
        );
    }
    if s.topics.is_empty() {
        return err(
            "topics",
            "no topic: name one with --topic (repeatable) or `topics = [...]` in [kafka]".into(),
        );
    }
    if let Some(m) = s
        .topics
        .iter()
        .find_map(|t| crate::sinks::kafka::check_topic_name(t).err())
    {
        return err("topics", m);
    }
    crate::sinks::kafka::check_property_vars(&s.properties)?;
    if s.group.trim().is_empty() {
        return err("group", "the consumer group must not be empty".into());
    }
    if !(1..=3_600_000).contains(&s.session_timeout_ms) {
        return err(
            "session_timeout_ms",
            format!("{} is out of range: 1 to 3600000", s.session_timeout_ms),
        );
    }
    if s.batch_max_messages == 0 {
        return err("batch_max_messages", "must be at least 1".into());
    }
    for key in s.properties.keys() {
        if let Some((_, instead)) = OWN_PROPERTIES.iter().find(|(p, _)| p == key) {
            return err(
                &format!("properties.{key}"),
                format!("`{key}` cannot be set here: use `{instead}`"),
            );
        }
    }
    Ok(())
}

/// `ingest check --source kafka`: the brokers answer and the `[kafka]` topics exist.
pub async fn check(config: &KafkaSourceConfig) -> Result<String, String> {
    let brokers = config
        .brokers
        .clone()
        .unwrap_or_else(|| DEFAULT_BROKERS.to_owned());
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &brokers);
    crate::sinks::kafka::set_properties(&mut c, &config.properties)?;
    let consumer: BaseConsumer = c
        .create()
        .map_err(|e| format!("the Kafka client refuses the configuration: {e}"))?;
    let topics = config.topics.clone();
    let b = brokers.clone();
    tokio::task::spawn_blocking(move || {
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .map_err(|e| format!("no answer from the Kafka brokers {b}: {e}"))?;
        let known: HashSet<&str> = metadata.topics().iter().map(|t| t.name()).collect();
        let missing: Vec<&String> = topics
            .iter()
            .filter(|t| !known.contains(t.as_str()))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "brokers {b} answer, but these topics do not exist: {missing:?}"
            ));
        }
        Ok(format!(
            "brokers {b} answer ({} broker{}){}",
            metadata.brokers().len(),
            if metadata.brokers().len() == 1 {
                ""
            } else {
                "s"
            },
            if topics.is_empty() {
                String::new()
            } else {
                format!(", topics {} exist", topics.join(", "))
            }
        ))
    })
    .await
    .map_err(|e| format!("the check task failed: {e}"))?
}

/// A partition: (topic, partition).
type Tp = (String, i32);

/// Offsets and assignment, shared with the rebalance callbacks.
#[derive(Default)]
struct Shared {
    assigned: HashSet<Tp>,
    /// Next offset to commit (last confirmed + 1).
    confirmed: HashMap<Tp, i64>,
    committed: HashMap<Tp, i64>,
    /// End-of-partition events since the last message, by partition number:
    /// librdkafka's EOF event carries the partition but not the topic, so with
    /// several topics a partition number is at its end once it has as many EOF
    /// events as assigned topics have that partition.
    eof: HashMap<i32, usize>,
    /// A batch was not wholly confirmed: nothing more is (see [`Shared::confirm`]).
    stopped: bool,
}

impl Shared {
    /// A message on partition number `p`: its topic is not at its end any more.
    /// Which topic's EOF that cancels is unknown, so at most all but one of the
    /// topics with that partition number stay counted (exact for one topic).
    fn message_on(&mut self, p: i32) {
        if let Some(seen) = self.eof.get_mut(&p) {
            let topics = self.assigned.iter().filter(|(_, q)| *q == p).count();
            *seen = (*seen).min(topics.saturating_sub(1));
        }
    }

    /// Every assigned partition has reported its end since its last message.
    fn all_at_end(&self) -> bool {
        if self.assigned.is_empty() {
            return false;
        }
        let mut wanted: HashMap<i32, usize> = HashMap::new();
        for (_, p) in &self.assigned {
            *wanted.entry(*p).or_default() += 1;
        }
        wanted
            .iter()
            .all(|(p, n)| self.eof.get(p).is_some_and(|seen| seen >= n))
    }
}

impl Shared {
    /// Takes a batch's ack: its messages are confirmed up to the `accepted`-th
    /// record (messages that are not records — dead-lettered, control — count
    /// as handled). Once a batch is not wholly confirmed (a record limit cut
    /// it, the pipeline stopped, records were lost), nothing after it is: a
    /// later offset on the same partition would commit past the records that
    /// were not delivered.
    fn confirm(&mut self, entries: &[(Tp, i64, bool)], accepted: usize) {
        if self.stopped {
            return;
        }
        let mut taken = 0usize;
        for (tp, offset, is_record) in entries {
            if *is_record {
                if taken >= accepted {
                    self.stopped = true;
                    return;
                }
                taken += 1;
            }
            // A partition revoked meanwhile is another consumer's now.
            if self.assigned.contains(tp) {
                let next = self.confirmed.entry(tp.clone()).or_insert(0);
                *next = (*next).max(offset + 1);
            }
        }
    }

    /// Confirmed offsets not yet committed, for assigned partitions in `only` (or all).
    fn to_commit(&self, only: Option<&HashSet<Tp>>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (tp, off) in &self.confirmed {
            if !self.assigned.contains(tp) || only.is_some_and(|o| !o.contains(tp)) {
                continue;
            }
            if self.committed.get(tp) != Some(off) {
                let _ = tpl.add_partition_offset(&tp.0, tp.1, Offset::Offset(*off));
            }
        }
        tpl
    }

    fn mark_committed(&mut self, tpl: &TopicPartitionList) {
        for e in tpl.elements() {
            if let Offset::Offset(o) = e.offset() {
                self.committed
                    .insert((e.topic().to_owned(), e.partition()), o);
            }
        }
    }
}

struct ConsumerCtx {
    shared: Arc<Mutex<Shared>>,
    log: crate::sinks::kafka::KafkaLog,
}

impl ClientContext for ConsumerCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        ) {
            return; // the end of a partition is news, not an error (see --until-idle)
        }
        self.log.error(&error, reason);
    }
}

impl ConsumerContext for ConsumerCtx {
    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        offsets: &TopicPartitionList,
    ) {
        match result {
            Ok(()) => debug!(partitions = offsets.count(), "offsets committed"),
            Err(e) => {
                warn!(error = %e, "offset commit failed; the next commit carries these offsets too")
            }
        }
    }

    /// Before partitions go to another consumer, commit what is confirmed for them.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let revoked: HashSet<Tp> = revoked
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let tpl = s.to_commit(Some(&revoked));
        if tpl.count() > 0 {
            match consumer.commit(&tpl, CommitMode::Sync) {
                Ok(()) => {
                    s.mark_committed(&tpl);
                    info!(
                        partitions = tpl.count(),
                        "committed confirmed offsets before the rebalance"
                    );
                }
                Err(e) => {
                    warn!(error = %e, "cannot commit before the rebalance: the next owner re-reads from the last commit")
                }
            }
        }
        for tp in &revoked {
            s.assigned.remove(tp);
            s.confirmed.remove(tp);
            s.committed.remove(tp);
        }
        s.eof.clear();
        info!(partitions = revoked.len(), "partitions revoked");
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            for e in tpl.elements() {
                s.assigned.insert((e.topic().to_owned(), e.partition()));
            }
            s.eof.clear();
            let list: Vec<String> = tpl
                .elements()
                .iter()
                .map(|e| format!("{}/{}", e.topic(), e.partition()))
                .collect();
            info!(partitions = %list.join(","), "partitions assigned");
        }
    }
}

/// One batch in flight: each entry is a message, in the order read, and
/// whether it became a record (only records are counted by the ack).
struct InFlight {
    entries: Vec<(Tp, i64, bool)>,
    ack: Option<oneshot::Receiver<Ack>>,
}

/// Consumes Kafka topics.
pub struct KafkaSource {
    pub settings: KafkaSourceSettings,
}

impl KafkaSource {
    fn client_config(&self) -> Result<ClientConfig, SourceError> {
        let s = &self.settings;
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &s.brokers)
            .set("group.id", &s.group)
            .set("client.id", format!("ingest/{}", env!("CARGO_PKG_VERSION")))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set(
                "auto.offset.reset",
                match s.from {
                    StartFrom::Earliest => "earliest",
                    StartFrom::Latest => "latest",
                },
            )
            .set("session.timeout.ms", s.session_timeout_ms.to_string());
        if s.session_timeout_ms < 3000 {
            // librdkafka wants the heartbeat well inside the session timeout.
            c.set(
                "heartbeat.interval.ms",
                (s.session_timeout_ms / 3).max(1).to_string(),
            );
        }
        crate::sinks::kafka::set_properties(&mut c, &s.properties).map_err(SourceError::Kafka)?;
        Ok(c)
    }
}

/// Turns one message value into a record (or says why not).
fn decode(
    value: &[u8],
    platform: InputPlatform,
    ctx: &SourceContext,
) -> Result<Option<Record>, String> {
    if value.is_empty() {
        return Err("empty message value (a tombstone?)".into());
    }
    // A record our Kafka sink wrote (format = "record"); every record has `run`,
    // so other values skip the attempt.
    let looks_like_record = memchr::memmem::find(value, b"\"run\":").is_some();
    if let Some(Ok(mut r)) = looks_like_record.then(|| serde_json::from_slice::<Record>(value)) {
        let opts = &ctx.normalize;
        if !opts.keep_raw {
            r.raw = None;
        }
        if opts.transliterate && r.text_ascii.is_none() {
            r.text_ascii = r.text.as_deref().map(transliterate);
        }
        return Ok(Some(r));
    }
    let received_at: Arc<str> = Arc::from(rfc3339(chrono::Utc::now()));
    match super::replay::normalize(platform, value, &received_at, ctx) {
        Ok(Normalized::Record(r)) => Ok(Some(*r)),
        Ok(Normalized::Control(_)) => {
            SourceCounters::add(&ctx.counters.control, 1);
            Ok(None)
        }
        Ok(Normalized::Nothing) => Err("blank message value".into()),
        Err(e) => Err(format!(
            "neither an ingest record nor a raw X line or Telegram update: {e}"
        )),
    }
}

impl Source for KafkaSource {
    fn name(&self) -> &'static str {
        "kafka"
    }

    async fn run(
        self,
        ctx: SourceContext,
        out: super::SourceOutput,
        shutdown: CancellationToken,
    ) -> Result<(), SourceError> {
        let out = out.into_sender();
        let s = self.settings.clone();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let consumer: Arc<StreamConsumer<ConsumerCtx>> = Arc::new(
            self.client_config()?
                .create_with_context(ConsumerCtx {
                    shared: shared.clone(),
                    log: crate::sinks::kafka::KafkaLog::new("kafka source"),
                })
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

        // The acker: awaits acks in order and commits what they confirm.
        let (inflight_tx, mut inflight_rx) = mpsc::unbounded_channel::<InFlight>();
        let acker = {
            let consumer = consumer.clone();
            let shared = shared.clone();
            tokio::spawn(async move {
                while let Some(batch) = inflight_rx.recv().await {
                    let accepted = match batch.ack {
                        None => 0,
                        Some(rx) => match rx.await {
                            Ok(Ack {
                                accepted,
                                outcome: Outcome::Delivered | Outcome::DeadLettered,
                            }) => accepted,
                            Ok(Ack {
                                outcome: Outcome::Lost,
                                ..
                            }) => {
                                error!(
                                    "records were lost (the dead-letter file cannot be written): offsets are no longer committed, a rerun reads them again"
                                );
                                0
                            }
                            Err(_) => 0, // the pipeline stopped before confirming
                        },
                    };
                    let tpl = {
                        let mut sh = shared.lock().unwrap_or_else(|p| p.into_inner());
                        sh.confirm(&batch.entries, accepted);
                        let tpl = sh.to_commit(None);
                        debug!(
                            accepted,
                            assigned = sh.assigned.len(),
                            confirmed = sh.confirmed.len(),
                            to_commit = tpl.count(),
                            "batch confirmed"
                        );
                        tpl
                    };
                    if tpl.count() > 0 {
                        match consumer.commit(&tpl, CommitMode::Async) {
                            Ok(()) => shared
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .mark_committed(&tpl),
                            Err(e) => {
                                warn!(error = %e, "offset commit failed; retried with the next batch")
                            }
                        }
                    }
                }
            })
        };

        let mut records: Vec<Arc<Record>> = Vec::with_capacity(s.batch_max_messages);
        let mut entries: Vec<(Tp, i64, bool)> = Vec::with_capacity(s.batch_max_messages);
        let linger = Duration::from_millis(100);
        let mut last_message = tokio::time::Instant::now();
        let mut result = Ok(());
        let flush = |records: &mut Vec<Arc<Record>>, entries: &mut Vec<(Tp, i64, bool)>| {
            let records = std::mem::take(records);
            let entries = std::mem::take(entries);
            (records, entries)
        };
        // One timer for the loop: it flushes a partial batch every `linger` and
        // is when --until-idle looks at the clock (not once per message).
        let tick = tokio::time::sleep(linger);
        tokio::pin!(tick);
        let mut seen_since_tick = false;
        loop {
            let message = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = &mut tick => None,
                m = consumer.recv() => Some(m),
            };
            let mut send_now = false;
            let mut check_idle = false;
            match message {
                None => {
                    let now = tokio::time::Instant::now();
                    tick.as_mut().reset(now + linger);
                    if seen_since_tick {
                        last_message = now;
                        seen_since_tick = false;
                    }
                    send_now = true;
                    check_idle = true;
                }
                Some(Ok(m)) => {
                    seen_since_tick = true;
                    let (tp, offset, is_record) = self.handle(&m, &ctx, &mut records, &shared);
                    entries.push((tp, offset, is_record));
                    send_now = entries.len() >= s.batch_max_messages;
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    shared
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .eof
                        .entry(p)
                        .and_modify(|n| *n += 1)
                        .or_insert(1);
                    send_now = true;
                }
                Some(Err(e)) => {
                    if matches!(e, KafkaError::MessageConsumptionFatal(_)) {
                        result = Err(SourceError::Kafka(format!("fatal consumer error: {e}")));
                        break;
                    }
                    warn!(error = %e, "Kafka consumer error (librdkafka retries)");
                }
            }
            if send_now && !entries.is_empty() {
                let (batch_records, batch_entries) = flush(&mut records, &mut entries);
                let ack = if batch_records.is_empty() {
                    None
                } else {
                    let (batch, ack) = SourceBatch::with_ack(batch_records);
                    if out.send(batch).await.is_err() {
                        break; // the pipeline stopped
                    }
                    Some(ack)
                };
                let _ = inflight_tx.send(InFlight {
                    entries: batch_entries,
                    ack,
                });
            }
            if s.until_idle && check_idle && !seen_since_tick && last_message.elapsed() >= s.idle {
                let sh = shared.lock().unwrap_or_else(|p| p.into_inner());
                if sh.all_at_end() {
                    info!("every assigned partition reached its end (--until-idle)");
                    break;
                }
            }
        }
        // What was read goes to the sinks; then wait for every ack and commit.
        if !entries.is_empty() {
            let (batch_records, batch_entries) = flush(&mut records, &mut entries);
            let ack = if batch_records.is_empty() {
                None
            } else {
                let (batch, ack) = SourceBatch::with_ack(batch_records);
                out.send(batch).await.ok().map(|_| ack)
            };
            let _ = inflight_tx.send(InFlight {
                entries: batch_entries,
                ack,
            });
        }
        drop(inflight_tx);
        drop(out);
        if let Err(e) = acker.await {
            error!(error = %e, "the offset task failed");
        }
        let tpl = shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .to_commit(None);
        if tpl.count() > 0 {
            let c = consumer.clone();
            let committed =
                tokio::task::spawn_blocking(move || c.commit(&tpl, CommitMode::Sync).map(|()| tpl))
                    .await;
            match committed {
                Ok(Ok(tpl)) => {
                    info!(partitions = tpl.count(), "final offsets committed");
                    shared
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .mark_committed(&tpl);
                }
                Ok(Err(e)) => {
                    error!(error = %e, "the final offset commit failed: the next run re-reads the confirmed tail")
                }
                Err(e) => error!(error = %e, "the commit task failed"),
            }
        }
        // Leave the group now rather than at drop, so partitions move at once.
        let c = consumer.clone();
        let _ = tokio::task::spawn_blocking(move || c.unsubscribe()).await;
        result
    }
}

impl KafkaSource {
    /// Decodes one message into `records` or the dead-letter file; returns its coordinates.
    fn handle(
        &self,
        m: &BorrowedMessage<'_>,
        ctx: &SourceContext,
        records: &mut Vec<Arc<Record>>,
        shared: &Mutex<Shared>,
    ) -> (Tp, i64, bool) {
        let tp = (m.topic().to_owned(), m.partition());
        let offset = m.offset();
        shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .message_on(tp.1);
        let value = m.payload().unwrap_or_default();
        match decode(value, self.settings.platform, ctx) {
            Ok(Some(mut r)) => {
                // Rule tags a producer put in headers join the record's tags.
                if let Some(headers) = m.headers() {
                    for h in headers.iter() {
                        if h.key == "rule_tag"
                            && let Some(tag) = h.value.and_then(|v| std::str::from_utf8(v).ok())
                            && !r.tags.iter().any(|t| t == tag)
                        {
                            r.tags.push(tag.to_owned());
                        }
                    }
                }
                SourceCounters::add(&ctx.counters.records, 1);
                records.push(Arc::new(r));
                (tp, offset, true)
            }
            Ok(None) => (tp, offset, false),
            Err(why) => {
                SourceCounters::add(&ctx.counters.malformed, 1);
                let key = m
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .unwrap_or_default();
                let reason = format!(
                    "{why} (topic {} partition {} offset {offset}{})",
                    tp.0,
                    tp.1,
                    if key.is_empty() {
                        String::new()
                    } else {
                        format!(" key {key}")
                    }
                );
                warn!(topic = %tp.0, partition = tp.1, offset, "unusable message dead-lettered: {why}");
                let keep = value.len().min(1 << 20);
                if let Err(e) =
                    ctx.dead_letters
                        .source_input("kafka", &reason, &value[..keep], value.len())
                {
                    error!(error = %e, "cannot write the dead-letter file");
                }
                (tp, offset, false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> KafkaSourceSettings {
        KafkaSourceSettings {
            brokers: "a:1".into(),
            topics: vec!["t".into()],
            group: "g".into(),
            from: StartFrom::Earliest,
            platform: InputPlatform::Auto,
            session_timeout_ms: 6000,
            batch_max_messages: 500,
            idle: Duration::from_secs(1),
            until_idle: false,
            properties: BTreeMap::new(),
        }
    }

    #[test]
    fn settings_are_validated_field_by_field() {
        assert!(validate(&settings()).is_ok());
        let mut s = settings();
        s.topics.clear();
        assert_eq!(validate(&s).unwrap_err().0, "topics");
        let mut s = settings();
        s.topics = vec!["a b".into()];
        assert_eq!(validate(&s).unwrap_err().0, "topics");
        let mut s = settings();
        s.brokers = "a:1,".into();
        assert_eq!(validate(&s).unwrap_err().0, "brokers");
        let mut s = settings();
        s.group = " ".into();
        assert_eq!(validate(&s).unwrap_err().0, "group");
        let mut s = settings();
        s.batch_max_messages = 0;
        assert_eq!(validate(&s).unwrap_err().0, "batch_max_messages");
        let mut s = settings();
        s.properties
            .insert("enable.auto.commit".into(), "true".into());
        assert_eq!(validate(&s).unwrap_err().0, "properties.enable.auto.commit");
    }

    #[test]
    fn commits_cover_only_assigned_and_uncommitted_partitions() {
        let mut s = Shared::default();
        s.assigned.insert(("t".into(), 0));
        s.confirmed.insert(("t".into(), 0), 10);
        s.confirmed.insert(("t".into(), 1), 5); // not ours any more
        let tpl = s.to_commit(None);
        assert_eq!(tpl.count(), 1);
        s.mark_committed(&tpl);
        assert_eq!(s.to_commit(None).count(), 0, "nothing new to commit");
    }

    #[test]
    fn nothing_is_confirmed_past_a_batch_that_was_not_wholly_confirmed() {
        let p0: Tp = ("t".into(), 0);
        let mut s = Shared::default();
        s.assigned.insert(p0.clone());
        // Records at offsets 1-4; a record limit let 2 of them in.
        let batch: Vec<(Tp, i64, bool)> = (1..=4).map(|o| (p0.clone(), o, true)).collect();
        s.confirm(&batch, 2);
        assert_eq!(s.confirmed[&p0], 3, "offsets 1 and 2 delivered: next is 3");
        // A later batch that holds only a dead-lettered message at offset 5.
        s.confirm(&[(p0.clone(), 5, false)], 0);
        assert_eq!(s.confirmed[&p0], 3, "offsets 3 and 4 were never delivered");
        // A wholly confirmed batch with a dead letter before its records.
        let mut s = Shared::default();
        s.assigned.insert(p0.clone());
        s.confirm(&[(p0.clone(), 7, false), (p0.clone(), 8, true)], 1);
        assert_eq!(s.confirmed[&p0], 9);
        // Revoked partitions are not confirmed.
        s.assigned.clear();
        s.confirm(&[(p0.clone(), 9, true)], 1);
        assert_eq!(s.confirmed[&p0], 9);
    }

    #[test]
    fn the_end_needs_an_eof_per_assigned_topic_partition() {
        let mut s = Shared::default();
        assert!(!s.all_at_end(), "nothing assigned yet");
        for t in ["a", "b"] {
            for p in 0..2 {
                s.assigned.insert((t.into(), p));
            }
        }
        s.eof.insert(0, 2);
        s.eof.insert(1, 1);
        assert!(!s.all_at_end(), "partition 1 of one topic is still going");
        s.eof.insert(1, 2);
        assert!(s.all_at_end());
        s.message_on(0); // a message arrived on partition 0 of one of the topics
        assert_eq!(s.eof[&0], 1);
        assert!(!s.all_at_end());
        s.eof.insert(0, 2); // its EOF came again
        assert!(s.all_at_end());
    }

    #[test]
    fn config_table_refuses_unknown_fields() {
        assert!(toml::from_str::<KafkaSourceConfig>("topic = \"x\"").is_err());
        let c: KafkaSourceConfig =
            toml::from_str("topics = [\"a\"]\nfrom = \"latest\"\n[properties]\n\"x.y\" = \"1\"")
                .unwrap();
        assert_eq!(c.from, Some(StartFrom::Latest));
    }
}
