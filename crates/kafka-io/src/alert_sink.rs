//! `AlertSink`: publishes quality alerts to a topic, one JSON message each, and counts them.

use std::sync::Arc;

use qadf_core_types::{Alert, BackendError, BackendErrorKind, MessageSink, OutgoingMessage, SendError};

use crate::topic_sink::TopicSink;

/// Header naming the checkpoint that raised the alert (consumers can filter without parsing).
pub const CHECKPOINT_HEADER: &str = "qadf.checkpoint";

/// Publishes alerts to one topic of any `MessageSink`, keyed by build id (a build's alerts share a
/// partition, so they stay in order).
pub struct AlertSink {
    out: TopicSink,
}

impl AlertSink {
    /// Alerts go to `topic` through `sink`.
    pub fn new(sink: Arc<dyn MessageSink>, topic: impl Into<String>) -> AlertSink {
        AlertSink { out: TopicSink::new(sink, topic.into()) }
    }

    /// Sends the alerts and waits for acknowledgement; unacknowledged ones come back in the error.
    pub fn send(&self, alerts: &[Alert]) -> Result<(), SendError<Vec<OutgoingMessage>>> {
        let mut messages = Vec::with_capacity(alerts.len());
        for a in alerts {
            let payload = serde_json::to_vec(a).map_err(|e| SendError {
                value: Vec::new(),
                error: BackendError::new(BackendErrorKind::Rejected, "alerts", format!("alert not encodable: {e}")),
            })?;
            let checkpoint = (CHECKPOINT_HEADER.to_owned(), a.checkpoint.clone().into_bytes());
            messages.push(self.out.message(Some(a.build_id.to_string().into_bytes()), payload, vec![checkpoint]));
        }
        self.out.send(messages)
    }

    /// Alerts acknowledged so far.
    pub fn sent(&self) -> u64 {
        self.out.sent()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use qadf_core_types::{MessageSource, Severity, Timestamp};

    use super::*;
    use crate::{MemoryOffsetStore, in_process};

    fn alert(build: &str, checkpoint: &str) -> Alert {
        Alert {
            checkpoint: checkpoint.into(),
            severity: Severity::Critical,
            build_id: build.into(),
            layer: Some(3),
            position: None,
            signal: Some("temperature".into()),
            unit: None,
            value: 2300.0,
            threshold: 2150.0,
            timestamp: Timestamp::from_nanos(1_000),
            message: "too hot".into(),
        }
    }

    #[test]
    fn alerts_arrive_as_json_keyed_by_build_with_their_checkpoint() {
        let (sink, mut source) = in_process::channel(16, "g", Arc::new(MemoryOffsetStore::default()));
        let alerts = AlertSink::new(Arc::new(sink), "am_qadf_alerts");
        let sent = vec![alert("b1", "range"), alert("b2", "gap")];
        alerts.send(&sent).unwrap();
        alerts.send(&[]).unwrap();
        assert_eq!(alerts.sent(), 2);
        let got = source.poll(10, Duration::from_millis(200)).unwrap();
        let decoded: Vec<Alert> = got.iter().map(|m| serde_json::from_slice(&m.payload).unwrap()).collect();
        assert_eq!(decoded, sent);
        assert_eq!(got[0].key.as_deref(), Some(&b"b1"[..]));
        assert_eq!(got[1].headers, vec![(CHECKPOINT_HEADER.to_owned(), b"gap".to_vec())]);
    }
}
