//! Sealing Intel AMT administrator passwords at rest: AES-256-GCM under a key of the server's,
//! made on first use and kept in the store's settings. A database copied on its own still holds
//! the key, so this guards mostly against the password showing up in exports, backups of the
//! records alone and logs; it is what MeshCentral's users ask for ("encrypted at rest"), and the
//! key moves to a separate secret store once there is one.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The settings key under which the sealing key lives (hex).
pub(crate) const KEY_SETTING: &str = "amt_admin_key";

pub(crate) struct Vault {
    key: LessSafeKey,
}

impl Vault {
    /// From the stored key (64 hex characters).
    pub(crate) fn from_hex(hex_key: &str) -> Option<Vault> {
        let bytes = hex::decode(hex_key).ok()?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes).ok()?;
        Some(Vault {
            key: LessSafeKey::new(key),
        })
    }

    /// A new random key, as stored.
    pub(crate) fn new_hex_key() -> String {
        hex::encode(rand::random::<[u8; 32]>())
    }

    /// base64 of a random nonce, then the ciphertext and its tag.
    pub(crate) fn seal(&self, secret: &str) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut sealed = secret.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut sealed,
            )
            .expect("AES-GCM seals any length we store");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    /// The secret, or `None` when the text was not sealed by this key (or was altered).
    pub(crate) fn open(&self, sealed: &str) -> Option<String> {
        let bytes = STANDARD.decode(sealed).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut rest = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut rest)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_passwords_open_only_with_their_key_and_unaltered() {
        let vault = Vault::from_hex(&Vault::new_hex_key()).unwrap();
        let sealed = vault.seal("P@ssw0rd-AMT");
        assert!(!sealed.contains("P@ssw0rd"));
        assert_ne!(
            sealed,
            vault.seal("P@ssw0rd-AMT"),
            "a fresh nonce each time"
        );
        assert_eq!(vault.open(&sealed).as_deref(), Some("P@ssw0rd-AMT"));
        let other = Vault::from_hex(&Vault::new_hex_key()).unwrap();
        assert_eq!(other.open(&sealed), None);
        let mut altered = STANDARD.decode(&sealed).unwrap();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(vault.open(&STANDARD.encode(altered)), None);
        assert_eq!(vault.open("not base64 !"), None);
    }
}
