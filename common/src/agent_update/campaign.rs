//! A staged agent update ("campaign"), as a sans-IO state machine: the server feeds it what
//! happened (a device came back on the new version, an offer failed, the time) and carries out
//! what it asks (offer the update to a device, roll one back). Nothing here does IO or reads a
//! clock, so every rule is tested on a virtual clock.
//!
//! The rules:
//! - devices are updated in **waves**, each a cumulative share of the fleet (e.g. 1 %, 10 %, 50 %,
//!   100 %); the caller orders the devices (shuffled, or the least important first);
//! - a wave's devices are all offered the update when the wave starts; each must come back on the
//!   new version within `wave_timeout` of its offer, or it counts as failed;
//! - when every device of the wave is settled, the next wave starts, unless more than
//!   `max_failures` devices of the wave failed: then the campaign **pauses** and each failed
//!   device is **rolled back**; an administrator may resume it (failed devices are not offered
//!   again) or cancel it;
//! - a device that comes back on the new version after its deadline still counts as updated.

use std::time::Duration;

use crate::agent_session::Timestamp;

/// How a campaign proceeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignPlan {
    /// Cumulative percentages, rising, the last 100 (e.g. `[1, 10, 50, 100]`).
    pub waves: Vec<u8>,
    /// How long a device has, from its offer, to come back on the new version.
    pub wave_timeout: Duration,
    /// More failures than this in one wave pause the campaign.
    pub max_failures: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("a campaign needs at least one wave")]
    NoWaves,
    #[error("waves must rise from 1 to 100 (percent), each above the one before")]
    NotRising,
}

impl CampaignPlan {
    pub fn check(&self) -> Result<(), PlanError> {
        if self.waves.is_empty() {
            return Err(PlanError::NoWaves);
        }
        let rising = self.waves.windows(2).all(|w| w[0] < w[1]);
        if !rising || self.waves[0] == 0 || *self.waves.last().unwrap_or(&0) != 100 {
            return Err(PlanError::NotRising);
        }
        Ok(())
    }

    /// How many of `total` devices waves `0..=wave` cover (at least one per wave while any are
    /// left, so a 1 % wave of a small fleet is not empty).
    pub fn covered(&self, wave: usize, total: usize) -> usize {
        let percent = usize::from(self.waves[wave.min(self.waves.len() - 1)]);
        let share = (total * percent).div_ceil(100);
        share.max((wave + 1).min(total)).min(total)
    }
}

/// Where one device is in the campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceState {
    /// Not offered yet (its wave has not come).
    Waiting,
    /// Offered; must come back on the new version by `deadline`.
    Offered {
        deadline: Timestamp,
    },
    Updated,
    Failed {
        why: String,
    },
    /// Failed, then told to go back to its previous version.
    RolledBack {
        why: String,
    },
}

impl DeviceState {
    fn settled(&self) -> bool {
        !matches!(self, DeviceState::Waiting | DeviceState::Offered { .. })
    }
}

/// The campaign as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Running {
        wave: usize,
    },
    /// Stopped by failures (or by an administrator) during `wave`.
    Paused {
        wave: usize,
        why: String,
    },
    Done,
    Cancelled,
}

/// What the machine asks the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<D> {
    Offer(D),
    RollBack(D),
}

pub struct Campaign<D> {
    plan: CampaignPlan,
    devices: Vec<(D, DeviceState)>,
    status: Status,
    actions: std::collections::VecDeque<Action<D>>,
}

