//! Live-view snapshots in any `Cache` as plain JSON text, under the key scheme of [`crate::keys`], plus the upstream
//! `cache_recent_data` / `get_cached_data` names.

use std::sync::Arc;
use std::time::Duration;

use qadf_core_types::{Alert, BackendError, BackendErrorKind, Cache, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::keys;

/// The upstream Python names over the `Cache` trait.
pub trait CacheExt {
    /// Stores `value` under `key` for `ttl` (the upstream `cache_recent_data`).
    fn cache_recent_data(&self, key: &str, value: &Value, ttl: Duration) -> Result<(), BackendError>;
    /// The value under `key`, if present and not expired (the upstream `get_cached_data`).
    fn get_cached_data(&self, key: &str) -> Result<Option<Value>, BackendError>;
}

impl<C: Cache + ?Sized> CacheExt for C {
    fn cache_recent_data(&self, key: &str, value: &Value, ttl: Duration) -> Result<(), BackendError> {
        self.put(key, value, ttl)
    }

    fn get_cached_data(&self, key: &str) -> Result<Option<Value>, BackendError> {
        self.get(key)
    }
}

/// Publishes a build's latest state, layer slices and recent alerts for dashboards.
pub struct LiveView {
    cache: Arc<dyn Cache>,
    prefix: String,
    ttl: Duration,
}

impl LiveView {
    /// Snapshots in `cache` under `prefix`, each kept for `ttl`.
    pub fn new(cache: Arc<dyn Cache>, prefix: impl Into<String>, ttl: Duration) -> LiveView {
        LiveView { cache, prefix: prefix.into(), ttl }
    }

    fn put_json(&self, key: &str, value: &impl Serialize) -> Result<(), BackendError> {
        let text = serde_json::to_string(value)
            .map_err(|e| BackendError::new(BackendErrorKind::Rejected, "live-view", e.to_string()))?;
        self.cache.put_text(key, &text, self.ttl)
    }

    fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, BackendError> {
        match self.cache.get_text(key)? {
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| BackendError::new(BackendErrorKind::Corrupt, "live-view", format!("{key}: {e}"))),
            None => Ok(None),
        }
    }

    /// Publishes the build's latest state (statistics, progress: any serializable value).
    pub fn publish_latest(&self, build: &str, state: &impl Serialize) -> Result<(), BackendError> {
        self.put_json(&keys::latest(&self.prefix, build), state)
    }

    /// The build's latest state.
    pub fn latest<T: DeserializeOwned>(&self, build: &str) -> Result<Option<T>, BackendError> {
        self.get_json(&keys::latest(&self.prefix, build))
    }

    /// Publishes one layer's slice (any serializable value, e.g. a voxel `LayerSlice`).
    pub fn publish_layer(&self, build: &str, layer: u32, slice: &impl Serialize) -> Result<(), BackendError> {
        self.put_json(&keys::layer(&self.prefix, build, layer), slice)
    }

    /// One layer's slice.
    pub fn layer<T: DeserializeOwned>(&self, build: &str, layer: u32) -> Result<Option<T>, BackendError> {
        self.get_json(&keys::layer(&self.prefix, build, layer))
    }

    /// Publishes one layer's report.
    pub fn publish_layer_report(&self, report: &qadf_core_types::LayerReport) -> Result<(), BackendError> {
        self.put_json(&keys::report(&self.prefix, &report.build_id, report.layer), report)
    }

    /// One layer's report.
    pub fn layer_report(&self, build: &str, layer: u32) -> Result<Option<qadf_core_types::LayerReport>, BackendError> {
        self.get_json(&keys::report(&self.prefix, build, layer))
    }

    /// Publishes the ids of the builds on the stream.
    pub fn publish_builds(&self, builds: &[&str]) -> Result<(), BackendError> {
        self.put_json(&keys::builds(&self.prefix), &builds)
    }

    /// The ids of the builds on the stream.
    pub fn builds(&self) -> Result<Vec<String>, BackendError> {
        Ok(self.get_json(&keys::builds(&self.prefix))?.unwrap_or_default())
    }

    /// Publishes the build's most recent alerts.
    pub fn publish_alerts(&self, build: &str, alerts: &[Alert]) -> Result<(), BackendError> {
        self.put_json(&keys::alerts(&self.prefix, build), &alerts)
    }

    /// The build's most recent alerts.
    pub fn alerts(&self, build: &str) -> Result<Vec<Alert>, BackendError> {
        Ok(self.get_json(&keys::alerts(&self.prefix, build))?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use qadf_core_types::{Severity, Timestamp};

    use super::*;
    use crate::MemoryCache;

    #[test]
    fn snapshots_round_trip_through_the_key_scheme() {
        let cache: Arc<dyn Cache> = Arc::new(MemoryCache::default());
        let view = LiveView::new(cache.clone(), "qadf", Duration::from_secs(60));
        let stats = BTreeMap::from([("samples".to_owned(), 1000u64)]);
        view.publish_latest("b1", &stats).unwrap();
        view.publish_layer("b1", 3, &vec![Some(1.5), None]).unwrap();
        let alert = Alert {
            checkpoint: "hot".into(),
            severity: Severity::Critical,
            build_id: "b1".into(),
            layer: Some(3),
            position: None,
            signal: Some("temperature".into()),
            unit: None,
            value: 2500.0,
            threshold: 2100.0,
            timestamp: Timestamp::EPOCH,
            message: "too hot".into(),
        };
        view.publish_alerts("b1", std::slice::from_ref(&alert)).unwrap();
        view.publish_builds(&["b1", "b2"]).unwrap();
        assert_eq!(view.builds().unwrap(), ["b1", "b2"]);
        assert_eq!(
            cache.get_text("qadf:b1:alerts").unwrap().unwrap(),
            serde_json::to_string(&[&alert]).unwrap(),
            "plain JSON"
        );
        assert_eq!(view.latest::<BTreeMap<String, u64>>("b1").unwrap(), Some(stats));
        assert_eq!(view.layer::<Vec<Option<f64>>>("b1", 3).unwrap(), Some(vec![Some(1.5), None]));
        assert_eq!(view.alerts("b1").unwrap(), vec![alert]);
        assert!(cache.get_cached_data("qadf:b1:latest").unwrap().is_some(), "the documented key scheme");
        cache.cache_recent_data("k", &Value::Int(1), Duration::from_secs(1)).unwrap();
        assert_eq!(cache.get_cached_data("k").unwrap(), Some(Value::Int(1)));
    }
}
