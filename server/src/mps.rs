//! The MPS port (`--mpsport`, 4433 by default, 0 = off): Intel AMT machines provisioned for CIRA
//! connect out to it over TLS, whatever the state of their operating system, and speak APF
//! (`tether_common::apf`). A machine logs in with its group's CIRA login (`control/cira.rs`),
//! shows as an online device while its tunnel is up, and offers its own ports (WS-Management,
//! redirection) for the server to open channels to.
//!
//! - `mps/connection.rs`: one connection, from TLS to DISCONNECT, around `MpsSession`;
//! - `mps/login.rs`: which group a CIRA login belongs to;
//! - `mps/presence.rs`: which AMT machines are connected, their device records and events, and
//!   `AmtOnline::open`, a byte stream to one of a machine's ports;
//! - `mps/linking.rs`: a machine with both an agent and AMT as one device;
//! - `mps/bridge.rs`: such a stream, carried on an APF channel with flow control both ways.
//!
//! TLS: 1.2 and 1.3 with forward-secret AEAD suites only (`tls::mps_server_config`), on the
//! `mpsserver` certificate. That serves AMT 12 or later; older AMT needs TLS 1.0 and RSA key
//! exchange, which this server does not offer.

mod bridge;
mod connection;
mod linking;
mod login;
mod presence;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub(crate) use linking::link_agent;
pub(crate) use presence::{AmtOnline, OpenError};

use crate::serve::caps::{Caps, ConnectionCounts};
use crate::state::AppState;

/// A client that has not finished the TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the MPS port (`None` when it is 0, MeshCentral's "off").
pub(crate) async fn bind(address: IpAddr, port: u16) -> anyhow::Result<Option<TcpListener>> {
    if port == 0 {
        return Ok(None);
    }
    let listener = TcpListener::bind(SocketAddr::new(address, port))
        .await
        .with_context(|| {
            format!("cannot listen on {address}:{port} for Intel AMT (--mpsport; 0 turns it off)")
        })?;
    Ok(Some(listener))
}

/// Accepts CIRA connections until the server stops.
pub(crate) async fn serve(listener: TcpListener, acceptor: TlsAcceptor, state: AppState) {
    let caps = Caps {
        total: state.config.max_connections,
        per_source: state.config.max_connections_per_ip,
    };
    let open = ConnectionCounts::default();
    loop {
        let (tcp, peer) = tokio::select! {
            () = state.stopping.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "mps: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = open.try_acquire(peer.ip(), caps) else {
            tracing::warn!(%peer, "mps: connection refused: too many open");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, state_for_task) = (acceptor.clone(), state.clone());
        state.tasks.spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => connection::serve(stream, peer, state_for_task).await,
                Ok(Err(e)) => tracing::info!(%peer, "mps: TLS handshake failed: {e}"),
                Err(_) => tracing::info!(%peer, "mps: TLS handshake timed out"),
            }
        });
    }
}
