//! [`DirectPeer`]: one WebRTC peer connection with ONE reliable, ordered data channel, driven by a
//! tokio task over real UDP sockets. The rest of Tether sees messages in and events out; str0m
//! stays behind this file.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tether_common::relay::MAX_RELAY_FRAME;
use tether_common::relay::switch::Payload;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::media::{self, Media, MediaCommand, VideoTrack};
use crate::{addrs, gather};

/// str0m's send buffer for the channel. str0m counts bytes as buffered until the peer acks them,
/// so this caps the bytes in flight: with its 128 KiB default the spike measured 6.4 MB/s at 5 ms
/// one-way delay and 0.65 MB/s at 50 ms (~64 KB per round trip); 4 MiB gave 54-56 MB/s and
/// 5.4 MB/s. 1 MiB keeps ~8x the default's throughput on long paths while bounding the memory a
/// session holds (and the spike saw the biggest buffers slow the zero-RTT case).
const SCTP_BUFFER: usize = 1024 * 1024;
/// We stop taking messages to send while str0m holds this much, and start again below
/// [`LOW_WATER`]; one relay frame (up to 1 MiB) must still fit beside it.
const HIGH_WATER: usize = SCTP_BUFFER / 2;
const LOW_WATER: usize = SCTP_BUFFER / 4;
/// The data channel's label; the peer's label is not checked (a browser may name its own).
const LABEL: &str = "tether";
/// Remote candidates accepted per peer; a peer that trickles more is broken or hostile.
const MAX_REMOTE_CANDIDATES: usize = 64;
/// Give up when the channel is not open after this long (the viewer may give up sooner).
const OPEN_DEADLINE: Duration = Duration::from_secs(30);
/// After closing the channel, keep driving this long so the peer hears of it (spike gotcha).
const CLOSE_LINGER: Duration = Duration::from_millis(300);
/// Largest UDP datagram read; str0m's MTU is far below.
const DATAGRAM: usize = 2048;

/// Which end of the negotiation this side is: the viewer offers, the agent answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Offerer,
    Answerer,
}

/// What the peer connection reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// The data channel is open: messages may be sent.
    Open,
    Message(Payload),
    /// The path is gone (ICE failed, DTLS/SCTP error, peer closed, deadline). Last event.
    Closed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("cannot read the peer's SDP: {0}")]
    Sdp(String),
    #[error("no usable local address for a host candidate")]
    NoAddress,
    #[error("UDP: {0}")]
    Io(#[from] std::io::Error),
    #[error("the WebRTC stack refused: {0}")]
    Stack(String),
    #[error("the direct path is closed")]
    Closed,
}

enum Control {
    Answer(String, oneshot::Sender<Result<(), PeerError>>),
    Candidate(String),
}

/// What goes through the data queue, in order.
enum Outgoing {
    Payload(Payload),
    /// Reply once everything queued before has been acknowledged by the peer (or the path died).
    /// It rides the data queue so that messages still queued count too.
    Flush(oneshot::Sender<()>),
}

/// A handle on the driver task. Dropping it closes the channel and ends the task.
pub struct DirectPeer {
    control: mpsc::UnboundedSender<Control>,
    data: mpsc::Sender<Outgoing>,
    events: mpsc::UnboundedReceiver<PeerEvent>,
    /// The video track's handle until the session takes it (`media.rs`).
    video: Option<VideoTrack>,
}

impl DirectPeer {
    /// Viewer side: gathers candidates, starts the driver and returns the SDP offer to send.
    /// Feed the answer to [`DirectPeer::accept_answer`].
    pub async fn offer(gathering: &Gathering) -> Result<(DirectPeer, String), PeerError> {
        Self::offer_with(gathering, false).await
    }

    /// [`DirectPeer::offer`], plus a receive-only video m-line when `video` (`media.rs`).
    pub async fn offer_with(
        gathering: &Gathering,
        video: bool,
    ) -> Result<(DirectPeer, String), PeerError> {
        let (mut rtc, sockets) = new_rtc(gathering).await?;
        let mut change = rtc.sdp_api();
        let channel = change.add_channel(LABEL.to_owned());
        if video {
            media::offer_video(&mut change);
        }
        let (offer, pending) = change
            .apply()
            .ok_or_else(|| PeerError::Stack("no offer to make".into()))?;
        let sdp = offer.to_sdp_string();
        let peer = spawn(rtc, sockets, Some(pending), Some(channel));
        Ok((peer, sdp))
    }

