//! [`PeerCore`]: the sans-IO heart of a direct peer. It owns str0m's `Rtc`, our one data channel
//! (none for a call), the video track's driver half and a call's sound, and knows nothing of
//! sockets or clocks: datagrams and the
//! time come in, datagrams, wake-up times and events go out. `peer.rs` drives it with UDP
//! sockets and tokio; the tests in `tests/simulated_link.rs` drive two of them over a simulated
//! link with a virtual clock, so a minute of a throttled, lossy path runs in a second.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tether_common::relay::MAX_RELAY_FRAME;
use tether_common::relay::switch::Payload;

use crate::media::{self, Media, MediaCommand, VideoTrack};
use crate::peer::{PeerError, PeerEvent};
use crate::voice::{self, Voice, VoiceCommand, VoiceTrack};

/// str0m's send buffer for the channel. str0m counts bytes as buffered until the peer acks them,
/// so this caps the bytes in flight: with its 128 KiB default the spike measured 6.4 MB/s at 5 ms
/// one-way delay and 0.65 MB/s at 50 ms (~64 KB per round trip); 4 MiB gave 54-56 MB/s and
/// 5.4 MB/s. 1 MiB keeps ~8x the default's throughput on long paths while bounding the memory a
/// session holds (and the spike saw the biggest buffers slow the zero-RTT case).
const SCTP_BUFFER: usize = 1024 * 1024;
/// We stop taking messages to send while str0m holds more than the path's window (below), never
/// more than this; one relay frame (up to 1 MiB) must still fit beside it.
const HIGH_WATER: usize = SCTP_BUFFER / 2;
const LOW_WATER: usize = SCTP_BUFFER / 4;
/// The window: what str0m may hold is the round trip times [`WINDOW_RATE`], between
/// [`MIN_WINDOW`] and [`HIGH_WATER`], so a long path gets enough bytes in flight to be fast and
/// a short one no more than it needs.
///
/// Why not always the most: sctp-proto (str0m's SCTP) walks every chunk in flight for every
/// datagram it sends, so the CPU per byte grows with the bytes in flight. On loopback, two peers
/// moving 32 MiB each way at once made 1.2 MB/s each way with 512 KiB held and 29 MB/s with
/// 16 KiB (`rtc/tests/udp_pair.rs`, release); at 15 ms one way, 16 KiB makes 2 MB/s and 512 KiB
/// 14.5 MB/s (`examples/sim_throughput.rs`).
const WINDOW_RATE: f64 = 100e6;
const MIN_WINDOW: usize = 16 * 1024;
/// The window until the first round trip is measured (str0m reports it five times a second).
const FIRST_WINDOW: usize = MIN_WINDOW;
/// The data channel's label; the peer's label is not checked (a browser may name its own).
const LABEL: &str = "tether";
/// Remote candidates accepted per peer; a peer that trickles more is broken or hostile.
const MAX_REMOTE_CANDIDATES: usize = 64;

/// One local candidate to offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalCandidate {
    /// A socket's own address.
    Host(SocketAddr),
    /// The address a STUN server saw a socket's datagrams come from (`base` is the socket's).
    Reflexive { seen: SocketAddr, base: SocketAddr },
}

/// What the core wants done next.
#[derive(Debug)]
pub enum CoreOutput {
    /// Send this datagram from the local address `source` to `destination`.
    Transmit {
        source: SocketAddr,
        destination: SocketAddr,
        contents: Vec<u8>,
    },
    /// Call [`PeerCore::handle_timeout`] at this time, unless input comes first.
    Timeout(Instant),
    Event(PeerEvent),
}

/// A peer connection with one reliable, ordered data channel and an optional video track, or
/// (a call) with an audio track and no channel, without IO. After every input, call
/// [`PeerCore::poll`] until it returns a timeout.
pub struct PeerCore {
    rtc: Rtc,
    media: Media,
    voice: Voice,
    pending: Option<SdpPendingOffer>,
    /// Our channel: known up front on the offerer, from the open event on the answerer.
    channel: Option<ChannelId>,
    /// A call's peer: no channel to wait for, open once ICE and DTLS are up.
    call: bool,
    open: bool,
    remote_candidates: usize,
    /// A message str0m refused (buffer full); it goes before any other.
    unsent: Option<Payload>,
    /// What str0m may hold before we take no more messages (see [`WINDOW_RATE`]).
    window: usize,
    /// The least round trip measured so far: the path's own delay, without the queueing that a
    /// busy peer adds (a window grown from loaded round trips would load the peer more).
    min_rtt: Option<Duration>,
}

