//! The one shared state of the server. Cloned into every handler; every field is cheap to clone.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agents::OnlineAgents;
use crate::auth::ratelimit::LoginLimiter;
use crate::certs::ServerCerts;
use crate::config::Config;
use crate::events::EventBus;
use crate::mps::AmtOnline;
use crate::relay::RelayBroker;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub certs: Arc<ServerCerts>,
    pub store: Arc<dyn Store>,
    pub events: EventBus,
    pub login_limiter: Arc<LoginLimiter>,
    /// The one-time code that first-run setup needs from anywhere but this machine
    /// (`auth::http::post_setup`); printed at start while the server has no account.
    pub setup_code: Arc<str>,
    pub agents: Arc<OnlineAgents>,
    /// The other servers sharing the work, over NATS (`cluster.rs`); not linked without `nats`.
    pub cluster: Arc<crate::cluster::Cluster>,
    /// Intel AMT machines with a CIRA tunnel up (`mps/presence.rs`).
    pub(crate) amt: Arc<AmtOnline>,
    /// Passkey ceremonies in flight (`auth/passkeys.rs`).
    pub(crate) passkeys: Arc<crate::auth::passkeys::Ceremonies>,
    /// Relay sessions minted and waiting to pair.
    pub relay: Arc<RelayBroker>,
    /// Agent self-update: the campaign under way and its downloads (`updates/`).
    pub(crate) updates: Arc<crate::updates::Updates>,
    /// Cancelled when the server begins to stop: long-lived connections (WebSockets) end on it
    /// with a close frame of their own.
    pub stopping: CancellationToken,
    /// Every connection task, upgraded WebSockets included: stopping waits for them (bounded).
    pub tasks: TaskTracker,
}
