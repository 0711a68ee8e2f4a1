//! Failed-login limits, per source network and per account, over a sliding window.
//!
//! As MeshCentral does (`maxInvalidLogin`), sources are aggregated: an IPv4 address counts for its
//! /24 and an IPv6 address for its /64, since one machine usually holds a whole /64. Unlike
//! MeshCentral there is also a per-account limit, so a guesser spread over many networks still
//! gets only a few tries per account and window. A successful login clears the account's count.
//!
//! Everything lives in memory (a restart forgets the counts) and is bounded: each table keeps at
//! most [`MAX_TRACKED`] keys, forgetting the least recently failed ones first, so a flood of
//! distinct addresses or names cannot grow the server's memory. The logic takes `now` as an
//! argument so that tests can move time.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Config;

/// How many sources (and, separately, accounts) are tracked at most.
pub const MAX_TRACKED: usize = 100_000;

/// Which limit refused a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Source,
    Account,
}

/// A refused login: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    pub wait: Duration,
    pub limit: LimitKind,
}

impl RetryAfter {
    /// Whole seconds to wait, at least 1 (for a `Retry-After` header).
    pub fn seconds(&self) -> u64 {
        (self.wait.as_secs() + u64::from(self.wait.subsec_nanos() > 0)).max(1)
    }

    /// Whole minutes to wait, at least 1 (for people).
    pub fn minutes(&self) -> u64 {
        self.seconds().div_ceil(60)
    }
}

/// The network a login comes from, as the limiter counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4([u8; 3]),
    V6([u8; 8]),
}

impl Source {
    fn of(ip: IpAddr) -> Source {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                Source::V4([a, b, c])
            }
            IpAddr::V6(v6) => {
                let octets = v6.octets();
                let mut prefix = [0u8; 8];
                prefix.copy_from_slice(&octets[..8]);
                Source::V6(prefix)
            }
        }
    }
}

/// Recent failure times per key, oldest first, keeping no more than `limit` per key.
struct FailureLog<K> {
    limit: u32,
    window: Duration,
    capacity: usize,
    entries: HashMap<K, VecDeque<Instant>>,
}

impl<K: Eq + Hash + Clone> FailureLog<K> {
    fn new(limit: u32, window: Duration, capacity: usize) -> Self {
        FailureLog {
            limit,
            window,
            capacity,
            entries: HashMap::new(),
        }
    }

    /// `Some(wait)` when `key` has used up its failures in the window ending at `now`.
    fn blocked(&self, key: &K, now: Instant) -> Option<Duration> {
        if self.limit == 0 {
            return None;
        }
        let times = self.entries.get(key)?;
        let recent = times
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < self.window)
            .count();
        if recent < self.limit as usize {
            return None;
        }
        // The oldest of the last `limit` failures must leave the window before another try.
        let oldest_counted = times[times.len() - self.limit as usize];
        Some((oldest_counted + self.window).saturating_duration_since(now))
    }

    fn record(&mut self, key: K, now: Instant) {
        if self.limit == 0 {
            return;
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.make_room(now);
        }
        let times = self.entries.entry(key).or_default();
        times.push_back(now);
        while times.len() > self.limit as usize {
            times.pop_front();
        }
    }

    fn clear(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Drops keys whose failures have all left the window; if that frees too little, drops the
    /// tenth of the keys that failed least recently. Dropping in batches keeps a flood of new
    /// keys at amortised O(log n) per key instead of a full scan each.
    fn make_room(&mut self, now: Instant) {
        let window = self.window;
        self.entries.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.saturating_duration_since(*t) < window)
        });
        if self.entries.len() < self.capacity {
            return;
        }
        let mut last_failures: Vec<Instant> = self
            .entries
            .values()
            .filter_map(|t| t.back().copied())
            .collect();
        last_failures.sort_unstable();
        let drop_count = (self.capacity / 10).max(1);
        let cutoff = last_failures[drop_count.min(last_failures.len()) - 1];
        self.entries
            .retain(|_, times| times.back().is_some_and(|t| *t > cutoff));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

struct Logs {
    sources: FailureLog<Source>,
    accounts: FailureLog<String>,
}

