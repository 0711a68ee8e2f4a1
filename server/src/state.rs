//! The one shared state of the server. Cloned into every handler; every field is cheap to clone.

use std::sync::Arc;

use crate::agents::OnlineAgents;
use crate::auth::ratelimit::LoginLimiter;
use crate::certs::ServerCerts;
use crate::config::Config;
use crate::events::EventBus;
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
    /// Relay sessions minted and waiting to pair.
    pub relay: Arc<RelayBroker>,
}
