//! A fake Intel AMT behind the simulated CIRA client: it accepts the server's `forwarded-tcpip`
//! channels to port 16992 and answers WS-Management over them as AMT does for power, with HTTP
//! Digest authentication (checked here with its own MD5 arithmetic, apart from the server's).
//! Canned XML; the power state is kept so that a change can be read back.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use tether_common::apf::ApfMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::cira::CiraClient;

const REALM: &str = "Digest:FAKE0000000000000000000000000000";
const NONCE: &str = "fake-nonce-7";
/// The window this AMT grants the server per channel, and tops up as it reads.
const WINDOW: u32 = 8 * 1024;

/// What the fake knows and counts.
#[derive(Debug)]
pub struct AmtState {
    pub power: u32,
    pub user: String,
    pub password: String,
    pub refused: u32,
    pub changes: Vec<u32>,
}

pub type Shared = Arc<Mutex<AmtState>>;

pub fn state(user: &str, password: &str) -> Shared {
    Arc::new(Mutex::new(AmtState {
        power: 2,
        user: user.into(),
        password: password.into(),
        refused: 0,
        changes: Vec::new(),
    }))
}

/// Serves the server's channels on `client` until the connection ends.
pub async fn serve(mut client: CiraClient, amt: Shared) {
    let (to_server, mut outgoing) = mpsc::unbounded_channel::<ApfMessage>();
    // Our id → (the server's id for the channel, where its bytes go).
    let mut channels: HashMap<u32, (u32, mpsc::UnboundedSender<Vec<u8>>)> = HashMap::new();
    let mut next = 100;
    loop {
        tokio::select! {
            message = client.recv_any() => match message {
                None => return,
                Some(ApfMessage::ChannelOpen { sender, target_port: 16992, .. }) => {
                    next += 1;
                    let ours = next;
                    client.send(ApfMessage::ChannelOpenConfirmation {
                        recipient: sender,
                        sender: ours,
                        window: WINDOW,
                        max_packet: 4096,
                    }).await;
                    let (bytes_in, bytes_rx) = mpsc::unbounded_channel();
                    channels.insert(ours, (sender, bytes_in));
                    tokio::spawn(channel(ours, sender, bytes_rx, to_server.clone(), amt.clone()));
                }
                Some(ApfMessage::ChannelOpen { sender, .. }) => {
                    client.send(ApfMessage::ChannelOpenFailure { recipient: sender, reason: 2 }).await;
                }
                Some(ApfMessage::ChannelData { recipient, data }) => {
                    if let Some((server_id, bytes_in)) = channels.get(&recipient) {
                        let len = data.len() as u32;
                        let _ = bytes_in.send(data);
                        // Read at once: grant it back.
                        client.send(ApfMessage::ChannelWindowAdjust { recipient: *server_id, bytes: len }).await;
                    }
                }
                Some(ApfMessage::ChannelClose { recipient }) => {
                    if let Some((server_id, _)) = channels.remove(&recipient) {
                        client.send(ApfMessage::ChannelClose { recipient: server_id }).await;
                    }
                }
                // Window grants for our replies: the replies here are far below the window.
                Some(_) => {}
            },
            Some(message) = outgoing.recv() => client.send(message).await,
        }
    }
}

/// One channel: an HTTP/1.1 server on an in-memory stream, fed by the channel's bytes.
async fn channel(
    ours: u32,
    server_id: u32,
    mut bytes_in: mpsc::UnboundedReceiver<Vec<u8>>,
    to_server: mpsc::UnboundedSender<ApfMessage>,
    amt: Shared,
) {
    let (http_side, channel_side) = tokio::io::duplex(64 * 1024);
    let service = hyper::service::service_fn(move |request| answer(request, amt.clone()));
    tokio::spawn(async move {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(http_side), service)
            .await;
    });
    let (mut read_half, mut write_half) = tokio::io::split(channel_side);
    let mut buffer = vec![0; 4096];
    loop {
        tokio::select! {
            data = bytes_in.recv() => match data {
                Some(data) => {
                    if write_half.write_all(&data).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            read = read_half.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let _ = to_server.send(ApfMessage::ChannelData {
                        recipient: server_id,
                        data: buffer[..n].to_vec(),
                    });
                }
            },
        }
    }
    let _ = ours;
}

async fn answer(
    request: Request<Incoming>,
    amt: Shared,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let method = request.method().to_string();
    let uri = request.uri().path().to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut amt = amt.lock().unwrap();
    let authorized = authorization
        .as_deref()
        .is_some_and(|header| digest_matches(header, &amt.user, &amt.password, &method, &uri));
    if !authorized {
        if authorization.is_some() {
            amt.refused += 1;
        }
        let challenge =
            format!("Digest realm=\"{REALM}\", nonce=\"{NONCE}\", stale=\"false\", qop=\"auth\"");
        return Ok(Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("www-authenticate", challenge)
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    let reply = if body.contains("/enumeration/Enumerate<") {
        "<g:EnumerateResponse><g:EnumerationContext>ctx-9</g:EnumerationContext></g:EnumerateResponse>".to_owned()
    } else if body.contains("/enumeration/Pull<") {
        format!(
            "<g:PullResponse><g:Items><h:CIM_AssociatedPowerManagementService><h:PowerState>{}</h:PowerState></h:CIM_AssociatedPowerManagementService></g:Items><g:EndOfSequence/></g:PullResponse>",
            amt.power
        )
    } else if body.contains("RequestPowerStateChange<") {
        let asked: u32 = between(&body, "<h:PowerState>", "</h:PowerState>")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        amt.changes.push(asked);
        // A reset or a cycle ends with the machine on.
        amt.power = match asked {
            8 => 8,
            _ => 2,
        };
        "<h:RequestPowerStateChange_OUTPUT><h:ReturnValue>0</h:ReturnValue></h:RequestPowerStateChange_OUTPUT>".to_owned()
    } else {
        "<unknown/>".to_owned()
    };
    let envelope = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><a:Envelope xmlns:a=\"http://www.w3.org/2003/05/soap-envelope\"><a:Header/><a:Body>{reply}</a:Body></a:Envelope>"
    );
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/soap+xml; charset=UTF-8")
        .body(Full::new(Bytes::from(envelope)))
        .unwrap())
}

/// Checks an `Authorization: Digest …` header the way RFC 2617 (qop=auth) says.
fn digest_matches(header: &str, user: &str, password: &str, method: &str, uri: &str) -> bool {
    let field = |name: &str| {
        between(header, &format!("{name}=\""), "\"")
            .or_else(|| between(header, &format!("{name}="), ","))
            .map(|v| v.trim().to_owned())
    };
    let hex = |text: String| hex::encode(Md5::digest(text.as_bytes()));
    let (Some(got_user), Some(nc), Some(cnonce), Some(response), Some(got_uri)) = (
        field("username"),
        field("nc"),
        field("cnonce"),
        field("response"),
        field("uri"),
    ) else {
        return false;
    };
    if got_user != user || got_uri != uri || field("nonce").as_deref() != Some(NONCE) {
        return false;
    }
    let ha1 = hex(format!("{user}:{REALM}:{password}"));
    let ha2 = hex(format!("{method}:{uri}"));
    hex(format!("{ha1}:{NONCE}:{nc}:{cnonce}:auth:{ha2}")) == response
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}
