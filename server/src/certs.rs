//! The server's own certificate authority (design paper §6.1): a root that issues the web (HTTPS),
//! agent-server (the identity agents pin) and MPS (Intel AMT) certificates. Made on first start,
//! reused on every later one. The files carry MeshCentral's names and formats, so a MeshCentral
//! data folder's certificates can be copied in and its agents keep trusting this server.
//!
//! Rules on start:
//! - a missing pair is generated (signed by the root; a missing root is generated first);
//! - a stored certificate of ours that no longer fits (issued by a root that is gone, or a web/MPS
//!   name that differs from `--cert`) is re-issued **over its existing key**: the agents' ServerID
//!   is a hash of the agent-server key, so it survives;
//! - a web certificate the administrator dropped in (issued by anyone else, any key type, possibly
//!   with its chain after the leaf) is served as it is.

mod files;
mod issue;
pub(crate) mod shared;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha384};
use x509_parser::prelude::{FromDer, X509Certificate};

pub use files::ensure_private_dir;
use issue::Role;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot access {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error(
        "{present} exists but {missing} does not; restore it, or remove both to have a new pair made"
    )]
    HalfPair { present: PathBuf, missing: PathBuf },
    #[error("cannot make the {role} certificate")]
    Generate {
        role: &'static str,
        #[source]
        source: rcgen::Error,
    },
}

impl CertError {
    fn io(path: &Path, source: std::io::Error) -> CertError {
        CertError::Io {
            path: path.to_owned(),
            source,
        }
    }

