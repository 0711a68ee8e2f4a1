//! `--direct`: after pairing, a terminal or file session offers the device a direct WebRTC path
//! (`tether_rtc::splice`); `always` waits for it and fails when none comes up.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::bail;
use tether_common::ids::DeviceId;
use tether_common::relay::{DirectPath, SessionKind};
use tether_rtc::{PathStatus, Role, SessionSocket, SpliceConfig};
use tokio::sync::watch;

use crate::cli::DirectMode;
use crate::connection::Socket;

/// `--direct always` gives up when the session has not moved within this long.
const ALWAYS_WAIT: Duration = Duration::from_secs(10);
/// How long tetherctl, its command done, waits for its sessions' splices to close them properly
/// (the last direct messages, `rtcEnd`, the server's audit report, the relay's close).
const END_WAIT: Duration = Duration::from_secs(5);

/// The splices this process started; `wait_for_ends` lets them finish before the process exits,
/// which would otherwise cut them off mid-close.
static SPLICES: Mutex<Vec<watch::Receiver<PathStatus>>> = Mutex::new(Vec::new());

/// Set (non-empty) to have tetherctl say on stderr which path a session took.
const DEBUG_ENV: &str = "TETHER_DEBUG";

/// Splices the paired relay socket; with `always`, returns only once the session runs direct.
pub(crate) async fn go_direct(
    relay: Socket,
    kind: SessionKind,
    offered: Option<DirectPath>,
    mode: DirectMode,
    device: &DeviceId,
) -> anyhow::Result<SessionSocket> {
    let direct = match kind {
        SessionKind::Terminal | SessionKind::Files if mode != DirectMode::Never => offered,
        SessionKind::Terminal | SessionKind::Files => None,
        // Other kinds (a screenshot's desktop session) stay relayed whatever --direct says:
        // video wants a media track, not a data channel.
        _ => return Ok(splice(relay, None, device).await.0),
    };
    if direct.as_ref().is_some_and(|d| d.relay_only) {
        // The server wants direct paths through its TURN server, which only browsers can use.
        if mode == DirectMode::Always {
            bail!(
                "no direct path to the device (--direct always): the server routes direct paths through TURN only, and tetherctl has no TURN client"
            );
        }
        return Ok(splice(relay, None, device).await.0);
    }
    let tried = direct.is_some();
    if mode == DirectMode::Always && !tried {
        bail!("no direct path to the device (--direct always): its group keeps sessions relayed");
    }
    let (socket, mut status) = splice(relay, direct, device).await;
    if mode == DirectMode::Always {
        let settled = tokio::time::timeout(ALWAYS_WAIT, settle(&mut status)).await;
        match settled {
            Ok(PathStatus::Direct) => report("direct path up"),
            Ok(PathStatus::Relayed(reason)) => {
                bail!("no direct path to the device came up (--direct always): {reason}")
            }
            Ok(_) => bail!("the session ended before a direct path came up (--direct always)"),
            Err(_) => bail!(
                "no direct path to the device came up within {} s (--direct always)",
                ALWAYS_WAIT.as_secs()
            ),
        }
    } else if debugging() {
        if tried {
            tokio::spawn(async move {
                match settle(&mut status).await {
                    PathStatus::Direct => report("direct path up"),
                    PathStatus::Relayed(reason) => report(&format!("relayed ({reason})")),
                    _ => {}
                }
            });
        } else {
            report("relayed");
        }
    }
    Ok(socket)
}

async fn splice(
    relay: Socket,
    direct: Option<DirectPath>,
    device: &DeviceId,
) -> (SessionSocket, watch::Receiver<PathStatus>) {
    let config = SpliceConfig {
        role: Role::Offerer,
        direct,
        // The agent may run on this very machine: loopback host candidates reach it.
        allow_loopback: true,
        identity: None,
        // The answer must be signed by this device's key (the server cannot interpose).
        device: Some(device.clone()),
    };
    let (socket, status) = tether_rtc::splice(relay, config).await;
    if let Ok(mut splices) = SPLICES.lock() {
        splices.push(status.clone());
    }
    (socket, status)
}

/// Waits (at most [`END_WAIT`] in all) until every session this process spliced has ended.
pub(crate) async fn wait_for_ends() {
    let splices = match SPLICES.lock() {
        Ok(mut splices) => std::mem::take(&mut *splices),
        Err(_) => return,
    };
    let all = async {
        for mut status in splices {
            let _ = status.wait_for(|s| *s == PathStatus::Ended).await;
        }
    };
    let _ = tokio::time::timeout(END_WAIT, all).await;
}

/// Waits until the session is direct, relayed for good, or over.
async fn settle(status: &mut watch::Receiver<PathStatus>) -> PathStatus {
    loop {
        let now = status.borrow_and_update().clone();
        if now != PathStatus::Trying {
            return now;
        }
        if status.changed().await.is_err() {
            return PathStatus::Ended;
        }
    }
}

fn debugging() -> bool {
    std::env::var_os(DEBUG_ENV).is_some_and(|v| !v.is_empty())
}

fn report(line: &str) {
    if debugging() {
        eprintln!("tetherctl: {line}");
    }
}
