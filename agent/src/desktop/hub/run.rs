//! The hub thread. It sleeps until a message comes (a viewer's request, an X event) or until a
//! deadline it set itself (a viewer's next frame time, a rate-limited key frame, the pointer
//! poll). It captures only when XDamage said something was drawn *and* some viewer can take a
//! picture now, so an idle screen, or viewers whose windows are full, cost no capture at all.

use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use tether_common::relay::desktop::{DisplayInfo, DisplaySelection, EffectiveSettings};
use tokio::sync::mpsc::UnboundedSender;
use x11rb::errors::ReplyError;
use x11rb::protocol::ErrorKind;

use super::tiles::TileViewers;
use super::video::VideoGroups;
use super::{HubMessage, HubOutput, ViewerId};
use crate::desktop::capture::Capturer;
use crate::desktop::damage::DirtyTiles;
use crate::desktop::displays::{read_displays, region_for};
use crate::desktop::pacing::Pacing;
use crate::desktop::settle;
use crate::desktop::snapshot;
use crate::desktop::xserver::{XError, XEvent, XServer};

/// How often the pointer position is read while viewers watch (moving the pointer draws
/// nothing, so damage does not tell).
const POINTER_POLL: Duration = Duration::from_millis(40);

/// Which capture a frame is: pictures carry its time, scaled copies are cached by its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CaptureStamp {
    pub at: Instant,
    pub number: u64,
    /// Microseconds the capture took (the grab and the damage comparison).
    pub took_us: u32,
}

/// One viewer as the hub sees it.
pub(super) struct ViewerState {
    pub output: UnboundedSender<HubOutput>,
    pub settings: EffectiveSettings,
    pub pacing: Pacing,
    pub joined: Instant,
    /// The stream parameters last sent (`None`: none yet).
    pub stream: Option<super::StreamInfo>,
    /// JPEG viewers: the tiles changed since this viewer's last picture (capture coordinates).
    pub tiles: DirtyTiles,
    /// What this viewer's path takes, bits per second, when its congestion controller says.
    pub bitrate: Option<u64>,
}

impl ViewerState {
    pub(super) fn send(&self, output: HubOutput) {
        // A viewer whose session ended is removed by its Leave message.
        let _ = self.output.send(output);
    }

    /// Milliseconds since this viewer joined (the pictures' `captured_ms`).
    pub(super) fn ms_since_join(&self, at: Instant) -> u32 {
        at.saturating_duration_since(self.joined)
            .as_millis()
            .min(u128::from(u32::MAX)) as u32
    }
}

pub(super) type Viewers = HashMap<ViewerId, ViewerState>;

