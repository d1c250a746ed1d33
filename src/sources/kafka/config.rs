//! `[kafka]` and the flags of `ingest kafka`: the config table, the resolved
//! settings and their validation (compiled in every build).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::locate::{FileAt, ResolveError};
use crate::sources::InputPlatform;

/// Default bootstrap brokers.
pub use crate::kafka::DEFAULT_BROKERS;
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

/// librdkafka's `fetch.queue.backoff.ms` unless `[kafka.properties]` sets it.
pub const FETCH_QUEUE_BACKOFF_MS: u32 = 10;
/// librdkafka's `queued.max.messages.kbytes` unless `[kafka.properties]` sets it.
pub const QUEUED_MAX_KBYTES: u32 = 16 * 1024;

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
        .find_map(|t| crate::kafka::check_topic_name(t).err())
    {
        return err("topics", m);
    }
    crate::kafka::check_property_vars(&s.properties)?;
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

/// The consumer's librdkafka configuration: auto-commit off (the source
/// commits what the sinks confirmed), partition EOF events on (`--until-idle`).
#[cfg(feature = "kafka")]
impl KafkaSourceSettings {
    pub(super) fn client_config(&self) -> Result<rdkafka::ClientConfig, String> {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            .set("client.id", crate::kafka::default_client_id())
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set(
                "auto.offset.reset",
                match self.from {
                    StartFrom::Earliest => "earliest",
                    StartFrom::Latest => "latest",
                },
            )
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            // When the prefetch queue is full (the sinks are slower than the
            // fetches), librdkafka postpones the next fetch by this much;
            // its default, 1 s, left the consumer idle for most of a run.
            .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS.to_string())
            // The prefetch queue's bound (librdkafka's default is 64 MiB): with
            // the short backoff above a smaller queue keeps up, in less memory.
            .set("queued.max.messages.kbytes", QUEUED_MAX_KBYTES.to_string());
        if self.session_timeout_ms < 3000 {
            // librdkafka wants the heartbeat well inside the session timeout.
            c.set(
                "heartbeat.interval.ms",
                (self.session_timeout_ms / 3).max(1).to_string(),
            );
        }
        crate::kafka::set_properties(&mut c, &self.properties)?;
        Ok(c)
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

    #[cfg(feature = "kafka")]
    #[test]
    fn the_prefetch_settings_are_ours_unless_properties_say_otherwise() {
        let c = settings().client_config().unwrap();
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("10"));
        assert_eq!(c.get("queued.max.messages.kbytes"), Some("16384"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        let mut s = settings();
        s.properties
            .insert("fetch.queue.backoff.ms".into(), "1000".into());
        let c = s.client_config().unwrap();
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("1000"));
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

/// What the command line says about `ingest kafka` (flags and `INGEST_*`).
#[derive(Debug, Clone, Default)]
pub struct KafkaFlags {
    pub brokers: Option<String>,
    pub topics: Vec<String>,
    pub group: Option<String>,
    pub from: Option<StartFrom>,
    pub platform: Option<InputPlatform>,
    pub until_idle: bool,
}

/// Resolves `ingest kafka`: defaults < `[kafka]` < flags, validated; a bad
/// value from a flag is a usage error, from the file a config error at its line.
pub fn resolve(
    flags: &KafkaFlags,
    k: &KafkaSourceConfig,
    at: FileAt<'_>,
) -> Result<KafkaSourceSettings, ResolveError> {
    let settings = KafkaSourceSettings {
        brokers: flags
            .brokers
            .clone()
            .or(k.brokers.clone())
            .unwrap_or_else(|| DEFAULT_BROKERS.to_owned()),
        topics: if flags.topics.is_empty() {
            k.topics.clone()
        } else {
            flags.topics.clone()
        },
        group: flags
            .group
            .clone()
            .or(k.group.clone())
            .unwrap_or_else(|| DEFAULT_GROUP.to_owned()),
        from: flags.from.or(k.from).unwrap_or_default(),
        platform: flags.platform.or(k.platform).unwrap_or_default(),
        session_timeout_ms: k.session_timeout_ms.unwrap_or(10_000),
        batch_max_messages: k.batch_max_messages.unwrap_or(1000),
        idle: Duration::from_millis(k.idle_ms.unwrap_or(1000)),
        until_idle: flags.until_idle,
        properties: k.properties.clone(),
    };
    validate(&settings).map_err(|(field, message)| {
        let from_flag = match field.as_str() {
            "topics" => !flags.topics.is_empty() || k.topics.is_empty(),
            "brokers" => flags.brokers.is_some(),
            "group" => flags.group.is_some(),
            _ => false,
        };
        if from_flag || at.path.is_none() {
            ResolveError::Usage(format!("kafka {field}: {message}"))
        } else {
            at.error(&format!("kafka.{field}"), message).into()
        }
    })?;
    Ok(settings)
}
