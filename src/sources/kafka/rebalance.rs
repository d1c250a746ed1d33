//! The consumer's context. Its rebalance callback only signals: it hands the
//! partitions to the run loop, which commits and then applies the new
//! assignment itself (librdkafka waits for that assign/unassign call before
//! the group moves on), like kafka-delta-ingest's `rebalance_signal`, but with
//! the assignment call deferred so that a commit can come before it.

use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::types::RDKafkaRespErr;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::offsets::Tp;
use crate::kafka::KafkaLog;

/// What the group coordinator decided, for the run loop to act on.
pub(super) enum RebalanceSignal {
    Assign(TopicPartitionList),
    Revoke(TopicPartitionList),
    /// The rebalance failed: drop the assignment (librdkafka's default).
    Failed(RDKafkaErrorCode, TopicPartitionList),
}

pub(super) struct ConsumerCtx {
    signals: mpsc::UnboundedSender<RebalanceSignal>,
    log: KafkaLog,
}

impl ConsumerCtx {
    pub fn new(signals: mpsc::UnboundedSender<RebalanceSignal>) -> Self {
        ConsumerCtx {
            signals,
            log: KafkaLog::new("kafka source"),
        }
    }
}

impl ClientContext for ConsumerCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::PartitionEOF)
        ) {
            return; // the end of a partition is news, not an error (see --until-idle)
        }
        self.log.error(&error, reason);
    }
}

impl ConsumerContext for ConsumerCtx {
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => debug!(partitions = offsets.count(), "offsets committed"),
            Err(e) => {
                warn!(error = %e, "offset commit failed; the next commit carries these offsets too")
            }
        }
    }

    /// Runs inside the run loop's `recv()`: it must not wait for the loop, so
    /// it only sends the signal. Once the loop is gone (the consumer closing
    /// at the end of the run, after the final commit) nobody would apply the
    /// signal and librdkafka's close would wait for ever: then, and only then,
    /// the callback applies the assignment itself, committing nothing.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let list = tpl.clone();
        let signal = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => RebalanceSignal::Assign(list),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => RebalanceSignal::Revoke(list),
            other => RebalanceSignal::Failed(other.into(), list),
        };
        if let Err(mpsc::error::SendError(signal)) = self.signals.send(signal) {
            apply(consumer, &signal);
        }
    }
}

/// Makes the assignment the coordinator decided, as librdkafka's default
/// rebalance does (incremental for the cooperative protocol).
pub(super) fn apply<C: ConsumerContext>(consumer: &impl Consumer<C>, signal: &RebalanceSignal) {
    let cooperative = matches!(
        consumer.rebalance_protocol(),
        RebalanceProtocol::Cooperative
    );
    let result = match signal {
        RebalanceSignal::Assign(tpl) if cooperative => consumer.incremental_assign(tpl),
        RebalanceSignal::Assign(tpl) => consumer.assign(tpl),
        RebalanceSignal::Revoke(tpl) | RebalanceSignal::Failed(_, tpl) if cooperative => {
            consumer.incremental_unassign(tpl)
        }
        RebalanceSignal::Revoke(_) | RebalanceSignal::Failed(..) => consumer.unassign(),
    };
    match (result, signal) {
        (Err(e), _) => error!(error = %e, "cannot apply the group's new assignment"),
        (Ok(()), RebalanceSignal::Assign(tpl)) => {
            info!(partitions = %names(tpl).join(","), "partitions assigned")
        }
        (Ok(()), RebalanceSignal::Revoke(tpl)) => {
            info!(partitions = tpl.count(), "partitions revoked")
        }
        (Ok(()), RebalanceSignal::Failed(code, _)) => {
            warn!(error = %code, "the rebalance failed: partitions dropped until the next one")
        }
    }
}

/// Whether a failed rebalance drops every partition (eager) or only `tpl`'s.
pub(super) fn drops_all<C: ConsumerContext>(consumer: &impl Consumer<C>) -> bool {
    !matches!(
        consumer.rebalance_protocol(),
        RebalanceProtocol::Cooperative
    )
}

/// The partitions of a list.
pub(super) fn partitions(tpl: &TopicPartitionList) -> Vec<Tp> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().into(), e.partition()))
        .collect()
}

fn names(tpl: &TopicPartitionList) -> Vec<String> {
    tpl.elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect()
}
