//! Percentiles of connect times, by nearest rank: the value below which `p`% of samples fall,
//! always one of the samples (no interpolation between two agents' times).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Latency {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latency {
    /// `None` when no agent got far enough to be timed.
    pub(crate) fn of(samples: &[Duration]) -> Option<Latency> {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        Some(Latency {
            p50: percentile(&sorted, 50.0)?,
            p99: percentile(&sorted, 99.0)?,
            max: *sorted.last()?,
        })
    }
}

/// Nearest-rank percentile of already sorted samples: the `ceil(p/100 · n)`-th smallest.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Milliseconds with two decimals, as the report prints them.
pub(crate) fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 100_000.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn nearest_rank_on_a_hundred_samples() {
        // 1..=100 ms shuffled: p50 is the 50th, p99 the 99th.
        let mut values: Vec<u64> = (1..=100).collect();
        values.reverse();
        values.swap(3, 70);
        let latency = Latency::of(&ms(&values)).unwrap();
        assert_eq!(latency.p50, Duration::from_millis(50));
        assert_eq!(latency.p99, Duration::from_millis(99));
        assert_eq!(latency.max, Duration::from_millis(100));
    }

    #[test]
    fn small_samples_pick_real_values() {
        let one = Latency::of(&ms(&[7])).unwrap();
        assert_eq!(
            (one.p50, one.p99, one.max),
            (ms(&[7])[0], ms(&[7])[0], ms(&[7])[0])
        );
        let sorted = ms(&[1, 2, 3, 4]);
        assert_eq!(percentile(&sorted, 50.0), Some(Duration::from_millis(2)));
        assert_eq!(percentile(&sorted, 99.0), Some(Duration::from_millis(4)));
        assert_eq!(percentile(&sorted, 0.0), Some(Duration::from_millis(1)));
        // One slow agent in twenty is the p99.
        let mut twenty = vec![10; 19];
        twenty.push(900);
        assert_eq!(
            Latency::of(&ms(&twenty)).unwrap().p99,
            Duration::from_millis(900)
        );
    }

    #[test]
    fn nothing_to_measure() {
        assert_eq!(Latency::of(&[]), None);
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn millis_keep_two_decimals() {
        assert_eq!(millis(Duration::from_micros(12_346)), 12.35);
        assert_eq!(millis(Duration::from_secs(2)), 2000.0);
    }
}
