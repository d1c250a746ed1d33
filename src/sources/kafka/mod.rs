//! The Kafka source: consume topics into any sink, committing offsets only
//! after every sink confirmed every record up to them.
//!
//! Each message's value is an `ingest` record (what the Kafka sink writes with
//! `format = "record"`), else a raw X stream line or Telegram update,
//! normalized as `replay` does; anything else goes to the dead-letter file with
//! its topic, partition and offset, through [`SourceOutput`] like every other
//! source. A dead letter that cannot be written ends the run with an error
//! and that message's offset is never committed: the next run reads it again.
//! Auto-commit is off: the source sends a batch with an ack (a [`Tracked`]
//! batch whose positions are the indexes of its messages), and commits the
//! next offset of each partition once its records are confirmed (delivered or
//! dead-lettered).
//!
//! With `--until-idle`, a subscribed topic the brokers do not have (or
//! refuse) ends the run with an error naming it, and a member the group gives
//! no partition stops after the idle time; without it, the consumer waits for
//! a missing topic, warning every minute. Before partitions are
//! revoked in a rebalance, what is confirmed for them is committed; on stop,
//! every pending ack is awaited and the last offsets committed. A crash
//! replays at most the unconfirmed tail (at-least-once; record ids make
//! duplicates easy to drop).
//!
//! # Design: one owner of the offsets, callbacks that only signal
//!
//! - [`config`]: `[kafka]`, the resolved settings and their validation
//!   (compiled in every build, like [`StartFrom`] which the command line uses).
//! - `offsets`: the bookkeeping, a plain struct with no lock and no client:
//!   which partitions are assigned, what is confirmed and committed, which
//!   partitions are at their end.
//! - `decode`: a message's value to a record, a control message, or a dead letter.
//! - `rebalance`: the consumer context. librdkafka calls its rebalance
//!   callback from inside the run loop's `recv()`, so the callback cannot wait
//!   for the loop; it only sends the new assignment or revocation down a
//!   channel and returns *without* applying it. librdkafka then holds the
//!   rebalance (the group waits, bounded by the rebalance timeout) until the
//!   application calls assign/unassign.
//! - `run`: the loop, sole owner of the offsets. A task awaits the acks in
//!   order and passes each batch's confirmation to the loop; the loop applies
//!   it and commits asynchronously. On a revocation signal the loop takes the
//!   confirmations already back, commits what is confirmed for the revoked
//!   partitions synchronously, forgets them, and only then unassigns them: the
//!   README's promise that confirmed offsets are committed before partitions
//!   move holds because the revocation cannot complete before the loop acts.
//!   After the final commit the loop stops listening; a rebalance signalled
//!   after that (the consumer closing) is applied by the callback itself, so
//!   closing never waits for a loop that is gone.
//!
//! The client code is behind the `kafka` cargo feature; without it, `ingest
//! kafka` and `check --source kafka` say so ([`COMPILED_OUT`]).

mod check;
pub mod config;
#[cfg(feature = "kafka")]
mod decode;
#[cfg(feature = "kafka")]
mod offsets;
#[cfg(feature = "kafka")]
mod rebalance;
#[cfg(feature = "kafka")]
mod run;

pub use check::check;
pub use config::{
    DEFAULT_BROKERS, DEFAULT_GROUP, KafkaFlags, KafkaSourceConfig, KafkaSourceSettings, StartFrom,
    validate,
};
#[cfg(feature = "kafka")]
pub use run::KafkaSource;

#[cfg(doc)]
use crate::sources::{SourceOutput, Tracked};

/// What `ingest kafka` and `check --source kafka` say in a build without the
/// `kafka` cargo feature.
pub const COMPILED_OUT: &str = "the Kafka source is not in this build of ingest: rebuild with `cargo build --release --features kafka` (or with the default features)";