    /// Agent side: accepts the viewer's offer, starts the driver and returns the SDP answer.
    pub async fn answer(
        offer_sdp: &str,
        gathering: &Gathering,
    ) -> Result<(DirectPeer, String), PeerError> {
        let offer =
            SdpOffer::from_sdp_string(offer_sdp).map_err(|e| PeerError::Sdp(e.to_string()))?;
        let (mut rtc, sockets) = new_rtc(gathering).await?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| PeerError::Sdp(e.to_string()))?;
        let sdp = answer.to_sdp_string();
        Ok((spawn(rtc, sockets, None, None), sdp))
    }

    /// The agent's answer to our offer.
    pub async fn accept_answer(&self, answer_sdp: &str) -> Result<(), PeerError> {
        let (reply, result) = oneshot::channel();
        self.control
            .send(Control::Answer(answer_sdp.to_owned(), reply))
            .map_err(|_| PeerError::Closed)?;
        result.await.map_err(|_| PeerError::Closed)?
    }

    /// One trickled candidate from the peer; bad ones are logged by the driver and skipped.
    pub fn add_remote_candidate(&self, candidate: &str) {
        let _ = self.control.send(Control::Candidate(candidate.to_owned()));
    }

    /// The video track, once: the agent writes desktop pictures into it, a viewer reads them.
    /// Its [`TrackEvent::Ready`](crate::TrackEvent::Ready) says whether one was negotiated.
    pub fn take_video(&mut self) -> Option<VideoTrack> {
        self.video.take()
    }

    /// A handle for sending, usable while another task (or select arm) waits for events.
    pub fn sender(&self) -> PeerSender {
        PeerSender {
            data: self.data.clone(),
        }
    }

    /// The next event; `None` once the driver has ended.
    pub async fn next_event(&mut self) -> Option<PeerEvent> {
        self.events.recv().await
    }
}

/// Sends on a [`DirectPeer`]'s channel.
#[derive(Clone)]
pub struct PeerSender {
    data: mpsc::Sender<Outgoing>,
}

impl PeerSender {
    /// Queues one message; waits while the channel's buffer is full.
    pub async fn send(&self, payload: Payload) -> Result<(), PeerError> {
        self.data
            .send(Outgoing::Payload(payload))
            .await
            .map_err(|_| PeerError::Closed)
    }

    /// Waits until the peer has acknowledged everything sent so far (or the path is gone).
    pub async fn flush(&self) {
        let (reply, done) = oneshot::channel();
        if self.data.send(Outgoing::Flush(reply)).await.is_ok() {
            let _ = done.await;
        }
    }
}

/// Which local candidates a peer offers.
#[derive(Debug, Clone, Default)]
pub struct Gathering {
    /// Loopback host candidates too (two Rust peers on one machine).
    pub allow_loopback: bool,
    /// The ticket's ICE server URLs. The `stun:` ones tell each socket its public address:
    /// server-reflexive candidates beside the host ones (`gather.rs`); others are skipped.
    pub ice_servers: Vec<String>,
}

async fn new_rtc(gathering: &Gathering) -> Result<(Rtc, Vec<Arc<UdpSocket>>), PeerError> {
    let mut rtc = media::configure(RtcConfig::new())
        .set_sctp_max_buffered_amount(SCTP_BUFFER)
        // A relay frame may be up to MAX_RELAY_FRAME; the channel must carry any of them whole.
        .set_sctp_max_message_size(MAX_RELAY_FRAME as u32)
        .build(Instant::now());
    let mut sockets = Vec::new();
    let stun_servers = gather::stun_servers(&gathering.ice_servers).await;
    for ip in addrs::host_addresses(gathering.allow_loopback) {
        let socket = match UdpSocket::bind(SocketAddr::new(ip, 0)).await {
            Ok(socket) => socket,
            Err(e) => {
                tracing::debug!("direct: cannot bind {ip}: {e}");
                continue;
            }
        };
        let local = socket.local_addr()?;
        match Candidate::host(local, "udp") {
            Ok(candidate) => {
                rtc.add_local_candidate(candidate);
                sockets.push(Arc::new(socket));
            }
            Err(e) => tracing::debug!("direct: no host candidate for {local}: {e}"),
        }
    }
    if sockets.is_empty() {
        return Err(PeerError::NoAddress);
    }
    if !stun_servers.is_empty() {
        let asked = sockets
            .iter()
            .filter(|s| s.local_addr().is_ok_and(|a| !a.ip().is_loopback()))
            .map(|socket| async {
                let base = socket.local_addr().ok()?;
                let seen = gather::reflexive(socket, &stun_servers).await?;
                Some((seen, base))
            });
        for (seen, base) in futures_util::future::join_all(asked)
            .await
            .into_iter()
            .flatten()
        {
            if seen == base {
                // No NAT between us and the STUN server: the host candidate says it all.
                continue;
            }
            match Candidate::server_reflexive(seen, base, "udp") {
                Ok(candidate) => {
                    tracing::debug!("direct: seen from {seen} (local {base})");
                    rtc.add_local_candidate(candidate);
                }
                Err(e) => tracing::debug!("direct: no reflexive candidate {seen}: {e}"),
            }
        }
    }
    Ok((rtc, sockets))
}

