//! A server under test, whichever it is: how to start it, when it counts as ready, and how its
//! login works. `tether.rs` and `meshcentral.rs` prepare one each; `measure.rs` only uses this.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, SET_COOKIE};
use tokio::process::Command;

use crate::procs::Guard;

/// A cold start generates RSA-3072 keys (and MeshCentral signs its agent binaries): minutes on a
/// busy two-core machine are possible, hence the generous limit.
const START_TIMEOUT: Duration = Duration::from_secs(600);
const POLL_EVERY: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Tether,
    MeshCentral,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Tether => "Tether",
            Kind::MeshCentral => "MeshCentral",
        }
    }
}

/// Everything needed to start one prepared server (data folder, account and device group exist).
pub(crate) struct ServerSpec {
    pub kind: Kind,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub cwd: PathBuf,
    /// `https://127.0.0.1:PORT`, no trailing slash.
    pub base_url: String,
    pub user: String,
    pub password: String,
    /// The device group's install policy, for the load tool.
    pub msh: PathBuf,
    pub log: PathBuf,
    /// The administration tool and the real agent, for the relay measurements.
    pub tools: Tools,
}

pub(crate) enum Tools {
    Tether {
        ctl: PathBuf,
        agent: PathBuf,
        /// The server's root certificate, which `tetherctl` is told to trust.
        root_cert: PathBuf,
    },
    MeshCentral {
        /// `node_modules/meshcentral`: `meshctrl.js` and `agents/meshagent_*`.
        install: PathBuf,
    },
}

/// A started server and how long it took to answer HTTPS.
pub(crate) struct Running {
    pub guard: Guard,
    pub ready_after: Duration,
}

