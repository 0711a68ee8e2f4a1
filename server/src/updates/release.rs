//! The agent version this server ships: the binary it hands out for installs (`install/binary.rs`),
//! its version read from the marker inside it, its SHA-384, and the offer signature made with the
//! agent-server key. A campaign freezes a copy under `agents/releases/`, so replacing the file
//! mid-campaign changes nothing for agents already offered.

use std::path::{Path, PathBuf};

use tether_common::agent_update::{AgentRelease, platform, signed_message, version_in_binary};
use tether_common::handshake::rsa::RsaSigner;
use tether_common::handshake::{Hash, Signer, sha384};

use crate::certs::ServerCerts;
use crate::config::Config;

/// A published version, ready to offer.
pub(crate) struct Release {
    pub info: AgentRelease,
    /// The frozen copy agents download.
    pub path: PathBuf,
    pub signature: Vec<u8>,
    pub server_cert_der: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReleaseError {
    #[error(
        "this server has no agent binary to ship (put one in the data folder as {0}, or install tether-agent next to tether-server)"
    )]
    NoBinary(&'static str),
    #[error("{0} has no version marker: it is not a tether-agent, or one too old to update itself")]
    NoVersion(PathBuf),
    #[error("cannot read or freeze the agent binary: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot sign with the agent-server key: {0}")]
    Sign(String),
}

/// What the server would ship now (reads and hashes the binary; no copy, no signature).
pub(crate) async fn current(config: &Config) -> Result<AgentRelease, ReleaseError> {
    let (_, bytes) = read_binary(config).await?;
    describe_or_refuse(&bytes, None).map(|(info, _)| info)
}

/// What signs offers: the agent-server certificate and its key (PKCS#8 DER). No `Debug`: secret.
pub(crate) struct Signing {
    pub cert_der: Vec<u8>,
    pub key_pkcs8_der: Vec<u8>,
}

impl Signing {
    pub(crate) fn of(certs: &ServerCerts) -> Signing {
        Signing {
            cert_der: certs.agent.cert_der.clone(),
            key_pkcs8_der: certs.agent.key_pkcs8_der.clone(),
        }
    }
}

/// Freezes the binary the server ships and signs an offer for it.
pub(crate) async fn publish(config: &Config, signing: &Signing) -> Result<Release, ReleaseError> {
    let (source, bytes) = read_binary(config).await?;
    let (info, hash) = describe_or_refuse(&bytes, Some(&source))?;
    let folder = config.data_file("agents/releases");
    let path = folder.join(format!(
        "tether-agent-{}-{}",
        info.version,
        &info.sha384[..16]
    ));
    let frozen = path.clone();
    tokio::task::spawn_blocking(move || freeze(&folder, &frozen, &bytes))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    let signer = RsaSigner::from_pkcs8(&signing.key_pkcs8_der)
        .map_err(|e| ReleaseError::Sign(e.to_string()))?;
    let message = signed_message(&info.version, &info.platform, &hash, info.size);
    let signature = signer
        .sign_rsa_sha384(&message)
        .map_err(|e| ReleaseError::Sign(e.to_string()))?;
    Ok(Release {
        info,
        path,
        signature,
        server_cert_der: signing.cert_der.clone(),
    })
}

async fn read_binary(config: &Config) -> Result<(PathBuf, Vec<u8>), ReleaseError> {
    for path in crate::install::binary::candidates(config) {
        match tokio::fs::read(&path).await {
            Ok(bytes) => return Ok((path, bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ReleaseError::NoBinary(crate::install::binary::UPLOADED))
}

fn describe_or_refuse(
    bytes: &[u8],
    source: Option<&Path>,
) -> Result<(AgentRelease, Hash), ReleaseError> {
    let version = version_in_binary(bytes).ok_or_else(|| {
        ReleaseError::NoVersion(source.map(Path::to_path_buf).unwrap_or_default())
    })?;
    let hash = sha384(bytes);
    let info = AgentRelease {
        version,
        // The binaries the server hands out are for the system it runs on (see install/binary.rs).
        platform: platform(),
        size: bytes.len() as u64,
        sha384: hex::encode(hash),
    };
    Ok((info, hash))
}

/// Writes the frozen copy once (owner-only: it is the server's, agents fetch it through the
/// server). A copy already there with the same name has the same hash prefix and is kept.
fn freeze(folder: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(folder)?;
    if path.exists() {
        return Ok(());
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
}