fn spawn(
    rtc: Rtc,
    sockets: Vec<Arc<UdpSocket>>,
    pending: Option<SdpPendingOffer>,
    channel: Option<ChannelId>,
) -> DirectPeer {
    let (control, control_rx) = mpsc::unbounded_channel();
    let (data, data_rx) = mpsc::channel(16);
    // Unbounded: the driver must never wait on its consumer, or a consumer that is itself waiting
    // for room on the channel (both directions busy at once) would stop the driver from reading
    // the acknowledgements that make that room.
    let (events_tx, events) = mpsc::unbounded_channel();
    let (datagrams_tx, datagrams) = mpsc::channel(256);
    // One reader per socket feeds the driver, so the driver's select has one arm for all.
    let mut readers = Vec::new();
    for socket in &sockets {
        let socket = socket.clone();
        let tx = datagrams_tx.clone();
        readers.push(tokio::spawn(async move {
            let Ok(local) = socket.local_addr() else {
                return;
            };
            let mut buffer = vec![0u8; DATAGRAM];
            while let Ok((n, from)) = socket.recv_from(&mut buffer).await {
                if tx.send((from, local, buffer[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        }));
    }
    let (media, video) = Media::new();
    let driver = Driver {
        media,
        rtc,
        sockets,
        pending,
        channel,
        open: false,
        remote_candidates: 0,
        unsent: None,
        flushes: Vec::new(),
        events: events_tx,
    };
    tokio::spawn(async move {
        driver.run(control_rx, data_rx, datagrams).await;
        for reader in readers {
            reader.abort();
        }
    });
    DirectPeer {
        control,
        data,
        events,
        video: Some(video),
    }
}

struct Driver {
    rtc: Rtc,
    media: Media,
    sockets: Vec<Arc<UdpSocket>>,
    pending: Option<SdpPendingOffer>,
    /// Our channel: known up front on the offerer, from the open event on the answerer.
    channel: Option<ChannelId>,
    open: bool,
    remote_candidates: usize,
    /// A message str0m refused (buffer full); it goes first.
    unsent: Option<Payload>,
    flushes: Vec<oneshot::Sender<()>>,
    events: mpsc::UnboundedSender<PeerEvent>,
}

impl Driver {
    async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut data: mpsc::Receiver<Outgoing>,
        mut datagrams: mpsc::Receiver<(SocketAddr, SocketAddr, Vec<u8>)>,
    ) {
        let deadline = tokio::time::Instant::now() + OPEN_DEADLINE;
        let mut media_commands = self.media.take_commands();
        let mut wake = Instant::now();
        let reason = loop {
            // Drain str0m after every input (the spike's first gotcha).
            match self.drain().await {
                Ok(Some(next)) => wake = next,
                Ok(None) => {}
                Err(reason) => break reason,
            }
            // Timers first: under a stream of datagrams the sleep arm might never win the select.
            if Instant::now() >= wake {
                if let Err(e) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
                    break format!("WebRTC stack: {e}");
                }
                wake = Instant::now() + Duration::from_secs(1);
                continue;
            }
            let can_take = self.open && self.unsent.is_none() && self.buffered() < HIGH_WATER;
            let sleep_until = tokio::time::Instant::from_std(wake);
            tokio::select! {
                command = control.recv() => match command {
                    Some(command) => self.on_control(command),
                    None => break "the session ended".to_owned(),
                },
                Some((from, to, bytes)) = datagrams.recv() => {
                    if let Err(e) = self.receive(from, to, &bytes) {
                        break e;
                    }
                }
                payload = data.recv(), if can_take => match payload {
                    Some(Outgoing::Payload(payload)) => self.unsent = Some(payload),
                    Some(Outgoing::Flush(reply)) => self.flushes.push(reply),
                    None => break "the session ended".to_owned(),
                },
                Some(command) = next_media(&mut media_commands) => self.media.handle(&mut self.rtc, command),
                () = tokio::time::sleep_until(sleep_until) => {
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
                        break format!("WebRTC stack: {e}");
                    }
                }
                () = tokio::time::sleep_until(deadline), if !self.open => {
                    break format!("no direct path came up within {OPEN_DEADLINE:?}");
                }
            }
            if let Err(e) = self.write_unsent() {
                break e;
            }
            self.answer_flushes();
        };
        tracing::debug!("direct: path closed: {reason}");
        self.close().await;
        let _ = self.events.send(PeerEvent::Closed(reason));
    }

    fn on_control(&mut self, command: Control) {
        match command {
            Control::Answer(sdp, reply) => {
                let result = match (self.pending.take(), SdpAnswer::from_sdp_string(&sdp)) {
                    (None, _) => Err(PeerError::Sdp("no offer is waiting for an answer".into())),
                    (Some(_), Err(e)) => Err(PeerError::Sdp(e.to_string())),
                    (Some(pending), Ok(answer)) => self
                        .rtc
                        .sdp_api()
                        .accept_answer(pending, answer)
                        .map_err(|e| PeerError::Sdp(e.to_string())),
                };
                let _ = reply.send(result);
            }
            Control::Candidate(line) => {
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
        }
    }

    fn receive(&mut self, from: SocketAddr, to: SocketAddr, bytes: &[u8]) -> Result<(), String> {
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
            .handle_input(Input::Receive(Instant::now(), receive))
            .map_err(|e| format!("WebRTC stack: {e}"))
    }

    /// Runs str0m's outputs until it wants a timeout; `Err` when the path is over.
    async fn drain(&mut self) -> Result<Option<Instant>, String> {
        loop {
            if !self.rtc.is_alive() {
                return Err("the peer closed the connection".into());
            }
            let output = self
                .rtc
                .poll_output()
                .map_err(|e| format!("WebRTC stack: {e}"))?;
            match output {
                Output::Timeout(at) => return Ok(Some(at)),
                Output::Transmit(t) => self.transmit(t.source, t.destination, &t.contents),
                Output::Event(event) => self.on_event(event).await?,
            }
        }
    }

    fn transmit(&self, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        let socket = self
            .sockets
            .iter()
            .find(|s| s.local_addr().ok() == Some(from))
            .or(self.sockets.first());
        if let Some(socket) = socket {
            // A datagram the kernel drops (full buffer) is the protocol's business: SCTP
            // retransmits, ICE retries.
            let _ = socket.try_send_to(bytes, to);
        }
    }

    async fn on_event(&mut self, event: Event) -> Result<(), String> {
        let Some(event) = self.media.on_event(&mut self.rtc, event) else {
            return Ok(());
        };
        match event {
            Event::ChannelOpen(id, _label) => {
                if self.channel.is_some_and(|ours| ours != id) {
                    // One channel per session; a second one is not ours to serve.
                    tracing::warn!("direct: the peer opened a second data channel; closing it");
                    self.rtc.direct_api().close_data_channel(id);
                    return Ok(());
                }
                self.channel = Some(id);
                self.open = true;
                if let Some(mut channel) = self.rtc.channel(id) {
                    channel.set_buffered_amount_low_threshold(LOW_WATER);
                }
                self.emit(PeerEvent::Open).await?;
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
                self.emit(PeerEvent::Message(payload)).await?;
            }
            Event::ChannelClose(id) if Some(id) == self.channel => {
                return Err("the peer closed the data channel".into());
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                return Err("ICE lost the path".into());
            }
            _ => {}
        }
        Ok(())
    }

    async fn emit(&mut self, event: PeerEvent) -> Result<(), String> {
        self.events
            .send(event)
            .map_err(|_| "the session ended".to_owned())
    }

    fn buffered(&mut self) -> usize {
        match self.channel.and_then(|id| self.rtc.channel(id)) {
            Some(mut channel) => channel.buffered_amount(),
            None => 0,
        }
    }

    fn write_unsent(&mut self) -> Result<(), String> {
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
            // Full: keep it and stop taking more until the buffer drains.
            Ok(false) => {
                self.unsent = Some(payload);
                Ok(())
            }
            Err(e) => Err(format!("cannot send on the data channel: {e}")),
        }
    }

    fn answer_flushes(&mut self) {
        if !self.flushes.is_empty() && self.unsent.is_none() && self.buffered() == 0 {
            for reply in self.flushes.drain(..) {
                let _ = reply.send(());
            }
        }
    }

    /// Closes the channel and keeps the connection going briefly so the peer hears of it.
    async fn close(&mut self) {
        if let Some(id) = self.channel.filter(|_| self.open) {
            self.rtc.direct_api().close_data_channel(id);
        }
        let until = Instant::now() + CLOSE_LINGER;
        while Instant::now() < until && self.rtc.is_alive() {
            let next = match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => at.min(until),
                Ok(Output::Transmit(t)) => {
                    self.transmit(t.source, t.destination, &t.contents);
                    continue;
                }
                Ok(Output::Event(_)) => continue,
                Err(_) => break,
            };
            tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
            if self
                .rtc
                .handle_input(Input::Timeout(Instant::now()))
                .is_err()
            {
                break;
            }
        }
        // Whoever waits for a flush learns the path is gone.
        self.flushes.clear();
    }
}

/// The session's next media command; never, once it dropped its track.
async fn next_media(
    commands: &mut Option<mpsc::UnboundedReceiver<MediaCommand>>,
) -> Option<MediaCommand> {
    if let Some(receiver) = commands {
        match receiver.recv().await {
            Some(command) => return Some(command),
            None => *commands = None,
        }
    }
    std::future::pending().await
}
