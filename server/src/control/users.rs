//! Account actions. All but `changePassword` are for site administrators. Validation, hashing and
//! the audit records of account creation and password changes live in `auth::accounts`.

use tether_common::control::{Deleted, Event, PasswordChanged, UserInfo};
use tether_common::ids::UserId;

use super::access::{myself, require_site_admin};
use super::actions::{ActionContext, ActionError};
use super::audit::{Subject, record};
use super::views::user_info;
use crate::auth::accounts::{self, AccountError};
use crate::events::Audience;
use crate::store::UserRecord;

impl From<AccountError> for ActionError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::InvalidName(_)
            | AccountError::BadPassword(_)
            | AccountError::InvalidEmail => ActionError::BadRequest(e.to_string()),
            AccountError::Exists(_) | AccountError::AlreadySetUp => {
                ActionError::Conflict(e.to_string())
            }
            AccountError::NotFound(_) => ActionError::NotFound(e.to_string()),
            AccountError::WrongPassword => ActionError::Forbidden(e.to_string()),
            AccountError::Busy(_) => ActionError::RateLimited(e.to_string()),
            AccountError::Store(store) => store.into(),
        }
    }
}

pub(super) async fn list(ctx: &ActionContext<'_>) -> Result<Vec<UserInfo>, ActionError> {
    require_site_admin(ctx.caller)?;
    let mut users: Vec<_> = ctx.store.users().await?.iter().map(user_info).collect();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(users)
}

pub(super) async fn add(
    ctx: &ActionContext<'_>,
    name: &str,
    password: &str,
    email: Option<String>,
    site_admin: bool,
) -> Result<UserInfo, ActionError> {
    let admin = require_site_admin(ctx.caller)?;
    let mut user = ctx
        .store
        .create_account(&admin, name, password, email)
        .await?;
    if site_admin && !user.site_admin {
        user.site_admin = true;
        ctx.store.update_user(&admin, &user).await?;
    }
    let info = user_info(&user);
    ctx.events.publish(
        Event::UserAdded { user: info.clone() },
        Audience::admins_only(),
    );
    Ok(info)
}

/// Nobody, not even a site admin removing themselves, may remove the last site administrator.
pub(super) async fn remove(
    ctx: &ActionContext<'_>,
    id: &UserId,
) -> Result<Deleted<UserId>, ActionError> {
    let admin = require_site_admin(ctx.caller)?;
    let target = existing_user(ctx, id).await?;
    if target.site_admin && site_admin_count(ctx).await? <= 1 {
        return Err(ActionError::Conflict(
            "the last site administrator cannot be removed".into(),
        ));
    }
    if !ctx.store.delete_user(&admin, id).await? {
        return Err(ActionError::NotFound(format!("no user {id}")));
    }
    // The removed user's own consoles hear it too, and close.
    ctx.events.publish(
        Event::UserRemoved { user: id.clone() },
        Audience::admins_only().with_user(id),
    );
    let message = format!("{} removed account {}", ctx.caller.name, target.name);
    record(
        ctx,
        "account_removed",
        Subject {
            user: Some(id),
            ..Subject::default()
        },
        message,
        Audience::admins_only(),
    )
    .await;
    Ok(Deleted {
        deleted: id.clone(),
    })
}

/// Every session of the account ends; its open consoles close when they hear `userChanged`.
pub(super) async fn reset_password(
    ctx: &ActionContext<'_>,
    id: &UserId,
    password: &str,
) -> Result<UserInfo, ActionError> {
    let admin = require_site_admin(ctx.caller)?;
    let target = existing_user(ctx, id).await?;
    let user = ctx
        .store
        .reset_password(&admin, &target.name, password)
        .await?;
    let info = user_info(&user);
    ctx.events.publish(
        Event::UserChanged { user: info.clone() },
        Audience::admins_only().with_user(id),
    );
    Ok(info)
}

/// Changes the e-mail address and/or the site-administrator flag; the last site administrator
/// keeps theirs.
pub(super) async fn edit(
    ctx: &ActionContext<'_>,
    id: &UserId,
    email: Option<String>,
    site_admin: Option<bool>,
) -> Result<UserInfo, ActionError> {
    let admin = require_site_admin(ctx.caller)?;
    let mut user = existing_user(ctx, id).await?;
    if let Some(email) = email {
        user.email = accounts::validate_email(Some(email))?;
    }
    if let Some(site_admin) = site_admin {
        if user.site_admin && !site_admin && site_admin_count(ctx).await? <= 1 {
            return Err(ActionError::Conflict(
                "the last site administrator must stay one".into(),
            ));
        }
        user.site_admin = site_admin;
    }
    ctx.store.update_user(&admin, &user).await?;
    let info = user_info(&user);
    ctx.events.publish(
        Event::UserChanged { user: info.clone() },
        Audience::admins_only().with_user(id),
    );
    let role = if user.site_admin {
        "site administrator"
    } else {
        "user"
    };
    let message = format!("{} edited account {} ({role})", ctx.caller.name, user.name);
    let subject = Subject {
        user: Some(id),
        ..Subject::default()
    };
    record(
        ctx,
        "account_changed",
        subject,
        message,
        Audience::admins_only().with_user(id),
    )
    .await;
    Ok(info)
}

/// The caller's own password. Their other sessions end (and their other consoles close); this
/// connection stays open, but the cookie it was opened with is void for new connections.
pub(super) async fn change_own_password(
    ctx: &ActionContext<'_>,
    old_password: &str,
    new_password: &str,
) -> Result<PasswordChanged, ActionError> {
    // The same budget as `/api/login` and `/api/password`: a stolen cookie must not become an
    // unlimited oracle for the password (nor a way to make the server hash without end).
    let attempt = ctx
        .login_limiter
        .begin(ctx.client_ip, ctx.caller.id.as_str())
        .map_err(|retry| {
            tracing::warn!(ip = %ctx.client_ip, user = %ctx.caller.id, "control: password change refused: too many failed attempts");
            ActionError::RateLimited(format!(
                "Too many wrong passwords; try again in {} minutes.",
                retry.minutes()
            ))
        })?;
    if !attempt.delay.is_zero() {
        tokio::time::sleep(attempt.delay).await;
    }
    let user = match ctx
        .store
        .change_own_password(&myself(ctx), old_password, new_password)
        .await
    {
        Ok(user) => user,
        Err(AccountError::WrongPassword) => {
            tracing::info!(ip = %ctx.client_ip, user = %ctx.caller.id, "control: wrong current password on password change");
            return Err(AccountError::WrongPassword.into());
        }
        Err(e) => {
            if matches!(e, AccountError::BadPassword(_)) {
                ctx.login_limiter.succeeded(attempt);
            }
            return Err(e.into());
        }
    };
    ctx.login_limiter.succeeded(attempt);
    ctx.events.publish(
        Event::UserChanged {
            user: user_info(&user),
        },
        Audience::admins_only().with_user(&user.id),
    );
    Ok(PasswordChanged {})
}

async fn existing_user(ctx: &ActionContext<'_>, id: &UserId) -> Result<UserRecord, ActionError> {
    ctx.store
        .user(id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("no user {id}")))
}

async fn site_admin_count(ctx: &ActionContext<'_>) -> Result<usize, ActionError> {
    Ok(ctx
        .store
        .users()
        .await?
        .iter()
        .filter(|u| u.site_admin)
        .count())
}
