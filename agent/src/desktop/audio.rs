//! The device's sound for a desktop viewer who turns the speaker on (`audio` request): what the
//! person at the screen hears, captured from their sound server's monitor of the default output
//! (or, where the group allows it and with a notice on the screen, their default microphone),
//! encoded as Opus, and sent with the session's pictures as [`BinaryKind::Audio`] frames (on the
//! relay, or on the direct path's data channel once the session has moved there).
//!
//! The capture runs as that person (`seat::SeatUser`): a sound server belongs to its user, and a
//! root agent is not a client of it. It is PulseAudio's `parec`, a client of PulseAudio and of
//! PipeWire's PulseAudio service alike, reading `@DEFAULT_MONITOR@`. Not cpal in the agent: cpal
//! would run inside the root process, which would need the user's server address and cookie
//! copied into its own environment, and a library's notion of the default device is the root
//! account's, not the user's. The raw samples come through a pipe; a thread of ours encodes them
//! (`opus.rs`) and drops packets when the session cannot keep up (sound is only worth hearing on
//! time).
//!
//! [`BinaryKind::Audio`]: tether_common::relay::desktop::BinaryKind::Audio

mod opus;

use std::io::Read;
use std::process::Stdio;
use std::time::Instant;

use tether_common::relay::desktop::{AudioHeader, AudioSource};
use tokio::sync::mpsc;

use crate::seat::{AsUserError, SeatUser};

pub(crate) use opus::CHANNELS;

/// Packets waiting for the session: a quarter of a second. Older ones are dropped.
const QUEUE: usize = 12;

/// What the capture thread hands the session.
#[derive(Debug)]
pub(crate) enum AudioOutput {
    /// One frame for the viewer: [`AudioHeader`] and an Opus packet.
    Frame(Vec<u8>),
    /// The capture stopped; why, for the viewer.
    Ended(String),
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum AudioError {
    #[error(transparent)]
    Seat(#[from] AsUserError),
    #[error("parec (pulseaudio-utils) is not installed, so the device's sound cannot be captured")]
    NoParec,
    #[error("the sound capture could not start: {0}")]
    Spawn(std::io::Error),
    #[error("the Opus encoder is unavailable: {0}")]
    Encoder(String),
}

/// A running capture; dropping it stops the capture program.
pub(crate) struct AudioStream {
    capture: tokio::process::Child,
}

impl Drop for AudioStream {
    fn drop(&mut self) {
        // SIGTERM, which `runuser` passes on to the capture and then closes its PAM session
        // (SIGKILL would leave the capture running until its next write to the closed pipe).
        // tokio reaps the process once it has exited.
        if let Some(pid) = self.capture.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

impl AudioStream {
    /// Starts capturing what the person using `display` hears, or what their microphone does.
    pub(crate) async fn start(
        display: &str,
        source: AudioSource,
    ) -> Result<(AudioStream, mpsc::Receiver<AudioOutput>), AudioError> {
        let device = match source {
            AudioSource::Output => "--device=@DEFAULT_MONITOR@",
            AudioSource::Microphone => "--device=@DEFAULT_SOURCE@",
        };
        let display = display.to_owned();
        let seat = tokio::task::spawn_blocking(move || SeatUser::find(Some(&display)))
            .await
            .map_err(|e| AudioError::Spawn(std::io::Error::other(e)))??;
        let mut encoder =
            opus::OpusEncoder::new().map_err(|e| AudioError::Encoder(e.to_string()))?;
        let mut command = seat.command(std::path::Path::new("parec"))?;
        command
            .args([
                "--raw",
                "--format=s16le",
                "--rate=48000",
                "--channels=2",
                "--latency-msec=20",
                device,
                "--client-name=tether-agent",
                "--stream-name=remote desktop",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => AudioError::NoParec,
            _ => AudioError::Spawn(e),
        })?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(AudioError::Spawn(std::io::Error::other("no pipes")));
        };
        let mut pcm = std::fs::File::from(stdout.into_owned_fd().map_err(AudioError::Spawn)?);
        let mut said = std::fs::File::from(stderr.into_owned_fd().map_err(AudioError::Spawn)?);
        let (frames, receiver) = mpsc::channel(QUEUE);
        let user = seat.user.name.clone();
        std::thread::Builder::new()
            .name("desktop-audio".into())
            .spawn(move || {
                let started = Instant::now();
                let mut buffer = vec![0u8; opus::FRAME_BYTES];
                let mut seq: u16 = 0;
                let why = loop {
                    if let Err(e) = pcm.read_exact(&mut buffer) {
                        // The capture ended: ours (the stream was dropped) or its own failure.
                        let mut text = String::new();
                        let _ = said.read_to_string(&mut text);
                        let text: String =
                            text.chars().filter(|c| !c.is_control()).take(300).collect();
                        break if text.trim().is_empty() {
                            format!("the sound capture stopped ({e})")
                        } else {
                            format!("the sound capture stopped: {}", text.trim())
                        };
                    }
                    let packets = match encoder.encode(&buffer) {
                        Ok(packets) => packets,
                        Err(e) => break format!("the Opus encoder failed: {e}"),
                    };
                    let captured_ms = started.elapsed().as_millis() as u32;
                    for packet in packets {
                        let frame = AudioHeader { seq, captured_ms }.frame(&packet);
                        seq = seq.wrapping_add(1);
                        match frames.try_send(AudioOutput::Frame(frame)) {
                            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                        }
                    }
                };
                tracing::info!(%user, "desktop: {why}");
                let _ = frames.blocking_send(AudioOutput::Ended(why));
            })
            .map_err(AudioError::Spawn)?;
        tracing::info!(user = %seat.user.name, display = %seat.display, "desktop: capturing the device's sound");
        Ok((AudioStream { capture: child }, receiver))
    }
}
