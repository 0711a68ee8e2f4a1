//! One identity for several servers sharing a database: the certificates and keys of the data
//! folder, sealed (AES-256-GCM, `vault.rs`) under a key every server is given in a file
//! (`identity_key_file`), kept in the database's settings. The first server to start stores its
//! own; every other writes the stored ones into its data folder before loading them, so all present
//! the same web and agent-server certificates and agents' pinning holds wherever they land. The
//! files stay where a single server keeps them, in MeshCentral's names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{CertError, ServerCerts, files};
use crate::config::Config;
use crate::store::{Store, StoreError};
use crate::vault::Vault;

/// The settings key of the sealed identity.
const SETTING: &str = "server_identity";
/// The certificate pairs that make up a server's identity, by file stem.
const STEMS: [&str; 4] = ["root", "webserver", "agentserver", "mpsserver"];

#[derive(Debug, thiserror::Error)]
pub(crate) enum IdentityError {
    #[error(
        "servers sharing a PostgreSQL database must share one identity: set identity_key_file to a \
         file holding 64 hex characters (`openssl rand -hex 32`), the same file on every server"
    )]
    NoKey,
    #[error("cannot read the identity key {path}")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} does not hold a key of 64 hex characters")]
    BadKey { path: PathBuf },
    #[error(
        "the identity in the database was sealed with another key than {path}: give every server \
         the same identity_key_file"
    )]
    WrongKey { path: PathBuf },
    #[error("the identity in the database is unreadable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the certificate task failed: {0}")]
    Task(String),
}

/// A certificate file and its key file, as PEM text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pair {
    cert: String,
    key: String,
}

/// Every pair of the data folder, by file stem.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
struct Bundle {
    pairs: BTreeMap<String, Pair>,
}

/// The server's certificates: from the database when several servers share one (see the module
/// docs), else from the data folder alone.
pub(crate) async fn load(config: &Config, store: &dyn Store) -> Result<ServerCerts, IdentityError> {
    let Some((vault, key_path)) = identity_key(config)? else {
        if config.db.is_some() {
            return Err(IdentityError::NoKey);
        }
        return load_files(config).await;
    };
    let dir = config.datapath();
    let stored = match store.setting(SETTING).await? {
        Some(sealed) => Some(unseal(&vault, &sealed, &key_path)?),
        None => None,
    };
    if let Some(stored) = &stored {
        stored.write_into(dir)?;
    }
    let certs = load_files(config).await?;
    let ours = Bundle::read_from(dir)?;
    match stored {
        None => {
            let sealed = seal(&vault, &ours);
            let won = store.claim_setting(SETTING, &sealed).await?;
            if won == sealed {
                tracing::info!(
                    "stored this server's identity for the servers sharing the database"
                );
                return Ok(certs);
            }
            // Another server stored its identity first: take that one.
            unseal(&vault, &won, &key_path)?.write_into(dir)?;
            load_files(config).await
        }
        Some(stored) if stored != ours => {
            // Loading re-issued a certificate (the --cert name changed): the others follow.
            store.put_setting(SETTING, &seal(&vault, &ours)).await?;
            tracing::warn!("re-issued certificates stored for every server sharing the database");
            Ok(certs)
        }
        Some(_) => Ok(certs),
    }
}

async fn load_files(config: &Config) -> Result<ServerCerts, IdentityError> {
    let config = config.clone();
    Ok(
        tokio::task::spawn_blocking(move || ServerCerts::load_or_create(&config))
            .await
            .map_err(|e| IdentityError::Task(e.to_string()))??,
    )
}

/// The identity key from `identity_key_file`, if one is configured.
fn identity_key(config: &Config) -> Result<Option<(Vault, PathBuf)>, IdentityError> {
    let Some(path) = &config.identity_key_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|source| IdentityError::KeyFile {
        path: path.clone(),
        source,
    })?;
    let text = text.trim();
    if text.len() != 64 {
        return Err(IdentityError::BadKey { path: path.clone() });
    }
    let vault =
        Vault::from_hex(text).ok_or_else(|| IdentityError::BadKey { path: path.clone() })?;
    Ok(Some((vault, path.clone())))
}

fn seal(vault: &Vault, bundle: &Bundle) -> String {
    // A map of strings always serialises.
    vault.seal_bytes(&serde_json::to_vec(bundle).unwrap_or_default())
}

fn unseal(vault: &Vault, sealed: &str, key_path: &Path) -> Result<Bundle, IdentityError> {
    let bytes = vault
        .open_bytes(sealed)
        .ok_or_else(|| IdentityError::WrongKey {
            path: key_path.to_owned(),
        })?;
    serde_json::from_slice(&bytes).map_err(|e| IdentityError::Corrupt(e.to_string()))
}

