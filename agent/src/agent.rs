//! The agent process: its configuration and identity, and the loop that keeps one control channel
//! open, reconnecting with backoff whenever it drops.
//!
//! Lines on stdout are part of the interface (tests and service wrappers read them):
//! `tether-agent device <id>`, `tether-agent connected <url>`, `tether-agent disconnected: <why>`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tether_common::handshake::rsa::RsaSigner;
use tether_common::msh::Msh;

use crate::identity::Identity;
use crate::{backoff, handshake, relay, session};

/// A session that lasted this long resets the reconnect backoff.
const STABLE_SESSION: Duration = Duration::from_secs(60);

/// Keepalive and deadline settings.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Connect and authenticate within this, or give up and retry.
    pub handshake_timeout: Duration,
    /// How often to ping the server when connected.
    pub ping_interval: Duration,
    /// Reconnect when nothing, not even a pong, arrived for this long.
    pub idle_timeout: Duration,
}

pub struct Agent {
    pub msh: Msh,
    pub identity: Identity,
    pub signer: Arc<RsaSigner>,
    pub state_dir: PathBuf,
    pub timing: Timing,
    /// The folder file sessions may use (default `/`: everything the agent's account may reach).
    pub files_root: PathBuf,
    /// The X display desktop sessions show (`None`: desktop sessions get a clear error).
    pub x_display: Option<String>,
    /// Resumable uploads wait in `<state>/uploads` (0700) between sessions.
    uploads: relay::Uploads,
    /// Desktop hubs live as long as the agent, across reconnections of the control channel.
    #[cfg(feature = "desktop")]
    desktop_hubs: crate::desktop::Hubs,
}

impl Agent {
    pub fn new(
        msh: Msh,
        state_dir: PathBuf,
        small_key: bool,
        timing: Timing,
    ) -> anyhow::Result<Agent> {
        let identity = Identity::load_or_create(&state_dir, small_key)?;
        let signer = Arc::new(
            RsaSigner::from_pkcs8(&identity.key_pkcs8_der).context("the agent key is unusable")?,
        );
        let uploads = relay::Uploads::new(state_dir.join("uploads"));
        Ok(Agent {
            msh,
            identity,
            signer,
            state_dir,
            timing,
            files_root: PathBuf::from("/"),
            x_display: None,
            uploads,
            #[cfg(feature = "desktop")]
            desktop_hubs: crate::desktop::Hubs::default(),
        })
    }

    /// Runs until the process is stopped.
    pub async fn run(&self) -> anyhow::Result<()> {
        println!("tether-agent device {}", self.identity.device_id);
        let urls: Vec<String> = self.msh.servers().map(str::to_owned).collect();
        anyhow::ensure!(!urls.is_empty(), "the .msh file names no MeshServer");
        let mut failures = 0u32;
        for url in urls.iter().cycle() {
            match handshake::connect(self, url).await {
                Ok(authenticated) => {
                    let since = std::time::Instant::now();
                    let pinned = if authenticated.skipped_server_check {
                        " (pinned certificate)"
                    } else {
                        ""
                    };
                    tracing::info!("connected to {url}{pinned}");
                    println!("tether-agent connected {url}");
                    let relay = Arc::new(relay::Settings {
                        url: url.clone(),
                        cert_der: authenticated.web_cert_der,
                        files_root: self.files_root.clone(),
                        uploads: self.uploads.clone(),
                        x_display: self.x_display.clone(),
                        #[cfg(feature = "desktop")]
                        desktop_hubs: self.desktop_hubs.clone(),
                    });
                    let why = session::serve(self, authenticated.socket, relay).await;
                    tracing::info!("disconnected from {url}: {why:#}");
                    println!("tether-agent disconnected: {why:#}");
                    // Only a connection that lasted counts as success: a server that accepts and
                    // then drops us at once (say, a clone of this machine keeps taking our place)
                    // must not be hammered every second.
                    failures = if since.elapsed() >= STABLE_SESSION {
                        0
                    } else {
                        failures.saturating_add(1)
                    };
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!("cannot connect to {url}: {e:#}");
                    println!("tether-agent disconnected: {e:#}");
                }
            }
            let delay = backoff::reconnect_delay(failures, rand::random::<f64>());
            tracing::debug!("reconnecting in {delay:?}");
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }
}
