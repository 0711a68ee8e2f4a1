//! Signalling for the spike: a tiny HTTP/1.1 endpoint that serves the test page and
//! carries the offer, the answer and trickled candidates. In Tether these travel as
//! relay text frames; here plain HTTP is the shortest path to a browser.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

const PAGE: &str = include_str!("page.html");
/// SDP and candidates are small; anything bigger is not ours.
const MAX_BODY: usize = 64 * 1024;

pub enum Signal {
    Offer { sdp: String, answer: oneshot::Sender<String> },
    Candidate(String),
}

pub async fn serve(listener: TcpListener, to_peer: mpsc::Sender<Signal>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let to_peer = to_peer.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, to_peer).await {
                eprintln!("signal: {e}");
            }
        });
    }
}

async fn handle(stream: TcpStream, to_peer: mpsc::Sender<Signal>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap_or(0).min(MAX_BODY);
            }
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body).await?;
    let body = String::from_utf8_lossy(&body).into_owned();

    let mut parts = request_line.split_whitespace();
    let (status, content_type, reply) = match (parts.next(), parts.next()) {
        (Some("GET"), Some("/")) => ("200 OK", "text/html", PAGE.to_string()),
        (Some("POST"), Some("/offer")) => {
            let (tx, rx) = oneshot::channel();
            let _ = to_peer.send(Signal::Offer { sdp: body, answer: tx }).await;
            match rx.await {
                Ok(answer) => ("200 OK", "application/sdp", answer),
                Err(_) => ("500 Internal Server Error", "text/plain", "no answer".into()),
            }
        }
        (Some("POST"), Some("/candidate")) => {
            let _ = to_peer.send(Signal::Candidate(body)).await;
            ("200 OK", "text/plain", String::new())
        }
        _ => ("404 Not Found", "text/plain", String::new()),
    };
    let mut stream = reader.into_inner();
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}
