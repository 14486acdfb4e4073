//! Liveness and readiness of `run`, for `/health/live`, `/health/ready` and `qadf-stream status`.
//!
//! Live: `run`'s main loop ticked within [`LIVE_WITHIN`]. Ready: the broker and the store
//! answered the prober's last ping, the consumer runs, and its lag is within `ready_max_lag`.
//! The prober pings on a thread of its own, every [`PROBE_EVERY`] (a ping that hangs never holds
//! up a request or the stream); the answers carry the last error, with passwords masked.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// How often the prober pings the broker and the store.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// `run` is live while its main loop ticked within this.
pub const LIVE_WITHIN: Duration = Duration::from_secs(30);

/// A dependency's ping: `Ok` when it answered.
pub type Ping = Box<dyn Fn() -> Result<(), String> + Send>;

/// One check of the readiness answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// `broker`, `store`, `consumer` or `lag`.
    pub name: String,
    /// Whether it passes.
    pub ok: bool,
    /// Why not (or, for `lag`, the figures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The readiness answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    /// Every check passes.
    pub ready: bool,
    /// The checks, in a fixed order.
    pub checks: Vec<Check>,
}

#[derive(Clone, Debug)]
struct Probed {
    ok: bool,
    error: Option<String>,
}

impl Default for Probed {
    fn default() -> Probed {
        Probed { ok: false, error: Some("not checked yet".to_owned()) }
    }
}

/// The health state shared by `run`, the prober and the HTTP routes.
pub struct Health {
    broker: Mutex<Probed>,
    store: Mutex<Probed>,
    consumer_running: AtomicBool,
    started: Instant,
    /// Milliseconds after `started` of the main loop's last tick.
    last_tick_ms: AtomicU64,
    max_lag: u64,
    stop: AtomicBool,
}

impl Health {
    /// Not ready until the first pings; ready requires a lag of at most `max_lag` (0: no bound).
    pub fn new(max_lag: u64) -> Arc<Health> {
        Arc::new(Health {
            broker: Mutex::default(),
            store: Mutex::default(),
            consumer_running: AtomicBool::new(false),
            started: Instant::now(),
            last_tick_ms: AtomicU64::new(0),
            max_lag,
            stop: AtomicBool::new(false),
        })
    }

    /// Pings `broker` and `store` every [`PROBE_EVERY`] on a thread of its own, until [`Health::stop`].
    pub fn spawn_prober(self: &Arc<Health>, broker: Ping, store: Ping) -> std::io::Result<()> {
        let health = self.clone();
        std::thread::Builder::new().name("qadf-health".to_owned()).spawn(move || {
            while !health.stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                health.set_broker(broker());
                health.set_store(store());
                std::thread::sleep(PROBE_EVERY.saturating_sub(started.elapsed()));
            }
        })?;
        Ok(())
    }

    fn probed(result: Result<(), String>) -> Probed {
        match result {
            Ok(()) => Probed { ok: true, error: None },
            Err(e) => Probed { ok: false, error: Some(qadf_core_types::secret::mask_uris(&e)) },
        }
    }

    /// Records the broker's last ping.
    pub fn set_broker(&self, result: Result<(), String>) {
        *self.broker.lock() = Health::probed(result);
    }

    /// Records the store's last ping.
    pub fn set_store(&self, result: Result<(), String>) {
        *self.store.lock() = Health::probed(result);
    }

    /// Records whether the consumer runs.
    pub fn set_consumer_running(&self, running: bool) {
        self.consumer_running.store(running, Ordering::SeqCst);
    }

    /// The main loop's heartbeat.
    pub fn tick(&self) {
        self.last_tick_ms.store(self.started.elapsed().as_millis() as u64, Ordering::SeqCst);
    }

    /// Stops the prober (after its current ping).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Whether the main loop ticked within [`LIVE_WITHIN`].
    pub fn live(&self) -> bool {
        let last = Duration::from_millis(self.last_tick_ms.load(Ordering::SeqCst));
        self.started.elapsed().saturating_sub(last) < LIVE_WITHIN
    }

    /// Whether the broker's and the store's last pings answered: `(broker, store)`.
    pub fn up(&self) -> (bool, bool) {
        (self.broker.lock().ok, self.store.lock().ok)
    }

    /// The readiness answer, given the consumer's lag in messages.
    pub fn readiness(&self, lag: u64) -> Readiness {
        let check =
            |name: &str, probed: &Probed| Check { name: name.to_owned(), ok: probed.ok, detail: probed.error.clone() };
        let running = self.consumer_running.load(Ordering::SeqCst);
        let lag_ok = self.max_lag == 0 || lag <= self.max_lag;
        let checks = vec![
            check("broker", &self.broker.lock()),
            check("store", &self.store.lock()),
            Check {
                name: "consumer".to_owned(),
                ok: running,
                detail: (!running).then(|| "the consumer is not running".to_owned()),
            },
            Check {
                name: "lag".to_owned(),
                ok: lag_ok,
                detail: Some(if self.max_lag == 0 {
                    format!("{lag} messages behind (no bound)")
                } else {
                    format!("{lag} messages behind, ready_max_lag {}", self.max_lag)
                }),
            },
        ];
        Readiness { ready: checks.iter().all(|c| c.ok), checks }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passes_and_errors_are_masked() {
        let health = Health::new(10);
        assert!(!health.readiness(0).ready, "not ready before the first pings");
        health.set_broker(Ok(()));
        health.set_store(Ok(()));
        health.set_consumer_running(true);
        assert!(health.readiness(10).ready);
        assert!(!health.readiness(11).ready, "lag over the bound");
        health.set_store(Err("no server at mongodb://u:hunter2@db:27017".to_owned()));
        let r = health.readiness(0);
        let store = r.checks.iter().find(|c| c.name == "store").unwrap();
        assert!(!r.ready && !store.ok);
        assert_eq!(store.detail.as_deref(), Some("no server at mongodb://u:***@db:27017"));
        health.set_store(Ok(()));
        health.set_consumer_running(false);
        assert!(!health.readiness(0).ready);
        assert!(Health::new(0).readiness(u64::MAX).checks[3].ok, "0: no lag bound");
    }

    #[test]
    fn live_follows_the_main_loop_heartbeat() {
        let health = Health::new(0);
        health.tick();
        assert!(health.live());
    }
}
