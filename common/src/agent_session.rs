//! The agent's control session as a sans-IO state machine: [`AgentSession`] decides, the agent's
//! driver (`agent/src/session.rs`) does the IO it asks for.
//!
//! One machine lives as long as the agent process, across reconnections: it chooses when to
//! (re)connect and to which server, keeps a connection alive (WebSocket and JSON pings, the idle
//! timeout), answers the server (JSON `ping`, the core-module query), decides when to send
//! `agentinfo`, and admits `tunnel` requests under a cap that spans connections (relay sessions
//! outlive the connection that asked for them).
//!
//! Driving it, like the handshake machines: feed what happened with [`AgentSession::handle_input`]
//! and, when the deadline from [`AgentSession::poll_timeout`] has passed,
//! [`AgentSession::handle_timeout`]; then drain [`AgentSession::poll_transmit`] (frames to send,
//! in order) and [`AgentSession::poll_action`] (everything else) until both return `None`.
//! Nothing here does IO, keeps time or draws randomness: every call is told the time as a
//! [`Timestamp`] on the driver's monotonic clock, and reconnect jitter comes from a seed the
//! driver passes in, so tests run the machine on a virtual clock.
//!
//! Wire formats are MeshCentral's and unchanged: JSON messages from [`crate::agent_proto`],
//! `tunnel` from [`crate::relay`], binary commands from [`crate::handshake::wire`].

mod backoff;
mod info_report;
mod keepalive;
mod machine;
mod messages;
mod tunnels;

use std::ops::Add;
use std::time::Duration;

use crate::agent_proto::AgentInfo;
use crate::relay::TunnelRequest;

pub use backoff::{BACKOFF_CAP, BACKOFF_FIRST, reconnect_delay};
pub use machine::AgentSession;
pub use tunnels::TunnelId;

/// Relay sessions the agent serves at once. The server's per-device quota (96 by default) keeps a
/// well-behaved server below it; this bounds the tasks, sockets and shells a flood of `tunnel`
/// requests could make.
pub const MAX_TUNNELS: usize = 128;
/// Requests past [`MAX_TUNNELS`] are answered through the relay with an error, this many at a
/// time (each holds a socket until the console comes); past that they are only logged.
pub const MAX_TURNED_AWAY: usize = 8;
/// How often the agent looks at its machine again, to send `agentinfo` if something changed.
pub const INFO_CHECK_EVERY: Duration = Duration::from_secs(60);
/// A connection that lasted this long resets the reconnect backoff.
pub const STABLE_SESSION: Duration = Duration::from_secs(60);

/// A point on the driver's monotonic clock, as the time since an origin the driver chose (say,
/// when it started). The machine never reads a clock; it compares the values it is given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(Duration);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(Duration::ZERO);

    pub fn from_since_origin(since_origin: Duration) -> Timestamp {
        Timestamp(since_origin)
    }

    pub fn since_origin(self) -> Duration {
        self.0
    }

    /// How long after `earlier` this is (zero if it is not after it).
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    /// Saturates: a deadline past the end of time is simply never reached.
    fn add(self, duration: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration))
    }
}

/// The session's settings; [`SessionConfig::new`] fills in the agent's defaults.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// How many server URLs the `.msh` names; connection attempts go round them in order.
    pub servers: usize,
    /// How often to ping the server while connected.
    pub ping_interval: Duration,
    /// Close the connection when nothing at all (not even a pong) arrived for this long.
    pub idle_timeout: Duration,
    pub info_check_every: Duration,
    pub stable_session: Duration,
    pub max_tunnels: usize,
    pub max_turned_away: usize,
}

impl SessionConfig {
    pub fn new(servers: usize, ping_interval: Duration, idle_timeout: Duration) -> SessionConfig {
        SessionConfig {
            servers,
            ping_interval,
            idle_timeout,
            info_check_every: INFO_CHECK_EVERY,
            stable_session: STABLE_SESSION,
            max_tunnels: MAX_TUNNELS,
            max_turned_away: MAX_TURNED_AWAY,
        }
    }
}

