//! Middle boxes for the agent tests: a TCP relay that can go silent (a dead NAT mapping: no FIN,
//! no RST, nothing), and a TLS man in the middle presenting its own certificate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Relays TCP to `target` until told to black-hole, then swallows everything in both directions.
pub struct SilentableRelay {
    pub port: u16,
    silent: Arc<AtomicBool>,
}

impl SilentableRelay {
    pub async fn start(target: SocketAddr) -> SilentableRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent = Arc::new(AtomicBool::new(false));
        let flag = silent.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(target).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (upstream_read, upstream_write) = upstream.into_split();
                tokio::spawn(pump(client_read, upstream_write, flag.clone()));
                tokio::spawn(pump(upstream_read, client_write, flag.clone()));
            }
        });
        SilentableRelay { port, silent }
    }

    /// From now on nothing passes, and no connection is closed.
    pub fn go_silent(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }
}

/// Copies until EOF; once `silent`, reads and drops (keeping the socket open, like a dead path).
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    silent: Arc<AtomicBool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if silent.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    if !silent.load(Ordering::SeqCst) {
        let _ = to.shutdown().await;
    } else {
        // Hold the write half open forever: a silent path never says goodbye.
        std::future::pending::<()>().await;
    }
}

/// Terminates TLS with its own self-signed certificate and relays the plaintext to the real server
/// over a second TLS connection: what an attacker (or an unknown TLS proxy) in the path does.
pub struct ManInTheMiddle {
    pub port: u16,
}

impl ManInTheMiddle {
    pub async fn start(
        target: SocketAddr,
        upstream_tls: Arc<rustls::ClientConfig>,
    ) -> ManInTheMiddle {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let server_config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(server_config));
        let connector = TlsConnector::from(upstream_tls);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, connector) = (acceptor.clone(), connector.clone());
                tokio::spawn(async move {
                    let Ok(mut client) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(upstream) = TcpStream::connect(target).await else {
                        return;
                    };
                    let name = ServerName::try_from("localhost").unwrap();
                    let Ok(mut upstream) = connector.connect(name, upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        ManInTheMiddle { port }
    }
}
