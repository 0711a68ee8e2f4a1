//! The device's sound, played by the app itself: the desktop viewer's page hands over the Opus
//! packets it gets (relayed or direct) and this decodes them with libopus and plays them with
//! cpal, on the output the user chose in the viewer's settings (or the system's default). The
//! webview's own audio (WebKitGTK's GStreamer) is not used.
//!
//! Each player is a thread of its own that owns the cpal stream (not `Send` on every platform)
//! and the decoder; packets reach it through a bounded queue (sound is lossy: a full queue drops
//! the packet rather than stall the page), and decoded samples wait in a small jitter buffer the
//! audio callback drains. A call's sound (`call.rs`) plays through the same players, and the
//! microphones a call may capture from are listed here too (`microphone.rs` captures).

mod jitter;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use serde::Serialize;
use tauri::ipc::Request;
use tauri::{Runtime, State, Webview};

use crate::{raw_invoke, remote_access};
use jitter::Jitter;

/// The agent's Opus: 48 kHz, 20 ms packets (`agent/src/desktop/audio/opus.rs`); calls too.
pub(crate) const SAMPLE_RATE: u32 = 48_000;
const PACKET_SAMPLES: usize = 960;
/// Packets waiting for the decoder; about a second of sound.
const QUEUE: usize = 50;
/// A packet bigger than this is not one of the agent's (Opus's own maximum is 1275 bytes a frame);
/// the microphone's encoder writes at most this much too.
pub(crate) const MAX_PACKET: usize = 4000;
/// The header naming the player a `sound_push` is for.
const PLAYER_HEADER: &str = "tether-sound";
/// Players at once: one per desktop session with its sound on; more is a page gone wrong (each is
/// a thread and an output stream).
const MAX_PLAYERS: usize = 8;
/// How long opening waits for the output to start.
const OPEN_WAIT: Duration = Duration::from_secs(10);
/// The audio callback's period, in frames: 20 ms, one Opus packet. Asked for because a stream
/// that leaves it to the sound server gets PulseAudio's default buffering, about two seconds
/// (measured: a call's sound took 1.8 s from the app's microphone to the other side's ears).
pub(crate) const PERIOD_FRAMES: u32 = 960;

#[derive(Default)]
pub(crate) struct Players {
    next_id: AtomicU32,
    open: Mutex<HashMap<u32, SyncSender<Vec<u8>>>>,
}

