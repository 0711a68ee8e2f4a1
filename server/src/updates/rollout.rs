//! The campaign under way: `tether_common::agent_update::campaign::Campaign` (the rules, sans-IO)
//! with what only the server has around it: the frozen release, the download links handed out,
//! device names, the clock, and sending offers and rollbacks to connected agents.
//!
//! One campaign at a time. Everything happens under one lock, quickly (sends are `try_send` into
//! each agent's outbox); the driver task (`Updates::drive`) only fires deadlines and publishes the
//! campaign to consoles, at most once a second however fast agents report.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tether_common::agent_proto::{self, ServerToAgent};
use tether_common::agent_session::Timestamp;
use tether_common::agent_update::campaign::{Action, Campaign, CampaignPlan, DeviceState, Status};
use tether_common::agent_update::{
    CampaignCounts, CampaignInfo, CampaignProblem, CampaignState, DeviceUpdateState,
    MAX_PROBLEMS_LISTED, UpdateOffer,
};
use tether_common::control::Event;
use tether_common::ids::{DeviceId, GroupId, UserId};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use super::Release;
use super::download::UPDATE_PATH;
use crate::agents::{OnlineAgents, Outgoing};
use crate::clock::{now_millis, now_secs};
use crate::events::Audience;
use crate::state::AppState;
use crate::store::NewEvent;

/// Consoles hear about a campaign at most this often.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// Agents downloading at once; more wait their turn (bounds the server's memory and bandwidth).
pub(super) const CONCURRENT_DOWNLOADS: usize = 32;

/// The server's agent updates: the campaign, and the downloads it allows.
pub(crate) struct Updates {
    current: Mutex<Option<Rollout>>,
    /// Wakes the driver: something changed, or a deadline moved.
    wake: Notify,
    origin: Instant,
    pub(super) downloads: Semaphore,
    /// `None` in unit tests that build no certificates: nothing can be published then.
    signing: Option<super::Signing>,
}

struct Rollout {
    id: String,
    release: Arc<Release>,
    machine: Campaign<DeviceId>,
    plan: CampaignPlan,
    names: HashMap<DeviceId, String>,
    group: Option<GroupId>,
    started_by: UserId,
    started_at: u64,
    finished_at: Option<u64>,
    /// Download links handed out: token → device (one per device, reused on re-offers).
    links: HashMap<String, DeviceId>,
    /// Changed since consoles last heard.
    dirty: bool,
    /// The status consoles and the audit log last heard of.
    reported: Status,
}

/// Why a campaign action could not be done.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RolloutError {
    #[error("an agent update campaign is under way (to {0}); cancel it first")]
    Busy(String),
    #[error("no agent update campaign is under way")]
    None,
    #[error("{0}")]
    Plan(#[from] tether_common::agent_update::campaign::PlanError),
    #[error("the campaign is {0}: it cannot be {1}")]
    Finished(&'static str, &'static str),
}

/// A new campaign's settings.
pub(crate) struct NewCampaign {
    pub release: Release,
    /// The devices, in the order waves take them, with their names.
    pub devices: Vec<(DeviceId, String)>,
    pub plan: CampaignPlan,
    pub group: Option<GroupId>,
    pub started_by: UserId,
}

impl Default for Updates {
    fn default() -> Self {
        Updates {
            current: Mutex::new(None),
            wake: Notify::new(),
            origin: Instant::now(),
            downloads: Semaphore::new(CONCURRENT_DOWNLOADS),
            signing: None,
        }
    }
}

impl Updates {
    pub(crate) fn new(signing: super::Signing) -> Updates {
        Updates {
            signing: Some(signing),
            ..Updates::default()
        }
    }

    /// Freezes and signs the binary this server ships (see `release.rs`).
    pub(crate) async fn publish(
        &self,
        config: &crate::config::Config,
    ) -> Result<Release, super::ReleaseError> {
        let signing = self
            .signing
            .as_ref()
            .ok_or_else(|| super::ReleaseError::Sign("this server has no signing key".into()))?;
        super::release::publish(config, signing).await
    }

