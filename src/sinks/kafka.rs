//! The `kafka` sink: one message per record, key = record `id`, headers
//! `platform`, `kind` and one `rule_tag` per matching X rule tag; a batch is
//! confirmed only when every delivery report came back Ok.
//!
//! librdkafka (bundled, through rdkafka) retries inside `message.timeout.ms`;
//! what it gives up on comes back here as a failed delivery, which the
//! pipeline retries with its own backoff until its budget or the run's
//! deadline, and then dead-letters. Nothing is dropped silently.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use serde::Deserialize;
use tracing::{debug, error, info, warn};

use super::common::{BatchConfig, RetryConfig, default_queue_capacity};
use super::{RecordResults, Sink, SinkError};
use crate::record::{Format, Platform, Record};
use crate::secret::expand_env;

/// Brokers of the built-in `kafka` sink when neither config nor flag names them.
pub const DEFAULT_BROKERS: &str = "localhost:9092";
/// Topic template of the built-in `kafka` sink.
pub const DEFAULT_TOPIC: &str = "ingest-{platform}";
/// How long the healthcheck and the final flush wait for the brokers.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// librdkafka properties that have a field of their own in the sink table.
const OWN_FIELDS: [(&str, &str); 10] = [
    ("bootstrap.servers", "brokers"),
    ("metadata.broker.list", "brokers"),
    ("acks", "acks"),
    ("request.required.acks", "acks"),
    ("enable.idempotence", "idempotence"),
    ("compression.type", "compression"),
    ("compression.codec", "compression"),
    ("message.timeout.ms", "message_timeout_ms"),
    ("delivery.timeout.ms", "message_timeout_ms"),
    ("client.id", "client_id"),
];

/// `[sinks.NAME]` with `type = "kafka"`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Bootstrap brokers, comma-separated `host:port`.
    #[serde(default = "default_brokers")]
    pub brokers: String,
    /// Topic template; `{platform}` becomes `twitter` or `telegram`.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// `record` (default) or `raw`.
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub acks: Acks,
    /// Idempotent producer (no duplicates from librdkafka's own retries); needs `acks = "all"`.
    #[serde(default = "yes")]
    pub idempotence: bool,
    /// Add the `platform`, `kind` and `rule_tag` headers.
    #[serde(default = "yes")]
    pub headers: bool,
    /// How long librdkafka keeps trying one message before reporting it failed
    /// (the pipeline then retries it); librdkafka's own default, 5 minutes.
    #[serde(default = "default_message_timeout_ms")]
    pub message_timeout_ms: u64,
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Any librdkafka property, passed through (SASL/SSL for hosted Kafka).
    /// `${VAR}` in a value is replaced by the environment variable `VAR`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub retry: RetryConfig,
}

impl Default for KafkaSinkConfig {
    fn default() -> Self {
        KafkaSinkConfig {
            brokers: default_brokers(),
            topic: default_topic(),
            format: Format::Record,
            compression: Compression::default(),
            acks: Acks::default(),
            idempotence: true,
            headers: true,
            message_timeout_ms: default_message_timeout_ms(),
            client_id: default_client_id(),
            properties: BTreeMap::new(),
            queue_capacity: default_queue_capacity(),
            batch: BatchConfig::default(),
            retry: RetryConfig::default(),
        }
    }
}

/// Property values are redacted when their key looks like a secret.
impl fmt::Debug for KafkaSinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_property(k) { "***" } else { v };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("KafkaSinkConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("format", &self.format)
            .field("compression", &self.compression)
            .field("acks", &self.acks)
            .field("idempotence", &self.idempotence)
            .field("headers", &self.headers)
            .field("message_timeout_ms", &self.message_timeout_ms)
            .field("client_id", &self.client_id)
            .field("properties", &properties)
            .field("queue_capacity", &self.queue_capacity)
            .field("batch", &self.batch)
            .field("retry", &self.retry)
            .finish()
    }
}

fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "jaas",
        "oauthbearer.config",
        "key.pem",
        "token",
    ]
    .iter()
    .any(|s| k.contains(s))
}