/// What happened, told to [`AgentSession::handle_input`].
#[derive(Debug, Clone, PartialEq)]
pub enum Input<'a> {
    /// The connection asked for by [`Action::Connect`] is open and authenticated.
    Connected,
    /// The connection asked for by [`Action::Connect`] could not be opened or authenticated (the
    /// driver logs why).
    ConnectFailed,
    /// A WebSocket message from the server.
    Message(ServerMessage<'a>),
    /// The connection broke: reading or sending failed, or the stream ended. The text is the
    /// reason to report, e.g. "the server stopped reading".
    ConnectionLost(String),
    /// The machine's current information, collected after [`Action::CollectInfo`].
    MachineInfo(AgentInfo),
    /// A tunnel from [`Action::StartTunnel`] or [`Action::TurnAway`] ended (whatever the outcome).
    TunnelFinished(TunnelId),
    /// An [`Action::Update`] or [`Action::Rollback`] came to nothing: tell the server (now, or as
    /// soon as a connection is open) so its rollout need not wait for a deadline.
    UpdateFailed {
        version: String,
        running: String,
        why: String,
    },
    /// What became of an [`Action::OpenChat`]. Sent only on an open connection: the
    /// administrator waiting for it has gone by the time another opens.
    ChatOpened(crate::relay::chat::ChatOpened),
}

/// One WebSocket message as read from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
    /// A WebSocket ping or pong: proof of life only (the WebSocket layer answers pings itself).
    Control,
    /// A close frame; `detail` describes it for the log (e.g. its code and reason).
    Close {
        detail: &'a str,
    },
}

/// A frame for the driver to send, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    Text(String),
    Binary(Vec<u8>),
    /// An empty WebSocket ping.
    Ping,
}

/// Something for the driver to do besides sending frames.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open and authenticate a connection to the `.msh`'s server number `server` (0-based), then
    /// report [`Input::Connected`] or [`Input::ConnectFailed`].
    Connect { server: usize },
    /// Read the machine's information and report it as [`Input::MachineInfo`] (or report nothing
    /// if it cannot be read; the next check comes anyway).
    CollectInfo,
    /// Serve this relay session on its own task; report [`Input::TunnelFinished`] when it ends.
    StartTunnel {
        id: TunnelId,
        request: TunnelRequest,
    },
    /// Over the cap: join the session only to send the console `message`, then report
    /// [`Input::TunnelFinished`].
    TurnAway {
        id: TunnelId,
        request: TunnelRequest,
        message: String,
    },
    /// Over the cap and over the turn-away allowance: do nothing but log it.
    DropTunnel { request: TunnelRequest },
    /// The server asks the agent to remove itself (for `by`): undo the installation and exit.
    Uninstall { by: crate::ids::UserId },
    /// The server offers another version: check it, fetch it, try it, then swap and restart
    /// (or report [`Input::UpdateFailed`]).
    Update(crate::agent_update::UpdateOffer),
    /// The server asks for the version that ran before the last update.
    Rollback,
    /// Open the messenger page for whoever is at the screen, then report
    /// [`Input::ChatOpened`].
    OpenChat(crate::relay::chat::OpenChat),
    /// A server message this agent does not know was ignored (worth a debug line).
    UnknownMessage,
    /// Close the connection (send a close frame, best effort) and report why.
    Close(CloseReason),
    /// The next [`Action::Connect`] comes after this wait (at [`AgentSession::poll_timeout`]).
    Reconnect { after: Duration },
}

/// Why a connection ended; the text is what the agent reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    #[error("the server went silent for {0:?}")]
    Silent(Duration),
    #[error("handshake command {0} after authentication")]
    HandshakeCommandAfterAuthentication(u16),
    #[error("the server closed the connection ({0})")]
    ClosedByServer(String),
    /// Reported by the driver through [`Input::ConnectionLost`].
    #[error("{0}")]
    Lost(String),
}
