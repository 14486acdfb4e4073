//! `qadf-stream schema check`: sample messages (one per line) through the configured schema,
//! printing for each the samples it maps to or why `run` would refuse it — a user's first step
//! with a new monitor.

use std::io::{self, BufRead, Write};

use qadf_core_types::{Codec, IngestLimits, RecordContext, Timestamp};

/// What a check found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckSummary {
    /// Non-empty lines read.
    pub messages: usize,
    /// Messages refused (as `run` would dead-letter them).
    pub refused: usize,
    /// Samples the accepted messages map to.
    pub samples: usize,
}

/// Longest part of a refused line quoted back.
const QUOTE_CHARS: usize = 120;

/// Checks every line of `input` with `codec` (as `run` decodes and validates a message whose
/// Kafka key is `key`), writing the mapped samples as canonical JSON lines or the refusal.
pub fn check_lines(
    codec: &Codec,
    limits: &IngestLimits,
    key: Option<&[u8]>,
    input: impl BufRead,
    mut out: impl Write,
) -> io::Result<CheckSummary> {
    let mut summary = CheckSummary::default();
    let now = Timestamp::now();
    for (index, line) in input.split(b'\n').enumerate() {
        let line = line?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        summary.messages += 1;
        let number = index + 1;
        let record = RecordContext { timestamp: Some(now), key };
        let verdict = codec.decode_record(line, &record).map_err(|e| e.to_string()).and_then(|batch| {
            for (i, s) in batch.samples.iter().enumerate() {
                s.validate_with(limits).map_err(|e| format!("sample {i}: {e}"))?;
            }
            Ok(batch)
        });
        match verdict {
            Ok(batch) => {
                summary.samples += batch.len();
                let plural = if batch.len() == 1 { "" } else { "s" };
                writeln!(out, "line {number}: {} sample{plural}", batch.len())?;
                for s in &batch.samples {
                    writeln!(out, "  {}", serde_json::to_string(s).map_err(io::Error::other)?)?;
                }
            }
            Err(reason) => {
                summary.refused += 1;
                let text = String::from_utf8_lossy(line);
                let quoted: String = text.chars().take(QUOTE_CHARS).collect();
                let more = if text.chars().count() > QUOTE_CHARS { "…" } else { "" };
                writeln!(out, "line {number}: refused: {reason}")?;
                writeln!(out, "  {}{more}", quoted.escape_debug())?;
            }
        }
    }
    writeln!(
        out,
        "{} messages: {} accepted ({} samples), {} refused; a sample without a time takes its Kafka record's timestamp (here: the time of this check)",
        summary.messages,
        summary.messages - summary.refused,
        summary.samples,
        summary.refused
    )?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use qadf_core_types::StreamingConfig;

    use super::*;

    #[test]
    fn each_line_prints_its_samples_or_the_refusal_naming_the_field() {
        let mut config = StreamingConfig::default();
        config.schema.tag_fields = vec!["material".into()];
        let codec = Codec::for_config(&config).unwrap();
        let input = concat!(
            r#"{"sensor_id": "sensor_0", "temperature": 1024.8, "x": 1, "y": 2, "z": 0.03, "timestamp": "2026-01-30T17:31:18.343884"}"#,
            "\n\n",
            r#"{"job": "j1", "temperature": 1}"#,
            "\n",
            r#"[{"temperature": 1, "material": "Ti64"}, {"temperature": 1e400}]"#,
            "\r\n",
            r#"{"temperature": 1, "material": "Ti64"}"#,
            "\n",
        );
        let mut out = Vec::new();
        let summary = check_lines(&codec, &config.ingest_limits(), None, input.as_bytes(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(summary, CheckSummary { messages: 4, refused: 2, samples: 2 }, "{text}");
        assert!(text.contains("line 1: 1 sample\n"), "{text}");
        assert!(
            text.contains(r#""source_id":"sensor_0""#) && text.contains("2026-01-30T17:31:18.343884000Z"),
            "{text}"
        );
        assert!(text.contains("line 3: refused: sample 0: field `job`: is a string"), "{text}");
        assert!(text.contains("line 4: refused:"), "{text}");
        assert!(text.contains(r#""tags":{"material":"Ti64"}"#), "{text}");
        assert!(text.contains("4 messages: 2 accepted (2 samples), 2 refused"), "{text}");
    }
}
