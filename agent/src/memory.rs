//! Giving freed memory back to the system. glibc keeps what a desktop session freed (capture and
//! encoder buffers, tens of megabytes at 1080p) in its heaps for reuse, so an agent that served
//! one session would hold on to it for the rest of its life. When a desktop hub stops,
//! [`give_back_freed`] asks glibc to return its free pages (`malloc_trim`).
//!
//! One of the agent's four `unsafe` modules (the others map MIT-SHM, `desktop/shm.rs`, and call the
//! video encoders, `desktop/encode/x264.rs` and `vpx.rs`).
#![allow(unsafe_code)]

/// Returns glibc's free heap pages to the kernel. Costs a walk over the free lists (well under a
/// millisecond after a session); a no-op with other C libraries.
pub(crate) fn give_back_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions: it takes glibc's own arena locks and only
    // releases pages that are free, so it is sound from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