impl<D: Clone + PartialEq> Campaign<D> {
    /// A campaign over `devices`, in the order given; starts with the first wave at `now`.
    pub fn start(plan: CampaignPlan, devices: Vec<D>, now: Timestamp) -> Result<Self, PlanError> {
        plan.check()?;
        let mut campaign = Campaign {
            plan,
            devices: devices
                .into_iter()
                .map(|d| (d, DeviceState::Waiting))
                .collect(),
            status: Status::Running { wave: 0 },
            actions: Default::default(),
        };
        campaign.begin_wave(0, now);
        Ok(campaign)
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    pub fn devices(&self) -> &[(D, DeviceState)] {
        &self.devices
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action<D>> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due: the earliest offer deadline.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        if !matches!(self.status, Status::Running { .. }) {
            return None;
        }
        self.devices
            .iter()
            .filter_map(|(_, s)| match s {
                DeviceState::Offered { deadline } => Some(*deadline),
                _ => None,
            })
            .min()
    }

    /// `device` is connected on the new version.
    pub fn updated(&mut self, device: &D, now: Timestamp) {
        if let Some(state) = self.state_of(device)
            && matches!(
                state,
                DeviceState::Offered { .. } | DeviceState::Failed { .. }
            )
        {
            *state = DeviceState::Updated;
            self.settle(now);
        }
    }

    /// The offer to `device` failed (refused, a bad download, the new binary did not start).
    pub fn failed(&mut self, device: &D, why: &str, now: Timestamp) {
        if let Some(state) = self.state_of(device)
            && matches!(state, DeviceState::Offered { .. })
        {
            *state = DeviceState::Failed {
                why: why.to_owned(),
            };
            self.settle(now);
        }
    }

    /// Offers whose deadline passed become failures.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let mut changed = false;
        for (_, state) in &mut self.devices {
            if let DeviceState::Offered { deadline } = state
                && *deadline <= now
            {
                *state = DeviceState::Failed {
                    why: "did not come back on the new version in time".to_owned(),
                };
                changed = true;
            }
        }
        if changed {
            self.settle(now);
        }
    }

    /// An administrator stops the campaign where it is (offers already out still settle).
    pub fn pause(&mut self, why: &str) {
        if let Status::Running { wave } = self.status {
            self.status = Status::Paused {
                wave,
                why: why.to_owned(),
            };
        }
    }

    /// Goes on after a pause: the paused wave's remaining devices, then the next waves.
    pub fn resume(&mut self, now: Timestamp) {
        if let Status::Paused { wave, .. } = self.status {
            self.status = Status::Running { wave };
            self.begin_wave(wave, now);
            self.settle(now);
        }
    }

    pub fn cancel(&mut self) {
        if !matches!(self.status, Status::Done) {
            self.status = Status::Cancelled;
        }
    }

    fn state_of(&mut self, device: &D) -> Option<&mut DeviceState> {
        self.devices
            .iter_mut()
            .find(|(d, _)| d == device)
            .map(|(_, s)| s)
    }

    /// Offers the update to the wave's devices not yet offered.
    fn begin_wave(&mut self, wave: usize, now: Timestamp) {
        let covered = self.plan.covered(wave, self.devices.len());
        let deadline = now + self.plan.wave_timeout;
        for (device, state) in self.devices.iter_mut().take(covered) {
            if *state == DeviceState::Waiting {
                *state = DeviceState::Offered { deadline };
                self.actions.push_back(Action::Offer(device.clone()));
            }
        }
    }

    /// After a change: when the running wave is settled, pause with rollbacks or move on.
    fn settle(&mut self, now: Timestamp) {
        let Status::Running { wave } = self.status else {
            return;
        };
        let covered = self.plan.covered(wave, self.devices.len());
        let in_wave = &self.devices[..covered];
        if !in_wave.iter().all(|(_, s)| s.settled()) {
            return;
        }
        let failed = in_wave
            .iter()
            .filter(|(_, s)| matches!(s, DeviceState::Failed { .. }))
            .count();
        if failed > self.plan.max_failures {
            self.status = Status::Paused {
                wave,
                why: format!(
                    "{failed} of {covered} devices failed in wave {} (at most {} may)",
                    wave + 1,
                    self.plan.max_failures
                ),
            };
            for (device, state) in self.devices[..covered].iter_mut() {
                if let DeviceState::Failed { why } = state {
                    *state = DeviceState::RolledBack { why: why.clone() };
                    self.actions.push_back(Action::RollBack(device.clone()));
                }
            }
            return;
        }
        if wave + 1 >= self.plan.waves.len() || covered == self.devices.len() {
            self.status = Status::Done;
            return;
        }
        self.status = Status::Running { wave: wave + 1 };
        self.begin_wave(wave + 1, now);
        // An empty step (two waves covering the same count) settles at once.
        self.settle(now);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_since_origin(Duration::from_secs(secs))
    }

