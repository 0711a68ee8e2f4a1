//! Which device group a CIRA login belongs to. The user name picks the group (each group's is
//! unique: `control/cira.rs`); the password is checked against its argon2id hash on the shared
//! hashing threads, so a flood of logins cannot take more CPU than password logins can.

use tether_common::apf::Password;

use crate::store::{GroupRecord, Store};

/// Why a login was refused (for the log: the machine is told only "failure").
#[derive(Debug, thiserror::Error)]
pub(super) enum LoginRefused {
    #[error("no device group has the CIRA user {0:?}")]
    UnknownUser(String),
    #[error("wrong CIRA password for user {0:?}")]
    WrongPassword(String),
    #[error("cannot check the login: {0}")]
    Unavailable(String),
}

/// The group whose CIRA login this is.
pub(super) async fn check(
    store: &dyn Store,
    user: &str,
    password: &Password,
) -> Result<GroupRecord, LoginRefused> {
    let groups = store
        .groups()
        .await
        .map_err(|e| LoginRefused::Unavailable(e.to_string()))?;
    let group = groups
        .into_iter()
        .find(|group| group.cira.as_ref().is_some_and(|cira| cira.user == user));
    let hash = group
        .as_ref()
        .and_then(|group| group.cira.as_ref())
        .map(|cira| cira.password_hash.as_str());
    // An unknown user costs the same hashing time as a known one.
    let verified = crate::auth::accounts::verify_password(&password.0, hash)
        .await
        .map_err(|e| LoginRefused::Unavailable(e.to_string()))?;
    match (group, verified) {
        (Some(group), true) => Ok(group),
        (Some(_), false) => Err(LoginRefused::WrongPassword(user.to_owned())),
        (None, _) => Err(LoginRefused::UnknownUser(user.to_owned())),
    }
}
