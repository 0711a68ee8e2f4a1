//! The agent's control session on a virtual clock: keepalive, idle timeout, answers, agentinfo,
//! backoff and the tunnel cap, each checked at exact times.

mod agent_session_support;

use std::time::Duration;

use agent_session_support::*;
use tether_common::agent_session::{
    Action, BACKOFF_CAP, CloseReason, Input, ServerMessage, SessionConfig, Transmit,
    reconnect_delay,
};

fn is_close(action: &Action) -> bool {
    matches!(action, Action::Close(_))
}

#[test]
fn pings_go_out_on_schedule_as_a_websocket_ping_and_a_json_ping() {
    let mut h = Harness::connected(60, 150);
    assert_eq!(h.machine.poll_timeout(), Some(at_secs(60)));
    for n in 1..=10u64 {
        h.run_until(at_ms(60_000 * n - 1));
        assert_eq!(h.sent(), [], "nothing before {}s", 60 * n);
        h.run_until(at_secs(60 * n));
        let log = h.take_log();
        let pings: Vec<_> = log
            .iter()
            .filter(|(_, o)| matches!(o, Output::Sent(_)))
            .cloned()
            .collect();
        assert_eq!(
            pings,
            [
                (at_secs(60 * n), Output::Sent(Transmit::Ping)),
                (
                    at_secs(60 * n),
                    Output::Sent(Transmit::Text(PING_JSON.into()))
                ),
            ]
        );
        // The server answers at once, which keeps the connection up.
        h.text(PONG_JSON);
    }
}

#[test]
fn a_late_timer_delays_the_next_ping_rather_than_bunching_them() {
    let mut h = Harness::connected(60, 150);
    // The driver was held up: it reports the 60 s deadline at 90 s.
    h.now = at_secs(90);
    h.machine.handle_timeout(h.now);
    let _ = h.take_log();
    assert_eq!(h.machine.poll_timeout(), Some(at_secs(150)));
    h.text(PONG_JSON);
    assert_eq!(h.machine.poll_timeout(), Some(at_secs(150)), "next ping");
}

#[test]
fn the_idle_timeout_fires_exactly_when_nothing_arrived_for_that_long() {
    let mut h = Harness::connected(60, 150);
    h.run_until(at_ms(149_999));
    assert!(!h.actions().iter().any(is_close), "not a millisecond early");
    assert!(h.machine.is_connected());
    h.run_until(at_secs(150));
    let log = h.take_log();
    assert_eq!(
        log.len(),
        2,
        "a close and a reconnect, no ping at 180 s: {log:?}"
    );
    assert_eq!(
        log[0],
        (
            at_secs(150),
            Output::Did(Action::Close(CloseReason::Silent(Duration::from_secs(150))))
        )
    );
    assert!(matches!(log[1], (t, Output::Did(Action::Reconnect { .. })) if t == at_secs(150)));
    assert!(!h.machine.is_connected());
    assert_eq!(
        CloseReason::Silent(Duration::from_secs(150)).to_string(),
        "the server went silent for 150s"
    );
}

#[test]
fn any_message_moves_the_idle_deadline() {
    let mut h = Harness::connected(60, 150);
    h.run_until(at_secs(100));
    // A WebSocket pong counts as much as a JSON one.
    h.input(Input::Message(ServerMessage::Control));
    h.run_until(at_ms(249_999));
    assert!(!h.actions().iter().any(is_close));
    h.run_until(at_secs(250));
    assert!(h.actions().iter().any(is_close), "150 s after the last one");
}

#[test]
fn pongs_keep_the_connection_up_for_hours() {
    let mut h = Harness::connected(60, 150);
    let mut pings = 0;
    for second in (10..=6 * 3600).step_by(10) {
        h.run_until(at_secs(second));
        for frame in h.sent() {
            if frame == Transmit::Text(PING_JSON.into()) {
                pings += 1;
                h.text(PONG_JSON);
            }
        }
    }
    assert!(h.machine.is_connected());
    assert_eq!(pings, 6 * 60, "one ping a minute");
}

