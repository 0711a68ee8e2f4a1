//! The wall clock, read in one place. Named `clock`, not `time`, so it never shadows the `time`
//! crate. Logic that depends on the time takes `now` as a parameter (see `relay/pending.rs`,
//! `auth/ratelimit.rs`); only the edges that start such work call these.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in seconds (as records and tokens store it).
pub fn now_secs() -> i64 {
    now_millis() / 1000
}

/// Unix time in milliseconds (as audit events store it). A clock set before 1970 reads as 0.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
