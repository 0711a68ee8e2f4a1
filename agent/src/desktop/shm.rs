//! One of the agent's four `unsafe` modules (with `memory.rs`, `encode/x264.rs` and
//! `encode/vpx.rs`): mapping the shared-memory segments that MIT-SHM screen captures are written
//! into.
//!
//! Why MIT-SHM 1.2's CreateSegment (the X server makes the segment and passes us a file
//! descriptor, which we map with memmap2) rather than SysV `shmget`/`shmat`: the segment's
//! access is the descriptor itself, so there are no IPC permissions to get right when the agent
//! and the X server run as different users (a root agent's 0600 segment is unreadable to a user's
//! X server, and 0666 would expose the screen to every local user), nothing can leak in the
//! system's SysV table if the agent dies (the mapping goes with the process), and there is no
//! `IPC_RMID` dance. Servers without SHM 1.2 (or remote displays) fall back to plain GetImage.
#![allow(unsafe_code)]

use std::os::fd::OwnedFd;

use memmap2::{MmapMut, MmapOptions};

/// A mapping of an X server's shared-memory segment (a captured frame's pixels: `frame.rs`).
pub(super) struct SharedSegment {
    map: MmapMut,
}

impl SharedSegment {
    /// Maps `len` bytes of the segment behind `fd` (from ShmCreateSegment).
    pub(super) fn map(fd: &OwnedFd, len: usize) -> std::io::Result<SharedSegment> {
        // SAFETY: the descriptor names a shared-memory object of at least `len` bytes that the X
        // server created for this connection alone (CreateSegment with that size); nothing else in
        // this process maps it, and no file can be truncated under us (it is not a file on disk
        // that another program could shrink). The X server writes it only while it serves a
        // ShmGetImage into it, which the capturer waits for (`capture.rs`); we only read it.
        let map = unsafe { MmapOptions::new().len(len).map_mut(fd)? };
        Ok(SharedSegment { map })
    }

    /// The segment's bytes. Call only after the reply to a ShmGetImage into this segment has
    /// arrived and before the next such request: the X server writes the segment only while it
    /// serves that request, so in between the bytes are stable.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Writable only so that a frame's pixels are one type wherever they are; the agent never
    /// writes a captured frame.
    pub(super) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }
}
