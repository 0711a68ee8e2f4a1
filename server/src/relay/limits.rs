//! How much of the relay one user or one device may hold, and how long a session may last.
//!
//! The pending table (`MAX_PENDING`) is shared by the whole server, and every minted session
//! makes the agent open a connection. So each user, and each device, gets a quota of sessions
//! that are open or still waiting to pair; the per-user quota is below the per-device one, so a
//! single user cannot take every slot of a device they may reach.

use std::time::Duration;

use tether_common::ids::{DeviceId, UserId};

use crate::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayLimits {
    pub per_user: usize,
    pub per_device: usize,
    /// `None`: a session lasts as long as its login session.
    pub max_session: Option<Duration>,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits::from_config(&Config::default())
    }
}

/// A user's or a device's sessions that are open or waiting to pair, right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenSessions {
    pub of_user: usize,
    pub on_device: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaExceeded {
    #[error(
        "{user} already has {limit} relay sessions open or waiting to connect (the most one user may have); close one, or wait until unused ones expire"
    )]
    User { user: UserId, limit: usize },
    #[error(
        "device {device} already has {limit} relay sessions open or waiting to connect; try again later"
    )]
    Device { device: DeviceId, limit: usize },
}

impl RelayLimits {
    pub fn from_config(config: &Config) -> RelayLimits {
        RelayLimits {
            per_user: config.relay_sessions_per_user as usize,
            per_device: config.relay_sessions_per_device as usize,
            max_session: match config.relay_max_session_secs {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
        }
    }

    /// Whether one more session for `user` on `device` fits, given what they hold now.
    pub fn admit(
        &self,
        open: OpenSessions,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<(), QuotaExceeded> {
        if open.of_user >= self.per_user {
            return Err(QuotaExceeded::User {
                user: user.clone(),
                limit: self.per_user,
            });
        }
        if open.on_device >= self.per_device {
            return Err(QuotaExceeded::Device {
                device: device.clone(),
                limit: self.per_device,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_quota_is_checked_and_named() {
        let limits = RelayLimits {
            per_user: 2,
            per_device: 3,
            max_session: None,
        };
        let (user, device) = (UserId::from("alice"), DeviceId::from("d"));
        let open = |of_user, on_device| OpenSessions { of_user, on_device };
        assert_eq!(limits.admit(open(1, 2), &user, &device), Ok(()));
        let full_user = limits.admit(open(2, 0), &user, &device).unwrap_err();
        assert!(full_user.to_string().starts_with("alice already has 2 "));
        assert!(matches!(
            limits.admit(open(0, 3), &user, &device),
            Err(QuotaExceeded::Device { limit: 3, .. })
        ));
    }

    #[test]
    fn zero_seconds_means_no_limit_of_its_own() {
        let config = Config {
            relay_max_session_secs: 90,
            ..Config::default()
        };
        assert_eq!(
            RelayLimits::from_config(&config).max_session,
            Some(Duration::from_secs(90))
        );
        let defaults = RelayLimits::default();
        assert_eq!(defaults.max_session, None);
        assert!(defaults.per_user < defaults.per_device);
    }
}
