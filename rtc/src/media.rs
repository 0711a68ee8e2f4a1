//! Desktop pictures as an H.264 RTP video track beside the data channel (issue 13, "desktop as a
//! video track"). The viewer offers a receive-only video m-line next to its data channel; the
//! agent's answer makes it send-only, and the agent writes encoded access units into it through
//! str0m, which packetises them, paces them and runs the congestion controller (TWCC) whose
//! estimate the encoder follows. The viewer's PLI/FIR come back as key-frame requests.
//!
//! [`VideoTrack`] is the session's handle; [`Media`] is the driver's half, fed every str0m event
//! first (it keeps those about the track) and every access unit the session writes. Nothing here
//! touches the data channel.

use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::SdpApi;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, KeyframeRequestKind, MediaKind, MediaTime, Mid, Pt};
use str0m::{Event, Rtc, RtcConfig};
use tokio::sync::mpsc;

use crate::peer::PeerError;

/// The congestion controller's first guess, before any feedback.
const INITIAL_BITRATE: Bitrate = Bitrate::kbps(2_000);
/// What the controller probes towards: a busy 1080p desktop at good quality.
const DESIRED_BITRATE: Bitrate = Bitrate::kbps(12_000);
/// No padding of our own: a still desktop sends no pictures, and the link should then carry next
/// to nothing (str0m keeps its own 50 kbit/s floor while the track exists). 150 kbit/s of padding
/// here cost a still desktop about 300 kbit/s on the wire (tether-bench's idle scene), and could
/// only ever lift an estimate that had fallen under 150 kbit/s; probes (`ask_again`) restore the
/// estimate once pictures flow again.
const MINIMUM_BITRATE: Bitrate = Bitrate::ZERO;
/// How often the desired rate is asked for again while the estimate stays under it.
const ASK_AGAIN: Duration = Duration::from_millis(2_500);
/// A track that sent no picture for this long rests, so that a still desktop costs the link next
/// to nothing: it desires no rate (the controller would otherwise probe for one every 5 s, in
/// bursts at twice the desired rate), and its m-line stops sending on our side (str0m pads every
/// sending track to 50 kbit/s, which came to ~200 tiny packets a second). Before: ~230 kbit/s
/// for a still desktop (`tests/simulated_link.rs`). The next picture wakes it.
const REST_AFTER: Duration = Duration::from_secs(1);
/// The profile the agent's x264 writes (constrained baseline, `profile-level-id=42e01f`): the PT
/// of this profile is preferred when the viewer offers several H.264 ones.
const CONSTRAINED_BASELINE: u32 = 0x42e01f;

/// What happens to a track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackEvent {
    /// Negotiated: access units written from now on are sent (the sending side), or arrive (the
    /// receiving side).
    Ready,
    /// The viewer lost pictures (PLI) or wants a fresh start (FIR): send a key frame.
    KeyframeWanted,
    /// The congestion controller's estimate of what the path takes, in bits per second.
    Bitrate(u64),
    /// An access unit that arrived (receiving side).
    Received {
        data: Vec<u8>,
        /// False when packets were lost before it: the decoder needs a key frame.
        contiguous: bool,
    },
}

/// The session's handle on the peer connection's video track.
pub struct VideoTrack {
    commands: mpsc::UnboundedSender<MediaCommand>,
    events: mpsc::UnboundedReceiver<TrackEvent>,
}

impl VideoTrack {
    /// Queues one H.264 access unit (Annex B) captured at `captured`.
    pub fn send(&self, access_unit: Vec<u8>, captured: Instant) -> Result<(), PeerError> {
        self.commands
            .send(MediaCommand::Send {
                data: access_unit,
                captured,
            })
            .map_err(|_| PeerError::Closed)
    }

    /// Receiving side: asks the sender for a key frame (RTCP PLI), as a browser does when it
    /// lost pictures.
    pub fn request_keyframe(&self) -> Result<(), PeerError> {
        self.commands
            .send(MediaCommand::RequestKeyframe)
            .map_err(|_| PeerError::Closed)
    }

    /// The next event; `None` once the peer connection is gone.
    pub async fn next_event(&mut self) -> Option<TrackEvent> {
        self.events.recv().await
    }

    /// An event that already came, if any (a caller that drives a [`PeerCore`](crate::PeerCore)
    /// itself).
    pub fn try_event(&mut self) -> Option<TrackEvent> {
        self.events.try_recv().ok()
    }
}

/// What the session asks of the driver's half.
pub(crate) enum MediaCommand {
    /// One access unit to send.
    Send {
        data: Vec<u8>,
        captured: Instant,
    },
    RequestKeyframe,
}

