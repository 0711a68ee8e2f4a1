//! For the install tests: running `tetherctl`, downloading without a login, and cleaning up an
//! agent that `install.sh` started in the background.

use std::path::{Path, PathBuf};
use std::process::Output;

use tether_common::control::{CreateInvite, ReplyError};
use tether_common::install::Invite;

use crate::common::{REPLY_DEADLINE, TestServer};
use crate::support::{ADMIN, Fixture};

/// A binary built next to `tether-server` (`cargo build --workspace --bins` first).
pub fn sibling_binary(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_tether-server")).with_file_name(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` before these tests",
        path.display()
    );
    path
}

/// `tetherctl ARGS` as the admin, trusting the server's root; known servers go to `known_dir`.
pub async fn tetherctl(server: &TestServer, known_dir: &Path, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(sibling_binary("tetherctl"));
    command
        .env("TETHER_URL", format!("wss://127.0.0.1:{}", server.port))
        .env("TETHER_USER", ADMIN.0)
        .env("TETHER_PASS", ADMIN.1)
        .env("TETHER_KNOWN_SERVERS", known_dir.join("known_servers"))
        .arg("--trust-root")
        .arg(server.file("root-cert-public.crt"))
        .args(args)
        .kill_on_drop(true);
    tokio::time::timeout(REPLY_DEADLINE, command.output())
        .await
        .expect("tetherctl timed out")
        .expect("run tetherctl")
}

/// Stdout of a `tetherctl` run that must succeed.
pub async fn tetherctl_ok(server: &TestServer, known_dir: &Path, args: &[&str]) -> String {
    let output = tetherctl(server, known_dir, args).await;
    assert!(
        output.status.success(),
        "tetherctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `GET url` with no cookie (only the server's root trusted): (status, body bytes).
pub async fn fetch(server: &TestServer, url: &str) -> (u16, Vec<u8>) {
    fetch_with_cookie(server, url, None).await
}

pub async fn fetch_with_cookie(
    server: &TestServer,
    url: &str,
    cookie: Option<&str>,
) -> (u16, Vec<u8>) {
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(server.root_cert_pem.as_bytes()).unwrap()])
        .timeout(REPLY_DEADLINE)
        .build()
        .unwrap();
    let mut request = client.get(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", format!("__Host-tether_session={cookie}"));
    }
    let response = request.send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap_or_default().to_vec())
}

/// `createInvite` on the fixture's console connection: the invite, or the server's refusal.
pub async fn create_invite(fx: &mut Fixture, minutes: Option<u32>) -> Result<Invite, ReplyError> {
    let request = CreateInvite {
        group: fx.group.clone(),
        expires_minutes: minutes,
        max_devices: None,
    };
    fx.control.call(request).await
}

/// The agent `install.sh` started in the background (its pid is in `<dir>/agent.pid`); killed when
/// dropped, so a failing test leaves nothing running.
pub struct InstalledAgent {
    pub dir: PathBuf,
}

impl InstalledAgent {
    pub fn pid(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("agent.pid"))
            .ok()
            .map(|pid| pid.trim().to_owned())
            .filter(|pid| !pid.is_empty())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }
}

impl Drop for InstalledAgent {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status();
        }
    }
}