impl Bundle {
    fn read_from(dir: &Path) -> Result<Bundle, IdentityError> {
        let mut pairs = BTreeMap::new();
        for stem in STEMS {
            let read =
                |path: PathBuf| std::fs::read_to_string(&path).map_err(|e| CertError::io(&path, e));
            let pair = Pair {
                cert: read(files::cert_path(dir, stem))?,
                key: read(files::key_path(dir, stem))?,
            };
            pairs.insert(stem.to_owned(), pair);
        }
        Ok(Bundle { pairs })
    }

    /// Writes each pair whose files differ; a server that had an identity of its own says so.
    fn write_into(&self, dir: &Path) -> Result<(), IdentityError> {
        for (stem, pair) in &self.pairs {
            if !STEMS.contains(&stem.as_str()) {
                return Err(IdentityError::Corrupt(format!(
                    "unknown certificate {stem:?}"
                )));
            }
            let on_disk = |path: PathBuf| std::fs::read_to_string(path).ok();
            let cert_now = on_disk(files::cert_path(dir, stem));
            let key_now = on_disk(files::key_path(dir, stem));
            if cert_now.as_deref() == Some(&pair.cert) && key_now.as_deref() == Some(&pair.key) {
                continue;
            }
            if cert_now.is_some() {
                tracing::warn!(
                    certificate = stem.as_str(),
                    "replacing this data folder's certificate with the one the servers share"
                );
            }
            files::write_key(dir, stem, &pair.key)?;
            files::write_cert(dir, stem, &pair.cert)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redb::RedbStore;

    fn server(dir: &Path, key_file: &Path) -> Config {
        Config {
            datapath: dir.to_owned(),
            fastcert: true,
            identity_key_file: Some(key_file.to_owned()),
            ..Config::default()
        }
    }

    fn key_file(dir: &Path, name: &str, key: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("{key}\n")).unwrap();
        path
    }

    #[tokio::test]
    async fn servers_sharing_a_database_present_one_identity() {
        let root = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&root.path().join("shared.redb")).unwrap();
        let key = key_file(root.path(), "identity.key", &"ab".repeat(32));
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        for dir in [&a, &b] {
            std::fs::create_dir(dir).unwrap();
        }
        // Both start at once with empty data folders: one identity wins and both present it.
        let (config_a, config_b) = (server(&a, &key), server(&b, &key));
        let (first, second) = tokio::join!(load(&config_a, &store), load(&config_b, &store));
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first.agent_server_id(), second.agent_server_id());
        assert_eq!(first.web_cert_hash(), second.web_cert_hash());
        assert_eq!(first.root.cert_der, second.root.cert_der);

        // A server joining later, with an identity of its own, takes the shared one.
        let c = root.path().join("c");
        std::fs::create_dir(&c).unwrap();
        let own = ServerCerts::load_or_create(&Config {
            identity_key_file: None,
            ..server(&c, &key)
        })
        .unwrap();
        assert_ne!(own.agent_server_id(), first.agent_server_id());
        let joined = load(&server(&c, &key), &store).await.unwrap();
        assert_eq!(joined.agent_server_id(), first.agent_server_id());

        // The database holds it sealed: no PEM text in the stored setting.
        let stored = store.setting(SETTING).await.unwrap().unwrap();
        assert!(!stored.contains("PRIVATE KEY") && !stored.contains("BEGIN"));

        // Another key cannot open it, and says which file to fix.
        let wrong = key_file(root.path(), "wrong.key", &"cd".repeat(32));
        let d = root.path().join("d");
        std::fs::create_dir(&d).unwrap();
        match load(&server(&d, &wrong), &store).await {
            Err(IdentityError::WrongKey { path }) => assert_eq!(path, wrong),
            other => panic!("expected WrongKey, got {:?}", other.map(|_| ())),
        }
    }

    #[tokio::test]
    async fn postgres_without_a_key_and_a_malformed_key_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&root.path().join("shared.redb")).unwrap();
        let shared = Config {
            datapath: root.path().join("a"),
            db: Some("postgres:///tether".parse().unwrap()),
            ..Config::default()
        };
        assert!(matches!(
            load(&shared, &store).await,
            Err(IdentityError::NoKey)
        ));
        let short = key_file(root.path(), "short.key", "abcd");
        assert!(matches!(
            load(&server(&root.path().join("a"), &short), &store).await,
            Err(IdentityError::BadKey { .. })
        ));
        let missing = root.path().join("missing.key");
        assert!(matches!(
            load(&server(&root.path().join("a"), &missing), &store).await,
            Err(IdentityError::KeyFile { .. })
        ));
    }
}