/// Shared by every login path (HTTP login, password change). Cheap to call; one short lock.
pub struct LoginLimiter {
    logs: Mutex<Logs>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(&Config::default())
    }
}

impl LoginLimiter {
    /// Limits from the config; a limit of 0 turns that limit off.
    pub fn new(config: &Config) -> LoginLimiter {
        LoginLimiter::with_capacity(config, MAX_TRACKED)
    }

    fn with_capacity(config: &Config, capacity: usize) -> LoginLimiter {
        let window = Duration::from_secs(u64::from(config.login_limit_window_minutes) * 60);
        LoginLimiter {
            logs: Mutex::new(Logs {
                sources: FailureLog::new(config.login_limit_per_ip, window, capacity),
                accounts: FailureLog::new(config.login_limit_per_account, window, capacity),
            }),
        }
    }

    /// Call before checking the password: `Err` means refuse without checking it.
    pub fn check(&self, ip: IpAddr, account: &str) -> Result<(), RetryAfter> {
        self.check_at(ip, account, Instant::now())
    }

    pub fn record_failure(&self, ip: IpAddr, account: &str) {
        self.record_failure_at(ip, account, Instant::now());
    }

    /// The account's count starts over; the source's does not (one right guess among many from
    /// the same network should not reset that network's budget).
    pub fn record_success(&self, account: &str) {
        self.logs().accounts.clear(&account_key(account));
    }

    pub fn check_at(&self, ip: IpAddr, account: &str, now: Instant) -> Result<(), RetryAfter> {
        let logs = self.logs();
        if let Some(wait) = logs.sources.blocked(&Source::of(ip), now) {
            return Err(RetryAfter {
                wait,
                limit: LimitKind::Source,
            });
        }
        if let Some(wait) = logs.accounts.blocked(&account_key(account), now) {
            return Err(RetryAfter {
                wait,
                limit: LimitKind::Account,
            });
        }
        Ok(())
    }

    pub fn record_failure_at(&self, ip: IpAddr, account: &str, now: Instant) {
        let mut logs = self.logs();
        logs.sources.record(Source::of(ip), now);
        logs.accounts.record(account_key(account), now);
    }

