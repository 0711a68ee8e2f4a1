//! Failed-login limits over a sliding window: per source network, per account and source, and a
//! growing delay per account.
//!
//! As MeshCentral does (`maxInvalidLogin`), sources are aggregated: an IPv4 address counts for its
//! /24 and an IPv6 address for its /64, since one machine usually holds a whole /64.
//!
//! - **Source** (hard): a network that failed `login_limit_per_ip` times in the window is refused.
//! - **Account and source** (hard): one network may fail `login_limit_per_account` times on one
//!   account, then it is refused for that account.
//! - **Account** (soft): once an account has failed `login_limit_per_account` times in the window
//!   from anywhere, every further attempt on it waits first, 1 s doubling per extra failure up to
//!   [`MAX_ACCOUNT_DELAY`]. A hard per-account lock would let anyone lock anyone out (the site
//!   administrator included) with a request a minute; a delay slows a guesser spread over many
//!   networks without ever refusing the account's owner.
//!
//! An attempt is *reserved* before the password is checked ([`LoginLimiter::begin`] counts it as a
//! failure at once, under one lock) and refunded if it succeeds, so a burst of parallel guesses
//! cannot all pass the check before any of them is counted.
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
pub(crate) const MAX_TRACKED: usize = 100_000;
/// The longest wait the per-account delay imposes.
pub(crate) const MAX_ACCOUNT_DELAY: Duration = Duration::from_secs(30);

/// Which limit refused a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// The source network failed too often, on any accounts.
    Source,
    /// The source network failed too often on this account.
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

    /// Failures of `key` in the window ending at `now`.
    fn recent(&self, key: &K, now: Instant) -> usize {
        self.entries.get(key).map_or(0, |times| {
            times
                .iter()
                .filter(|t| now.saturating_duration_since(**t) < self.window)
                .count()
        })
    }

    /// Takes back the failure recorded for `key` at exactly `at` (a reservation that succeeded).
    fn refund(&mut self, key: &K, at: Instant) {
        if let Some(times) = self.entries.get_mut(key) {
            if let Some(position) = times.iter().rposition(|t| *t == at) {
                times.remove(position);
            }
            if times.is_empty() {
                self.entries.remove(key);
            }
        }
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
    /// Failures of one account from one source network.
    pairs: FailureLog<(String, Source)>,
    /// Failures of one account from anywhere: they set the account's delay, never refuse.
    accounts: FailureLog<String>,
    /// How many failures in the window start the per-account delay (0: never).
    account_delay_after: u32,
}

/// A login attempt that passed the limits and is already counted as a failure. Hand it to
/// [`LoginLimiter::succeeded`] when the password was right; dropping it leaves the failure counted.
#[derive(Debug)]
#[must_use = "an attempt that is not checked counts as a failure"]
pub struct Attempt {
    source: Source,
    account: String,
    at: Instant,
    /// Wait this long before checking the password (the per-account delay).
    pub delay: Duration,
}