fn default_brokers() -> String {
    DEFAULT_BROKERS.to_owned()
}
fn default_topic() -> String {
    DEFAULT_TOPIC.to_owned()
}
fn default_message_timeout_ms() -> u64 {
    300_000
}
fn default_client_id() -> String {
    format!("ingest/{}", env!("CARGO_PKG_VERSION"))
}
fn yes() -> bool {
    true
}

/// `compression`: the codec librdkafka applies to each message set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    #[default]
    Lz4,
    Zstd,
}

impl Compression {
    fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// `acks`: which replicas confirm a write before its delivery report is Ok.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Acks {
    /// Every in-sync replica (the default; the only choice with idempotence).
    #[default]
    #[serde(rename = "all")]
    All,
    /// The partition leader alone.
    #[serde(rename = "leader")]
    Leader,
    /// No confirmation at all: a delivery report says only that the message left.
    #[serde(rename = "none")]
    None,
}

impl Acks {
    fn as_str(self) -> &'static str {
        match self {
            Acks::All => "all",
            Acks::Leader => "1",
            Acks::None => "0",
        }
    }
}

impl KafkaSinkConfig {
    /// Checks the fields; `Err((field, message))` names the field at fault.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |f: &str, m: String| Err((f.to_owned(), m));
        let brokers: Vec<&str> = self.brokers.split(',').map(str::trim).collect();
        if brokers.iter().any(|b| b.is_empty()) {
            return err(
                "brokers",
                format!(
                    "`{}` is not a list of brokers: write `host:port`, comma-separated",
                    self.brokers
                ),
            );
        }
        if let Some(b) = brokers.iter().find(|b| b.contains("://")) {
            return err(
                "brokers",
                format!(
                    "`{b}`: write brokers as `host:port`, without a scheme (TLS and SASL go in [properties])"
                ),
            );
        }
        check_property_vars(&self.properties)?;
        validate_topic_template(&self.topic).or_else(|m| err("topic", m))?;
        if self.idempotence && self.acks != Acks::All {
            return err(
                "idempotence",
                "an idempotent producer needs `acks = \"all\"`; set `idempotence = false` to use other acks".into(),
            );
        }
        if self.message_timeout_ms == 0 || self.message_timeout_ms > i32::MAX as u64 {
            return err(
                "message_timeout_ms",
                format!(
                    "{} is out of range: 1 to {} milliseconds",
                    self.message_timeout_ms,
                    i32::MAX
                ),
            );
        }
        for key in self.properties.keys() {
            if let Some((_, field)) = OWN_FIELDS.iter().find(|(p, _)| p == key) {
                return err(
                    &format!("properties.{key}"),
                    format!("set the sink's `{field}` field instead of the `{key}` property"),
                );
            }
        }
        Ok(())
    }

    /// The librdkafka configuration, with `${VAR}` references in property values resolved.
    fn client_config(&self) -> Result<ClientConfig, String> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id)
            .set("acks", self.acks.as_str())
            .set("enable.idempotence", self.idempotence.to_string())
            .set("compression.type", self.compression.as_str())
            .set("message.timeout.ms", self.message_timeout_ms.to_string())
            // Our pipeline batches already; a short linger lets librdkafka fill message sets.
            .set("linger.ms", "5");
        set_properties(&mut c, &self.properties)?;
        Ok(c)
    }
}

/// Adds `[…properties]` to a librdkafka config, `${VAR}` in values taken from
/// the environment (the Kafka sink, the Kafka source and `check` share it).
pub(crate) fn set_properties(
    c: &mut ClientConfig,
    properties: &BTreeMap<String, String>,
) -> Result<(), String> {
    for (key, value) in properties {
        let value = expand_env(value).map_err(|var| {
            format!("property `{key}` needs the environment variable `{var}`, which is not set")
        })?;
        c.set(key, value);
    }
    Ok(())
}

/// Every `${VAR}` of `[…properties]` is set: else (`properties`, which key
/// needs which variable), so a config error points at the table's line.
pub(crate) fn check_property_vars(
    properties: &BTreeMap<String, String>,
) -> Result<(), (String, String)> {
    for (key, value) in properties {
        expand_env(value).map_err(|var| {
            (
                "properties".to_owned(),
                format!("`{key}` needs the environment variable `{var}`, which is not set"),
            )
        })?;
    }
    Ok(())
}