/// Turns on the congestion controller (it only acts once a sending video track exists).
pub(crate) fn configure(config: RtcConfig) -> RtcConfig {
    config.enable_bwe(Some(INITIAL_BITRATE))
}

/// The offerer's receive-only video m-line.
pub(crate) fn offer_video(change: &mut SdpApi) {
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
}

/// The driver's half of the track.
pub(crate) struct Media {
    mid: Option<Mid>,
    /// The H.264 payload type to send with; `None` when this side only receives.
    pt: Option<Pt>,
    first: Option<Instant>,
    /// The congestion controller's latest estimate, and when the desired rate was last asked.
    estimate: Option<Bitrate>,
    asked: Option<Instant>,
    /// Whether the last ask was for one kbit/s more than [`DESIRED_BITRATE`] (see `ask_again`).
    asked_more: bool,
    /// When the last access unit was written, and whether the track rests (see [`REST_AFTER`]).
    last_write: Option<Instant>,
    resting: bool,
    events: mpsc::UnboundedSender<TrackEvent>,
    commands: Option<mpsc::UnboundedReceiver<MediaCommand>>,
    warned: bool,
}

impl Media {
    /// The driver's half and the session's handle.
    pub(crate) fn new() -> (Media, VideoTrack) {
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::unbounded_channel();
        let media = Media {
            mid: None,
            pt: None,
            first: None,
            estimate: None,
            asked: None,
            asked_more: false,
            last_write: None,
            resting: false,
            events,
            commands: Some(commands),
            warned: false,
        };
        let track = VideoTrack {
            commands: commands_tx,
            events: events_rx,
        };
        (media, track)
    }

    /// The session's commands, for the driver's select loop.
    pub(crate) fn take_commands(&mut self) -> Option<mpsc::UnboundedReceiver<MediaCommand>> {
        self.commands.take()
    }

    /// A command the session queued, when nobody took the queue (a caller that polls).
    pub(crate) fn try_command(&mut self) -> Option<MediaCommand> {
        self.commands.as_mut()?.try_recv().ok()
    }

    /// Keeps the events about the track; hands back the others.
    pub(crate) fn on_event(&mut self, rtc: &mut Rtc, event: Event) -> Option<Event> {
        match event {
            Event::MediaAdded(added) if added.kind == MediaKind::Video && self.mid.is_none() => {
                self.mid = Some(added.mid);
                if added.direction.is_sending() {
                    self.pt = h264_pt(rtc, added.mid);
                    match self.pt {
                        Some(_) => {
                            rtc.bwe().set_bitrate(MINIMUM_BITRATE, DESIRED_BITRATE);
                            self.emit(TrackEvent::Ready);
                        }
                        None => tracing::info!(
                            "direct: the viewer's video m-line has no H.264 (packetization-mode 1); pictures stay on the data channel"
                        ),
                    }
                } else {
                    self.emit(TrackEvent::Ready);
                }
                None
            }
            Event::KeyframeRequest(request) if Some(request.mid) == self.mid => {
                self.emit(TrackEvent::KeyframeWanted);
                None
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                self.estimate = Some(estimate);
                self.emit(TrackEvent::Bitrate(estimate.as_u64()));
                None
            }
            // The offerer may hear of its own m-line only through the data (str0m announces
            // `MediaAdded` for what the peer offered).
            Event::MediaData(data) if self.mid.is_none() || Some(data.mid) == self.mid => {
                if self.mid.is_none() {
                    self.mid = Some(data.mid);
                    self.emit(TrackEvent::Ready);
                }
                self.emit(TrackEvent::Received {
                    data: data.data.to_vec(),
                    contiguous: data.contiguous,
                });
                None
            }
            other => Some(other),
        }
    }

    pub(crate) fn handle(&mut self, rtc: &mut Rtc, command: MediaCommand) {
        match command {
            MediaCommand::Send { data, captured } => self.write(rtc, data, captured),
            MediaCommand::RequestKeyframe => {
                let requested = self
                    .mid
                    .and_then(|mid| rtc.writer(mid))
                    .map(|mut writer| writer.request_keyframe(None, KeyframeRequestKind::Pli));
                if let Some(Err(e)) = requested {
                    tracing::debug!("direct: cannot ask for a key frame: {e}");
                }
            }
        }
    }

