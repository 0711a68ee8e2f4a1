//! A virtual clock and a recording driver for the agent session machine.

#![allow(dead_code)] // each test file uses its own part of the kit

use std::time::Duration;

use tether_common::agent_proto::AgentInfo;
use tether_common::agent_session::{
    Action, AgentSession, Input, ServerMessage, SessionConfig, Timestamp, Transmit,
};
use tether_common::relay::{SessionKind, TunnelRequest};
use tether_common::rights::Rights;

pub const PING_JSON: &str = r#"{"action":"ping"}"#;
pub const PONG_JSON: &str = r#"{"action":"pong"}"#;

pub fn at_ms(ms: u64) -> Timestamp {
    Timestamp::from_since_origin(Duration::from_millis(ms))
}

pub fn at_secs(secs: u64) -> Timestamp {
    at_ms(secs * 1000)
}

/// What came out of the machine, in order, with the time it came out.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Sent(Transmit),
    Did(Action),
}

/// The machine on a virtual clock: time moves only when a test says so, and every deadline the
/// machine asks for is met exactly.
pub struct Harness {
    pub machine: AgentSession,
    pub now: Timestamp,
    pub log: Vec<(Timestamp, Output)>,
}

impl Harness {
    pub fn new(config: SessionConfig, seed: u64) -> Harness {
        let mut harness = Harness {
            machine: AgentSession::new(config, seed, Timestamp::ZERO),
            now: Timestamp::ZERO,
            log: Vec::new(),
        };
        harness.drain();
        harness
    }

    /// A machine with pings every `ping` seconds and an idle timeout of `idle` seconds, one
    /// server, connected at time 0 (its first agentinfo collection taken off the log).
    pub fn connected(ping: u64, idle: u64) -> Harness {
        let config = SessionConfig::new(1, Duration::from_secs(ping), Duration::from_secs(idle));
        let mut harness = Harness::new(config, 7);
        harness.input(Input::Connected);
        harness.log.clear();
        harness
    }

    /// Runs the clock to `until`, firing every deadline on the way at its exact time.
    pub fn run_until(&mut self, until: Timestamp) {
        while let Some(deadline) = self.machine.poll_timeout() {
            if deadline > until {
                break;
            }
            self.now = self.now.max(deadline);
            self.machine.handle_timeout(self.now);
            self.drain();
        }
        self.now = self.now.max(until);
    }

    pub fn input(&mut self, input: Input<'_>) {
        self.machine.handle_input(self.now, input);
        self.drain();
    }

    pub fn text(&mut self, text: &str) {
        self.input(Input::Message(ServerMessage::Text(text)));
    }

    pub fn binary(&mut self, frame: &[u8]) {
        self.input(Input::Message(ServerMessage::Binary(frame)));
    }

    pub fn info(&mut self, info: AgentInfo) {
        self.input(Input::MachineInfo(info));
    }

    fn drain(&mut self) {
        loop {
            if let Some(frame) = self.machine.poll_transmit() {
                self.log.push((self.now, Output::Sent(frame)));
            } else if let Some(action) = self.machine.poll_action() {
                self.log.push((self.now, Output::Did(action)));
            } else {
                return;
            }
        }
    }

    pub fn take_log(&mut self) -> Vec<(Timestamp, Output)> {
        std::mem::take(&mut self.log)
    }

    /// The actions taken since the log was last taken.
    pub fn actions(&mut self) -> Vec<Action> {
        self.take_log()
            .into_iter()
            .filter_map(|(_, output)| match output {
                Output::Did(action) => Some(action),
                Output::Sent(_) => None,
            })
            .collect()
    }

    /// The frames sent since the log was last taken.
    pub fn sent(&mut self) -> Vec<Transmit> {
        self.take_log()
            .into_iter()
            .filter_map(|(_, output)| match output {
                Output::Sent(frame) => Some(frame),
                Output::Did(_) => None,
            })
            .collect()
    }
}

pub fn tunnel_json(token: &str) -> String {
    TunnelRequest {
        url: format!("/meshrelay.ashx?id={token}"),
        kind: SessionKind::Files,
        rights: Rights::FILES,
        user: "alice".into(),
        direct: None,
        consent: None,
        microphone: false,
    }
    .to_json()
}

pub fn machine_info(users: &[&str], uptime_secs: u64) -> AgentInfo {
    AgentInfo {
        hostname: "pc1".into(),
        users: users.iter().map(|u| u.to_string()).collect(),
        uptime_secs,
        ..AgentInfo::default()
    }
}
