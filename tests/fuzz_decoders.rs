//! Scenario 4, fuzzing: the decoders never panic, whatever the bytes — arbitrary ones and valid
//! messages mutated (bytes replaced, inserted, cut). 100,000 cases each (proptest on stable Rust;
//! `QADF_TEST_FUZZ_CASES` changes it). Whatever decodes is then validated and run through the pipeline's
//! decode step, which must not panic either.

use std::sync::LazyLock;

use proptest::collection::vec;
use proptest::prelude::*;
use qadf_core_types::{Codec, Encoding, Origin, RawMessage, SampleBatch, Timestamp};
use qadf_pipeline::decode_messages;

fn cases() -> u32 {
    std::env::var("QADF_TEST_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000)
}

fn codecs() -> [Codec; 2] {
    [
        Codec::new(Encoding::Json).with_max_message_bytes(4096),
        Codec::new(Encoding::Bincode).with_max_message_bytes(4096),
    ]
}

/// Valid messages of both encodings to mutate (codec index, bytes).
static SEEDS: LazyLock<Vec<(usize, Vec<u8>)>> = LazyLock::new(|| {
    let mut sim = qadf_client::sim::Simulator::new(
        qadf_client::sim::SimConfig { part_size_mm: 0.3, ..Default::default() },
        Timestamp::from_nanos(1_800_000_000_000_000_000),
    );
    let samples = sim.layer(0);
    let mut out = Vec::new();
    for (i, codec) in codecs().iter().enumerate() {
        for n in [1, 3] {
            out.push((i, codec.encode(&SampleBatch::new(samples[..n].to_vec())).unwrap()));
        }
        out.push((i, br#"{"value":1.0}"#.to_vec()));
    }
    out
});

fn exercise(codec: &Codec, bytes: &[u8]) {
    if let Ok(batch) = codec.decode(bytes) {
        for s in &batch.samples {
            let _ = s.validate();
        }
    }
    let message = RawMessage {
        origin: Origin { topic: "t".into(), partition: 0, offset: 0 },
        key: None,
        payload: bytes.to_vec(),
        headers: Vec::new(),
        timestamp: Timestamp::EPOCH,
    };
    let decoded = decode_messages(codec, std::slice::from_ref(&message));
    assert!(decoded.dead_letters.is_empty() || decoded.origins.is_empty(), "decoded or a dead letter, not both");
    assert!(decoded.dead_letters.iter().all(|d| d.payload == bytes), "a dead letter keeps the original bytes");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_a_decoder(bytes in vec(any::<u8>(), 0..600)) {
        for codec in &codecs() {
            exercise(codec, &bytes);
        }
    }

    #[test]
    fn mutated_valid_messages_never_panic_a_decoder(
        seed in any::<prop::sample::Index>(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6),
    ) {
        let (codec_index, mut bytes) = seed.get(&SEEDS).clone();
        for (at, byte, op) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => bytes.truncate(i),
            }
        }
        exercise(&codecs()[codec_index], &bytes);
    }
}