    /// Time passed: a track with nothing to send for [`REST_AFTER`] rests.
    pub(crate) fn on_timeout(&mut self, rtc: &mut Rtc, now: Instant) {
        let quiet = self
            .last_write
            .is_some_and(|at| now.saturating_duration_since(at) >= REST_AFTER);
        if quiet && !self.resting {
            self.resting = true;
            rtc.bwe().set_bitrate(Bitrate::ZERO, Bitrate::ZERO);
            self.set_sending(rtc, false);
        }
    }

    /// Stops or resumes sending on the track's m-line, on our side only: the viewer was told
    /// `sendonly` and is not told otherwise (a sender may always be silent; no renegotiation,
    /// so the RTP stream, its SSRC and sequence numbers go on unchanged when it resumes).
    fn set_sending(&self, rtc: &mut Rtc, sending: bool) {
        let Some(mid) = self.mid else {
            return;
        };
        let direction = if sending {
            Direction::SendOnly
        } else {
            Direction::Inactive
        };
        // The change is made at once; the SDP change it would announce is never applied.
        rtc.sdp_api().set_direction(mid, direction);
    }

    /// Hands one access unit to str0m (it paces and packetises it).
    fn write(&mut self, rtc: &mut Rtc, data: Vec<u8>, captured: Instant) {
        let (Some(mid), Some(pt)) = (self.mid, self.pt) else {
            if !self.warned {
                self.warned = true;
                tracing::warn!("direct: an access unit for a video track that was not negotiated");
            }
            return;
        };
        self.last_write = Some(captured);
        if std::mem::take(&mut self.resting) {
            self.set_sending(rtc, true);
            // Wanting the rate again is what makes the controller probe for it.
            rtc.bwe().set_bitrate(MINIMUM_BITRATE, DESIRED_BITRATE);
            self.asked = Some(captured);
            self.asked_more = false;
        }
        self.ask_again(rtc, captured);
        let first = *self.first.get_or_insert(captured);
        let elapsed = captured.saturating_duration_since(first);
        // 90 kHz, the RTP clock of every video codec.
        let ticks = (elapsed.as_micros() * 9 / 100) as u64;
        let Some(writer) = rtc.writer(mid) else {
            return;
        };
        let time = MediaTime::new(ticks, Frequency::NINETY_KHZ);
        if let Err(e) = writer.write(pt, captured, time, data) {
            tracing::warn!("direct: cannot send an access unit on the video track: {e}");
        }
    }

    /// While the estimate stays under the desired rate, asks for that rate again every
    /// [`ASK_AGAIN`], so that the controller probes for it (at up to twice the estimate).
    ///
    /// Why: after a congested spell the estimate climbs back slowly. The encoder sends 80% of
    /// the estimate, too much for str0m to call the sender application-limited (under 65%) and
    /// probe periodically, and the estimate moves too steadily for its stagnation probe, so
    /// only the slow additive increase is left (26 s from 2 to 8 Mbit/s at 30 ms, in
    /// `examples/throttled_track.rs`). str0m probes when the desired rate rises above the
    /// estimate, not when it is repeated, so the ask alternates between the rate and one kbit/s
    /// more: a probe every other ask. A probe on a link that has no more room costs a few
    /// packets of queue for ~15 ms.
    fn ask_again(&mut self, rtc: &mut Rtc, now: Instant) {
        let under = self.estimate.is_some_and(|e| e < DESIRED_BITRATE);
        let due = self
            .asked
            .is_none_or(|at| now.saturating_duration_since(at) >= ASK_AGAIN);
        if !under || !due {
            return;
        }
        self.asked = Some(now);
        self.asked_more = !self.asked_more;
        let desired = if self.asked_more {
            DESIRED_BITRATE + Bitrate::kbps(1)
        } else {
            DESIRED_BITRATE
        };
        rtc.bwe().set_bitrate(MINIMUM_BITRATE, desired);
    }

    fn emit(&self, event: TrackEvent) {
        // A session that dropped its handle no longer cares.
        let _ = self.events.send(event);
    }
}

/// The negotiated H.264 payload type with packetization-mode 1 (what browsers decode),
/// constrained baseline first.
fn h264_pt(rtc: &mut Rtc, mid: Mid) -> Option<Pt> {
    let writer = rtc.writer(mid)?;
    let mut candidates: Vec<(bool, Pt)> = writer
        .payload_params()
        .filter(|p| {
            let spec = p.spec();
            spec.codec == Codec::H264 && spec.format.packetization_mode == Some(1)
        })
        .map(|p| {
            let baseline = p.spec().format.profile_level_id == Some(CONSTRAINED_BASELINE);
            (!baseline, p.pt())
        })
        .collect();
    candidates.sort_by_key(|(worse, _)| *worse);
    candidates.first().map(|(_, pt)| *pt)
}
