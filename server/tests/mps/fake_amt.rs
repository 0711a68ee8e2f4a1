//! A fake Intel AMT behind the simulated CIRA client: it accepts the server's `forwarded-tcpip`
//! channels to port 16992 and answers WS-Management over them as AMT does for power, with HTTP
//! Digest authentication (checked here with its own MD5 arithmetic, apart from the server's).
//! Canned XML; the power state is kept so that a change can be read back.

use std::collections::{HashMap, VecDeque};
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
    /// Times the server sent beyond the window granted to it.
    pub overruns: u32,
    /// Web requests answered, as `METHOD /path`.
    pub pages: Vec<String>,
    /// Print every APF message from the server (the `fake_amt` example's `--trace`).
    pub trace: bool,
}

pub type Shared = Arc<Mutex<AmtState>>;

pub fn state(user: &str, password: &str) -> Shared {
    Arc::new(Mutex::new(AmtState {
        power: 2,
        user: user.into(),
        password: password.into(),
        refused: 0,
        changes: Vec::new(),
        overruns: 0,
        pages: Vec::new(),
        trace: false,
    }))
}

/// One channel as this AMT sees it.
struct Channel {
    /// The server's id for it.
    server_id: u32,
    /// Where the server's bytes go (the channel's HTTP server).
    bytes_in: mpsc::UnboundedSender<Vec<u8>>,
    /// What the server still lets us send, and what waits for more of it.
    send_window: u32,
    max_packet: usize,
    waiting: VecDeque<u8>,
    /// What the server may still send us before we grant more.
    receive_window: u32,
}

/// Serves the server's channels on `client` until the connection ends. Both windows are kept as
/// AMT keeps them: replies go out only within what the server granted (in pieces no bigger than
/// its maximum packet), and a server that sends beyond our window is counted in `overruns`.
pub async fn serve(mut client: CiraClient, amt: Shared) {
    let (to_server, mut outgoing) = mpsc::unbounded_channel::<(u32, Vec<u8>)>();
    let mut channels: HashMap<u32, Channel> = HashMap::new();
    let mut next = 100;
    loop {
        tokio::select! {
            message = client.recv_any() => match message.inspect(|m| trace(&amt, m)) {
                None => return,
                Some(ApfMessage::ChannelOpen { sender, target_port: 16992, window, max_packet, .. }) => {
                    next += 1;
                    let ours = next;
                    client.send(ApfMessage::ChannelOpenConfirmation {
                        recipient: sender,
                        sender: ours,
                        window: WINDOW,
                        max_packet: 4096,
                    }).await;
                    let (bytes_in, bytes_rx) = mpsc::unbounded_channel();
                    channels.insert(ours, Channel {
                        server_id: sender,
                        bytes_in,
                        send_window: window,
                        max_packet: max_packet as usize,
                        waiting: VecDeque::new(),
                        receive_window: WINDOW,
                    });
                    tokio::spawn(channel(ours, bytes_rx, to_server.clone(), amt.clone()));
                }
                Some(ApfMessage::ChannelOpen { sender, .. }) => {
                    client.send(ApfMessage::ChannelOpenFailure { recipient: sender, reason: 2 }).await;
                }
                Some(ApfMessage::ChannelData { recipient, data }) => {
                    if let Some(channel) = channels.get_mut(&recipient) {
                        let len = data.len() as u32;
                        match channel.receive_window.checked_sub(len) {
                            Some(left) => channel.receive_window = left,
                            None => amt.lock().unwrap().overruns += 1,
                        }
                        let _ = channel.bytes_in.send(data);
                        // Read at once: grant it back.
                        channel.receive_window = WINDOW;
                        client.send(ApfMessage::ChannelWindowAdjust { recipient: channel.server_id, bytes: len }).await;
                    }
                }
                Some(ApfMessage::ChannelWindowAdjust { recipient, bytes }) => {
                    if let Some(channel) = channels.get_mut(&recipient) {
                        channel.send_window = channel.send_window.saturating_add(bytes);
                        send_within_window(&mut client, channel).await;
                    }
                }
                Some(ApfMessage::ChannelClose { recipient }) => {
                    if let Some(channel) = channels.remove(&recipient) {
                        client.send(ApfMessage::ChannelClose { recipient: channel.server_id }).await;
                    }
                }
                Some(_) => {}
            },
            Some((ours, data)) = outgoing.recv() => {
                if let Some(channel) = channels.get_mut(&ours) {
                    channel.waiting.extend(data);
                    send_within_window(&mut client, channel).await;
                }
            }
        }
    }
}

