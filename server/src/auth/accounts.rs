//! Creating accounts and changing passwords, shared by the HTTP API, `/control` and the
//! `--createaccount` / `--resetaccount` command line. Every change leaves an audit record.

use tether_common::control::{Event, EventRecord, UserInfo};
use tether_common::ids::UserId;

use super::hashing::{self, Busy};
use super::passwords::{self, PasswordRuleError};
use crate::clock::now_secs;
use crate::events::Audience;
use crate::state::AppState;
use crate::store::{NewEvent, Store, StoreError, UserRecord};

/// Longest account name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
const MAX_EMAIL_CHARS: usize = 254;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid account name: {0}")]
    InvalidName(&'static str),
    #[error("{0}")]
    BadPassword(#[from] PasswordRuleError),
    #[error("invalid e-mail address")]
    InvalidEmail,
    #[error("an account named \"{0}\" already exists")]
    Exists(String),
    #[error("the server already has an administrator account")]
    AlreadySetUp,
    #[error("there is no account named \"{0}\"")]
    NotFound(String),
    #[error("the current password is wrong")]
    WrongPassword,
    #[error(transparent)]
    Busy(#[from] Busy),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a new account name and returns it without surrounding spaces. Names are 1–64
/// characters, with no control characters and no `/` (ids appear in paths and URLs).
pub fn validate_name(name: &str) -> Result<&str, AccountError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AccountError::InvalidName("it is empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(AccountError::InvalidName("it is longer than 64 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(AccountError::InvalidName("it contains control characters"));
    }
    if name.contains('/') {
        return Err(AccountError::InvalidName("it contains '/'"));
    }
    Ok(name)
}

pub fn validate_email(email: Option<String>) -> Result<Option<String>, AccountError> {
    let Some(email) = email.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()) else {
        return Ok(None);
    };
    let well_formed = email.chars().count() <= MAX_EMAIL_CHARS
        && !email.chars().any(|c| c.is_control() || c.is_whitespace())
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
    if well_formed {
        Ok(Some(email))
    } else {
        Err(AccountError::InvalidEmail)
    }
}

/// Argon2 takes tens of milliseconds of CPU and 19 MiB: it runs behind the hashing gate.
pub async fn hash_password(password: &str) -> Result<String, AccountError> {
    Ok(hashing::hash(password).await?)
}

/// With no hash (unknown account) it spends the same time and fails.
pub async fn verify_password(password: &str, phc: Option<&str>) -> Result<bool, AccountError> {
    Ok(hashing::verify(password, phc).await?)
}

async fn new_record(
    name: &str,
    password: &str,
    email: Option<String>,
    site_admin: bool,
) -> Result<UserRecord, AccountError> {
    let name = validate_name(name)?;
    passwords::check_password_rules(password)?;
    let email = validate_email(email)?;
    let now = now_secs();
    Ok(UserRecord {
        id: UserId::from_name(name),
        name: name.to_owned(),
        email,
        password_hash: hash_password(password).await?,
        site_admin,
        created: now,
        password_changed: now,
        second_factor: None,
        pending_totp: None,
        passkeys: Vec::new(),
    })
}

/// Creates the site administrator, only while the server has no account at all.
pub async fn create_first_account(
    store: &dyn Store,
    name: &str,
    password: &str,
    email: Option<String>,
) -> Result<UserRecord, AccountError> {
    let user = new_record(name, password, email, true).await?;
    match store.create_first_user(&user).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Err(AccountError::AlreadySetUp),
        Err(e) => return Err(e.into()),
    }
    audit(
        store,
        &user,
        "account_created",
        format!("Administrator account {} created", user.name),
    )
    .await;
    Ok(user)
}

/// Creates an account. The first account on a server becomes the site administrator; later ones
/// are plain users (a site administrator can promote them).
pub async fn create_account(
    store: &dyn Store,
    name: &str,
    password: &str,
    email: Option<String>,
) -> Result<UserRecord, AccountError> {
    if store.user_count().await? == 0 {
        match create_first_account(store, name, password, email.clone()).await {
            // Someone else was first after all: this becomes an ordinary account.
            Err(AccountError::AlreadySetUp) => {}
            first => return first,
        }
    }
    let user = new_record(name, password, email, false).await?;
    match store.create_user(&user).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Err(AccountError::Exists(user.name)),
        Err(e) => return Err(e.into()),
    }
    audit(
        store,
        &user,
        "account_created",
        format!("Account {} created", user.name),
    )
    .await;
    Ok(user)
}

