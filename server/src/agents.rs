//! Connected agents (`/agent.ashx`). The handshake and command handling arrive with the agent issue;
//! for now this only answers "is this device online".

use std::collections::HashMap;
use std::sync::Mutex;

use tether_common::ids::DeviceId;

#[derive(Default)]
pub struct OnlineAgents {
    connected: Mutex<HashMap<DeviceId, u64>>,
}

impl OnlineAgents {
    pub fn is_online(&self, device: &DeviceId) -> bool {
        self.connected.lock().map(|m| m.contains_key(device)).unwrap_or(false)
    }
}