    fn logs(&self) -> std::sync::MutexGuard<'_, Logs> {
        // The counters stay consistent even if a holder panicked: every update is one step.
        self.logs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Accounts are counted by their id (names are case-insensitive), cut to a sane length so that
/// an attacker cannot make the table hold megabyte-long keys.
fn account_key(account: &str) -> String {
    let id = account.trim().to_lowercase();
    id.chars().take(128).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_ip: u32, per_account: u32, capacity: usize) -> LoginLimiter {
        let config = Config {
            login_limit_per_ip: per_ip,
            login_limit_per_account: per_account,
            login_limit_window_minutes: 10,
            ..Config::default()
        };
        LoginLimiter::with_capacity(&config, capacity)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_source_is_refused_after_its_limit_and_let_back_when_the_window_passes() {
        let limiter = limiter(3, 100, 1000);
        let start = Instant::now();
        for n in 0..3 {
            assert!(
                limiter
                    .check_at(ip("10.0.0.1"), &format!("user{n}"), start)
                    .is_ok()
            );
            limiter.record_failure_at(
                ip("10.0.0.1"),
                &format!("user{n}"),
                start + Duration::from_secs(n),
            );
        }
        let refused = limiter
            .check_at(ip("10.0.0.200"), "someone", start + Duration::from_secs(5))
            .unwrap_err();
        assert_eq!(
            refused.limit,
            LimitKind::Source,
            "the whole /24 shares one budget"
        );
        assert_eq!(refused.wait, Duration::from_secs(595));
        assert_eq!(refused.minutes(), 10);
        assert!(
            limiter.check_at(ip("10.0.1.1"), "someone", start).is_ok(),
            "another /24 is not affected"
        );
        assert!(
            limiter
                .check_at(ip("10.0.0.1"), "someone", start + Duration::from_secs(600))
                .is_ok()
        );
    }

    #[test]
    fn ipv6_sources_are_grouped_by_64() {
        let limiter = limiter(1, 100, 1000);
        let now = Instant::now();
        limiter.record_failure_at(ip("2001:db8:1:2::1"), "a", now);
        assert!(
            limiter
                .check_at(ip("2001:db8:1:2:ffff::9"), "b", now)
                .is_err()
        );
        assert!(limiter.check_at(ip("2001:db8:1:3::1"), "b", now).is_ok());
    }

    #[test]
    fn ipv4_mapped_ipv6_counts_as_ipv4() {
        let limiter = limiter(1, 100, 1000);
        let now = Instant::now();
        limiter.record_failure_at(ip("::ffff:192.0.2.7"), "a", now);
        assert!(limiter.check_at(ip("192.0.2.99"), "b", now).is_err());
    }

    #[test]
    fn an_account_is_refused_from_any_network_and_success_clears_it() {
        let limiter = limiter(100, 2, 1000);
        let now = Instant::now();
        limiter.record_failure_at(ip("192.0.2.1"), "Admin", now);
        limiter.record_failure_at(ip("198.51.100.1"), "admin", now);
        let refused = limiter
            .check_at(ip("203.0.113.1"), "ADMIN", now)
            .unwrap_err();
        assert_eq!(refused.limit, LimitKind::Account);
        assert!(limiter.check_at(ip("203.0.113.1"), "other", now).is_ok());
        limiter.record_success("admin");
        assert!(limiter.check_at(ip("203.0.113.1"), "admin", now).is_ok());
    }

    #[test]
    fn a_sliding_window_counts_only_recent_failures() {
        let limiter = limiter(2, 100, 1000);
        let start = Instant::now();
        limiter.record_failure_at(ip("10.0.0.1"), "a", start);
        limiter.record_failure_at(ip("10.0.0.1"), "a", start + Duration::from_secs(400));
        assert!(
            limiter
                .check_at(ip("10.0.0.1"), "a", start + Duration::from_secs(500))
                .is_err()
        );
        let later = start + Duration::from_secs(601);
        assert!(
            limiter.check_at(ip("10.0.0.1"), "a", later).is_ok(),
            "the first failure has aged out"
        );
        limiter.record_failure_at(ip("10.0.0.1"), "a", later);
        let refused = limiter.check_at(ip("10.0.0.1"), "a", later).unwrap_err();
        assert_eq!(refused.wait, Duration::from_secs(399));
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limiter = limiter(0, 0, 1000);
        let now = Instant::now();
        for _ in 0..50 {
            limiter.record_failure_at(ip("10.0.0.1"), "a", now);
        }
        assert!(limiter.check_at(ip("10.0.0.1"), "a", now).is_ok());
        assert_eq!(limiter.logs().sources.len(), 0);
    }

    #[test]
    fn a_flood_of_distinct_sources_stays_within_capacity() {
        let limiter = limiter(5, 5, 1000);
        let now = Instant::now();
        let source = |n: u32| {
            let [_, a, b, c] = n.to_be_bytes();
            IpAddr::from([a + 1, b, c, 1])
        };
        for n in 0..20_000u32 {
            limiter.record_failure_at(
                source(n),
                &format!("name{n}"),
                now + Duration::from_millis(u64::from(n)),
            );
        }
        let logs = limiter.logs();
        assert!(logs.sources.len() <= 1000, "{}", logs.sources.len());
        assert!(logs.accounts.len() <= 1000, "{}", logs.accounts.len());
        assert!(
            logs.sources
                .entries
                .contains_key(&Source::of(source(19_999))),
            "the newest are kept"
        );
        assert!(
            !logs.sources.entries.contains_key(&Source::of(source(0))),
            "the oldest were forgotten"
        );
    }

    #[test]
    fn retry_after_rounds_up() {
        let r = RetryAfter {
            wait: Duration::from_millis(1500),
            limit: LimitKind::Source,
        };
        assert_eq!((r.seconds(), r.minutes()), (2, 1));
        let r = RetryAfter {
            wait: Duration::ZERO,
            limit: LimitKind::Source,
        };
        assert_eq!(r.seconds(), 1);
    }
}
