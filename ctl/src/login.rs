//! `POST /api/login` over one HTTP/1.1 request on a TLS connection made with the same trust as the
//! WebSocket, returning the session cookie's value. One request does not justify an HTTP client.

use anyhow::{Context, bail};
use serde_json::json;
use tether_common::http_error::HttpErrorBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::target::Target;
use crate::trust::Trust;

/// The session cookie's names: `__Host-`-prefixed on every real server, plain on one run with
/// `insecure_cookies` (development over plain HTTP).
const COOKIE_NAMES: [&str; 2] = ["__Host-tether_session", "tether_session"];
/// A login answer is a few hundred bytes; anything far bigger is not our server.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

pub(crate) async fn login(
    target: &Target,
    trust: &mut Trust,
    user: &str,
    password: &str,
    otp: Option<&str>,
) -> anyhow::Result<String> {
    let tcp = connect_tcp(target).await?;
    let connector = TlsConnector::from(trust.config.clone());
    let mut tls = connector
        .connect(target.server_name()?, tcp)
        .await
        .map_err(|e| trust.explain(&format!("TLS with {}", target.authority()), e))?;
    trust.handshake_done()?;

    let body = match otp {
        Some(otp) => json!({ "user": user, "password": password, "otp": otp }),
        None => json!({ "user": user, "password": password }),
    }
    .to_string();
    let request = format!(
        "POST /api/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        target.authority(),
        body.len()
    );
    tls.write_all(request.as_bytes())
        .await
        .context("sending the login request")?;
    let mut raw = Vec::new();
    // The server closes after answering; a missing TLS close_notify is harmless here because the
    // body length is checked below.
    if let Err(e) = (&mut tls)
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut raw)
        .await
        && (e.kind() != std::io::ErrorKind::UnexpectedEof || raw.is_empty())
    {
        return Err(e).context("reading the login answer");
    }
    let response = Response::parse(&raw)?;
    match response.status {
        200 | 201 => response
            .session_cookie()
            .context("the server accepted the login but set no session cookie"),
        401 => match response.error_code().as_deref() {
            Some("second_factor_required") => {
                bail!(
                    "login failed: this account signs in with a second factor: give --otp CODE (or TETHER_OTP)"
                )
            }
            Some("bad_second_factor") => {
                bail!("login failed: the --otp code is wrong or was used already")
            }
            _ => bail!("login failed: wrong user name or password"),
        },
        status => {
            let message = response
                .json_message()
                .unwrap_or_else(|| format!("HTTP status {status}"));
            bail!("login failed: {message}")
        }
    }
}

/// `GET path` with the session cookie: the status and the body (at most `limit` bytes).
pub(crate) async fn get(
    target: &Target,
    tls: std::sync::Arc<rustls::ClientConfig>,
    cookie: &str,
    path: &str,
    limit: u64,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let tcp = connect_tcp(target).await?;
    let mut stream = TlsConnector::from(tls)
        .connect(target.server_name()?, tcp)
        .await
        .with_context(|| format!("TLS with {}", target.authority()))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n",
        target.authority()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    if let Err(e) = (&mut stream).take(limit).read_to_end(&mut raw).await
        && (e.kind() != std::io::ErrorKind::UnexpectedEof || raw.is_empty())
    {
        return Err(e).context("reading the answer");
    }
    let response = Response::parse(&raw)?;
    if !(200..300).contains(&response.status) {
        let message = response
            .json_message()
            .unwrap_or_else(|| format!("HTTP status {}", response.status));
        bail!("{message}");
    }
    Ok((response.status, response.body))
}

pub(crate) async fn connect_tcp(target: &Target) -> anyhow::Result<TcpStream> {
    TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                " (is tether-server running there?)"
            } else {
                ""
            };
            anyhow::anyhow!("cannot connect to {}: {e}{hint}", target.authority())
        })
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn parse(raw: &[u8]) -> anyhow::Result<Response> {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .context("the server's answer is not HTTP")?;
        let head = std::str::from_utf8(&raw[..split]).context("the server's answer is not HTTP")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("the server's answer is not HTTP: {status_line:?}"))?;
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let mut response = Response {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        };
        if response
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            response.body =
                dechunk(&response.body).context("the server's answer has a broken chunked body")?;
        } else if let Some(length) = response
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            if response.body.len() < length {
                bail!("the server's answer was cut short");
            }
            response.body.truncate(length);
        }
        Ok(response)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The session cookie as a `Cookie` header sends it back: `name=value`.
    fn session_cookie(&self) -> Option<String> {
        self.headers
            .iter()
            .filter(|(name, _)| name == "set-cookie")
            .filter_map(|(_, value)| {
                let pair = value.split(';').next()?.trim();
                let (name, token) = pair.split_once('=')?;
                (COOKIE_NAMES.contains(&name) && !token.is_empty()).then(|| pair.to_owned())
            })
            .next()
    }

    /// The `message` of a JSON error body, e.g. the rate limiter's "try again in N minutes".
    fn error_code(&self) -> Option<String> {
        Some(HttpErrorBody::parse(&self.body)?.error)
    }

    fn json_message(&self) -> Option<String> {
        let body = HttpErrorBody::parse(&self.body)?;
        Some(body.message.trim_end_matches('.').to_owned())
    }
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_cookie() {
        let raw = b"HTTP/1.1 200 OK\r\nset-cookie: other=1\r\nSet-Cookie: tether_session=abc; Path=/; HttpOnly\r\n\
                    content-length: 2\r\n\r\n{}";
        let response = Response::parse(raw).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(
            response.session_cookie().as_deref(),
            Some("tether_session=abc")
        );
    }

    #[test]
    fn reads_chunked_error_messages() {
        let raw = b"HTTP/1.1 429 Too Many Requests\r\ntransfer-encoding: chunked\r\n\r\n\
                    16\r\n{\"error\":\"x\",\"message\"\r\n10\r\n:\"try later.\"}  \r\n0\r\n\r\n";
        let response = Response::parse(raw).unwrap();
        assert_eq!(response.status, 429);
        assert_eq!(response.json_message().as_deref(), Some("try later"));
    }
}
