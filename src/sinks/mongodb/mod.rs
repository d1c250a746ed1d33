//! The MongoDB sink: `config.rs` its `[sinks.NAME]` table, validation and registration; `sink.rs` the client (feature `mongodb`), `errors.rs` its error classes, `uri.rs` the URI and its redaction.

mod config;
#[cfg(feature = "mongodb")]
mod errors;
#[cfg(feature = "mongodb")]
mod sink;
pub mod uri;
#[cfg(feature = "mongodb")]
pub use errors::retryable_code;
#[cfg(feature = "mongodb")]
pub use sink::MongodbSink;
pub use uri::redact_uri;

pub use config::*;
