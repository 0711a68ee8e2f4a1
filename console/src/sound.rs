//! The device's sound, played by the app itself: the desktop viewer's page hands over the Opus
//! packets it gets (relayed or direct) and this decodes them with libopus and plays them with
//! cpal, on the output the user chose in the viewer's settings (or the system's default). The
//! webview's own audio (WebKitGTK's GStreamer) is not used.
//!
//! Each player is a thread of its own that owns the cpal stream (not `Send` on every platform)
//! and the decoder; packets reach it through a bounded queue (sound is lossy: a full queue drops
//! the packet rather than stall the page), and decoded samples wait in a small jitter buffer the
//! audio callback drains.

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

/// The agent's Opus: 48 kHz, 20 ms packets (`agent/src/desktop/audio/opus.rs`).
const SAMPLE_RATE: u32 = 48_000;
const PACKET_SAMPLES: usize = 960;
/// Packets waiting for the decoder; about a second of sound.
const QUEUE: usize = 50;
/// A packet bigger than this is not one of the agent's (Opus's own maximum is 1275 bytes a frame).
const MAX_PACKET: usize = 4000;
/// The header naming the player a `sound_push` is for.
const PLAYER_HEADER: &str = "tether-sound";
/// Players at once: one per desktop session with its sound on; more is a page gone wrong (each is
/// a thread and an output stream).
const MAX_PLAYERS: usize = 8;
/// How long opening waits for the output to start.
const OPEN_WAIT: Duration = Duration::from_secs(10);

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

#[derive(Debug, Serialize)]
pub(crate) struct Output {
    name: String,
    default: bool,
}

/// The outputs the user may choose from.
#[tauri::command]
pub(crate) async fn sound_outputs<R: Runtime>(webview: Webview<R>) -> Result<Vec<Output>, String> {
    remote_access::trusted_caller(&webview)?;
    tauri::async_runtime::spawn_blocking(list_outputs)
        .await
        .map_err(|e| e.to_string())?
}

fn list_outputs() -> Result<Vec<Output>, String> {
    let host = cpal::default_host();
    let default = host
        .default_output_device()
        .and_then(|d| d.description().ok())
        .map(|d| d.name().to_owned());
    let devices = host.output_devices().map_err(|e| e.to_string())?;
    Ok(devices
        .filter_map(|device| device.description().ok())
        .map(|description| Output {
            default: default.as_deref() == Some(description.name()),
            name: description.name().to_owned(),
        })
        .collect())
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
    let (packets, queue) = mpsc::sync_channel(QUEUE);
    let (started, start) = mpsc::channel();
    std::thread::Builder::new()
        .name("tether-sound".into())
        .spawn(move || play(channels, output, queue, started))
        .map_err(|e| e.to_string())?;
    tauri::async_runtime::spawn_blocking(move || start.recv_timeout(OPEN_WAIT))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the sound output did not start".to_owned())??;
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
        host.output_devices().ok()?.find(|device| {
            device
                .description()
                .is_ok_and(|description| description.name() == name)
        })
    });
    let device = chosen
        .or_else(|| host.default_output_device())
        .ok_or("this machine has no sound output")?;
    let config = cpal::StreamConfig {
        channels,
        sample_rate: SAMPLE_RATE,
        buffer_size: cpal::BufferSize::Default,
    };
    let stream = device
        .build_output_stream(
            config,
            move |out: &mut [f32], _| jitter.lock().unwrap_or_else(|p| p.into_inner()).fill(out),
            |e| eprintln!("tether-console: the sound output failed: {e}"),
            None,
        )
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
