//! [`MpsSession`]: the server's side of one CIRA connection, sans-IO. Messages from AMT go in
//! ([`MpsSession::handle`]), the server's decisions come in as calls (the login's result, channels
//! to open, data to send, data consumed), and messages to AMT and events for the server come out.
//!
//! The order AMT follows: PROTOCOLVERSION, `auth@` service, USERAUTH (password), `pfwd@` service,
//! a `tcpip-forward` per port it offers, then keepalives; the server opens `forwarded-tcpip`
//! channels to those ports. Anything out of that order ends the connection.
//!
//! Flow control is SSH's, both ways: the server sends on a channel only within the window AMT
//! granted, and grants AMT more only as the server's side consumes what arrived
//! ([`MpsSession::consumed`]), so a slow consumer slows AMT instead of filling memory.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::message::{AmtUuid, ApfMessage, Password};
use super::{
    AUTH_SERVICE, CANCEL_TCPIP_FORWARD, FORWARDED_TCPIP, MAX_CHANNEL_DATA, PASSWORD_METHOD,
    PFWD_SERVICE, TCPIP_FORWARD,
};

/// What the server grants AMT on a channel it opens, and tops up as it is consumed.
pub const RECEIVE_WINDOW: u32 = 256 * 1024;
/// Channels open at once on one connection (AMT serves a handful of sessions).
pub const MAX_CHANNELS: usize = 32;
/// How often AMT is asked to send a keepalive (seconds). The server drops a connection that has
/// been silent for three of these.
pub const KEEPALIVE_INTERVAL_S: u32 = 30;
/// SSH's "administratively prohibited", for channels AMT tries to open itself.
const OPEN_PROHIBITED: u32 = 1;
/// SSH disconnect reasons used here.
const DISCONNECT_PROTOCOL_ERROR: u32 = 2;
const DISCONNECT_AUTH_FAILED: u32 = 14;

/// Why a connection ends. After any of them the session sends a DISCONNECT (poll it out, then
/// close the TLS connection).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MpsError {
    #[error("AMT sent {got} while {expected} was due")]
    OutOfOrder {
        got: &'static str,
        expected: &'static str,
    },
    #[error("APF version {0}.{1} is not 1.x")]
    Version(u32, u32),
    #[error("AMT asked for the service {0:?}")]
    Service(String),
    #[error("AMT logs in with {0:?}; only password logins are served")]
    Method(String),
    #[error("the CIRA login was refused")]
    LoginRefused,
    #[error("AMT sent {len} bytes on channel {channel}, over the {window} it was granted")]
    WindowOverrun {
        channel: u32,
        len: usize,
        window: u32,
    },
    #[error("AMT named channel {0}, which is not open")]
    UnknownChannel(u32),
    #[error("port {0} is not forwarded by this AMT")]
    NotForwarded(u32),
    #[error("{MAX_CHANNELS} channels are open already")]
    TooManyChannels,
    #[error("AMT disconnected (reason {0})")]
    Disconnected(u32),
}

/// What the server has to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MpsEvent {
    /// AMT says who it is and logs in: check the credentials, then call
    /// [`MpsSession::login_result`].
    Login {
        uuid: AmtUuid,
        user: String,
        password: Password,
    },
    /// AMT offers one of its ports (the machine is reachable once the first comes).
    PortForwarded(u32),
    PortWithdrawn(u32),
    /// A channel the server opened is up: data may be sent on it.
    ChannelOpened(u32),
    /// AMT refused to open a channel.
    ChannelRefused {
        channel: u32,
        reason: u32,
    },
    /// Data from AMT on a channel; call [`MpsSession::consumed`] once it has gone on.
    ChannelData {
        channel: u32,
        data: Vec<u8>,
    },
    /// The channel is closed (by AMT, or both sides after the server's close).
    ChannelClosed(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Version,
    AuthService,
    Userauth,
    /// The server is checking the password.
    Authenticating,
    PfwdService,
    Forwarding,
    Closed,
}

