//! The relay splice: sits between a session's code and its relay WebSocket, runs the direct-path
//! signalling (`tether_common::relay::signal`) beside the session's own frames, and once a data
//! channel is open moves the session onto it with `PathSwitch`, exactly once per direction.
//!
//! The session code keeps talking WebSocket: it gets one end of an in-memory WebSocket
//! ([`SessionSocket`]) and never learns which path its frames take. Text and binary frames are
//! session data; the relay's own control (close) stays on the relay.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use tether_common::handshake::Signer;
use tether_common::handshake::rsa::RsaVerifier;
use tether_common::ids::DeviceId;
use tether_common::relay::DirectPath;
use tether_common::relay::identity;
use tether_common::relay::pieces::{self, Joiner};
use tether_common::relay::signal::{RelayText, RtcSignal};
use tether_common::relay::switch::{Path, PathSwitch, Payload, SwitchError, Transmit};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::media::VideoTrack;
use crate::outbox::{self, Outbox};
use crate::peer::{DirectPeer, Gathering, PeerEvent, PeerSender, PeerSlot, Role};

/// The session's side of the splice.
pub type SessionSocket = WebSocketStream<DuplexStream>;

/// Bytes buffered between the session and the splice in each direction.
const PIPE: usize = 256 * 1024;
/// How long a closing session waits for the data channel to deliver what it sent last, and how
/// long a relay close waits for the peer's last data-channel messages (its `rtcEnd`).
const FLUSH_WAIT: Duration = Duration::from_secs(10);
/// How long the splice waits for the session to finish its close once the relay has gone.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// What the splice should try.
#[derive(Debug, Clone)]
pub struct SpliceConfig {
    pub role: Role,
    /// `None`: this session stays on the relay (the group's policy, or the viewer said never).
    /// The answerer then tells an offering peer so with `rtcUnavailable`.
    pub direct: Option<DirectPath>,
    /// Offer loopback host candidates too (two Rust peers on one machine).
    pub allow_loopback: bool,
    /// Answerer: the agent key that proves the answer's DTLS certificate is the agent's own
    /// (`tether_common::relay::identity`).
    pub identity: Option<PathIdentity>,
    /// Offerer: the device whose key must have signed the answer. `None` takes any answer (only
    /// for peers that know no device, as in tests).
    pub device: Option<DeviceId>,
}

/// The agent's key, for signing its direct-path answers.
#[derive(Clone)]
pub struct PathIdentity {
    pub signer: Arc<dyn Signer>,
    /// PKCS#1 `RSAPublicKey` DER: the key the device id is the hash of.
    pub public_key: Vec<u8>,
}

impl std::fmt::Debug for PathIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PathIdentity(…)")
    }
}

/// Where the session's data runs, as the viewer may wait for or report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStatus {
    /// On the relay; a direct path is being tried.
    Trying,
    /// On the relay for good; the reason why no direct path came up.
    Relayed(String),
    /// Both directions run on the data channel.
    Direct,
    /// The session is over.
    Ended,
}

/// Starts splicing `relay` (already paired: the server's `"c"` was read) and returns the socket
/// the session uses, plus the path status to watch.
pub async fn splice<S>(
    relay: WebSocketStream<S>,
    config: SpliceConfig,
) -> (SessionSocket, watch::Receiver<PathStatus>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (socket, status, _video) = splice_with_video(relay, config).await;
    (socket, status)
}

/// [`splice`], plus the peer connection's video track (`media.rs`), handed over once the
/// session runs on the direct path (never, when it stays relayed). Whether the viewer negotiated
/// video, the track's first event says.
pub async fn splice_with_video<S>(
    relay: WebSocketStream<S>,
    config: SpliceConfig,
) -> (
    SessionSocket,
    watch::Receiver<PathStatus>,
    oneshot::Receiver<VideoTrack>,
)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (video_slot, video) = oneshot::channel();
    let (ours, theirs) = tokio::io::duplex(PIPE);
    let inner = WebSocketStream::from_raw_socket(ours, WsRole::Server, None).await;
    let session = WebSocketStream::from_raw_socket(theirs, WsRole::Client, None).await;
    let initial = match &config.direct {
        Some(_) => PathStatus::Trying,
        None => PathStatus::Relayed("direct paths are off for this session".into()),
    };
    let (status, watcher) = watch::channel(initial);
    let (relay_sink, relay) = relay.split();
    let (inner_sink, inner) = inner.split();
    let splice = Splice {
        relay,
        to_relay: Outbox::new(relay_sink),
        inner,
        to_session: Outbox::new(inner_sink),
        to_direct: VecDeque::new(),
        to_direct_bytes: 0,
        config,
        switch: PathSwitch::default(),
        peer: None,
        sender: None,
        status,
        tried: false,
        joiner: Joiner::default(),
        video_slot: Some(video_slot),
        relay_closed: None,
        session_gone: false,
        offer_sdp: None,
    };
    tokio::spawn(splice.run());
    (session, watcher, video)
}