/// A legal Kafka topic name: 1 to 249 ASCII letters, digits, `.`, `_` and `-`.
pub(crate) fn check_topic_name(topic: &str) -> Result<(), String> {
    if topic.is_empty() || topic.len() > 249 {
        return Err(format!("`{topic}`: a topic name has 1 to 249 characters"));
    }
    if topic == "." || topic == ".." {
        return Err(format!("`{topic}` is not a legal topic name"));
    }
    match topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(format!(
            "`{topic}` has `{c}`: a topic name has only ASCII letters, digits, `.`, `_` and `-`"
        )),
        None => Ok(()),
    }
}

/// A topic template: legal Kafka topic characters around `{platform}`.
fn validate_topic_template(template: &str) -> Result<(), String> {
    for p in [Platform::Twitter, Platform::Telegram] {
        check_topic_name(&render_topic(template, p))
            .map_err(|m| format!("`{template}` gives {m} (besides `{{platform}}`)"))?;
    }
    Ok(())
}

fn render_topic(template: &str, platform: Platform) -> String {
    template.replace("{platform}", platform.as_str())
}

/// librdkafka's logs and errors, forwarded to `tracing` for the Kafka sink and
/// source. Each kind of error is logged at most once per [`REPEAT_WINDOW`],
/// with the number of repeats since (a broker that is down is reported every
/// few milliseconds).
pub(crate) struct KafkaLog {
    component: String,
    seen: std::sync::Mutex<HashMap<String, (std::time::Instant, u64)>>,
}

const REPEAT_WINDOW: Duration = Duration::from_secs(10);

impl KafkaLog {
    pub(crate) fn new(component: &str) -> Self {
        KafkaLog {
            component: component.to_owned(),
            seen: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let component = self.component.as_str();
        match level {
            // Connection failures also come through `error`, which throttles them.
            _ if fac == "FAIL" => debug!(component, facility = fac, "librdkafka: {message}"),
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => error!(component, facility = fac, "librdkafka: {message}"),
            RDKafkaLogLevel::Warning => warn!(component, facility = fac, "librdkafka: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                debug!(component, facility = fac, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::trace!(component, facility = fac, "librdkafka: {message}")
            }
        }
    }

    /// Broker connection trouble arrives here; librdkafka reconnects by itself
    /// and the pipeline retries what failed.
    pub(crate) fn error(&self, error: &KafkaError, reason: &str) {
        let now = std::time::Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let entry = seen.entry(error.to_string()).or_insert((now, u64::MAX));
        if entry.1 != u64::MAX && now.duration_since(entry.0) < REPEAT_WINDOW {
            entry.1 += 1;
            return;
        }
        let repeated = if entry.1 == u64::MAX { 0 } else { entry.1 };
        *entry = (now, 0);
        drop(seen);
        if repeated > 0 {
            warn!(component = %self.component, error = %error, repeated_since_last = repeated, "Kafka: {reason}");
        } else {
            warn!(component = %self.component, error = %error, "Kafka: {reason}");
        }
    }
}

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
    type DeliveryOpaque = Box<InFlight>;

    fn delivery(&self, result: &DeliveryResult<'_>, message: Box<InFlight>) {
        if let Err((e, _)) = result {
            message.batch.fail(message.index, e.clone());
        }
        message.batch.done_one();
    }
}

/// One message on its way: its batch and its index there.
struct InFlight {
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
        use std::sync::atomic::Ordering;
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }

    async fn all_reported(&self) {
        use std::sync::atomic::Ordering;
        while self.remaining.load(Ordering::Acquire) > 0 {
            self.done.notified().await;
        }
    }
}

/// What to do with a record whose send or delivery failed.
enum Verdict {
    Retry,
    Reject(String),
}

fn classify(e: &KafkaError) -> Verdict {
    use RDKafkaErrorCode::*;
    let Some(code) = e.rdkafka_error_code() else {
        return Verdict::Retry;
    };
    let why = match code {
        MessageSizeTooLarge | InvalidMessageSize => {
            "the message is larger than the broker or producer accepts (message.max.bytes)"
        }
        TopicAuthorizationFailed | ClusterAuthorizationFailed => {
            "not authorized to write to the topic"
        }
        UnknownTopic | UnknownTopicOrPartition | UnknownTopicId => {
            "the topic does not exist and the broker does not create topics automatically"
        }
        InvalidTopic => "the topic name is not valid",
        InvalidRecord | InvalidMessage | UnsupportedForMessageFormat | InvalidArgument => {
            "the broker refuses the message as invalid"
        }
        _ => return Verdict::Retry,
    };
    Verdict::Reject(format!("Kafka rejected the message: {why} ({e})"))
}

