//! Two-factor sign-in on `/control` (`auth/second_factor.rs` has the codes themselves): setting it
//! up for oneself (`beginTotp`, `confirmTotp`), new backup codes, turning it off with a code, and
//! a site administrator turning it off for someone who lost their phone. Every change is in the
//! audit log. Codes typed here spend the same login budget as `/api/login`: a stolen cookie
//! cannot be used to guess them.
//!
//! The site policy (`require_second_factor`) is enforced in [`allowed_before_enrolment`]: an
//! account it covers that has no second factor may only set one up.

use tether_common::control::{BackupCodes, Event, RequestBody, TotpSetup, UserInfo};
use tether_common::ids::UserId;

use super::access::{myself, require_site_admin};
use super::actions::{ActionContext, ActionError};
use super::audit::{Subject, record};
use crate::auth::accounts::user_info;
use crate::auth::passkeys::{MAX_PASSKEYS, relying_party};
use crate::auth::second_factor::{self as codes, Verdict};
use crate::clock::now_secs;
use crate::events::Audience;
use crate::store::{SecondFactor, StoredPasskey};

/// What an account that must set up a second factor and has none may still do.
pub(super) fn allowed_before_enrolment(body: &RequestBody) -> bool {
    matches!(
        body,
        RequestBody::GetWhoAmI(_)
            | RequestBody::GetServerInfo(_)
            | RequestBody::BeginTotp(_)
            | RequestBody::ConfirmTotp(_)
            | RequestBody::BeginPasskey(_)
            | RequestBody::FinishPasskey(_)
            | RequestBody::ChangePassword(_)
    )
}

pub(super) async fn begin(ctx: &ActionContext<'_>) -> Result<TotpSetup, ActionError> {
    let me = myself(ctx);
    if ctx.caller.second_factor.is_some() {
        return Err(ActionError::Conflict(
            "two-factor sign-in is on already; turn it off first to change the app".into(),
        ));
    }
    let secret = codes::new_secret();
    let vault = ctx.store.totp_vault().await?;
    ctx.store
        .set_own_pending_totp(&me, Some(vault.seal_bytes(&secret)))
        .await?;
    let setup = codes::enrolment(&secret, &ctx.caller.name, &ctx.server_info.name);
    Ok(TotpSetup {
        secret: setup.secret_base32,
        uri: setup.uri,
        qr_svg: setup.qr_svg,
    })
}

pub(super) async fn confirm(
    ctx: &ActionContext<'_>,
    code: &str,
) -> Result<BackupCodes, ActionError> {
    let me = myself(ctx);
    let attempt = spend_budget(ctx)?;
    let vault = ctx.store.totp_vault().await?;
    let secret = ctx
        .caller
        .pending_totp
        .as_deref()
        .and_then(|sealed| vault.open_bytes(sealed))
        .ok_or_else(|| ActionError::Conflict("set it up first (beginTotp)".into()))?;
    let now = u64::try_from(now_secs()).unwrap_or_default();
    let Some(step) = codes::totp_step(&secret, code, now) else {
        tracing::info!(user = %ctx.caller.id, "control: wrong code confirming TOTP");
        return Err(ActionError::BadRequest(
            "that is not the app's current code; check the phone's clock".into(),
        ));
    };
    ctx.login_limiter.succeeded(attempt);
    let (shown, stored) = codes::new_backup_codes();
    let factor = SecondFactor {
        sealed_secret: vault.seal_bytes(&secret),
        last_step: step,
        backup_codes: stored,
        enabled: now_secs(),
    };
    let user = ctx.store.set_own_second_factor(&me, Some(factor)).await?;
    changed(
        ctx,
        &user,
        "second_factor_on",
        format!("{} turned two-factor sign-in on", user.name),
    )
    .await;
    Ok(BackupCodes { codes: shown })
}

pub(super) async fn disable(ctx: &ActionContext<'_>, code: &str) -> Result<UserInfo, ActionError> {
    let me = myself(ctx);
    check_own_code(ctx, code).await?;
    let user = ctx.store.set_own_second_factor(&me, None).await?;
    changed(
        ctx,
        &user,
        "second_factor_off",
        format!("{} turned two-factor sign-in off", user.name),
    )
    .await;
    Ok(user_info(&user))
}

pub(super) async fn new_backup_codes(
    ctx: &ActionContext<'_>,
    code: &str,
) -> Result<BackupCodes, ActionError> {
    let me = myself(ctx);
    let mut factor = check_own_code(ctx, code).await?;
    let (shown, stored) = codes::new_backup_codes();
    factor.backup_codes = stored;
    let user = ctx.store.set_own_second_factor(&me, Some(factor)).await?;
    changed(
        ctx,
        &user,
        "backup_codes_renewed",
        format!("{} made new backup codes", user.name),
    )
    .await;
    Ok(BackupCodes { codes: shown })
}

pub(super) async fn reset(ctx: &ActionContext<'_>, id: &UserId) -> Result<UserInfo, ActionError> {
    let admin = require_site_admin(ctx.caller)?;
    let user = ctx
        .store
        .reset_second_factor(&admin, id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("no user {id}")))?;
    let message = format!(
        "{} turned two-factor sign-in off for {}",
        ctx.caller.name, user.name
    );
    changed(ctx, &user, "second_factor_reset", message).await;
    Ok(user_info(&user))
}

