//! Accounts and logins: password hashing, login sessions, and the rate limiter.

pub mod passwords;
pub mod ratelimit;
pub mod sessions;