impl ServerSpec {
    /// Starts the server and waits until `GET /` gets any HTTP answer over TLS: "serving", which
    /// is what a user or agent waits for (a bound port alone may not yet serve).
    pub(crate) async fn start(&self, web: &Web) -> anyhow::Result<Running> {
        let mut command = Command::new(&self.program);
        command.args(&self.args).current_dir(&self.cwd);
        let started = Instant::now();
        let mut guard = Guard::spawn(self.kind.name(), command, &self.log)?;
        let url = format!("{}/", self.base_url);
        loop {
            if web.status(&url).await.is_ok() {
                return Ok(Running {
                    guard,
                    ready_after: started.elapsed(),
                });
            }
            if let Some(status) = guard.try_exited() {
                bail!(
                    "{} exited ({status}) before serving; see {}",
                    self.kind.name(),
                    self.log.display()
                );
            }
            if started.elapsed() > START_TIMEOUT {
                guard.stop().await;
                bail!(
                    "{} did not serve within {START_TIMEOUT:?}; see {}",
                    self.kind.name(),
                    self.log.display()
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// One login as a browser does it; `Ok(true)` if the server accepted the password.
    /// Tether: `POST /api/login` (JSON) → 200 + session cookie. MeshCentral: `POST /` with its
    /// login form → the app page plus an `xid` session cookie naming the user.
    pub(crate) async fn login(&self, web: &Web) -> anyhow::Result<bool> {
        match self.kind {
            Kind::Tether => {
                let body = serde_json::json!({ "user": self.user, "password": self.password });
                let response = web
                    .client
                    .post(format!("{}/api/login", self.base_url))
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.to_string())
                    .send()
                    .await?;
                let ok = response.status() == StatusCode::OK
                    && session_cookie(&response, "__Host-tether_session").is_some();
                response.bytes().await?;
                Ok(ok)
            }
            Kind::MeshCentral => {
                let body = format!(
                    "action=login&username={}&password={}",
                    form_encode(&self.user),
                    form_encode(&self.password)
                );
                let response = web
                    .client
                    .post(format!("{}/", self.base_url))
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await?;
                let ok = session_cookie(&response, "xid")
                    .is_some_and(|xid| meshcentral_session_has_user(&xid));
                response.bytes().await?;
                Ok(ok)
            }
        }
    }

    /// A logged-in session cookie (`name=value`), for requests that need one.
    pub(crate) async fn session(&self, web: &Web) -> anyhow::Result<String> {
        let body = serde_json::json!({ "user": self.user, "password": self.password });
        let response = web
            .client
            .post(format!("{}/api/login", self.base_url))
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await?;
        let cookie = session_cookie(&response, "__Host-tether_session")
            .with_context(|| format!("login refused ({})", response.status()))?;
        Ok(format!("__Host-tether_session={cookie}"))
    }
}

/// An HTTPS client for the servers' self-signed certificates. The servers are ours, on loopback
/// in a private namespace: there is nothing to verify against.
pub(crate) struct Web {
    pub client: reqwest::Client,
}

impl Web {
    pub(crate) fn new() -> anyhow::Result<Web> {
        let client = reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .no_proxy()
            .build()
            .context("building the HTTPS client")?;
        Ok(Web { client })
    }

    /// GET and read the whole body; the status.
    pub(crate) async fn status(&self, url: &str) -> anyhow::Result<StatusCode> {
        let response = self.client.get(url).send().await?;
        let status = response.status();
        response.bytes().await?;
        Ok(status)
    }

    /// GET with a cookie; the body if the answer was 200.
    pub(crate) async fn get_text(&self, url: &str, cookie: Option<&str>) -> anyhow::Result<String> {
        let mut request = self.client.get(url);
        if let Some(cookie) = cookie {
            request = request.header(reqwest::header::COOKIE, cookie);
        }
        let response = request.send().await?;
        let status = response.status();
        let body = response.text().await?;
        if status != StatusCode::OK {
            bail!(
                "GET {url}: {status}: {}",
                body.chars().take(200).collect::<String>()
            );
        }
        Ok(body)
    }
}

/// The value of the `Set-Cookie` named `name`, if the response sets one.
fn session_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| cookie_value(v, name))
}

/// `name=value; Path=/; …` → `value` (empty values count as absent: a cleared cookie).
pub(crate) fn cookie_value(set_cookie: &str, name: &str) -> Option<String> {
    let pair = set_cookie.split(';').next()?.trim();
    let (key, value) = pair.split_once('=')?;
    (key == name && !value.is_empty()).then(|| value.to_owned())
}

/// MeshCentral's `xid` cookie is base64 JSON of the session; a logged-in one holds `userid`.
pub(crate) fn meshcentral_session_has_user(xid: &str) -> bool {
    base64_decode(xid).is_some_and(|json| json.contains("\"userid\""))
}

/// Standard base64 (as cookie-session writes it) → text; `None` if it is not.
fn base64_decode(text: &str) -> Option<String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.trim_end_matches('=').bytes() {
        let value = ALPHABET.iter().position(|&c| c == byte)? as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `application/x-www-form-urlencoded` for one value.
pub(crate) fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cookie_values() {
        assert_eq!(
            cookie_value(
                "__Host-tether_session=abc; HttpOnly; Path=/",
                "__Host-tether_session"
            )
            .as_deref(),
            Some("abc")
        );
        assert_eq!(cookie_value("xid.sig=zz; path=/", "xid"), None);
        assert_eq!(cookie_value("xid=; path=/", "xid"), None);
    }

    #[test]
    fn tells_a_logged_in_meshcentral_session_from_an_empty_one() {
        // Both captured from MeshCentral 1.1.55: before and after a successful login.
        assert!(!meshcentral_session_has_user("e30="));
        assert!(meshcentral_session_has_user(
            "eyJ1c2VyaWQiOiJ1c2VyLy9hZG1pbiIsImlwIjoiMTI3LjAuMC4xIiwieCI6IlZlbEZQN1FsIn0="
        ));
        assert!(!meshcentral_session_has_user("not base64!"));
    }

    #[test]
    fn form_encoding_escapes_what_it_must() {
        assert_eq!(form_encode("Bench-pass 1!&="), "Bench-pass+1%21%26%3D");
    }
}
