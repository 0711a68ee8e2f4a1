//! Just enough WS-Management to read and change an Intel AMT machine's power state, over a byte
//! stream to its port 16992 (a channel through its CIRA tunnel): HTTP/1.1 with Digest
//! authentication, SOAP 1.2 envelopes, and the two CIM classes power needs.
//!
//! The answers are read by element name alone (`PowerState`, `ReturnValue`,
//! `EnumerationContext`), whatever their namespace prefix: AMT's replies are small and regular,
//! and nothing else in them is used.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, WWW_AUTHENTICATE};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::digest::Challenge;

/// A reply bigger than this is not a power answer.
const MAX_REPLY: usize = 256 * 1024;
const URI: &str = "/wsman";
const ENUMERATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate";
const PULL: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull";
const SERVICE_AVAILABLE: &str =
    "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_AssociatedPowerManagementService";
const POWER_SERVICE: &str =
    "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_PowerManagementService";
const COMPUTER_SYSTEM: &str =
    "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ComputerSystem";

/// A power change AMT can make (CIM `PowerState` values, as MeshCentral sends them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PowerChange {
    On = 2,
    /// Off, hard (AMT's "Off-Soft" S5 is what it reports afterwards).
    Off = 8,
    /// Power cycle: off, then on.
    Cycle = 5,
    /// Master bus reset.
    Reset = 10,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum WsmanError {
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("the reply was larger than {MAX_REPLY} bytes or broken")]
    Body,
    #[error("AMT refused the administrator's credentials")]
    Unauthorized,
    #[error("AMT answered HTTP {0}")]
    Status(StatusCode),
    #[error("AMT's answer has no {0}")]
    Missing(&'static str),
    #[error("AMT refused the power change (ReturnValue {0})")]
    Refused(u32),
}

/// A WS-Management client on one HTTP connection.
pub(crate) struct Wsman {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    user: String,
    password: String,
    challenge: Option<Challenge>,
    count: u32,
    messages: u32,
}

