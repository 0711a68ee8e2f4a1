//! Direct sessions from the app: the server's page (in the webview) keeps its relay WebSocket and
//! its session code, and the WebRTC peer connection runs here, in Rust, with the same stack the
//! agent and tetherctl use (`tether-rtc`, str0m). Debian's WebKitGTK has no `RTCPeerConnection`,
//! so the page's `nativePeer.ts` stands in for one and calls these commands:
//!
//! - `rtc_open`: gathers candidates and returns the SDP offer (candidates included); the peer's
//!   news (open, messages, closed) comes back on the channel the page passes, as raw bytes
//!   (`frames.rs`);
//! - `rtc_take`: the same for a page that answers (a chat it was invited to, whose inviter's
//!   browser offers): returns the SDP answer to the offer;
//! - `rtc_answer`, `rtc_candidate`: the agent's answer and trickled candidates, as the page got
//!   them on the relay (it checks the answer's proof of the agent's key first, `pathProof.ts`);
//! - `rtc_send`: a batch of data-channel messages, in order;
//! - `rtc_close`: waits (briefly) until the agent has what was sent, then ends the peer.
//!
//! Only pages of servers the user trusted reach these (`remote_access.rs` grants them to those
//! origins alone, and each command checks the caller's origin again); the app's own picker page
//! has no access to them.

pub(crate) mod frames;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tauri::ipc::{Channel, InvokeResponseBody, Request};
use tauri::{Runtime, State, Webview};
use tether_rtc::{DirectPeer, Gathering, PeerError, PeerEvent, PeerSender};
use tokio::sync::{mpsc, oneshot};

use crate::{raw_invoke, remote_access};
use frames::PeerNews;

/// Open peers per app: a page opens one per session; more than this is a page gone wrong.
const MAX_PEERS: usize = 32;
/// How long closing waits for the agent to acknowledge what was sent last (the session's final
/// messages, `rtcEnd`), as the browser's `CLOSE_LINGER_MS`.
const CLOSE_LINGER: Duration = Duration::from_secs(5);
/// The header naming the peer an `rtc_send` batch is for.
const PEER_HEADER: &str = "tether-peer";

/// The ticket's direct-path settings, as the page has them (`DirectPath` on the wire).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PathConfig {
    ice_servers: Vec<IceServer>,
    relay_only: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct IceServer {
    urls: Vec<String>,
}

impl PathConfig {
    /// What the app's peer gathers for a ticket with these settings.
    pub(crate) fn gathering(self) -> Result<Gathering, String> {
        if self.relay_only {
            // Relay-only means TURN candidates alone, and this peer gathers host and STUN ones.
            return Err("this group allows direct paths through its TURN server only, which the app's peer does not use yet".into());
        }
        Ok(Gathering {
            // The other end may run on this very machine (tetherctl does the same).
            allow_loopback: true,
            ice_servers: self.ice_servers.into_iter().flat_map(|s| s.urls).collect(),
        })
    }
}

/// Whether the calling page may open one more peer of a kind (direct paths, calls) of which
/// `open` are open and at most `max` may be: a trusted server's page, under the limit. Returns its
/// origin and what the new peer gathers.
pub(crate) fn admit<R: Runtime>(
    webview: &Webview<R>,
    config: PathConfig,
    open: usize,
    max: usize,
    what: &str,
) -> Result<(String, Gathering), String> {
    let origin = remote_access::trusted_caller(webview)?;
    let gathering = config.gathering()?;
    if open >= max {
        return Err(format!("{max} {what} are open already"));
    }
    Ok((origin, gathering))
}

/// A peer the app made: the id the page knows it by, and its SDP (offer or answer).
#[derive(Debug, Serialize)]
pub(crate) struct Opened {
    pub(crate) id: u32,
    pub(crate) sdp: String,
}

enum Command {
    Answer(String, oneshot::Sender<Result<(), PeerError>>),
    Candidate(String),
}

struct PeerHandle {
    commands: mpsc::UnboundedSender<Command>,
    sender: PeerSender,
}

/// The app's open peers, by the id the page knows them by.
#[derive(Default)]
pub(crate) struct Peers {
    next_id: AtomicU32,
    open: OpenPeers,
}

type OpenPeers = Arc<Mutex<HashMap<u32, PeerHandle>>>;

fn lock_open(open: &OpenPeers) -> std::sync::MutexGuard<'_, HashMap<u32, PeerHandle>> {
    open.lock().unwrap_or_else(|p| p.into_inner())
}

impl Peers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, PeerHandle>> {
        lock_open(&self.open)
    }

    fn commands(&self, id: u32) -> Result<mpsc::UnboundedSender<Command>, String> {
        self.lock()
            .get(&id)
            .map(|peer| peer.commands.clone())
            .ok_or_else(|| format!("no direct path {id}"))
    }

    /// [`admit`] for one more direct path, at most [`MAX_PEERS`].
    fn admit<R: Runtime>(
        &self,
        webview: &Webview<R>,
        config: PathConfig,
    ) -> Result<(String, Gathering), String> {
        let open = self.lock().len();
        admit(webview, config, open, MAX_PEERS, "direct paths")
    }

    /// Keeps a new peer's handle and starts passing its news; returns its id.
    fn keep(&self, peer: DirectPeer, events: Channel<InvokeResponseBody>) -> u32 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (commands, queue) = mpsc::unbounded_channel();
        self.lock().insert(
            id,
            PeerHandle {
                commands,
                sender: peer.sender(),
            },
        );
        tauri::async_runtime::spawn(drive(id, peer, queue, events, self.open.clone()));
        id
    }

    fn sender(&self, id: u32) -> Result<PeerSender, String> {
        self.lock()
            .get(&id)
            .map(|peer| peer.sender.clone())
            .ok_or_else(|| format!("no direct path {id}"))
    }
}