impl PeerCore {
    /// Viewer side: the core, the SDP offer to send and the video track's handle (a receive-only
    /// video m-line is offered when `video`). Feed the answer to [`PeerCore::accept_answer`].
    pub fn offer(
        now: Instant,
        candidates: &[LocalCandidate],
        video: bool,
    ) -> Result<(PeerCore, String, VideoTrack), PeerError> {
        let mut rtc = new_rtc(now, candidates);
        let mut change = rtc.sdp_api();
        let channel = change.add_channel(LABEL.to_owned());
        if video {
            media::offer_video(&mut change);
        }
        let (offer, pending) = change
            .apply()
            .ok_or_else(|| PeerError::Stack("no offer to make".into()))?;
        let sdp = offer.to_sdp_string();
        let (core, video, _) = Self::new(rtc, Some(pending), Some(channel), None);
        Ok((core, sdp, video))
    }

    /// Agent side: the core, the SDP answer to the viewer's offer and the video track's handle.
    pub fn answer(
        now: Instant,
        offer_sdp: &str,
        candidates: &[LocalCandidate],
    ) -> Result<(PeerCore, String, VideoTrack), PeerError> {
        let (core, sdp, video, _) = Self::answered(now, offer_sdp, candidates)?;
        Ok((core, sdp, video))
    }

