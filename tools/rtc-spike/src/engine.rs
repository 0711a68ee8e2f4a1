//! The small seam Tether would put between its code and a WebRTC stack.
//!
//! Only what this spike exercised against Chromium is here: the answerer side
//! (accept an offer, trickle remote candidates, one local host candidate), data
//! channels the offerer opened (send/receive with back-pressure, close), one
//! outgoing video track written frame by frame, key-frame requests and the
//! egress bitrate estimate. Everything is sans-IO: the caller owns the socket
//! and the clock, as `common/` does for its own state machines.
//!
//! Not here because the spike did not need it: opening a channel from the
//! answerer, making offers, renegotiation, receiving media, TURN, statistics.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::Instant;

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::SdpOffer;
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

/// What the engine wants next from its driver.
pub enum Step<C, T> {
    /// Send these bytes to `to` over UDP (the spike has one socket, so no `from`).
    Transmit { to: SocketAddr, bytes: Vec<u8> },
    /// Something happened; call `poll` again.
    Event(EngineEvent<C, T>),
    /// Nothing to do before this instant unless a datagram arrives.
    WaitUntil(Instant),
}

/// Events the rest of Tether would react to. `C` names a data channel, `T` a video track.
#[derive(Debug)]
pub enum EngineEvent<C, T> {
    /// ICE and DTLS are up: media may be written.
    Connected,
    /// ICE gave up (the path is gone).
    Disconnected,
    ChannelOpen(C, String),
    ChannelData { channel: C, binary: bool, data: Vec<u8> },
    /// The channel's buffered amount fell to its low threshold: write more.
    ChannelBufferedLow(C),
    ChannelClosed(C),
    /// The offer carried a video section this side may send on.
    VideoTrack(T),
    /// The receiver lost pictures (PLI/FIR): the next frame should be a key frame.
    KeyframeRequest(T),
    /// Transport-wide congestion control's estimate of what the path carries, bits/s.
    BitrateEstimate(u64),
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("bad offer: {0}")]
    Offer(String),
    #[error("bad candidate: {0}")]
    Candidate(String),
    #[error("WebRTC stack: {0}")]
    Stack(String),
    /// The negotiated video section has no H.264 payload type this side can send.
    #[error("the offer has no packetization-mode=1 H.264 this side can send")]
    NoH264,
}

/// A WebRTC stack as Tether uses it, in sans-IO style.
pub trait RtcEngine {
    type Channel: Copy + Eq + Debug;
    type Track: Copy + Eq + Debug;

    /// Offer SDP in, answer SDP out (the agent always answers; the viewer offers).
    fn accept_offer(&mut self, offer_sdp: &str) -> Result<String, EngineError>;
    /// A host (or server-reflexive) address this side listens on; call before `accept_offer`
    /// so the answer carries it.
    fn add_local_candidate(&mut self, addr: SocketAddr) -> Result<(), EngineError>;
    /// One trickled `candidate:...` line from the peer.
    fn add_remote_candidate(&mut self, candidate: &str) -> Result<(), EngineError>;

    fn poll(&mut self) -> Result<Step<Self::Channel, Self::Track>, EngineError>;
    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), EngineError>;
    fn handle_timeout(&mut self, now: Instant) -> Result<(), EngineError>;
    /// False once the peer connection is over (e.g. the peer sent a DTLS close).
    fn is_alive(&self) -> bool;

    /// Queue one message; `Ok(false)` means "full, wait for `ChannelBufferedLow`".
    fn send(&mut self, ch: Self::Channel, binary: bool, data: &[u8]) -> Result<bool, EngineError>;
    fn buffered_amount(&mut self, ch: Self::Channel) -> usize;
    fn set_buffered_low_threshold(&mut self, ch: Self::Channel, bytes: usize);
    fn close_channel(&mut self, ch: Self::Channel);

    /// One H.264 access unit in Annex-B form; `rtp_time` is in 90 kHz ticks.
    fn write_h264(
        &mut self,
        track: Self::Track,
        now: Instant,
        rtp_time: u64,
        access_unit: &[u8],
    ) -> Result<(), EngineError>;
    /// Turn on probing/padding towards `desired`, never sending less than `minimum` in total.
    fn set_bitrate_target(&mut self, minimum_bps: u64, desired_bps: u64);
}

/// `RtcEngine` on str0m.
pub struct Str0mEngine {
    rtc: Rtc,
    h264_pt: Option<Pt>,
}

impl Str0mEngine {
    /// `initial_estimate_bps`: `Some` turns on GCC bandwidth estimation, starting there.
    /// `sctp_buffer`: str0m's data-channel send buffer, which also caps the bytes in flight
    /// (str0m's default is 128 KiB).
    pub fn new(now: Instant, initial_estimate_bps: Option<u64>, sctp_buffer: Option<usize>) -> Self {
        let mut config = RtcConfig::new().enable_bwe(initial_estimate_bps.map(Bitrate::bps));
        if let Some(bytes) = sctp_buffer {
            config = config.set_sctp_max_buffered_amount(bytes);
        }
        Str0mEngine {
            rtc: config.build(now),
            h264_pt: None,
        }
    }

