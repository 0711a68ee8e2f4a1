//! Relay tokens: `base64url(claims JSON) "." base64url(HMAC-SHA-256(key, claims JSON))`.
//!
//! Why a MAC and not encryption: the claims (device, user, kind, rights, expiry) are not secret
//! from the token's holder, who knows them anyway, so AES-GCM's confidentiality buys nothing,
//! while HMAC has no nonce to get wrong. What the token must be is unforgeable and unguessable:
//! the MAC makes it unforgeable, and the random session id inside makes it unguessable. The MAC
//! lets the server refuse garbage before touching any table, and lets another server instance
//! that shares the key (through the shared store) check a token it did not mint.
//!
//! The signing itself is the generic `crate::tokens::MacKey`; this module fixes the claims type
//! and the relay's own key, 32 random bytes kept in the store's settings under `relay_token_key`,
//! created on first use.

use tether_common::relay::RelayClaims;

use crate::store::{Store, StoreResult};
use crate::tokens::{MacKey, random_id};

pub(super) use crate::tokens::TokenError;

/// The store setting holding the hex key.
pub(super) const KEY_SETTING: &str = "relay_token_key";

/// The server's relay-token key. No `Debug`: it is a secret.
pub(super) struct TokenKey(MacKey);

impl TokenKey {
    #[cfg(test)]
    pub(super) fn from_bytes(bytes: [u8; 32]) -> TokenKey {
        TokenKey(MacKey::from_bytes(bytes))
    }

    /// The key from the store's settings, made and saved on first use. A stored value that is not
    /// a 32-byte hex key is replaced (tokens are short-lived, so nothing of value is lost).
    pub(super) async fn load_or_create(store: &dyn Store) -> StoreResult<TokenKey> {
        Ok(TokenKey(MacKey::load_or_create(store, KEY_SETTING).await?))
    }

    pub(super) fn sign(&self, claims: &RelayClaims) -> String {
        self.0.sign(claims)
    }

    /// The claims of a token this key signed. Expiry is the caller's check.
    pub(super) fn verify(&self, token: &str) -> Result<RelayClaims, TokenError> {
        self.0.verify(token)
    }
}

/// A random, URL-safe session id (128 bits).
pub(super) fn new_session_id() -> String {
    random_id(16)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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
            share: None,
            peer: None,
            home: None,
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
