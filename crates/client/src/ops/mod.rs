//! Operating `run`: Prometheus metrics ([`metrics`]), liveness and readiness ([`health`]), and
//! the HTTP routes that serve both beside the live page ([`OpsRoutes`]); `qadf-stream status`
//! reads the same over HTTP ([`status`]).

pub mod health;
pub mod metrics;
pub mod status;

use std::sync::Arc;

use crate::dashboard::server::{Response, Routes};
pub use health::{Check, Health, Readiness};
pub use metrics::{Exposition, Sources};

/// `/metrics`, `/health/live` and `/health/ready`.
pub struct OpsRoutes {
    /// What the metrics are read from.
    pub sources: Sources,
    /// The health state.
    pub health: Arc<Health>,
}

impl Routes for OpsRoutes {
    fn get(&self, path: &str) -> Option<Response> {
        let json =
            |status, body: String| Response { status, content_type: "application/json", body: body.into_bytes() };
        match path {
            "/metrics" => Some(Response {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: self.sources.render(&self.health).into_bytes(),
            }),
            "/health/live" => {
                let live = self.health.live();
                Some(json(if live { 200 } else { 503 }, serde_json::json!({ "live": live }).to_string()))
            }
            "/health/ready" => {
                let lag = self.sources.client.get_stream_statistics().consumer_lag;
                let ready = self.health.readiness(lag);
                let body = serde_json::to_string(&ready).unwrap_or_default();
                Some(json(if ready.ready { 200 } else { 503 }, body))
            }
            _ => None,
        }
    }
}
