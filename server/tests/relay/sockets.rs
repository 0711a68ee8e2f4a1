//! Relay WebSocket clients for the tests: open `/meshrelay.ashx?id=…` as either end (or a whole
//! session through `createSession`), and read frames with a deadline.

use futures_util::{SinkExt, StreamExt};
use tether_common::control::CreateSession;
use tether_common::ids::DeviceId;
use tether_common::relay::SessionKind;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::common::{ControlClient, TestServer};
use crate::support::DEADLINE;

pub type RelaySocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens `path` (`/meshrelay.ashx?id=…`), with the session cookie when given.
pub async fn open(
    server: &TestServer,
    path: &str,
    cookie: Option<&str>,
) -> Result<RelaySocket, Error> {
    open_from(server, path, cookie, None).await
}

/// [`open`], as a browser page at `origin` would.
pub async fn open_from(
    server: &TestServer,
    path: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
) -> Result<RelaySocket, Error> {
    let mut request = format!("wss://127.0.0.1:{}{path}", server.port)
        .into_client_request()
        .unwrap();
    if let Some(cookie) = cookie {
        let value = format!("__Host-tether_session={cookie}").parse().unwrap();
        request.headers_mut().insert("cookie", value);
    }
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    let connector = Connector::Rustls(server.tls_client_config());
    let connect =
        tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector));
    match timeout_at(Instant::now() + DEADLINE, connect).await {
        Ok(result) => result.map(|(ws, _)| ws),
        Err(_) => panic!("relay connect to {path} timed out"),
    }
}

/// Asks `control` for a `kind` session to `device`, opens its relay end as the owner of `cookie`
/// and waits for the pairing greeting.
pub async fn open_session(
    server: &TestServer,
    control: &mut ControlClient,
    cookie: &str,
    device: &DeviceId,
    kind: SessionKind,
) -> RelaySocket {
    let ticket = control
        .ok(CreateSession {
            device: device.clone(),
            kind,
        })
        .await;
    let mut ws = open(server, &ticket.url, Some(cookie)).await.unwrap();
    expect_paired(&mut ws).await;
    ws
}

/// The HTTP status of a refused relay connection.
pub async fn refused_with(server: &TestServer, path: &str, cookie: Option<&str>) -> u16 {
    match open(server, path, cookie).await {
        Ok(_) => panic!("the relay accepted {path}"),
        Err(Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected relay error: {other}"),
    }
}

/// The next text or binary frame (pings and pongs skipped); panics on close or timeout.
pub async fn next_data(ws: &mut RelaySocket) -> Message {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(message @ (Message::Text(_) | Message::Binary(_))))) => return message,
            Ok(Some(Ok(Message::Close(frame)))) => panic!("relay closed: {frame:?}"),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => panic!("relay failed: {e}"),
            Ok(None) => panic!("relay ended"),
            Err(_) => panic!("no frame within {DEADLINE:?}"),
        }
    }
}

pub async fn expect_paired(ws: &mut RelaySocket) {
    assert_eq!(
        next_data(ws).await,
        Message::text("c"),
        "the pairing greeting"
    );
}

/// Waits for the server to close `ws`; the close frame, if it sent one.
pub async fn closed(ws: &mut RelaySocket) -> Option<CloseFrame> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame,
            Ok(Some(Ok(Message::Text(text)))) => panic!("expected a close, got text {text}"),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => return None,
            Err(_) => panic!("the relay did not close within {DEADLINE:?}"),
        }
    }
}

pub async fn send(ws: &mut RelaySocket, message: Message) {
    ws.send(message).await.expect("send on the relay");
}
