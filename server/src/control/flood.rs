//! Per-connection flood control: a token bucket, and a limit on how long a client may keep
//! hammering after it has been told to slow down.

use std::time::{Duration, Instant};

/// Sustained requests per second one connection may send.
pub(super) const REQUESTS_PER_SECOND: f64 = 50.0;
/// Requests one connection may send at once after a quiet spell.
pub(super) const BURST: f64 = 100.0;
/// A client refused more than this many times within one [`REJECTION_WINDOW`] ignores the
/// rate-limit replies and is disconnected (a client just over the limit now and then is not).
const MAX_REJECTED_PER_WINDOW: u32 = 500;
const REJECTION_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Allow,
    /// Answer with a `rate_limited` error and keep the connection.
    Reject,
    /// The client ignores the rate-limit replies: close the connection.
    Disconnect,
}

#[derive(Debug)]
pub(super) struct FloodGuard {
    tokens: f64,
    refilled_at: Instant,
    window_start: Instant,
    rejected_in_window: u32,
}

impl FloodGuard {
    pub(super) fn new(now: Instant) -> Self {
        FloodGuard {
            tokens: BURST,
            refilled_at: now,
            window_start: now,
            rejected_in_window: 0,
        }
    }

    /// Accounts for one incoming frame at `now`.
    pub(super) fn check(&mut self, now: Instant) -> Verdict {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * REQUESTS_PER_SECOND).min(BURST);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allow;
        }
        if now.saturating_duration_since(self.window_start) >= REJECTION_WINDOW {
            self.window_start = now;
            self.rejected_in_window = 0;
        }
        self.rejected_in_window += 1;
        if self.rejected_in_window > MAX_REJECTED_PER_WINDOW {
            Verdict::Disconnect
        } else {
            Verdict::Reject
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(guard: &mut FloodGuard, now: Instant, n: usize) -> Vec<Verdict> {
        (0..n).map(|_| guard.check(now)).collect()
    }

    #[test]
    fn a_burst_passes_then_requests_are_rejected() {
        let start = Instant::now();
        let mut guard = FloodGuard::new(start);
        let verdicts = run(&mut guard, start, 101);
        assert!(verdicts[..100].iter().all(|v| *v == Verdict::Allow));
        assert_eq!(verdicts[100], Verdict::Reject);
    }

    #[test]
    fn tokens_come_back_at_the_sustained_rate() {
        let start = Instant::now();
        let mut guard = FloodGuard::new(start);
        run(&mut guard, start, 100);
        assert_eq!(guard.check(start), Verdict::Reject);
        // 100 ms later five requests' worth has refilled, not more.
        let later = start + Duration::from_millis(100);
        let verdicts = run(&mut guard, later, 6);
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Allow).count(), 5);
        // A quiet second refills the burst up to its cap only.
        let quiet = later + Duration::from_secs(60);
        assert_eq!(
            run(&mut guard, quiet, 101)
                .iter()
                .filter(|v| **v == Verdict::Allow)
                .count(),
            100
        );
    }

    #[test]
    fn a_client_that_ignores_the_limit_is_disconnected() {
        let start = Instant::now();
        let mut guard = FloodGuard::new(start);
        run(&mut guard, start, 100);
        let verdicts = run(&mut guard, start, MAX_REJECTED_PER_WINDOW as usize + 1);
        assert_eq!(verdicts.last(), Some(&Verdict::Disconnect));
        assert!(
            verdicts[..verdicts.len() - 1]
                .iter()
                .all(|v| *v == Verdict::Reject)
        );
    }

    #[test]
    fn staying_far_over_the_rate_disconnects_but_an_occasional_excess_does_not() {
        let start = Instant::now();
        // One request every 5 ms is four times the sustained rate: 150 refusals a second.
        let mut guard = FloodGuard::new(start);
        let verdicts: Vec<Verdict> = (0..3000u64)
            .map(|step| guard.check(start + Duration::from_millis(5 * step)))
            .collect();
        assert!(verdicts.contains(&Verdict::Disconnect));
        // A burst of 150 once a minute: 50 refusals each time, never disconnected.
        let mut guard = FloodGuard::new(start);
        for minute in 0..10u64 {
            let now = start + Duration::from_secs(60 * minute);
            assert!(!run(&mut guard, now, 150).contains(&Verdict::Disconnect));
        }
    }
}