impl Wsman {
    /// HTTP/1.1 over `stream` (the connection runs on a task of its own until it closes).
    pub(crate) async fn connect<S>(
        stream: S,
        user: &str,
        password: &str,
    ) -> Result<Wsman, WsmanError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("amt: WS-Management connection ended: {e}");
            }
        });
        Ok(Wsman {
            sender,
            user: user.to_owned(),
            password: password.to_owned(),
            challenge: None,
            count: 0,
            messages: 0,
        })
    }

    /// The machine's power state (CIM `PowerState`: 2 on, 3/4 sleeping, 7 hibernating, 8 off).
    pub(crate) async fn power_state(&mut self) -> Result<u32, WsmanError> {
        let enumerate = self.envelope(
            ENUMERATE,
            SERVICE_AVAILABLE,
            "",
            r#"<Enumerate xmlns="http://schemas.xmlsoap.org/ws/2004/09/enumeration" />"#,
        );
        let reply = self.call(enumerate).await?;
        let context = element(&reply, "EnumerationContext")
            .ok_or(WsmanError::Missing("EnumerationContext"))?;
        let pull = self.envelope(
            PULL,
            SERVICE_AVAILABLE,
            "",
            &format!(
                r#"<Pull xmlns="http://schemas.xmlsoap.org/ws/2004/09/enumeration"><EnumerationContext>{}</EnumerationContext><MaxElements>999</MaxElements><MaxCharacters>99999</MaxCharacters></Pull>"#,
                xml_text(&context)
            ),
        );
        let reply = self.call(pull).await?;
        element(&reply, "PowerState")
            .and_then(|state| state.trim().parse().ok())
            .ok_or(WsmanError::Missing("PowerState"))
    }

    /// Asks AMT for a power change; `Ok` once it accepted it.
    pub(crate) async fn change_power(&mut self, change: PowerChange) -> Result<(), WsmanError> {
        let body = format!(
            r#"<h:RequestPowerStateChange_INPUT xmlns:h="{POWER_SERVICE}"><h:PowerState>{}</h:PowerState><h:ManagedElement><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address><a:ReferenceParameters><w:ResourceURI>{COMPUTER_SYSTEM}</w:ResourceURI><w:SelectorSet><w:Selector Name="CreationClassName">CIM_ComputerSystem</w:Selector><w:Selector Name="Name">ManagedSystem</w:Selector></w:SelectorSet></a:ReferenceParameters></h:ManagedElement></h:RequestPowerStateChange_INPUT>"#,
            change as u32
        );
        let envelope = self.envelope(
            &format!("{POWER_SERVICE}/RequestPowerStateChange"),
            POWER_SERVICE,
            r#"<w:SelectorSet><w:Selector Name="Name">Intel(r) AMT Power Management Service</w:Selector></w:SelectorSet>"#,
            &body,
        );
        let reply = self.call(envelope).await?;
        match element(&reply, "ReturnValue").and_then(|v| v.trim().parse::<u32>().ok()) {
            Some(0) => Ok(()),
            Some(code) => Err(WsmanError::Refused(code)),
            None => Err(WsmanError::Missing("ReturnValue")),
        }
    }

    fn envelope(&mut self, action: &str, resource: &str, selectors: &str, body: &str) -> String {
        self.messages += 1;
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><Envelope xmlns="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><Header><a:Action>{action}</a:Action><a:To>{URI}</a:To><w:ResourceURI>{resource}</w:ResourceURI><a:MessageID>{}</a:MessageID><a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><w:OperationTimeout>PT60S</w:OperationTimeout>{selectors}</Header><Body>{body}</Body></Envelope>"#,
            self.messages
        )
    }

    /// POSTs `envelope`, answering a Digest challenge once; the reply's body.
    async fn call(&mut self, envelope: String) -> Result<String, WsmanError> {
        for _ in 0..2 {
            let mut request = Request::post(URI)
                .header(HOST, "localhost:16992")
                .header(CONTENT_TYPE, "application/soap+xml; charset=utf-8");
            if let Some(challenge) = &self.challenge {
                self.count += 1;
                let cnonce = hex::encode(rand::random::<[u8; 8]>());
                request = request.header(
                    AUTHORIZATION,
                    challenge.authorization(
                        &self.user,
                        &self.password,
                        "POST",
                        URI,
                        &cnonce,
                        self.count,
                    ),
                );
            }
            let request = request
                .body(Full::new(Bytes::from(envelope.clone())))
                .expect("a well-formed request");
            self.sender.ready().await?;
            let response = self.sender.send_request(request).await?;
            let status = response.status();
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|value| value.to_str().ok())
                .and_then(Challenge::parse);
            let body = Limited::new(response.into_body(), MAX_REPLY)
                .collect()
                .await
                .map_err(|_| WsmanError::Body)?
                .to_bytes();
            match status {
                StatusCode::OK => {
                    return String::from_utf8(body.to_vec()).map_err(|_| WsmanError::Body);
                }
                StatusCode::UNAUTHORIZED if challenge.is_some() && self.count == 0 => {
                    self.challenge = challenge;
                }
                StatusCode::UNAUTHORIZED => return Err(WsmanError::Unauthorized),
                other => return Err(WsmanError::Status(other)),
            }
        }
        Err(WsmanError::Unauthorized)
    }
}

/// The text of the first element named `name` (any namespace prefix).
fn element(xml: &str, name: &str) -> Option<String> {
    let mut rest = xml;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        let end = rest.find('>')?;
        let tag = &rest[..end];
        let local = tag.split_whitespace().next()?.rsplit(':').next()?;
        if local == name && !tag.starts_with('/') && !tag.ends_with('/') {
            let content = &rest[end + 1..];
            let close = content.find('<')?;
            return Some(unescape(&content[..close]));
        }
        rest = &rest[end..];
    }
    None
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn xml_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_found_by_local_name_whatever_their_prefix() {
        let reply = r#"<a:Envelope><a:Body><g:PullResponse><g:Items><h:CIM_AssociatedPowerManagementService><h:PowerState>8</h:PowerState></h:CIM_AssociatedPowerManagementService></g:Items></g:PullResponse><g:EnumerationContext>ab&amp;c</g:EnumerationContext></a:Body></a:Envelope>"#;
        assert_eq!(element(reply, "PowerState").as_deref(), Some("8"));
        assert_eq!(
            element(reply, "EnumerationContext").as_deref(),
            Some("ab&c")
        );
        assert_eq!(element(reply, "ReturnValue"), None);
        assert_eq!(element("<x:ReturnValue/>", "ReturnValue"), None);
    }
}