    fn plan(max_failures: usize) -> CampaignPlan {
        CampaignPlan {
            waves: vec![1, 10, 50, 100],
            wave_timeout: Duration::from_secs(600),
            max_failures,
        }
    }

    fn offers(campaign: &mut Campaign<u32>) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some(action) = campaign.poll_action() {
            match action {
                Action::Offer(d) => out.push(d),
                Action::RollBack(d) => panic!("unexpected rollback of {d}"),
            }
        }
        out
    }

    #[test]
    fn plans_must_rise_to_100() {
        let bad = |waves: Vec<u8>| CampaignPlan { waves, ..plan(0) }.check();
        assert_eq!(bad(vec![]), Err(PlanError::NoWaves));
        assert_eq!(bad(vec![10, 5, 100]), Err(PlanError::NotRising));
        assert_eq!(bad(vec![10, 50]), Err(PlanError::NotRising));
        assert_eq!(bad(vec![0, 100]), Err(PlanError::NotRising));
        assert_eq!(bad(vec![100]), Ok(()));
        // 50 devices in 1/10/50/100 % waves: 1, 5, 25, 50.
        let p = plan(0);
        assert_eq!(
            (0..4).map(|w| p.covered(w, 50)).collect::<Vec<_>>(),
            [1, 5, 25, 50]
        );
        // A tiny fleet still moves one device per wave.
        assert_eq!(
            (0..4).map(|w| p.covered(w, 3)).collect::<Vec<_>>(),
            [1, 2, 3, 3]
        );
    }

    #[test]
    fn fifty_devices_go_through_four_waves_to_done() {
        let mut c = Campaign::start(plan(0), (0..50).collect(), at(0)).unwrap();
        let mut offered = Vec::new();
        for (wave, expected) in [(0, 1), (1, 4), (2, 20), (3, 25)] {
            assert_eq!(c.status(), &Status::Running { wave });
            let batch = offers(&mut c);
            assert_eq!(batch.len(), expected, "wave {wave}");
            offered.extend(batch.iter().copied());
            for device in batch {
                c.updated(&device, at(10));
            }
        }
        assert_eq!(c.status(), &Status::Done);
        assert_eq!(offered, (0..50).collect::<Vec<_>>());
        assert!(c.devices().iter().all(|(_, s)| *s == DeviceState::Updated));
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn too_many_failures_pause_and_roll_back_those_devices() {
        let mut c = Campaign::start(plan(1), (0..50).collect(), at(0)).unwrap();
        for d in offers(&mut c) {
            c.updated(&d, at(1));
        }
        let wave2 = offers(&mut c); // devices 1..5
        c.failed(&wave2[0], "the new binary did not start", at(2));
        c.updated(&wave2[1], at(2));
        // The other two never come back: their deadline fails them.
        assert_eq!(c.poll_timeout(), Some(at(601)));
        c.handle_timeout(at(601));
        assert!(matches!(c.status(), Status::Paused { wave: 1, .. }));
        let mut rolled = Vec::new();
        while let Some(action) = c.poll_action() {
            match action {
                Action::RollBack(d) => rolled.push(d),
                Action::Offer(d) => panic!("offered {d} while paused"),
            }
        }
        assert_eq!(rolled, [wave2[0], wave2[2], wave2[3]]);
        assert_eq!(c.poll_timeout(), None, "nothing is due while paused");
        // Resumed, the next wave starts; rolled-back devices are not offered again.
        c.resume(at(700));
        let wave3 = offers(&mut c);
        assert_eq!(wave3.first(), Some(&5));
        assert!(!wave3.iter().any(|d| rolled.contains(d)));
    }

    #[test]
    fn a_late_comeback_counts_and_a_pause_by_hand_waits() {
        let mut c = Campaign::start(plan(1), (0..4).collect(), at(0)).unwrap();
        let first = offers(&mut c);
        c.pause("looking into it");
        c.updated(&first[0], at(5));
        assert!(offers(&mut c).is_empty(), "paused: no new offers");
        c.resume(at(10));
        assert_eq!(offers(&mut c), [1]);
        // Device 1 misses its deadline: one failure is allowed, so the next wave starts.
        c.handle_timeout(at(10 + 600));
        assert_eq!(c.status(), &Status::Running { wave: 2 });
        assert_eq!(offers(&mut c), [2]);
        // It came back after all: updated.
        c.updated(&1, at(700));
        assert_eq!(c.devices()[1].1, DeviceState::Updated);
        c.cancel();
        assert_eq!(c.status(), &Status::Cancelled);
        assert_eq!(c.poll_timeout(), None);
    }

    #[derive(Debug, Clone)]
    enum Event {
        Updated(u8),
        Failed(u8),
        Tick(u16),
        Pause,
        Resume,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            4 => any::<u8>().prop_map(Event::Updated),
            2 => any::<u8>().prop_map(Event::Failed),
            2 => any::<u16>().prop_map(Event::Tick),
            1 => Just(Event::Pause),
            1 => Just(Event::Resume),
        ]
    }

    proptest! {
        /// Whatever happens: a device is offered at most once and only when its wave has come,
        /// only failed devices are rolled back and only while paused, deadlines never lie in
        /// the past, and a finished campaign has every device updated.
        #[test]
        fn campaigns_keep_their_rules(
            fleet in 1usize..80,
            max_failures in 0usize..4,
            events in proptest::collection::vec(event(), 0..200),
        ) {
            let devices: Vec<u32> = (0..fleet as u32).collect();
            let mut c = Campaign::start(plan(max_failures), devices, at(0)).unwrap();
            let mut now = at(0);
            let mut offered = std::collections::HashSet::new();
            for event in events {
                match event {
                    Event::Updated(d) => c.updated(&(u32::from(d) % fleet as u32), now),
                    Event::Failed(d) => c.failed(&(u32::from(d) % fleet as u32), "x", now),
                    Event::Tick(secs) => {
                        now = now + Duration::from_secs(u64::from(secs));
                        c.handle_timeout(now);
                    }
                    Event::Pause => c.pause("by hand"),
                    Event::Resume => c.resume(now),
                }
                while let Some(action) = c.poll_action() {
                    match action {
                        Action::Offer(d) => {
                            prop_assert!(offered.insert(d), "offered {} twice", d);
                            let wave = match c.status() {
                                Status::Running { wave } | Status::Paused { wave, .. } => *wave,
                                _ => c.plan.waves.len() - 1,
                            };
                            prop_assert!((d as usize) < c.plan.covered(wave, fleet));
                        }
                        Action::RollBack(d) => {
                            let paused = matches!(c.status(), Status::Paused { .. });
                            prop_assert!(paused, "a rollback while not paused");
                            let state = &c.devices()[d as usize].1;
                            let rolled = matches!(state, DeviceState::RolledBack { .. });
                            prop_assert!(rolled, "rolled back a device in state {:?}", state);
                        }
                    }
                }
                if let Some(deadline) = c.poll_timeout() {
                    prop_assert!(deadline > now);
                }
                if *c.status() == Status::Done {
                    prop_assert!(c.devices().iter().all(|(_, s)| s.settled()));
                    let failed = c.devices().iter().filter(|(_, s)| matches!(s, DeviceState::Failed { .. })).count();
                    prop_assert!(failed <= max_failures * c.plan.waves.len());
                }
            }
        }
    }
}
