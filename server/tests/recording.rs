//! Session recording end to end: a group that records, the real agent and the real `tetherctl`.
//! A terminal session through the relay is written to the server's data folder frame for frame;
//! replaying the recording's output gives exactly the bytes tetherctl printed; it never goes
//! direct; it is listed for those who may read the group's audit log and nobody else; it exports
//! as asciicast; and sessions of a group that does not record leave no file. Build every binary
//! first (`cargo build --workspace --bins`).

mod common;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;

use support::Fixture;
use tether_common::control::{AddUser, EditGroup, ListEvents, ListRecordings};
use tether_common::recording::{Direction, parse};
use tether_common::relay::SessionKind;
use tether_common::relay::terminal::{OutputStream, decode_output};

/// A command whose output is worth checking: several lines, UTF-8, written in pieces.
const SCRIPT: &str =
    "for i in 1 2 3; do printf 'line %s ✓\\n' $i; sleep 0.05; done; printf 'done\\n'";

/// Turns recording on for the fixture's group.
async fn record_sessions(fx: &mut Fixture) -> tether_common::control::GroupInfo {
    let group = fx.group.clone();
    fx.control
        .ok(EditGroup {
            record_sessions: Some(true),
            ..EditGroup::of(group)
        })
        .await
}

#[tokio::test]
async fn a_recorded_terminal_session_replays_exactly_what_the_viewer_saw() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("rec", &[]).await;
    let device = agent.device_id.to_string();

    // Not recorded yet: a session leaves no file.
    let (status, _, err) = fx
        .tetherctl(
            &["exec", "--device", &device, "--", "sh", "-c", "true"],
            None,
        )
        .await;
    assert_eq!(status, 0, "{err}");
    assert!(
        fx.control
            .ok(ListRecordings { device: None })
            .await
            .is_empty()
    );

    let edited = record_sessions(&mut fx).await;
    assert!(edited.record_sessions && edited.direct_connections);

    // Even asked to go direct, a recorded session stays relayed.
    let (status, out, err) = fx
        .tetherctl(
            &[
                "exec", "--device", &device, "--direct", "auto", "--", "sh", "-c", SCRIPT,
            ],
            None,
        )
        .await;
    assert_eq!(status, 0, "{err}");
    assert_eq!(out, "line 1 ✓\nline 2 ✓\nline 3 ✓\ndone\n");

    let listed = fx
        .control
        .ok(ListRecordings {
            device: Some(agent.device_id.clone()),
        })
        .await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let recording = &listed[0];
    assert_eq!(recording.kind, SessionKind::Terminal);
    assert_eq!(recording.user, "admin");

    // The file as the server keeps it: the output frames, replayed, are what tetherctl printed.
    let path = fx
        .server
        .file("recordings")
        .join(format!("{}.tether-rec", recording.id));
    let bytes = std::fs::read(&path).expect("the recording is in the data folder");
    assert_eq!(bytes.len() as u64, recording.bytes);
    let (header, frames, problem) = parse(&bytes).expect("a recording");
    assert_eq!(problem, None);
    assert_eq!(header.device, device);
    let mut replayed = Vec::new();
    for frame in frames
        .iter()
        .filter(|f| f.direction == Direction::FromDevice && !f.text)
    {
        let (stream, data) = decode_output(&frame.payload).expect("exec output frames");
        assert_eq!(stream, OutputStream::Stdout);
        replayed.extend_from_slice(data);
    }
    assert_eq!(String::from_utf8(replayed).unwrap(), out);
    assert!(
        frames.windows(2).all(|w| w[0].at_ms <= w[1].at_ms),
        "times only grow"
    );
    assert!(
        !frames
            .iter()
            .any(|f| f.text && String::from_utf8_lossy(&f.payload).contains("\"rtcOffer\"")),
        "no direct-path signalling was recorded or passed on"
    );

    // tetherctl lists and exports it, as recorded and as asciicast.
    let (status, printed, err) = fx.tetherctl(&["recordings"], None).await;
    assert_eq!(status, 0, "{err}");
    assert!(printed.contains(&recording.id), "{printed}");
    let raw = fx.dir.path().join("session.tether-rec");
    let raw_arg = raw.display().to_string();
    let (status, _, err) = fx
        .tetherctl(&["recording", &recording.id, "--out", &raw_arg], None)
        .await;
    assert_eq!(status, 0, "{err}");
    assert_eq!(std::fs::read(&raw).unwrap(), bytes);
    let cast = fx.dir.path().join("session.cast");
    let cast_arg = cast.display().to_string();
    let (status, _, err) = fx
        .tetherctl(
            &[
                "recording",
                &recording.id,
                "--asciicast",
                "--out",
                &cast_arg,
            ],
            None,
        )
        .await;
    assert_eq!(status, 0, "{err}");
    let cast = std::fs::read_to_string(&cast).unwrap();
    let head: serde_json::Value = serde_json::from_str(cast.lines().next().unwrap()).unwrap();
    assert_eq!(head["version"], 2, "{cast}");
    assert!(cast.contains("line 2 ✓"), "{cast}");
    let (status, _, err) = fx
        .tetherctl(&["recording", "../../etc/passwd", "--out", &cast_arg], None)
        .await;
    assert_ne!(status, 0);
    assert!(err.contains("not a recording id"), "{err}");

    // Someone without the audit right on the group sees no recording, and cannot fetch one.
    fx.control
        .ok(AddUser {
            name: "eve".into(),
            password: "correct horse battery 9".into(),
            email: None,
            site_admin: false,
        })
        .await;
    let eve = fx.server.login("eve", "correct horse battery 9").await;
    let mut eve_control = fx.server.control(&eve).await;
    assert!(
        eve_control
            .ok(ListRecordings { device: None })
            .await
            .is_empty()
    );
    let response = fx
        .server
        .http_client()
        .get(format!("{}/api/recordings/{}", fx.server.url, recording.id))
        .header("cookie", format!("__Host-tether_session={eve}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // The session's record says it was recorded; downloads are audited.
    let records = fx.control.ok(ListEvents::default()).await;
    assert!(
        records.iter().any(|r| r.kind == "session_ended"
            && r.message
                .ends_with(&format!("; recorded ({})", recording.id))),
        "{records:?}"
    );
    assert!(
        records
            .iter()
            .filter(|r| r.kind == "recording_downloaded")
            .count()
            >= 2,
        "{records:?}"
    );
    agent.kill().await;
}

/// Figures, not a test (`cargo test -p tether-server --test recording -- --ignored --nocapture`):
/// what a recording stores per minute for a typing-like and a scrolling terminal, and what it
/// adds to the session's own bytes (its frame headers).
#[tokio::test]
#[ignore]
async fn recording_figures() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("figures", &[]).await;
    let device = agent.device_id.to_string();
    record_sessions(&mut fx).await;
    let scenes = [
        // Five characters a second, as a person types and the shell echoes.
        (
            "typing",
            "for i in $(seq 1 50); do printf 'k'; sleep 0.2; done",
        ),
        // A listing scrolling by as fast as the terminal takes it, for ten seconds.
        (
            "scrolling",
            "end=$(($(date +%s)+10)); while [ $(date +%s) -lt $end ]; do ls -l /usr/bin | head -40; done",
        ),
    ];
    for (scene, script) in scenes {
        let before: std::collections::HashSet<String> = fx
            .control
            .ok(ListRecordings { device: None })
            .await
            .into_iter()
            .map(|r| r.id)
            .collect();
        let started = std::time::Instant::now();
        let (status, out, err) = fx
            .tetherctl(
                &["exec", "--device", &device, "--", "sh", "-c", script],
                None,
            )
            .await;
        assert_eq!(status, 0, "{err}");
        let seconds = started.elapsed().as_secs_f64();
        let recording = fx
            .control
            .ok(ListRecordings { device: None })
            .await
            .into_iter()
            .find(|r| !before.contains(&r.id))
            .expect("the scene's recording");
        println!(
            "{scene}: {:.0} s, {} bytes of output, recording {} bytes = {:.1} KB/min, {:.1}% over the output",
            seconds,
            out.len(),
            recording.bytes,
            recording.bytes as f64 / seconds * 60.0 / 1000.0,
            (recording.bytes as f64 / out.len().max(1) as f64 - 1.0) * 100.0
        );
    }
    agent.kill().await;
}
