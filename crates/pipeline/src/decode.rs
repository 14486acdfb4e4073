//! Decoding raw messages into a batch; undecodable messages become dead letters, never silence.

use qadf_core_types::{Codec, DeadLetter, Origin, RawMessage, RecordContext, SampleBatch};

/// A decoded poll: the samples, where each came from, and what could not be decoded.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Every sample of every decodable message, in message order.
    pub batch: SampleBatch,
    /// For each sample: its message's origin and its index within that message.
    pub origins: Vec<(Origin, usize)>,
    /// Messages that could not be decoded, with the original bytes and the reason.
    pub dead_letters: Vec<DeadLetter>,
}

/// Decodes every message with `codec`; a sample without a timestamp takes its message's (the
/// Kafka record's), so a replay decodes to the same samples, and the schema may take the build
/// from the record's key.
pub fn decode_messages(codec: &Codec, messages: &[RawMessage]) -> Decoded {
    let mut out = Decoded::default();
    for message in messages {
        let record = RecordContext { timestamp: Some(message.timestamp), key: message.key.as_deref() };
        match codec.decode_record(&message.payload, &record) {
            Ok(batch) => {
                for (index, sample) in batch.samples.into_iter().enumerate() {
                    out.origins.push((message.origin.clone(), index));
                    out.batch.samples.push(sample);
                }
            }
            Err(e) => out.dead_letters.push(DeadLetter {
                reason: e.to_string(),
                origin: Some(message.origin.clone()),
                sample_index: None,
                payload: message.payload.clone(),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use qadf_core_types::{Encoding, Timestamp};

    use super::*;

    fn message(offset: i64, payload: &[u8]) -> RawMessage {
        RawMessage {
            origin: Origin { topic: "t".into(), partition: 0, offset },
            key: None,
            payload: payload.to_vec(),
            headers: Vec::new(),
            timestamp: Timestamp::EPOCH,
        }
    }

    #[test]
    fn good_messages_decode_with_origins_and_bad_ones_become_dead_letters() {
        let codec = Codec::new(Encoding::Json).with_max_message_bytes(64);
        let messages = [
            message(0, br#"[{"value": 1}, {"value": 2}]"#),
            message(1, b"{not json"),
            message(2, &[0xff, 0xfe]),
            message(3, &[b' '; 65]),
            message(4, br#"{"value": 3}"#),
        ];
        let d = decode_messages(&codec, &messages);
        assert_eq!(d.batch.len(), 3);
        let offsets: Vec<(i64, usize)> = d.origins.iter().map(|(o, i)| (o.offset, *i)).collect();
        assert_eq!(offsets, [(0, 0), (0, 1), (4, 0)]);
        let reasons: Vec<(i64, &str)> =
            d.dead_letters.iter().map(|l| (l.origin.as_ref().unwrap().offset, l.reason.as_str())).collect();
        assert_eq!(reasons.len(), 3);
        assert!(
            reasons[0].1.contains("invalid JSON") && reasons[1].1.contains("UTF-8") && reasons[2].1.contains("exceeds")
        );
        assert_eq!(d.dead_letters[1].payload, [0xff, 0xfe], "the original bytes are kept");
    }
}
