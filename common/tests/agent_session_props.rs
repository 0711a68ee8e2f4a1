//! Whatever happens, in whatever order and at whatever times, the agent session machine never
//! panics, its timers never point into the past, it sends only on an open connection, and every
//! tunnel it starts is counted until its end is reported.

mod agent_session_support;

use std::collections::HashSet;
use std::time::Duration;

use agent_session_support::*;
use proptest::prelude::*;
use tether_common::agent_session::{
    Action, AgentSession, BACKOFF_CAP, Input, ServerMessage, SessionConfig, Timestamp, TunnelId,
};

#[derive(Debug, Clone)]
enum Op {
    /// Time moves on by this many milliseconds and the driver reports it.
    Advance(u64),
    /// The driver wakes exactly at the machine's deadline.
    FireDeadline,
    /// The next input is stamped this much earlier than the latest time (a clock that steps back).
    StepBack(u64),
    Connected,
    ConnectFailed,
    Text(String),
    Binary(Vec<u8>),
    Control,
    Close,
    Lost,
    Info(Vec<String>),
    /// The end of the n-th tunnel ever handed out (perhaps reported already).
    FinishTunnel(usize),
}

fn text_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(PING_JSON.to_owned()),
        Just(PONG_JSON.to_owned()),
        "[a-z0-9]{1,6}".prop_map(|token| tunnel_json(&token)),
        Just(r#"{"action":"sysinfo"}"#.to_owned()),
        ".{0,40}",
    ]
}

fn binary_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..12),
        (0u16..16, prop::collection::vec(any::<u8>(), 0..6)).prop_map(|(command, body)| [
            &command.to_be_bytes()[..],
            &body
        ]
        .concat()),
        text_strategy().prop_map(String::into_bytes),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..120_000).prop_map(Op::Advance),
        4 => Just(Op::FireDeadline),
        1 => (0u64..10_000).prop_map(Op::StepBack),
        2 => Just(Op::Connected),
        1 => Just(Op::ConnectFailed),
        4 => text_strategy().prop_map(Op::Text),
        2 => binary_strategy().prop_map(Op::Binary),
        1 => Just(Op::Control),
        1 => Just(Op::Close),
        1 => Just(Op::Lost),
        1 => prop::collection::vec("[a-c]", 0..3).prop_map(Op::Info),
        2 => (0usize..16).prop_map(Op::FinishTunnel),
    ]
}

fn config_strategy() -> impl Strategy<Value = SessionConfig> {
    (
        1usize..4,
        0u64..5_000,
        0u64..10_000,
        0u64..10_000,
        0u64..10_000,
        0usize..4,
        0usize..3,
    )
        .prop_map(
            |(servers, ping, idle, info, stable, max_tunnels, max_turned_away)| SessionConfig {
                servers,
                ping_interval: Duration::from_millis(ping),
                idle_timeout: Duration::from_millis(idle),
                info_check_every: Duration::from_millis(info),
                stable_session: Duration::from_millis(stable),
                max_tunnels,
                max_turned_away,
            },
        )
}

/// The driver's view: what it was told to run, and the checks on every output.
struct Model {
    config: SessionConfig,
    /// Every tunnel ever handed out, in order.
    issued: Vec<TunnelId>,
    running: HashSet<TunnelId>,
}

impl Model {
    fn drain(&mut self, machine: &mut AgentSession) -> Result<(), TestCaseError> {
        let mut frames = 0;
        while machine.poll_transmit().is_some() {
            frames += 1;
        }
        prop_assert!(
            frames == 0 || machine.is_connected(),
            "frames to send without a connection"
        );
        let mut previous: Option<Action> = None;
        while let Some(action) = machine.poll_action() {
            match &action {
                Action::StartTunnel { id, .. } | Action::TurnAway { id, .. } => {
                    prop_assert!(
                        !self.issued.contains(id),
                        "tunnel id {id:?} handed out twice"
                    );
                    self.issued.push(*id);
                    self.running.insert(*id);
                }
                Action::Connect { server } => prop_assert!(*server < self.config.servers),
                Action::Reconnect { after } => {
                    prop_assert!(Duration::from_millis(500) <= *after && *after <= BACKOFF_CAP);
                }
                _ => {}
            }
            if matches!(previous, Some(Action::Close(_))) {
                prop_assert!(
                    matches!(action, Action::Reconnect { .. }),
                    "a close is followed by its reconnect, not {action:?}"
                );
            }
            previous = Some(action);
        }
        prop_assert!(
            !matches!(previous, Some(Action::Close(_))),
            "a close without a reconnect"
        );
        Ok(())
    }

