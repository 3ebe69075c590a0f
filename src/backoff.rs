//! The one retry delay every reconnect and retry loop uses: exponential, jittered, capped.
//!
//! Exponential from `initial` (×`factor` per failure, ×2 unless set), ±50 % jitter, capped at
//! `max`. The jitter is seeded per process (and per backoff within it), so replicas that lose
//! the same broker or Redis at the same moment do not come back in lockstep.
//!
//! For a connection that can fail right after its handshake (Massive: massive.md §7 lessons
//! 1 and 2), [`Backoff::connection_ended`] resets the count only once the connection has
//! streamed for `stable_after`: resetting on `connected` or `auth_success` makes a server that
//! drops right after the handshake produce a reconnect every second. Loops whose success is
//! final (a broker connection opened, a request answered) call [`Backoff::reset`].

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::rng::{splitmix64, Rng};

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    factor: f64,
    stable_after: Duration,
    attempt: u32,
    rng: Rng,
}

/// A seed that differs between processes (the OS's randomness behind `RandomState`) and
/// between the backoffs of one process (a counter).
fn next_seed() -> u64 {
    static PROCESS: OnceLock<u64> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let process = *PROCESS.get_or_init(|| {
        let mut h = RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    });
    splitmix64(process ^ COUNT.fetch_add(1, Ordering::Relaxed))
}

impl Backoff {
    /// Doubling from `initial` up to `max`, jitter seeded for this process.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self::seeded(initial, max, next_seed())
    }

    /// The same with a fixed seed (tests).
    pub fn seeded(initial: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            initial,
            max,
            factor: 2.0,
            stable_after: Duration::ZERO,
            attempt: 0,
            rng: Rng::new(seed),
        }
    }

    /// Growth per failure (at least 1).
    pub fn with_factor(mut self, factor: f64) -> Self {
        self.factor = factor.max(1.0);
        self
    }

    /// How long a connection must have streamed before its end resets the count.
    pub fn with_stable_after(mut self, stable_after: Duration) -> Self {
        self.stable_after = stable_after;
        self
    }

    /// The delay before the next attempt; counts the attempt.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.initial.as_secs_f64() * self.factor.powi(self.attempt.min(60) as i32);
        let capped = base.min(self.max.as_secs_f64());
        self.attempt = self.attempt.saturating_add(1);
        let jitter = 0.5 + self.rng.unit(); // 0.5 .. 1.5
        Duration::from_secs_f64((capped * jitter).min(self.max.as_secs_f64()))
    }

    /// The attempt succeeded: the next failure starts from `initial` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Called when a connection ends after having streamed for `lived`.
    pub fn connection_ended(&mut self, lived: Duration) {
        if lived >= self.stable_after {
            self.attempt = 0;
        }
    }

    /// Failures counted since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets_only_after_stable() {
        let mut b = Backoff::seeded(Duration::from_millis(500), Duration::from_secs(60), 7)
            .with_factor(1.5)
            .with_stable_after(Duration::from_secs(30));
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

    #[test]
    fn doubles_by_default_and_reset_starts_over() {
        let mut b = Backoff::seeded(Duration::from_millis(100), Duration::from_secs(5), 1);
        let d: Vec<Duration> = (0..4).map(|_| b.next_delay()).collect();
        // Attempt n lies within ±50 % of 100 ms × 2^n.
        for (n, d) in d.iter().enumerate() {
            let base = 100.0 * 2f64.powi(n as i32);
            let ms = d.as_secs_f64() * 1000.0;
            assert!(ms >= base * 0.5 && ms <= base * 1.5, "attempt {n}: {ms} ms");
        }
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert!(b.next_delay() <= Duration::from_millis(150));
    }

    #[test]
    fn two_backoffs_of_one_process_do_not_move_in_lockstep() {
        let mut a = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let (da, db): (Vec<_>, Vec<_>) = (0..8).map(|_| (a.next_delay(), b.next_delay())).unzip();
        assert_ne!(da, db, "each backoff has its own jitter");
    }
}
