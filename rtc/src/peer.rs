//! [`DirectPeer`]: one WebRTC peer connection with ONE reliable, ordered data channel, driven by a
//! tokio task over real UDP sockets. The protocol work is [`PeerCore`]'s (`core.rs`, sans-IO);
//! this file binds the sockets, gathers candidates and moves datagrams, time and messages
//! between the core and the session. The rest of Tether sees messages in and events out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_common::relay::switch::Payload;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::core::{CoreOutput, LocalCandidate, PeerCore};
use crate::media::VideoTrack;
use crate::voice::VoiceTrack;
use crate::{addrs, gather};

/// Give up when the channel is not open after this long (the viewer may give up sooner).
const OPEN_DEADLINE: Duration = Duration::from_secs(30);
/// After closing the channel, keep driving this long so the peer hears of it (spike gotcha).
const CLOSE_LINGER: Duration = Duration::from_millis(300);
/// Largest UDP datagram read; str0m's MTU is far below.
const DATAGRAM: usize = 2048;
/// Each socket's kernel buffers (the kernel caps them at `net.core.rmem_max`/`wmem_max`).
/// Why: with the default (~208 KiB) a burst the driver cannot read at once overflows it, and
/// SCTP (sctp-proto) recovers from those losses slowly: two peers moving 32 MiB each way on
/// loopback ran at 1.5 MB/s in one run of three, 25-29 MB/s otherwise.
const SOCKET_BUFFER: usize = 4 << 20;

/// Which end of the negotiation this side is: the viewer offers, the agent answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Offerer,
    Answerer,
}

