//! The agent process: its configuration and identity; `session.rs` keeps one control channel open,
//! reconnecting with backoff whenever it drops.
//!
//! Lines on stdout are part of the interface (tests and service wrappers read them):
//! `tether-agent device <id>`, `tether-agent connected <url>`, `tether-agent disconnected: <why>`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tether_common::handshake::rsa::RsaSigner;
use tether_common::msh::Msh;

use crate::handshake;
use crate::identity::Identity;
use crate::relay;
use crate::session;

/// Keepalive and deadline settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Connect and authenticate within this, or give up and retry.
    pub handshake_timeout: Duration,
    /// How often to ping the server when connected.
    pub ping_interval: Duration,
    /// Reconnect when nothing, not even a pong, arrived for this long.
    pub idle_timeout: Duration,
}

pub(crate) struct Agent {
    pub msh: Msh,
    pub identity: Identity,
    pub signer: Arc<RsaSigner>,
    pub state_dir: PathBuf,
    pub timing: Timing,
    /// The folder file sessions may use (default `/`: everything the agent's account may reach).
    pub files_root: PathBuf,
    /// The X display desktop sessions show (`None`: desktop sessions get a clear error).
    pub x_display: Option<String>,
    /// What opens the messenger page for the person at the screen (`chat_open.rs`).
    pub chat_opener: PathBuf,
    /// Resumable uploads wait in `<state>/uploads` (0700) between sessions.
    pub uploads: relay::Uploads,
    /// The folder the installer put the agent in (its `.msh`'s folder): what a remote uninstall
    /// removes.
    pub install_dir: Option<PathBuf>,
    /// What a self-update replaces and restarts.
    pub updater: crate::update::Updater,
    /// Desktop hubs live as long as the agent, across reconnections of the control channel.
    #[cfg(feature = "desktop")]
    pub desktop_hubs: crate::desktop::Hubs,
}

impl Agent {
    pub(crate) fn new(
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
        let updater = crate::update::Updater::of_this_process(None, state_dir.clone());
        Ok(Agent {
            msh,
            identity,
            signer,
            state_dir,
            timing,
            files_root: PathBuf::from("/"),
            x_display: None,
            chat_opener: PathBuf::from("xdg-open"),
            uploads,
            install_dir: None,
            updater,
            #[cfg(feature = "desktop")]
            desktop_hubs: crate::desktop::Hubs::default(),
        })
    }

    /// The key that signs direct-path answers: the agent key, whose hash is the device id.
    pub(crate) fn path_identity(&self) -> tether_rtc::PathIdentity {
        tether_rtc::PathIdentity {
            signer: self.signer.clone(),
            public_key: tether_common::handshake::rsa::rsa_public_key_of_cert(
                &self.identity.cert_der,
            )
            .unwrap_or_default(),
        }
    }

    /// An update's trial run (`run --update-trial`): connect and authenticate once, to the first
    /// of the `.msh`'s servers that answers, then leave.
    pub(crate) async fn trial(&self) -> anyhow::Result<()> {
        let mut failure = anyhow::anyhow!("the .msh file names no MeshServer");
        for url in self.msh.servers() {
            match handshake::connect(self, url).await {
                Ok(mut authenticated) => {
                    let _ = authenticated.socket.close(None).await;
                    println!("tether-agent trial: authenticated at {url}");
                    return Ok(());
                }
                Err(e) => failure = e.context(format!("cannot authenticate at {url}")),
            }
        }
        Err(failure)
    }

    /// Runs until the process is stopped.
    pub(crate) async fn run(&self) -> anyhow::Result<()> {
        println!("tether-agent device {}", self.identity.device_id);
        let urls: Vec<String> = self.msh.servers().map(str::to_owned).collect();
        session::run(self, urls).await
    }
}
