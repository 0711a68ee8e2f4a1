//! How long to wait before reconnecting: exponential from one second, capped at a minute, with
//! jitter so that a fleet cut off together (server restart) does not come back in one wave.

use std::time::Duration;

pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// The wait after `failures` consecutive failed attempts (0 after a connection that worked).
/// `jitter` is uniform in [0, 1): the result lies in [d/2, d) for d = min(FIRST·2^failures, CAP)
/// ("equal jitter": never less than half the nominal wait, never above the cap).
pub fn reconnect_delay(failures: u32, jitter: f64) -> Duration {
    let nominal = BACKOFF_FIRST
        .saturating_mul(2u32.saturating_pow(failures.min(16)))
        .min(BACKOFF_CAP);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    nominal / 2 + nominal.mul_f64(jitter / 2.0)
}

/// The failure count and the jitter source.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    failures: u32,
    jitter: Jitter,
}

impl Backoff {
    pub(crate) fn new(seed: u64) -> Backoff {
        Backoff {
            failures: 0,
            jitter: Jitter(seed),
        }
    }

    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    pub(crate) fn connect_failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    /// Only a connection that lasted counts as success: a server that accepts and then drops us
    /// at once (say, a clone of this machine keeps taking our place) must not be hammered every
    /// second.
    pub(crate) fn connection_ended(&mut self, lasted_long_enough: bool) {
        self.failures = if lasted_long_enough {
            0
        } else {
            self.failures.saturating_add(1)
        };
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        reconnect_delay(self.failures, self.jitter.next_unit())
    }
}

/// SplitMix64 over the driver's seed: uniform enough to spread a fleet's reconnects, and
/// reproducible in tests. Not for anything secret.
#[derive(Debug, Clone)]
struct Jitter(u64);

impl Jitter {
    /// A value uniform in [0, 1).
    fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 53 bits, as many as an f64 holds exactly.
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_one_second_up_to_a_minute() {
        let upper: Vec<u64> = (0..9)
            .map(|n| reconnect_delay(n, 1.0).as_millis() as u64)
            .collect();
        assert_eq!(
            upper,
            [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]
        );
        assert_eq!(
            reconnect_delay(u32::MAX, 1.0),
            BACKOFF_CAP,
            "no overflow for huge counts"
        );
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        for failures in 0..10 {
            let low = reconnect_delay(failures, 0.0);
            let high = reconnect_delay(failures, 1.0);
            assert_eq!(low * 2, high, "failures={failures}");
            let mid = reconnect_delay(failures, 0.5);
            assert!(low < mid && mid < high);
            assert!(high <= BACKOFF_CAP);
        }
        assert_eq!(reconnect_delay(0, f64::NAN), Duration::from_millis(500));
        assert_eq!(reconnect_delay(0, 7.0), BACKOFF_FIRST);
    }

    #[test]
    fn jitter_is_spread_over_the_unit_interval() {
        let mut jitter = Jitter(42);
        let draws: Vec<f64> = (0..10_000).map(|_| jitter.next_unit()).collect();
        assert!(draws.iter().all(|j| (0.0..1.0).contains(j)));
        // Ten equal buckets each get roughly a tenth (a fleet spreads out rather than bunching).
        for bucket in 0..10 {
            let low = f64::from(bucket) / 10.0;
            let count = draws
                .iter()
                .filter(|j| (low..low + 0.1).contains(*j))
                .count();
            assert!((800..1200).contains(&count), "bucket {bucket}: {count}");
        }
        assert_ne!(Jitter(1).next_unit(), Jitter(2).next_unit());
    }
}
