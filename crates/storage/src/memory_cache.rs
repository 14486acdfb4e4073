//! `MemoryCache`: an in-process cache with expiry, for zero-service runs and tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use qadf_core_types::{BackendError, Cache, Clock, SystemClock, Timestamp, Value};

/// Values with an expiry time; expired entries are dropped when read or on `sweep`.
#[derive(Debug)]
pub struct MemoryCache {
    entries: Mutex<HashMap<String, (Value, Timestamp)>>,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryCache {
    fn default() -> MemoryCache {
        MemoryCache::with_clock(Arc::new(SystemClock))
    }
}

impl MemoryCache {
    /// A cache timing expiry with `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> MemoryCache {
        MemoryCache { entries: Mutex::default(), clock }
    }

    /// Drops every expired entry; returns how many.
    pub fn sweep(&self) -> usize {
        let now = self.clock.now();
        let mut entries = self.entries.lock();
        let before = entries.len();
        entries.retain(|_, (_, expires)| *expires > now);
        before - entries.len()
    }
}

impl Cache for MemoryCache {
    fn put(&self, key: &str, value: &Value, ttl: Duration) -> Result<(), BackendError> {
        let expires = self.clock.now() + ttl;
        self.entries.lock().insert(key.to_owned(), (value.clone(), expires));
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Value>, BackendError> {
        let now = self.clock.now();
        let mut entries = self.entries.lock();
        match entries.get(key) {
            Some((_, expires)) if *expires <= now => {
                entries.remove(key);
                Ok(None)
            }
            Some((v, _)) => Ok(Some(v.clone())),
            None => Ok(None),
        }
    }
}
