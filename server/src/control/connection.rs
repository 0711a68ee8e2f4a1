//! One `/control` connection: a loop that reads requests and forwards events, and a writer task
//! behind a bounded queue (so a client that stops reading stalls only its own connection, and then
//! falls behind on events and is closed).
//!
//! The session is checked again before every request, whenever an event about the user arrives,
//! when the session is ended by a logout (an internal signal), when it expires, and once a minute
//! as a backstop. So logging out, a password change, a removed account or a revoked site-admin
//! flag takes effect at once on open connections too, also on one that only listens.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tether_common::control::{
    ErrorCode, Event, EventFrame, MAX_CONTROL_FRAME, Reply, ServerInfo, parse_request,
};
use tokio::sync::{broadcast, mpsc};

use super::action_store::ActionStore;
use super::actions::{ActionContext, perform};
use super::flood::{FloodGuard, Verdict};
use crate::auth::sessions::{token_from_headers, token_hash, valid_session};
use crate::clock::now_secs;
use crate::events::{Published, Signal};
use crate::install::Site;
use crate::state::AppState;
use crate::store::UserRecord;

/// Frames waiting for the writer. Small: back-pressure should reach the reader loop quickly.
const OUTGOING_QUEUE: usize = 64;
/// After sending a close frame, how long to keep the socket so that the frame arrives before the
/// TCP connection is torn down (closing with unread input makes the kernel send a reset).
const CLOSE_LINGER: Duration = Duration::from_millis(500);
/// A client whose socket accepts nothing for this long is gone (or stalling on purpose).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// The session is re-read at least this often (and exactly when it expires), for changes that
/// come with no event.
const SESSION_RECHECK: Duration = Duration::from_secs(60);

/// Why the loop ended; decides the close frame and the log line.
#[derive(Debug)]
enum End {
    ClientClosed,
    ReadFailed(String),
    WriterGone,
    FrameTooBig,
    Flood,
    FellBehind(u64),
    SessionEnded,
    ServerStopping,
}

impl End {
    fn close_frame(&self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            End::ClientClosed | End::ReadFailed(_) | End::WriterGone => return None,
            End::FrameTooBig => (
                close_code::SIZE,
                format!("frame larger than {MAX_CONTROL_FRAME} bytes"),
            ),
            End::Flood => (close_code::POLICY, "too many requests".to_owned()),
            End::FellBehind(_) => (
                close_code::AGAIN,
                "fell behind on events; reconnect".to_owned(),
            ),
            End::SessionEnded => (close_code::POLICY, "session ended; log in again".to_owned()),
            End::ServerStopping => (close_code::AWAY, "server stopping".to_owned()),
        };
        Some(CloseFrame {
            code,
            reason: reason.into(),
        })
    }
}

/// Captures the session token for the re-checks; called before the upgrade.
pub(super) fn session_token(
    config: &crate::config::Config,
    headers: &axum::http::HeaderMap,
) -> Option<String> {
    token_from_headers(config, headers).map(str::to_owned)
}

struct Connection {
    state: AppState,
    /// The store key of the session (SHA-256 of the cookie's value); the token itself is not kept.
    session: String,
    user: UserRecord,
    /// When to re-read the session next.
    recheck_at: tokio::time::Instant,
    server_info: ServerInfo,
    site: Site,
    /// Where the console connects from: password checks count against its login budget.
    client_ip: IpAddr,
    flood: FloodGuard,
    out: mpsc::Sender<Message>,
}

pub(super) async fn serve(
    state: AppState,
    user: UserRecord,
    token: String,
    site: Site,
    client_ip: IpAddr,
    socket: WebSocket,
) {
    // Subscribe first, so nothing published from here on is missed.
    let events = state.events.subscribe();
    // Counted at a console (the messenger's list of who is there) while the connection lives.
    let _listening = state.events.listen(&user.id);
    let signals = state.events.subscribe_signals();
    let (sink, mut stream) = socket.split();
    let (out, queue) = mpsc::channel(OUTGOING_QUEUE);
    let writer = tokio::spawn(write_frames(sink, queue));
    let server_info = super::server_info(&state);
    let name = user.name.clone();
    tracing::debug!(user = %name, "control: connected");
    let mut connection = Connection {
        state,
        session: token_hash(&token),
        user,
        recheck_at: tokio::time::Instant::now(),
        server_info,
        site,
        client_ip,
        flood: FloodGuard::new(Instant::now()),
        out,
    };
    let end = connection.run(&mut stream, events, signals).await;
    match &end {
        End::FrameTooBig => {
            tracing::warn!(user = %name, "control: closing: frame over {MAX_CONTROL_FRAME} bytes")
        }
        End::Flood => {
            tracing::warn!(user = %name, "control: closing: requests kept coming past the rate limit")
        }
        End::FellBehind(n) => tracing::info!(user = %name, "control: closing: {n} events behind"),
        End::ReadFailed(e) => tracing::info!(user = %name, "control: read failed: {e}"),
        other => tracing::debug!(user = %name, "control: disconnected ({other:?})"),
    }
    let close = end.close_frame();
    let closing = close.is_some();
    if let Some(frame) = close {
        let _ = connection.out.send(Message::Close(Some(frame))).await;
    }
    drop(connection);
    // The writer ends once the queue is drained and dropped; give a stuck client a bounded wait.
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    if closing {
        linger(&end, &mut stream).await;
    }
}

