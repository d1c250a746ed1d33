//! The Kinesis sink: `config.rs` its `[sinks.NAME]` table, validation and registration; `sink.rs` the client (feature `kinesis`).

mod config;
#[cfg(feature = "kinesis")]
mod sink;
#[cfg(feature = "kinesis")]
pub use sink::KinesisSink;

pub use config::*;
