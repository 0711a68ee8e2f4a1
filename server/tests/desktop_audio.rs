//! The remote desktop's sound, end to end: a private PulseAudio daemon with a null sink plays a
//! 1 kHz tone (what the person at the device hears), the real agent on its own Xvfb captures it
//! when the viewer turns the speaker on, and the viewer, speaking the desktop protocol through
//! the real relay, decodes the Opus it receives and finds the tone by frequency. Turning the
//! speaker off stops the sound; without a sound server the viewer is told why there is none.
//! Build every binary first (`cargo build --workspace --bins`). Skips, saying why, when Xvfb or
//! PulseAudio is missing (not under CI).
//!
//! Figures (run alone): `cargo test -p tether-server --test desktop_audio figures -- --ignored
//! --nocapture` (agent CPU while streaming sound, Opus bit rate).

mod common;
#[allow(dead_code)]
#[path = "desktop/person.rs"]
mod person;
#[allow(dead_code)]
#[path = "relay/sockets.rs"]
mod sockets;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;
#[allow(dead_code)]
#[path = "desktop/viewer.rs"]
mod viewer;

use std::time::Duration;

use serde_json::json;
use tether_common::control::EditGroup;
use tether_common::relay::desktop::{AudioSource, DesktopEvent, DesktopRequest};
use tokio::time::Instant;

use support::{AgentProcess, Fixture};
use viewer::{Received, Viewer};
use xprobe::{PulseAudio, Xvfb, decode_opus, tone_power};

/// Collects `wanted` seconds of sound (Opus packets) and the bytes they took on the wire.
async fn listen(viewer: &mut Viewer, wanted: Duration) -> (Vec<Vec<u8>>, usize) {
    let (mut packets, mut bytes) = (Vec::new(), 0);
    let until = Instant::now() + support::DEADLINE;
    while packets.len() < (wanted.as_millis() / 20) as usize {
        match viewer.next_until(until).await {
            Some(Received::Audio {
                packet, wire_bytes, ..
            }) => {
                packets.push(packet);
                bytes += wire_bytes;
            }
            Some(Received::Picture { header, .. }) => viewer.ack(header.seq).await,
            Some(_) => {}
            None => panic!("only {} sound packets arrived", packets.len()),
        }
    }
    (packets, bytes)
}

/// An Xvfb, and a private PulseAudio playing a `hz` tone into its default output; `None` (the
/// kit says why) when either is missing.
fn sound_stack(hz: f64) -> Option<(Xvfb, PulseAudio)> {
    let xvfb = Xvfb::start(640, 480)?;
    let mut pulse = PulseAudio::start()?;
    pulse.play_tone(hz, 120);
    Some((xvfb, pulse))
}

/// What the agent needs to reach `pulse` (as the user's own session would tell it).
fn pulse_env(pulse: &PulseAudio) -> [(&str, &str); 2] {
    [
        ("PULSE_SERVER", pulse.server.as_str()),
        ("XDG_RUNTIME_DIR", pulse.runtime_dir.as_str()),
    ]
}

/// An agent on `xvfb` with `env`, and a desktop viewer of it.
async fn sound_session(
    fx: &mut Fixture,
    xvfb: &Xvfb,
    env: &[(&str, &str)],
) -> (AgentProcess, Viewer) {
    let agent = fx
        .online_agent_with_env("sound", &["--x-display", &xvfb.display], env)
        .await;
    let viewer = open_viewer(fx, &agent).await;
    (agent, viewer)
}

async fn open_viewer(fx: &Fixture, agent: &AgentProcess) -> Viewer {
    let start = json!({"codec": "jpeg"});
    Viewer::open(&fx.server, &fx.cookie, &agent.device_id, start).await
}

/// Asks for the device's sound (`source`) on or off.
async fn audio(viewer: &mut Viewer, on: bool, source: AudioSource) {
    viewer.send(&DesktopRequest::Audio { on, source }).await;
}

/// The next `audio` event.
async fn audio_event(viewer: &mut Viewer) -> DesktopEvent {
    viewer
        .event("audio", |e| matches!(e, DesktopEvent::Audio { .. }))
        .await
}

/// The next `audio` event that says the sound is off.
async fn audio_off(viewer: &mut Viewer) -> DesktopEvent {
    viewer
        .event("audio off", |e| {
            matches!(e, DesktopEvent::Audio { on: false, .. })
        })
        .await
}

/// Past the first packets (the encoder's start), the 1 kHz tone stands far above another
/// frequency in what `packets` decode to.
/// The reason the next "sound off" event gives (it must give one).
async fn off_reason(viewer: &mut Viewer) -> String {
    match audio_off(viewer).await {
        DesktopEvent::Audio { why: Some(why), .. } => why,
        other => panic!("sound off without a reason: {other:?}"),
    }
}

fn assert_tone(packets: &[Vec<u8>]) {
    let samples = decode_opus(packets);
    let steady = &samples[samples.len() / 3..];
    let (tone, other) = (
        tone_power(steady, 48_000.0, 1000.0),
        tone_power(steady, 48_000.0, 2500.0),
    );
    assert!(
        tone > other * 100.0,
        "1 kHz power {tone} against 2.5 kHz {other}"
    );
}

