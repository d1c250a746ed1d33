//! Which failed sends and deliveries are worth a retry.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// What to do with a record whose send or delivery failed.
pub(super) enum Verdict {
    Retry,
    Reject(String),
}

pub(super) fn classify(e: &KafkaError) -> Verdict {
    use RDKafkaErrorCode::*;
    let Some(code) = e.rdkafka_error_code() else {
        return Verdict::Retry;
    };
    let why = match code {
        MessageSizeTooLarge | InvalidMessageSize => {
            "the message is larger than the broker or producer accepts (message.max.bytes)"
        }
        TopicAuthorizationFailed | ClusterAuthorizationFailed => {
            "not authorized to write to the topic"
        }
        UnknownTopic | UnknownTopicOrPartition | UnknownTopicId => {
            "the topic does not exist and the broker does not create topics automatically"
        }
        InvalidTopic => "the topic name is not valid",
        InvalidRecord | InvalidMessage | UnsupportedForMessageFormat | InvalidArgument => {
            "the broker refuses the message as invalid"
        }
        _ => return Verdict::Retry,
    };
    Verdict::Reject(format!("Kafka rejected the message: {why} ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        use RDKafkaErrorCode::*;
        for code in [
            MessageSizeTooLarge,
            TopicAuthorizationFailed,
            UnknownTopicOrPartition,
        ] {
            assert!(matches!(
                classify(&KafkaError::MessageProduction(code)),
                Verdict::Reject(_)
            ));
        }
        for code in [
            MessageTimedOut,
            QueueFull,
            NotEnoughReplicas,
            LeaderNotAvailable,
        ] {
            assert!(matches!(
                classify(&KafkaError::MessageProduction(code)),
                Verdict::Retry
            ));
        }
        assert!(matches!(classify(&KafkaError::Canceled), Verdict::Retry));
    }
}
