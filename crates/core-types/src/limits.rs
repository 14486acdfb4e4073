//! `IngestLimits`: the bounds no message or sample may pass, so hostile input ends as a dead
//! letter naming the limit instead of exhausting memory or time.

/// Bounds applied while decoding and validating (from [`crate::StreamingConfig::ingest_limits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngestLimits {
    /// Most signals one sample may carry.
    pub max_signals_per_sample: usize,
    /// Longest signal, build or source name in bytes.
    pub max_name_bytes: usize,
    /// Most samples one message may carry.
    pub max_samples_per_message: usize,
    /// Deepest nesting of JSON arrays and objects.
    pub max_json_depth: usize,
}

impl Default for IngestLimits {
    /// The configuration's defaults (kept equal to them by a test).
    fn default() -> IngestLimits {
        IngestLimits {
            max_signals_per_sample: 64,
            max_name_bytes: 128,
            max_samples_per_message: 100_000,
            max_json_depth: 16,
        }
    }
}

impl IngestLimits {
    /// No bound but the JSON parser's own recursion limit (for trusted, internal data).
    pub const UNBOUNDED: IngestLimits = IngestLimits {
        max_signals_per_sample: usize::MAX,
        max_name_bytes: usize::MAX,
        max_samples_per_message: usize::MAX,
        max_json_depth: 128,
    };
}

/// The deepest nesting of arrays and objects in JSON `bytes` (strings are skipped, escapes
/// honoured); stops counting once `max` is passed. One pass, no allocation.
pub fn json_depth_exceeds(bytes: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_limits_are_the_configuration_defaults() {
        assert_eq!(IngestLimits::default(), crate::StreamingConfig::default().ingest_limits());
    }

    #[test]
    fn depth_counts_arrays_and_objects_but_not_brackets_inside_strings() {
        assert!(!json_depth_exceeds(br#"[{"a": 1}]"#, 2));
        assert!(json_depth_exceeds(br#"[{"a": [1]}]"#, 2));
        assert!(!json_depth_exceeds(br#"[{"a": "[[[[\"[[["}]"#, 2), "brackets in strings, escaped quote");
        assert!(json_depth_exceeds(&[b'['; 10_000], 16));
        assert!(!json_depth_exceeds(b"", 1));
    }
}