impl Phase {
    fn expects(self) -> &'static str {
        match self {
            Phase::Version => "PROTOCOLVERSION",
            Phase::AuthService => "the auth service request",
            Phase::Userauth => "USERAUTH_REQUEST",
            Phase::Authenticating => "nothing (the login is being checked)",
            Phase::PfwdService => "the port-forwarding service request",
            Phase::Forwarding => "a forwarding message",
            Phase::Closed => "nothing (the connection is closed)",
        }
    }
}

#[derive(Debug)]
struct Channel {
    port: u32,
    /// AMT's id for the channel, once it confirmed.
    remote: Option<u32>,
    /// Bytes AMT will still take, and the largest message it takes.
    send_window: u32,
    max_packet: u32,
    /// Data waiting for window, in order.
    queued: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    /// Bytes AMT may still send before the server grants more, and bytes consumed since the last
    /// grant.
    receive_window: u32,
    consumed: u32,
    /// The server asked to close: the close goes out once the queue is empty.
    closing: bool,
    close_sent: bool,
}

/// One CIRA connection, from PROTOCOLVERSION to DISCONNECT.
#[derive(Debug)]
pub struct MpsSession {
    phase: Phase,
    uuid: Option<AmtUuid>,
    forwarded: BTreeSet<u32>,
    keepalive_asked: bool,
    channels: BTreeMap<u32, Channel>,
    next_channel: u32,
    out: VecDeque<ApfMessage>,
    events: VecDeque<MpsEvent>,
}

impl Default for MpsSession {
    fn default() -> Self {
        MpsSession::new()
    }
}

