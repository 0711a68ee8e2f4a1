//! The multiplexer: one hub per (X display, display selection) on this agent, shared by every
//! viewer of it (as MeshCentral's desktop multiplexor is). A hub is one thread with one X
//! connection, one capture and one video encoder per (codec, picture size) in use; each viewer
//! keeps its own pacing (`pacing.rs`). The hub starts with its first viewer and stops when the
//! last one leaves.
//!
//! - `hub.rs` (this file): the registry ([`Hubs`]), a viewer's handle ([`Viewer`]) and what a hub
//!   sends a viewer ([`HubOutput`]);
//! - `hub/run.rs`: the hub thread: X events, capture when something changed and someone can take
//!   a picture, snapshots, displays, pointer and cursor;
//! - `hub/video.rs`: a video encoder shared by the viewers of one codec and size, key frames and
//!   back-pressure;
//! - `hub/tiles.rs`: JPEG viewers, each sent the union of the tiles changed since its last picture.

mod run;
mod tiles;
mod video;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use tether_common::relay::MAX_RELAY_FRAME;
use tether_common::relay::desktop::{
    BinaryKind, Codec, DisplayInfo, DisplaySelection, EffectiveSettings, FLAG_KEY, PictureHeader,
    split_payload,
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::frame::Rect;
use super::xserver::XEvent;

pub(super) type ViewerId = u64;

/// What a hub sends one viewer's session.
#[derive(Debug)]
pub(crate) enum HubOutput {
    Displays {
        displays: Vec<DisplayInfo>,
        selected: DisplaySelection,
    },
    /// The stream's parameters changed; a key picture follows.
    Stream(StreamInfo),
    /// One picture, as relay messages (several when it was split), and what it cost.
    Picture {
        messages: Vec<Vec<u8>>,
        timing: PictureTiming,
    },
    /// A cursor-shape frame.
    Cursor(Vec<u8>),
    /// The pointer moved; screen pixels.
    Pointer {
        x: i32,
        y: i32,
    },
    /// A PNG snapshot, as relay messages.
    Snapshot(Vec<Vec<u8>>),
    Notice(String),
    /// The hub cannot go on (no X display, the X connection broke).
    Failed(String),
}

/// What the agent spent on one picture, for the viewer's stats overlay (`pong`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PictureTiming {
    pub capture_us: u32,
    pub encode_us: u32,
}

/// A viewer's stream, as the `stream` event describes it, plus the screen rectangle it shows (to
/// map pointer positions between picture and screen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamInfo {
    pub codec: Codec,
    pub codec_string: String,
    pub width: u32,
    pub height: u32,
    pub quality: u8,
    pub fps: u8,
    pub source: Rect,
}

/// What a picture is, for its header.
#[derive(Debug, Clone, Copy)]
pub(super) struct PictureMeta {
    pub kind: BinaryKind,
    pub key: bool,
    pub seq: u32,
    pub captured_ms: u32,
    pub encode_us: u32,
    pub size: (u32, u32),
}

/// One picture as relay messages: the header, then the payload, split when it is too big.
pub(super) fn picture_messages(meta: PictureMeta, payload: &[u8]) -> Vec<Vec<u8>> {
    let write_header = |flags: u8, out: &mut Vec<u8>| {
        PictureHeader {
            kind: meta.kind,
            flags,
            seq: meta.seq,
            captured_ms: meta.captured_ms,
            encode_us: meta.encode_us,
            width: meta.size.0.min(u32::from(u16::MAX)) as u16,
            height: meta.size.1.min(u32::from(u16::MAX)) as u16,
        }
        .write(out)
    };
    let flags = if meta.key { FLAG_KEY } else { 0 };
    split_payload(
        payload,
        PictureHeader::LEN,
        MAX_RELAY_FRAME,
        write_header,
        flags,
    )
}

