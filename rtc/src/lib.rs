//! Direct paths for relay sessions (issue 13): a WebRTC data channel between the viewer and the
//! agent that a relay session moves onto once it is open.
//!
//! - `core.rs`: [`PeerCore`], the sans-IO peer: str0m, our one data channel and the track's
//!   driver half, with datagrams and time as inputs (tests drive it on a virtual clock);
//! - `peer.rs`: [`DirectPeer`], the core driven over real UDP sockets by a tokio task;
//! - `splice.rs`: [`splice`], which puts a relay session's frames on the data channel once it is
//!   open (signalling and `PathSwitch` beside the session's own frames);
//! - `media.rs`: the desktop's H.264 video track beside the channel ([`VideoTrack`]);
//! - `voice.rs`: a call's Opus sound, on a peer of its own without a channel ([`VoiceTrack`]);
//! - `outbox.rs`: the splice's sinks, each written by a task of its own so that neither
//!   direction of a session waits for the other;
//! - `addrs.rs`: which local addresses become host candidates;
//! - `gather.rs`: server-reflexive candidates from the ticket's STUN servers.

// Kept here, not in the workspace [lints], because they must not reach the integration tests
// (see CONTRIBUTING.md, "Lints").
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod addrs;
mod core;
mod gather;
mod media;
mod outbox;
mod peer;
mod splice;
mod voice;

pub use core::{CoreOutput, LocalCandidate, PeerCore};
pub use media::{TrackEvent, VideoTrack};
pub use peer::{DirectPeer, Gathering, PeerError, PeerEvent, PeerSender, Role};
pub use splice::{
    PathIdentity, PathStatus, SessionSocket, SpliceConfig, splice, splice_with_video,
};
pub use voice::{VoiceSender, VoiceTrack};
