//! One CIRA connection: TLS bytes into the APF decoder, messages into `MpsSession`, its answers
//! back out, its events acted on (the login checked, the machine marked online), until AMT
//! disconnects, breaks the protocol, falls silent, or the server stops.

use std::net::SocketAddr;
use std::time::Duration;

use tether_common::apf::{Decoder, KEEPALIVE_INTERVAL_S, MpsError, MpsEvent, MpsSession, Side};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};

use std::collections::HashMap;

use tokio::io::DuplexStream;
use tokio::sync::{mpsc, oneshot};

use super::bridge::{self, Bridge, FromBridge};
use super::login;
use super::presence::{self, Command, OpenError, Presence};
use crate::state::AppState;

/// A machine that has not logged in by then is dropped (it holds a connection and a TLS session).
const LOGIN_WITHIN: Duration = Duration::from_secs(30);
/// Silence for three keepalive intervals means the tunnel is gone (MeshCentral: 90 s).
const IDLE: Duration = Duration::from_secs(3 * KEEPALIVE_INTERVAL_S as u64);
/// Bytes read at a time.
const READ_CHUNK: usize = 16 * 1024;
/// A channel's task reads more for AMT only while less than this waits for AMT's window.
const READY_BYTES: usize = 64 * 1024;
/// SSH's disconnect reasons.
const DISCONNECT_PROTOCOL_ERROR: u32 = 2;
const DISCONNECT_BY_APPLICATION: u32 = 11;

/// Why the connection ended, for the log.
enum End {
    Closed,
    Silent,
    Protocol(String),
    Io(std::io::Error),
    Stopping,
    Replaced,
}

pub(super) async fn serve<S>(stream: S, peer: SocketAddr, state: AppState)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (bridge_tx, bridge_rx) = mpsc::channel(64);
    let mut connection = Connection {
        stream,
        peer,
        session: MpsSession::new(),
        decoder: Decoder::new(Side::Mps),
        presence: None,
        state,
        bridges: HashMap::new(),
        opening: HashMap::new(),
        bridge_tx,
        bridge_rx,
    };
    let end = connection.run().await;
    match &end {
        End::Closed | End::Stopping => tracing::debug!(%peer, "mps: connection closed"),
        End::Silent => tracing::info!(%peer, "mps: no keepalive for {IDLE:?}; closing"),
        End::Protocol(why) => tracing::warn!(%peer, "mps: closing: {why}"),
        End::Io(e) => tracing::info!(%peer, "mps: connection failed: {e}"),
        End::Replaced => {
            tracing::info!(%peer, "mps: a newer connection from the machine took over, or its device record changed; closing")
        }
    }
    // Whatever it was told last (a DISCONNECT, a failure), then the end of TLS.
    let _ = connection.flush().await;
    let _ = connection.stream.shutdown().await;
    if let Some(presence) = connection.presence.take() {
        let state = &connection.state;
        presence::leave(
            state.store.as_ref(),
            &state.events,
            &state.amt,
            &state.agents,
            &presence,
        )
        .await;
    }
}

struct Connection<S> {
    stream: S,
    peer: SocketAddr,
    session: MpsSession,
    decoder: Decoder,
    presence: Option<Presence>,
    state: AppState,
    /// Open channels' tasks (`bridge.rs`), and channels asked for but not yet confirmed by AMT.
    bridges: HashMap<u32, Bridge>,
    opening: HashMap<u32, oneshot::Sender<Result<DuplexStream, OpenError>>>,
    bridge_tx: mpsc::Sender<FromBridge>,
    bridge_rx: mpsc::Receiver<FromBridge>,
}

