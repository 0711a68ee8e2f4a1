//! `agentinfo` after the first one: the agent looks at its machine again every minute and reports
//! only when something changed (a new address, a user logging in, an OS upgrade), so a fleet of
//! idle agents does not cost the server a store write per agent per minute.

use crate::agent_proto::{self, AgentInfo, AgentToServer};

/// What was last reported on this connection.
#[derive(Debug, Default)]
pub(crate) struct InfoReport {
    last: Option<AgentInfo>,
}

impl InfoReport {
    /// The `agentinfo` message to send if `info` says something the last report did not.
    /// Uptime alone is no change: it always grows.
    pub(crate) fn changed(&mut self, info: AgentInfo) -> Option<String> {
        let same = self.last.as_ref().is_some_and(|last| {
            AgentInfo {
                uptime_secs: last.uptime_secs,
                ..info.clone()
            } == *last
        });
        if same {
            return None;
        }
        let message = agent_proto::to_json(&AgentToServer::AgentInfo(info.clone()));
        self.last = Some(info);
        Some(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(users: &[&str], uptime_secs: u64) -> AgentInfo {
        AgentInfo {
            hostname: "pc1".into(),
            users: users.iter().map(|u| u.to_string()).collect(),
            uptime_secs,
            ..AgentInfo::default()
        }
    }

    #[test]
    fn reports_the_first_time_and_then_only_changes() {
        let mut report = InfoReport::default();
        let first = report
            .changed(info(&[], 10))
            .expect("the first report goes out");
        assert!(first.starts_with(r#"{"action":"agentinfo""#), "{first}");
        assert_eq!(report.changed(info(&[], 70)), None, "only the uptime moved");
        assert!(report.changed(info(&["alice"], 130)).is_some());
        assert_eq!(report.changed(info(&["alice"], 190)), None);
        assert!(report.changed(info(&[], 250)).is_some(), "alice logged out");
    }
}
