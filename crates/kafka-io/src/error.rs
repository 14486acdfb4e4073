//! Errors of the Kafka layer, and their mapping onto the shared `BackendError`.

use qadf_core_types::{BackendError, BackendErrorKind};

/// What went wrong talking to the broker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaError {
    /// The broker could not be reached or the connection broke.
    #[error("broker unreachable: {0}")]
    Unavailable(String),
    /// The broker refused the request.
    #[error("broker refused the request: {0}")]
    Rejected(String),
    /// An operation took longer than allowed.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The position is outside the partition's log (truncated, or the topic was recreated).
    #[error("offset out of range: {0}")]
    OffsetOutOfRange(String),
    /// The topic does not exist (and was not created).
    #[error("unknown topic `{0}`")]
    UnknownTopic(String),
    /// The configuration is unusable.
    #[error("invalid Kafka configuration: {0}")]
    Config(String),
}

impl From<rskafka::client::error::Error> for KafkaError {
    fn from(e: rskafka::client::error::Error) -> KafkaError {
        use rskafka::client::error::Error;
        use rskafka::client::error::ProtocolError;
        match &e {
            // Transport failures, and what a broker answers while metadata settles (a topic just
            // created, a restarted broker): retrying later may succeed.
            Error::Connection(_) | Error::Request(_) | Error::RetryFailed(_) | Error::InvalidResponse(_) => {
                KafkaError::Unavailable(e.to_string())
            }
            Error::ServerError {
                protocol_error:
                    ProtocolError::UnknownTopicOrPartition
                    | ProtocolError::LeaderNotAvailable
                    | ProtocolError::NotLeaderOrFollower,
                ..
            } => KafkaError::Unavailable(e.to_string()),
            Error::ServerError { protocol_error: ProtocolError::OffsetOutOfRange, .. } => {
                KafkaError::OffsetOutOfRange(e.to_string())
            }
            _ => KafkaError::Rejected(e.to_string()),
        }
    }
}

impl From<KafkaError> for BackendError {
    fn from(e: KafkaError) -> BackendError {
        let kind = match e {
            KafkaError::Unavailable(_) => BackendErrorKind::Unavailable,
            KafkaError::Timeout(_) => BackendErrorKind::Timeout,
            KafkaError::Rejected(_)
            | KafkaError::OffsetOutOfRange(_)
            | KafkaError::UnknownTopic(_)
            | KafkaError::Config(_) => BackendErrorKind::Rejected,
        };
        BackendError::new(kind, "kafka", e.to_string())
    }
}