    pub(crate) fn start(
        &self,
        agents: &OnlineAgents,
        new: NewCampaign,
    ) -> Result<CampaignInfo, RolloutError> {
        let mut current = self.lock();
        if let Some(rollout) = current.as_ref()
            && matches!(
                rollout.machine.status(),
                Status::Running { .. } | Status::Paused { .. }
            )
        {
            return Err(RolloutError::Busy(rollout.release.info.version.clone()));
        }
        let ids = new.devices.iter().map(|(id, _)| id.clone()).collect();
        let machine = Campaign::start(new.plan.clone(), ids, self.now())?;
        let mut rollout = Rollout {
            id: random_hex(8),
            release: Arc::new(new.release),
            reported: machine.status().clone(),
            machine,
            plan: new.plan,
            names: new.devices.into_iter().collect(),
            group: new.group,
            started_by: new.started_by,
            started_at: now_secs() as u64,
            finished_at: None,
            links: HashMap::new(),
            dirty: true,
        };
        rollout.carry_out(agents);
        let info = rollout.info();
        *current = Some(rollout);
        self.wake.notify_one();
        Ok(info)
    }

    pub(crate) fn info(&self) -> Option<CampaignInfo> {
        self.lock().as_ref().map(Rollout::info)
    }

    pub(crate) fn pause(&self, why: &str) -> Result<CampaignInfo, RolloutError> {
        self.change("paused", |rollout, _| rollout.machine.pause(why))
    }

    pub(crate) fn resume(&self, agents: &OnlineAgents) -> Result<CampaignInfo, RolloutError> {
        self.change("resumed", |rollout, now| {
            rollout.machine.resume(now);
            rollout.carry_out(agents);
        })
    }

    pub(crate) fn cancel(&self) -> Result<CampaignInfo, RolloutError> {
        self.change("cancelled", |rollout, _| rollout.machine.cancel())
    }

    /// A connected agent said which version it runs (its `agentinfo`).
    pub(crate) fn agent_reported(&self, agents: &OnlineAgents, device: &DeviceId, version: &str) {
        let now = self.now();
        let mut current = self.lock();
        let Some(rollout) = current.as_mut() else {
            return;
        };
        let state = rollout.state_of(device);
        if version == rollout.release.info.version {
            if matches!(
                state,
                Some(DeviceState::Offered { .. } | DeviceState::Failed { .. })
            ) {
                rollout.machine.updated(device, now);
                rollout.after_change(agents);
                self.wake.notify_one();
            }
        } else if matches!(state, Some(DeviceState::Offered { .. }))
            && matches!(rollout.machine.status(), Status::Running { .. })
        {
            // Offered while it was offline, or it came back on the old version after a failed
            // try it did not report: offer again (an agent busy updating ignores it).
            rollout.offer(agents, device);
        }
    }

    /// An agent reported that an offer (or a rollback) came to nothing.
    pub(crate) fn agent_failed(
        &self,
        agents: &OnlineAgents,
        device: &DeviceId,
        version: &str,
        why: &str,
    ) {
        let now = self.now();
        let mut current = self.lock();
        let Some(rollout) = current.as_mut() else {
            return;
        };
        if version == rollout.release.info.version {
            rollout.machine.failed(device, why, now);
            rollout.after_change(agents);
            self.wake.notify_one();
        }
    }

    /// The release a download link fetches, while its device's offer stands (a cancelled
    /// campaign's offers do not).
    pub(crate) fn download(&self, token: &str) -> Option<(DeviceId, Arc<Release>)> {
        let current = self.lock();
        let rollout = current.as_ref()?;
        let device = rollout.links.get(token)?;
        let live = matches!(
            rollout.machine.status(),
            Status::Running { .. } | Status::Paused { .. }
        );
        (live && matches!(rollout.state_of(device), Some(DeviceState::Offered { .. })))
            .then(|| (device.clone(), rollout.release.clone()))
    }