fn trace(amt: &Shared, message: &ApfMessage) {
    if amt.lock().unwrap().trace {
        println!("apf from the server: {message:?}");
    }
}

async fn send_within_window(client: &mut CiraClient, channel: &mut Channel) {
    while !channel.waiting.is_empty() && channel.send_window > 0 {
        let len = channel
            .waiting
            .len()
            .min(channel.send_window as usize)
            .min(channel.max_packet);
        let data: Vec<u8> = channel.waiting.drain(..len).collect();
        channel.send_window -= len as u32;
        client
            .send(ApfMessage::ChannelData {
                recipient: channel.server_id,
                data,
            })
            .await;
    }
}

/// One channel: an HTTP/1.1 server on an in-memory stream, fed by the channel's bytes.
async fn channel(
    ours: u32,
    mut bytes_in: mpsc::UnboundedReceiver<Vec<u8>>,
    to_server: mpsc::UnboundedSender<(u32, Vec<u8>)>,
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
                    let _ = to_server.send((ours, buffer[..n].to_vec()));
                }
            },
        }
    }
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
    let uri = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
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
    if method == "GET" {
        amt.pages.push(format!("GET {uri}"));
        return Ok(web_page(&uri));
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

/// AMT's own web UI, in miniature: a start page that links with absolute paths as AMT's does,
/// sets a cookie of its own, and runs a script; `/big?bytes=N` for N patterned bytes
/// ([`pattern`]); a redirect from `/`.
fn web_page(uri: &str) -> Response<Full<Bytes>> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    match path {
        "/" => Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header("location", "http://192.168.0.9:16992/index.htm")
            .body(Full::new(Bytes::new()))
            .unwrap(),
        "/index.htm" => Response::builder()
            .header("content-type", "text/html; charset=utf-8")
            .header("set-cookie", "amt=secret")
            .body(Full::new(Bytes::from_static(INDEX_PAGE.as_bytes())))
            .unwrap(),
        "/hw-sys.htm" => Response::builder()
            .header("content-type", "text/html")
            .body(Full::new(Bytes::from_static(
                b"<!DOCTYPE html><html><body><h1>System information</h1><a href=\"/index.htm\">Back</a></body></html>",
            )))
            .unwrap(),
        "/big" => {
            let bytes = query
                .strip_prefix("bytes=")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            Response::builder()
                .header("content-type", "application/octet-stream")
                .body(Full::new(Bytes::from(pattern(bytes))))
                .unwrap()
        }
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::new()))
            .unwrap(),
    }
}

const INDEX_PAGE: &str = r#"<!DOCTYPE html><html><head><title>Intel&reg; Active Management Technology</title>
<link rel="stylesheet" href="/styles.css"></head><body><h1 id="title">Fake AMT</h1>
<p>System status: <span id="power">On</span></p><a href="/hw-sys.htm">System information</a>
<form action="/index.htm" method="get"><button>Refresh</button></form>
<script>document.getElementById("title").textContent = "Intel AMT web UI"; document.title = String(window.origin);</script>
</body></html>"#;

/// N bytes that no dropped, repeated or reordered piece leaves unchanged.
pub fn pattern(bytes: usize) -> Vec<u8> {
    (0..bytes)
        .map(|i| {
            (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[(i / 4) % 4] ^ (i / 65_521) as u8
        })
        .collect()
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