impl Players {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, SyncSender<Vec<u8>>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A sound device the user may choose, by the name the settings keep.
#[derive(Debug, Serialize)]
pub(crate) struct SoundDevice {
    name: String,
    default: bool,
}

/// The outputs the user may choose from.
#[tauri::command]
pub(crate) async fn sound_outputs<R: Runtime>(
    webview: Webview<R>,
) -> Result<Vec<SoundDevice>, String> {
    remote_access::trusted_caller(&webview)?;
    tauri::async_runtime::spawn_blocking(|| list_devices(Direction::Output))
        .await
        .map_err(|e| e.to_string())?
}

/// The microphones a call may capture from.
#[tauri::command]
pub(crate) async fn sound_inputs<R: Runtime>(
    webview: Webview<R>,
) -> Result<Vec<SoundDevice>, String> {
    remote_access::trusted_caller(&webview)?;
    tauri::async_runtime::spawn_blocking(|| list_devices(Direction::Input))
        .await
        .map_err(|e| e.to_string())?
}

#[derive(Clone, Copy)]
enum Direction {
    Input,
    Output,
}

fn list_devices(direction: Direction) -> Result<Vec<SoundDevice>, String> {
    let host = cpal::default_host();
    let listing = |e: cpal::Error| e.to_string();
    let (default, devices): (_, Vec<cpal::Device>) = match direction {
        Direction::Input => (
            host.default_input_device(),
            host.input_devices().map_err(listing)?.collect(),
        ),
        Direction::Output => (
            host.default_output_device(),
            host.output_devices().map_err(listing)?.collect(),
        ),
    };
    let default = default.as_ref().and_then(device_name);
    Ok(devices
        .iter()
        .filter_map(device_name)
        .map(|name| SoundDevice {
            default: default.as_deref() == Some(name.as_str()),
            name,
        })
        .collect())
}

/// The name a device is listed and chosen by.
pub(crate) fn device_name(device: &cpal::Device) -> Option<String> {
    device.description().ok().map(|d| d.name().to_owned())
}

/// Starts a player for `channels` (1 or 2) of 48 kHz Opus on `output` (a name from
/// `sound_outputs`; none or an unknown one: the default output).
#[tauri::command]
pub(crate) async fn sound_open<R: Runtime>(
    webview: Webview<R>,
    players: State<'_, Players>,
    channels: u16,
    output: Option<String>,
) -> Result<u32, String> {
    remote_access::trusted_caller(&webview)?;
    if !(1..=2).contains(&channels) {
        return Err(format!("{channels} channels of sound are not supported"));
    }
    if players.lock().len() >= MAX_PLAYERS {
        return Err(format!("{MAX_PLAYERS} sound players are open already"));
    }
    let packets = tauri::async_runtime::spawn_blocking(move || start_player(channels, output))
        .await
        .map_err(|e| e.to_string())??;
    let id = players.next_id.fetch_add(1, Ordering::Relaxed);
    players.lock().insert(id, packets);
    Ok(id)
}

/// One Opus packet, raw, for the player the header names.
#[tauri::command]
pub(crate) fn sound_push<R: Runtime>(
    webview: Webview<R>,
    players: State<'_, Players>,
    request: Request<'_>,
) -> Result<(), String> {
    remote_access::trusted_caller(&webview)?;
    let (id, packet) = raw_invoke::numbered_bytes(&request, PLAYER_HEADER)?;
    if packet.len() > MAX_PACKET {
        return Err(format!(
            "a sound packet of {} bytes is too big",
            packet.len()
        ));
    }
    let player = players
        .lock()
        .get(&id)
        .cloned()
        .ok_or_else(|| format!("no sound player {id}"))?;
    match player.try_send(packet.to_vec()) {
        Ok(()) | Err(TrySendError::Full(_)) => Ok(()),
        Err(TrySendError::Disconnected(_)) => Err("the sound output stopped".into()),
    }
}

#[tauri::command]
pub(crate) fn sound_close<R: Runtime>(
    webview: Webview<R>,
    players: State<'_, Players>,
    id: u32,
) -> Result<(), String> {
    remote_access::trusted_caller(&webview)?;
    // The thread ends once its queue's sender is gone.
    players.lock().remove(&id);
    Ok(())
}

/// Starts a player's thread and waits (blocking, at most [`OPEN_WAIT`]) until its output runs.
/// The thread plays the Opus packets sent into the returned queue, and ends when it is dropped.
pub(crate) fn start_player(
    channels: u16,
    output: Option<String>,
) -> Result<SyncSender<Vec<u8>>, String> {
    let (packets, queue) = mpsc::sync_channel(QUEUE);
    let (started, start) = mpsc::channel();
    std::thread::Builder::new()
        .name("tether-sound".into())
        .spawn(move || play(channels, output, queue, started))
        .map_err(|e| e.to_string())?;
    start
        .recv_timeout(OPEN_WAIT)
        .map_err(|_| "the sound output did not start".to_owned())??;
    Ok(packets)
}

/// The player's thread: opens the output, then decodes until the queue closes.
fn play(
    channels: u16,
    output: Option<String>,
    queue: mpsc::Receiver<Vec<u8>>,
    started: mpsc::Sender<Result<(), String>>,
) {
    let jitter = Arc::new(Mutex::new(Jitter::new(
        usize::from(channels) * SAMPLE_RATE as usize,
    )));
    let (stream, mut decoder) = match open_output(channels, output.as_deref(), jitter.clone()) {
        Ok(opened) => opened,
        Err(why) => {
            eprintln!("tether-console: no sound: {why}");
            let _ = started.send(Err(why));
            return;
        }
    };
    let _ = started.send(Ok(()));
    let mut samples = vec![0f32; PACKET_SAMPLES * 6 * usize::from(channels)];
    while let Ok(packet) = queue.recv() {
        match decoder.decode_float(&packet, &mut samples, false) {
            Ok(frames) => jitter
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(&samples[..frames * usize::from(channels)]),
            Err(e) => eprintln!("tether-console: a sound packet did not decode: {e}"),
        }
    }
    drop(stream);
}

fn open_output(
    channels: u16,
    wanted: Option<&str>,
    jitter: Arc<Mutex<Jitter>>,
) -> Result<(cpal::Stream, opus::Decoder), String> {
    let host = cpal::default_host();
    let chosen = wanted.and_then(|name| {
        host.output_devices()
            .ok()?
            .find(|device| device_name(device).as_deref() == Some(name))
    });
    let device = chosen
        .or_else(|| host.default_output_device())
        .ok_or("this machine has no sound output")?;
    let stream = with_short_period(channels, |config| {
        let jitter = jitter.clone();
        device.build_output_stream(
            config,
            move |out: &mut [f32], _| jitter.lock().unwrap_or_else(|p| p.into_inner()).fill(out),
            |e| eprintln!("tether-console: the sound output failed: {e}"),
            None,
        )
    })
    .map_err(|e| format!("cannot open the sound output: {e}"))?;
    stream
        .play()
        .map_err(|e| format!("cannot start the sound output: {e}"))?;
    let layout = if channels == 1 {
        opus::Channels::Mono
    } else {
        opus::Channels::Stereo
    };
    let decoder = opus::Decoder::new(SAMPLE_RATE, layout).map_err(|e| e.to_string())?;
    Ok((stream, decoder))
}

/// Builds a stream of `channels` at 48 kHz with a [`PERIOD_FRAMES`] period, or with the host's
/// own buffering where it refuses that size.
pub(crate) fn with_short_period<T>(
    channels: u16,
    build: impl Fn(cpal::StreamConfig) -> Result<T, cpal::Error>,
) -> Result<T, cpal::Error> {
    let config = |buffer_size| cpal::StreamConfig {
        channels,
        sample_rate: SAMPLE_RATE,
        buffer_size,
    };
    build(config(cpal::BufferSize::Fixed(PERIOD_FRAMES))).or_else(|e| {
        eprintln!("tether-console: a {PERIOD_FRAMES}-frame sound period was refused ({e}); using the host's own");
        build(config(cpal::BufferSize::Default))
    })
}
