//! Start-up of the real binary: the data folder and its certificates, reuse on restart, the HTTPS
//! and redirect ports, clear errors for a busy port, and a clean stop on SIGTERM.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use common::{START_DEADLINE, TestServer, read_cert_der};
use sha2::{Digest, Sha384};
use tether_common::control::GetServerInfo;

const CERT_FILES: [&str; 4] = ["root", "webserver", "agentserver", "mpsserver"];

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn fingerprints(server: &TestServer) -> Vec<Vec<u8>> {
    CERT_FILES
        .iter()
        .map(|stem| {
            Sha384::digest(read_cert_der(
                &server.file(&format!("{stem}-cert-public.crt")),
            ))
            .to_vec()
        })
        .collect()
}

#[tokio::test]
async fn first_start_writes_eight_certificate_files_privately() {
    let server = TestServer::start().await;
    assert_eq!(mode(&server.datapath), 0o700, "data folder");
    for stem in CERT_FILES {
        let cert = server.file(&format!("{stem}-cert-public.crt"));
        let key = server.file(&format!("{stem}-cert-private.key"));
        assert!(cert.is_file(), "{} missing", cert.display());
        assert_eq!(mode(&key), 0o600, "{}", key.display());
    }
}

#[tokio::test]
async fn restart_keeps_the_certificates_and_serves_the_same_one() {
    let mut server = TestServer::start().await;
    let before = fingerprints(&server);
    let port = server.port;
    server.restart().await;
    assert_eq!(
        fingerprints(&server),
        before,
        "certificates were regenerated"
    );
    assert_eq!(server.port, port, "restart keeps the port");
    let body = server
        .http_client()
        .get(format!("{}/health", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok");
}

#[tokio::test]
async fn health_answers_over_https_with_security_headers() {
    let server = TestServer::start().await;
    let client = server.http_client();
    let response = client
        .get(format!("{}/health", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("style-src 'self' 'unsafe-inline';"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(
        headers["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
    assert_eq!(response.text().await.unwrap(), "ok");

    let page = client.get(format!("{}/", server.url)).send().await.unwrap();
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers()["cache-control"], "no-cache");
    // The console's script has a content hash in its name (console/web, built by Vite).
    let html = page.text().await.unwrap();
    let src = html
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("index.html loads a script");
    let script = client
        .get(format!("{}{src}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(
        script.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
}

#[tokio::test]
async fn the_redirect_port_sends_browsers_to_https() {
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = TestServer::start_with(&["--redirport", &free_port.to_string()]).await;
    assert_eq!(server.redirect_port, Some(free_port));
    let client = server.http_client();
    let response = client
        .get(format!("http://localhost:{free_port}/some/page?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 301);
    assert_eq!(
        response.headers()["location"],
        format!("https://localhost:{}/some/page?x=1", server.port).as_str()
    );
}

#[tokio::test]
async fn a_busy_port_is_reported_in_one_clear_line() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_tether-server"))
        .args([
            "--port",
            &port.to_string(),
            "--redirport",
            "0",
            "--bind",
            "127.0.0.1",
            "--fastcert",
            "--datapath",
        ])
        .arg(dir.path())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(START_DEADLINE, run)
        .await
        .expect("server exits")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!(
            "port {port} is already in use; choose another with --port"
        )),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing claims to listen");
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let mut server = TestServer::start().await;
    let status = server.stop().await;
    assert!(
        status.success(),
        "exit status {status}\n{}",
        server.stderr()
    );
    assert!(server.stderr().contains("shutting down"));
    // The port is free again at once (the listener is really closed).
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpListener::bind(("127.0.0.1", server.port)),
    )
    .await
    .unwrap()
    .expect("port released");
}

async fn run_once(server: &TestServer, args: &[&str]) -> std::process::Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_tether-server"))
        .args(args)
        .arg("--datapath")
        .arg(&server.datapath)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(START_DEADLINE, run)
        .await
        .expect("command finishes")
        .unwrap()
}

#[tokio::test]
async fn createaccount_refuses_while_the_server_runs_and_works_when_stopped() {
    let mut server = TestServer::start().await;
    let create = [
        "--createaccount",
        "alice",
        "--pass",
        "correct horse battery",
    ];
    let refused = run_once(&server, &create).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("the database is in use by a running tether-server; stop it first"),
        "{stderr}"
    );

    server.stop().await;
    let created = run_once(&server, &create).await;
    let stdout = String::from_utf8_lossy(&created.stdout);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(
        stdout.contains("created account alice (site administrator)"),
        "{stdout}"
    );

    server.restart().await;
    let cookie = server.login("alice", "correct horse battery").await;
    assert!(!cookie.is_empty());
}

#[tokio::test]
async fn tlsoffload_serves_plain_http_without_hsts() {
    let server = TestServer::start_with(&["--tlsoffload"]).await;
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    let response = server
        .http_client()
        .get(format!("{}/health", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
    assert_eq!(response.headers()["x-frame-options"], "DENY");
}

/// The WebSocket upgrade works through the listener, and the console is told the hashes agents pin.
#[tokio::test]
async fn control_websocket_reports_the_certificate_hashes() {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let server = TestServer::start().await;
    server.create_admin("admin", "correct horse battery").await;
    let cookie = server.login("admin", "correct horse battery").await;
    let mut control = server.control(&cookie).await;
    let info = control.ok(GetServerInfo {}).await;

    let agent_der = read_cert_der(&server.file("agentserver-cert-public.crt"));
    let (_, agent) = X509Certificate::from_der(&agent_der).unwrap();
    let server_id = hex::encode(Sha384::digest(&agent.public_key().subject_public_key.data));
    assert_eq!(info.agent_cert_hash, server_id);
    let web_der = read_cert_der(&server.file("webserver-cert-public.crt"));
    assert_eq!(info.web_cert_hash, hex::encode(Sha384::digest(&web_der)));
    control.close().await;
}
