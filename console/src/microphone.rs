//! The administrator's microphone during a call (`call.rs`): captured with cpal (its PulseAudio
//! host on Linux, which resamples to what we ask for), encoded to Opus with libopus, 20 ms per
//! packet, and handed to the call's sound track. It runs only while a call that sends sound is
//! connected; muting sends silence (the RTP clock goes on, as a browser's disabled track does).
//!
//! A thread of its own owns the cpal stream (not `Send` on every platform) and the encoder; the
//! audio callback only copies samples into a bounded queue, so it never waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use tether_rtc::VoiceSender;

use crate::sound::{self, SAMPLE_RATE};

/// 20 ms at 48 kHz, mono: one Opus packet.
const PACKET_SAMPLES: usize = 960;
/// Speech, and what WebRTC peers send for a microphone by default.
const BITRATE: i32 = 32_000;
/// Callback buffers waiting for the encoder (each a few ms of sound): about a second.
const QUEUE: usize = 200;
/// How long opening waits for the input to start.
const OPEN_WAIT: Duration = Duration::from_secs(10);
/// How often the thread checks whether it should stop while no sound comes.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// A running microphone; dropping it stops the capture.
pub(crate) struct Microphone {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Microphone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts capturing from `input` (a name from `sound_inputs`; none or an unknown one: the
/// default input) into `voice`. Blocks until the input runs, at most [`OPEN_WAIT`].
pub(crate) fn start(
    input: Option<String>,
    voice: VoiceSender,
    muted: Arc<AtomicBool>,
) -> Result<Microphone, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let (started, start) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("tether-microphone".into())
        .spawn({
            let stop = stop.clone();
            move || capture(input, voice, muted, stop, started)
        })
        .map_err(|e| e.to_string())?;
    let microphone = Microphone {
        stop,
        thread: Some(thread),
    };
    start
        .recv_timeout(OPEN_WAIT)
        .map_err(|_| "the microphone did not start".to_owned())??;
    Ok(microphone)
}

/// The capture thread: opens the input, then encodes until told to stop or the call is gone.
fn capture(
    input: Option<String>,
    voice: VoiceSender,
    muted: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    started: mpsc::Sender<Result<(), String>>,
) {
    let (buffers, queue) = mpsc::sync_channel(QUEUE);
    let opened = open_input(input.as_deref(), buffers).and_then(|stream| {
        let mut encoder =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)
                .map_err(|e| e.to_string())?;
        encoder
            .set_bitrate(opus::Bitrate::Bits(BITRATE))
            .map_err(|e| e.to_string())?;
        Ok((stream, encoder))
    });
    let (stream, mut encoder) = match opened {
        Ok(opened) => opened,
        Err(why) => {
            eprintln!("tether-console: no microphone: {why}");
            let _ = started.send(Err(why));
            return;
        }
    };
    let _ = started.send(Ok(()));
    let mut frame = Vec::with_capacity(PACKET_SAMPLES * 2);
    while !stop.load(Ordering::Relaxed) {
        let Ok(buffer) = queue.recv_timeout(STOP_CHECK) else {
            continue;
        };
        frame.extend_from_slice(&buffer);
        while frame.len() >= PACKET_SAMPLES {
            let samples = &mut frame[..PACKET_SAMPLES];
            if muted.load(Ordering::Relaxed) {
                samples.fill(0.0);
            }
            let encoded = encoder.encode_vec_float(samples, sound::MAX_PACKET);
            frame.drain(..PACKET_SAMPLES);
            match encoded {
                Ok(packet) => {
                    if voice.send(packet, PACKET_SAMPLES as u32).is_err() {
                        // The call is gone.
                        return;
                    }
                }
                Err(e) => eprintln!("tether-console: the microphone's sound did not encode: {e}"),
            }
        }
    }
    drop(stream);
}

fn open_input(wanted: Option<&str>, buffers: SyncSender<Vec<f32>>) -> Result<cpal::Stream, String> {
    let host = cpal::default_host();
    let chosen = wanted.and_then(|name| {
        host.input_devices()
            .ok()?
            .find(|device| sound::device_name(device).as_deref() == Some(name))
    });
    if chosen.is_none()
        && let Some(name) = wanted
    {
        eprintln!("tether-console: no microphone named {name:?}; taking the default one");
    }
    let device = chosen
        .or_else(|| host.default_input_device())
        .ok_or("this machine has no sound input")?;
    eprintln!(
        "tether-console: capturing {:?}",
        sound::device_name(&device).unwrap_or_default()
    );
    let stream = sound::with_short_period(1, |config| {
        let buffers = buffers.clone();
        device.build_input_stream(
            config,
            // A full queue drops sound rather than make the audio thread wait.
            move |samples: &[f32], _| {
                let _ = buffers.try_send(samples.to_vec());
            },
            |e| eprintln!("tether-console: the microphone failed: {e}"),
            None,
        )
    })
    .map_err(|e| format!("cannot open the microphone: {e}"))?;
    stream
        .play()
        .map_err(|e| format!("cannot start the microphone: {e}"))?;
    Ok(stream)
}
