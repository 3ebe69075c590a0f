//! What the fan-out benchmarks (`wds`, `relay`) share: the server process they start and
//! stop, the send time stamped into each message, and the wait for the last deliveries.

use std::cell::Cell;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A node process, killed when dropped (a failed run leaves nothing behind).
pub(crate) struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    /// Sends SIGTERM, as an orchestrator would, and times the way out.
    pub async fn terminate(&mut self) -> Option<f64> {
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        if !sent.is_ok_and(|s| s.success()) {
            return None;
        }
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return Some(started.elapsed().as_secs_f64());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }
}

/// The integer after the first `field` (e.g. `"t":`) in a frame: a send time in µs.
pub(crate) fn micros_after(frame: &[u8], field: &[u8]) -> Option<i64> {
    let at = memchr::memmem::find(frame, field)? + field.len();
    let digits = frame[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&frame[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// Waits until `delivered` reaches `expected` or stops moving for two seconds; when it last
/// moved.
pub(crate) async fn drain(delivered: &Cell<u64>, expected: u64) -> Instant {
    let mut last = (delivered.get(), Instant::now());
    while delivered.get() < expected && last.1.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if delivered.get() != last.0 {
            last = (delivered.get(), Instant::now());
        }
    }
    last.1
}
