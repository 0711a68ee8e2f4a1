//! The first minutes of a new version. The trial run showed the new binary can start and reach
//! the server, but the restarted agent could still fail where the trial did not (a crash on its
//! second start, a loop before connecting). Before it `exec`s the new version, the old one writes
//! `state/update-probation`; the new one counts its starts in it and deletes it once it has
//! authenticated with the server. Too many starts, or no authentication by the deadline, and
//! the agent goes back to `tether-agent.old` by itself: the server cannot roll back an agent that
//! never reaches it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

const FILE: &str = "update-probation";
/// Long enough to ride out a server restart, short enough that a broken update heals itself
/// within a coffee break.
pub(crate) const PROBATION: Duration = Duration::from_secs(600);
/// Starts of the new version (a service manager restarting a crash) before going back.
const MAX_STARTS: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Probation {
    pub from: String,
    pub to: String,
    /// Unix seconds.
    pub deadline: u64,
    pub starts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Watch until this many seconds from now; authenticated by then, the update stands.
    Watch(Duration),
    RollBackNow,
}

/// What a start under probation should do (pure; `now` in Unix seconds).
pub(crate) fn verdict(probation: &Probation, now: u64) -> Verdict {
    if probation.starts > MAX_STARTS || now >= probation.deadline {
        Verdict::RollBackNow
    } else {
        Verdict::Watch(Duration::from_secs(probation.deadline - now))
    }
}

fn path(state: &Path) -> PathBuf {
    state.join(FILE)
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Written by the old version just before it becomes the new one.
pub(crate) fn begin(state: &Path, from: &str, to: &str) -> std::io::Result<()> {
    let probation = Probation {
        from: from.to_owned(),
        to: to.to_owned(),
        deadline: now_unix() + PROBATION.as_secs(),
        starts: 0,
    };
    let text = serde_json::to_string(&probation).map_err(std::io::Error::other)?;
    std::fs::write(path(state), text)
}

/// At start: the probation this version is under, with this start counted (`None`: none, or
/// one for another version, which is stale and removed).
pub(crate) fn on_start(state: &Path, running: &str) -> Option<Probation> {
    let text = std::fs::read_to_string(path(state)).ok()?;
    let mut probation: Probation = match serde_json::from_str(&text) {
        Ok(p) => p,
        Err(_) => {
            passed(state);
            return None;
        }
    };
    if probation.to != running {
        passed(state);
        return None;
    }
    probation.starts += 1;
    if let Ok(text) = serde_json::to_string(&probation) {
        let _ = std::fs::write(path(state), text);
    }
    Some(probation)
}

/// The new version authenticated with its server: the update stands.
pub(crate) fn passed(state: &Path) {
    let _ = std::fs::remove_file(path(state));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probation(deadline: u64, starts: u32) -> Probation {
        Probation {
            from: "1.0.0".into(),
            to: "1.1.0".into(),
            deadline,
            starts,
        }
    }

    #[test]
    fn a_new_version_is_watched_until_its_deadline_or_too_many_starts() {
        assert_eq!(
            verdict(&probation(1000, 1), 400),
            Verdict::Watch(Duration::from_secs(600))
        );
        assert_eq!(verdict(&probation(1000, 1), 1000), Verdict::RollBackNow);
        assert_eq!(
            verdict(&probation(1000, MAX_STARTS + 1), 400),
            Verdict::RollBackNow
        );
    }

    #[test]
    fn starts_are_counted_and_only_for_the_version_it_was_written_for() {
        let dir = tempfile::tempdir().unwrap();
        begin(dir.path(), "1.0.0", "1.1.0").unwrap();
        assert_eq!(on_start(dir.path(), "1.1.0").unwrap().starts, 1);
        assert_eq!(on_start(dir.path(), "1.1.0").unwrap().starts, 2);
        // Rolled back (by hand, say): the old version finds a probation that is not its own.
        assert_eq!(on_start(dir.path(), "1.0.0"), None);
        assert!(!dir.path().join(FILE).exists());
        begin(dir.path(), "1.0.0", "1.1.0").unwrap();
        passed(dir.path());
        assert_eq!(on_start(dir.path(), "1.1.0"), None);
    }
}
