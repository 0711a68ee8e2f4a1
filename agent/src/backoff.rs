//! How long to wait before reconnecting: exponential from one second, capped at a minute, with
//! jitter so that a fleet cut off together (server restart) does not come back in one wave.

use std::time::Duration;

pub const FIRST: Duration = Duration::from_secs(1);
pub const CAP: Duration = Duration::from_secs(60);

/// The wait after `failures` consecutive failed attempts (0 after a connection that worked).
/// `jitter` is uniform in [0, 1): the result lies in [d/2, d) for d = min(FIRST·2^failures, CAP)
/// ("equal jitter": never less than half the nominal wait, never above the cap).
pub fn reconnect_delay(failures: u32, jitter: f64) -> Duration {
    let nominal = FIRST
        .saturating_mul(2u32.saturating_pow(failures.min(16)))
        .min(CAP);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    nominal / 2 + nominal.mul_f64(jitter / 2.0)
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
            CAP,
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
            assert!(high <= CAP);
        }
        assert_eq!(reconnect_delay(0, f64::NAN), Duration::from_millis(500));
        assert_eq!(reconnect_delay(0, 7.0), FIRST);
    }
}
