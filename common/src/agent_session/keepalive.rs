//! One connection's timers: pings on a fixed schedule, the idle deadline that moves with every
//! message heard, and the periodic look at the machine for `agentinfo`.

use std::time::Duration;

use super::{SessionConfig, Timestamp};

/// Periodic timers never fire more often than this, so a zero interval cannot spin the driver.
const SHORTEST_PERIOD: Duration = Duration::from_millis(1);

#[derive(Debug, Clone)]
pub(crate) struct Keepalive {
    ping_every: Duration,
    idle_timeout: Duration,
    info_check_every: Duration,
    last_heard: Timestamp,
    next_ping: Timestamp,
    next_info_check: Timestamp,
}

impl Keepalive {
    /// A connection that opened at `now`: the first ping and the first re-check of the machine
    /// are one period away, and the server has been "heard" (it just authenticated us).
    pub(crate) fn new(now: Timestamp, config: &SessionConfig) -> Keepalive {
        let ping_every = config.ping_interval.max(SHORTEST_PERIOD);
        let info_check_every = config.info_check_every.max(SHORTEST_PERIOD);
        Keepalive {
            ping_every,
            idle_timeout: config.idle_timeout,
            info_check_every,
            last_heard: now,
            next_ping: now + ping_every,
            next_info_check: now + info_check_every,
        }
    }

    pub(crate) fn heard(&mut self, now: Timestamp) {
        self.last_heard = self.last_heard.max(now);
    }

    pub(crate) fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Whether nothing arrived for the whole idle timeout.
    pub(crate) fn is_silent(&self, now: Timestamp) -> bool {
        now >= self.silent_at()
    }

    /// Whether a ping is due; if so the next one is a period after `now` (a late timer delays
    /// the schedule rather than bunching pings to catch up).
    pub(crate) fn take_ping(&mut self, now: Timestamp) -> bool {
        take_due(&mut self.next_ping, self.ping_every, now)
    }

    /// Whether the machine should be looked at again; rescheduled as pings are.
    pub(crate) fn take_info_check(&mut self, now: Timestamp) -> bool {
        take_due(&mut self.next_info_check, self.info_check_every, now)
    }

    /// The earliest moment something is due.
    pub(crate) fn deadline(&self) -> Timestamp {
        self.silent_at()
            .min(self.next_ping)
            .min(self.next_info_check)
    }

    fn silent_at(&self) -> Timestamp {
        self.last_heard + self.idle_timeout
    }
}

fn take_due(next: &mut Timestamp, period: Duration, now: Timestamp) -> bool {
    if now < *next {
        return false;
    }
    *next = now + period;
    true
}
