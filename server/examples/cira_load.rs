//! Figures, not a test: N simulated Intel AMT machines log in to a running server's MPS port and
//! hold their CIRA tunnels open, and the server's memory is read before and after (its VmRSS,
//! from /proc). Each machine does what AMT does: TLS, PROTOCOLVERSION with its own UUID, the
//! group's CIRA login, the port-forwarding service and two `tcpip-forward`s.
//!
//! `cargo run --release -p tether-server --example cira_load -- PORT ROOT_PEM USER PASSWORD N SERVER_PID`
//! (the login from `tetherctl amtlogin GROUP`; the root from the data folder's
//! `root-cert-public.crt`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_common::apf::{
    AUTH_SERVICE, AmtUuid, ApfMessage, Decoder, PASSWORD_METHOD, PFWD_SERVICE, Password, Side,
    TCPIP_FORWARD,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Logins in flight at once (each costs the server an argon2id check).
const AT_ONCE: usize = 8;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [port, root, user, password, count, pid] = &args[..] else {
        eprintln!("usage: cira_load PORT ROOT_PEM USER PASSWORD N SERVER_PID");
        std::process::exit(2);
    };
    let port: u16 = port.parse().expect("a port");
    let count: usize = count.parse().expect("a count");
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let pem = std::fs::read(root).expect("the root certificate");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.expect("a PEM certificate")).expect("a root");
    }
    let tls = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let before = rss_kib(pid);
    let started = Instant::now();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
    let mut tasks = Vec::new();
    for n in 0..count {
        let (tls, user, password, semaphore) = (
            tls.clone(),
            user.clone(),
            password.clone(),
            semaphore.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let permit = semaphore.acquire_owned().await.expect("open");
            let stream = log_in(port, tls, n as u32, &user, &password).await;
            drop(permit);
            stream
        }));
    }
    let mut held = Vec::new();
    for task in tasks {
        held.push(task.await.expect("a machine"));
    }
    let took = started.elapsed();
    // Let the server settle (allocations freed, lazy work done).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid);
    println!(
        "{count} CIRA tunnels up in {:.1} s; server RSS {} KiB -> {} KiB: {:.1} KiB per tunnel",
        took.as_secs_f64(),
        before,
        after,
        (after as f64 - before as f64) / count as f64
    );
    drop(held);
}

async fn log_in(
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    n: u32,
    user: &str,
    password: &str,
) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let _ = tcp.set_nodelay(true);
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("a name");
    let mut stream = TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .expect("TLS");
    let mut uuid = [0x5a; 16];
    uuid[..4].copy_from_slice(&n.to_be_bytes());
    let mut out = Vec::new();
    for message in [
        ApfMessage::ProtocolVersion {
            major: 1,
            minor: 0,
            trigger: 0,
            uuid: AmtUuid(uuid),
        },
        ApfMessage::ServiceRequest {
            service: AUTH_SERVICE.into(),
        },
        ApfMessage::UserauthRequest {
            user: user.into(),
            service: PFWD_SERVICE.into(),
            method: PASSWORD_METHOD.into(),
            password: Password(password.into()),
        },
        ApfMessage::ServiceRequest {
            service: PFWD_SERVICE.into(),
        },
        forward(16992),
        forward(16993),
    ] {
        message.encode(&mut out);
    }
    stream.write_all(&out).await.expect("send");
    // Read until both forwards are answered.
    let mut decoder = Decoder::new(Side::Amt);
    let mut buffer = vec![0; 4096];
    let mut answered = 0;
    while answered < 2 {
        let n = stream.read(&mut buffer).await.expect("read");
        assert!(n > 0, "the server closed a tunnel (wrong login?)");
        decoder.push(&buffer[..n]);
        while let Some(message) = decoder.next_message().expect("APF") {
            match message {
                ApfMessage::RequestSuccess { .. } => answered += 1,
                ApfMessage::UserauthFailure => panic!("the login was refused"),
                _ => {}
            }
        }
    }
    stream
}

fn forward(port: u32) -> ApfMessage {
    ApfMessage::GlobalRequest {
        request: TCPIP_FORWARD.into(),
        want_reply: true,
        address: String::new(),
        port,
    }
}

fn rss_kib(pid: &str) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server's status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}
