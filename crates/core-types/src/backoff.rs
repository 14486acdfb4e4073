//! `Backoff`: the one retry policy of the workspace — exponential delays with jitter, used for
//! store writes, commits, side outputs and broker reconnects alike.

use std::time::Duration;

use crate::error::BackendError;

/// Exponential backoff from `initial` to `max`, with ±25% jitter so many clients do not retry in step.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    seed: u64,
}

impl Default for Backoff {
    /// 50 ms, doubling up to 5 s.
    fn default() -> Backoff {
        Backoff::new(Duration::from_millis(50), Duration::from_secs(5))
    }
}

impl Backoff {
    /// Delays starting at `initial`, doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        Backoff { initial, max: max.max(initial), next: initial, seed: seed | 1 }
    }

    /// The delay to wait now (with jitter); the following one doubles.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        // xorshift: cheap jitter, no dependency.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let permille = 750 + self.seed % 501; // 75%..125%
        (base * permille as u32 / 1000).min(self.max)
    }

    /// Starts again from the initial delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// Runs `op` until it succeeds, fails permanently, or `give_up()` turns true; between
    /// transient failures calls `on_retry(error, delay)` and sleeps. Returns the last error otherwise.
    pub fn retry<T>(
        &mut self,
        mut op: impl FnMut() -> Result<T, BackendError>,
        give_up: impl Fn() -> bool,
        mut on_retry: impl FnMut(&BackendError, Duration),
    ) -> Result<T, BackendError> {
        loop {
            match op() {
                Ok(v) => {
                    self.reset();
                    return Ok(v);
                }
                Err(e) if !e.is_transient() || give_up() => return Err(e),
                Err(e) => {
                    let delay = e.retry_after.unwrap_or_else(|| self.next_delay());
                    on_retry(&e, delay);
                    std::thread::sleep(delay);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::error::BackendErrorKind;

    #[test]
    fn delays_double_up_to_the_maximum_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let delays: Vec<u128> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        for (d, base) in delays.iter().zip([100, 200, 400, 400, 400, 400]) {
            assert!(*d >= base * 3 / 4 && *d <= (base * 5 / 4).min(400), "{delays:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(125));
    }

    #[test]
    fn retry_stops_at_a_permanent_error_and_when_told_to_give_up() {
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
        let calls = Cell::new(0);
        let transient_twice = || {
            calls.set(calls.get() + 1);
            if calls.get() <= 2 { Err(BackendError::new(BackendErrorKind::Unavailable, "t", "down")) } else { Ok(7) }
        };
        assert_eq!(b.retry(transient_twice, || false, |_, _| {}).unwrap(), 7);
        let rejected = || Err::<(), _>(BackendError::new(BackendErrorKind::Rejected, "t", "bad"));
        assert_eq!(
            b.retry(rejected, || false, |_, _| panic!("no retry")).unwrap_err().kind,
            BackendErrorKind::Rejected
        );
        let down = || Err::<(), _>(BackendError::new(BackendErrorKind::Unavailable, "t", "down"));
        assert!(b.retry(down, || true, |_, _| panic!("gave up")).is_err());
    }
}