    fn answered(
        now: Instant,
        offer_sdp: &str,
        candidates: &[LocalCandidate],
    ) -> Result<(PeerCore, String, VideoTrack, VoiceTrack), PeerError> {
        let offer =
            SdpOffer::from_sdp_string(offer_sdp).map_err(|e| PeerError::Sdp(e.to_string()))?;
        let mut rtc = new_rtc(now, candidates);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| PeerError::Sdp(e.to_string()))?;
        let sdp = answer.to_sdp_string();
        let (core, video, voice) = Self::new(rtc, None, None, None);
        Ok((core, sdp, video, voice))
    }

    /// A call from this side (`voice.rs`): the core, the SDP offer (one audio m-line, sending
    /// too when `send_voice`, no data channel) and the call's sound.
    pub fn offer_call(
        now: Instant,
        candidates: &[LocalCandidate],
        send_voice: bool,
    ) -> Result<(PeerCore, String, VoiceTrack), PeerError> {
        let mut rtc = new_rtc(now, candidates);
        let mut change = rtc.sdp_api();
        let mid = voice::offer_voice(&mut change, send_voice);
        let (offer, pending) = change
            .apply()
            .ok_or_else(|| PeerError::Stack("no offer to make".into()))?;
        let sdp = offer.to_sdp_string();
        let (core, _, voice) = Self::new(rtc, Some(pending), None, Some(mid));
        Ok((core, sdp, voice))
    }

    /// A call from the other side: the core, the SDP answer and the call's sound. m-lines other
    /// than the first audio one (a camera) are accepted and their media dropped.
    pub fn answer_call(
        now: Instant,
        offer_sdp: &str,
        candidates: &[LocalCandidate],
    ) -> Result<(PeerCore, String, VoiceTrack), PeerError> {
        let (mut core, sdp, _, voice) = Self::answered(now, offer_sdp, candidates)?;
        core.call = true;
        Ok((core, sdp, voice))
    }

    fn new(
        rtc: Rtc,
        pending: Option<SdpPendingOffer>,
        channel: Option<ChannelId>,
        call_mid: Option<str0m::media::Mid>,
    ) -> (PeerCore, VideoTrack, VoiceTrack) {
        let (media, video) = Media::new();
        let (voice, voice_track) = Voice::new(call_mid);
        let core = PeerCore {
            rtc,
            media,
            voice,
            pending,
            channel,
            call: call_mid.is_some(),
            open: false,
            remote_candidates: 0,
            unsent: None,
            window: FIRST_WINDOW,
            min_rtt: None,
        };
        (core, video, voice_track)
    }

    /// The agent's answer to our offer.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), PeerError> {
        let Some(pending) = self.pending.take() else {
            return Err(PeerError::Sdp("no offer is waiting for an answer".into()));
        };
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| PeerError::Sdp(e.to_string()))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| PeerError::Sdp(e.to_string()))
    }

    /// One trickled candidate line from the peer; bad ones are logged and skipped.
    pub fn add_remote_candidate(&mut self, line: &str) {
        if self.remote_candidates >= MAX_REMOTE_CANDIDATES {
            tracing::warn!(
                "direct: more than {MAX_REMOTE_CANDIDATES} remote candidates; ignoring {line:?}"
            );
            return;
        }
        let trimmed = line.trim().trim_start_matches("a=");
        match Candidate::from_sdp_string(trimmed) {
            Ok(candidate) => {
                self.remote_candidates += 1;
                self.rtc.add_remote_candidate(candidate);
            }
            // Browsers send mDNS `.local` names str0m cannot use: log, do not fail.
            Err(e) => tracing::info!("direct: unusable remote candidate {line:?}: {e}"),
        }
    }

    /// A datagram that arrived from `from` on the local address `to`. `Err` ends the path.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), String> {
        let Ok(contents) = bytes.try_into() else {
            // Not STUN, DTLS or RTP: someone else's datagram on our port.
            return Ok(());
        };
        let receive = Receive {
            proto: Protocol::Udp,
            source: from,
            destination: to,
            contents,
        };
        self.rtc
            .handle_input(Input::Receive(now, receive))
            .map_err(|e| format!("WebRTC stack: {e}"))
    }

    /// Time passed. `Err` ends the path.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), String> {
        self.media.on_timeout(&mut self.rtc, now);
        self.rtc
            .handle_input(Input::Timeout(now))
            .map_err(|e| format!("WebRTC stack: {e}"))
    }

    /// A command from the video track's handle.
    pub(crate) fn handle_media(&mut self, command: MediaCommand) {
        self.media.handle(&mut self.rtc, command);
    }

    /// The video track's commands, for a driver that waits on them (`peer.rs`).
    pub(crate) fn take_media_commands(
        &mut self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<MediaCommand>> {
        self.media.take_commands()
    }

    /// Runs the video track's and the call's queued commands (a driver that polls instead of
    /// waiting).
    pub fn handle_media_commands(&mut self, now: Instant) {
        while let Some(command) = self.media.try_command() {
            self.media.handle(&mut self.rtc, command);
        }
        while let Some(command) = self.voice.try_command() {
            self.voice.write(&mut self.rtc, command, now);
        }
    }

    /// One packet of a call's sound.
    pub(crate) fn handle_voice(&mut self, command: VoiceCommand, now: Instant) {
        self.voice.write(&mut self.rtc, command, now);
    }

    /// The call's packets, for a driver that waits on them (`peer.rs`).
    pub(crate) fn take_voice_commands(
        &mut self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<VoiceCommand>> {
        self.voice.take_commands()
    }

    /// The next thing to do; call it after every input until it returns a timeout. `Err` when
    /// the path is over, with the reason.
    pub fn poll(&mut self) -> Result<CoreOutput, String> {
        loop {
            if !self.rtc.is_alive() {
                return Err("the peer closed the connection".into());
            }
            let output = self
                .rtc
                .poll_output()
                .map_err(|e| format!("WebRTC stack: {e}"))?;
            match output {
                Output::Timeout(at) => return Ok(CoreOutput::Timeout(at)),
                Output::Transmit(t) => {
                    return Ok(CoreOutput::Transmit {
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.into(),
                    });
                }
                Output::Event(event) => {
                    if let Some(event) = self.on_event(event)? {
                        return Ok(CoreOutput::Event(event));
                    }
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) -> Result<Option<PeerEvent>, String> {
        // The call's sound first: the video half takes any media data it has no m-line for.
        let Some(event) = self.voice.on_event(event) else {
            return Ok(None);
        };
        let Some(event) = self.media.on_event(&mut self.rtc, event) else {
            return Ok(None);
        };
        match event {
            Event::Connected if self.call => {
                self.open = true;
                Ok(Some(PeerEvent::Open))
            }
            Event::ChannelOpen(id, _label) => {
                if self.channel.is_some_and(|ours| ours != id) {
                    // One channel per session; a second one is not ours to serve.
                    tracing::warn!("direct: the peer opened a second data channel; closing it");
                    self.rtc.direct_api().close_data_channel(id);
                    return Ok(None);
                }
                self.channel = Some(id);
                self.open = true;
                if let Some(mut channel) = self.rtc.channel(id) {
                    channel.set_buffered_amount_low_threshold(LOW_WATER);
                }
                Ok(Some(PeerEvent::Open))
            }
            Event::ChannelData(message) if Some(message.id) == self.channel => {
                let payload = if message.binary {
                    Payload::Binary(message.data)
                } else {
                    match String::from_utf8(message.data) {
                        Ok(text) => Payload::Text(text),
                        Err(_) => {
                            return Err("the peer sent a text message that is not UTF-8".into());
                        }
                    }
                };
                Ok(Some(PeerEvent::Message(payload)))
            }
            Event::ChannelClose(id) if Some(id) == self.channel => {
                Err("the peer closed the data channel".into())
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                Err("ICE lost the path".into())
            }
            Event::PeerStats(stats) => {
                let rtt = stats
                    .selected_candidate_pair
                    .and_then(|pair| pair.current_round_trip_time)
                    .or(stats.rtt);
                if let Some(rtt) = rtt {
                    let least = self.min_rtt.map_or(rtt, |least| least.min(rtt));
                    self.min_rtt = Some(least);
                    self.window = window_for(least);
                }
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// Whether the channel is open.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Whether [`PeerCore::send`] takes a message now: the channel is open, nothing refused
    /// waits, and str0m holds less than the high-water mark.
    pub fn can_send(&mut self) -> bool {
        self.open && self.unsent.is_none() && self.buffered() < self.window
    }

    /// Queues one message (check [`PeerCore::can_send`] first: a message sent while one waits
    /// is refused). `Err` ends the path.
    pub fn send(&mut self, payload: Payload) -> Result<(), String> {
        if self.unsent.is_some() {
            return Err("a message was sent while another still waited".into());
        }
        self.unsent = Some(payload);
        self.write_unsent()
    }

    /// Hands str0m the message it refused last time, if it now has room. `Err` ends the path.
    pub fn write_unsent(&mut self) -> Result<(), String> {
        let (Some(payload), Some(id)) = (self.unsent.take(), self.channel) else {
            return Ok(());
        };
        let Some(mut channel) = self.rtc.channel(id) else {
            return Err("the data channel is gone".into());
        };
        let (binary, bytes) = match &payload {
            Payload::Text(text) => (false, text.as_bytes()),
            Payload::Binary(bytes) => (true, bytes.as_slice()),
        };
        match channel.write(binary, bytes) {
            Ok(true) => Ok(()),
            // Full: keep it and take no more until the buffer drains.
            Ok(false) => {
                self.unsent = Some(payload);
                Ok(())
            }
            Err(e) => Err(format!("cannot send on the data channel: {e}")),
        }
    }

    /// Whether everything sent so far has been acknowledged by the peer.
    pub fn is_flushed(&mut self) -> bool {
        self.unsent.is_none() && self.buffered() == 0
    }

    fn buffered(&mut self) -> usize {
        match self.channel.and_then(|id| self.rtc.channel(id)) {
            Some(mut channel) => channel.buffered_amount(),
            None => 0,
        }
    }

    /// Closes the channel; keep polling briefly so the peer hears of it.
    pub fn close(&mut self) {
        if let Some(id) = self.channel.filter(|_| self.open) {
            self.rtc.direct_api().close_data_channel(id);
        }
    }

    /// Whether the connection is still up.
    pub fn is_alive(&self) -> bool {
        self.rtc.is_alive()
    }
}

/// What str0m may hold on a path with this round trip (see [`WINDOW_RATE`]).
fn window_for(rtt: Duration) -> usize {
    ((rtt.as_secs_f64() * WINDOW_RATE) as usize).clamp(MIN_WINDOW, HIGH_WATER)
}

fn new_rtc(now: Instant, candidates: &[LocalCandidate]) -> Rtc {
    let mut rtc = media::configure(RtcConfig::new())
        .set_sctp_max_buffered_amount(SCTP_BUFFER)
        // Round trips for the window, five times a second.
        .set_stats_interval(Some(Duration::from_millis(200)))
        // A relay frame may be up to MAX_RELAY_FRAME; the channel must carry any of them whole.
        .set_sctp_max_message_size(MAX_RELAY_FRAME as u32)
        .build(now);
    for candidate in candidates {
        let made = match *candidate {
            LocalCandidate::Host(address) => Candidate::host(address, "udp"),
            LocalCandidate::Reflexive { seen, base } => {
                Candidate::server_reflexive(seen, base, "udp")
            }
        };
        match made {
            Ok(made) => {
                rtc.add_local_candidate(made);
            }
            Err(e) => tracing::debug!("direct: no local candidate for {candidate:?}: {e}"),
        }
    }
    rtc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_follows_the_round_trip_within_its_bounds() {
        assert_eq!(window_for(Duration::from_micros(60)), MIN_WINDOW);
        assert_eq!(window_for(Duration::from_millis(1)), 100_000);
        assert_eq!(window_for(Duration::from_millis(30)), HIGH_WATER);
    }
}
