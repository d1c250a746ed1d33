//! The Kafka sink: `config.rs` its `[sinks.NAME]` table, validation and registration; `sink.rs` the producer (feature `kafka`), `classify.rs` its error classes.

#[cfg(feature = "kafka")]
mod classify;
mod config;
#[cfg(feature = "kafka")]
mod sink;
#[cfg(feature = "kafka")]
pub use sink::KafkaSink;

pub use config::*;