/// Keeps the socket a moment after our close frame, so that it reaches the client before the TCP
/// connection goes (dropping a socket with unread input makes the kernel send a reset, which can
/// overtake the frame). Normally the client's answering close frame ends the wait early.
async fn linger(end: &End, stream: &mut SplitStream<WebSocket>) {
    if matches!(end, End::FrameTooBig) {
        // The oversized frame's remainder is still unread and must not be read: just wait.
        tokio::time::sleep(CLOSE_LINGER).await;
        return;
    }
    let drain = async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_LINGER, drain).await;
}

async fn write_frames(mut sink: SplitSink<WebSocket, Message>, mut queue: mpsc::Receiver<Message>) {
    while let Some(message) = queue.recv().await {
        let closing = matches!(message, Message::Close(_));
        let sent = tokio::time::timeout(WRITE_TIMEOUT, sink.send(message)).await;
        if !matches!(sent, Ok(Ok(()))) || closing {
            // Dropping the receiver makes the reader loop's next send fail: it ends too.
            break;
        }
    }
    let _ = sink.flush().await;
}

impl Connection {
    async fn run(
        &mut self,
        stream: &mut SplitStream<WebSocket>,
        mut events: broadcast::Receiver<Arc<Published>>,
        mut signals: broadcast::Receiver<Signal>,
    ) -> End {
        // The first check also learns when the session expires.
        if let Err(end) = self.refresh_user().await {
            return end;
        }
        loop {
            let step = tokio::select! {
                frame = stream.next() => self.on_frame(frame).await,
                event = events.recv() => match event {
                    Ok(published) => self.on_event(&published).await,
                    Err(broadcast::error::RecvError::Lagged(n)) => Err(End::FellBehind(n)),
                    Err(broadcast::error::RecvError::Closed) => Err(End::ServerStopping),
                },
                signal = signals.recv() => match signal {
                    Ok(Signal::LoginSessionEnded { token_hash }) if token_hash == self.session => {
                        Err(End::SessionEnded)
                    }
                    Ok(_) => Ok(()),
                    // Ours may have been among the missed ones.
                    Err(broadcast::error::RecvError::Lagged(_)) => self.refresh_user().await,
                    Err(broadcast::error::RecvError::Closed) => Err(End::ServerStopping),
                },
                _ = tokio::time::sleep_until(self.recheck_at) => self.refresh_user().await,
                () = self.state.stopping.cancelled() => Err(End::ServerStopping),
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    async fn on_frame(&mut self, frame: Option<Result<Message, axum::Error>>) -> Result<(), End> {
        let text = match frame {
            None | Some(Ok(Message::Close(_))) => return Err(End::ClientClosed),
            Some(Err(e)) => return Err(read_error(e)),
            // Answered by the WebSocket layer itself.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => return Ok(()),
            Some(Ok(Message::Binary(_))) => None,
            Some(Ok(Message::Text(text))) => Some(text),
        };
        match self.flood.check(Instant::now()) {
            Verdict::Allow => {}
            Verdict::Disconnect => return Err(End::Flood),
            Verdict::Reject => {
                let (id, action) = text
                    .as_ref()
                    .map(|t| request_id(t.as_str()))
                    .unwrap_or_default();
                let message = "too many requests: slow down (at most 50 a second)";
                return self
                    .send_reply(Reply::error(
                        action.as_deref(),
                        id,
                        ErrorCode::RateLimited,
                        message,
                    ))
                    .await;
            }
        }
        let Some(text) = text else {
            let reply = Reply::error(
                None,
                None,
                ErrorCode::BadRequest,
                "binary frames are not supported; send JSON text",
            );
            return self.send_reply(reply).await;
        };
        let request = match parse_request(text.as_str()) {
            Ok(request) => request,
            Err((id, action, error)) => {
                return self
                    .send_reply(Reply::error(
                        action.as_deref(),
                        id,
                        error.code(),
                        error.to_string(),
                    ))
                    .await;
            }
        };
        // Rights are decided on the account as it is now, not as it was at connect time.
        self.refresh_user().await?;
        let action = request.body.action();
        let changes_own_password = matches!(
            request.body,
            tether_common::control::RequestBody::ChangePassword { .. }
        );
        let ctx = ActionContext {
            store: ActionStore::new(self.state.store.as_ref()),
            events: &self.state.events,
            agents: &self.state.agents,
            amt: &self.state.amt,
            relay: &self.state.relay,
            server_info: &self.server_info,
            turn: self.state.config.turn.as_ref(),
            site: &self.site,
            login_limiter: &self.state.login_limiter,
            second_factor_policy: self.state.config.require_second_factor,
            datapath: &self.state.config.datapath,
            site_config: &self.state.config,
            updates: &self.state.updates,
            passkeys: &self.state.passkeys,
            client_ip: self.client_ip,
            caller: &self.user,
        };
        let reply = match perform(&ctx, request.body).await {
            Ok(result) => Reply::ok(action, request.id, result),
            Err(error) => error.into_reply(action, request.id),
        };
        let succeeded = reply.ok;
        self.send_reply(reply).await?;
        // The password change voided this connection's session too (the HTTP API would hand out a
        // new cookie; a WebSocket cannot).
        if changes_own_password && succeeded {
            Err(End::SessionEnded)
        } else {
            Ok(())
        }
    }

    async fn on_event(&mut self, published: &Published) -> Result<(), End> {
        let about_me = match &published.event {
            Event::UserChanged { user } => user.id == self.user.id,
            Event::UserRemoved { user } => *user == self.user.id,
            _ => false,
        };
        if about_me {
            self.refresh_user().await?;
        }
        if !published
            .audience
            .includes(&self.user.id, self.user.site_admin)
        {
            return Ok(());
        }
        let frame = EventFrame::new(published.event.clone());
        match serde_json::to_string(&frame) {
            Ok(text) => self.send(Message::Text(text.into())).await,
            Err(e) => {
                tracing::error!("control: could not serialize an event: {e}");
                Ok(())
            }
        }
    }

    /// Re-reads the account through the session, ending the connection when the session is void,
    /// and sets the next re-check (at the latest when the session expires).
    async fn refresh_user(&mut self) -> Result<(), End> {
        let now = tokio::time::Instant::now();
        self.recheck_at = now + SESSION_RECHECK;
        match valid_session(&self.state, &self.session).await {
            Ok(Some((user, session))) if user.id == self.user.id => {
                self.user = user;
                let left = u64::try_from(session.expires - now_secs()).unwrap_or(0);
                self.recheck_at = self.recheck_at.min(now + Duration::from_secs(left));
                Ok(())
            }
            Ok(_) => Err(End::SessionEnded),
            Err(e) => {
                // A database hiccup: keep the last known record rather than dropping the console.
                tracing::error!(user = %self.user.id, "control: could not re-read the session: {e}");
                Ok(())
            }
        }
    }

    async fn send_reply(&mut self, reply: Reply) -> Result<(), End> {
        match serde_json::to_string(&reply) {
            Ok(text) => self.send(Message::Text(text.into())).await,
            Err(e) => {
                tracing::error!("control: could not serialize a reply: {e}");
                Ok(())
            }
        }
    }

    async fn send(&mut self, message: Message) -> Result<(), End> {
        self.out.send(message).await.map_err(|_| End::WriterGone)
    }
}

/// The id and action of a frame, best effort, so that even a refused request's reply can be matched.
fn request_id(text: &str) -> (Option<u64>, Option<String>) {
    match parse_request(text) {
        Ok(request) => (Some(request.id), Some(request.body.action().to_owned())),
        Err((id, action, _)) => (id, action),
    }
}

fn read_error(error: axum::Error) -> End {
    // axum hides tungstenite's error type; its message is the only way to tell "too big" apart.
    let text = error.to_string();
    if text.contains("Message too long") || text.contains("Space limit exceeded") {
        End::FrameTooBig
    } else {
        End::ReadFailed(text)
    }
}
