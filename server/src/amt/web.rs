//! Intel AMT's own web UI (port 16992), proxied through the machine's CIRA tunnel so that an
//! administrator reaches it from the console even when the machine is off or its OS is hung.
//!
//! `openAmtWeb` (control) hands out `/amt-web/TOKEN/`: the token is signed with a key of this
//! module's, names the machine and the user, and expires after [`LINK_LIFETIME`]. Every request
//! under it checks the token, then the user's right to manage the machine *again* (a right taken
//! away ends the link at once), opens a channel to port 16992, and logs in to AMT with the
//! machine's administrator (Digest, as for power), so nobody types AMT's password.
//!
//! Why a token in the path and not the session cookie: the proxied pages are AMT's, with AMT's
//! scripts, so they run sandboxed (`Content-Security-Policy: sandbox`, an opaque origin) and can
//! neither read the console's storage nor call its API with the administrator's cookie. A
//! sandboxed page's requests carry no `SameSite` cookie either; the token is what authorises
//! them. `Referrer-Policy: no-referrer` (set on every response) keeps it out of other sites'
//! logs.
//!
//! AMT's pages link with absolute paths (`/index.htm`); in HTML and in redirects those are moved
//! under the link's prefix ([`rewrite_html`]). Other bodies stream through untouched, at the
//! pace AMT's channel windows allow (`mps/bridge.rs`).

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tether_common::apf::port;
use tether_common::ids::{DeviceId, UserId};
use tether_common::rights::Rights;

use super::digest::Challenge;
use crate::clock::now_millis;
use crate::control::rights_on;
use crate::state::AppState;
use crate::store::{Store, StoreResult};
use crate::tokens::MacKey;
use crate::vault::{self, Vault};

/// Where the links live.
pub(crate) const WEB_PATH: &str = "/amt-web";
/// How long a link works.
pub(crate) const LINK_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// The store setting holding this purpose's token key.
const KEY_SETTING: &str = "amt_web_token_key";
/// An HTML page bigger than this is refused (AMT's are tens of KiB).
const MAX_REWRITTEN_HTML: usize = 4 * 1024 * 1024;
/// AMT's pages are its own code: an opaque origin of their own, forms and scripts allowed, no
/// framing, and every fetch back to this server (that is, to the same link).
const PROXIED_CSP: &str = "sandbox allow-scripts allow-forms allow-popups allow-modals \
     allow-downloads; default-src 'self' 'unsafe-inline' 'unsafe-eval' data:; \
     frame-ancestors 'none'; base-uri 'self'; form-action 'self'";
/// What AMT's answers may say of themselves; anything else (cookies above all) stays behind.
const PASSED_RESPONSE_HEADERS: [header::HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_DISPOSITION,
    header::LAST_MODIFIED,
    header::ETAG,
];
/// And what a browser's requests may say to AMT.
const PASSED_REQUEST_HEADERS: [header::HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::ACCEPT,
    header::ACCEPT_LANGUAGE,
    header::IF_NONE_MATCH,
];

/// What a link's token says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebClaims {
    pub device: DeviceId,
    pub user: UserId,
    pub expires_ms: u64,
    /// Random, so that two links are never equal.
    pub nonce: String,
}

pub(crate) async fn token_key(store: &dyn Store) -> StoreResult<MacKey> {
    MacKey::load_or_create(store, KEY_SETTING).await
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(&format!("{WEB_PATH}/{{token}}"), any(add_slash))
        .route(&format!("{WEB_PATH}/{{token}}/"), any(proxy_root))
        .route(&format!("{WEB_PATH}/{{token}}/{{*rest}}"), any(proxy))
}

async fn add_slash(Path(token): Path<String>) -> Response {
    redirect(&format!("{WEB_PATH}/{token}/"))
}

async fn proxy_root(
    state: State<AppState>,
    Path(token): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    proxy(
        state,
        Path((token, String::new())),
        method,
        uri,
        headers,
        body,
    )
    .await
}

/// Why a request under a link was not passed on.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("this Intel AMT link is not valid")]
    BadToken,
    #[error("this Intel AMT link has expired: open the web UI from the console again")]
    Expired,
    #[error("you may no longer manage this device")]
    NoRight,
    #[error("the device has no Intel AMT administrator set")]
    NoAdmin,
    #[error("the Intel AMT machine is not reachable: {0}")]
    Unreachable(String),
    #[error("the server's store failed")]
    Store,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let status = match self {
            Refused::BadToken => StatusCode::NOT_FOUND,
            Refused::Expired => StatusCode::GONE,
            Refused::NoRight => StatusCode::FORBIDDEN,
            Refused::NoAdmin => StatusCode::CONFLICT,
            Refused::Unreachable(_) => StatusCode::BAD_GATEWAY,
            Refused::Store => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.to_string(),
        )
            .into_response()
    }
}