/// What the peer connection reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// The data channel is open: messages may be sent. For a call: ICE and DTLS are up.
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
    /// A call's sound until the caller takes it (`voice.rs`).
    voice: Option<VoiceTrack>,
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
        let (sockets, candidates) = bind(gathering).await?;
        let (core, sdp, video) = PeerCore::offer(Instant::now(), &candidates, video)?;
        Ok((spawn(core, sockets, Some(video), None), sdp))
    }

    /// Agent side: accepts the viewer's offer, starts the driver and returns the SDP answer.
    pub async fn answer(
        offer_sdp: &str,
        gathering: &Gathering,
    ) -> Result<(DirectPeer, String), PeerError> {
        let (sockets, candidates) = bind(gathering).await?;
        let (core, sdp, video) = PeerCore::answer(Instant::now(), offer_sdp, &candidates)?;
        Ok((spawn(core, sockets, Some(video), None), sdp))
    }

    /// A call from this side: one audio m-line (sending too when `send_voice`), no data
    /// channel; [`PeerEvent::Open`] once connected. The sound is [`DirectPeer::take_voice`]'s.
    pub async fn call_offer(
        gathering: &Gathering,
        send_voice: bool,
    ) -> Result<(DirectPeer, String), PeerError> {
        let (sockets, candidates) = bind(gathering).await?;
        let (core, sdp, voice) = PeerCore::offer_call(Instant::now(), &candidates, send_voice)?;
        Ok((spawn(core, sockets, None, Some(voice)), sdp))
    }

    /// A call from the other side: answers its offer (a camera's m-line is accepted, its
    /// pictures dropped).
    pub async fn call_answer(
        offer_sdp: &str,
        gathering: &Gathering,
    ) -> Result<(DirectPeer, String), PeerError> {
        let (sockets, candidates) = bind(gathering).await?;
        let (core, sdp, voice) = PeerCore::answer_call(Instant::now(), offer_sdp, &candidates)?;
        Ok((spawn(core, sockets, None, Some(voice)), sdp))
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

    /// A call's sound, once (`None` for a data path).
    pub fn take_voice(&mut self) -> Option<VoiceTrack> {
        self.voice.take()
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

    /// A slot in the channel's queue, for the splice's select (cancel-safe: a dropped slot
    /// takes nothing with it); `None` once the path is gone.
    pub(crate) fn slot(&self) -> impl Future<Output = Option<PeerSlot>> + use<> {
        let data = self.data.clone();
        async move { data.reserve_owned().await.ok().map(PeerSlot) }
    }

    /// Waits until the peer has acknowledged everything sent so far (or the path is gone).
    pub async fn flush(&self) {
        let (reply, done) = oneshot::channel();
        if self.data.send(Outgoing::Flush(reply)).await.is_ok() {
            let _ = done.await;
        }
    }
}

/// Room for one message on a [`DirectPeer`]'s channel ([`PeerSender::slot`]).
pub(crate) struct PeerSlot(mpsc::OwnedPermit<Outgoing>);

impl PeerSlot {
    pub(crate) fn send(self, payload: Payload) {
        self.0.send(Outgoing::Payload(payload));
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

/// Binds one UDP socket per host address and lists the candidates to offer: each socket's own
/// address, and the address the ticket's STUN servers see when it differs.
async fn bind(
    gathering: &Gathering,
) -> Result<(Vec<Arc<UdpSocket>>, Vec<LocalCandidate>), PeerError> {
    let stun_servers = gather::stun_servers(&gathering.ice_servers).await;
    let mut sockets = Vec::new();
    let mut candidates = Vec::new();
    for ip in addrs::host_addresses(gathering.allow_loopback) {
        let socket = match bind_udp(SocketAddr::new(ip, 0)) {
            Ok(socket) => socket,
            Err(e) => {
                tracing::debug!("direct: cannot bind {ip}: {e}");
                continue;
            }
        };
        candidates.push(LocalCandidate::Host(socket.local_addr()?));
        sockets.push(Arc::new(socket));
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
            // The same address: no NAT between us and the STUN server, the host candidate says it.
            if seen != base {
                tracing::debug!("direct: seen from {seen} (local {base})");
                candidates.push(LocalCandidate::Reflexive { seen, base });
            }
        }
    }
    Ok((sockets, candidates))
}

/// A non-blocking UDP socket on `address` with [`SOCKET_BUFFER`]-sized kernel buffers (as big
/// as the kernel allows; a refusal only leaves the default).
fn bind_udp(address: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if let Err(e) = socket
        .set_recv_buffer_size(SOCKET_BUFFER)
        .and_then(|()| socket.set_send_buffer_size(SOCKET_BUFFER))
    {
        tracing::debug!("direct: keeping the default socket buffers: {e}");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    UdpSocket::from_std(socket.into())
}

/// Starts the driver. A track passed as `None` is dropped here, so the core's half of it finds
/// nobody listening and keeps nothing for them (a call's peer has no use for the video half).
fn spawn(
    core: PeerCore,
    sockets: Vec<Arc<UdpSocket>>,
    video: Option<VideoTrack>,
    voice: Option<VoiceTrack>,
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
    let driver = Driver {
        core,
        sockets,
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
        video,
        voice,
    }
}

/// The IO shell around a [`PeerCore`]: sockets, tokio timers and the session's queues.
struct Driver {
    core: PeerCore,
    sockets: Vec<Arc<UdpSocket>>,
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
        let mut media_commands = self.core.take_media_commands();
        let mut voice_commands = self.core.take_voice_commands();
        let reason = loop {
            // Drain the core after every input (the spike's first gotcha).
            let wake = match self.drain() {
                Ok(next) => next,
                Err(reason) => break reason,
            };
            // Timers first: under a stream of datagrams the sleep arm might never win the select.
            if Instant::now() >= wake {
                if let Err(e) = self.core.handle_timeout(Instant::now()) {
                    break e;
                }
                continue;
            }
            let can_take = self.core.can_send();
            let sleep_until = tokio::time::Instant::from_std(wake);
            let step = tokio::select! {
                command = control.recv() => match command {
                    Some(command) => {
                        self.on_control(command);
                        Ok(())
                    }
                    None => Err("the session ended".to_owned()),
                },
                Some((from, to, bytes)) = datagrams.recv() => {
                    self.core.handle_datagram(Instant::now(), from, to, &bytes)
                }
                payload = data.recv(), if can_take => match payload {
                    Some(Outgoing::Payload(payload)) => self.core.send(payload),
                    Some(Outgoing::Flush(reply)) => {
                        self.flushes.push(reply);
                        Ok(())
                    }
                    None => Err("the session ended".to_owned()),
                },
                Some(command) = next_command(&mut media_commands) => {
                    self.core.handle_media(command);
                    Ok(())
                }
                Some(command) = next_command(&mut voice_commands) => {
                    self.core.handle_voice(command, Instant::now());
                    Ok(())
                }
                () = tokio::time::sleep_until(sleep_until) => self.core.handle_timeout(Instant::now()),
                () = tokio::time::sleep_until(deadline), if !self.core.is_open() => {
                    Err(format!("no direct path came up within {OPEN_DEADLINE:?}"))
                }
            };
            if let Err(reason) = step.and_then(|()| self.core.write_unsent()) {
                break reason;
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
                let _ = reply.send(self.core.accept_answer(&sdp));
            }
            Control::Candidate(line) => self.core.add_remote_candidate(&line),
        }
    }

    /// Runs the core's outputs until it wants a timeout; `Err` when the path is over.
    fn drain(&mut self) -> Result<Instant, String> {
        loop {
            match self.core.poll()? {
                CoreOutput::Timeout(at) => return Ok(at),
                CoreOutput::Transmit {
                    source,
                    destination,
                    contents,
                } => self.transmit(source, destination, &contents),
                CoreOutput::Event(event) => self
                    .events
                    .send(event)
                    .map_err(|_| "the session ended".to_owned())?,
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

    fn answer_flushes(&mut self) {
        if !self.flushes.is_empty() && self.core.is_flushed() {
            for reply in self.flushes.drain(..) {
                let _ = reply.send(());
            }
        }
    }

    /// Closes the channel and keeps the connection going briefly so the peer hears of it.
    async fn close(&mut self) {
        self.core.close();
        let until = Instant::now() + CLOSE_LINGER;
        while Instant::now() < until && self.core.is_alive() {
            let next = match self.core.poll() {
                Ok(CoreOutput::Timeout(at)) => at.min(until),
                Ok(CoreOutput::Transmit {
                    source,
                    destination,
                    contents,
                }) => {
                    self.transmit(source, destination, &contents);
                    continue;
                }
                Ok(CoreOutput::Event(_)) => continue,
                Err(_) => break,
            };
            tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
            if self.core.handle_timeout(Instant::now()).is_err() {
                break;
            }
        }
        // Whoever waits for a flush learns the path is gone.
        self.flushes.clear();
    }
}

/// The session's next command for a track; never, once it dropped the track.
async fn next_command<T>(commands: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    if let Some(receiver) = commands {
        match receiver.recv().await {
            Some(command) => return Some(command),
            None => *commands = None,
        }
    }
    std::future::pending().await
}
