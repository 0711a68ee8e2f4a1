//! Sealing secrets at rest (Intel AMT administrator passwords, TOTP secrets): AES-256-GCM under a
//! key of the server's per purpose, made on first use and kept in the store's settings. A
//! database copied on its own still holds the keys, so this guards mostly against secrets showing
//! up in exports, backups of the records alone and logs; it is what MeshCentral's users ask for
//! ("encrypted at rest"), and the keys move to a separate secret store once there is one.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::store::{Store, StoreResult};

/// The settings key of the key that seals AMT administrator passwords (hex).
pub(crate) const AMT_ADMIN_KEY: &str = "amt_admin_key";
/// The settings key of the key that seals users' TOTP secrets (hex).
pub(crate) const TOTP_KEY: &str = "totp_key";

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

    /// The key kept under `setting`, if there is one yet.
    pub(crate) async fn load(store: &dyn Store, setting: &str) -> StoreResult<Option<Vault>> {
        Ok(store
            .setting(setting)
            .await?
            .and_then(|k| Vault::from_hex(&k)))
    }

    /// The key kept under `setting`, made on first use.
    pub(crate) async fn load_or_create(store: &dyn Store, setting: &str) -> StoreResult<Vault> {
        if let Some(vault) = Vault::load(store, setting).await? {
            return Ok(vault);
        }
        // Of two first uses at once (two servers sharing a database), both end with the first.
        let stored = store.claim_setting(setting, &Vault::new_hex_key()).await?;
        Vault::from_hex(&stored).ok_or_else(|| {
            crate::store::StoreError::Backend(format!("setting {setting} is not a 32-byte hex key"))
        })
    }

    /// base64 of a random nonce, then the ciphertext and its tag.
    pub(crate) fn seal(&self, secret: &str) -> String {
        self.seal_bytes(secret.as_bytes())
    }

    /// The secret, or `None` when the text was not sealed by this key (or was altered).
    pub(crate) fn open(&self, sealed: &str) -> Option<String> {
        String::from_utf8(self.open_bytes(sealed)?).ok()
    }

    pub(crate) fn seal_bytes(&self, secret: &[u8]) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut sealed = secret.to_vec();
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

    pub(crate) fn open_bytes(&self, sealed: &str) -> Option<Vec<u8>> {
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
        Some(plain.to_vec())
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
