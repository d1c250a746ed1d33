//! Sinks: where records go. Each sink writes a batch and says `Ok` only once the
//! destination confirmed all of it; the pipeline owns batching, retry and acks.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::record::Record;

pub mod aws;
pub mod common;
pub mod file;
pub mod kafka;
pub mod kinesis;
pub mod mongodb;
pub mod names;
pub mod parquet;
pub mod registry;
pub mod s3;
pub mod template;

pub use common::{BatchConfig, CommonSinkConfig, RetryConfig, default_queue_capacity};
pub use registry::{BuildError, FieldError, SinkConfig, SinkType};
pub(crate) use registry::{common_sink_fields, sink_type_basics};

/// Whether this build has the client of a sink type behind cargo `feature`.
pub fn compiled_in(feature: &str) -> bool {
    // A table, not a `match`: with every feature off, the arms would all be
    // `false` and clippy would ask for `matches!`.
    const FEATURES: [(&str, bool); 5] = [
        ("kafka", cfg!(feature = "kafka")),
        ("parquet", cfg!(feature = "parquet")),
        ("s3", cfg!(feature = "s3")),
        ("kinesis", cfg!(feature = "kinesis")),
        ("mongodb", cfg!(feature = "mongodb")),
    ];
    FEATURES
        .iter()
        .find(|(name, _)| *name == feature)
        .is_none_or(|&(_, on)| on)
}

/// A boxed error from a destination's client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How a write failed, which decides what the pipeline does next.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Try the whole batch again after a backoff.
    #[error("transient failure writing to {sink}: {source}")]
    Retryable { sink: String, source: BoxError },
    /// Some records were confirmed: retry only those at `failed` (indexes into
    /// the batch); dead-letter those at `rejected` at once, each with its reason
    /// (retrying cannot help them: too large, not authorized…).
    #[error("{} of {total} records not written by {sink} ({} rejected for good): {source}", failed.len() + rejected.len(), rejected.len())]
    Partial {
        sink: String,
        failed: Vec<usize>,
        rejected: Vec<(usize, String)>,
        total: usize,
        source: BoxError,
    },
    /// Retrying cannot help: dead-letter the batch.
    #[error("permanent failure writing to {sink}: {source}")]
    Fatal { sink: String, source: BoxError },
    /// The destination went away on purpose (standard output closed by its
    /// reader, as `| head` does): the run stops, like a signal; the records the
    /// sink did not write are counted as unwritten, neither retried nor
    /// dead-lettered.
    #[error("{sink} was closed: {source}")]
    Closed { sink: String, source: BoxError },
}

impl SinkError {
    pub fn retryable(sink: &str, source: impl Into<BoxError>) -> Self {
        SinkError::Retryable {
            sink: sink.to_owned(),
            source: source.into(),
        }
    }

    pub fn fatal(sink: &str, source: impl Into<BoxError>) -> Self {
        SinkError::Fatal {
            sink: sink.to_owned(),
            source: source.into(),
        }
    }

    /// The cause alone, without the sink name (for dead-letter entries).
    pub fn cause(&self) -> String {
        match self {
            SinkError::Retryable { source, .. }
            | SinkError::Partial { source, .. }
            | SinkError::Fatal { source, .. }
            | SinkError::Closed { source, .. } => source.to_string(),
        }
    }
}

/// Per-record results of a batch, for sinks that learn them record by record
/// (delivery reports, PutRecords entries, write errors).
#[derive(Debug, Default)]
pub struct RecordResults {
    /// Indexes into the batch to retry.
    pub failed: Vec<usize>,
    /// Indexes to dead-letter at once, each with its reason.
    pub rejected: Vec<(usize, String)>,
    /// The first error seen, for the message.
    pub first: Option<String>,
}

impl RecordResults {
    /// Keeps `m` as the message unless one is kept already.
    pub fn note(&mut self, m: String) {
        self.first.get_or_insert(m);
    }

    pub fn merge(&mut self, other: RecordResults) {
        self.failed.extend(other.failed);
        self.rejected.extend(other.rejected);
        if let Some(m) = other.first {
            self.note(m);
        }
    }

    /// The batch's result: `Ok` when nothing failed, `Retryable` when every
    /// record failed and none was rejected, else `Partial`.
    pub fn finish(
        self,
        sink: &str,
        total: usize,
        default_message: impl FnOnce() -> String,
    ) -> Result<(), SinkError> {
        if self.failed.is_empty() && self.rejected.is_empty() {
            return Ok(());
        }
        let message = self.first.unwrap_or_else(default_message);
        if self.failed.len() == total {
            return Err(SinkError::retryable(sink, message));
        }
        Err(SinkError::Partial {
            sink: sink.to_owned(),
            total,
            failed: self.failed,
            rejected: self.rejected,
            source: message.into(),
        })
    }
}