/// Both directions run at once and neither waits for the other: the loop never awaits a send; it
/// queues (`outbox.rs`) and reads a source only while the queue it feeds is short.
struct Splice<S> {
    relay: SplitStream<WebSocketStream<S>>,
    to_relay: Outbox,
    inner: SplitStream<WebSocketStream<DuplexStream>>,
    to_session: Outbox,
    /// Session data for the data channel, in order, and its size.
    to_direct: VecDeque<Payload>,
    to_direct_bytes: usize,
    config: SpliceConfig,
    switch: PathSwitch,
    peer: Option<DirectPeer>,
    sender: Option<PeerSender>,
    status: watch::Sender<PathStatus>,
    /// One direct attempt per session.
    tried: bool,
    /// Session messages too big for one data-channel message arrive in pieces (`pieces.rs`).
    joiner: Joiner,
    /// Where the video track goes once the session is direct.
    video_slot: Option<oneshot::Sender<VideoTrack>>,
    /// The relay closed while the peer's last data-channel messages were still on their way:
    /// its close frame, held until `rtcEnd` arrives, and how long we wait for it.
    relay_closed: Option<(Option<CloseFrame>, tokio::time::Instant)>,
    /// The session no longer reads (its socket is closing); it may still have frames to send.
    session_gone: bool,
    /// Offerer: the offer sent, whose fingerprint the agent's proof must cover.
    offer_sdp: Option<String>,
}

/// Why the splice stops.
enum End {
    /// The session closed its socket; forward this close to the relay.
    Session(Option<CloseFrame>),
    /// The relay closed or failed; tell the session.
    Relay(Option<CloseFrame>),
    /// The paths broke the session (direct path lost after the switch, protocol violation).
    Broken(String),
}

