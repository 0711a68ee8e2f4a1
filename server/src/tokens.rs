//! Signed, self-contained tokens: `base64url(claims JSON) "." base64url(HMAC-SHA-256(key, claims))`.
//!
//! The claims are not secret from the token's holder, so they are MAC'd rather than encrypted:
//! the MAC makes a token unforgeable, and a random id inside makes it unguessable. Each purpose
//! (invites, …) keeps its own key in the store's settings, so a token made for one purpose can
//! never pass as another even when the claims happen to parse. Keys are 32 random bytes, made on
//! first use. Expiry and the meaning of the claims are the caller's checks.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

use crate::store::{Store, StoreResult};

/// Longest token accepted; real ones are a few hundred characters.
pub(crate) const MAX_TOKEN_CHARS: usize = 2048;

type HmacSha256 = Hmac<Sha256>;

/// One purpose's key. No `Debug`: it is a secret.
pub(crate) struct MacKey([u8; 32]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a token")]
    Malformed,
    #[error("token signature does not match")]
    BadSignature,
}

impl MacKey {
    #[cfg(test)]
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> MacKey {
        MacKey(bytes)
    }

    /// The key kept under `setting`, or `None` if there is none yet (so nothing was ever signed
    /// with it, and checking a token need not create one).
    pub(crate) async fn load(store: &dyn Store, setting: &str) -> StoreResult<Option<MacKey>> {
        let Some(text) = store.setting(setting).await? else {
            return Ok(None);
        };
        Ok(hex::decode(text.trim())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
            .map(MacKey))
    }

    /// The key kept under `setting`, made and saved on first use. A stored value that is not a
    /// 32-byte hex key is replaced (its tokens are void, which for short-lived tokens is fine).
    pub(crate) async fn load_or_create(store: &dyn Store, setting: &str) -> StoreResult<MacKey> {
        if let Some(key) = MacKey::load(store, setting).await? {
            return Ok(key);
        }
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        let made = hex::encode(key);
        let stored = store.claim_setting(setting, &made).await?;
        if stored == made {
            tracing::info!(setting, "created a token key");
        }
        // What is stored wins: another server sharing the database may have made one first.
        Ok(hex::decode(stored.trim())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
            .map_or(MacKey(key), MacKey))
    }

    pub(crate) fn sign<T: Serialize>(&self, claims: &T) -> String {
        // Claims are plain structs of strings and numbers: serialising cannot fail.
        let body = serde_json::to_vec(claims).unwrap_or_default();
        let tag = self.mac(&body).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&body),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The claims of a token this key signed.
    pub(crate) fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, TokenError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(TokenError::Malformed);
        }
        let (body, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let body = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        // Constant-time comparison, so the tag cannot be found byte by byte from timings.
        self.mac(&body)
            .verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        serde_json::from_slice(&body).map_err(|_| TokenError::Malformed)
    }

    fn mac(&self, body: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length; 32 bytes cannot be refused.
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(body);
        mac
    }
}

/// `bytes` random bytes, base64url: an unguessable id.
pub(crate) fn random_id(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::fill(buffer.as_mut_slice());
    URL_SAFE_NO_PAD.encode(buffer)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Claims {
        who: String,
        until: i64,
    }

    fn claims() -> Claims {
        Claims {
            who: "alice".into(),
            until: 42,
        }
    }

    #[test]
    fn a_signed_token_verifies_and_is_url_safe() {
        let key = MacKey::from_bytes([7; 32]);
        let token = key.sign(&claims());
        assert!(
            token
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c)),
            "{token}"
        );
        assert_eq!(key.verify::<Claims>(&token).unwrap(), claims());
    }

    #[test]
    fn tampering_garbage_or_another_key_is_refused() {
        let key = MacKey::from_bytes([7; 32]);
        let token = key.sign(&claims());
        assert_eq!(
            MacKey::from_bytes([8; 32]).verify::<Claims>(&token),
            Err(TokenError::BadSignature)
        );
        let (_, tag) = token.split_once('.').unwrap();
        let longer = Claims {
            until: i64::MAX,
            ..claims()
        };
        let forged = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&longer).unwrap())
        );
        assert_eq!(key.verify::<Claims>(&forged), Err(TokenError::BadSignature));
        for garbage in ["", ".", "abc", "a.b.c", "!!.!!", &"a".repeat(5000)] {
            assert!(key.verify::<Claims>(garbage).is_err(), "{garbage}");
        }
    }

    #[test]
    fn random_ids_differ() {
        let (a, b) = (random_id(16), random_id(16));
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
    }
}