/// Shared by every path that checks a password (HTTP login, password change on HTTP and
/// `/control`) and, for their source budget, by account creation. Cheap to call; one short lock.
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
        let per_account = config.login_limit_per_account;
        LoginLimiter {
            logs: Mutex::new(Logs {
                sources: FailureLog::new(config.login_limit_per_ip, window, capacity),
                pairs: FailureLog::new(per_account, window, capacity),
                // Kept a little longer than the limit so the delay can keep growing past it.
                accounts: FailureLog::new(per_account.saturating_mul(4), window, capacity),
                account_delay_after: per_account,
            }),
        }
    }

    /// Reserves one attempt at `account`'s password from `ip`: `Err` means refuse without
    /// checking the password. The attempt counts as a failure from this moment on.
    pub fn begin(&self, ip: IpAddr, account: &str) -> Result<Attempt, RetryAfter> {
        self.begin_at(ip, account, Instant::now())
    }

    /// The password was right: the reserved failure is taken back and the account's count starts
    /// over. The source's other failures stay (one right guess among many from the same network
    /// should not reset that network's budget).
    pub fn succeeded(&self, attempt: Attempt) {
        let mut logs = self.logs();
        logs.sources.refund(&attempt.source, attempt.at);
        logs.pairs.clear(&(attempt.account.clone(), attempt.source));
        logs.accounts.clear(&attempt.account);
    }

    /// Spends one unit of `ip`'s source budget with no refund: for work an anonymous caller can
    /// trigger that costs a password hash but is not a login (registration, first-run setup).
    pub fn spend_source(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        let now = Instant::now();
        let mut logs = self.logs();
        let source = Source::of(ip);
        if let Some(wait) = logs.sources.blocked(&source, now) {
            return Err(RetryAfter {
                wait,
                limit: LimitKind::Source,
            });
        }
        logs.sources.record(source, now);
        Ok(())
    }

    pub fn begin_at(&self, ip: IpAddr, account: &str, now: Instant) -> Result<Attempt, RetryAfter> {
        let mut logs = self.logs();
        let source = Source::of(ip);
        let account = account_key(account);
        if let Some(wait) = logs.sources.blocked(&source, now) {
            return Err(RetryAfter {
                wait,
                limit: LimitKind::Source,
            });
        }
        let pair = (account.clone(), source);
        if let Some(wait) = logs.pairs.blocked(&pair, now) {
            return Err(RetryAfter {
                wait,
                limit: LimitKind::Account,
            });
        }
        let delay = account_delay(
            logs.accounts.recent(&account, now),
            logs.account_delay_after,
        );
        logs.sources.record(source, now);
        logs.pairs.record(pair, now);
        logs.accounts.record(account.clone(), now);
        Ok(Attempt {
            source,
            account,
            at: now,
            delay,
        })
    }

    fn logs(&self) -> std::sync::MutexGuard<'_, Logs> {
        // The counters stay consistent even if a holder panicked: every update is one step.
        self.logs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// 0 below the threshold; then 1 s, doubling per further failure, at most [`MAX_ACCOUNT_DELAY`].
