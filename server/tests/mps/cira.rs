//! A simulated Intel AMT CIRA client: TLS to the MPS port (trusting the server's root, as a
//! provisioned AMT does), then APF through the same codec the server uses. Real AMT hardware
//! cannot exist here; this speaks the protocol as the design notes (§5.2) lay it out.

use std::sync::Arc;
use std::time::Duration;

use tether_common::apf::{
    AUTH_SERVICE, AmtUuid, ApfMessage, Decoder, PASSWORD_METHOD, PFWD_SERVICE, Password, Side,
    TCPIP_FORWARD,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const WAIT: Duration = Duration::from_secs(10);

pub struct CiraClient {
    stream: TlsStream<TcpStream>,
    decoder: Decoder,
}

impl CiraClient {
    pub async fn connect(port: u16, tls: Arc<rustls::ClientConfig>) -> CiraClient {
        CiraClient::connect_to(port, "localhost", tls).await
    }

    /// As [`CiraClient::connect`], checking the server's certificate for `name`.
    pub async fn connect_to(port: u16, name: &str, tls: Arc<rustls::ClientConfig>) -> CiraClient {
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to the MPS port");
        // As an embedded TCP stack does: no Nagle delay on small APF messages.
        tcp.set_nodelay(true).expect("TCP_NODELAY");
        let name = rustls_pki_types::ServerName::try_from(name.to_owned()).expect("a server name");
        let stream = tokio::time::timeout(WAIT, TlsConnector::from(tls).connect(name, tcp))
            .await
            .expect("TLS in time")
            .expect("TLS with the MPS certificate");
        CiraClient {
            stream,
            decoder: Decoder::new(Side::Amt),
        }
    }

    pub async fn send(&mut self, message: ApfMessage) {
        self.send_raw(&message.to_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        // The server may have closed already; the next read says so.
        let _ = self.stream.write_all(bytes).await;
        let _ = self.stream.flush().await;
    }

    /// The next message, or `None` once the server has closed the connection.
    pub async fn recv(&mut self) -> Option<ApfMessage> {
        let mut buffer = vec![0; 16 * 1024];
        loop {
            if let Some(message) = self.decoder.next_message().expect("the server's APF reads") {
                return Some(message);
            }
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut buffer))
                .await
                .expect("the server answers or closes in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.decoder.push(&buffer[..n]);
        }
    }

    /// The next message however long it takes (a machine waiting for the server's channels);
    /// `None` once the connection is closed. Cancel-safe: nothing read is lost.
    pub async fn recv_any(&mut self) -> Option<ApfMessage> {
        let mut buffer = vec![0; 16 * 1024];
        loop {
            if let Some(message) = self.decoder.next_message().expect("the server's APF reads") {
                return Some(message);
            }
            let n = self.stream.read(&mut buffer).await.unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.decoder.push(&buffer[..n]);
        }
    }

    pub async fn expect(&mut self, wanted: ApfMessage) {
        assert_eq!(self.recv().await, Some(wanted));
    }

    /// Everything up to the login's answer, which is returned.
    pub async fn log_in(
        &mut self,
        uuid: AmtUuid,
        user: &str,
        password: &str,
    ) -> Option<ApfMessage> {
        self.send(ApfMessage::ProtocolVersion {
            major: 1,
            minor: 0,
            trigger: 0,
            uuid,
        })
        .await;
        self.send(ApfMessage::ServiceRequest {
            service: AUTH_SERVICE.into(),
        })
        .await;
        self.expect(ApfMessage::ServiceAccept {
            service: AUTH_SERVICE.into(),
        })
        .await;
        self.send(ApfMessage::UserauthRequest {
            user: user.into(),
            service: PFWD_SERVICE.into(),
            method: PASSWORD_METHOD.into(),
            password: Password(password.into()),
        })
        .await;
        self.recv().await
    }

    /// The port-forwarding service, then one `tcpip-forward` per port, as AMT does after login.
    pub async fn forward(&mut self, ports: &[u32]) {
        self.send(ApfMessage::ServiceRequest {
            service: PFWD_SERVICE.into(),
        })
        .await;
        self.expect(ApfMessage::ServiceAccept {
            service: PFWD_SERVICE.into(),
        })
        .await;
        for port in ports {
            self.send(ApfMessage::GlobalRequest {
                request: TCPIP_FORWARD.into(),
                want_reply: true,
                address: String::new(),
                port: *port,
            })
            .await;
        }
    }
}