enum HubMessage {
    Join {
        id: ViewerId,
        settings: EffectiveSettings,
        output: UnboundedSender<HubOutput>,
        joined: Instant,
    },
    Leave {
        id: ViewerId,
    },
    Settings {
        id: ViewerId,
        settings: EffectiveSettings,
    },
    Ack {
        id: ViewerId,
        seq: u32,
    },
    Keyframe {
        id: ViewerId,
    },
    /// What the viewer's path takes (its congestion controller's estimate), bits per second.
    Bitrate {
        id: ViewerId,
        bps: u64,
    },
    Snapshot {
        id: ViewerId,
    },
    Stop,
    X(XEvent),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct HubKey {
    display: String,
    selection: DisplaySelection,
}

struct Entry {
    commands: mpsc::Sender<HubMessage>,
    viewers: usize,
    generation: u64,
}

/// The hubs of this agent (one registry per agent process, cloned into every session).
#[derive(Clone, Default)]
pub(crate) struct Hubs {
    entries: Arc<Mutex<HashMap<HubKey, Entry>>>,
    next_id: Arc<AtomicU64>,
}

impl Hubs {
    /// Joins the hub for `display` and `selection`, starting it if needed. Its first messages to
    /// the viewer are the displays and the cursor; pictures follow.
    pub(crate) fn join(
        &self,
        display: &str,
        selection: DisplaySelection,
        settings: EffectiveSettings,
    ) -> Viewer {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let key = HubKey {
            display: display.to_owned(),
            selection,
        };
        let (output, receiver) = unbounded_channel();
        let join = HubMessage::Join {
            id,
            settings,
            output,
            joined: Instant::now(),
        };
        let mut entries = self.lock();
        let join = match entries.get_mut(&key) {
            Some(entry) => match entry.commands.send(join) {
                Ok(()) => {
                    entry.viewers += 1;
                    return Viewer {
                        hubs: self.clone(),
                        key,
                        generation: entry.generation,
                        id,
                        commands: entry.commands.clone(),
                        output: receiver,
                    };
                }
                // That hub has ended (its X connection failed): start another.
                Err(mpsc::SendError(join)) => join,
            },
            None => join,
        };
        let generation = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (commands, inbox) = mpsc::channel();
        let _ = commands.send(join);
        run::spawn(display.to_owned(), selection, commands.clone(), inbox);
        entries.insert(
            key.clone(),
            Entry {
                commands: commands.clone(),
                viewers: 1,
                generation,
            },
        );
        Viewer {
            hubs: self.clone(),
            key,
            generation,
            id,
            commands,
            output: receiver,
        }
    }

    /// Whether a hub runs for `display` and `selection` (for tests).
    #[cfg(test)]
    pub(crate) fn is_running(&self, display: &str, selection: DisplaySelection) -> bool {
        let key = HubKey {
            display: display.to_owned(),
            selection,
        };
        self.lock().contains_key(&key)
    }

    fn leave(&self, viewer: &Viewer) {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(&viewer.key) else {
            return;
        };
        if entry.generation != viewer.generation {
            return;
        }
        let _ = entry.commands.send(HubMessage::Leave { id: viewer.id });
        entry.viewers = entry.viewers.saturating_sub(1);
        if entry.viewers == 0 {
            let _ = entry.commands.send(HubMessage::Stop);
            entries.remove(&viewer.key);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<HubKey, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One viewer's place in a hub; leaving the hub when dropped.
pub(crate) struct Viewer {
    hubs: Hubs,
    key: HubKey,
    generation: u64,
    id: ViewerId,
    commands: mpsc::Sender<HubMessage>,
    /// What the hub sends this viewer, in order.
    pub output: UnboundedReceiver<HubOutput>,
}

impl Viewer {
    pub(crate) fn ack(&self, seq: u32) {
        self.send(HubMessage::Ack { id: self.id, seq });
    }

    pub(crate) fn keyframe(&self) {
        self.send(HubMessage::Keyframe { id: self.id });
    }

    /// Caps the rate of the encoder this viewer watches through (the direct path's estimate).
    pub(crate) fn bitrate(&self, bps: u64) {
        self.send(HubMessage::Bitrate { id: self.id, bps });
    }

    pub(crate) fn settings(&self, settings: EffectiveSettings) {
        self.send(HubMessage::Settings {
            id: self.id,
            settings,
        });
    }

    pub(crate) fn snapshot(&self) {
        self.send(HubMessage::Snapshot { id: self.id });
    }

    fn send(&self, message: HubMessage) {
        // A hub that has ended has already told this viewer why (HubOutput::Failed).
        let _ = self.commands.send(message);
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.hubs.clone().leave(self);
    }
}