fn account_delay(recent_failures: usize, threshold: u32) -> Duration {
    if threshold == 0 || recent_failures < threshold as usize {
        return Duration::ZERO;
    }
    let doublings = (recent_failures - threshold as usize).min(16) as u32;
    Duration::from_secs(1u64 << doublings).min(MAX_ACCOUNT_DELAY)
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

    /// A failed attempt at `now` (it must have been allowed).
    fn fail(limiter: &LoginLimiter, from: &str, account: &str, now: Instant) {
        let attempt = limiter.begin_at(ip(from), account, now);
        assert!(attempt.is_ok(), "{from} {account}: {attempt:?}");
    }

    #[test]
    fn a_source_is_refused_after_its_limit_and_let_back_when_the_window_passes() {
        let limiter = limiter(3, 100, 1000);
        let start = Instant::now();
        for n in 0..3u64 {
            fail(
                &limiter,
                "10.0.0.1",
                &format!("user{n}"),
                start + Duration::from_secs(n),
            );
        }
        let refused = limiter
            .begin_at(ip("10.0.0.200"), "someone", start + Duration::from_secs(5))
            .unwrap_err();
        assert_eq!(
            refused.limit,
            LimitKind::Source,
            "the whole /24 shares one budget"
        );
        assert_eq!(refused.wait, Duration::from_secs(595));
        assert_eq!(refused.minutes(), 10);
        assert!(
            limiter.begin_at(ip("10.0.1.1"), "someone", start).is_ok(),
            "another /24 is not affected"
        );
        assert!(
            limiter
                .begin_at(ip("10.0.0.1"), "someone", start + Duration::from_secs(600))
                .is_ok()
        );
    }

    #[test]
    fn a_reservation_counts_before_the_password_is_checked() {
        // The race the review found: every request of a parallel burst passed `check` before any
        // recorded its failure. Reservations are counted at once, so the fourth is refused while
        // the first three are still "checking".
        let limiter = limiter(3, 100, 1000);
        let now = Instant::now();
        let held: Vec<Attempt> = (0..3)
            .map(|n| {
                limiter
                    .begin_at(ip("10.0.0.1"), &format!("u{n}"), now)
                    .unwrap()
            })
            .collect();
        assert!(limiter.begin_at(ip("10.0.0.1"), "u9", now).is_err());
        // One of them succeeds: its reservation is refunded and the next guess may go ahead.
        let mut held = held.into_iter();
        limiter.succeeded(held.next().unwrap());
        assert!(limiter.begin_at(ip("10.0.0.1"), "u9", now).is_ok());
    }

    #[test]
    fn ipv6_sources_are_grouped_by_64() {
        let limiter = limiter(1, 100, 1000);
        let now = Instant::now();
        fail(&limiter, "2001:db8:1:2::1", "a", now);
        assert!(
            limiter
                .begin_at(ip("2001:db8:1:2:ffff::9"), "b", now)
                .is_err()
        );
        assert!(limiter.begin_at(ip("2001:db8:1:3::1"), "b", now).is_ok());
    }

    #[test]
    fn ipv4_mapped_ipv6_counts_as_ipv4() {
        let limiter = limiter(1, 100, 1000);
        let now = Instant::now();
        fail(&limiter, "::ffff:192.0.2.7", "a", now);
        assert!(limiter.begin_at(ip("192.0.2.99"), "b", now).is_err());
    }

    #[test]
    fn one_network_is_refused_for_an_account_it_keeps_failing_on() {
        let limiter = limiter(100, 2, 1000);
        let now = Instant::now();
        fail(&limiter, "192.0.2.1", "Admin", now);
        fail(&limiter, "192.0.2.2", "admin", now);
        let refused = limiter.begin_at(ip("192.0.2.3"), "ADMIN", now).unwrap_err();
        assert_eq!(refused.limit, LimitKind::Account);
        assert!(limiter.begin_at(ip("192.0.2.3"), "other", now).is_ok());
    }

    #[test]
    fn an_account_under_attack_is_delayed_never_locked() {
        // Finding 10: failures from anywhere used to lock the account for everyone. Now another
        // network still gets in, after a delay that grows with the failures.
        let limiter = limiter(100, 2, 1000);
        let now = Instant::now();
        fail(&limiter, "192.0.2.1", "admin", now);
        fail(&limiter, "198.51.100.1", "admin", now);
        let first = limiter.begin_at(ip("203.0.113.1"), "admin", now).unwrap();
        assert_eq!(first.delay, Duration::from_secs(1));
        let second = limiter.begin_at(ip("203.0.114.1"), "admin", now).unwrap();
        assert_eq!(second.delay, Duration::from_secs(2));
        for n in 0..20 {
            let _ = limiter.begin_at(ip(&format!("10.{n}.0.1")), "admin", now);
        }
        let owner = limiter.begin_at(ip("203.0.115.1"), "admin", now).unwrap();
        assert_eq!(owner.delay, MAX_ACCOUNT_DELAY, "the delay is capped");
        limiter.succeeded(owner);
        let after = limiter.begin_at(ip("203.0.115.1"), "admin", now).unwrap();
        assert_eq!(
            after.delay,
            Duration::ZERO,
            "a success starts the account over"
        );
    }

    #[test]
    fn a_sliding_window_counts_only_recent_failures() {
        let limiter = limiter(2, 100, 1000);
        let start = Instant::now();
        fail(&limiter, "10.0.0.1", "a", start);
        fail(&limiter, "10.0.0.1", "a", start + Duration::from_secs(400));
        assert!(
            limiter
                .begin_at(ip("10.0.0.1"), "a", start + Duration::from_secs(500))
                .is_err()
        );
        let later = start + Duration::from_secs(601);
        fail(&limiter, "10.0.0.1", "a", later);
        let refused = limiter.begin_at(ip("10.0.0.1"), "a", later).unwrap_err();
        assert_eq!(refused.wait, Duration::from_secs(399));
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limiter = limiter(0, 0, 1000);
        let now = Instant::now();
        for _ in 0..50 {
            let attempt = limiter.begin_at(ip("10.0.0.1"), "a", now).unwrap();
            assert_eq!(attempt.delay, Duration::ZERO);
        }
        assert_eq!(limiter.logs().sources.len(), 0);
    }

    #[test]
    fn spending_the_source_budget_is_not_refunded() {
        let limiter = limiter(2, 100, 1000);
        assert!(limiter.spend_source(ip("10.0.0.1")).is_ok());
        assert!(limiter.spend_source(ip("10.0.0.2")).is_ok());
        assert_eq!(
            limiter.spend_source(ip("10.0.0.3")).unwrap_err().limit,
            LimitKind::Source
        );
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
            let _ = limiter.begin_at(
                source(n),
                &format!("name{n}"),
                now + Duration::from_millis(u64::from(n)),
            );
        }
        let logs = limiter.logs();
        assert!(logs.sources.len() <= 1000, "{}", logs.sources.len());
        assert!(logs.accounts.len() <= 1000, "{}", logs.accounts.len());
        assert!(logs.pairs.len() <= 1000, "{}", logs.pairs.len());
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
