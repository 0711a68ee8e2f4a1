//! Passkeys (WebAuthn) as a second factor, beside TOTP (`second_factor.rs`), with kanidm's
//! `webauthn-rs` doing the ceremonies and their checks.
//!
//! Adding one (`beginPasskey`, `finishPasskey` on `/control`): the server makes a challenge, the
//! browser has the authenticator sign it, the server checks it and keeps the public key. Signing
//! in: after a right password, `POST /api/login` answers `second_factor_required` with a
//! challenge for the account's passkeys (and a challenge id); the browser answers it in a second
//! `POST /api/login` with the password again and `passkey: {challengeId, credential}`.
//!
//! The relying party is the server's certificate name (`cert`) on any port: the name browsers
//! reach it by. Ceremonies in flight live in memory for five minutes (`Ceremonies`); a login
//! challenge is made only after a right password, so the login limits bound how many there are.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tether_common::ids::UserId;
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::config::Config;
use crate::store::StoredPasskey;

/// How long a ceremony may take (the browser's own timeout is shorter).
const CEREMONY_LIFETIME: Duration = Duration::from_secs(300);
/// Most ceremonies kept at once; the oldest go first.
const MAX_CEREMONIES: usize = 10_000;
/// Most passkeys an account keeps.
pub(crate) const MAX_PASSKEYS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub(crate) enum PasskeyError {
    #[error("passkeys need the server's name (cert) to be a host name: {0}")]
    Config(String),
    #[error("the authenticator's answer does not check out: {0}")]
    Refused(String),
    #[error("that passkey challenge is unknown or expired; try again")]
    NoCeremony,
}

/// The server's relying party.
pub(crate) fn relying_party(config: &Config) -> Result<Webauthn, PasskeyError> {
    let origin = Url::parse(&format!("https://{}", config.cert))
        .map_err(|e| PasskeyError::Config(e.to_string()))?;
    WebauthnBuilder::new(&config.cert, &origin)
        .map_err(|e| PasskeyError::Config(e.to_string()))?
        .rp_name("Tether")
        .allow_any_port(true)
        .build()
        .map_err(|e| PasskeyError::Config(e.to_string()))
}

/// The WebAuthn user handle of an account: stable, from its id, revealing nothing of it.
fn user_handle(user: &UserId) -> Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(user.as_str().as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

/// What is kept of a ceremony while the browser answers, keyed by who (or which challenge).
type InFlight<K, V> = Mutex<HashMap<K, (Instant, V)>>;

/// Passkey ceremonies in flight.
#[derive(Default)]
pub(crate) struct Ceremonies {
    registrations: InFlight<UserId, PasskeyRegistration>,
    /// By challenge id: the account it was made for and the state to check the answer with.
    logins: InFlight<String, (UserId, PasskeyAuthentication)>,
}

fn keep<K: std::hash::Hash + Eq + Clone, V>(map: &mut HashMap<K, (Instant, V)>) {
    map.retain(|_, (at, _)| at.elapsed() < CEREMONY_LIFETIME);
    while map.len() >= MAX_CEREMONIES {
        let Some(oldest) = map
            .iter()
            .min_by_key(|(_, (at, _))| *at)
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        map.remove(&oldest);
    }
}

impl Ceremonies {
    /// Starts adding a passkey to `user`'s account: the browser's `publicKey` options (JSON).
    pub(crate) fn begin_registration(
        &self,
        rp: &Webauthn,
        user: &UserId,
        name: &str,
        existing: &[StoredPasskey],
    ) -> Result<serde_json::Value, PasskeyError> {
        let exclude = existing
            .iter()
            .map(|p| p.passkey.cred_id().clone())
            .collect();
        let (challenge, state) = rp
            .start_passkey_registration(user_handle(user), name, name, Some(exclude))
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        let mut registrations = self.registrations.lock().unwrap_or_else(|e| e.into_inner());
        keep(&mut registrations);
        registrations.insert(user.clone(), (Instant::now(), state));
        Ok(serde_json::to_value(challenge).unwrap_or_default())
    }

    /// Checks the authenticator's answer to `user`'s registration; the new passkey.
    pub(crate) fn finish_registration(
        &self,
        rp: &Webauthn,
        user: &UserId,
        credential: serde_json::Value,
    ) -> Result<Passkey, PasskeyError> {
        let (_, state) = self
            .registrations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(user)
            .filter(|(at, _)| at.elapsed() < CEREMONY_LIFETIME)
            .ok_or(PasskeyError::NoCeremony)?;
        let credential: RegisterPublicKeyCredential =
            serde_json::from_value(credential).map_err(|e| PasskeyError::Refused(e.to_string()))?;
        rp.finish_passkey_registration(&credential, &state)
            .map_err(|e| PasskeyError::Refused(e.to_string()))
    }

    /// A login challenge for `user`'s passkeys: (challenge id, the browser's options as JSON).
    pub(crate) fn begin_login(
        &self,
        rp: &Webauthn,
        user: &UserId,
        passkeys: &[StoredPasskey],
    ) -> Result<(String, serde_json::Value), PasskeyError> {
        let keys: Vec<Passkey> = passkeys.iter().map(|p| p.passkey.clone()).collect();
        let (challenge, state) = rp
            .start_passkey_authentication(&keys)
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        let id = crate::tokens::random_id(16);
        let mut logins = self.logins.lock().unwrap_or_else(|e| e.into_inner());
        keep(&mut logins);
        logins.insert(id.clone(), (Instant::now(), (user.clone(), state)));
        Ok((id, serde_json::to_value(challenge).unwrap_or_default()))
    }

    /// Checks a login answer: the passkeys with the used one's counter brought up to date.
    pub(crate) fn finish_login(
        &self,
        rp: &Webauthn,
        user: &UserId,
        challenge_id: &str,
        credential: serde_json::Value,
        passkeys: &[StoredPasskey],
    ) -> Result<Vec<StoredPasskey>, PasskeyError> {
        let (_, (owner, state)) = self
            .logins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(challenge_id)
            .filter(|(at, _)| at.elapsed() < CEREMONY_LIFETIME)
            .ok_or(PasskeyError::NoCeremony)?;
        if owner != *user {
            return Err(PasskeyError::NoCeremony);
        }
        let credential: PublicKeyCredential =
            serde_json::from_value(credential).map_err(|e| PasskeyError::Refused(e.to_string()))?;
        let result = rp
            .finish_passkey_authentication(&credential, &state)
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        let mut updated = passkeys.to_vec();
        for stored in &mut updated {
            stored.passkey.update_credential(&result);
        }
        Ok(updated)
    }
}