    fn check_tunnels(&self, machine: &AgentSession) -> Result<(), TestCaseError> {
        let (serving, turning_away) = (machine.tunnels_serving(), machine.tunnels_turning_away());
        prop_assert_eq!(serving + turning_away, self.running.len());
        prop_assert!(serving <= self.config.max_tunnels);
        prop_assert!(turning_away <= self.config.max_turned_away);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_inputs_never_break_the_machine(
        config in config_strategy(),
        seed in any::<u64>(),
        ops in prop::collection::vec(op_strategy(), 1..120),
    ) {
        let mut machine = AgentSession::new(config.clone(), seed, Timestamp::ZERO);
        let mut model = Model { config, issued: Vec::new(), running: HashSet::new() };
        model.drain(&mut machine)?;
        let mut now = Timestamp::ZERO;
        let mut step_back = Duration::ZERO;
        // The deadline of the connection now open, which may only move later.
        let mut connection_deadline: Option<Timestamp> = None;
        for op in ops {
            let stamp = Timestamp::from_since_origin(now.since_origin().saturating_sub(step_back));
            step_back = Duration::ZERO;
            let was_connected = machine.is_connected();
            let mut fired = false;
            match op {
                Op::Advance(ms) => {
                    now = now + Duration::from_millis(ms);
                    machine.handle_timeout(now);
                    fired = true;
                }
                Op::FireDeadline => {
                    if let Some(deadline) = machine.poll_timeout() {
                        now = now.max(deadline);
                    }
                    machine.handle_timeout(now);
                    fired = true;
                }
                Op::StepBack(ms) => step_back = Duration::from_millis(ms),
                Op::Connected => machine.handle_input(stamp, Input::Connected),
                Op::ConnectFailed => machine.handle_input(stamp, Input::ConnectFailed),
                Op::Text(text) => {
                    machine.handle_input(stamp, Input::Message(ServerMessage::Text(&text)))
                }
                Op::Binary(frame) => {
                    machine.handle_input(stamp, Input::Message(ServerMessage::Binary(&frame)))
                }
                Op::Control => machine.handle_input(stamp, Input::Message(ServerMessage::Control)),
                Op::Close => machine.handle_input(
                    stamp,
                    Input::Message(ServerMessage::Close { detail: "None" }),
                ),
                Op::Lost => machine.handle_input(stamp, Input::ConnectionLost("lost".into())),
                Op::Info(users) => {
                    let users: Vec<&str> = users.iter().map(String::as_str).collect();
                    machine.handle_input(stamp, Input::MachineInfo(machine_info(&users, 1)));
                }
                Op::FinishTunnel(n) => {
                    if let Some(id) = model.issued.get(n).copied() {
                        machine.handle_input(stamp, Input::TunnelFinished(id));
                        model.running.remove(&id);
                    }
                }
            }
            model.drain(&mut machine)?;
            model.check_tunnels(&machine)?;

            let deadline = machine.poll_timeout();
            if fired && let Some(deadline) = deadline {
                prop_assert!(deadline > now, "after firing at {now:?} the timer says {deadline:?}");
            }
            if was_connected
                && machine.is_connected()
                && let (Some(before), Some(after)) = (connection_deadline, deadline)
            {
                prop_assert!(after >= before, "a connection's timer moved back: {before:?} -> {after:?}");
            }
            connection_deadline = if machine.is_connected() { deadline } else { None };
            if !machine.is_connected() && let Some(reconnect_at) = deadline {
                // Waiting to reconnect: never longer than the cap from now.
                prop_assert!(reconnect_at <= now + BACKOFF_CAP);
            }
        }
        // Report every tunnel's end: the slots all come back.
        for id in model.issued.clone() {
            machine.handle_input(now, Input::TunnelFinished(id));
            model.running.remove(&id);
        }
        model.check_tunnels(&machine)?;
        prop_assert_eq!(machine.tunnels_serving() + machine.tunnels_turning_away(), 0);
    }
}
