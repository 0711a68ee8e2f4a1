//! Where argon2 runs: on a few threads of its own, never more hashes at a time than cores.
//!
//! Each hash holds 19 MiB and a core for ~50 ms. Unbounded, a burst of anonymous logins fills
//! tokio's blocking pool (512 threads, so ~10 GiB) and every store call queues behind it. So the
//! hashes run on one thread per core, started once; a few callers per thread may wait their turn,
//! and anyone beyond that is told at once that the server is busy ([`Busy`], an HTTP 503 with
//! `Retry-After`) rather than queued without bound.
//!
//! Threads of their own rather than tokio's blocking pool with a semaphore: the allocator keeps a
//! freed 19 MiB block in the arena of the thread that used it, and the blocking pool hands the work
//! to ever new threads, so memory grew by 19 MiB per thread that ever hashed (177 MiB after a
//! burst, measured); with a fixed set of threads it stays at one block per core.
//!
//! The pool is process-wide on purpose: it bounds what the process can spend (its cores and
//! memory), which every server in the process shares.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex, mpsc};

use tokio::sync::oneshot;

use super::passwords;

/// Callers allowed to wait per hashing thread before new ones are turned away: at ~50 ms a hash,
/// the last in line waits under two seconds. Waiting costs only a small task, never a thread.
const WAITERS_PER_THREAD: usize = 32;

/// Too many password checks are under way; try again in a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server is busy checking passwords; try again in a moment")]
pub struct Busy;

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    jobs: Mutex<mpsc::Sender<Job>>,
    /// Jobs queued or running.
    admitted: AtomicUsize,
    max_admitted: usize,
}

static POOL: LazyLock<Pool> = LazyLock::new(|| {
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let (sender, receiver) = mpsc::channel::<Job>();
    let receiver = std::sync::Arc::new(Mutex::new(receiver));
    for n in 0..threads {
        let receiver = receiver.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("argon2-{n}"))
            .spawn(move || {
                loop {
                    // The lock is held only while taking a job, not while running it.
                    let job = match receiver.lock() {
                        Ok(receiver) => receiver.recv(),
                        Err(poisoned) => poisoned.into_inner().recv(),
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a password-hashing thread: {e}");
        }
    }
    Pool {
        jobs: Mutex::new(sender),
        admitted: AtomicUsize::new(0),
        max_admitted: threads * (1 + WAITERS_PER_THREAD),
    }
});

/// Counts a job in and out of the pool.
struct Admission;

impl Admission {
    fn enter() -> Result<Admission, Busy> {
        let before = POOL.admitted.fetch_add(1, Ordering::AcqRel);
        if before >= POOL.max_admitted {
            POOL.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        Ok(Admission)
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        POOL.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn gated<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
    let admission = Admission::enter()?;
    let (done, result) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _admission = admission;
        // The caller may have gone (a dropped request); its answer is simply not wanted.
        let _ = done.send(work());
    });
    let sent = match POOL.jobs.lock() {
        Ok(jobs) => jobs.send(job),
        Err(poisoned) => poisoned.into_inner().send(job),
    };
    sent.map_err(|_| Busy)?;
    result.await.map_err(|_| Busy)
}

/// A new PHC string for `password`.
pub(crate) async fn hash(password: &str) -> Result<String, Busy> {
    let password = password.to_owned();
    gated(move || passwords::hash_password(&password)).await
}

/// Whether `password` matches `phc`; with no hash (unknown account) it spends the same work and
/// answers false, so timing does not tell which names exist.
pub(crate) async fn verify(password: &str, phc: Option<&str>) -> Result<bool, Busy> {
    let password = password.to_owned();
    let phc = phc.map(str::to_owned);
    gated(move || match phc {
        Some(phc) => passwords::verify_password(&password, &phc),
        None => passwords::verify_nonexistent(&password),
    })
    .await
}
