//! Relay tokens: `base64url(claims JSON) "." base64url(HMAC-SHA-256(key, claims JSON))`.
//!
//! Why a MAC and not encryption: the claims (device, user, kind, rights, expiry) are not secret
//! from the token's holder, who knows them anyway, so AES-GCM's confidentiality buys nothing,
//! while HMAC has no nonce to get wrong. What the token must be is unforgeable and unguessable:
//! the MAC makes it unforgeable, and the random session id inside makes it unguessable. The MAC
//! lets the server refuse garbage before touching any table, and lets another server instance
//! that shares the key (through the shared store) check a token it did not mint.
//!
//! The key is 32 random bytes kept in the store's settings, created on first use.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tether_common::relay::RelayClaims;

use crate::store::{Store, StoreResult};

/// The store setting holding the hex key.
pub const KEY_SETTING: &str = "relay_token_key";

/// Longest token accepted; real ones are about 300 characters.
pub const MAX_TOKEN_CHARS: usize = 2048;

type HmacSha256 = Hmac<Sha256>;

/// The server's relay-token key. No `Debug`: it is a secret.
pub struct TokenKey([u8; 32]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a relay token")]
    Malformed,
    #[error("relay token signature does not match")]
    BadSignature,
}

impl TokenKey {
    #[cfg(test)]
    pub fn from_bytes(bytes: [u8; 32]) -> TokenKey {
        TokenKey(bytes)
    }

    /// The key from the store's settings, made and saved on first use. A stored value that is not
    /// a 32-byte hex key is replaced (tokens are short-lived, so nothing of value is lost).
    pub async fn load_or_create(store: &dyn Store) -> StoreResult<TokenKey> {
        if let Some(text) = store.setting(KEY_SETTING).await?
            && let Ok(bytes) = hex::decode(text.trim())
            && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
        {
            return Ok(TokenKey(key));
        }
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        store.put_setting(KEY_SETTING, &hex::encode(key)).await?;
        tracing::info!("relay: created the relay token key");
        Ok(TokenKey(key))
    }

    pub fn sign(&self, claims: &RelayClaims) -> String {
        // RelayClaims holds strings and numbers only: serialising cannot fail.
        let body = serde_json::to_vec(claims).unwrap_or_default();
        let tag = self.mac(&body).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&body),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The claims of a token this key signed. Expiry is the caller's check.
    pub fn verify(&self, token: &str) -> Result<RelayClaims, TokenError> {
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

/// A random, URL-safe session id (128 bits).
pub fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use tether_common::relay::{RelaySide, SessionKind};
    use tether_common::rights::Rights;

    use super::*;

    fn claims() -> RelayClaims {
        RelayClaims {
            session: new_session_id(),
            side: RelaySide::Agent,
            device: "dev@$x".into(),
            user: "alice".into(),
            kind: SessionKind::Terminal,
            rights: Rights::TERMINAL,
            expires_ms: 42,
        }
    }

    #[test]
    fn a_signed_token_verifies_and_is_url_safe() {
        let key = TokenKey::from_bytes([7; 32]);
        let claims = claims();
        let token = key.sign(&claims);
        assert!(
            token
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c)),
            "{token}"
        );
        assert!(token.len() < 400, "{}", token.len());
        assert_eq!(key.verify(&token).unwrap(), claims);
    }

    #[test]
    fn tampering_or_another_key_is_refused() {
        let key = TokenKey::from_bytes([7; 32]);
        let token = key.sign(&claims());
        assert_eq!(
            TokenKey::from_bytes([8; 32]).verify(&token),
            Err(TokenError::BadSignature)
        );
        // Claim to be the console side with the agent's token.
        let (body, tag) = token.split_once('.').unwrap();
        let mut json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        json["side"] = "console".into();
        let forged = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json).unwrap())
        );
        assert_eq!(key.verify(&forged), Err(TokenError::BadSignature));
        for garbage in ["", ".", "abc", "a.b.c", "!!.!!", &"a".repeat(5000)] {
            assert!(key.verify(garbage).is_err(), "{garbage}");
        }
    }

    #[test]
    fn session_ids_are_random() {
        let (a, b) = (new_session_id(), new_session_id());
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
    }
}
