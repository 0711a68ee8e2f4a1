//! Dispatch of one parsed request to the function that performs it, and the error type every
//! action returns.

use serde_json::{Value, json};
use tether_common::control::{ErrorCode, Reply, RequestBody, ServerInfo, WhoAmI};

use super::action_store::ActionStore;
use super::{blocked, devices, groups, install, sessions, users, views};
use crate::agents::OnlineAgents;
use crate::events::EventBus;
use crate::relay::RelayBroker;
use crate::store::{StoreError, UserRecord};

/// What an action may touch. Built per request from `AppState` and the caller's freshly read record,
/// so a revoked right takes effect on the very next request.
pub struct ActionContext<'a> {
    /// The store as actions may use it: every write takes the proof of a rights check.
    pub store: ActionStore<'a>,
    pub events: &'a EventBus,
    pub agents: &'a OnlineAgents,
    pub relay: &'a RelayBroker,
    pub server_info: &'a ServerInfo,
    /// How the caller reached the server (for `.msh` files and invite links).
    pub site: &'a crate::install::Site,
    /// Password checks on `/control` (`changePassword`) share the login limits.
    pub login_limiter: &'a crate::auth::ratelimit::LoginLimiter,
    /// The caller's address, as the login limits count it.
    pub client_ip: std::net::IpAddr,
    pub caller: &'a UserRecord,
}

/// Why an action failed. The message goes to the client; `Internal` details go to the log only.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    RateLimited(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ActionError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ActionError::BadRequest(_) => ErrorCode::BadRequest,
            ActionError::Forbidden(_) => ErrorCode::Forbidden,
            ActionError::NotFound(_) => ErrorCode::NotFound,
            ActionError::Conflict(_) => ErrorCode::Conflict,
            ActionError::RateLimited(_) => ErrorCode::RateLimited,
            ActionError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// What the client is told.
    pub fn client_message(&self) -> String {
        match self {
            ActionError::Internal(_) => "internal server error (see the server log)".to_owned(),
            other => other.to_string(),
        }
    }

    pub fn into_reply(self, action: &str, id: u64) -> Reply {
        if let ActionError::Internal(detail) = &self {
            tracing::error!(action, "control: {detail}");
        }
        Reply::error(Some(action), Some(id), self.code(), self.client_message())
    }
}

impl From<StoreError> for ActionError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ActionError::Conflict(format!("{what} already exists")),
            StoreError::LastSiteAdmin => ActionError::Conflict(e.to_string()),
            other => ActionError::Internal(other.to_string()),
        }
    }
}

pub type ActionResult = Result<Value, ActionError>;

pub fn to_value<T: serde::Serialize>(value: &T) -> ActionResult {
    serde_json::to_value(value)
        .map_err(|e| ActionError::Internal(format!("serializing a reply: {e}")))
}

pub fn deleted(id: &str) -> Value {
    json!({ "deleted": id })
}

/// Performs one request on behalf of `ctx.caller`.
pub async fn perform(ctx: &ActionContext<'_>, body: RequestBody) -> ActionResult {
    match body {
        RequestBody::ServerInfo => to_value(ctx.server_info),
        RequestBody::WhoAmI => to_value(&WhoAmI {
            user: views::user_info(ctx.caller),
        }),
        RequestBody::ListGroups => groups::list(ctx).await,
        RequestBody::CreateGroup { name, description } => {
            groups::create(ctx, &name, &description).await
        }
        RequestBody::EditGroup {
            group,
            name,
            description,
        } => groups::edit(ctx, &group, name, description).await,
        RequestBody::DeleteGroup { group } => groups::delete(ctx, &group).await,
        RequestBody::SetGroupRights {
            group,
            user,
            rights,
        } => groups::set_rights(ctx, &group, &user, rights).await,
        RequestBody::ListDevices { group } => devices::list(ctx, group.as_ref()).await,
        RequestBody::RenameDevice { device, name } => devices::rename(ctx, &device, &name).await,
        RequestBody::DeleteDevice { device, block } => devices::delete(ctx, &device, block).await,
        RequestBody::ListUsers => users::list(ctx).await,
        RequestBody::AddUser {
            name,
            password,
            email,
            site_admin,
        } => users::add(ctx, &name, &password, email, site_admin).await,
        RequestBody::RemoveUser { user } => users::remove(ctx, &user).await,
        RequestBody::ResetPassword { user, password } => {
            users::reset_password(ctx, &user, &password).await
        }
        RequestBody::EditUser {
            user,
            email,
            site_admin,
        } => users::edit(ctx, &user, email, site_admin).await,
        RequestBody::ChangePassword {
            old_password,
            new_password,
        } => users::change_own_password(ctx, &old_password, &new_password).await,
        RequestBody::ListEvents {
            limit,
            group,
            device,
        } => super::audit::list(ctx, limit, group.as_ref(), device.as_ref()).await,
        RequestBody::CreateSession { device, kind } => sessions::create(ctx, &device, kind).await,
        RequestBody::AgentConfig { group } => install::agent_config(ctx, &group).await,
        RequestBody::CreateInvite {
            group,
            expires_minutes,
            max_devices,
        } => install::create_invite(ctx, &group, expires_minutes, max_devices).await,
        RequestBody::RotateEnrolmentKey { group } => {
            install::rotate_enrolment_key(ctx, &group).await
        }
        RequestBody::ListInvites { group } => install::list_invites(ctx, &group).await,
        RequestBody::RevokeInvite { invite } => install::revoke_invite(ctx, &invite).await,
        RequestBody::ListBlockedDevices { group } => blocked::list(ctx, &group).await,
        RequestBody::UnblockDevice { device } => blocked::unblock(ctx, &device).await,
    }
}
