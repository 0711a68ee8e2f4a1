//! [`AgentSession`]: the phases of the agent's link to its server and what each input does in them.

use crate::agent_proto::{self, AgentToServer};
use std::collections::VecDeque;

use super::backoff::Backoff;
use super::info_report::InfoReport;
use super::keepalive::Keepalive;
use super::messages::{self, Incoming};
use super::tunnels::{Admission, Tunnels};
use super::{Action, CloseReason, Input, ServerMessage, SessionConfig, Timestamp, Transmit};

/// Reports waiting for a connection are few (one per offer); a cap keeps a flapping link from
/// piling them up.
const MAX_UNSENT_REPORTS: usize = 8;

#[derive(Debug)]
enum Phase {
    /// The driver is opening a connection ([`Action::Connect`]).
    Connecting,
    /// Boxed: the last `agentinfo` makes it far larger than the other phases.
    Connected(Box<Connection>),
    /// Waiting to reconnect at this moment.
    Waiting(Timestamp),
}

#[derive(Debug)]
struct Connection {
    since: Timestamp,
    keepalive: Keepalive,
    info: InfoReport,
}

/// The agent's control session, from its first connection attempt for as long as it runs.
#[derive(Debug)]
pub struct AgentSession {
    config: SessionConfig,
    phase: Phase,
    /// The latest time we were told; a clock that steps back is read as standing still.
    now: Timestamp,
    next_server: usize,
    backoff: Backoff,
    tunnels: Tunnels,
    transmit: VecDeque<Transmit>,
    actions: VecDeque<Action>,
    /// Update reports made while no connection was open, sent on the next.
    unsent_reports: Vec<String>,
}

