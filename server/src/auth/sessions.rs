//! Login sessions: a random token in the `__Host-tether_session` cookie, and the SHA-256 of that
//! token in the store, so that a copy of the database hands out no live sessions.
//!
//! The `__Host-` prefix makes browsers accept the cookie only with `Secure`, `Path=/` and no
//! `Domain`, so a sibling subdomain cannot plant one of that name (cookie tossing: swapping the
//! victim into the attacker's session, or blocking their login with a bad value). It needs
//! `Secure`, which stays on behind a TLS-offloading proxy too (the browser speaks HTTPS to the
//! proxy); only `insecure_cookies`, for development without TLS anywhere, drops both.
//!
//! A session is void once it expires, once its user is deleted, and once the user's password
//! changes after it was issued (`SessionRecord::created <= UserRecord::password_changed`).

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::http::ApiError;
use crate::clock::now_secs;
use crate::config::Config;
use crate::state::AppState;
use crate::store::{SessionRecord, StoreResult, UserRecord};

/// The cookie's name on every real server.
pub(crate) const COOKIE_NAME: &str = "__Host-tether_session";
/// Its name with `insecure_cookies` (plain HTTP end to end, development only).
pub(crate) const INSECURE_COOKIE_NAME: &str = "tether_session";

/// The session cookie's name under `config`.
pub(crate) fn cookie_name(config: &Config) -> &'static str {
    if config.insecure_cookies {
        INSECURE_COOKIE_NAME
    } else {
        COOKIE_NAME
    }
}

const TOKEN_BYTES: usize = 32;
/// Length of a token's text form: 32 bytes in unpadded base64url.
const TOKEN_CHARS: usize = 43;

/// A fresh session token: 32 bytes from the operating system's generator, in base64url.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The key a session is stored under.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The `Set-Cookie` value that hands `token` to the browser.
pub(crate) fn session_cookie(config: &Config, token: &str) -> String {
    let max_age = u64::from(config.session_hours) * 3600;
    cookie_with(config, token, max_age)
}

/// The `Set-Cookie` value that makes the browser forget its session cookie.
pub(crate) fn cleared_cookie(config: &Config) -> String {
    cookie_with(config, "", 0)
}

fn cookie_with(config: &Config, value: &str, max_age: u64) -> String {
    let secure = if config.insecure_cookies {
        ""
    } else {
        "; Secure"
    };
    let name = cookie_name(config);
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// The session tokens the request carries under the configured name that look like one, in the
/// order sent. More than one can arrive (a stale cookie beside a fresh one); each is tried.
pub(crate) fn tokens_from_headers<'h>(
    config: &Config,
    headers: &'h HeaderMap,
) -> impl Iterator<Item = &'h str> + 'h {
    let wanted = cookie_name(config);
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(name, _)| *name == wanted)
        .map(|(_, token)| token)
        .filter(|token| token.len() == TOKEN_CHARS)
        .take(8)
}

/// The first session token the request carries (see [`tokens_from_headers`]).
pub(crate) fn token_from_headers<'h>(config: &Config, headers: &'h HeaderMap) -> Option<&'h str> {
    tokens_from_headers(config, headers).next()
}

/// Issues a session for `user`; returns the `Set-Cookie` value to send.
pub(crate) async fn start_session(state: &AppState, user: &UserRecord) -> StoreResult<String> {
    let token = new_token();
    // A session counts as issued strictly after the last password change, even within the same
    // second, so that the session a password change hands out survives it.
    let created = now_secs().max(user.password_changed + 1);
    let expires = created + i64::from(state.config.session_hours) * 3600;
    let record = SessionRecord {
        user: user.id.clone(),
        created,
        expires,
    };
    state
        .store
        .put_session(&token_hash(&token), &record)
        .await?;
    Ok(session_cookie(&state.config, &token))
}

/// Deletes the request's sessions, if it has any.
pub(crate) async fn end_session(state: &AppState, headers: &HeaderMap) -> StoreResult<()> {
    for token in tokens_from_headers(&state.config, headers) {
        state.store.delete_session(&token_hash(token)).await?;
    }
    Ok(())
}

