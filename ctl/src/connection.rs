//! Login, then the `/control` WebSocket: send a request, wait for the reply with its id (events
//! that arrive meanwhile are skipped).

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tether_common::control::{Action, EventFrame, Reply, ReplyError, Request};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::cli::Cli;
use crate::login;
use crate::target::Target;
use crate::trust::Trust;

/// Why a [`Control::call`] gave no result.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// The server answered: it refused (with its code and message), or sent an odd result.
    #[error(transparent)]
    Reply(#[from] ReplyError),
    /// The connection failed before an answer came.
    #[error("{0}")]
    Connection(String),
}

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) struct Control {
    socket: Socket,
    next_id: u64,
    /// Kept for relay sockets (`tetherctl shell`, `exec`), which open more connections with the
    /// same server, trust and login.
    target: Target,
    tls: std::sync::Arc<rustls::ClientConfig>,
    /// The session cookie as `name=value`: a secret, never printed.
    cookie: String,
    /// `--direct`: what relay sessions do about a direct path.
    pub(crate) direct: crate::cli::DirectMode,
}

impl Control {
    pub(crate) async fn open(cli: &Cli) -> anyhow::Result<Control> {
        let target = Target::parse(&cli.url)?;
        let mut trust = Trust::new(
            cli.trust_root.as_deref(),
            cli.fingerprint.as_deref(),
            &target,
        )?;
        let cookie = login::login(
            &target,
            &mut trust,
            &cli.user,
            &cli.pass,
            cli.otp.as_deref(),
        )
        .await?;

        let mut request = format!("wss://{}/control", target.authority()).into_client_request()?;
        let cookie_header = HeaderValue::from_str(&cookie).context("odd session cookie")?;
        request.headers_mut().insert("Cookie", cookie_header);
        // Connect ourselves so that a refused connection reads the same as for the login.
        let tcp = login::connect_tcp(&target).await?;
        let connector = Connector::Rustls(trust.config.clone());
        let (socket, _) =
            tokio_tungstenite::client_async_tls_with_config(request, tcp, None, Some(connector))
                .await
                .map_err(|e| {
                    trust.explain(
                        &format!("opening the control channel of {}", target.authority()),
                        e,
                    )
                })?;
        Ok(Control {
            socket,
            next_id: 1,
            target,
            tls: trust.config.clone(),
            cookie,
            direct: cli.command.direct_mode(),
        })
    }

    /// `GET path` over HTTPS with this login: the body (at most `limit` bytes).
    pub(crate) async fn http_get(&self, path: &str, limit: u64) -> anyhow::Result<Vec<u8>> {
        let (_, body) =
            crate::login::get(&self.target, self.tls.clone(), &self.cookie, path, limit).await?;
        Ok(body)
    }

    /// `https://HOST:PORT` of the server, for links it hands out as paths.
    pub(crate) fn https_origin(&self) -> String {
        format!("https://{}", self.target.authority())
    }

    /// Opens a relay WebSocket (`path` as `createSession` gave it) with this login.
    pub(crate) async fn open_relay(&self, path: &str) -> anyhow::Result<Socket> {
        crate::relay::open(&self.target, &self.tls, &self.cookie, path).await
    }

    /// Sends one request and returns its typed result, or why there is none (the server's
    /// error code and message when it refused).
    pub(crate) async fn call<A: Action>(&mut self, request: A) -> Result<A::Output, CallError> {
        let id = self.next_id;
        self.next_id += 1;
        let text = serde_json::to_string(&Request::new(id, request))
            .map_err(|e| CallError::Connection(format!("encoding the request: {e}")))?;
        self.socket
            .send(Message::text(text))
            .await
            .map_err(|e| CallError::Connection(format!("sending to the server: {e}")))?;
        loop {
            let message = match self.socket.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    return Err(CallError::Connection(format!(
                        "the control connection failed: {e}"
                    )));
                }
                None => {
                    return Err(CallError::Connection(
                        "the server closed the control connection".to_owned(),
                    ));
                }
            };
            let text = match message {
                Message::Text(text) => text,
                Message::Close(frame) => {
                    let reason = frame
                        .map(|f| f.reason.to_string())
                        .filter(|r| !r.is_empty());
                    return Err(CallError::Connection(format!(
                        "the server closed the control connection ({})",
                        reason.as_deref().unwrap_or("no reason given")
                    )));
                }
                _ => continue,
            };
            if EventFrame::parse(&text).is_some() {
                continue;
            }
            let reply: Reply = serde_json::from_str(&text).map_err(|e| {
                CallError::Connection(format!("the server sent an unreadable reply: {e}"))
            })?;
            if reply.id != Some(id) && reply.id.is_some() {
                continue;
            }
            return reply.into_result().map_err(CallError::Reply);
        }
    }

    pub(crate) async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