impl AgentSession {
    /// Starts at `now` with the first connection attempt ([`Action::Connect`] to server 0) ready
    /// in [`AgentSession::poll_action`]. `jitter_seed` should be random: it spreads a fleet's
    /// reconnects.
    pub fn new(config: SessionConfig, jitter_seed: u64, now: Timestamp) -> AgentSession {
        let tunnels = Tunnels::new(config.max_tunnels, config.max_turned_away);
        let mut session = AgentSession {
            config,
            phase: Phase::Waiting(now),
            now,
            next_server: 0,
            backoff: Backoff::new(jitter_seed),
            tunnels,
            transmit: VecDeque::new(),
            actions: VecDeque::new(),
            unsent_reports: Vec::new(),
        };
        session.connect();
        session
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Takes in what happened at `now`. Inputs that make no sense in the current phase (a message
    /// while no connection is open, say) are ignored.
    pub fn handle_input(&mut self, now: Timestamp, input: Input<'_>) {
        self.advance_clock(now);
        match input {
            Input::TunnelFinished(id) => self.tunnels.finish(id),
            Input::Connected => {
                if matches!(self.phase, Phase::Connecting) {
                    self.phase = Phase::Connected(Box::new(Connection {
                        since: self.now,
                        keepalive: Keepalive::new(self.now, &self.config),
                        info: InfoReport::default(),
                    }));
                    // The first agentinfo goes out before anything else is served.
                    self.actions.push_back(Action::CollectInfo);
                    self.transmit
                        .extend(self.unsent_reports.drain(..).map(Transmit::Text));
                }
            }
            Input::ConnectFailed => {
                if matches!(self.phase, Phase::Connecting) {
                    self.backoff.connect_failed();
                    self.wait_to_reconnect();
                }
            }
            Input::Message(message) => self.on_message(&message),
            Input::ConnectionLost(why) => {
                if matches!(self.phase, Phase::Connected(_)) {
                    self.close(CloseReason::Lost(why));
                }
            }
            Input::UpdateFailed {
                version,
                running,
                why,
            } => {
                let report = agent_proto::to_json(&AgentToServer::UpdateFailed {
                    version,
                    running,
                    why,
                });
                if matches!(self.phase, Phase::Connected(_)) {
                    self.transmit.push_back(Transmit::Text(report));
                } else if self.unsent_reports.len() < MAX_UNSENT_REPORTS {
                    self.unsent_reports.push(report);
                }
            }
            Input::ChatOpened(report) => {
                if matches!(self.phase, Phase::Connected(_)) {
                    let text = agent_proto::to_json(&AgentToServer::ChatOpened(report));
                    self.transmit.push_back(Transmit::Text(text));
                }
            }
            Input::MachineInfo(info) => {
                if let Phase::Connected(connection) = &mut self.phase
                    && let Some(text) = connection.info.changed(info)
                {
                    self.transmit.push_back(Transmit::Text(text));
                }
            }
        }
    }

    /// Time has moved on to `now`: fires whatever is due.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.advance_clock(now);
        let now = self.now;
        match &mut self.phase {
            Phase::Connecting => {}
            Phase::Waiting(at) => {
                if now >= *at {
                    self.connect();
                }
            }
            Phase::Connected(connection) => {
                let keepalive = &mut connection.keepalive;
                if keepalive.is_silent(now) {
                    let idle = keepalive.idle_timeout();
                    self.close(CloseReason::Silent(idle));
                    return;
                }
                if keepalive.take_ping(now) {
                    // A WebSocket ping for the server and the TCP path, an application ping for
                    // proxies that answer WebSocket pings themselves.
                    self.transmit.push_back(Transmit::Ping);
                    self.transmit
                        .push_back(Transmit::Text(agent_proto::to_json(&AgentToServer::Ping)));
                }
                if keepalive.take_info_check(now) {
                    self.actions.push_back(Action::CollectInfo);
                }
            }
        }
    }

    /// When [`AgentSession::handle_timeout`] should be called next (`None`: only an input moves
    /// the machine on, as while connecting). Always later than the latest time given.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match &self.phase {
            Phase::Connecting => None,
            Phase::Waiting(at) => Some(*at),
            Phase::Connected(connection) => Some(connection.keepalive.deadline()),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit.pop_front()
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn is_connected(&self) -> bool {
        matches!(self.phase, Phase::Connected(_))
    }

    /// Consecutive failed connections (0 after one that lasted [`SessionConfig::stable_session`]).
    pub fn failures(&self) -> u32 {
        self.backoff.failures()
    }

    /// Tunnels being served now.
    pub fn tunnels_serving(&self) -> usize {
        self.tunnels.serving()
    }

    /// Tunnels being turned away now.
    pub fn tunnels_turning_away(&self) -> usize {
        self.tunnels.turning_away()
    }

    fn advance_clock(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
    }

    fn on_message(&mut self, message: &ServerMessage<'_>) {
        let Phase::Connected(connection) = &mut self.phase else {
            return;
        };
        // Any message at all, even a close, proves the path is alive.
        connection.keepalive.heard(self.now);
        match messages::classify(message) {
            Incoming::Tunnel(request) => {
                let action = match self.tunnels.admit() {
                    Admission::Serve(id) => Action::StartTunnel { id, request },
                    Admission::TurnAway(id) => Action::TurnAway {
                        id,
                        request,
                        message: format!(
                            "this device is already serving {} sessions at once; close one and try again",
                            self.config.max_tunnels
                        ),
                    },
                    Admission::Full => Action::DropTunnel { request },
                };
                self.actions.push_back(action);
            }
            Incoming::Uninstall(by) => self.actions.push_back(Action::Uninstall { by }),
            Incoming::Update(offer) => self.actions.push_back(Action::Update(offer)),
            Incoming::Rollback => self.actions.push_back(Action::Rollback),
            Incoming::OpenChat(open) => self.actions.push_back(Action::OpenChat(open)),
            Incoming::Ping => self
                .transmit
                .push_back(Transmit::Text(agent_proto::to_json(&AgentToServer::Pong))),
            Incoming::CoreModuleHashQuery => self
                .transmit
                .push_back(Transmit::Binary(messages::no_core_module())),
            Incoming::HandshakeCommand(command) => {
                self.close(CloseReason::HandshakeCommandAfterAuthentication(command))
            }
            Incoming::Closed(detail) => self.close(CloseReason::ClosedByServer(detail)),
            Incoming::Unknown => self.actions.push_back(Action::UnknownMessage),
            Incoming::Nothing => {}
        }
    }

    fn connect(&mut self) {
        let servers = self.config.servers.max(1);
        let server = self.next_server % servers;
        self.next_server = (server + 1) % servers;
        self.phase = Phase::Connecting;
        self.actions.push_back(Action::Connect { server });
    }

    /// Ends the open connection: nothing more goes out on it, and the reconnect is scheduled.
    fn close(&mut self, reason: CloseReason) {
        let Phase::Connected(connection) = &self.phase else {
            return;
        };
        let lasted = self.now.saturating_since(connection.since);
        self.transmit.clear();
        self.actions.push_back(Action::Close(reason));
        self.backoff
            .connection_ended(lasted >= self.config.stable_session);
        self.wait_to_reconnect();
    }

    fn wait_to_reconnect(&mut self) {
        let after = self.backoff.next_delay();
        self.phase = Phase::Waiting(self.now + after);
        self.actions.push_back(Action::Reconnect { after });
    }
}
