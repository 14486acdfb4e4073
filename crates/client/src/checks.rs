//! The product's quality checks until rules are configuration (the next issue): the melt-pool
//! checks `run`, the demo and the detection tests apply.

use std::sync::Arc;
use std::time::Duration;

use qadf_pipeline::{CheckpointAction, GapCheck, RangeCheck};

use crate::StreamingClient;

/// Melt-pool temperature within 1700-2150 K (hot spots, cold tracks, a stuck sensor) and no gap
/// longer than three sample periods (sensor dropouts). The limits are the demo's example values,
/// not material data.
pub fn add_melt_pool_checks(client: &StreamingClient, sample_rate_hz: f64) {
    let range = RangeCheck::new("melt_pool_temperature", "temperature", 1700.0, 2150.0);
    client.add_quality_checkpoint(Arc::new(range), CheckpointAction::Continue);
    let gap = GapCheck::new("sensor_dropout", Duration::from_secs_f64(3.0 / sample_rate_hz));
    client.add_quality_checkpoint(Arc::new(gap), CheckpointAction::Continue);
}