#[tauri::command]
pub(crate) async fn rtc_open<R: Runtime>(
    webview: Webview<R>,
    peers: State<'_, Peers>,
    config: PathConfig,
    events: Channel<InvokeResponseBody>,
) -> Result<Opened, String> {
    let (origin, gathering) = peers.admit(&webview, config)?;
    let (peer, sdp) = DirectPeer::offer(&gathering)
        .await
        .map_err(|e| e.to_string())?;
    let id = peers.keep(peer, events);
    eprintln!("tether-console: direct path {id} offered to a device of {origin}");
    Ok(Opened { id, sdp })
}

/// Answers the other side's `offer` (a chat's inviter, whose browser offers): returns our answer.
#[tauri::command]
pub(crate) async fn rtc_take<R: Runtime>(
    webview: Webview<R>,
    peers: State<'_, Peers>,
    config: PathConfig,
    offer: String,
    events: Channel<InvokeResponseBody>,
) -> Result<Opened, String> {
    let (origin, gathering) = peers.admit(&webview, config)?;
    let (peer, sdp) = DirectPeer::answer(&offer, &gathering)
        .await
        .map_err(|e| e.to_string())?;
    let id = peers.keep(peer, events);
    eprintln!("tether-console: direct path {id} answered for a page of {origin}");
    Ok(Opened { id, sdp })
}

#[tauri::command]
pub(crate) async fn rtc_answer<R: Runtime>(
    webview: Webview<R>,
    peers: State<'_, Peers>,
    id: u32,
    sdp: String,
) -> Result<(), String> {
    remote_access::trusted_caller(&webview)?;
    let (reply, result) = oneshot::channel();
    peers
        .commands(id)?
        .send(Command::Answer(sdp, reply))
        .map_err(|_| "the direct path is closed".to_owned())?;
    result
        .await
        .map_err(|_| "the direct path is closed".to_owned())?
        .map_err(|e| e.to_string())
}

#[tauri::command]
pub(crate) fn rtc_candidate<R: Runtime>(
    webview: Webview<R>,
    peers: State<'_, Peers>,
    id: u32,
    candidate: String,
) -> Result<(), String> {
    remote_access::trusted_caller(&webview)?;
    peers
        .commands(id)?
        .send(Command::Candidate(candidate))
        .map_err(|_| "the direct path is closed".to_owned())
}

/// One batch of data-channel messages (`frames.rs`), sent in order; resolves once they are all
/// queued on the channel, which is the page's back-pressure.
#[tauri::command]
pub(crate) async fn rtc_send<R: Runtime>(
    webview: Webview<R>,
    peers: State<'_, Peers>,
    request: Request<'_>,
) -> Result<(), String> {
    remote_access::trusted_caller(&webview)?;
    let (id, batch) = raw_invoke::numbered_bytes(&request, PEER_HEADER)?;
    let messages = frames::decode_batch(batch).map_err(|e| {
        eprintln!("tether-console: direct path {id}: refused a batch: {e}");
        e.to_string()
    })?;
    let sender = peers.sender(id)?;
    for message in messages {
        sender.send(message).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Ends a peer once the agent has acknowledged what was sent (at most [`CLOSE_LINGER`]).
#[tauri::command]
pub(crate) async fn rtc_close<R: Runtime>(
    webview: Webview<R>,
    peers: State<'_, Peers>,
    id: u32,
) -> Result<(), String> {
    remote_access::trusted_caller(&webview)?;
    let Ok(sender) = peers.sender(id) else {
        return Ok(());
    };
    let _ = tokio::time::timeout(CLOSE_LINGER, sender.flush()).await;
    // Dropping the handle ends `drive`, which drops the peer and so closes the channel.
    peers.lock().remove(&id);
    Ok(())
}

/// Passes the peer's news to the page and the page's signalling to the peer, until either ends.
async fn drive(
    id: u32,
    mut peer: DirectPeer,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: Channel<InvokeResponseBody>,
    open: OpenPeers,
) {
    let tell = |news: PeerNews| events.send(InvokeResponseBody::Raw(frames::encode(news)));
    loop {
        tokio::select! {
            event = peer.next_event() => match event {
                Some(PeerEvent::Open) => {
                    eprintln!("tether-console: direct path {id} is open");
                    if tell(PeerNews::Open).is_err() { break; }
                }
                Some(PeerEvent::Message(payload)) => {
                    if tell(PeerNews::Message(payload)).is_err() { break; }
                }
                Some(PeerEvent::Closed(why)) => {
                    eprintln!("tether-console: direct path {id} closed: {why}");
                    let _ = tell(PeerNews::Closed(why));
                    break;
                }
                None => {
                    let _ = tell(PeerNews::Closed("the direct path ended".into()));
                    break;
                }
            },
            command = commands.recv() => match command {
                Some(Command::Answer(sdp, reply)) => {
                    let _ = reply.send(peer.accept_answer(&sdp).await);
                }
                Some(Command::Candidate(candidate)) => peer.add_remote_candidate(&candidate),
                // `rtc_close`, or the app is going.
                None => break,
            },
        }
    }
    lock_open(&open).remove(&id);
}
