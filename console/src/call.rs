//! The messenger's calls from the app. In a browser a chat's call is a peer connection of its own
//! (`console/web/src/lib/sessions/call.ts`); WebKitGTK has none, so in the app the page's
//! `nativeCall.ts` hands the call's peer to these commands and the sound never enters the
//! webview: the administrator's microphone is captured and encoded here (`microphone.rs`), and
//! the other side's sound is decoded and played here (`sound.rs`'s players). Signalling still
//! travels the chat's own path (relay or data channel), in the page.
//!
//! - `call_start`: our offer (one Opus m-line, sending when the microphone is on);
//! - `call_take`: the answer to the other side's offer (its camera, if any, is not shown);
//! - `call_answer`, `call_candidate`: the other side's signalling, as the page got it;
//! - `call_mute`: silence instead of the microphone's sound;
//! - `call_end`: hangs up.
//!
//! News come back on the page's channel (`direct/frames.rs`): open once connected, the received
//! sound's bit rate every few seconds, closed with a reason. Only trusted servers' pages reach
//! these commands (`remote_access.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tauri::ipc::{Channel, InvokeResponseBody};
use tauri::{Runtime, State, Webview};
use tether_rtc::{DirectPeer, Gathering, PeerError, PeerEvent, VoiceTrack};
use tokio::sync::{mpsc, oneshot};

use crate::direct::frames::{self, PeerNews};
use crate::direct::{self, Opened, PathConfig};
use crate::microphone::{self, Microphone};
use crate::{remote_access, sound};

/// Calls at once: a chat has one; more is a page gone wrong (each holds a microphone and a player).
const MAX_CALLS: usize = 4;
/// How often the page hears what the other side's sound arrives at (as `call.ts` reads stats).
const RATE_EVERY: Duration = Duration::from_secs(2);

/// What the user chose for the call.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CallSettings {
    /// Whether the other side hears our microphone.
    microphone: bool,
    /// Which microphone and output (names from `sound_inputs`/`sound_outputs`; none: defaults).
    input: Option<String>,
    output: Option<String>,
}

enum Command {
    Answer(String, oneshot::Sender<Result<(), PeerError>>),
    Candidate(String),
}

struct CallHandle {
    commands: mpsc::UnboundedSender<Command>,
    muted: Arc<AtomicBool>,
}

type OpenCalls = Arc<Mutex<HashMap<u32, CallHandle>>>;

/// The app's calls, by the id the page knows them by.
#[derive(Default)]
pub(crate) struct Calls {
    next_id: AtomicU32,
    open: OpenCalls,
}

fn lock_open(open: &OpenCalls) -> std::sync::MutexGuard<'_, HashMap<u32, CallHandle>> {
    open.lock().unwrap_or_else(|p| p.into_inner())
}

impl Calls {
    fn commands(&self, id: u32) -> Result<mpsc::UnboundedSender<Command>, String> {
        lock_open(&self.open)
            .get(&id)
            .map(|call| call.commands.clone())
            .ok_or_else(|| format!("no call {id}"))
    }

    /// Keeps a new call's handle and starts passing its news; returns its id.
    fn add(
        &self,
        origin: &str,
        peer: DirectPeer,
        settings: CallSettings,
        events: Channel<InvokeResponseBody>,
    ) -> u32 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (commands, queue) = mpsc::unbounded_channel();
        let muted = Arc::new(AtomicBool::new(false));
        lock_open(&self.open).insert(
            id,
            CallHandle {
                commands,
                muted: muted.clone(),
            },
        );
        eprintln!(
            "tether-console: call {id} with a device of {origin} (microphone {})",
            if settings.microphone { "on" } else { "off" }
        );
        let open = self.open.clone();
        tauri::async_runtime::spawn(drive(id, peer, queue, events, settings, muted, open));
        id
    }

    /// [`direct::admit`] for one more call, at most [`MAX_CALLS`].
    fn admit<R: Runtime>(
        &self,
        webview: &Webview<R>,
        config: PathConfig,
    ) -> Result<(String, Gathering), String> {
        let open = lock_open(&self.open).len();
        direct::admit(webview, config, open, MAX_CALLS, "calls")
    }
}

/// Calls the other side: returns our offer.
#[tauri::command]
pub(crate) async fn call_start<R: Runtime>(
    webview: Webview<R>,
    calls: State<'_, Calls>,
    config: PathConfig,
    settings: CallSettings,
    events: Channel<InvokeResponseBody>,
) -> Result<Opened, String> {
    let (origin, gathering) = calls.admit(&webview, config)?;
    let (peer, sdp) = DirectPeer::call_offer(&gathering, settings.microphone)
        .await
        .map_err(|e| e.to_string())?;
    let id = calls.add(&origin, peer, settings, events);
    Ok(Opened { id, sdp })
}

/// Takes the other side's call: returns our answer to its `offer`.
#[tauri::command]
pub(crate) async fn call_take<R: Runtime>(
    webview: Webview<R>,
    calls: State<'_, Calls>,
    config: PathConfig,
    offer: String,
    settings: CallSettings,
    events: Channel<InvokeResponseBody>,
) -> Result<Opened, String> {
    let (origin, gathering) = calls.admit(&webview, config)?;
    let (peer, sdp) = DirectPeer::call_answer(&offer, &gathering)
        .await
        .map_err(|e| e.to_string())?;
    let id = calls.add(&origin, peer, settings, events);
    Ok(Opened { id, sdp })
}