/// The user behind `token`, when the session is still valid. Void sessions are deleted on sight.
pub(crate) async fn session_user(state: &AppState, token: &str) -> StoreResult<Option<UserRecord>> {
    Ok(valid_session(state, &token_hash(token))
        .await?
        .map(|(user, _)| user))
}

/// The session stored under `key` (a [`token_hash`]) and its user, when it is still valid. For
/// sockets that outlive the request that opened them: they keep the hash, never the token.
pub(crate) async fn valid_session(
    state: &AppState,
    key: &str,
) -> StoreResult<Option<(UserRecord, SessionRecord)>> {
    let Some(session) = state.store.session(key).await? else {
        return Ok(None);
    };
    let user = state.store.user(&session.user).await?;
    match user {
        Some(user) if session.expires > now_secs() && session.created > user.password_changed => {
            Ok(Some((user, session)))
        }
        _ => {
            state.store.delete_session(key).await?;
            Ok(None)
        }
    }
}

/// The user behind the request's session cookie, if any.
pub(crate) async fn request_user(
    state: &AppState,
    headers: &HeaderMap,
) -> StoreResult<Option<UserRecord>> {
    for token in tokens_from_headers(&state.config, headers) {
        if let Some(user) = session_user(state, token).await? {
            return Ok(Some(user));
        }
    }
    Ok(None)
}

/// A logged-in user. Handlers that take this run only for requests with a valid session; others
/// get 401 `{"error":"unauthorized"}`.
#[derive(Debug, Clone)]
pub(crate) struct AuthUser(pub UserRecord);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match request_user(state, &parts.headers).await? {
            Some(user) => Ok(AuthUser(user)),
            None => Err(ApiError::unauthorized()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tokens_are_43_chars_of_base64url_and_differ() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), TOKEN_CHARS);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "{a}"
        );
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 64);
    }

    #[test]
    fn the_cookie_is_locked_down() {
        let config = Config {
            session_hours: 2,
            ..Config::default()
        };
        let cookie = session_cookie(&config, "tok");
        assert_eq!(
            cookie,
            "__Host-tether_session=tok; Path=/; HttpOnly; SameSite=Strict; Max-Age=7200; Secure"
        );
        let offload = Config {
            tlsoffload: true,
            ..config.clone()
        };
        assert!(
            session_cookie(&offload, "tok").ends_with("; Secure"),
            "the browser speaks HTTPS to the proxy"
        );
        assert!(cleared_cookie(&offload).contains("Max-Age=0"));
        let insecure = Config {
            insecure_cookies: true,
            ..config
        };
        assert_eq!(
            session_cookie(&insecure, "tok"),
            "tether_session=tok; Path=/; HttpOnly; SameSite=Strict; Max-Age=7200"
        );
    }

    #[test]
    fn finds_the_token_among_other_cookies() {
        let token = new_token();
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("theme=dark"));
        headers.append(
            COOKIE,
            HeaderValue::from_str(&format!("a=b; {COOKIE_NAME}={token}; c=d")).unwrap(),
        );
        let config = Config::default();
        assert_eq!(token_from_headers(&config, &headers), Some(token.as_str()));
        let mut bad = HeaderMap::new();
        bad.append(
            COOKIE,
            HeaderValue::from_static("__Host-tether_session=short"),
        );
        let unprefixed = format!("tether_session={token}");
        bad.append(COOKIE, HeaderValue::from_str(&unprefixed).unwrap());
        assert_eq!(token_from_headers(&config, &bad), None);
        let mut two = HeaderMap::new();
        let both = format!("{COOKIE_NAME}={}; {COOKIE_NAME}={token}", new_token());
        two.append(COOKIE, HeaderValue::from_str(&both).unwrap());
        assert_eq!(
            tokens_from_headers(&config, &two).count(),
            2,
            "each is tried"
        );
    }
}
