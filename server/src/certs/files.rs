//! The PEM files in the data folder, named as MeshCentral names them so that a MeshCentral data
//! folder's certificates can be copied in. Private keys are written 0600 and the folder is kept
//! 0700: whoever reads `agentserver-cert-private.key` can impersonate this server to every agent.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::CertError;

/// One certificate file (possibly a chain: leaf first) and its private key, as read from disk.
pub(super) struct PemPair {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

pub(super) fn cert_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}-cert-public.crt"))
}

pub(super) fn key_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}-cert-private.key"))
}

/// Creates the data folder if needed and forces it to 0700 (an existing folder may have been made
/// by hand with the default umask).
pub fn ensure_private_dir(dir: &Path) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|e| CertError::io(dir, e))?;
    set_mode(dir, 0o700)
}

/// Reads `<name>-cert-public.crt` and `<name>-cert-private.key`. `None` when neither exists; an
/// error when only one does, because guessing (and overwriting the other) could destroy an identity.
pub(super) fn read_pair(dir: &Path, name: &str) -> Result<Option<PemPair>, CertError> {
    let (cert_file, key_file) = (cert_path(dir, name), key_path(dir, name));
    match (cert_file.exists(), key_file.exists()) {
        (false, false) => return Ok(None),
        (true, false) => {
            return Err(CertError::HalfPair {
                present: cert_file,
                missing: key_file,
            });
        }
        (false, true) => {
            return Err(CertError::HalfPair {
                present: key_file,
                missing: cert_file,
            });
        }
        (true, true) => {}
    }
    let cert_text = fs::read(&cert_file).map_err(|e| CertError::io(&cert_file, e))?;
    let certs = CertificateDer::pem_slice_iter(&cert_text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::invalid(&cert_file, format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(CertError::invalid(
            &cert_file,
            "contains no CERTIFICATE block",
        ));
    }
    tighten_key_mode(&key_file)?;
    let key_text = fs::read(&key_file).map_err(|e| CertError::io(&key_file, e))?;
    let key = PrivateKeyDer::from_pem_slice(&key_text).map_err(|e| {
        CertError::invalid(
            &key_file,
            format!("no unencrypted PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block ({e})"),
        )
    })?;
    Ok(Some(PemPair { certs, key }))
}

pub(super) fn write_cert(dir: &Path, name: &str, cert_pem: &str) -> Result<(), CertError> {
    write_atomically(&cert_path(dir, name), cert_pem.as_bytes(), 0o644)
}

pub(super) fn write_key(dir: &Path, name: &str, key_pem: &str) -> Result<(), CertError> {
    write_atomically(&key_path(dir, name), key_pem.as_bytes(), 0o600)
}

/// PEM text of one DER certificate.
pub(super) fn cert_to_pem(der: &[u8]) -> String {
    pem("CERTIFICATE", der)
}

pub(super) fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    // base64 output is ASCII, so cutting it anywhere leaves valid UTF-8.
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// A temporary file renamed over the target, so a crash never leaves a half-written key behind.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let mut file = options.open(&tmp).map_err(|e| CertError::io(&tmp, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| CertError::io(&tmp, e))?;
    drop(file);
    // The umask may have removed bits from `mode`; never added any, but set it exactly anyway.
    set_mode(&tmp, mode)?;
    fs::rename(&tmp, path).map_err(|e| CertError::io(path, e))
}

/// A key copied in by hand often arrives world-readable; fix that rather than refuse to start.
fn tighten_key_mode(path: &Path) -> Result<(), CertError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map_err(|e| CertError::io(path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "private key was readable by others; setting it to 0600");
            set_mode(path, 0o600)?;
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), CertError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| CertError::io(path, e))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// The key as PKCS#8 DER, whatever form the file held: MeshCentral (node-forge) writes PKCS#1
/// "RSA PRIVATE KEY", OpenSSL and certbot may give SEC1 "EC PRIVATE KEY".
pub(super) fn to_pkcs8(key: &PrivateKeyDer<'_>) -> Result<Vec<u8>, String> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING,
        ECDSA_P521_SHA512_ASN1_SIGNING, EcdsaKeyPair,
    };
    match key {
        PrivateKeyDer::Pkcs8(key) => Ok(key.secret_pkcs8_der().to_vec()),
        PrivateKeyDer::Pkcs1(key) => {
            let pair = aws_lc_rs::rsa::KeyPair::from_der(key.secret_pkcs1_der())
                .map_err(|e| format!("unreadable RSA private key ({e})"))?;
            let der = pair
                .as_der()
                .map_err(|_| "cannot re-encode the RSA private key".to_owned())?;
            Ok(der.as_ref().to_vec())
        }
        PrivateKeyDer::Sec1(key) => {
            let curves = [
                &ECDSA_P256_SHA256_ASN1_SIGNING,
                &ECDSA_P384_SHA384_ASN1_SIGNING,
                &ECDSA_P521_SHA512_ASN1_SIGNING,
            ];
            let pair = curves
                .into_iter()
                .find_map(|curve| {
                    EcdsaKeyPair::from_private_key_der(curve, key.secret_sec1_der()).ok()
                })
                .ok_or_else(|| {
                    "unreadable EC private key (P-256, P-384 and P-521 are supported)".to_owned()
                })?;
            let der = pair
                .to_pkcs8v1()
                .map_err(|_| "cannot re-encode the EC private key".to_owned())?;
            Ok(der.as_ref().to_vec())
        }
        _ => Err("unsupported private key format".to_owned()),
    }
}
