//! Steps 1 and 2 of an update: check the offer, fetch the binary into `tether-agent.new`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use sha2::{Digest, Sha384};
use tether_common::agent_update::{UpdateOffer, platform, verify_offer};
use tether_common::handshake::Hash;
use tether_common::handshake::rsa::RsaVerifier;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use crate::relay;

/// A download that stalls this long is abandoned (the server sends without pause).
const STALL: Duration = Duration::from_secs(60);

/// A checked binary, ready for its trial.
pub(crate) struct Fetched {
    pub path: PathBuf,
    pub version: String,
}

/// Checks `offer` against `server_id`, then fetches its binary next to `exe` and checks it.
/// `relay` names the control channel's server and certificate: the download must come from them.
pub(crate) async fn fetch(
    relay: &relay::Settings,
    exe: &Path,
    offer: &UpdateOffer,
    server_id: &Hash,
) -> anyhow::Result<Fetched> {
    let verified = verify_offer(offer, server_id, &platform(), &RsaVerifier)
        .context("refusing the update offer")?;
    if verified.version == crate::version::VERSION {
        bail!("this agent already runs {}", verified.version);
    }
    let path = exe.with_file_name(super::NEW);
    let url = relay::relay_url(&relay.url, &offer.path)?;
    let socket = relay::connect(&url, &relay.cert_der).await?;
    let result = download(socket, &path, verified.size, &verified.sha384).await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&path).await;
    }
    result?;
    Ok(Fetched {
        path,
        version: verified.version,
    })
}

/// Writes what the server sends into `path` (owner-only until it checks out), then checks the
/// size and hash the signed offer named.
async fn download(
    mut socket: relay::RelayWs,
    path: &Path,
    size: u64,
    sha384: &Hash,
) -> anyhow::Result<()> {
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true).mode(0o700);
    let mut file = options
        .open(path)
        .await
        .with_context(|| format!("cannot write {}", path.display()))?;
    let mut hasher = Sha384::new();
    let mut received = 0u64;
    loop {
        let message = timeout(STALL, socket.next())
            .await
            .context("the download stalled")?;
        match message {
            Some(Ok(Message::Binary(chunk))) => {
                received += chunk.len() as u64;
                if received > size {
                    bail!("the server sent more than the {size} bytes the offer announced");
                }
                hasher.update(&chunk);
                file.write_all(&chunk)
                    .await
                    .context("writing the new binary")?;
            }
            // The server explains a refusal in a text frame (an expired link, say).
            Some(Ok(Message::Text(text))) => bail!("the server refused the download: {text}"),
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("the download broke off: {e}"),
        }
    }
    if received != size {
        bail!("the download ended after {received} of {size} bytes");
    }
    if hasher.finalize().as_slice() != sha384 {
        bail!(
            "the downloaded binary does not match the signed SHA-384: it was changed after the server signed it"
        );
    }
    file.sync_all().await.context("writing the new binary")?;
    tokio::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .await
        .context("making the new binary executable")?;
    Ok(())
}
