//! The pinned outer certificate (MeshAgent's `ServerTlsCertHash`): the SHA-384 of the TLS
//! certificate that a full secondary check last proved to be the server's. Seeing it again lets
//! the next connection skip the server's signature.

use std::path::Path;

use tether_common::handshake::Hash;

use crate::files;

const FILE: &str = "server-tls-hash";

/// `None` when there is no pin yet or the file is unreadable (the full check then runs again).
pub(crate) fn load(state_dir: &Path) -> Option<Hash> {
    let text = std::fs::read_to_string(state_dir.join(FILE)).ok()?;
    hex::decode(text.trim()).ok()?.try_into().ok()
}

pub(crate) fn save(state_dir: &Path, hash: &Hash) -> std::io::Result<()> {
    files::write_private(
        &state_dir.join(FILE),
        format!("{}\n", hex::encode(hash)).as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ignores_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), None);
        save(dir.path(), &[7; 48]).unwrap();
        assert_eq!(load(dir.path()), Some([7; 48]));
        std::fs::write(dir.path().join(FILE), "abc").unwrap();
        assert_eq!(load(dir.path()), None);
    }
}
