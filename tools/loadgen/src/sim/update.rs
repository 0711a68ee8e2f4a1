//! `--accept-updates`: a simulated agent takes an update offer as a real one does up to the
//! point of running it: it fetches the binary from the offer's path on the same server, checks
//! its size and SHA-384 against the offer, and then "restarts" (reconnects) reporting the offered
//! version. The offer's signature is not checked (the load tool knows no ServerID key beyond the
//! handshake's; the agent's own tests cover signatures), and nothing is written to disk.

use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use sha2::{Digest, Sha384};
use tether_common::agent_proto::{self, ServerToAgent};
use tether_common::agent_update::UpdateOffer;
use tokio_tungstenite::tungstenite::Message;

use super::{Cause, Failure, Shared, fail, open_websocket};

/// The version simulated agents report until they take an update.
pub(crate) const STARTING_VERSION: &str = "0.0.0-loadgen";

/// The update offer in a server message, if it is one.
pub(super) fn offer_in(message: &Message) -> Option<UpdateOffer> {
    let Message::Text(text) = message else {
        return None;
    };
    match agent_proto::parse_from_server(text.as_str()) {
        Some(ServerToAgent::Update(offer)) => Some(offer),
        _ => None,
    }
}

/// Fetches and checks the offered binary.
pub(super) async fn take(
    shared: &Shared,
    index: usize,
    offer: &UpdateOffer,
) -> Result<(), Failure> {
    let url = download_url(&shared.target.url, &offer.path).ok_or_else(|| {
        fail(
            Cause::Dropped,
            "the offer's path is not a path on this server",
        )
    })?;
    let (mut socket, _) = open_websocket(shared, index, &url).await?;
    let mut hasher = Sha384::new();
    let mut received = 0u64;
    while let Some(message) = socket.next().await {
        match message.map_err(|e| fail(Cause::Dropped, format!("update download: {e}")))? {
            Message::Binary(chunk) => {
                received += chunk.len() as u64;
                hasher.update(&chunk);
            }
            Message::Close(_) => break,
            Message::Text(text) => {
                return Err(fail(
                    Cause::Dropped,
                    format!("update download refused: {text}"),
                ));
            }
            _ => {}
        }
    }
    shared
        .counters
        .update_bytes
        .fetch_add(received, Ordering::Relaxed);
    if received != offer.size || hex::encode(hasher.finalize()) != offer.sha384 {
        return Err(fail(
            Cause::Dropped,
            format!("update download: {received} bytes that do not match the offer"),
        ));
    }
    shared.counters.updated.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// `wss://host:port/agent.ashx` and `/agent-update.ashx?t=…` → `wss://host:port/agent-update.ashx?t=…`.
fn download_url(control_url: &str, path: &str) -> Option<String> {
    if !path.starts_with('/') || path.starts_with("//") {
        return None;
    }
    let (scheme, rest) = control_url.split_once("://")?;
    let authority = rest.split('/').next()?;
    Some(format!("{scheme}://{authority}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_stay_on_the_server() {
        assert_eq!(
            download_url("wss://10.0.0.1:443/agent.ashx", "/agent-update.ashx?t=ab").as_deref(),
            Some("wss://10.0.0.1:443/agent-update.ashx?t=ab")
        );
        assert_eq!(download_url("wss://h/agent.ashx", "//evil/x"), None);
        assert_eq!(download_url("wss://h/agent.ashx", "https://evil/x"), None);
    }
}
