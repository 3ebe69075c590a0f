//! Reconnect backoff for the Massive connection (massive.md §7 lessons 1 and 2).
//!
//! Exponential from `initial`, ×1.5 per failure, ±50 % jitter, capped at `max`. The attempt
//! count resets only once a connection has streamed for `stable_after`: resetting on
//! `connected` or `auth_success` makes a server that drops right after the handshake produce
//! a reconnect every second. `max_connections` is not transient (another process holds the
//! key), so it gets its own long cooldown.

use std::time::Duration;

use crate::rng::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub stable_after: Duration,
    pub max_connections_cooldown: Duration,
    attempt: u32,
    rng: Rng,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            initial,
            max,
            stable_after: Duration::from_secs(30),
            max_connections_cooldown: Duration::from_secs(60),
            attempt: 0,
            rng: Rng::new(seed),
        }
    }

    /// The delay before the next attempt; counts the attempt.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.initial.as_secs_f64() * 1.5f64.powi(self.attempt.min(40) as i32);
        let capped = base.min(self.max.as_secs_f64());
        self.attempt = self.attempt.saturating_add(1);
        let jitter = 0.5 + self.rng.unit(); // 0.5 .. 1.5
        Duration::from_secs_f64((capped * jitter).min(self.max.as_secs_f64()))
    }

    /// Called when a connection ends after having streamed for `lived`.
    pub fn connection_ended(&mut self, lived: Duration) {
        if lived >= self.stable_after {
            self.attempt = 0;
        }
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets_only_after_stable() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(60), 7);
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(250) && first <= Duration::from_millis(750));
        for _ in 0..50 {
            assert!(b.next_delay() <= Duration::from_secs(60));
        }
        let late = b.next_delay();
        assert!(
            late >= Duration::from_secs(30),
            "capped near 60 s with jitter: {late:?}"
        );
        b.connection_ended(Duration::from_secs(2));
        assert!(
            b.attempts() > 0,
            "a short-lived connection does not reset the backoff"
        );
        b.connection_ended(Duration::from_secs(31));
        assert_eq!(b.attempts(), 0);
    }
}
