//! The agent's tunnel slots: how many relay sessions it serves, and how many it is turning away,
//! across every connection of the process (sessions outlive the connection that asked for them).

use std::collections::HashSet;

/// Names one tunnel the machine handed out, so its end can be reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TunnelId(u64);

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    Serve(TunnelId),
    TurnAway(TunnelId),
    Full,
}

#[derive(Debug, Clone)]
pub(crate) struct Tunnels {
    max_serving: usize,
    max_turning_away: usize,
    serving: HashSet<TunnelId>,
    turning_away: HashSet<TunnelId>,
    next_id: u64,
}

impl Tunnels {
    pub(crate) fn new(max_serving: usize, max_turning_away: usize) -> Tunnels {
        Tunnels {
            max_serving,
            max_turning_away,
            serving: HashSet::new(),
            turning_away: HashSet::new(),
            next_id: 0,
        }
    }

    pub(crate) fn admit(&mut self) -> Admission {
        let id = TunnelId(self.next_id);
        let admission = if self.serving.len() < self.max_serving {
            self.serving.insert(id);
            Admission::Serve(id)
        } else if self.turning_away.len() < self.max_turning_away {
            self.turning_away.insert(id);
            Admission::TurnAway(id)
        } else {
            return Admission::Full;
        };
        self.next_id = self.next_id.wrapping_add(1);
        admission
    }

    /// Frees `id`'s slot; an id already finished (or never handed out) changes nothing.
    pub(crate) fn finish(&mut self, id: TunnelId) {
        if !self.serving.remove(&id) {
            self.turning_away.remove(&id);
        }
    }

    pub(crate) fn serving(&self) -> usize {
        self.serving.len()
    }

    pub(crate) fn turning_away(&self) -> usize {
        self.turning_away.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_cap_tunnels_are_turned_away_then_dropped_and_slots_come_back() {
        let mut slots = Tunnels::new(2, 1);
        let Admission::Serve(first) = slots.admit() else {
            panic!("the first is served")
        };
        assert!(matches!(slots.admit(), Admission::Serve(_)));
        let Admission::TurnAway(refusing) = slots.admit() else {
            panic!("the third is turned away")
        };
        assert_eq!(slots.admit(), Admission::Full);
        slots.finish(first);
        assert!(
            matches!(slots.admit(), Admission::Serve(_)),
            "an ended session frees its slot"
        );
        slots.finish(refusing);
        slots.finish(refusing);
        assert_eq!(slots.turning_away(), 0, "finishing twice frees one slot");
        assert!(matches!(slots.admit(), Admission::TurnAway(_)));
        assert_eq!((slots.serving(), slots.turning_away()), (2, 1));
    }
}
