//! The `kafka` sink: one message per record, key = record `id`, headers
//! `platform`, `kind` and one `rule_tag` per matching X rule tag; a batch is
//! confirmed only when every delivery report came back Ok.
//!
//! librdkafka (bundled, through rdkafka) retries inside `message.timeout.ms`;
//! what it gives up on comes back here as a failed delivery, which the
//! pipeline retries with its own backoff until its budget or the run's
//! deadline, and then dead-letters. Nothing is dropped silently.
//!
//! This module owns the sink's config, its validation and its [`SinkType`]
//! registration (compiled in every build); `producer` writes and counts
//! delivery reports, `classify` decides which failures are worth a retry
//! (both only with the `kafka` cargo feature).
//!
//! [`SinkType`]: crate::sinks::SinkType

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::kafka::{check_property_vars, check_topic_name, is_secret_property};
use crate::record::{Format, Platform};
use crate::sinks::FieldError;
use crate::sinks::common::{BatchConfig, RetryConfig, default_queue_capacity};
use crate::sinks::template::{Target, Template, check_split_tags};

/// Brokers of the built-in `kafka` sink when neither config nor flag names them.
pub use crate::kafka::DEFAULT_BROKERS;
/// Topic template of the built-in `kafka` sink.
pub const DEFAULT_TOPIC: &str = "ingest-{platform}";
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
    /// Topic template (see the README, "Routing"): `{platform}`, `{kind}`,
    /// `{tag}`, `{chat.id}`, `{author.id}`, `{id}`, `{date}`, `{hour}`.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Message key template; default `{id}` (the record id).
    #[serde(default = "default_key")]
    pub key: String,
    /// With several rule tags, write a record once per tag (`{tag}` renders
    /// each); default false: once, with its first tag.
    #[serde(default)]
    pub split_tags: bool,
    /// The message value: `record` (default), `raw` or `text` (the post's
    /// text alone). `value` is accepted as another name for this field.
    #[serde(default, alias = "value")]
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
            key: default_key(),
            split_tags: false,
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
            .field("key", &self.key)
            .field("split_tags", &self.split_tags)
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

fn default_brokers() -> String {
    DEFAULT_BROKERS.to_owned()
}
fn default_topic() -> String {
    DEFAULT_TOPIC.to_owned()
}
fn default_key() -> String {
    "{id}".to_owned()
}
fn default_message_timeout_ms() -> u64 {
    300_000
}
fn default_client_id() -> String {
    crate::kafka::default_client_id()
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

#[cfg(feature = "kafka")]
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

#[cfg(feature = "kafka")]
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
    /// Checks the fields; the error names the field at fault.
    pub fn validate(&self) -> Result<(), FieldError> {
        let err = |f: &str, m: String| Err(FieldError::new(f, m));
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
        check_property_vars(&self.properties).map_err(|(f, m)| FieldError::new(f, m))?;
        let topic =
            validate_topic_template(&self.topic).map_err(|m| FieldError::new("topic", m))?;
        let key =
            Template::compile(&self.key, Target::Key).map_err(|m| FieldError::new("key", m))?;
        check_split_tags(self.split_tags, &[&topic, &key])
            .map_err(|m| FieldError::new("split_tags", m))?;
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
    #[cfg(feature = "kafka")]
    pub(super) fn client_config(&self) -> Result<rdkafka::ClientConfig, String> {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id)
            .set("acks", self.acks.as_str())
            .set("enable.idempotence", self.idempotence.to_string())
            .set("compression.type", self.compression.as_str())
            .set("message.timeout.ms", self.message_timeout_ms.to_string())
            // Our pipeline batches already; a short linger lets librdkafka fill message sets.
            .set("linger.ms", "5");
        crate::kafka::set_properties(&mut c, &self.properties)?;
        Ok(c)
    }
}

/// A topic template: legal Kafka topic characters around the placeholders
/// (their values are sanitized when rendered).
pub(crate) fn validate_topic_template(template: &str) -> Result<Template, String> {
    let t = Template::compile(template, Target::KafkaTopic)?;
    if t.platform_only() {
        for p in [Platform::Twitter, Platform::Telegram] {
            let topic = render_topic(template, p);
            check_topic_name(&topic)
                .map_err(|m| format!("`{template}` gives {m} (besides `{{platform}}`)"))?;
            if crate::sinks::names::is_reserved_topic(&topic) {
                return Err(format!(
                    "`{topic}` is a topic Kafka or its tools keep for themselves (`__…`, `_schemas`, `_confluent…`): choose another name"
                ));
            }
        }
    } else {
        let lit = t.literal_text();
        if let Some(c) = lit
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(format!(
                "`{template}` has `{c}`: a topic name has only ASCII letters, digits, `.`, `_` and `-` (besides the placeholders)"
            ));
        }
        if lit.len() >= crate::sinks::template::MAX_TOPIC_BYTES {
            return Err(format!(
                "`{template}`: a topic name has 1 to 249 characters"
            ));
        }
    }
    Ok(t)
}

pub(crate) fn render_topic(template: &str, platform: Platform) -> String {
    template.replace("{platform}", platform.as_str())
}

impl crate::sinks::SinkType for KafkaSinkConfig {
    crate::sinks::sink_type_basics!("kafka", feature);
    fn validate(&self) -> Result<(), FieldError> {
        KafkaSinkConfig::validate(self)
    }
    #[cfg(feature = "kafka")]
    fn build(&self, name: &str) -> Result<crate::sinks::AnySink, crate::sinks::BuildError> {
        let sink = crate::sinks::kafka::KafkaSink::new(name, self)
            .map_err(crate::sinks::BuildError::Invalid)?;
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
                assert_eq!(r.unwrap_err().field, field, "{text}");
            }
        }
        let long = format!("topic = \"{}\"", "t".repeat(250));
        assert_eq!(parse(&long).validate().unwrap_err().field, "topic");
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

    #[cfg(feature = "kafka")]
    #[test]
    fn env_references_expand_and_missing_ones_are_named() {
        use crate::secret::expand_env;
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
        let err = crate::sinks::kafka::KafkaSink::new("k", &c).err().unwrap();
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

    #[cfg(feature = "kafka")]
    #[test]
    fn unknown_librdkafka_properties_are_a_clear_error() {
        let c = parse("[properties]\n\"no.such.property\" = \"1\"");
        let err = crate::sinks::kafka::KafkaSink::new("k", &c).err().unwrap();
        assert!(err.contains("no.such.property"), "{err}");
    }

    #[test]
    fn topics_render_per_platform() {
        assert_eq!(
            render_topic("x.{platform}.raw", Platform::Telegram),
            "x.telegram.raw"
        );
        assert_eq!(render_topic("all", Platform::Twitter), "all");
    }

    #[test]
    fn a_fixed_topic_that_kafka_keeps_is_a_config_error() {
        for reserved in [
            "__consumer_offsets",
            "_schemas",
            "_confluent-command",
            "__{platform}",
        ] {
            let err = validate_topic_template(reserved).unwrap_err();
            assert!(err.contains("keep for themselves"), "{reserved}: {err}");
        }
        assert!(validate_topic_template("_x_schemas").is_ok());
        assert!(
            validate_topic_template("__{tag}").is_ok(),
            "rendered names are prefixed instead"
        );
    }
}