/// A code for the caller's own second factor, spent; the factor as it is after.
async fn check_own_code(ctx: &ActionContext<'_>, code: &str) -> Result<SecondFactor, ActionError> {
    if ctx.caller.second_factor.is_none() {
        return Err(ActionError::Conflict("two-factor sign-in is not on".into()));
    }
    let attempt = spend_budget(ctx)?;
    match ctx.store.verify_own_code(&myself(ctx), code).await? {
        Verdict::Accepted(user, _) => {
            ctx.login_limiter.succeeded(attempt);
            user.second_factor
                .ok_or_else(|| ActionError::Conflict("two-factor sign-in is not on".into()))
        }
        Verdict::Wrong => {
            tracing::info!(user = %ctx.caller.id, "control: wrong second-factor code");
            Err(ActionError::BadRequest("wrong or already used code".into()))
        }
    }
}

/// One try of the caller's login budget (a right answer gives it back).
fn spend_budget(ctx: &ActionContext<'_>) -> Result<crate::auth::ratelimit::Attempt, ActionError> {
    ctx.login_limiter
        .begin(ctx.client_ip, ctx.caller.id.as_str())
        .map_err(|retry| {
            ActionError::RateLimited(format!(
                "Too many wrong codes; try again in {} minutes.",
                retry.minutes()
            ))
        })
}

/// Tells the account's consoles and site administrators, and writes the audit record.
async fn changed(
    ctx: &ActionContext<'_>,
    user: &crate::store::UserRecord,
    kind: &str,
    message: String,
) {
    ctx.events.publish(
        Event::UserChanged {
            user: user_info(user),
        },
        Audience::admins_only().with_user(&user.id),
    );
    let subject = Subject {
        user: Some(&user.id),
        ..Subject::default()
    };
    record(
        ctx,
        kind,
        subject,
        message,
        Audience::admins_only().with_user(&user.id),
    )
    .await;
}

pub(super) async fn begin_passkey(
    ctx: &ActionContext<'_>,
    name: &str,
) -> Result<tether_common::control::PasskeyOptions, ActionError> {
    let name = passkey_name(name)?;
    if ctx.caller.passkeys.len() >= MAX_PASSKEYS {
        return Err(ActionError::Conflict(format!(
            "an account keeps at most {MAX_PASSKEYS} passkeys; remove one first"
        )));
    }
    if ctx.caller.passkeys.iter().any(|p| p.name == name) {
        return Err(ActionError::Conflict(format!(
            "you have a passkey called {name} already"
        )));
    }
    let rp = relying_party(ctx.site_config).map_err(|e| ActionError::Conflict(e.to_string()))?;
    let options = ctx
        .passkeys
        .begin_registration(&rp, &ctx.caller.id, &ctx.caller.name, &ctx.caller.passkeys)
        .map_err(|e| ActionError::Conflict(e.to_string()))?;
    Ok(tether_common::control::PasskeyOptions { options })
}

pub(super) async fn finish_passkey(
    ctx: &ActionContext<'_>,
    name: &str,
    credential: serde_json::Value,
) -> Result<UserInfo, ActionError> {
    let name = passkey_name(name)?;
    let rp = relying_party(ctx.site_config).map_err(|e| ActionError::Conflict(e.to_string()))?;
    let passkey = ctx
        .passkeys
        .finish_registration(&rp, &ctx.caller.id, credential)
        .map_err(|e| {
            tracing::info!(user = %ctx.caller.id, "control: passkey registration refused: {e}");
            ActionError::BadRequest(e.to_string())
        })?;
    let stored = StoredPasskey {
        name: name.clone(),
        created: now_secs(),
        passkey,
    };
    let user = ctx
        .store
        .change_own_passkeys(&myself(ctx), move |keys| keys.push(stored))
        .await?;
    changed(
        ctx,
        &user,
        "passkey_added",
        format!("{} added the passkey {name}", user.name),
    )
    .await;
    Ok(user_info(&user))
}

pub(super) async fn remove_passkey(
    ctx: &ActionContext<'_>,
    name: &str,
) -> Result<UserInfo, ActionError> {
    if !ctx.caller.passkeys.iter().any(|p| p.name == name) {
        return Err(ActionError::NotFound(format!(
            "you have no passkey called {name}"
        )));
    }
    let gone = name.to_owned();
    let user = ctx
        .store
        .change_own_passkeys(&myself(ctx), move |keys| keys.retain(|p| p.name != gone))
        .await?;
    changed(
        ctx,
        &user,
        "passkey_removed",
        format!("{} removed the passkey {name}", user.name),
    )
    .await;
    Ok(user_info(&user))
}

/// A passkey's name: 1 to 64 characters, no control characters.
fn passkey_name(name: &str) -> Result<String, ActionError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ActionError::BadRequest(
            "a passkey's name is 1 to 64 characters without control characters".into(),
        ));
    }
    Ok(name.to_owned())
}