    /// Fires deadlines and tells consoles (and the audit log) how the campaign goes, until the
    /// server stops.
    pub(crate) async fn drive(state: AppState) {
        let updates = &state.updates;
        let mut last_published = Instant::now()
            .checked_sub(PUBLISH_EVERY)
            .unwrap_or_else(Instant::now);
        loop {
            let (deadline, dirty) = {
                let current = updates.lock();
                match current.as_ref() {
                    Some(r) => (
                        r.machine
                            .poll_timeout()
                            .map(|at| updates.origin + at.since_origin()),
                        r.dirty,
                    ),
                    None => (None, false),
                }
            };
            let publish_at = dirty.then_some(last_published + PUBLISH_EVERY);
            let wake_at = [deadline, publish_at].into_iter().flatten().min();
            tokio::select! {
                () = state.stopping.cancelled() => return,
                () = updates.wake.notified() => {}
                () = sleep_until(wake_at) => {}
            }
            let now = updates.now();
            let mut report = None;
            {
                let mut current = updates.lock();
                if let Some(rollout) = current.as_mut() {
                    if rollout.machine.poll_timeout().is_some_and(|at| at <= now) {
                        rollout.machine.handle_timeout(now);
                        rollout.after_change(&state.agents);
                    }
                    if rollout.dirty && last_published.elapsed() >= PUBLISH_EVERY {
                        rollout.dirty = false;
                        last_published = Instant::now();
                        let changed = rollout.note_status();
                        report = Some((rollout.info(), changed));
                    }
                }
            }
            if let Some((info, changed)) = report {
                if let Some(message) = changed {
                    audit_line(&state, &info, message).await;
                }
                state.events.publish(
                    Event::AgentUpdate { campaign: info },
                    Audience::admins_only(),
                );
            }
        }
    }

    fn change(
        &self,
        verb: &'static str,
        change: impl FnOnce(&mut Rollout, Timestamp),
    ) -> Result<CampaignInfo, RolloutError> {
        let now = self.now();
        let mut current = self.lock();
        let rollout = current.as_mut().ok_or(RolloutError::None)?;
        match rollout.machine.status() {
            Status::Done => return Err(RolloutError::Finished("done", verb)),
            Status::Cancelled => return Err(RolloutError::Finished("cancelled", verb)),
            _ => {}
        }
        change(rollout, now);
        rollout.dirty = true;
        rollout.mark_finished();
        self.wake.notify_one();
        Ok(rollout.info())
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_since_origin(self.origin.elapsed())
    }

    fn lock(&self) -> MutexGuard<'_, Option<Rollout>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Rollout {
    fn state_of(&self, device: &DeviceId) -> Option<&DeviceState> {
        self.machine
            .devices()
            .iter()
            .find(|(d, _)| d == device)
            .map(|(_, s)| s)
    }

    fn after_change(&mut self, agents: &OnlineAgents) {
        self.carry_out(agents);
        self.dirty = true;
        self.mark_finished();
    }

    fn mark_finished(&mut self) {
        if matches!(self.machine.status(), Status::Done | Status::Cancelled)
            && self.finished_at.is_none()
        {
            self.finished_at = Some(now_secs() as u64);
        }
    }

    /// Sends what the machine asks for: offers and rollbacks.
    fn carry_out(&mut self, agents: &OnlineAgents) {
        while let Some(action) = self.machine.poll_action() {
            match action {
                Action::Offer(device) => self.offer(agents, &device),
                Action::RollBack(device) => {
                    let text = agent_proto::to_json(&ServerToAgent::Rollback);
                    if agents.send(&device, Outgoing::Text(text)) {
                        tracing::warn!(%device, "agent update: asked the agent to roll back");
                    } else {
                        tracing::warn!(%device, "agent update: cannot ask the agent to roll back: it is offline");
                    }
                }
            }
        }
    }

