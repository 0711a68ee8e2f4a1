//! Which server certificate to trust. A Tether server is its own CA, so there are no public roots
//! to lean on; the choices, strongest first:
//! - `--trust-root FILE`: the server's root certificate; normal chain and host-name checks.
//! - `--fingerprint HEX`: exactly one leaf certificate, by SHA-256.
//! - neither: trust on first use, like SSH. The first connection to a `host:port` records the
//!   certificate's SHA-256 in `~/.config/tether/known_servers` (with a warning); later connections
//!   must present the same certificate, and a different one is a hard error.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use tether_net::tls::{LeafCheck, leaf_checked_config};

use crate::target::Target;

type Fingerprint = [u8; 32];

pub(crate) struct Trust {
    pub config: Arc<ClientConfig>,
    how: How,
}

enum How {
    Root(PathBuf),
    Fingerprint(Arc<PinnedCert>),
    FirstUse {
        pin: Arc<PinnedCert>,
        known: KnownServers,
        authority: String,
        recorded: bool,
    },
}

impl Trust {
    pub(crate) fn new(
        trust_root: Option<&Path>,
        fingerprint: Option<&str>,
        target: &Target,
    ) -> anyhow::Result<Trust> {
        if let Some(path) = trust_root {
            let roots = read_roots(path)?;
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .context("TLS set-up")?
                .with_root_certificates(roots)
                .with_no_client_auth();
            return Ok(Trust {
                config: Arc::new(config),
                how: How::Root(path.to_owned()),
            });
        }
        let (expected, first_use) = match fingerprint {
            Some(text) => (Some(parse_fingerprint(text)?), None),
            None => {
                let known = KnownServers::default_location()?;
                let authority = target.authority().to_ascii_lowercase();
                (known.lookup(&authority)?, Some((known, authority)))
            }
        };
        let recorded = expected.is_some();
        let pin = Arc::new(PinnedCert {
            expected: Mutex::new(expected),
            mismatch: Mutex::new(None),
        });
        let config = leaf_checked_config(pin.clone()).context("TLS set-up")?;
        let how = match first_use {
            Some((known, authority)) => How::FirstUse {
                pin,
                known,
                authority,
                recorded,
            },
            None => How::Fingerprint(pin),
        };
        Ok(Trust {
            config: Arc::new(config),
            how,
        })
    }

    /// Called once a TLS handshake succeeded: on first use, records the certificate (and says so).
    pub(crate) fn handshake_done(&mut self) -> anyhow::Result<()> {
        let How::FirstUse {
            pin,
            known,
            authority,
            recorded,
        } = &mut self.how
        else {
            return Ok(());
        };
        if *recorded {
            return Ok(());
        }
        let Some(seen) = *lock(&pin.expected) else {
            return Ok(());
        };
        known.remember(authority, &seen)?;
        *recorded = true;
        eprintln!(
            "tetherctl: warning: first connection to {authority}; its certificate (SHA-256 {}) is now trusted and recorded in {}",
            hex::encode(seen),
            known.path.display()
        );
        Ok(())
    }

    /// Turns a failed connection into the reason a person needs.
    pub(crate) fn explain(&self, what: &str, error: impl std::fmt::Display) -> anyhow::Error {
        let pin = match &self.how {
            How::Fingerprint(pin) | How::FirstUse { pin, .. } => Some(pin),
            How::Root(_) => None,
        };
        if let Some(got) = pin.and_then(|pin| *lock(&pin.mismatch)) {
            let expected = pin
                .and_then(|pin| *lock(&pin.expected))
                .map(hex::encode)
                .unwrap_or_default();
            return match &self.how {
                How::FirstUse {
                    known, authority, ..
                } => anyhow::anyhow!(
                    "the certificate of {authority} CHANGED (now SHA-256 {}, recorded {expected} in {}); \
                     if the server's certificate was replaced on purpose, delete that line, otherwise someone may be intercepting",
                    hex::encode(got),
                    known.path.display()
                ),
                _ => anyhow::anyhow!(
                    "the server's certificate (SHA-256 {}) does not match --fingerprint {expected}",
                    hex::encode(got)
                ),
            };
        }
        let text = error.to_string();
        if let How::Root(path) = &self.how
            && (text.contains("invalid peer certificate")
                || text.contains("UnknownIssuer")
                || text.contains("NotValidForName"))
        {
            return anyhow::anyhow!(
                "{what}: the server's certificate is not trusted by {} ({text})",
                path.display()
            );
        }
        anyhow::anyhow!("{what}: {text}")
    }
}

fn read_roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let pem =
        fs::read(path).with_context(|| format!("cannot read --trust-root {}", path.display()))?;
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert =
            cert.with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("{} holds an unusable certificate", path.display()))?;
    }
    if roots.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(roots)
}