pub(super) fn spawn(
    display: String,
    selection: DisplaySelection,
    commands: mpsc::Sender<HubMessage>,
    inbox: mpsc::Receiver<HubMessage>,
) {
    let spawned = std::thread::Builder::new()
        .name("desktop-hub".into())
        .spawn(move || {
            // Declared first, dropped last: after the hub and everything it allocated.
            let _give_back = GiveBackOnExit;
            let message = match Hub::start(&display, selection, commands) {
                Ok(mut hub) => match hub.run(&inbox) {
                    Ok(()) => return,
                    Err(e) => {
                        hub.fail(&e.to_string());
                        e.to_string()
                    }
                },
                Err(e) => e.to_string(),
            };
            tracing::warn!("desktop: {message}");
            // Tell whoever is waiting to join; the registry starts a new hub for later joiners.
            while let Ok(queued) = inbox.try_recv() {
                if let HubMessage::Join { output, .. } = queued {
                    let _ = output.send(HubOutput::Failed(message.clone()));
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("desktop: cannot start a hub thread: {e}");
    }
}

/// Returns what the hub freed to the system when its thread ends (`memory.rs`).
struct GiveBackOnExit;

impl Drop for GiveBackOnExit {
    fn drop(&mut self) {
        crate::memory::give_back_freed();
    }
}

struct Hub {
    x: XServer,
    capturer: Capturer,
    requested: DisplaySelection,
    selected: DisplaySelection,
    displays: Vec<DisplayInfo>,
    viewers: Viewers,
    video: VideoGroups,
    tiles: TileViewers,
    /// Something was drawn since the last capture (always true without XDamage).
    damaged: bool,
    /// When the damage not yet captured was first seen (`settle.rs` may wait a little after it).
    damage_since: Option<Instant>,
    /// Which capture the kept frame is.
    captured: CaptureStamp,
    cursor: Option<Vec<u8>>,
    pointer: Option<(i32, i32)>,
    next_pointer_poll: Instant,
}

impl Hub {
    fn start(
        x_display: &str,
        selection: DisplaySelection,
        commands: mpsc::Sender<HubMessage>,
    ) -> Result<Hub, XError> {
        let x = XServer::connect(x_display)?;
        let root_size = x.root_size()?;
        let displays = read_displays(&*x.conn, x.root, root_size, x.has_monitors)?;
        let (region, selected) = region_for(selection, &displays, root_size);
        let capturer = Capturer::new(&x, region);
        let cursor = x.cursor()?;
        x.spawn_events(move |event| commands.send(HubMessage::X(event)).is_ok())
            .map_err(XError::Map)?;
        tracing::info!(x_display, ?selection, ?region, "desktop: capture started");
        Ok(Hub {
            x,
            capturer,
            requested: selection,
            selected,
            displays,
            viewers: Viewers::new(),
            video: VideoGroups::default(),
            tiles: TileViewers::default(),
            damaged: true,
            damage_since: None,
            captured: CaptureStamp {
                at: Instant::now(),
                number: 0,
                took_us: 0,
            },
            cursor,
            pointer: None,
            next_pointer_poll: Instant::now(),
        })
    }

    fn run(&mut self, inbox: &mpsc::Receiver<HubMessage>) -> Result<(), XError> {
        loop {
            let now = Instant::now();
            let deadline = self.next_deadline(now);
            let message = match inbox.recv_timeout(deadline.saturating_duration_since(now)) {
                Ok(message) => Some(message),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            };
            if let Some(message) = message {
                if !self.handle(message)? {
                    return Ok(());
                }
                // Take everything already queued (acks, damage) before deciding what to send.
                while let Ok(message) = inbox.try_recv() {
                    if !self.handle(message)? {
                        return Ok(());
                    }
                }
            }
            self.tick(Instant::now())?;
        }
    }

    /// Handles one message; false when the hub should stop.
    fn handle(&mut self, message: HubMessage) -> Result<bool, XError> {
        match message {
            HubMessage::Join {
                id,
                settings,
                output,
                joined,
            } => {
                let region = self.capturer.region();
                let viewer = ViewerState {
                    output,
                    settings,
                    pacing: Pacing::new(settings.fps),
                    joined,
                    stream: None,
                    tiles: DirtyTiles::none(region.width, region.height),
                    bitrate: None,
                };
                viewer.send(HubOutput::Displays {
                    displays: self.displays.clone(),
                    selected: self.selected,
                });
                if let Some(cursor) = &self.cursor {
                    viewer.send(HubOutput::Cursor(cursor.clone()));
                }
                if let (DisplaySelection::One(id), DisplaySelection::All) =
                    (self.requested, self.selected)
                {
                    viewer.send(HubOutput::Notice(format!(
                        "there is no display {id}; showing all of them"
                    )));
                }
                self.viewers.insert(id, viewer);
            }
            HubMessage::Leave { id } => {
                self.viewers.remove(&id);
            }
            HubMessage::Settings { id, settings } => {
                if let Some(viewer) = self.viewers.get_mut(&id)
                    && viewer.settings != settings
                {
                    // A new `stream` event goes out, and a key picture must follow it.
                    viewer.settings = settings;
                    viewer.pacing.set_fps(settings.fps);
                    viewer.pacing.request_key();
                }
            }
            HubMessage::Ack { id, seq } => {
                if let Some(viewer) = self.viewers.get_mut(&id) {
                    viewer.pacing.ack(seq);
                }
            }
            HubMessage::Keyframe { id } => {
                if let Some(viewer) = self.viewers.get_mut(&id) {
                    viewer.pacing.request_key();
                }
            }
            HubMessage::Bitrate { id, bps } => {
                if let Some(viewer) = self.viewers.get_mut(&id) {
                    viewer.bitrate = Some(bps);
                }
            }
            HubMessage::Snapshot { id } => self.snapshot(id)?,
            HubMessage::Stop => return Ok(false),
            HubMessage::X(XEvent::Damage) => {
                self.damaged = true;
                self.damage_since.get_or_insert_with(Instant::now);
            }
            HubMessage::X(XEvent::ScreenChanged) => self.screen_changed()?,
            HubMessage::X(XEvent::CursorChanged) => {
                self.cursor = self.x.cursor()?;
                if let Some(cursor) = &self.cursor {
                    for viewer in self.viewers.values() {
                        viewer.send(HubOutput::Cursor(cursor.clone()));
                    }
                }
            }
            HubMessage::X(XEvent::Failed(why)) => return Err(XError::Lost(why)),
        }
        Ok(true)
    }

    /// Captures if something changed and someone can take it, then lets every encoder and JPEG
    /// viewer send what it can.
    fn tick(&mut self, now: Instant) -> Result<(), XError> {
        if now >= self.next_pointer_poll {
            self.poll_pointer()?;
            self.next_pointer_poll = now + POINTER_POLL;
        }
        if self.viewers.is_empty() {
            return Ok(());
        }
        let region = self.capturer.region();
        let wants_capture = self.capture_pending(now);
        if wants_capture
            && (self.video.any_ready(&self.viewers, region, now)
                || TileViewers::any_ready(&self.viewers, now))
        {
            self.capture(now)?;
        }
        let frame = self.capturer.frame();
        self.video
            .deliver(&mut self.viewers, frame, region, self.captured, now);
        self.tiles
            .deliver(&mut self.viewers, frame, region, self.captured, now);
        Ok(())
    }

    fn capture(&mut self, now: Instant) -> Result<(), XError> {
        // Reset first: whatever is drawn from here on raises new damage for the next capture.
        self.x.reset_damage()?;
        self.damaged = false;
        self.damage_since = None;
        let started = Instant::now();
        let dirty = match self.capturer.capture() {
            Err(XError::Reply(ReplyError::X11Error(e))) if e.error_kind == ErrorKind::Match => {
                // The screen shrank under us (RandR); its notification is on the way, but the
                // new size can be read now.
                self.screen_changed()?;
                self.capturer.capture()?
            }
            other => other?,
        };
        self.captured = CaptureStamp {
            at: now,
            number: self.captured.number + 1,
            took_us: micros(started.elapsed()),
        };
        if !dirty.is_empty() {
            self.video.changed(&dirty);
            TileViewers::changed(&mut self.viewers, &dirty);
        }
        self.poll_pointer()
    }

    fn poll_pointer(&mut self) -> Result<(), XError> {
        let pointer = self.x.pointer()?;
        if self.pointer != Some(pointer) {
            self.pointer = Some(pointer);
            for viewer in self.viewers.values() {
                viewer.send(HubOutput::Pointer {
                    x: pointer.0,
                    y: pointer.1,
                });
            }
        }
        Ok(())
    }

    fn snapshot(&mut self, id: ViewerId) -> Result<(), XError> {
        if !self.x.tracks_damage() || self.damaged {
            self.capture(Instant::now())?;
        }
        let Some(viewer) = self.viewers.get(&id) else {
            return Ok(());
        };
        match snapshot::png(self.capturer.frame()) {
            Ok(png) => viewer.send(HubOutput::Snapshot(snapshot::snapshot_messages(&png))),
            Err(e) => viewer.send(HubOutput::Notice(format!("the snapshot failed: {e}"))),
        }
        Ok(())
    }

    /// The screen was resized or its monitors changed: read them again, capture the new
    /// rectangle, and tell every viewer (their next pictures are key pictures of the new size).
    fn screen_changed(&mut self) -> Result<(), XError> {
        let root_size = self.x.root_size()?;
        let displays = read_displays(&*self.x.conn, self.x.root, root_size, self.x.has_monitors)?;
        let (region, selected) = region_for(self.requested, &displays, root_size);
        let moved = region != self.capturer.region();
        if displays == self.displays && !moved {
            return Ok(());
        }
        tracing::info!(
            ?region,
            monitors = displays.len(),
            "desktop: the screen changed"
        );
        self.displays = displays;
        self.selected = selected;
        self.capturer.set_region(region);
        self.damaged = true;
        for viewer in self.viewers.values_mut() {
            viewer.send(HubOutput::Displays {
                displays: self.displays.clone(),
                selected,
            });
            if moved {
                viewer.pacing.request_key();
            }
        }
        Ok(())
    }

    /// When to wake up without a message: the pointer poll, or earlier when a capture or
    /// picture could be due.
    fn next_deadline(&self, now: Instant) -> Instant {
        let mut deadline = self.next_pointer_poll;
        if self.viewers.is_empty() {
            return now + Duration::from_secs(3600);
        }
        let pending = self.capture_pending(now);
        let region = self.capturer.region();
        // Damage that waits to settle wakes the hub when it has.
        if self.damaged && !pending {
            deadline = deadline.min(self.settled_at());
        }
        for candidate in [
            self.video.next_due(&self.viewers, region, pending, now),
            TileViewers::next_due(&self.viewers, pending, now),
        ]
        .into_iter()
        .flatten()
        {
            deadline = deadline.min(candidate);
        }
        deadline.max(now)
    }

    /// Whether there is something to capture at `now`: damage that has settled (`settle.rs`), or
    /// always, without XDamage.
    fn capture_pending(&self, now: Instant) -> bool {
        !self.x.tracks_damage() || (self.damaged && now >= self.settled_at())
    }

    fn settled_at(&self) -> Instant {
        self.damage_since.map_or(self.captured.at, |first| {
            settle::capture_at(first, self.captured.at)
        })
    }

    /// Tells every viewer the hub failed.
    fn fail(&self, message: &str) {
        for viewer in self.viewers.values() {
            viewer.send(HubOutput::Failed(message.to_owned()));
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.x.stop_events();
        tracing::info!("desktop: capture stopped");
    }
}

/// A duration in whole microseconds, saturating (a picture header field is 32 bits).
pub(super) fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}