#[tauri::command]
pub(crate) async fn call_answer<R: Runtime>(
    webview: Webview<R>,
    calls: State<'_, Calls>,
    id: u32,
    sdp: String,
) -> Result<(), String> {
    remote_access::trusted_caller(&webview)?;
    let (reply, result) = oneshot::channel();
    calls
        .commands(id)?
        .send(Command::Answer(sdp, reply))
        .map_err(|_| "the call has ended".to_owned())?;
    result
        .await
        .map_err(|_| "the call has ended".to_owned())?
        .map_err(|e| e.to_string())
}

#[tauri::command]
pub(crate) fn call_candidate<R: Runtime>(
    webview: Webview<R>,
    calls: State<'_, Calls>,
    id: u32,
    candidate: String,
) -> Result<(), String> {
    remote_access::trusted_caller(&webview)?;
    calls
        .commands(id)?
        .send(Command::Candidate(candidate))
        .map_err(|_| "the call has ended".to_owned())
}

#[tauri::command]
pub(crate) fn call_mute<R: Runtime>(
    webview: Webview<R>,
    calls: State<'_, Calls>,
    id: u32,
    muted: bool,
) -> Result<(), String> {
    remote_access::trusted_caller(&webview)?;
    let open = lock_open(&calls.open);
    let call = open.get(&id).ok_or_else(|| format!("no call {id}"))?;
    call.muted.store(muted, Ordering::Relaxed);
    Ok(())
}

#[tauri::command]
pub(crate) fn call_end<R: Runtime>(
    webview: Webview<R>,
    calls: State<'_, Calls>,
    id: u32,
) -> Result<(), String> {
    remote_access::trusted_caller(&webview)?;
    // Dropping the handle ends `drive`, which stops the microphone and the player and drops the
    // peer.
    lock_open(&calls.open).remove(&id);
    Ok(())
}

/// The sound's ends once the call is connected: our microphone (when sending) and the player.
struct Sound {
    _microphone: Option<Microphone>,
    player: SyncSender<Vec<u8>>,
}

/// Passes the call's news to the page and the page's signalling to the peer, runs its sound once
/// connected, until either side ends it.
async fn drive(
    id: u32,
    mut peer: DirectPeer,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: Channel<InvokeResponseBody>,
    settings: CallSettings,
    muted: Arc<AtomicBool>,
    open: OpenCalls,
) {
    let tell = |news: PeerNews| events.send(InvokeResponseBody::Raw(frames::encode(news)));
    let Some(mut voice) = peer.take_voice() else {
        let _ = tell(PeerNews::Closed("the call has no sound".into()));
        lock_open(&open).remove(&id);
        return;
    };
    let mut settings = Some(settings);
    let mut sound: Option<Sound> = None;
    let mut received = 0usize;
    let mut rate = tokio::time::interval(RATE_EVERY);
    rate.tick().await;
    let why = loop {
        tokio::select! {
            event = peer.next_event() => match event {
                Some(PeerEvent::Open) => {
                    let Some(settings) = settings.take() else { continue };
                    match start_sound(settings, &voice, muted.clone()).await {
                        Ok(started) => sound = Some(started),
                        Err(why) => break why,
                    }
                    eprintln!("tether-console: call {id} is connected");
                    if tell(PeerNews::Open).is_err() { break "the page is gone".into(); }
                }
                Some(PeerEvent::Message(_)) => {}
                Some(PeerEvent::Closed(why)) => break why,
                None => break "the call ended".into(),
            },
            packet = voice.next_packet() => match packet {
                Some(packet) => {
                    received += packet.len();
                    if let Some(sound) = &sound {
                        play(&sound.player, packet);
                    }
                }
                None => break "the call ended".into(),
            },
            _ = rate.tick() => {
                let kbps = (received * 8 / 1000) as u64 / RATE_EVERY.as_secs();
                received = 0;
                if sound.is_some() && tell(PeerNews::SoundRate(kbps as u32)).is_err() {
                    break "the page is gone".into();
                }
            },
            command = commands.recv() => match command {
                Some(Command::Answer(sdp, reply)) => {
                    let _ = reply.send(peer.accept_answer(&sdp).await);
                }
                Some(Command::Candidate(candidate)) => peer.add_remote_candidate(&candidate),
                // `call_end`, or the app is going.
                None => break "hung up".into(),
            },
        }
    };
    eprintln!("tether-console: call {id} ended: {why}");
    let _ = tell(PeerNews::Closed(why));
    lock_open(&open).remove(&id);
    // The microphone's thread is joined off the async runtime.
    if let Some(sound) = sound {
        let _ = tauri::async_runtime::spawn_blocking(move || drop(sound)).await;
    }
}

/// Opens the output and, when the call sends sound, the microphone.
async fn start_sound(
    settings: CallSettings,
    voice: &VoiceTrack,
    muted: Arc<AtomicBool>,
) -> Result<Sound, String> {
    let sender = voice.sender();
    tauri::async_runtime::spawn_blocking(move || {
        let player = sound::start_player(1, settings.output)?;
        let microphone = if settings.microphone {
            Some(microphone::start(settings.input, sender, muted)?)
        } else {
            None
        };
        Ok(Sound {
            _microphone: microphone,
            player,
        })
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Sound is lossy: a player that lags loses a packet rather than hold up the call.
fn play(player: &SyncSender<Vec<u8>>, packet: Vec<u8>) {
    if let Err(TrySendError::Disconnected(_)) = player.try_send(packet) {
        eprintln!("tether-console: a call's sound output stopped");
    }
}