/// Writes records to Kafka.
pub struct KafkaSink {
    name: String,
    config: KafkaSinkConfig,
    producer: Arc<ThreadedProducer<LogContext>>,
    format: Format,
    headers: bool,
    topics: [String; 2],
    brokers: String,
}

impl KafkaSink {
    /// Builds the producer; `Err` carries a message for the user (a bad property, an unset variable).
    pub fn new(name: &str, config: &KafkaSinkConfig) -> Result<Self, String> {
        config.validate().map_err(|(f, m)| format!("{f}: {m}"))?;
        Ok(KafkaSink {
            name: name.to_owned(),
            producer: Self::producer(name, config)?,
            config: config.clone(),
            format: config.format,
            headers: config.headers,
            topics: [
                render_topic(&config.topic, Platform::Twitter),
                render_topic(&config.topic, Platform::Telegram),
            ],
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
                format!("no answer from the Kafka brokers {}: {e}", self.brokers),
            )),
        }
    }

    async fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<(), SinkError> {
        let mut outcomes = Outcomes::default();
        let state = Arc::new(BatchState::new(batch.len()));
        let mut payload = Vec::with_capacity(1024);
        for (i, r) in batch.iter().enumerate() {
            payload.clear();
            r.write_line(self.format, &mut payload);
            payload.pop(); // the newline
            loop {
                let sent = {
                    let opaque = Box::new(InFlight {
                        batch: state.clone(),
                        index: i,
                    });
                    let mut message = BaseRecord::with_opaque_to(self.topic(r.platform), opaque)
                        .key(r.id.as_str())
                        .payload(payload.as_slice());
                    if let Some(h) = self.headers_for(r) {
                        message = message.headers(h);
                    }
                    // A refused message comes back (and is dropped): no report will come for it.
                    self.producer.send(message).map_err(|(e, _)| e)
                };
                match sent {
                    Ok(()) => break,
                    Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                        // librdkafka's queue is full (brokers slow or away): wait for room.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err(e) => {
                        outcomes.fail(i, &e);
                        state.done_one();
                        break;
                    }
                }
            }
        }
        state.all_reported().await;
        let failures =
            std::mem::take(&mut *state.failures.lock().unwrap_or_else(|p| p.into_inner()));
        for (i, e) in failures {
            outcomes.fail(i, &e);
        }
        if outcomes.fatal {
            error!(
                "the Kafka producer hit a fatal error; replacing it (the failed records are retried)"
            );
            self.producer = Self::producer(&self.name, &self.config)
                .map_err(|m| SinkError::fatal(&self.name, m))?;
        }
        let failures = outcomes.results.failed.len() + outcomes.results.rejected.len();
        if let Some(first) = outcomes.results.first.take() {
            outcomes.results.first = Some(format!(
                "{failures} of {} deliveries failed; first error: {first}",
                batch.len()
            ));
        }
        outcomes
            .results
            .finish(&self.name, batch.len(), || "deliveries failed".to_owned())
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

