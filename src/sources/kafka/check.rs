//! `ingest check --source kafka`.

#[cfg(feature = "kafka")]
use std::collections::HashSet;
#[cfg(feature = "kafka")]
use std::time::Duration;

#[cfg(feature = "kafka")]
use rdkafka::config::ClientConfig;
#[cfg(feature = "kafka")]
use rdkafka::consumer::{BaseConsumer, Consumer};

#[cfg(feature = "kafka")]
use super::DEFAULT_BROKERS;
use super::KafkaSourceConfig;

#[cfg(feature = "kafka")]
/// `ingest check --source kafka`: the brokers answer and the `[kafka]` topics exist.
pub async fn check(config: &KafkaSourceConfig) -> Result<String, String> {
    let brokers = config
        .brokers
        .clone()
        .unwrap_or_else(|| DEFAULT_BROKERS.to_owned());
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &brokers);
    crate::kafka::set_properties(&mut c, &config.properties)?;
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

/// Without the `kafka` feature there is no client to try the brokers with.
#[cfg(not(feature = "kafka"))]
pub async fn check(_config: &KafkaSourceConfig) -> Result<String, String> {
    Err(super::COMPILED_OUT.to_owned())
}