#[test]
fn the_agent_answers_json_pings_in_text_and_binary_frames() {
    let mut h = Harness::connected(60, 150);
    h.text(PING_JSON);
    h.binary(PING_JSON.as_bytes());
    assert_eq!(
        h.sent(),
        [
            Transmit::Text(PONG_JSON.into()),
            Transmit::Text(PONG_JSON.into())
        ]
    );
}

#[test]
fn the_core_module_query_gets_meshagents_four_byte_answer() {
    let mut h = Harness::connected(60, 150);
    // Command 11 (core module hash), request id 0: "no core".
    h.binary(&[0, 11, 0, 0]);
    assert_eq!(h.sent(), [Transmit::Binary(vec![0, 11, 0, 0])]);
    // Other post-authentication commands, short frames and broken JSON are ignored.
    h.binary(&[0, 12, 1, 2]);
    h.binary(&[7]);
    h.binary(b"{\xff");
    assert_eq!(h.take_log(), []);
    assert!(h.machine.is_connected());
}

#[test]
fn unknown_actions_are_reported_and_ignored() {
    let mut h = Harness::connected(60, 150);
    h.text(r#"{"action":"sysinfo","hash":"x"}"#);
    h.text("not json");
    h.text(PONG_JSON);
    assert_eq!(
        h.actions(),
        [Action::UnknownMessage, Action::UnknownMessage],
        "a pong is known and needs nothing"
    );
}

#[test]
fn a_handshake_command_after_authentication_ends_the_connection() {
    let mut h = Harness::connected(60, 150);
    h.run_until(at_secs(60));
    let _ = h.take_log();
    h.binary(&[0, 3, 0, 0]);
    let actions = h.actions();
    assert_eq!(
        actions[0],
        Action::Close(CloseReason::HandshakeCommandAfterAuthentication(3))
    );
    assert!(matches!(actions[1], Action::Reconnect { .. }));
    assert_eq!(
        CloseReason::HandshakeCommandAfterAuthentication(3).to_string(),
        "handshake command 3 after authentication"
    );
    // Nothing more goes out on a closed connection, and nothing read counts any longer.
    h.text(PING_JSON);
    assert_eq!(h.take_log(), []);
}

#[test]
fn the_servers_close_and_a_lost_connection_carry_their_reasons() {
    let mut h = Harness::connected(60, 150);
    h.input(Input::Message(ServerMessage::Close { detail: "None" }));
    let close = h.actions().remove(0);
    assert_eq!(
        close,
        Action::Close(CloseReason::ClosedByServer("None".into()))
    );
    assert_eq!(
        CloseReason::ClosedByServer("None".into()).to_string(),
        "the server closed the connection (None)"
    );

    let mut h = Harness::connected(60, 150);
    h.run_until(at_secs(60));
    let _ = h.take_log();
    // A frame is queued, then the driver finds the socket dead before sending it.
    h.machine
        .handle_input(h.now, Input::Message(ServerMessage::Text(PING_JSON)));
    h.machine.handle_input(
        h.now,
        Input::ConnectionLost("the server stopped reading".into()),
    );
    assert_eq!(h.machine.poll_transmit(), None, "the pong is dropped");
    assert_eq!(
        h.machine.poll_action(),
        Some(Action::Close(CloseReason::Lost(
            "the server stopped reading".into()
        )))
    );
    assert_eq!(
        CloseReason::Lost("the server stopped reading".into()).to_string(),
        "the server stopped reading"
    );
}

#[test]
fn agentinfo_goes_out_on_connect_and_then_only_when_it_changed() {
    let mut h = Harness::new(
        SessionConfig::new(1, Duration::from_secs(60), Duration::from_secs(150)),
        1,
    );
    assert_eq!(h.actions(), [Action::Connect { server: 0 }]);
    h.input(Input::Connected);
    assert_eq!(h.actions(), [Action::CollectInfo], "collect at once");
    h.info(machine_info(&[], 10));
    let first = h.sent();
    assert!(
        matches!(&first[..], [Transmit::Text(t)] if t.starts_with(r#"{"action":"agentinfo","#)),
        "{first:?}"
    );

    for minute in 1..=3u64 {
        h.run_until(at_secs(60 * minute));
        h.text(PONG_JSON);
        assert!(h.actions().contains(&Action::CollectInfo), "every minute");
        h.info(machine_info(&[], 10 + 60 * minute));
        assert_eq!(h.sent(), [], "only the uptime moved");
    }
    h.info(machine_info(&["alice"], 250));
    assert_eq!(h.sent().len(), 1, "alice logged in");
    h.info(machine_info(&["alice"], 251));
    assert_eq!(h.sent(), []);

    // A new connection reports again, even if nothing changed: the server may have lost it.
    h.input(Input::ConnectionLost("connection failed: reset".into()));
    h.run_until(at_secs(3600));
    assert!(h.actions().contains(&Action::Connect { server: 0 }));
    h.input(Input::Connected);
    h.info(machine_info(&["alice"], 252));
    assert_eq!(h.sent().len(), 1);
}

#[test]
fn information_arriving_while_not_connected_is_ignored() {
    let mut h = Harness::new(
        SessionConfig::new(1, Duration::from_secs(60), Duration::from_secs(150)),
        1,
    );
    assert_eq!(h.actions(), [Action::Connect { server: 0 }]);
    h.info(machine_info(&[], 1));
    h.text(PING_JSON);
    assert_eq!(h.take_log(), []);
}

/// Fails the connection attempts one after another; returns each reconnect wait.
fn fail_repeatedly(h: &mut Harness, times: usize) -> Vec<Duration> {
    let mut waits = Vec::new();
    for _ in 0..times {
        let connect_at = h.machine.poll_timeout();
        if let Some(at) = connect_at {
            h.run_until(at);
        }
        let actions = h.actions();
        assert!(
            matches!(actions.last(), Some(Action::Connect { .. })),
            "{actions:?}"
        );
        h.input(Input::ConnectFailed);
        match h.actions()[..] {
            [Action::Reconnect { after }] => {
                assert_eq!(h.machine.poll_timeout(), Some(h.now + after));
                waits.push(after);
            }
            ref other => panic!("expected one reconnect, got {other:?}"),
        }
    }
    waits
}

#[test]
fn backoff_doubles_with_jitter_within_half_to_full_and_is_capped() {
    let config = SessionConfig::new(1, Duration::from_secs(60), Duration::from_secs(150));
    let mut per_seed = Vec::new();
    for seed in 0..50 {
        let mut h = Harness::new(config.clone(), seed);
        let waits = fail_repeatedly(&mut h, 10);
        for (n, wait) in waits.iter().enumerate() {
            let nominal = Duration::from_secs(1 << (n + 1)).min(BACKOFF_CAP);
            assert!(
                nominal / 2 <= *wait && *wait < nominal,
                "seed {seed}, failure {}: {wait:?} outside [{:?}, {nominal:?})",
                n + 1,
                nominal / 2
            );
        }
        assert_eq!(h.machine.failures(), 10);
        per_seed.push(waits[0]);
    }
    per_seed.sort();
    per_seed.dedup();
    assert!(per_seed.len() > 40, "jitter spreads a fleet: {per_seed:?}");
}

#[test]
fn the_connect_comes_exactly_when_the_wait_is_over() {
    let config = SessionConfig::new(1, Duration::from_secs(60), Duration::from_secs(150));
    let mut h = Harness::new(config, 3);
    let _ = h.take_log();
    h.input(Input::ConnectFailed);
    let [Action::Reconnect { after }] = h.actions()[..] else {
        panic!("one reconnect")
    };
    h.run_until(h.now + (after - Duration::from_millis(1)));
    assert_eq!(h.take_log(), []);
    h.run_until(h.now + Duration::from_millis(1));
    assert_eq!(h.actions(), [Action::Connect { server: 0 }]);
    assert_eq!(h.machine.poll_timeout(), None, "connecting: no timer");
}

#[test]
fn a_stable_connection_resets_the_backoff_and_a_short_one_does_not() {
    let config = SessionConfig::new(1, Duration::from_secs(60), Duration::from_secs(150));
    let mut h = Harness::new(config, 11);
    fail_repeatedly(&mut h, 5);
    assert_eq!(h.machine.failures(), 5);

    // Connected for 59 s, then dropped: still a failure.
    let connect_at = h.machine.poll_timeout().unwrap();
    h.run_until(connect_at);
    h.input(Input::Connected);
    h.run_until(connect_at + Duration::from_secs(59));
    h.text(PONG_JSON);
    h.input(Input::ConnectionLost(
        "the server closed the connection".into(),
    ));
    assert_eq!(h.machine.failures(), 6);

    // Connected for a minute: the next wait is the first one again.
    let connect_at = h.machine.poll_timeout().unwrap();
    h.run_until(connect_at);
    h.input(Input::Connected);
    h.run_until(connect_at + Duration::from_secs(60));
    h.text(PONG_JSON);
    let _ = h.take_log();
    h.input(Input::ConnectionLost(
        "the server closed the connection".into(),
    ));
    assert_eq!(h.machine.failures(), 0);
    let waits: Vec<Duration> = h
        .actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::Reconnect { after } => Some(after),
            _ => None,
        })
        .collect();
    assert_eq!(waits.len(), 1);
    assert!(reconnect_delay(0, 0.0) <= waits[0] && waits[0] < reconnect_delay(0, 1.0));
}

#[test]
fn connection_attempts_go_round_the_servers() {
    let config = SessionConfig::new(3, Duration::from_secs(60), Duration::from_secs(150));
    let mut h = Harness::new(config, 5);
    let mut servers = Vec::new();
    for _ in 0..7 {
        for action in h.actions() {
            if let Action::Connect { server } = action {
                servers.push(server);
            }
        }
        h.input(Input::ConnectFailed);
        let at = h.machine.poll_timeout().unwrap();
        h.run_until(at);
    }
    assert_eq!(servers, [0, 1, 2, 0, 1, 2, 0]);
}

#[test]
fn the_tunnel_cap_turns_away_then_drops_and_slots_come_back_across_reconnects() {
    let mut config = SessionConfig::new(1, Duration::from_secs(60), Duration::from_secs(150));
    config.max_tunnels = 3;
    config.max_turned_away = 2;
    let mut h = Harness::new(config, 9);
    h.input(Input::Connected);
    let _ = h.take_log();
    let mut started = Vec::new();
    for n in 0..3 {
        h.text(&tunnel_json(&format!("t{n}")));
        match h.actions()[..] {
            [Action::StartTunnel { id, ref request }] => {
                assert_eq!(request.url, format!("/meshrelay.ashx?id=t{n}"));
                started.push(id);
            }
            ref other => panic!("tunnel {n}: {other:?}"),
        }
    }
    let mut refused = Vec::new();
    for n in 3..5 {
        h.text(&tunnel_json(&format!("t{n}")));
        match h.actions()[..] {
            [
                Action::TurnAway {
                    id, ref message, ..
                },
            ] => {
                assert_eq!(
                    message,
                    "this device is already serving 3 sessions at once; close one and try again"
                );
                refused.push(id);
            }
            ref other => panic!("tunnel {n}: {other:?}"),
        }
    }
    h.text(&tunnel_json("t5"));
    assert!(matches!(h.actions()[..], [Action::DropTunnel { .. }]));
    assert_eq!(
        (
            h.machine.tunnels_serving(),
            h.machine.tunnels_turning_away()
        ),
        (3, 2)
    );

    // The connection drops; the sessions go on and still count.
    h.input(Input::ConnectionLost(
        "the server closed the connection".into(),
    ));
    let at = h.machine.poll_timeout().unwrap();
    h.run_until(at);
    h.input(Input::Connected);
    let _ = h.take_log();
    h.text(&tunnel_json("t6"));
    assert!(matches!(h.actions()[..], [Action::DropTunnel { .. }]));

    // One ends, whichever connection it came from: its slot is free again, once.
    h.input(Input::TunnelFinished(started[1]));
    h.input(Input::TunnelFinished(started[1]));
    h.input(Input::TunnelFinished(refused[0]));
    assert_eq!(
        (
            h.machine.tunnels_serving(),
            h.machine.tunnels_turning_away()
        ),
        (2, 1)
    );
    h.text(&tunnel_json("t7"));
    let [Action::StartTunnel { id, .. }] = h.actions()[..] else {
        panic!("a freed slot serves again")
    };
    assert!(
        !started.contains(&id) && !refused.contains(&id),
        "ids are never reused"
    );
    h.text(&tunnel_json("t8"));
    assert!(matches!(h.actions()[..], [Action::TurnAway { .. }]));
}

#[test]
fn the_default_cap_is_128_served_and_8_turned_away() {
    let mut h = Harness::connected(60, 150);
    let mut counts = (0, 0, 0);
    for n in 0..140 {
        h.text(&tunnel_json(&format!("t{n}")));
        for action in h.actions() {
            match action {
                Action::StartTunnel { .. } => counts.0 += 1,
                Action::TurnAway { .. } => counts.1 += 1,
                Action::DropTunnel { .. } => counts.2 += 1,
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(counts, (128, 8, 4));
}

#[test]
fn an_uninstall_request_names_who_asked_and_a_stranger_message_is_only_logged() {
    let config = SessionConfig::new(1, Duration::from_secs(60), Duration::from_secs(150));
    let mut h = Harness::new(config, 3);
    h.input(Input::Connected);
    let _ = h.take_log();
    h.text(r#"{"action":"uninstall","by":"alice"}"#);
    match &h.actions()[..] {
        [Action::Uninstall { by }] => assert_eq!(by.as_str(), "alice"),
        other => panic!("{other:?}"),
    }
    // Missing who asked: not an uninstall.
    h.text(r#"{"action":"uninstall"}"#);
    assert!(matches!(h.actions()[..], [Action::UnknownMessage]));
}

#[test]
fn an_openchat_becomes_an_action_and_its_report_goes_out_only_while_connected() {
    use tether_common::relay::chat::ChatOpened;
    let config = SessionConfig::new(1, Duration::from_secs(60), Duration::from_secs(150));
    let mut h = Harness::new(config, 3);
    h.input(Input::Connected);
    let _ = h.take_log();
    h.text(r#"{"action":"openchat","session":"s1","path":"/messenger#t=x","from":"alice"}"#);
    match &h.actions()[..] {
        [Action::OpenChat(open)] => assert_eq!(
            (open.session.as_str(), open.path.as_str()),
            ("s1", "/messenger#t=x")
        ),
        other => panic!("{other:?}"),
    }
    let report = ChatOpened {
        session: "s1".into(),
        user: Some("bob".into()),
        display: Some(":0".into()),
        error: None,
    };
    h.input(Input::ChatOpened(report.clone()));
    match &h.sent()[..] {
        [Transmit::Text(text)] => {
            assert_eq!(
                text,
                r#"{"action":"chatopened","session":"s1","user":"bob","display":":0"}"#
            )
        }
        other => panic!("{other:?}"),
    }
    // Disconnected: the administrator's wait is over; nothing is queued for later.
    h.input(Input::ConnectionLost("gone".into()));
    let _ = h.take_log();
    h.input(Input::ChatOpened(report));
    assert!(h.sent().is_empty());
}
