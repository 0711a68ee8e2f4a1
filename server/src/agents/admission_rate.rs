//! How often one device may be admitted. Each admission writes the device record (an fsync) and
//! tells every console watching its group, twice (online, then offline), so one key in a
//! reconnect loop (a rogue agent, or two machines cloned with the same identity) would be a storm
//! of writes and events. A token bucket per device: `per_minute` admissions at once, then one
//! every `60 / per_minute` seconds.

use std::collections::HashMap;
use std::sync::Mutex;

use tether_common::ids::DeviceId;
use tokio::time::{Duration, Instant};

/// Buckets untouched this long are full again, so forgetting them changes nothing.
const REFILL: Duration = Duration::from_secs(60);
/// The map is swept for full buckets when it grows past this (and then past twice what remained).
const SWEEP_FROM: usize = 1024;

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Allowed,
    /// Over the rate; `first` is true for the first refusal in a row (the one worth a log line).
    Refused {
        first: bool,
    },
}

pub(super) struct AdmissionRate {
    state: Mutex<Buckets>,
}

struct Buckets {
    by_device: HashMap<DeviceId, Bucket>,
    sweep_at: usize,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
    refusing: bool,
}

impl Default for AdmissionRate {
    fn default() -> Self {
        AdmissionRate {
            state: Mutex::new(Buckets {
                by_device: HashMap::new(),
                sweep_at: SWEEP_FROM,
            }),
        }
    }
}

impl AdmissionRate {
    pub(super) fn check(&self, device: &DeviceId, per_minute: u32) -> Verdict {
        self.check_at(device, per_minute, Instant::now())
    }

    fn check_at(&self, device: &DeviceId, per_minute: u32, now: Instant) -> Verdict {
        if per_minute == 0 {
            return Verdict::Allowed;
        }
        let capacity = f64::from(per_minute);
        // A poisoned lock still holds usable buckets (each update is a few field writes).
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.by_device.len() >= state.sweep_at {
            state
                .by_device
                .retain(|_, bucket| now.saturating_duration_since(bucket.updated) < REFILL);
            state.sweep_at = SWEEP_FROM.max(state.by_device.len() * 2);
        }
        let bucket = state
            .by_device
            .entry(device.clone())
            .or_insert_with(|| Bucket {
                tokens: capacity,
                updated: now,
                refusing: false,
            });
        let earned = now.saturating_duration_since(bucket.updated).as_secs_f64() * capacity
            / REFILL.as_secs_f64();
        bucket.tokens = (bucket.tokens + earned).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            bucket.refusing = false;
            return Verdict::Allowed;
        }
        let first = !bucket.refusing;
        bucket.refusing = true;
        Verdict::Refused { first }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_interval_per_device() {
        let rate = AdmissionRate::default();
        let (a, b) = (DeviceId::from("a"), DeviceId::from("b"));
        let start = Instant::now();
        for _ in 0..6 {
            assert_eq!(rate.check_at(&a, 6, start), Verdict::Allowed);
        }
        assert_eq!(
            rate.check_at(&a, 6, start),
            Verdict::Refused { first: true }
        );
        assert_eq!(
            rate.check_at(&a, 6, start),
            Verdict::Refused { first: false }
        );
        assert_eq!(
            rate.check_at(&b, 6, start),
            Verdict::Allowed,
            "devices are counted apart"
        );
        // 6 a minute: one more every 10 s.
        let later = start + Duration::from_secs(10);
        assert_eq!(rate.check_at(&a, 6, later), Verdict::Allowed);
        assert_eq!(
            rate.check_at(&a, 6, later),
            Verdict::Refused { first: true }
        );
    }

    #[test]
    fn zero_is_no_limit() {
        let rate = AdmissionRate::default();
        let now = Instant::now();
        assert!((0..1000).all(|_| rate.check_at(&DeviceId::from("a"), 0, now) == Verdict::Allowed));
    }

    #[test]
    fn full_buckets_are_forgotten_when_the_map_grows() {
        let rate = AdmissionRate::default();
        let start = Instant::now();
        for i in 0..SWEEP_FROM {
            rate.check_at(&DeviceId::from(format!("d{i}").as_str()), 5, start);
        }
        rate.check_at(&DeviceId::from("late"), 5, start + REFILL);
        let state = rate.state.lock().unwrap();
        assert_eq!(state.by_device.len(), 1);
    }
}