impl<S> Splice<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn run(mut self) {
        if self.config.role == Role::Offerer && self.config.direct.is_some() {
            self.offer().await;
        }
        let end = loop {
            let towards_session = self.to_session.has_room();
            let from_session =
                self.to_relay.has_room() && self.to_direct_bytes < outbox::QUEUE_BYTES;
            let direct_slot = self.sender.as_ref().map(PeerSender::slot);
            let step = tokio::select! {
                // Data-channel data first: when the peer closes the relay right after its last
                // direct message, that message must reach the session before the close does.
                biased;
                event = next_event(&mut self.peer), if towards_session => {
                    self.on_peer_event(event).await
                }
                message = self.relay.next(), if self.relay_closed.is_none() && towards_session => {
                    self.on_relay(message).await
                }
                message = self.inner.next(), if from_session => self.on_session(message),
                slot = self.to_session.slot(), if self.to_session.has_pending() => {
                    self.to_session.hand_over(slot);
                    if self.to_session.failed() {
                        self.session_stopped_reading();
                    }
                    Ok(())
                }
                slot = self.to_relay.slot(), if self.to_relay.has_pending() => {
                    // A relay that fails shows up as the relay's end on the next read.
                    self.to_relay.hand_over(slot);
                    Ok(())
                }
                slot = optional(direct_slot), if !self.to_direct.is_empty() => self.send_direct(slot),
                () = until(self.relay_closed.as_ref().map(|(_, deadline)| *deadline)) => {
                    Err(End::Broken(
                        "the relay closed and the direct path did not deliver the session's last data"
                            .into(),
                    ))
                }
            };
            let step = step.and_then(|()| self.flush_switch());
            if let Err(end) = step {
                break end;
            }
            if self.relay_closed.is_some() && self.switch.peer_done() {
                let frame = self.relay_closed.take().and_then(|(frame, _)| frame);
                break End::Relay(frame);
            }
            if self.switch.is_switched() && *self.status.borrow() != PathStatus::Direct {
                tracing::info!("direct: session switched to the direct path");
                self.status.send_replace(PathStatus::Direct);
                if let (Some(slot), Some(peer)) = (self.video_slot.take(), self.peer.as_mut())
                    && let Some(track) = peer.take_video()
                {
                    let _ = slot.send(track);
                }
            }
        };
        self.finish(end).await;
    }

    async fn offer(&mut self) {
        self.tried = true;
        match DirectPeer::offer(&self.gathering()).await {
            Ok((peer, sdp)) => {
                self.sender = Some(peer.sender());
                self.peer = Some(peer);
                self.offer_sdp = Some(sdp.clone());
                let text = RtcSignal::RtcOffer { sdp }.to_text();
                self.to_relay.push(Message::text(text));
            }
            Err(e) => self.give_up(format!("cannot make an offer: {e}")),
        }
    }

    /// No direct path for this session: it stays on the relay.
    fn give_up(&mut self, reason: String) {
        tracing::info!("direct: staying on the relay: {reason}");
        self.peer = None;
        self.sender = None;
        if !matches!(*self.status.borrow(), PathStatus::Direct) {
            self.status.send_replace(PathStatus::Relayed(reason));
        }
    }

    async fn on_peer_event(&mut self, event: Option<PeerEvent>) -> Result<(), End> {
        match event {
            Some(PeerEvent::Open) => {
                tracing::debug!("direct: data channel open");
                self.switch.direct_opened();
                Ok(())
            }
            Some(PeerEvent::Message(message)) => match self.joiner.push(message) {
                Ok(Some(payload)) => self.switch.direct_data(payload).map_err(broken),
                Ok(None) => Ok(()),
                Err(e) => Err(End::Broken(format!("on the data channel: {e}"))),
            },
            Some(PeerEvent::Closed(_)) | None => {
                let reason = match event {
                    Some(PeerEvent::Closed(reason)) => reason,
                    _ => "the direct path ended".to_owned(),
                };
                self.switch.direct_failed().map_err(broken)?;
                self.give_up(reason);
                Ok(())
            }
        }
    }

    async fn on_relay(
        &mut self,
        message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<(), End> {
        match message {
            Some(Ok(Message::Text(text))) => match RtcSignal::parse(&text) {
                RelayText::Session => self
                    .switch
                    .relay_data(Payload::Text(text.as_str().to_owned()))
                    .map_err(broken),
                RelayText::Switch(signal) => self.switch.relay_signal(signal).map_err(broken),
                RelayText::Signal(signal) => {
                    self.on_signal(signal).await;
                    Ok(())
                }
                RelayText::Bad(e) => {
                    tracing::warn!("direct: ignoring a bad signal from the peer: {e}");
                    Ok(())
                }
            },
            Some(Ok(Message::Binary(bytes))) => self
                .switch
                .relay_data(Payload::Binary(bytes.to_vec()))
                .map_err(broken),
            Some(Ok(Message::Close(frame))) => self.on_relay_closed(frame),
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => {
                tracing::debug!("direct: relay failed: {e}");
                self.on_relay_closed(None)
            }
            None => self.on_relay_closed(None),
        }
    }

    /// The relay's close may overtake the peer's last messages on the data channel: pass it on
    /// only once they are in (`rtcEnd`), waiting at most [`FLUSH_WAIT`].
    ///
    /// A policy close (1008) is the server ending the session (a right or a guest link revoked,
    /// the maximum length reached): it ends the session at once, on the direct path too, since
    /// nothing more may pass.
    fn on_relay_closed(&mut self, frame: Option<CloseFrame>) -> Result<(), End> {
        let revoked = frame.as_ref().is_some_and(|f| f.code == CloseCode::Policy);
        if revoked || self.switch.peer_done() || self.peer.is_none() {
            return Err(End::Relay(frame));
        }
        tracing::debug!("direct: relay closed; waiting for the peer's last direct messages");
        self.relay_closed = Some((frame, tokio::time::Instant::now() + FLUSH_WAIT));
        Ok(())
    }

    async fn on_signal(&mut self, signal: RtcSignal) {
        match (self.config.role, signal) {
            (Role::Answerer, RtcSignal::RtcOffer { sdp }) => self.answer(&sdp).await,
            (Role::Offerer, RtcSignal::RtcAnswer { sdp, proof }) => {
                let Some(peer) = &self.peer else { return };
                if let (Some(device), Some(offer)) = (&self.config.device, &self.offer_sdp)
                    && let Err(e) =
                        identity::check(proof.as_ref(), device, offer, &sdp, &RsaVerifier)
                {
                    tracing::warn!("direct: refusing the answer: {e}");
                    self.give_up(format!(
                        "the agent's direct-path identity did not verify: {e}"
                    ));
                    return;
                }
                if let Err(e) = peer.accept_answer(&sdp).await {
                    self.give_up(format!("the device's answer is unusable: {e}"));
                }
            }
            (Role::Offerer, RtcSignal::RtcUnavailable { reason }) => {
                self.give_up(format!("the device will not try: {reason}"));
            }
            (_, RtcSignal::RtcCandidate { candidate }) => {
                if let Some(peer) = &self.peer {
                    peer.add_remote_candidate(&candidate);
                }
            }
            (role, signal) => {
                tracing::warn!("direct: ignoring {signal:?}, unexpected for the {role:?}");
            }
        }
    }

    async fn answer(&mut self, offer: &str) {
        let reply = if self.tried {
            tracing::warn!("direct: ignoring a second offer in one session");
            return;
        } else if self.config.direct.is_none() {
            RtcSignal::RtcUnavailable {
                reason: "the device's group keeps sessions relayed".into(),
            }
        } else {
            self.tried = true;
            match DirectPeer::answer(offer, &self.gathering()).await {
                Ok((peer, sdp)) => {
                    self.sender = Some(peer.sender());
                    self.peer = Some(peer);
                    let proof = self.config.identity.as_ref().and_then(|id| {
                        identity::prove(id.signer.as_ref(), &id.public_key, offer, &sdp)
                    });
                    RtcSignal::RtcAnswer { sdp, proof }
                }
                Err(e) => {
                    let reason = format!("the agent cannot answer the offer: {e}");
                    self.give_up(reason.clone());
                    RtcSignal::RtcUnavailable { reason }
                }
            }
        };
        self.to_relay.push(Message::text(reply.to_text()));
    }

    fn on_session(
        &mut self,
        message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<(), End> {
        match message {
            Some(Ok(Message::Text(text))) => {
                self.switch.send(Payload::Text(text.as_str().to_owned()));
                Ok(())
            }
            Some(Ok(Message::Binary(bytes))) => {
                self.switch.send(Payload::Binary(bytes.to_vec()));
                Ok(())
            }
            Some(Ok(Message::Close(frame))) => Err(End::Session(frame)),
            Some(Ok(_)) => Ok(()),
            Some(Err(_)) | None => Err(End::Session(None)),
        }
    }

    /// Queues what the switch handed out and what it released, in order on each path.
    fn flush_switch(&mut self) -> Result<(), End> {
        while let Some(transmit) = self.switch.poll_transmit() {
            match transmit {
                Transmit::Signal(signal) => self.to_relay.push(Message::text(signal.to_text())),
                Transmit::Data {
                    path: Path::Relay,
                    payload,
                } => self.to_relay.push(to_message(payload)),
                Transmit::Data {
                    path: Path::Direct,
                    payload,
                } => {
                    if self.sender.is_none() {
                        // Sending switched, so this is always DirectLost.
                        self.switch.direct_failed().map_err(broken)?;
                        continue;
                    }
                    for piece in pieces::split(payload) {
                        self.to_direct_bytes += payload_len(&piece);
                        self.to_direct.push_back(piece);
                    }
                }
            }
        }
        while let Some(payload) = self.switch.poll_deliver() {
            self.to_session.push(to_message(payload));
        }
        Ok(())
    }

    /// Gives the next data-channel message to the peer, or learns the path is gone.
    fn send_direct(&mut self, slot: Option<PeerSlot>) -> Result<(), End> {
        match (slot, self.to_direct.pop_front()) {
            (Some(slot), Some(payload)) => {
                self.to_direct_bytes -= payload_len(&payload);
                slot.send(payload);
                Ok(())
            }
            _ => {
                self.to_direct.clear();
                self.to_direct_bytes = 0;
                self.switch.direct_failed().map_err(broken)
            }
        }
    }

    /// The session closed its socket (a program exited, say) while the peer was still sending:
    /// what it wrote before that (its exit status, its close) still waits in the pipe and must
    /// go out, so keep reading it; only what it would have read from now on is dropped.
    fn session_stopped_reading(&mut self) {
        if !self.session_gone {
            tracing::debug!("direct: the session stopped reading");
            self.session_gone = true;
        }
    }

    /// Hands all queued data-channel messages to the peer, for at most `wait`.
    async fn drain_direct(&mut self, wait: Duration) {
        let Some(sender) = self.sender.clone() else {
            return;
        };
        let _ = tokio::time::timeout(wait, async {
            while let Some(payload) = self.to_direct.pop_front() {
                self.to_direct_bytes -= payload_len(&payload);
                match sender.slot().await {
                    Some(slot) => slot.send(payload),
                    None => break,
                }
            }
        })
        .await;
    }

    async fn finish(mut self, end: End) {
        match end {
            End::Session(frame) => {
                // What the session sent last on the data channel must arrive before the relay
                // tells the peer the session is over; `rtcEnd` tells the peer it has it all.
                self.switch.finish();
                if self.flush_switch().is_err() {
                    tracing::debug!("direct: the session's last messages could not be sent");
                }
                self.drain_direct(FLUSH_WAIT).await;
                if self.switch.sending_path() == Path::Direct
                    && let Some(sender) = &self.sender
                {
                    let _ = tokio::time::timeout(FLUSH_WAIT, sender.flush()).await;
                }
                if let Some(totals) = self.totals() {
                    self.to_relay.push(Message::text(totals.to_text()));
                }
                self.to_relay.push(Message::Close(frame));
                self.to_relay.close(FLUSH_WAIT).await;
                let _ = tokio::time::timeout(CLOSE_WAIT, async {
                    while let Some(Ok(_)) = self.relay.next().await {}
                })
                .await;
            }
            End::Relay(frame) => {
                self.to_session.push(Message::Close(frame));
                self.to_session.close(FLUSH_WAIT).await;
                self.wait_for_session().await;
            }
            End::Broken(reason) => {
                tracing::warn!("direct: ending the session: {reason}");
                let frame = CloseFrame {
                    code: CloseCode::Error,
                    reason: reason.into(),
                };
                self.to_relay.push(Message::Close(Some(frame.clone())));
                self.to_session.push(Message::Close(Some(frame)));
                let (relay, session) = (&mut self.to_relay, &mut self.to_session);
                tokio::join!(relay.close(CLOSE_WAIT), session.close(CLOSE_WAIT));
                self.wait_for_session().await;
            }
        }
        self.status.send_replace(PathStatus::Ended);
    }

    /// Candidates to offer: host ones, and server-reflexive ones from the ticket's STUN servers.
    fn gathering(&self) -> Gathering {
        let ice_servers = self
            .config
            .direct
            .iter()
            .flat_map(|direct| &direct.ice_servers)
            .flat_map(|server| server.urls.iter().cloned())
            .collect();
        Gathering {
            allow_loopback: self.config.allow_loopback,
            ice_servers,
        }
    }

    /// For the server's audit record: what went each way on the data channel, if anything could.
    fn totals(&self) -> Option<RtcSignal> {
        let used = self.switch.sending_path() == Path::Direct
            || self.switch.receiving_path() == Path::Direct;
        let (sent, received) = self.switch.direct_bytes();
        let (to_device, from_device) = match self.config.role {
            Role::Offerer => (sent, received),
            Role::Answerer => (received, sent),
        };
        used.then_some(RtcSignal::RtcTotals {
            direct_to_device: to_device,
            direct_from_device: from_device,
        })
    }

    /// Lets the session read its close (and whatever came before it) and answer it.
    async fn wait_for_session(&mut self) {
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(_)) = self.inner.next().await {}
        })
        .await;
    }
}

/// Resolves at `deadline`; never without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What `slot` resolves to; `None` at once without one (no path to send on).
async fn optional<T>(slot: Option<impl Future<Output = Option<T>>>) -> Option<T> {
    match slot {
        Some(slot) => slot.await,
        None => None,
    }
}

fn payload_len(payload: &Payload) -> usize {
    match payload {
        Payload::Text(text) => text.len(),
        Payload::Binary(bytes) => bytes.len(),
    }
}

async fn next_event(peer: &mut Option<DirectPeer>) -> Option<PeerEvent> {
    match peer {
        Some(peer) => peer.next_event().await,
        None => std::future::pending().await,
    }
}

fn broken(e: SwitchError) -> End {
    End::Broken(e.to_string())
}

fn to_message(payload: Payload) -> Message {
    match payload {
        Payload::Text(text) => Message::text(text),
        Payload::Binary(bytes) => Message::binary(bytes),
    }
}