fn parse_fingerprint(text: &str) -> anyhow::Result<Fingerprint> {
    let hex_digits: String = text
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect();
    let bytes = hex::decode(&hex_digits).ok().filter(|b| b.len() == 32);
    bytes
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("--fingerprint must be 64 hex digits (a SHA-256), not {text:?}"))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Accepts exactly one leaf certificate. With no expectation yet (first use) it accepts the first
/// certificate it sees and then holds every later connection of this run to it.
#[derive(Debug)]
struct PinnedCert {
    expected: Mutex<Option<Fingerprint>>,
    mismatch: Mutex<Option<Fingerprint>>,
}

impl LeafCheck for PinnedCert {
    fn check(&self, leaf: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let got: Fingerprint = Sha256::digest(leaf.as_ref()).into();
        let mut expected = lock(&self.expected);
        match *expected {
            Some(pinned) if pinned == got => Ok(()),
            Some(_) => {
                *lock(&self.mismatch) = Some(got);
                Err(rustls::Error::General(
                    "server certificate fingerprint mismatch".into(),
                ))
            }
            None => {
                *expected = Some(got);
                Ok(())
            }
        }
    }
}

/// `host:port sha256hex` lines.
struct KnownServers {
    path: PathBuf,
}

impl KnownServers {
    /// `$TETHER_KNOWN_SERVERS`, else `$XDG_CONFIG_HOME/tether/known_servers`, else
    /// `~/.config/tether/known_servers`.
    fn default_location() -> anyhow::Result<KnownServers> {
        if let Some(path) = std::env::var_os("TETHER_KNOWN_SERVERS") {
            return Ok(KnownServers { path: path.into() });
        }
        let config_dir = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(".config"),
                None => {
                    bail!("no HOME to keep known_servers in; pass --trust-root or --fingerprint")
                }
            },
        };
        Ok(KnownServers {
            path: config_dir.join("tether").join("known_servers"),
        })
    }

    fn lookup(&self, authority: &str) -> anyhow::Result<Option<Fingerprint>> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", self.path.display()));
            }
        };
        for (number, line) in text.lines().enumerate() {
            let mut fields = line.split_whitespace();
            let (Some(name), Some(fingerprint)) = (fields.next(), fields.next()) else {
                continue;
            };
            if name.eq_ignore_ascii_case(authority) {
                let fingerprint = parse_fingerprint(fingerprint).with_context(|| {
                    format!("{} line {} is damaged", self.path.display(), number + 1)
                })?;
                return Ok(Some(fingerprint));
            }
        }
        Ok(None)
    }

    fn remember(&self, authority: &str, fingerprint: &Fingerprint) -> anyhow::Result<()> {
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.path.parent() {
                fs::create_dir_all(dir)?;
            }
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            writeln!(file, "{authority} {}", hex::encode(fingerprint))
        };
        write().with_context(|| format!("cannot record the server in {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls_pki_types::{ServerName, UnixTime};
    use tether_net::tls::LeafVerifier;

    #[test]
    fn fingerprints_accept_colons_and_case() {
        let hex = "AB".repeat(32);
        let colons: Vec<String> = (0..32).map(|_| "ab".to_owned()).collect();
        assert_eq!(parse_fingerprint(&hex).unwrap(), [0xab; 32]);
        assert_eq!(parse_fingerprint(&colons.join(":")).unwrap(), [0xab; 32]);
        assert!(parse_fingerprint("abcd").is_err());
    }

    #[test]
    fn known_servers_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let known = KnownServers {
            path: dir.path().join("sub").join("known_servers"),
        };
        assert_eq!(known.lookup("localhost:8443").unwrap(), None);
        known.remember("localhost:8443", &[1; 32]).unwrap();
        known.remember("other:1", &[2; 32]).unwrap();
        assert_eq!(known.lookup("localhost:8443").unwrap(), Some([1; 32]));
        assert_eq!(known.lookup("other:1").unwrap(), Some([2; 32]));
    }

    #[test]
    fn the_pin_holds_after_first_use() {
        let pinned = Arc::new(PinnedCert {
            expected: Mutex::new(None),
            mismatch: Mutex::new(None),
        });
        let pin = LeafVerifier::new(
            pinned.clone(),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        );
        let name = ServerName::try_from("localhost").unwrap();
        let (a, b) = (
            CertificateDer::from(vec![1u8, 2, 3]),
            CertificateDer::from(vec![4u8, 5, 6]),
        );
        assert!(
            pin.verify_server_cert(&a, &[], &name, &[], UnixTime::now())
                .is_ok()
        );
        assert!(
            pin.verify_server_cert(&a, &[], &name, &[], UnixTime::now())
                .is_ok()
        );
        assert!(
            pin.verify_server_cert(&b, &[], &name, &[], UnixTime::now())
                .is_err()
        );
        assert_eq!(
            *lock(&pinned.mismatch),
            Some(Sha256::digest([4u8, 5, 6]).into())
        );
    }
}
