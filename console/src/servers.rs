//! The servers this console has trusted, kept as `servers.json` in the app's config directory.
//! The list holds no secret, but it is the trust-on-first-use pin list: whoever can rewrite it
//! chooses which certificate the console accepts for a server. So it is written readable and
//! writable by its owner only (0600), in a folder only its owner may enter (0700).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::probe::same_fingerprint;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ServersError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {source}")]
    Format {
        path: PathBuf,
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct KnownServer {
    /// The URL the user typed (the page that opens).
    pub url: String,
    /// SHA-256 of the certificate the user accepted.
    pub fingerprint: String,
}

/// How a freshly probed certificate compares with what we remember for that origin.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Trust {
    New,
    Known,
    Changed,
}

#[derive(Debug)]
pub(crate) struct ServerList {
    path: PathBuf,
    /// Keyed by origin (`https://host:port`).
    servers: BTreeMap<String, KnownServer>,
}

impl ServerList {
    pub(crate) fn load(config_dir: &Path) -> Result<Self, ServersError> {
        let path = config_dir.join("servers.json");
        let servers = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| ServersError::Format {
                path: path.clone(),
                source,
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(ServersError::Io { path, source }),
        };
        Ok(Self { path, servers })
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = (&String, &KnownServer)> {
        self.servers.iter()
    }

    pub(crate) fn get(&self, origin: &str) -> Option<&KnownServer> {
        self.servers.get(origin)
    }

    pub(crate) fn trust_of(&self, origin: &str, fingerprint: &str) -> Trust {
        match self.servers.get(origin) {
            None => Trust::New,
            Some(known) if same_fingerprint(&known.fingerprint, fingerprint) => Trust::Known,
            Some(_) => Trust::Changed,
        }
    }

    pub(crate) fn remember(
        &mut self,
        origin: String,
        server: KnownServer,
    ) -> Result<(), ServersError> {
        self.servers.insert(origin, server);
        self.save()
    }

    pub(crate) fn forget(&mut self, origin: &str) -> Result<(), ServersError> {
        self.servers.remove(origin);
        self.save()
    }

    fn save(&self) -> Result<(), ServersError> {
        let io_error = |source| ServersError::Io {
            path: self.path.clone(),
            source,
        };
        let json =
            serde_json::to_vec_pretty(&self.servers).map_err(|source| ServersError::Format {
                path: self.path.clone(),
                source,
            })?;
        save_private(&self.path, &json).map_err(io_error)
    }
}

/// Writes `contents` to `path`, readable by its owner only, in a folder only its owner may enter;
/// written then renamed, so a crash never leaves a half-written file.
pub(crate) fn save_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let temp = path.with_extension("json.tmp");
    write_private(&temp, contents)?;
    fs::rename(&temp, path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // A folder made earlier (by an older version, or by hand) is narrowed too.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Elsewhere the user's profile folder is private already.
#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` applies to a new file only; a leftover temporary file is narrowed too.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP_A: &str = "AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA";
    const FP_B: &str = "BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB";

    #[cfg(unix)]
    #[test]
    fn the_list_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| fs::metadata(path).expect("exists").permissions().mode() & 0o777;
        let server = || KnownServer {
            url: "https://example.org/".into(),
            fingerprint: FP_A.into(),
        };

        // A config folder that does not exist yet is made 0700.
        let home = tempfile::tempdir().expect("temp dir");
        let config_dir = home.path().join("config").join("org.tether.console");
        let mut list = ServerList::load(&config_dir).expect("empty list");
        list.remember("https://example.org".into(), server())
            .expect("saved");
        assert_eq!(mode(&config_dir), 0o700);
        assert_eq!(mode(&config_dir.join("servers.json")), 0o600);

        // One made earlier with the usual umask, and a list written by an older version, are
        // narrowed on the next save.
        fs::set_permissions(&config_dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::set_permissions(
            config_dir.join("servers.json"),
            fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        let mut list = ServerList::load(&config_dir).expect("reloaded");
        list.forget("https://example.org").expect("saved");
        assert_eq!(mode(&config_dir), 0o700);
        assert_eq!(mode(&config_dir.join("servers.json")), 0o600);
    }

    #[test]
    fn remembers_across_loads_and_flags_a_changed_certificate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let origin = "https://example.org:4433".to_owned();
        let mut list = ServerList::load(dir.path()).expect("empty list");
        assert_eq!(list.trust_of(&origin, FP_A), Trust::New);
        list.remember(
            origin.clone(),
            KnownServer {
                url: format!("{origin}/"),
                fingerprint: FP_A.into(),
            },
        )
        .expect("saved");

        let mut list = ServerList::load(dir.path()).expect("reloaded");
        assert_eq!(list.trust_of(&origin, FP_A), Trust::Known);
        assert_eq!(list.trust_of(&origin, FP_B), Trust::Changed);
        list.forget(&origin).expect("forgotten");
        assert_eq!(
            ServerList::load(dir.path())
                .expect("reloaded")
                .all()
                .count(),
            0
        );
    }
}
