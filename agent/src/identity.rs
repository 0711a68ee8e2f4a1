//! The agent's identity: an RSA key and a self-signed certificate made on first start and kept in
//! the state folder. Its device id is the SHA-384 of the public key (MeshCentral's node id), so it
//! survives reinstalls only as long as the state folder does.

use std::path::Path;

use anyhow::Context;
use rcgen::{CertificateParams, DnType, KeyPair, PKCS_RSA_SHA384, RsaKeySize};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use tether_common::handshake::rsa::rsa_public_key_of_cert;
use tether_common::ids::DeviceId;

use crate::files;

const CERT_FILE: &str = "agent-cert.pem";
const KEY_FILE: &str = "agent-key.pem";

pub(crate) struct Identity {
    pub cert_der: Vec<u8>,
    /// Secret: never logged.
    pub key_pkcs8_der: Vec<u8>,
    pub device_id: DeviceId,
}

impl Identity {
    /// Loads the identity from `state_dir`, or makes one (RSA-3072, or RSA-2048 with
    /// `small_key` for slow devices; key generation can take seconds there).
    pub(crate) fn load_or_create(state_dir: &Path, small_key: bool) -> anyhow::Result<Identity> {
        files::ensure_private_dir(state_dir)
            .with_context(|| format!("state folder {}", state_dir.display()))?;
        let (cert_path, key_path) = (state_dir.join(CERT_FILE), state_dir.join(KEY_FILE));
        if !key_path.exists() {
            let (cert_pem, key_pem) = generate(small_key)?;
            // The key goes last: a key without its certificate would be read as a broken identity.
            files::write_private(&cert_path, cert_pem.as_bytes())
                .context("writing the agent certificate")?;
            files::write_private(&key_path, key_pem.as_bytes()).context("writing the agent key")?;
        }
        let cert_der = CertificateDer::from_pem_file(&cert_path)
            .with_context(|| format!("reading {}", cert_path.display()))?
            .to_vec();
        let key_pkcs8_der = PrivatePkcs8KeyDer::from_pem_file(&key_path)
            .with_context(|| format!("reading {}", key_path.display()))?
            .secret_pkcs8_der()
            .to_vec();
        let public_key =
            rsa_public_key_of_cert(&cert_der).context("the agent certificate has no RSA key")?;
        Ok(Identity {
            device_id: DeviceId::from_public_key(&public_key),
            cert_der,
            key_pkcs8_der,
        })
    }
}

fn generate(small_key: bool) -> anyhow::Result<(String, String)> {
    let size = if small_key {
        RsaKeySize::_2048
    } else {
        RsaKeySize::_3072
    };
    let key =
        KeyPair::generate_rsa_for(&PKCS_RSA_SHA384, size).context("generating the agent key")?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "tether-agent");
    // Like MeshAgent's, the certificate is an identity carrier, not a TLS credential: its dates are
    // never checked, so it is made to outlive the machine.
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    let cert = params
        .self_signed(&key)
        .context("making the agent certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn made_once_then_reloaded_with_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = Identity::load_or_create(&state, true).unwrap();
        let again = Identity::load_or_create(&state, true).unwrap();
        assert_eq!(first.device_id, again.device_id);
        assert_eq!(first.cert_der, again.cert_der);
        for file in [KEY_FILE, CERT_FILE] {
            let mode = std::fs::metadata(state.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
