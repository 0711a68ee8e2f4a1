//! The simulated agents' identities: one RSA key and self-signed certificate each, made once and
//! cached on disk (`NNNNN.key` PKCS#8 DER, 0600, and `NNNNN.crt` DER) so that a 10,000-agent run
//! does not spend an hour in key generation every time. Agent `i` always uses file `i`, so the
//! same server sees the same devices run after run.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, anyhow};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use rcgen::{CertificateParams, DnType, KeyPair, PKCS_RSA_SHA384};
use rustls_pki_types::PrivatePkcs8KeyDer;

/// One simulated agent's identity as stored; the key is parsed by the agent that uses it.
pub(crate) struct Identity {
    pub cert_der: Vec<u8>,
    /// Secret: never logged.
    pub key_pkcs8_der: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyBits {
    Rsa2048,
    Rsa3072,
}

impl KeyBits {
    pub(crate) fn bits(self) -> u32 {
        match self {
            KeyBits::Rsa2048 => 2048,
            KeyBits::Rsa3072 => 3072,
        }
    }

    fn size(self) -> KeySize {
        match self {
            KeyBits::Rsa2048 => KeySize::Rsa2048,
            KeyBits::Rsa3072 => KeySize::Rsa3072,
        }
    }
}

/// `$XDG_CACHE_HOME/tether-loadgen/keys-<bits>`, else `~/.cache/…`.
pub(crate) fn default_dir(bits: KeyBits) -> anyhow::Result<PathBuf> {
    let cache = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").context("HOME is not set; give --keys DIR")?)
                .join(".cache")
        }
    };
    Ok(cache
        .join("tether-loadgen")
        .join(format!("keys-{}", bits.bits())))
}

/// The first `count` identities in `dir`, generating the missing ones on every core.
/// `progress` is told (done, total) now and then while generating.
pub(crate) fn load_or_create(
    dir: &Path,
    bits: KeyBits,
    count: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> anyhow::Result<Vec<Identity>> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("key folder {}", dir.display()))?;
    let mut slots: Vec<Option<Identity>> = (0..count).map(|i| load(dir, i)).collect();
    let missing: Vec<usize> = (0..count).filter(|&i| slots[i].is_none()).collect();
    if !missing.is_empty() {
        for (i, identity) in generate_all(dir, bits, &missing, progress)? {
            slots[i] = Some(identity);
        }
    }
    // Every slot is filled: the loaded ones above, the generated ones just now.
    slots
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.ok_or_else(|| anyhow!("identity {i} missing")))
        .collect()
}

fn paths(dir: &Path, index: usize) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{index:05}.crt")),
        dir.join(format!("{index:05}.key")),
    )
}

/// `None` if either file is missing or empty: the pair is then made again.
fn load(dir: &Path, index: usize) -> Option<Identity> {
    let (cert_path, key_path) = paths(dir, index);
    let cert_der = fs::read(cert_path).ok().filter(|b| !b.is_empty())?;
    let key_pkcs8_der = fs::read(key_path).ok().filter(|b| !b.is_empty())?;
    Some(Identity {
        cert_der,
        key_pkcs8_der,
    })
}

/// Generates `indices` on as many threads as there are cores (RSA key generation is the slow part:
/// tenths of a second per 3072-bit key).
fn generate_all(
    dir: &Path,
    bits: KeyBits,
    indices: &[usize],
    progress: &(dyn Fn(usize, usize) + Sync),
) -> anyhow::Result<Vec<(usize, Identity)>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(indices.len());
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let made = Mutex::new(Vec::with_capacity(indices.len()));
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    while let Some(&index) = indices.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let identity = generate(bits, index)?;
                        store(dir, index, &identity)?;
                        made.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((index, identity));
                        progress(done.fetch_add(1, Ordering::Relaxed) + 1, indices.len());
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .map_err(|_| anyhow!("a key generation thread panicked"))?
        })
    })?;
    Ok(made.into_inner().unwrap_or_else(|p| p.into_inner()))
}

fn generate(bits: KeyBits, index: usize) -> anyhow::Result<Identity> {
    let key =
        RsaKeyPair::generate(bits.size()).map_err(|_| anyhow!("RSA key generation failed"))?;
    let key_pkcs8_der = key
        .as_der()
        .map_err(|_| anyhow!("cannot encode the RSA key"))?
        .as_ref()
        .to_vec();
    let signing_key = KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(key_pkcs8_der.as_slice()),
        &PKCS_RSA_SHA384,
    )
    .context("loading the new key into rcgen")?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("tether-loadgen-{index:05}"));
    // As the real agent's: an identity carrier whose dates nobody checks.
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    let cert = params
        .self_signed(&signing_key)
        .context("making the agent certificate")?;
    Ok(Identity {
        cert_der: cert.der().to_vec(),
        key_pkcs8_der,
    })
}

/// Certificate first, key last, each through a temporary file: an interrupted run leaves either a
/// whole pair or a pair without its key, which `load` treats as missing.
fn store(dir: &Path, index: usize, identity: &Identity) -> anyhow::Result<()> {
    let (cert_path, key_path) = paths(dir, index);
    write_private(&cert_path, &identity.cert_der)?;
    write_private(&key_path, &identity.key_pkcs8_der)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("writing {}", temporary.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", temporary.display()))?;
    fs::rename(&temporary, path).with_context(|| format!("renaming to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use tether_common::handshake::Signer;
    use tether_common::handshake::rsa::{RsaSigner, rsa_public_key_of_cert};

    #[test]
    fn generated_once_then_reused_and_extended() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let calls = AtomicUsize::new(0);
        let count_calls = |_: usize, _: usize| {
            calls.fetch_add(1, Ordering::Relaxed);
        };
        let first = load_or_create(&keys, KeyBits::Rsa2048, 2, &count_calls).unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        let again = load_or_create(&keys, KeyBits::Rsa2048, 3, &count_calls).unwrap();
        assert_eq!(
            calls.load(Ordering::Relaxed),
            3,
            "only the third identity is new"
        );
        assert_eq!(first[1].key_pkcs8_der, again[1].key_pkcs8_der);
        assert_eq!(first[0].cert_der, again[0].cert_der);
        assert_ne!(again[0].key_pkcs8_der, again[2].key_pkcs8_der);

        // The certificate carries the key's public half, and the key signs as the handshake needs.
        let public = rsa_public_key_of_cert(&again[2].cert_der).expect("RSA certificate");
        let signer = RsaSigner::from_pkcs8(&again[2].key_pkcs8_der).unwrap();
        assert_eq!(signer.sign_rsa_sha384(b"x").unwrap().len(), 256);
        assert!(public.len() > 256);

        let mode = fs::metadata(keys.join("00002.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_pair_without_its_key_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), KeyBits::Rsa2048, 1, &|_, _| {}).unwrap();
        fs::remove_file(dir.path().join("00000.key")).unwrap();
        let again = load_or_create(dir.path(), KeyBits::Rsa2048, 1, &|_, _| {}).unwrap();
        assert_ne!(first[0].cert_der, again[0].cert_der);
    }
}
