//! The S3 sink: `config.rs` its `[sinks.NAME]` table, validation and registration; `sink.rs` the client (feature `s3`), `objects.rs` the objects it writes, `key.rs` their keys.

mod config;
pub mod key;
#[cfg(feature = "s3")]
mod objects;
#[cfg(feature = "s3")]
mod sink;
pub use key::KeyTemplate;
#[cfg(feature = "s3")]
pub use sink::S3Sink;

pub use config::*;
