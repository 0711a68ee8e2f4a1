//! What `/control` tells consoles and tetherctl about agent updates: the version the server ships
//! and its rollout ("campaign").

use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, GroupId, UserId};

/// The agent binary this server offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AgentRelease {
    pub version: String,
    pub platform: String,
    pub size: u64,
    /// SHA-384, hex.
    pub sha384: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum CampaignState {
    Running,
    /// Stopped by failures or by an administrator; `why` says which.
    Paused,
    Done,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum DeviceUpdateState {
    Waiting,
    Offered,
    Updated,
    Failed,
    RolledBack,
}

/// A device that did not update, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct CampaignProblem {
    pub device: DeviceId,
    pub name: String,
    pub state: DeviceUpdateState,
    pub why: String,
}

/// How many of the campaign's devices are where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct CampaignCounts {
    pub waiting: usize,
    pub offered: usize,
    pub updated: usize,
    pub failed: usize,
    pub rolled_back: usize,
}

/// One update campaign, as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct CampaignInfo {
    pub id: String,
    pub version: String,
    /// The group it covers; `None`: every device.
    pub group: Option<GroupId>,
    /// Cumulative percentages.
    pub waves: Vec<u8>,
    /// The wave under way (or where it stopped), from 1.
    pub wave: usize,
    pub state: CampaignState,
    /// Why it paused, or empty.
    pub why: String,
    pub wave_timeout_secs: u64,
    pub max_failures: usize,
    pub started_by: UserId,
    /// Unix seconds.
    pub started_at: u64,
    /// Unix seconds; `None` while it runs or is paused.
    pub finished_at: Option<u64>,
    pub total: usize,
    pub counts: CampaignCounts,
    /// Failed and rolled-back devices (at most [`MAX_PROBLEMS_LISTED`]).
    pub problems: Vec<CampaignProblem>,
}

/// Problems listed in a [`CampaignInfo`]; the counts have the rest.
pub const MAX_PROBLEMS_LISTED: usize = 100;

/// The answer to `agentUpdates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AgentUpdates {
    /// What the server would ship now; `None` with `problem` saying why.
    pub release: Option<AgentRelease>,
    pub problem: String,
    /// The campaign under way, or the last one since the server started.
    pub campaign: Option<CampaignInfo>,
}
