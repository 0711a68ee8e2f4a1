//! A call's sound: one Opus audio m-line, both ways, for the messenger's calls from the desktop
//! app (Debian's WebKitGTK has no WebRTC, so the app's peer is this crate's, and the person at the
//! device answers in a browser). The browser's call is a peer connection of its own, apart from
//! the chat's data channel (`console/web/src/lib/sessions/call.ts`), so a call's [`PeerCore`]
//! has no channel: it counts as open once ICE and DTLS are up.
//!
//! [`VoiceTrack`] is the caller's handle (packets to send, packets that arrived); [`Voice`] is the
//! driver's half, offered every str0m event before the video track's half (`media.rs`), which
//! would otherwise take any media data for itself.
//!
//! [`PeerCore`]: crate::PeerCore

use std::time::Instant;

use str0m::change::SdpApi;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::{Event, Rtc};
use tokio::sync::mpsc;

use crate::peer::PeerError;

/// Opus's RTP clock, whatever the sampling rate of what it carries (RFC 7587).
const OPUS_CLOCK: Frequency = Frequency::FORTY_EIGHT_KHZ;
/// Packets that arrived and were not taken yet: about ten seconds of 20 ms packets. A caller that
/// stopped reading loses the oldest sound, never the peer's memory.
const RECEIVED_QUEUE: usize = 512;

/// The caller's handle on the call's sound.
pub struct VoiceTrack {
    sender: VoiceSender,
    received: mpsc::Receiver<Vec<u8>>,
}

impl VoiceTrack {
    /// A handle for sending, for another thread (the microphone's).
    pub fn sender(&self) -> VoiceSender {
        self.sender.clone()
    }

    /// The next Opus packet from the other side; `None` once the peer connection is gone.
    pub async fn next_packet(&mut self) -> Option<Vec<u8>> {
        self.received.recv().await
    }

    /// A packet that already came, if any (a caller that drives a [`PeerCore`](crate::PeerCore)
    /// itself).
    pub fn try_packet(&mut self) -> Option<Vec<u8>> {
        self.received.try_recv().ok()
    }
}

/// Sends Opus packets on a call.
#[derive(Clone)]
pub struct VoiceSender {
    commands: mpsc::UnboundedSender<VoiceCommand>,
}

impl VoiceSender {
    /// Queues one Opus packet holding `samples` samples at 48 kHz (960 for 20 ms).
    pub fn send(&self, packet: Vec<u8>, samples: u32) -> Result<(), PeerError> {
        self.commands
            .send(VoiceCommand { packet, samples })
            .map_err(|_| PeerError::Closed)
    }
}

/// One packet the caller queued.
pub(crate) struct VoiceCommand {
    packet: Vec<u8>,
    samples: u32,
}

/// The offerer's audio m-line: sending too when `send`, receiving always.
pub(crate) fn offer_voice(change: &mut SdpApi, send: bool) -> Mid {
    let direction = if send {
        Direction::SendRecv
    } else {
        Direction::RecvOnly
    };
    change.add_media(MediaKind::Audio, direction, None, None, None)
}

/// The driver's half of the call's sound.
pub(crate) struct Voice {
    /// The audio m-line: the offerer knows it up front, the answerer from the offer.
    mid: Option<Mid>,
    /// The Opus payload type, looked up at the first packet sent.
    pt: Option<Pt>,
    /// The RTP time of the next packet sent, in samples at 48 kHz.
    rtp_time: u64,
    received: mpsc::Sender<Vec<u8>>,
    commands: Option<mpsc::UnboundedReceiver<VoiceCommand>>,
    warned: bool,
}

impl Voice {
    /// The driver's half and the caller's handle.
    pub(crate) fn new(mid: Option<Mid>) -> (Voice, VoiceTrack) {
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (received, received_rx) = mpsc::channel(RECEIVED_QUEUE);
        let voice = Voice {
            mid,
            pt: None,
            rtp_time: 0,
            received,
            commands: Some(commands),
            warned: false,
        };
        let track = VoiceTrack {
            sender: VoiceSender {
                commands: commands_tx,
            },
            received: received_rx,
        };
        (voice, track)
    }

    /// The caller's packets, for the driver's select loop.
    pub(crate) fn take_commands(&mut self) -> Option<mpsc::UnboundedReceiver<VoiceCommand>> {
        self.commands.take()
    }

    /// A packet the caller queued, when nobody took the queue (a caller that polls).
    pub(crate) fn try_command(&mut self) -> Option<VoiceCommand> {
        self.commands.as_mut()?.try_recv().ok()
    }

    /// Keeps the events about the audio m-line; hands back the others.
    pub(crate) fn on_event(&mut self, event: Event) -> Option<Event> {
        match event {
            Event::MediaAdded(added) if added.kind == MediaKind::Audio && self.mid.is_none() => {
                self.mid = Some(added.mid);
                None
            }
            Event::MediaData(data) if self.mid == Some(data.mid) => {
                if let Err(mpsc::error::TrySendError::Full(_)) =
                    self.received.try_send(data.data.to_vec())
                {
                    tracing::debug!("direct: a call's sound is not being read; dropped a packet");
                }
                None
            }
            other => Some(other),
        }
    }

    /// Hands one packet to str0m.
    pub(crate) fn write(&mut self, rtc: &mut Rtc, command: VoiceCommand, now: Instant) {
        let Some(mid) = self.mid else {
            self.warn("a call's sound before its audio m-line was negotiated");
            return;
        };
        if self.pt.is_none() {
            self.pt = opus_pt(rtc, mid);
        }
        let Some(pt) = self.pt else {
            self.warn("the other side's audio m-line has no Opus");
            return;
        };
        let time = MediaTime::new(self.rtp_time, OPUS_CLOCK);
        // The clock advances whether or not str0m takes the packet: a gap is a gap.
        self.rtp_time += u64::from(command.samples);
        let Some(writer) = rtc.writer(mid) else {
            return;
        };
        if let Err(e) = writer.write(pt, now, time, command.packet) {
            tracing::debug!("direct: cannot send a call's sound: {e}");
        }
    }

    fn warn(&mut self, what: &str) {
        if !std::mem::replace(&mut self.warned, true) {
            tracing::warn!("direct: {what}");
        }
    }
}

fn opus_pt(rtc: &mut Rtc, mid: Mid) -> Option<Pt> {
    let writer = rtc.writer(mid)?;
    writer
        .payload_params()
        .find(|p| p.spec().codec == Codec::Opus)
        .map(|p| p.pt())
}