    /// Offers the release to `device` if it is connected (else it is offered when it reports in).
    fn offer(&mut self, agents: &OnlineAgents, device: &DeviceId) {
        let token = match self.links.iter().find(|(_, d)| *d == device) {
            Some((token, _)) => token.clone(),
            None => {
                let token = random_hex(24);
                self.links.insert(token.clone(), device.clone());
                token
            }
        };
        let release = &self.release;
        let offer = UpdateOffer {
            version: release.info.version.clone(),
            platform: release.info.platform.clone(),
            sha384: release.info.sha384.clone(),
            size: release.info.size,
            path: format!("{UPDATE_PATH}?t={token}"),
            server_cert: hex::encode(&release.server_cert_der),
            signature: hex::encode(&release.signature),
        };
        let text = agent_proto::to_json(&ServerToAgent::Update(offer));
        if agents.send(device, Outgoing::Text(text)) {
            tracing::info!(%device, version = %release.info.version, "agent update: offered");
        }
    }

    /// The audit line for a status change since the last report, if any.
    fn note_status(&mut self) -> Option<String> {
        let status = self.machine.status().clone();
        if status == self.reported {
            return None;
        }
        self.reported = status.clone();
        let version = &self.release.info.version;
        match status {
            Status::Paused { wave, why } => Some(format!(
                "Agent update to {version} paused in wave {}: {why}",
                wave + 1
            )),
            Status::Done => Some(format!("Agent update to {version} done")),
            // Started and cancelled are logged by who did it; a new wave is not worth a line.
            Status::Running { .. } | Status::Cancelled => None,
        }
    }

    fn info(&self) -> CampaignInfo {
        let mut counts = CampaignCounts::default();
        let mut problems = Vec::new();
        for (device, state) in self.machine.devices() {
            let (kind, why) = match state {
                DeviceState::Waiting => (DeviceUpdateState::Waiting, None),
                DeviceState::Offered { .. } => (DeviceUpdateState::Offered, None),
                DeviceState::Updated => (DeviceUpdateState::Updated, None),
                DeviceState::Failed { why } => (DeviceUpdateState::Failed, Some(why)),
                DeviceState::RolledBack { why } => (DeviceUpdateState::RolledBack, Some(why)),
            };
            match kind {
                DeviceUpdateState::Waiting => counts.waiting += 1,
                DeviceUpdateState::Offered => counts.offered += 1,
                DeviceUpdateState::Updated => counts.updated += 1,
                DeviceUpdateState::Failed => counts.failed += 1,
                DeviceUpdateState::RolledBack => counts.rolled_back += 1,
            }
            if let Some(why) = why
                && problems.len() < MAX_PROBLEMS_LISTED
            {
                problems.push(CampaignProblem {
                    device: device.clone(),
                    name: self.names.get(device).cloned().unwrap_or_default(),
                    state: kind,
                    why: why.clone(),
                });
            }
        }
        let (state, wave, why) = match self.machine.status() {
            Status::Running { wave } => (CampaignState::Running, *wave, String::new()),
            Status::Paused { wave, why } => (CampaignState::Paused, *wave, why.clone()),
            Status::Done => (
                CampaignState::Done,
                self.plan.waves.len() - 1,
                String::new(),
            ),
            Status::Cancelled => (CampaignState::Cancelled, 0, String::new()),
        };
        CampaignInfo {
            id: self.id.clone(),
            version: self.release.info.version.clone(),
            group: self.group.clone(),
            waves: self.plan.waves.clone(),
            wave: wave + 1,
            state,
            why,
            wave_timeout_secs: self.plan.wave_timeout.as_secs(),
            max_failures: self.plan.max_failures,
            started_by: self.started_by.clone(),
            started_at: self.started_at,
            finished_at: self.finished_at,
            total: self.machine.devices().len(),
            counts,
            problems,
        }
    }
}

/// An audit record about the campaign, for site admins.
pub(super) async fn audit_line(state: &AppState, info: &CampaignInfo, message: String) {
    let event = NewEvent {
        time: now_millis(),
        kind: "agent_update".into(),
        user: None,
        group: info.group.clone(),
        device: None,
        message,
    };
    match state.store.append_event(event).await {
        Ok(record) => state
            .events
            .publish(Event::Logged { record }, Audience::admins_only()),
        Err(e) => tracing::error!("agent update: could not write an audit record: {e}"),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(buf.as_mut_slice());
    hex::encode(buf)
}
