//! `ingest`: capture live social data, normalize every item into one record,
//! deliver it without loss.
//!
//! The binary parses flags ([`cli`]) and hands the command to [`cmd`]; a
//! command resolves its settings and calls [`run::run`] with a source. This
//! file only lists the modules (their layers: CONTRIBUTING.md).

pub mod cli;
pub mod cmd;
pub mod config;
pub mod duration;
pub mod exit_codes;
pub mod kafka;
pub mod locate;
pub mod media;
#[cfg(feature = "mock")]
pub mod mock;
pub mod monitor;
pub mod pipeline;
pub mod progress;
pub mod record;
pub mod report;
pub mod retry;
pub mod run;
pub mod secret;
pub mod sinks;
pub mod sources;
pub mod state;
pub mod top;