impl crate::sinks::SinkType for KafkaSinkConfig {
    fn type_name(&self) -> &'static str {
        "kafka"
    }
    crate::common_sink_fields!();
    fn format(&self) -> Format {
        self.format
    }
    fn validate(&self) -> Result<(), crate::sinks::FieldError> {
        self.validate()
            .map_err(|(f, m)| crate::sinks::FieldError::new(f, m))
    }
    fn feature(&self) -> Option<&'static str> {
        Some("kafka")
    }
    fn build(&self, name: &str) -> Result<super::AnySink, crate::sinks::BuildError> {
        let sink = KafkaSink::new(name, self).map_err(crate::sinks::BuildError::Invalid)?;
        Ok(Box::new(sink))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> KafkaSinkConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_are_safe() {
        let c = parse("");
        assert_eq!(c, KafkaSinkConfig::default());
        assert_eq!((c.acks, c.idempotence, c.headers), (Acks::All, true, true));
        c.validate().unwrap();
    }

    #[test]
    fn bad_fields_name_themselves() {
        let cases = [
            ("brokers = \"a:9092,,b:9092\"", "brokers"),
            ("brokers = \"kafka://a:9092\"", "brokers"),
            ("topic = \"tweets/{platform}\"", "topic"),
            ("topic = \"\"", "topic"),
            ("topic = \"{platform}\"\n", ""),
            ("acks = \"leader\"", "idempotence"),
            ("message_timeout_ms = 0", "message_timeout_ms"),
            (
                "[properties]\n\"bootstrap.servers\" = \"x:1\"",
                "properties.bootstrap.servers",
            ),
            ("[properties]\nacks = \"1\"", "properties.acks"),
        ];
        for (text, field) in cases {
            let r = parse(text).validate();
            if field.is_empty() {
                assert!(r.is_ok(), "{text}: {r:?}");
            } else {
                assert_eq!(r.unwrap_err().0, field, "{text}");
            }
        }
        let long = format!("topic = \"{}\"", "t".repeat(250));
        assert_eq!(parse(&long).validate().unwrap_err().0, "topic");
        assert!(
            parse("acks = \"leader\"\nidempotence = false")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn wrong_types_and_unknown_fields_are_refused() {
        for text in [
            "compression = \"brotli\"",
            "acks = 1",
            "acks = \"-1\"",
            "brokerz = \"a:1\"",
            "[properties]\nretries = 5",
            "message_timeout_ms = -1",
        ] {
            assert!(toml::from_str::<KafkaSinkConfig>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn env_references_expand_and_missing_ones_are_named() {
        // SAFETY: tests in this module do not read this variable concurrently.
        unsafe { std::env::set_var("INGEST_KAFKA_TEST_SECRET", "s3cr3t") };
        assert_eq!(
            expand_env("user:${INGEST_KAFKA_TEST_SECRET}!").unwrap(),
            "user:s3cr3t!"
        );
        assert_eq!(expand_env("no refs $ {x}").unwrap(), "no refs $ {x}");
        assert_eq!(expand_env("${unterminated").unwrap(), "${unterminated");
        assert_eq!(
            expand_env("${INGEST_KAFKA_TEST_UNSET_VAR}").unwrap_err(),
            "INGEST_KAFKA_TEST_UNSET_VAR"
        );
        let c = parse("[properties]\n\"sasl.password\" = \"${INGEST_KAFKA_TEST_UNSET_VAR}\"");
        let err = KafkaSink::new("k", &c).err().unwrap();
        assert!(
            err.contains("INGEST_KAFKA_TEST_UNSET_VAR") && err.contains("sasl.password"),
            "{err}"
        );
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = parse(
            "[properties]\n\"sasl.password\" = \"hunter2\"\n\"sasl.username\" = \"alice\"\n\"ssl.key.pem\" = \"-----BEGIN\"",
        );
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2") && !d.contains("BEGIN"), "{d}");
        assert!(d.contains("alice"), "{d}");
    }

    #[test]
    fn unknown_librdkafka_properties_are_a_clear_error() {
        let c = parse("[properties]\n\"no.such.property\" = \"1\"");
        let err = KafkaSink::new("k", &c).err().unwrap();
        assert!(err.contains("no.such.property"), "{err}");
    }

    #[test]
    fn errors_are_classified() {
        use RDKafkaErrorCode::*;
        for code in [
            MessageSizeTooLarge,
            TopicAuthorizationFailed,
            UnknownTopicOrPartition,
        ] {
            assert!(matches!(
                classify(&KafkaError::MessageProduction(code)),
                Verdict::Reject(_)
            ));
        }
        for code in [
            MessageTimedOut,
            QueueFull,
            NotEnoughReplicas,
            LeaderNotAvailable,
        ] {
            assert!(matches!(
                classify(&KafkaError::MessageProduction(code)),
                Verdict::Retry
            ));
        }
        assert!(matches!(classify(&KafkaError::Canceled), Verdict::Retry));
    }

    #[test]
    fn topics_render_per_platform() {
        assert_eq!(
            render_topic("x.{platform}.raw", Platform::Telegram),
            "x.telegram.raw"
        );
        assert_eq!(render_topic("all", Platform::Twitter), "all");
    }
}