/// Sets a new password without knowing the old one (administrators, `--resetaccount`). Every
/// session of the account ends.
pub async fn reset_password(
    store: &dyn Store,
    name: &str,
    password: &str,
) -> Result<UserRecord, AccountError> {
    passwords::check_password_rules(password)?;
    let id = UserId::from_name(name);
    let Some(user) = store.user(&id).await? else {
        return Err(AccountError::NotFound(name.trim().to_owned()));
    };
    let user = set_password(store, user, password).await?;
    audit(
        store,
        &user,
        "password_reset",
        format!("Password of {} reset", user.name),
    )
    .await;
    Ok(user)
}

/// A user changing their own password: the old one must be right. Every session of the account
/// ends, including the caller's (the HTTP handler issues a new one).
pub async fn change_password(
    store: &dyn Store,
    user: &UserRecord,
    old_password: &str,
    new_password: &str,
) -> Result<UserRecord, AccountError> {
    if !verify_password(old_password, Some(&user.password_hash)).await? {
        return Err(AccountError::WrongPassword);
    }
    passwords::check_password_rules(new_password)?;
    // Re-read so that changes made since the caller loaded the record are not overwritten.
    let Some(current) = store.user(&user.id).await? else {
        return Err(AccountError::NotFound(user.name.clone()));
    };
    let user = set_password(store, current, new_password).await?;
    audit(
        store,
        &user,
        "password_changed",
        format!("{} changed their password", user.name),
    )
    .await;
    Ok(user)
}

async fn set_password(
    store: &dyn Store,
    mut user: UserRecord,
    password: &str,
) -> Result<UserRecord, AccountError> {
    user.password_hash = hash_password(password).await?;
    // Strictly later than the previous change, so that a session issued right after that change
    // (see `sessions::start_session`) still dies with this one, even within the same second.
    user.password_changed = now_secs().max(user.password_changed + 1);
    store.update_user(&user).await?;
    Ok(user)
}

/// The public view of an account (no password hash).
pub fn user_info(user: &UserRecord) -> UserInfo {
    UserInfo {
        id: user.id.clone(),
        name: user.name.clone(),
        email: user.email.clone(),
        site_admin: user.site_admin,
        created: user.created,
        second_factor: user.second_factor.is_some(),
        passkeys: user.passkeys.iter().map(|p| p.name.clone()).collect(),
    }
}

/// Writes an audit record and shows it live to site administrators and to the user it is about.
/// A failed write is logged, not returned: the action it records has already happened.
pub async fn log_event(state: &AppState, event: NewEvent) -> Option<EventRecord> {
    let audience = match &event.user {
        Some(user) => Audience::admins_only().with_user(user),
        None => Audience::admins_only(),
    };
    let kind = event.kind.clone();
    match state.store.append_event(event).await {
        Ok(record) => {
            state.events.publish(
                Event::Logged {
                    record: record.clone(),
                },
                audience,
            );
            Some(record)
        }
        Err(e) => {
            tracing::warn!(kind, error = %e, "could not write an audit record");
            None
        }
    }
}

async fn audit(store: &dyn Store, user: &UserRecord, kind: &str, message: String) {
    let event = NewEvent {
        kind: kind.to_owned(),
        user: Some(user.id.clone()),
        message,
        ..NewEvent::default()
    };
    if let Err(e) = store.append_event(event).await {
        tracing::warn!(kind, error = %e, "could not write an audit record");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(validate_name("  Alice ").unwrap(), "Alice");
        assert!(validate_name("   ").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("tab\there").is_err());
        assert!(validate_name(&"é".repeat(64)).is_ok());
        assert!(validate_name(&"é".repeat(65)).is_err());
    }

    #[test]
    fn emails() {
        assert_eq!(validate_email(None).unwrap(), None);
        assert_eq!(validate_email(Some("  ".into())).unwrap(), None);
        assert_eq!(
            validate_email(Some(" a@b.example ".into()))
                .unwrap()
                .as_deref(),
            Some("a@b.example")
        );
        assert!(validate_email(Some("nobody".into())).is_err());
        assert!(validate_email(Some("a b@c".into())).is_err());
        assert!(validate_email(Some("@c".into())).is_err());
    }
}