    fn invalid(path: &Path, reason: impl Into<String>) -> CertError {
        CertError::Invalid {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    fn generate(role: Role) -> impl FnOnce(rcgen::Error) -> CertError {
        move |source| CertError::Generate {
            role: role.file_stem(),
            source,
        }
    }
}

/// One certificate and its private key.
#[derive(Clone)]
pub struct CertKey {
    pub cert_der: Vec<u8>,
    /// Secret: never logged (hence the hand-written `Debug`).
    pub key_pkcs8_der: Vec<u8>,
    pub cert_pem: String,
}

impl fmt::Debug for CertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertKey")
            .field("cert_der", &format_args!("{} bytes", self.cert_der.len()))
            .field("key_pkcs8_der", &"[secret]")
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct ServerCerts {
    pub root: CertKey,
    /// The leaf served on the HTTPS port.
    pub web: CertKey,
    /// Certificates that followed the leaf in `webserver-cert-public.crt` (a dropped-in CA chain).
    pub web_chain: Vec<Vec<u8>>,
    pub agent: CertKey,
    pub mps: CertKey,
    agent_server_id: [u8; 48],
    web_cert_hash: [u8; 48],
}

impl ServerCerts {
    /// Loads the certificates from the data folder, making whatever is missing (see module docs).
    /// Slow on first start (RSA key generation): call it from a blocking thread.
    pub fn load_or_create(config: &Config) -> Result<ServerCerts, CertError> {
        let dir = config.datapath();
        ensure_private_dir(dir)?;
        let roles = [Role::Root, Role::Web, Role::Agent, Role::Mps];
        let mut stored = Vec::with_capacity(roles.len());
        for role in roles {
            stored.push(load_stored(dir, role)?);
        }
        // Decide what to do with each before generating anything, so the new keys come in parallel.
        let root_subject = stored[0]
            .as_ref()
            .map(|s| subject_of(&s.certs[0]))
            .transpose()?;
        let plans: Vec<Plan> = roles
            .iter()
            .zip(stored)
            .map(|(&role, stored)| plan(role, stored, root_subject.as_deref(), &config.cert))
            .collect::<Result<_, _>>()?;
        let sizes: Vec<_> = roles
            .iter()
            .zip(&plans)
            .filter(|(_, plan)| matches!(plan, Plan::New))
            .map(|(role, _)| role.key_size(config.fastcert, config.mps_key_bits))
            .collect();
        let mut new_keys = issue::generate_keys(&sizes)
            .map_err(CertError::generate(Role::Root))?
            .into_iter();

        let mut made = Vec::with_capacity(roles.len());
        let mut issuer = None;
        for (role, plan) in roles.into_iter().zip(plans) {
            let pair = carry_out(role, plan, &mut new_keys, issuer.as_ref(), config)?;
            if role == Role::Root {
                issuer = Some(root_issuer(&pair, dir)?);
            }
            made.push(pair);
        }
        let mut made = made.into_iter();
        let mut next = || made.next().expect("one per role");
        let (root, web, agent, mps) = (next(), next(), next(), next());
        let web_chain = web.certs[1..].to_vec();
        ServerCerts::new(root.into(), web.into(), web_chain, agent.into(), mps.into())
    }

    /// Assembles certificates already loaded elsewhere; fails if the agent-server one cannot be read.
    pub fn new(
        root: CertKey,
        web: CertKey,
        web_chain: Vec<Vec<u8>>,
        agent: CertKey,
        mps: CertKey,
    ) -> Result<ServerCerts, CertError> {
        let (_, agent_cert) = X509Certificate::from_der(&agent.cert_der).map_err(|e| {
            CertError::invalid(Path::new("agentserver-cert-public.crt"), e.to_string())
        })?;
        let agent_server_id =
            Sha384::digest(&agent_cert.public_key().subject_public_key.data).into();
        let web_cert_hash = Sha384::digest(&web.cert_der).into();
        Ok(ServerCerts {
            root,
            web,
            web_chain,
            agent,
            mps,
            agent_server_id,
            web_cert_hash,
        })
    }

    /// MeshCentral's ServerID: SHA-384 of the agent-server certificate's public key (for RSA, the
    /// PKCS#1 RSAPublicKey DER inside SubjectPublicKeyInfo). Written into every agent's `.msh`.
    pub fn agent_server_id(&self) -> [u8; 48] {
        self.agent_server_id
    }

    /// SHA-384 of the full DER of the web certificate served on the HTTPS port (agents pin it).
    pub fn web_cert_hash(&self) -> [u8; 48] {
        self.web_cert_hash
    }

    /// The chain the HTTPS port presents: the web leaf, then any chain that came with it.
    pub fn web_chain_der(&self) -> Vec<CertificateDer<'static>> {
        std::iter::once(&self.web.cert_der)
            .chain(&self.web_chain)
            .map(|der| CertificateDer::from(der.clone()))
            .collect()
    }
}

/// A pair as found on disk (or just made): certificate chain (leaf first) and PKCS#8 key.
struct Stored {
    certs: Vec<Vec<u8>>,
    key_pkcs8: Vec<u8>,
}

impl From<Stored> for CertKey {
    fn from(stored: Stored) -> CertKey {
        let cert_pem = files::cert_to_pem(&stored.certs[0]);
        let mut certs = stored.certs;
        CertKey {
            cert_der: certs.swap_remove(0),
            key_pkcs8_der: stored.key_pkcs8,
            cert_pem,
        }
    }
}

enum Plan {
    Keep(Stored),
    Reissue {
        stored: Stored,
        reason: &'static str,
    },
    New,
}

fn plan(
    role: Role,
    stored: Option<Stored>,
    root_subject: Option<&[u8]>,
    server_name: &str,
) -> Result<Plan, CertError> {
    let Some(stored) = stored else {
        return Ok(Plan::New);
    };
    if role == Role::Root {
        return Ok(Plan::Keep(stored));
    }
    let path = PathBuf::from(format!("{}-cert-public.crt", role.file_stem()));
    let (_, leaf) = X509Certificate::from_der(&stored.certs[0])
        .map_err(|e| CertError::invalid(&path, e.to_string()))?;
    let issued_by_root = root_subject == Some(leaf.issuer().as_raw());
    let issuer_cn = leaf
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default();
    let made_by_a_server_ca =
        issuer_cn.starts_with("TetherRoot-") || issuer_cn.starts_with("MeshCentralRoot-");
    if role == Role::Web && !issued_by_root && !made_by_a_server_ca {
        warn_if_expired(&leaf);
        return Ok(Plan::Keep(stored));
    }
    if !issued_by_root {
        return Ok(Plan::Reissue {
            stored,
            reason: "issued by a root that is no longer in the data folder",
        });
    }
    let common_name = leaf
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default();
    if matches!(role, Role::Web | Role::Mps) && !common_name.eq_ignore_ascii_case(server_name) {
        return Ok(Plan::Reissue {
            stored,
            reason: "the --cert name changed",
        });
    }
    Ok(Plan::Keep(stored))
}

/// Makes, re-issues or keeps one pair as planned, writing whatever changed.
fn carry_out(
    role: Role,
    plan: Plan,
    new_keys: &mut impl Iterator<Item = rcgen::KeyPair>,
    issuer: Option<&rcgen::Issuer<'static, rcgen::KeyPair>>,
    config: &Config,
) -> Result<Stored, CertError> {
    let dir = config.datapath();
    let stem = role.file_stem();
    match plan {
        Plan::Keep(stored) => Ok(stored),
        Plan::New => {
            let key = new_keys.next().ok_or(CertError::Generate {
                role: stem,
                source: rcgen::Error::KeyGenerationUnavailable,
            })?;
            let cert = match issuer {
                None => issue::self_signed_root(&key),
                Some(issuer) => issue::issue(role, &config.cert, &key, issuer),
            }
            .map_err(CertError::generate(role))?;
            files::write_key(dir, stem, &key.serialize_pem())?;
            files::write_cert(dir, stem, &cert.pem())?;
            tracing::info!(certificate = stem, "created a new certificate and key");
            Ok(Stored {
                certs: vec![cert.der().to_vec()],
                key_pkcs8: key.serialize_der(),
            })
        }
        Plan::Reissue { stored, reason } => {
            let issuer = issuer.ok_or_else(|| CertError::invalid(dir, "no root to issue with"))?;
            let spki = spki_of(&stored.certs[0], &files::cert_path(dir, stem))?;
            let cert = issue::issue(role, &config.cert, &spki, issuer)
                .map_err(CertError::generate(role))?;
            files::write_cert(dir, stem, &cert.pem())?;
            tracing::info!(
                certificate = stem,
                reason,
                "re-issued the certificate over its existing key"
            );
            Ok(Stored {
                certs: vec![cert.der().to_vec()],
                key_pkcs8: stored.key_pkcs8,
            })
        }
    }
}

/// The root as rcgen needs it to sign (its subject is copied byte for byte into the children).
fn root_issuer(
    root: &Stored,
    dir: &Path,
) -> Result<rcgen::Issuer<'static, rcgen::KeyPair>, CertError> {
    let key = issue::signing_key(&root.key_pkcs8).map_err(|e| {
        CertError::invalid(
            &files::key_path(dir, "root"),
            format!("cannot sign with this key ({e})"),
        )
    })?;
    let root_der = CertificateDer::from(root.certs[0].clone());
    rcgen::Issuer::from_ca_cert_der(&root_der, key).map_err(CertError::generate(Role::Root))
}