impl MpsSession {
    pub fn new() -> MpsSession {
        MpsSession {
            phase: Phase::Version,
            uuid: None,
            forwarded: BTreeSet::new(),
            keepalive_asked: false,
            channels: BTreeMap::new(),
            next_channel: 1,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The machine's UUID, once it said it.
    pub fn uuid(&self) -> Option<AmtUuid> {
        self.uuid
    }

    /// Whether the login succeeded (and the connection is not over).
    pub fn is_authenticated(&self) -> bool {
        matches!(self.phase, Phase::PfwdService | Phase::Forwarding)
    }

    /// The ports AMT forwards.
    pub fn forwarded_ports(&self) -> impl Iterator<Item = u32> + '_ {
        self.forwarded.iter().copied()
    }

    /// The next message to send to AMT.
    pub fn poll_transmit(&mut self) -> Option<ApfMessage> {
        self.out.pop_front()
    }

    /// The next event for the server.
    pub fn poll_event(&mut self) -> Option<MpsEvent> {
        self.events.pop_front()
    }

    /// A message from AMT. `Err` ends the connection; a DISCONNECT is queued to say so.
    pub fn handle(&mut self, message: ApfMessage) -> Result<(), MpsError> {
        let result = self.dispatch(message);
        if let Err(error) = &result {
            self.fail(error);
        }
        result
    }

    fn dispatch(&mut self, message: ApfMessage) -> Result<(), MpsError> {
        use ApfMessage as M;
        match (self.phase, message) {
            // Keepalives are answered whenever they come once AMT has said who it is.
            (phase, M::KeepaliveRequest { cookie })
                if !matches!(phase, Phase::Version | Phase::Closed) =>
            {
                self.out.push_back(M::KeepaliveReply { cookie });
                Ok(())
            }
            (_, M::KeepaliveReply { .. } | M::KeepaliveOptionsReply { .. }) => Ok(()),
            (_, M::Disconnect { reason }) => {
                self.close_all();
                self.phase = Phase::Closed;
                Err(MpsError::Disconnected(reason))
            }
            (
                Phase::Version,
                M::ProtocolVersion {
                    major, minor, uuid, ..
                },
            ) => {
                if major != 1 {
                    return Err(MpsError::Version(major, minor));
                }
                self.uuid = Some(uuid);
                self.phase = Phase::AuthService;
                Ok(())
            }
            (Phase::AuthService, M::ServiceRequest { service }) if service == AUTH_SERVICE => {
                self.out.push_back(M::ServiceAccept { service });
                self.phase = Phase::Userauth;
                Ok(())
            }
            (Phase::PfwdService, M::ServiceRequest { service }) if service == PFWD_SERVICE => {
                self.out.push_back(M::ServiceAccept { service });
                self.phase = Phase::Forwarding;
                Ok(())
            }
            (Phase::AuthService | Phase::PfwdService, M::ServiceRequest { service }) => {
                Err(MpsError::Service(service))
            }
            (
                Phase::Userauth,
                M::UserauthRequest {
                    user,
                    method,
                    password,
                    ..
                },
            ) => {
                if method != PASSWORD_METHOD {
                    return Err(MpsError::Method(method));
                }
                let uuid = self.uuid.expect("the version came first");
                self.events.push_back(MpsEvent::Login {
                    uuid,
                    user,
                    password,
                });
                self.phase = Phase::Authenticating;
                Ok(())
            }
            (Phase::Forwarding, message) => self.forwarding(message),
            (phase, message) => Err(MpsError::OutOfOrder {
                got: name(&message),
                expected: phase.expects(),
            }),
        }
    }

    fn forwarding(&mut self, message: ApfMessage) -> Result<(), MpsError> {
        use ApfMessage as M;
        match message {
            M::GlobalRequest {
                request,
                want_reply,
                port,
                ..
            } => {
                if request == TCPIP_FORWARD {
                    if self.forwarded.insert(port) {
                        self.events.push_back(MpsEvent::PortForwarded(port));
                    }
                    if want_reply {
                        self.out.push_back(M::RequestSuccess { port: Some(port) });
                    }
                    if !self.keepalive_asked {
                        self.keepalive_asked = true;
                        self.out.push_back(M::KeepaliveOptionsRequest {
                            interval: KEEPALIVE_INTERVAL_S,
                            timeout: 0,
                        });
                    }
                } else if request == CANCEL_TCPIP_FORWARD {
                    if self.forwarded.remove(&port) {
                        self.events.push_back(MpsEvent::PortWithdrawn(port));
                    }
                    if want_reply {
                        self.out.push_back(M::RequestSuccess { port: Some(port) });
                    }
                }
                Ok(())
            }
            // Read, so the stream goes on; the server relays no UDP for AMT.
            M::UdpSendTo { .. } => Ok(()),
            M::ChannelOpen { sender, .. } => {
                // The server opens channels; AMT may not open its own through the server.
                self.out.push_back(M::ChannelOpenFailure {
                    recipient: sender,
                    reason: OPEN_PROHIBITED,
                });
                Ok(())
            }
            M::ChannelOpenConfirmation {
                recipient,
                sender,
                window,
                max_packet,
            } => {
                let channel = self.channel(recipient)?;
                channel.remote = Some(sender);
                channel.send_window = window;
                channel.max_packet = max_packet;
                self.events.push_back(MpsEvent::ChannelOpened(recipient));
                self.flush(recipient);
                Ok(())
            }
            M::ChannelOpenFailure { recipient, reason } => {
                self.channel(recipient)?;
                self.channels.remove(&recipient);
                self.events.push_back(MpsEvent::ChannelRefused {
                    channel: recipient,
                    reason,
                });
                Ok(())
            }
            M::ChannelWindowAdjust { recipient, bytes } => {
                let channel = self.channel(recipient)?;
                channel.send_window = channel.send_window.saturating_add(bytes);
                self.flush(recipient);
                Ok(())
            }
            M::ChannelData { recipient, data } => {
                let channel = self.channel(recipient)?;
                if data.len() > channel.receive_window as usize {
                    return Err(MpsError::WindowOverrun {
                        channel: recipient,
                        len: data.len(),
                        window: channel.receive_window,
                    });
                }
                channel.receive_window -= data.len() as u32;
                if !data.is_empty() {
                    self.events.push_back(MpsEvent::ChannelData {
                        channel: recipient,
                        data,
                    });
                }
                Ok(())
            }
            M::ChannelClose { recipient } => {
                let channel = self.channel(recipient)?;
                if !channel.close_sent
                    && let Some(remote) = channel.remote
                {
                    self.out.push_back(M::ChannelClose { recipient: remote });
                }
                self.channels.remove(&recipient);
                self.events.push_back(MpsEvent::ChannelClosed(recipient));
                Ok(())
            }
            other => Err(MpsError::OutOfOrder {
                got: name(&other),
                expected: Phase::Forwarding.expects(),
            }),
        }
    }

    /// The server's verdict on the [`MpsEvent::Login`]. A refusal ends the connection.
    pub fn login_result(&mut self, accepted: bool) -> Result<(), MpsError> {
        if self.phase != Phase::Authenticating {
            return Ok(());
        }
        if accepted {
            self.out.push_back(ApfMessage::UserauthSuccess);
            self.phase = Phase::PfwdService;
            Ok(())
        } else {
            self.out.push_back(ApfMessage::UserauthFailure);
            let error = MpsError::LoginRefused;
            self.fail(&error);
            Err(error)
        }
    }

    /// Opens a channel to one of the ports AMT forwards; [`MpsEvent::ChannelOpened`] says when
    /// data can flow (data sent before is queued).
    pub fn open_channel(&mut self, port: u32) -> Result<u32, MpsError> {
        if self.phase != Phase::Forwarding || !self.forwarded.contains(&port) {
            return Err(MpsError::NotForwarded(port));
        }
        if self.channels.len() >= MAX_CHANNELS {
            return Err(MpsError::TooManyChannels);
        }
        let id = self.next_channel;
        self.next_channel = self.next_channel.wrapping_add(1).max(1);
        self.channels.insert(
            id,
            Channel {
                port,
                remote: None,
                send_window: 0,
                max_packet: 0,
                queued: VecDeque::new(),
                queued_bytes: 0,
                receive_window: RECEIVE_WINDOW,
                consumed: 0,
                closing: false,
                close_sent: false,
            },
        );
        self.out.push_back(ApfMessage::ChannelOpen {
            channel_type: FORWARDED_TCPIP.into(),
            sender: id,
            window: RECEIVE_WINDOW,
            max_packet: 0xFFFF_FFFF,
            target_address: String::new(),
            target_port: port,
            origin_address: "127.0.0.1".into(),
            origin_port: 0,
        });
        Ok(id)
    }

    /// The port a channel goes to.
    pub fn channel_port(&self, channel: u32) -> Option<u32> {
        self.channels.get(&channel).map(|c| c.port)
    }

    /// Queues data for AMT on `channel`; it goes out as AMT's window allows. The caller keeps
    /// [`MpsSession::queued`] small (that is its backpressure).
    pub fn send(&mut self, channel: u32, data: Vec<u8>) -> Result<(), MpsError> {
        let entry = self.channel(channel)?;
        if entry.closing || data.is_empty() {
            return Ok(());
        }
        entry.queued_bytes += data.len();
        entry.queued.push_back(data);
        self.flush(channel);
        Ok(())
    }

    /// Bytes queued on `channel` that AMT's window has not let out yet.
    pub fn queued(&self, channel: u32) -> usize {
        self.channels.get(&channel).map_or(0, |c| c.queued_bytes)
    }

    /// The server's side has passed on `bytes` of what arrived on `channel`: AMT may send that
    /// much more (granted in steps of half the window, as SSH peers do).
    pub fn consumed(&mut self, channel: u32, bytes: usize) {
        let Some(entry) = self.channels.get_mut(&channel) else {
            return;
        };
        entry.consumed = entry.consumed.saturating_add(bytes as u32);
        if entry.consumed >= RECEIVE_WINDOW / 2
            && let Some(remote) = entry.remote
        {
            let grant = entry.consumed;
            entry.receive_window = entry.receive_window.saturating_add(grant);
            entry.consumed = 0;
            self.out.push_back(ApfMessage::ChannelWindowAdjust {
                recipient: remote,
                bytes: grant,
            });
        }
    }

    /// Closes `channel` once what is queued on it has gone out.
    pub fn close_channel(&mut self, channel: u32) {
        if let Some(entry) = self.channels.get_mut(&channel) {
            entry.closing = true;
            self.flush(channel);
        }
    }

    fn channel(&mut self, id: u32) -> Result<&mut Channel, MpsError> {
        self.channels
            .get_mut(&id)
            .ok_or(MpsError::UnknownChannel(id))
    }

    /// Sends what the window allows, then the close if one is due.
    fn flush(&mut self, id: u32) {
        let Some(channel) = self.channels.get_mut(&id) else {
            return;
        };
        let Some(remote) = channel.remote else {
            return;
        };
        let largest = (channel.max_packet as usize).clamp(1, MAX_CHANNEL_DATA);
        while let Some(front) = channel.queued.front_mut() {
            let room = (channel.send_window as usize).min(largest);
            if room == 0 {
                break;
            }
            let data = if front.len() <= room {
                channel.queued.pop_front().expect("a front")
            } else {
                let rest = front.split_off(room);
                std::mem::replace(front, rest)
            };
            channel.send_window -= data.len() as u32;
            channel.queued_bytes -= data.len();
            self.out.push_back(ApfMessage::ChannelData {
                recipient: remote,
                data,
            });
        }
        if channel.closing && channel.queued.is_empty() && !channel.close_sent {
            channel.close_sent = true;
            self.out
                .push_back(ApfMessage::ChannelClose { recipient: remote });
        }
    }

    /// The server ends the connection (it is stopping, or the stream broke): a DISCONNECT goes
    /// out and every channel closes.
    pub fn disconnect(&mut self, reason: u32) {
        if self.phase == Phase::Closed {
            return;
        }
        self.out.push_back(ApfMessage::Disconnect { reason });
        self.close_all();
        self.phase = Phase::Closed;
    }

    fn close_all(&mut self) {
        let ids: Vec<u32> = self.channels.keys().copied().collect();
        for id in ids {
            self.events.push_back(MpsEvent::ChannelClosed(id));
        }
        self.channels.clear();
    }

    fn fail(&mut self, error: &MpsError) {
        if self.phase == Phase::Closed {
            return;
        }
        let reason = match error {
            MpsError::LoginRefused => DISCONNECT_AUTH_FAILED,
            _ => DISCONNECT_PROTOCOL_ERROR,
        };
        self.out.push_back(ApfMessage::Disconnect { reason });
        self.close_all();
        self.phase = Phase::Closed;
    }
}

fn name(message: &ApfMessage) -> &'static str {
    use ApfMessage as M;
    match message {
        M::ProtocolVersion { .. } => "PROTOCOLVERSION",
        M::ServiceRequest { .. } => "SERVICE_REQUEST",
        M::ServiceAccept { .. } => "SERVICE_ACCEPT",
        M::UserauthRequest { .. } => "USERAUTH_REQUEST",
        M::UserauthFailure => "USERAUTH_FAILURE",
        M::UserauthSuccess => "USERAUTH_SUCCESS",
        M::GlobalRequest { .. } | M::UdpSendTo { .. } => "GLOBAL_REQUEST",
        M::RequestSuccess { .. } => "REQUEST_SUCCESS",
        M::RequestFailure => "REQUEST_FAILURE",
        M::ChannelOpen { .. } => "CHANNEL_OPEN",
        M::ChannelOpenConfirmation { .. } => "CHANNEL_OPEN_CONFIRMATION",
        M::ChannelOpenFailure { .. } => "CHANNEL_OPEN_FAILURE",
        M::ChannelWindowAdjust { .. } => "CHANNEL_WINDOW_ADJUST",
        M::ChannelData { .. } => "CHANNEL_DATA",
        M::ChannelClose { .. } => "CHANNEL_CLOSE",
        M::Disconnect { .. } => "DISCONNECT",
        M::KeepaliveRequest { .. } => "KEEPALIVE_REQUEST",
        M::KeepaliveReply { .. } => "KEEPALIVE_REPLY",
        M::KeepaliveOptionsRequest { .. } => "KEEPALIVE_OPTIONS_REQUEST",
        M::KeepaliveOptionsReply { .. } => "KEEPALIVE_OPTIONS_REPLY",
    }
}
