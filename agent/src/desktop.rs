//! Remote-desktop sessions on X11 (issue 6): the screen as video or JPEG tiles, the pointer, the
//! cursor's shape, input and the clipboard, over a relay session (protocol:
//! `tether_common::relay::desktop`).
//!
//! # Design
//! ```text
//!  relay socket ⇄ session.rs (async) ──Viewer──► hub thread (one per X display + selection)
//!                   │  input.rs: XTest thread        │ xserver.rs: X connection, event thread
//!                   │  clipboard.rs: selection thread│ capture.rs + shm.rs: MIT-SHM GetImage
//!                   ▼                                │ damage.rs: 64×64 tile diff
//!               pictures, events ◄──HubOutput────────┤ encode/: H.264, VP8, JPEG; snapshot.rs: PNG
//!                                                    └ pacing.rs: windows, key frames, pressure
//! ```
//! - **Nothing changes, nothing is sent.** XDamage tells the hub that something was drawn; without
//!   it the hub does not capture at all. A capture is compared with the previous one tile by tile,
//!   and only tiles whose pixels differ count.
//! - **The latest frame wins.** Each viewer may have [`FRAME_WINDOW`] pictures unacknowledged;
//!   while its window is full it is sent nothing, and the hub captures only when some viewer can
//!   take a picture, so a slow viewer gets fewer, newer pictures instead of a queue. Video viewers
//!   that missed a picture wait for a key frame (rate-limited per encoder); sustained lag lowers
//!   the encoder's quality a step at a time.
//! - **One capture, shared encoders.** All viewers of one display on this agent share a hub: one
//!   capture, one encoder per (codec, size) in use, each viewer paced on its own (`hub.rs`).
//! - **Threads, not the runtime.** Capture and encoding run on the hub's thread; input and
//!   clipboard have their own threads and X connections. The async session only moves messages.
//! - **Direct sessions** send H.264 pictures on the peer connection's video track when the viewer
//!   negotiated one (`track.rs`); the congestion controller's estimate caps the encoder's rate.
//! - `unsafe` is confined to four modules: the MIT-SHM mapping (`shm.rs`), the x264 and libvpx
//!   calls (`encode/x264.rs`, `encode/vpx.rs`), and returning freed memory when a hub stops
//!   (`memory.rs`).
//!
//! [`FRAME_WINDOW`]: tether_common::relay::desktop::FRAME_WINDOW

mod audio;
mod capture;
mod clipboard;
#[cfg(test)]
mod clipboard_tests;
mod cursor;
mod damage;
mod displays;
mod encode;
mod frame;
mod hub;
mod input;
#[cfg(test)]
mod input_tests;
mod keymap;
mod keysyms;
mod pacing;
mod session;
mod settle;
mod shm;
mod snapshot;
#[cfg(test)]
mod stream_tests;
mod track;
mod typing;
mod xserver;

pub(crate) use hub::Hubs;
pub(crate) use session::serve;
