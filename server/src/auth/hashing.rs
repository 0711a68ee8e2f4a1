//! Where argon2 runs: off the async worker threads, and never more than a few at a time.
//!
//! Each hash holds 19 MiB and a core for ~50 ms. Unbounded, a burst of anonymous logins fills
//! tokio's blocking pool (512 threads, so ~10 GiB) and every store call queues behind it. So a
//! semaphore lets at most one hash per core run; a few callers per permit may wait their turn, and
//! anyone beyond that is told at once that the server is busy ([`Busy`], an HTTP 503 with
//! `Retry-After`) rather than queued without bound.
//!
//! The gate is process-wide on purpose: it bounds what the process can spend (its cores and memory),
//! which every server in the process shares, like the blocking pool it protects.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

use super::passwords;

/// Callers allowed to wait per permit before new ones are turned away.
const WAITERS_PER_PERMIT: usize = 4;

/// Too many password checks are under way; try again in a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server is busy checking passwords; try again in a moment")]
pub struct Busy;

struct Gate {
    permits: Semaphore,
    /// Callers holding or waiting for a permit.
    admitted: AtomicUsize,
    max_admitted: usize,
}

static GATE: LazyLock<Gate> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    Gate {
        permits: Semaphore::new(cores),
        admitted: AtomicUsize::new(0),
        max_admitted: cores * (1 + WAITERS_PER_PERMIT),
    }
});

/// Counts a caller in and out of the gate.
struct Admission;

impl Admission {
    fn enter() -> Result<Admission, Busy> {
        let before = GATE.admitted.fetch_add(1, Ordering::AcqRel);
        if before >= GATE.max_admitted {
            GATE.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        Ok(Admission)
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        GATE.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn gated<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
    let _admission = Admission::enter()?;
    // The semaphore is never closed, so acquiring only fails if it were; treat that as busy.
    let _permit = GATE.permits.acquire().await.map_err(|_| Busy)?;
    tokio::task::spawn_blocking(work).await.map_err(|_| Busy)
}

/// A new PHC string for `password`.
pub async fn hash(password: &str) -> Result<String, Busy> {
    let password = password.to_owned();
    gated(move || passwords::hash_password(&password)).await
}

/// Whether `password` matches `phc`; with no hash (unknown account) it spends the same work and
/// answers false, so timing does not tell which names exist.
pub async fn verify(password: &str, phc: Option<&str>) -> Result<bool, Busy> {
    let password = password.to_owned();
    let phc = phc.map(str::to_owned);
    gated(move || match phc {
        Some(phc) => passwords::verify_password(&password, &phc),
        None => passwords::verify_nonexistent(&password),
    })
    .await
}