    /// The payload type for packetization-mode=1 H.264 that the offer allowed, preferring
    /// constrained baseline (what an x264 `--profile baseline` stream is, and what every
    /// browser decodes).
    fn pick_h264(&mut self, mid: Mid) -> Option<Pt> {
        let writer = self.rtc.writer(mid)?;
        let mut best: Option<(bool, Pt)> = None;
        for p in writer.payload_params() {
            let spec = p.spec();
            if spec.codec != Codec::H264 || spec.format.packetization_mode != Some(1) {
                continue;
            }
            let baseline = spec.format.profile_level_id.is_some_and(|id| id >> 16 == 0x42);
            if best.is_none_or(|(b, _)| baseline && !b) {
                best = Some((baseline, p.pt()));
            }
        }
        best.map(|(_, pt)| pt)
    }
}

fn stack(e: impl std::fmt::Display) -> EngineError {
    EngineError::Stack(e.to_string())
}

impl RtcEngine for Str0mEngine {
    type Channel = ChannelId;
    type Track = Mid;

    fn accept_offer(&mut self, offer_sdp: &str) -> Result<String, EngineError> {
        let offer =
            SdpOffer::from_sdp_string(offer_sdp).map_err(|e| EngineError::Offer(e.to_string()))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| EngineError::Offer(e.to_string()))?;
        Ok(answer.to_sdp_string())
    }

    fn add_local_candidate(&mut self, addr: SocketAddr) -> Result<(), EngineError> {
        let c = Candidate::host(addr, "udp").map_err(|e| EngineError::Candidate(e.to_string()))?;
        self.rtc.add_local_candidate(c);
        Ok(())
    }

    fn add_remote_candidate(&mut self, candidate: &str) -> Result<(), EngineError> {
        let line = candidate.trim().trim_start_matches("a=");
        let c = Candidate::from_sdp_string(line).map_err(|e| EngineError::Candidate(e.to_string()))?;
        self.rtc.add_remote_candidate(c);
        Ok(())
    }

    fn poll(&mut self) -> Result<Step<ChannelId, Mid>, EngineError> {
        let event = match self.rtc.poll_output().map_err(stack)? {
            Output::Timeout(t) => return Ok(Step::WaitUntil(t)),
            Output::Transmit(t) => {
                return Ok(Step::Transmit {
                    to: t.destination,
                    bytes: t.contents.to_vec(),
                })
            }
            Output::Event(e) => e,
        };
        let mapped = match event {
            Event::Connected => EngineEvent::Connected,
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                EngineEvent::Disconnected
            }
            Event::ChannelOpen(id, label) => EngineEvent::ChannelOpen(id, label),
            Event::ChannelData(d) => EngineEvent::ChannelData {
                channel: d.id,
                binary: d.binary,
                data: d.data,
            },
            Event::ChannelBufferedAmountLow(id) => EngineEvent::ChannelBufferedLow(id),
            Event::ChannelClose(id) => EngineEvent::ChannelClosed(id),
            Event::MediaAdded(m) if m.kind == MediaKind::Video && m.direction.is_sending() => {
                self.h264_pt = self.pick_h264(m.mid);
                if self.h264_pt.is_none() {
                    return Err(EngineError::NoH264);
                }
                EngineEvent::VideoTrack(m.mid)
            }
            Event::KeyframeRequest(r) => EngineEvent::KeyframeRequest(r.mid),
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                EngineEvent::BitrateEstimate(estimate.as_u64())
            }
            // Stats, REMB, ingress media and the rest: nothing the spike acts on.
            _ => return self.poll(),
        };
        Ok(Step::Event(mapped))
    }

    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), EngineError> {
        let receive = Receive {
            proto: Protocol::Udp,
            source: from,
            destination: to,
            contents: bytes.try_into().map_err(stack)?,
        };
        self.rtc.handle_input(Input::Receive(now, receive)).map_err(stack)
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), EngineError> {
        self.rtc.handle_input(Input::Timeout(now)).map_err(stack)
    }

    fn is_alive(&self) -> bool {
        self.rtc.is_alive()
    }

    fn send(&mut self, ch: ChannelId, binary: bool, data: &[u8]) -> Result<bool, EngineError> {
        match self.rtc.channel(ch) {
            Some(mut c) => c.write(binary, data).map_err(stack),
            None => Err(EngineError::Stack(format!("channel {ch:?} is not open"))),
        }
    }

    fn buffered_amount(&mut self, ch: ChannelId) -> usize {
        self.rtc.channel(ch).map_or(0, |mut c| c.buffered_amount())
    }

    fn set_buffered_low_threshold(&mut self, ch: ChannelId, bytes: usize) {
        if let Some(mut c) = self.rtc.channel(ch) {
            c.set_buffered_amount_low_threshold(bytes);
        }
    }

    fn close_channel(&mut self, ch: ChannelId) {
        self.rtc.direct_api().close_data_channel(ch);
    }

    fn write_h264(
        &mut self,
        track: Mid,
        now: Instant,
        rtp_time: u64,
        access_unit: &[u8],
    ) -> Result<(), EngineError> {
        let pt = self.h264_pt.ok_or(EngineError::NoH264)?;
        let writer = self
            .rtc
            .writer(track)
            .ok_or_else(|| EngineError::Stack(format!("no track {track:?}")))?;
        writer
            .write(pt, now, MediaTime::from_90khz(rtp_time), access_unit.to_vec())
            .map_err(stack)
    }

    fn set_bitrate_target(&mut self, minimum_bps: u64, desired_bps: u64) {
        self.rtc
            .bwe()
            .set_bitrate(Bitrate::bps(minimum_bps), Bitrate::bps(desired_bps));
    }
}