/// Reads a pair and checks that the key belongs to the certificate.
fn load_stored(dir: &Path, role: Role) -> Result<Option<Stored>, CertError> {
    let Some(pair) = files::read_pair(dir, role.file_stem())? else {
        return Ok(None);
    };
    let key_file = files::key_path(dir, role.file_stem());
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    rustls::sign::CertifiedKey::from_der(pair.certs.clone(), pair.key.clone_key(), &provider)
        .map_err(|e| {
            CertError::invalid(
                &key_file,
                format!("does not fit {}-cert-public.crt ({e})", role.file_stem()),
            )
        })?;
    let key_pkcs8 =
        files::to_pkcs8(&pair.key).map_err(|reason| CertError::invalid(&key_file, reason))?;
    Ok(Some(Stored {
        certs: pair.certs.into_iter().map(|c| c.to_vec()).collect(),
        key_pkcs8,
    }))
}

fn subject_of(cert_der: &[u8]) -> Result<Vec<u8>, CertError> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| CertError::invalid(Path::new("root-cert-public.crt"), e.to_string()))?;
    Ok(cert.subject().as_raw().to_vec())
}

fn spki_of(cert_der: &[u8], path: &Path) -> Result<rcgen::SubjectPublicKeyInfo, CertError> {
    let (_, cert) =
        X509Certificate::from_der(cert_der).map_err(|e| CertError::invalid(path, e.to_string()))?;
    rcgen::SubjectPublicKeyInfo::from_der(cert.public_key().raw)
        .map_err(|e| CertError::invalid(path, format!("unsupported public key ({e})")))
}

fn warn_if_expired(leaf: &X509Certificate<'_>) {
    if !leaf.validity().is_valid() {
        tracing::warn!(
            not_after = %leaf.validity().not_after,
            "webserver-cert-public.crt is outside its validity period; browsers and agents will refuse it"
        );
    }
}
