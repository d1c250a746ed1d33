//! What the Kafka sink and the Kafka source share (as Vector's `src/kafka.rs`
//! serves both of its Kafka components): the default brokers and client id,
//! the `[…properties]` pass-through with `${VAR}` secrets, the topic-name
//! check and librdkafka's throttled logger.
//!
//! The checks are plain functions compiled in every build, so a config that
//! names Kafka is validated even without the `kafka` cargo feature; whatever
//! touches librdkafka is behind the feature.

#[cfg(feature = "kafka")]
mod log;
mod properties;
mod topic;

#[cfg(feature = "kafka")]
pub use log::KafkaLog;
#[cfg(feature = "kafka")]
pub use properties::set_properties;
pub use properties::{check_property_vars, is_secret_property};
pub use topic::check_topic_name;

/// Bootstrap brokers when neither config nor flag names them.
pub const DEFAULT_BROKERS: &str = "localhost:9092";

/// The `client.id` both sides give librdkafka by default.
pub fn default_client_id() -> String {
    format!("ingest/{}", env!("CARGO_PKG_VERSION"))
}
