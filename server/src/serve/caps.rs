//! Caps on simultaneous connections: in total, and per source. A source is an IPv4 address or an
//! IPv6 /64 (one machine usually holds a whole /64, so counting single IPv6 addresses would cap
//! nothing). Each admitted connection holds a [`CapPermit`]; dropping it gives the place back.
//!
//! Used by the listeners (every TCP connection) and by the agent endpoint (held agents).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

/// The maxima to enforce; 0 means no cap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    pub total: u32,
    pub per_source: u32,
}

/// Why a connection was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CapRefused {
    #[error("{max} connections are open already")]
    Total { max: u32 },
    #[error("{max} connections from this address are open already")]
    PerSource { max: u32 },
}

/// How many connections are open, in total and per source.
#[derive(Default, Clone)]
pub(crate) struct ConnectionCounts {
    counts: Arc<Mutex<Counts>>,
}

#[derive(Default)]
struct Counts {
    total: u32,
    by_source: HashMap<IpAddr, u32>,
}

/// One admitted connection; the count goes down when this is dropped.
pub(crate) struct CapPermit {
    counts: Arc<Mutex<Counts>>,
    source: IpAddr,
}

impl ConnectionCounts {
    /// Counts a connection from `ip` in, unless that would exceed `caps`.
    pub(crate) fn try_acquire(&self, ip: IpAddr, caps: Caps) -> Result<CapPermit, CapRefused> {
        let source = source_of(ip);
        let mut counts = lock(&self.counts);
        if caps.total != 0 && counts.total >= caps.total {
            return Err(CapRefused::Total { max: caps.total });
        }
        let from_source = counts.by_source.get(&source).copied().unwrap_or(0);
        if caps.per_source != 0 && from_source >= caps.per_source {
            return Err(CapRefused::PerSource {
                max: caps.per_source,
            });
        }
        counts.total += 1;
        counts.by_source.insert(source, from_source + 1);
        Ok(CapPermit {
            counts: self.counts.clone(),
            source,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    pub(crate) fn total(&self) -> u32 {
        lock(&self.counts).total
    }
}

impl Drop for CapPermit {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.by_source.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                counts.by_source.remove(&self.source);
            }
        }
    }
}

fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    // Every update is a few integer changes that cannot panic half-way; a poisoned lock still
    // holds consistent counts.
    counts
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The key a connection from `ip` is counted under: an IPv4 address (also when mapped into
/// IPv6), or an IPv6 address's /64.
pub(crate) fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const CAPS: Caps = Caps {
        total: 3,
        per_source: 2,
    };

    #[test]
    fn a_source_gets_its_share_and_a_dropped_permit_gives_it_back() {
        let counts = ConnectionCounts::default();
        let first = counts.try_acquire(ip("10.0.0.1"), CAPS).unwrap();
        let _second = counts.try_acquire(ip("10.0.0.1"), CAPS).unwrap();
        assert_eq!(
            counts.try_acquire(ip("10.0.0.1"), CAPS).err(),
            Some(CapRefused::PerSource { max: 2 })
        );
        let _other = counts.try_acquire(ip("10.0.0.2"), CAPS).unwrap();
        assert_eq!(
            counts.try_acquire(ip("10.0.0.3"), CAPS).err(),
            Some(CapRefused::Total { max: 3 })
        );
        drop(first);
        assert_eq!(counts.total(), 2);
        assert!(counts.try_acquire(ip("10.0.0.1"), CAPS).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let counts = ConnectionCounts::default();
        let caps = Caps {
            total: 0,
            per_source: 1,
        };
        let _a = counts.try_acquire(ip("2001:db8:1:2::1"), caps).unwrap();
        assert!(
            counts.try_acquire(ip("2001:db8:1:2::ffff"), caps).is_err(),
            "same /64"
        );
        assert!(counts.try_acquire(ip("2001:db8:1:3::1"), caps).is_ok());
        let _b = counts.try_acquire(ip("192.0.2.7"), caps).unwrap();
        assert!(counts.try_acquire(ip("::ffff:192.0.2.7"), caps).is_err());
    }

    #[test]
    fn zero_means_no_cap() {
        let counts = ConnectionCounts::default();
        let caps = Caps {
            total: 0,
            per_source: 0,
        };
        let permits: Vec<_> = (0..100)
            .map(|_| counts.try_acquire(ip("127.0.0.1"), caps).unwrap())
            .collect();
        assert_eq!(counts.total(), 100);
        drop(permits);
        assert_eq!(counts.total(), 0);
    }
}