/// A batch handed to a destination by [`Sink::send`], and how its write ends.
pub enum Sent {
    /// The write is over (every sink that cannot keep a batch in flight).
    Done(Result<(), SinkError>),
    /// The records are with the destination's client, their confirmations
    /// still out (Kafka: produced, delivery reports pending). Resolves once
    /// every record was confirmed or failed, as [`Sink::write_batch`] would;
    /// it borrows nothing, so the pipeline can send the next batch meanwhile.
    InFlight(BoxFuture<'static, Result<(), SinkError>>),
}

/// A destination for records.
pub trait Sink: Send + 'static {
    /// The name the user gave the sink.
    fn name(&self) -> &str;

    /// Checks that the destination is reachable and writable, before any record flows.
    fn healthcheck(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// What a passed healthcheck proved, for `ingest check` (`data/ writable`).
    fn target(&self) -> String {
        "reachable".to_owned()
    }

    /// Writes a batch; `Ok` only once the destination confirmed the whole batch.
    fn write_batch(
        &mut self,
        batch: &[Arc<Record>],
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Hands a batch to the destination and, where the destination allows
    /// it, returns before the batch is confirmed ([`Sent::InFlight`]): the
    /// pipeline then sends the next batch while this one's confirmations come
    /// in, and still confirms batches to their sources one by one, in order.
    /// The default is [`Sink::write_batch`], whole ([`Sent::Done`]).
    fn send(&mut self, batch: &[Arc<Record>]) -> impl Future<Output = Sent> + Send {
        async move { Sent::Done(self.write_batch(batch).await) }
    }

    /// Whether [`Sink::send`] returns before the batch is confirmed: the
    /// pipeline then holds two of this sink's batches while a third fills,
    /// and makes room for them in its memory budget.
    fn keeps_batches_in_flight(&self) -> bool {
        false
    }

    /// Makes everything written so far durable; called before the sink is dropped.
    fn flush(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Stored posts deleted so far because a compliance `delete` event said
    /// so (the MongoDB sink with `apply_compliance`); 0 for the others.
    fn compliance_deleted(&self) -> u64 {
        0
    }
}

/// A future boxed for dynamic dispatch.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`Sink`] made object-safe, so that one function can build any configured sink
/// (`build_sink` in run.rs) for both `run` and `check`. Every `Sink` is one.
pub trait DynSink: Send + 'static {
    fn dyn_name(&self) -> &str;
    fn dyn_target(&self) -> String;
    fn dyn_healthcheck(&mut self) -> BoxFuture<'_, Result<(), SinkError>>;
    fn dyn_write_batch<'a>(
        &'a mut self,
        batch: &'a [Arc<Record>],
    ) -> BoxFuture<'a, Result<(), SinkError>>;
    fn dyn_send<'a>(&'a mut self, batch: &'a [Arc<Record>]) -> BoxFuture<'a, Sent>;
    fn dyn_keeps_batches_in_flight(&self) -> bool;
    fn dyn_flush(&mut self) -> BoxFuture<'_, Result<(), SinkError>>;
    fn dyn_compliance_deleted(&self) -> u64;
}

impl<S: Sink> DynSink for S {
    fn dyn_name(&self) -> &str {
        self.name()
    }
    fn dyn_target(&self) -> String {
        self.target()
    }
    fn dyn_healthcheck(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(self.healthcheck())
    }
    fn dyn_write_batch<'a>(
        &'a mut self,
        batch: &'a [Arc<Record>],
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(self.write_batch(batch))
    }
    fn dyn_send<'a>(&'a mut self, batch: &'a [Arc<Record>]) -> BoxFuture<'a, Sent> {
        Box::pin(self.send(batch))
    }
    fn dyn_keeps_batches_in_flight(&self) -> bool {
        self.keeps_batches_in_flight()
    }
    fn dyn_flush(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(self.flush())
    }
    fn dyn_compliance_deleted(&self) -> u64 {
        self.compliance_deleted()
    }
}

/// Any sink, built from its config. One boxed future per batch is the whole cost.
pub type AnySink = Box<dyn DynSink>;

impl Sink for AnySink {
    fn name(&self) -> &str {
        self.as_ref().dyn_name()
    }
    fn target(&self) -> String {
        self.as_ref().dyn_target()
    }
    async fn healthcheck(&mut self) -> Result<(), SinkError> {
        self.as_mut().dyn_healthcheck().await
    }
    async fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<(), SinkError> {
        self.as_mut().dyn_write_batch(batch).await
    }
    async fn send(&mut self, batch: &[Arc<Record>]) -> Sent {
        self.as_mut().dyn_send(batch).await
    }
    fn keeps_batches_in_flight(&self) -> bool {
        self.as_ref().dyn_keeps_batches_in_flight()
    }
    async fn flush(&mut self) -> Result<(), SinkError> {
        self.as_mut().dyn_flush().await
    }
    fn compliance_deleted(&self) -> u64 {
        self.as_ref().dyn_compliance_deleted()
    }
}