async fn proxy(
    State(state): State<AppState>,
    Path((token, rest)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match forward(&state, &token, &rest, method, &uri, &headers, body).await {
        Ok(response) => response,
        Err(refused) => {
            tracing::info!("amt web: refused a request: {refused}");
            refused.into_response()
        }
    }
}

async fn forward(
    state: &AppState,
    token: &str,
    rest: &str,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, Refused> {
    let store = state.store.as_ref();
    // No key yet means no link was ever made.
    let key = MacKey::load(store, KEY_SETTING)
        .await
        .map_err(|_| Refused::Store)?
        .ok_or(Refused::BadToken)?;
    let claims: WebClaims = key.verify(token).map_err(|_| Refused::BadToken)?;
    if claims.expires_ms < now_millis().max(0) as u64 {
        return Err(Refused::Expired);
    }
    let (user, device) = match (
        store.user(&claims.user).await,
        store.device(&claims.device).await,
    ) {
        (Ok(user), Ok(device)) => (
            user.ok_or(Refused::NoRight)?,
            device.ok_or(Refused::NoRight)?,
        ),
        _ => return Err(Refused::Store),
    };
    let group = store
        .group(&device.group)
        .await
        .map_err(|_| Refused::Store)?
        .ok_or(Refused::NoRight)?;
    if !rights_on(&user, &group).contains(Rights::MANAGE_DEVICES) {
        return Err(Refused::NoRight);
    }
    let admin = device.amt_admin.ok_or(Refused::NoAdmin)?;
    let vault = Vault::load(store, vault::AMT_ADMIN_KEY)
        .await
        .map_err(|_| Refused::Store)?
        .ok_or(Refused::NoAdmin)?;
    let password = vault.open(&admin.sealed_password).ok_or(Refused::NoAdmin)?;

    let target = match uri.query() {
        Some(query) => format!("/{rest}?{query}"),
        None => format!("/{rest}"),
    };
    let stream = state
        .amt
        .open(&claims.device, port::WSMAN)
        .await
        .map_err(|e| Refused::Unreachable(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Refused::Unreachable(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("amt web: connection ended: {e}");
        }
    });

    // Without credentials first: AMT answers with the Digest challenge to log in with.
    let mut challenge: Option<Challenge> = None;
    let response = loop {
        let mut request = hyper::Request::builder()
            .method(method.clone())
            .uri(&target)
            .header(header::HOST, "localhost:16992");
        for name in &PASSED_REQUEST_HEADERS {
            if let Some(value) = headers.get(name) {
                request = request.header(name, value);
            }
        }
        if let Some(challenge) = &challenge {
            let cnonce = hex::encode(rand::random::<[u8; 8]>());
            let authorization = challenge.authorization(
                &admin.user,
                &password,
                method.as_str(),
                &target,
                &cnonce,
                1,
            );
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let request = request
            .body(Full::new(body.clone()))
            .map_err(|e| Refused::Unreachable(format!("cannot pass the request on: {e}")))?;
        sender
            .ready()
            .await
            .map_err(|e| Refused::Unreachable(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Refused::Unreachable(e.to_string()))?;
        if response.status() == StatusCode::UNAUTHORIZED && challenge.is_none() {
            let offered = response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|value| value.to_str().ok())
                .and_then(Challenge::parse);
            if let Some(offered) = offered {
                // Read the refusal to its end so that the connection can carry the next request.
                let _ = Limited::new(response.into_body(), 64 * 1024)
                    .collect()
                    .await;
                challenge = Some(offered);
                continue;
            }
        }
        break response;
    };
    if response.status() == StatusCode::UNAUTHORIZED {
        tracing::warn!(device = %claims.device, "amt web: AMT refused the administrator's credentials");
    }

    let prefix = format!("{WEB_PATH}/{token}");
    let (parts, incoming) = response.into_parts();
    let is_html = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|kind| kind.trim_start().starts_with("text/html"));
    let mut out = Response::builder().status(parts.status);
    for name in &PASSED_RESPONSE_HEADERS {
        // A rewritten page has a length of its own.
        if is_html && name == header::CONTENT_LENGTH {
            continue;
        }
        if let Some(value) = parts.headers.get(name) {
            out = out.header(name, value);
        }
    }
    if let Some(location) = parts
        .headers
        .get(header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|location| rewrite_location(location, &prefix))
    {
        out = out.header(header::LOCATION, location);
    }
    out = out
        .header(header::CONTENT_SECURITY_POLICY, PROXIED_CSP)
        .header(header::CACHE_CONTROL, "no-store");
    let body = if is_html {
        // Bigger than AMT's own pages ever are: refused rather than passed on unrewritten.
        let page = Limited::new(incoming, MAX_REWRITTEN_HTML)
            .collect()
            .await
            .map_err(|e| Refused::Unreachable(format!("the page did not arrive whole: {e}")))?;
        Body::from(rewrite_html(&page.to_bytes(), &prefix))
    } else {
        Body::new(incoming)
    };
    // Headers came from AMT; one that is not valid HTTP makes the whole answer a gateway error.
    out.body(body)
        .map_err(|e| Refused::Unreachable(format!("AMT's answer is not valid HTTP: {e}")))
}

/// A redirect AMT sends, moved under the link: `/x` and `http://host:16992/x` become
/// `PREFIX/x`; one to anywhere else is dropped (AMT has no reason to send the browser away).
fn rewrite_location(location: &str, prefix: &str) -> Option<String> {
    let path = if location.starts_with('/') && !location.starts_with("//") {
        location
    } else {
        let rest = location
            .strip_prefix("http://")
            .or_else(|| location.strip_prefix("https://"))?;
        let (host, path) = rest.split_at(rest.find('/')?);
        let port = host.rsplit_once(':').map(|(_, port)| port);
        if !matches!(port, Some("16992" | "16993")) {
            return None;
        }
        path
    };
    Some(format!("{prefix}{path}"))
}

/// Moves the page's absolute-path links (`href="/…"`, `src='/…'`, `action="/…"`) under
/// `prefix`. Protocol-relative (`//host`) and full URLs are left alone.
pub(crate) fn rewrite_html(page: &[u8], prefix: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(page.len() + 256);
    let mut at = 0;
    while at < page.len() {
        let rewritten = ["href=", "src=", "action="].iter().find_map(|attribute| {
            let rest = &page[at..];
            if rest.len() < attribute.len() + 2
                || !rest[..attribute.len()].eq_ignore_ascii_case(attribute.as_bytes())
            {
                return None;
            }
            let quote = rest[attribute.len()];
            let first = rest[attribute.len() + 1];
            let second = rest.get(attribute.len() + 2).copied();
            let starts_path =
                (quote == b'"' || quote == b'\'') && first == b'/' && second != Some(b'/');
            starts_path.then_some(attribute.len() + 1)
        });
        match rewritten {
            Some(up_to_quote) => {
                out.extend_from_slice(&page[at..at + up_to_quote]);
                out.extend_from_slice(prefix.as_bytes());
                at += up_to_quote;
            }
            None => {
                out.push(page[at]);
                at += 1;
            }
        }
    }
    out
}

fn redirect(location: &str) -> Response {
    match HeaderValue::try_from(location) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_in_pages_move_under_the_link() {
        let page = br#"<a href="/hw-sys.htm">x</a><img SRC='/logo.gif'><form action="/index.htm"><a href="//elsewhere/x"><a href="remote.htm"><script src="https://cdn/x.js">"#;
        let out = rewrite_html(page, "/amt-web/T");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"<a href="/amt-web/T/hw-sys.htm">x</a><img SRC='/amt-web/T/logo.gif'><form action="/amt-web/T/index.htm"><a href="//elsewhere/x"><a href="remote.htm"><script src="https://cdn/x.js">"#
        );
        // Too short to hold an attribute: copied as it is.
        assert_eq!(rewrite_html(b"href=", "/p"), b"href=");
    }

    #[test]
    fn redirects_stay_under_the_link_or_are_dropped() {
        assert_eq!(
            rewrite_location("/logon.htm", "/p").as_deref(),
            Some("/p/logon.htm")
        );
        assert_eq!(
            rewrite_location("http://192.168.1.5:16992/index.htm", "/p").as_deref(),
            Some("/p/index.htm")
        );
        assert_eq!(rewrite_location("https://evil.example/x", "/p"), None);
        assert_eq!(rewrite_location("//evil.example/x", "/p"), None);
        assert_eq!(rewrite_location("index.htm", "/p"), None);
    }
}