#[tokio::test]
async fn the_viewer_hears_what_the_device_plays_while_its_speaker_is_on() {
    let Some((xvfb, pulse)) = sound_stack(1000.0) else {
        return;
    };
    let mut fx = Fixture::start().await;
    let (_agent, mut viewer) = sound_session(&mut fx, &xvfb, &pulse_env(&pulse)).await;

    audio(&mut viewer, true, AudioSource::Output).await;
    let on = audio_event(&mut viewer).await;
    assert!(
        matches!(
            on,
            DesktopEvent::Audio {
                on: true,
                channels: Some(2),
                ..
            }
        ),
        "{on:?}"
    );
    let (packets, _) = listen(&mut viewer, Duration::from_secs(1)).await;
    assert_tone(&packets);

    // Speaker off: the sound stops (a packet or two may have been on their way).
    audio(&mut viewer, false, AudioSource::Output).await;
    let off = audio_off(&mut viewer).await;
    assert!(
        matches!(
            off,
            DesktopEvent::Audio {
                on: false,
                why: None,
                ..
            }
        ),
        "{off:?}"
    );
    let quiet_from = Instant::now() + Duration::from_millis(500);
    let mut late = 0;
    while let Some(received) = viewer
        .next_until(Instant::now() + Duration::from_secs(2))
        .await
    {
        if let Received::Audio { .. } = received {
            assert!(
                Instant::now() < quiet_from,
                "sound kept coming after the speaker was turned off"
            );
            late += 1;
        }
    }
    assert!(late <= 12, "{late} packets after off");
}

#[tokio::test]
async fn without_a_sound_server_the_viewer_is_told_why() {
    let Some(xvfb) = Xvfb::start(320, 240) else {
        return;
    };
    let mut fx = Fixture::start().await;
    let env = [("PULSE_SERVER", "unix:/nonexistent/pulse/native")];
    let (_agent, mut viewer) = sound_session(&mut fx, &xvfb, &env).await;
    audio(&mut viewer, true, AudioSource::Output).await;
    // parec starts, cannot connect, and ends: the viewer hears that, with parec's reason.
    let why = off_reason(&mut viewer).await;
    assert!(why.starts_with("the sound capture stopped"), "{why}");
}

#[tokio::test]
async fn the_microphone_is_heard_only_where_the_group_allows_it_and_never_unseen() {
    // The daemon has no microphone: its default source is the null sink's monitor, so the tone
    // is what "the microphone" hears.
    let Some((xvfb, pulse)) = sound_stack(1000.0) else {
        return;
    };
    let mut fx = Fixture::start().await;
    let (agent, mut viewer) = sound_session(&mut fx, &xvfb, &pulse_env(&pulse)).await;

    // Off by default: refused, with the reason.
    audio(&mut viewer, true, AudioSource::Microphone).await;
    match audio_off(&mut viewer).await {
        DesktopEvent::Audio {
            why: Some(why),
            source: AudioSource::Microphone,
            ..
        } => {
            assert!(why.contains("does not let viewers listen"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    viewer.close().await;

    // Allowed: the person at the device sees a notice while it lasts, and its button stops it.
    fx.control
        .ok(EditGroup {
            microphone: Some(true),
            ..EditGroup::of(fx.group.clone())
        })
        .await;
    let person = person::Person::at(&xvfb.display);
    let mut viewer = open_viewer(&fx, &agent).await;
    audio(&mut viewer, true, AudioSource::Microphone).await;
    let (notice, title) =
        person::at_the_device(person, |person| person.sees("Your microphone")).await;
    assert_eq!(title, "Your microphone is being listened to");
    let on = audio_event(&mut viewer).await;
    assert!(
        matches!(
            on,
            DesktopEvent::Audio {
                on: true,
                source: AudioSource::Microphone,
                ..
            }
        ),
        "{on:?}"
    );
    let (packets, _) = listen(&mut viewer, Duration::from_millis(600)).await;
    assert_tone(&packets);

    let person = person::Person::at(&xvfb.display);
    person.presses(notice, "Disconnect");
    let why = off_reason(&mut viewer).await;
    assert!(why.contains("turned the microphone off"), "{why}");
}

/// Agent CPU while it streams sound, and the Opus bit rate (release build: `TETHER_AGENT_BIN`).
#[tokio::test]
#[ignore = "a figure: run alone"]
async fn figures() {
    let Some((xvfb, pulse)) = sound_stack(440.0) else {
        return;
    };
    let mut fx = Fixture::start().await;
    let (agent, mut viewer) = sound_session(&mut fx, &xvfb, &pulse_env(&pulse)).await;
    audio(&mut viewer, true, AudioSource::Output).await;
    listen(&mut viewer, Duration::from_secs(2)).await;
    let before = support::cpu_seconds(agent.pid());
    let (_, bytes) = listen(&mut viewer, Duration::from_secs(10)).await;
    let used = support::cpu_seconds(agent.pid()) - before;
    // Over 10 s of sound.
    println!(
        "desktop sound: agent CPU {:.1} % of one core, Opus {:.1} kbit/s on the wire",
        used * 10.0,
        bytes as f64 * 8.0 / 10.0 / 1000.0
    );
}