impl<S> Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    async fn run(&mut self) -> End {
        let mut buffer = vec![0; READ_CHUNK];
        let mut deadline = Instant::now() + LOGIN_WITHIN;
        loop {
            let replaced = match &self.presence {
                Some(presence) => presence.replaced.clone(),
                None => tokio_util::sync::CancellationToken::new(),
            };
            let read = tokio::select! {
                read = timeout_at(deadline, self.stream.read(&mut buffer)) => read,
                () = self.state.stopping.cancelled() => {
                    self.session.disconnect(DISCONNECT_BY_APPLICATION);
                    return End::Stopping;
                }
                () = replaced.cancelled() => {
                    self.session.disconnect(DISCONNECT_BY_APPLICATION);
                    return End::Replaced;
                }
                Some(command) = next_command(&mut self.presence) => {
                    self.command(command);
                    if let Err(e) = self.flush().await {
                        return End::Io(e);
                    }
                    continue;
                }
                Some(from) = self.bridge_rx.recv() => {
                    self.on_bridge(from);
                    if let Err(e) = self.flush().await {
                        return End::Io(e);
                    }
                    continue;
                }
            };
            let n = match read {
                Err(_) => return End::Silent,
                Ok(Err(e)) => return End::Io(e),
                Ok(Ok(0)) => return End::Closed,
                Ok(Ok(n)) => n,
            };
            self.decoder.push(&buffer[..n]);
            loop {
                let message = match self.decoder.next_message() {
                    Ok(Some(message)) => message,
                    Ok(None) => break,
                    Err(e) => {
                        // The stream cannot be read on; say so in APF before closing.
                        self.session.disconnect(DISCONNECT_PROTOCOL_ERROR);
                        return End::Protocol(format!("unreadable APF: {e}"));
                    }
                };
                if let Err(e) = self.session.handle(message) {
                    return match e {
                        MpsError::Disconnected(_) => End::Closed,
                        other => End::Protocol(other.to_string()),
                    };
                }
                if let Err(why) = self.act().await {
                    return End::Protocol(why);
                }
            }
            self.offer_reads();
            if let Err(e) = self.flush().await {
                return End::Io(e);
            }
            if self.session.is_authenticated() {
                deadline = Instant::now() + IDLE;
            }
        }
    }

    /// Acts on the session's events.
    async fn act(&mut self) -> Result<(), String> {
        while let Some(event) = self.session.poll_event() {
            match event {
                MpsEvent::Login {
                    uuid,
                    user,
                    password,
                } => {
                    let state = &self.state;
                    match login::check(state.store.as_ref(), &user, &password).await {
                        Ok(group) => {
                            self.session.login_result(true).map_err(|e| e.to_string())?;
                            let presence = presence::arrive(
                                state.store.as_ref(),
                                &state.events,
                                &state.amt,
                                &state.agents,
                                uuid,
                                &group,
                            )
                            .await
                            .map_err(|e| format!("cannot record the machine: {e}"))?;
                            tracing::info!(
                                peer = %self.peer,
                                %uuid,
                                group = %group.name,
                                "mps: Intel AMT machine connected"
                            );
                            self.presence = Some(presence);
                        }
                        Err(refused) => {
                            tracing::warn!(peer = %self.peer, %uuid, "mps: CIRA login refused: {refused}");
                            let _ = self.session.login_result(false);
                            return Err("the CIRA login was refused".into());
                        }
                    }
                }
                MpsEvent::PortForwarded(port) => {
                    tracing::debug!(peer = %self.peer, port, "mps: AMT forwards a port");
                }
                MpsEvent::PortWithdrawn(_) => {}
                MpsEvent::ChannelOpened(channel) => {
                    tracing::debug!(peer = %self.peer, channel, "mps: channel open");
                    let (bridge, stream) = bridge::spawn(channel, self.bridge_tx.clone());
                    let delivered = self
                        .opening
                        .remove(&channel)
                        .is_some_and(|reply| reply.send(Ok(stream)).is_ok());
                    if delivered {
                        let _ = bridge.ready.try_send(());
                        self.bridges.insert(channel, bridge);
                    } else {
                        // Whoever asked is gone.
                        self.session.close_channel(channel);
                    }
                }
                MpsEvent::ChannelRefused { channel, reason } => {
                    if let Some(reply) = self.opening.remove(&channel) {
                        let _ = reply.send(Err(OpenError::Refused(reason)));
                    }
                }
                MpsEvent::ChannelData { channel, data } => match self.bridges.get(&channel) {
                    Some(bridge) => {
                        let _ = bridge.to_reader.send(data);
                    }
                    // Closing on our side: count it as read so AMT is not held up.
                    None => self.session.consumed(channel, data.len()),
                },
                MpsEvent::ChannelClosed(channel) => {
                    self.bridges.remove(&channel);
                    if let Some(reply) = self.opening.remove(&channel) {
                        let _ = reply.send(Err(OpenError::Gone));
                    }
                }
            }
        }
        Ok(())
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Open { port, reply } => match self.session.open_channel(port) {
                Ok(channel) => {
                    tracing::debug!(peer = %self.peer, port, channel, "mps: opening a channel");
                    self.opening.insert(channel, reply);
                }
                Err(MpsError::NotForwarded(port)) => {
                    let _ = reply.send(Err(OpenError::NotForwarded(port)));
                }
                Err(_) => {
                    let _ = reply.send(Err(OpenError::Gone));
                }
            },
        }
    }

    fn on_bridge(&mut self, from: FromBridge) {
        match from {
            FromBridge::Data(channel, data) => {
                let _ = self.session.send(channel, data);
                self.offer_reads();
            }
            FromBridge::Consumed(channel, bytes) => self.session.consumed(channel, bytes),
            FromBridge::Closed(channel) => {
                self.session.close_channel(channel);
            }
        }
    }

    /// Lets each channel's task read more for AMT while little of it waits for AMT's window.
    fn offer_reads(&mut self) {
        for (channel, bridge) in &self.bridges {
            if self.session.queued(*channel) < READY_BYTES {
                // A permit already waiting is enough.
                let _ = bridge.ready.try_send(());
            }
        }
    }

    /// Writes what the session has for AMT.
    async fn flush(&mut self) -> std::io::Result<()> {
        let mut out = Vec::new();
        while let Some(message) = self.session.poll_transmit() {
            message.encode(&mut out);
        }
        if !out.is_empty() {
            self.stream.write_all(&out).await?;
            self.stream.flush().await?;
        }
        Ok(())
    }
}

/// The next command for this connection; never, before the login.
async fn next_command(presence: &mut Option<Presence>) -> Option<Command> {
    match presence {
        Some(presence) => presence.commands.recv().await,
        None => std::future::pending().await,
    }
}
