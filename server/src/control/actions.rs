//! Dispatch of one parsed request to the function that performs it, and the error type every
//! action returns.

use serde_json::Value;
use tether_common::control::{Action, ErrorCode, Reply, RequestBody, ServerInfo, WhoAmI};

use super::action_store::ActionStore;
use super::{
    amt, blocked, cira, devices, groups, install, second_factor, sessions, shares, updates,
    user_chat, users, views,
};
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
    /// Intel AMT machines connected over CIRA (a device is online through either).
    pub(crate) amt: &'a crate::mps::AmtOnline,
    pub relay: &'a RelayBroker,
    pub server_info: &'a ServerInfo,
    /// The TURN server direct sessions may use (config `[turn]`).
    pub turn: Option<&'a crate::config::TurnConfig>,
    /// How the caller reached the server (for `.msh` files and invite links).
    pub site: &'a crate::install::Site,
    /// Password checks on `/control` (`changePassword`) share the login limits.
    pub login_limiter: &'a crate::auth::ratelimit::LoginLimiter,
    /// The server's settings (the passkeys' relying party is its certificate name).
    pub site_config: &'a crate::config::Config,
    /// Agent update campaigns.
    pub(crate) updates: &'a crate::updates::Updates,
    /// Passkey ceremonies in flight.
    pub(crate) passkeys: &'a crate::auth::passkeys::Ceremonies,
    /// The data folder (recordings are read from it).
    pub datapath: &'a std::path::Path,
    /// Who must sign in with a second factor (config `require_second_factor`).
    pub second_factor_policy: crate::config::SecondFactorPolicy,
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

/// Runs one action's handler result through its [`Action`] type: the compiler checks that the
/// handler produced `A::Output`, and only here does it become the reply's JSON.
fn answer<A: Action>(output: Result<A::Output, ActionError>) -> Result<Value, ActionError> {
    serde_json::to_value(output?)
        .map_err(|e| ActionError::Internal(format!("serializing a {} reply: {e}", A::NAME)))
}

/// The site requires a second factor of the caller, who has none yet.
fn second_factor_needed(ctx: &ActionContext<'_>) -> bool {
    ctx.second_factor_policy.covers(ctx.caller.site_admin) && !ctx.caller.has_second_factor()
}

/// Performs one request on behalf of `ctx.caller`; the result is the action's output as JSON.
pub async fn perform(ctx: &ActionContext<'_>, body: RequestBody) -> Result<Value, ActionError> {
    use tether_common::control as c;
    if second_factor_needed(ctx) && !second_factor::allowed_before_enrolment(&body) {
        return Err(ActionError::Forbidden(
            "this server requires two-factor sign-in: set it up in My account first".into(),
        ));
    }
    match body {
        RequestBody::GetServerInfo(c::GetServerInfo {}) => {
            answer::<c::GetServerInfo>(Ok(ctx.server_info.clone()))
        }
        RequestBody::GetWhoAmI(c::GetWhoAmI {}) => answer::<c::GetWhoAmI>(Ok(WhoAmI {
            user: views::user_info(ctx.caller),
            second_factor_needed: second_factor_needed(ctx),
        })),
        RequestBody::ListGroups(c::ListGroups {}) => {
            answer::<c::ListGroups>(groups::list(ctx).await)
        }
        RequestBody::CreateGroup(c::CreateGroup { name, description }) => {
            answer::<c::CreateGroup>(groups::create(ctx, &name, &description).await)
        }
        RequestBody::EditGroup(request) => answer::<c::EditGroup>(groups::edit(ctx, request).await),
        RequestBody::DeleteGroup(c::DeleteGroup { group }) => {
            answer::<c::DeleteGroup>(groups::delete(ctx, &group).await)
        }
        RequestBody::SetGroupRights(c::SetGroupRights {
            group,
            user,
            rights,
        }) => answer::<c::SetGroupRights>(groups::set_rights(ctx, &group, &user, rights).await),
        RequestBody::ListDevices(c::ListDevices { group }) => {
            answer::<c::ListDevices>(devices::list(ctx, group.as_ref()).await)
        }
        RequestBody::RenameDevice(c::RenameDevice { device, name }) => {
            answer::<c::RenameDevice>(devices::rename(ctx, &device, &name).await)
        }
        RequestBody::UninstallAgent(c::UninstallAgent { device }) => {
            answer::<c::UninstallAgent>(devices::uninstall_agent(ctx, &device).await)
        }
        RequestBody::GetAgentUpdates(c::GetAgentUpdates {}) => {
            answer::<c::GetAgentUpdates>(updates::status(ctx).await)
        }
        RequestBody::StartAgentUpdate(request) => {
            answer::<c::StartAgentUpdate>(updates::start(ctx, request).await)
        }
        RequestBody::PauseAgentUpdate(c::PauseAgentUpdate {}) => {
            answer::<c::PauseAgentUpdate>(updates::pause(ctx).await)
        }
        RequestBody::ResumeAgentUpdate(c::ResumeAgentUpdate {}) => {
            answer::<c::ResumeAgentUpdate>(updates::resume(ctx).await)
        }
        RequestBody::CancelAgentUpdate(c::CancelAgentUpdate {}) => {
            answer::<c::CancelAgentUpdate>(updates::cancel(ctx).await)
        }
        RequestBody::ListChatPeers(c::ListChatPeers {}) => {
            answer::<c::ListChatPeers>(user_chat::list_peers(ctx).await)
        }
        RequestBody::InviteChat(c::InviteChat { user }) => {
            answer::<c::InviteChat>(user_chat::invite(ctx, &user).await)
        }
        RequestBody::DeclineChat(c::DeclineChat { invitation }) => {
            answer::<c::DeclineChat>(user_chat::decline(ctx, &invitation).await)
        }
        RequestBody::RollbackAgent(c::RollbackAgent { device }) => {
            answer::<c::RollbackAgent>(updates::roll_back(ctx, &device).await)
        }
        RequestBody::DeleteDevice(c::DeleteDevice { device, block }) => {
            answer::<c::DeleteDevice>(devices::delete(ctx, &device, block).await)
        }
        RequestBody::ListUsers(c::ListUsers {}) => answer::<c::ListUsers>(users::list(ctx).await),
        RequestBody::AddUser(c::AddUser {
            name,
            password,
            email,
            site_admin,
        }) => answer::<c::AddUser>(users::add(ctx, &name, &password, email, site_admin).await),
        RequestBody::RemoveUser(c::RemoveUser { user }) => {
            answer::<c::RemoveUser>(users::remove(ctx, &user).await)
        }
        RequestBody::ResetPassword(c::ResetPassword { user, password }) => {
            answer::<c::ResetPassword>(users::reset_password(ctx, &user, &password).await)
        }
        RequestBody::EditUser(c::EditUser {
            user,
            email,
            site_admin,
        }) => answer::<c::EditUser>(users::edit(ctx, &user, email, site_admin).await),
        RequestBody::ChangePassword(c::ChangePassword {
            old_password,
            new_password,
        }) => answer::<c::ChangePassword>(
            users::change_own_password(ctx, &old_password, &new_password).await,
        ),
        RequestBody::BeginTotp(c::BeginTotp {}) => {
            answer::<c::BeginTotp>(second_factor::begin(ctx).await)
        }
        RequestBody::ConfirmTotp(c::ConfirmTotp { code }) => {
            answer::<c::ConfirmTotp>(second_factor::confirm(ctx, &code).await)
        }
        RequestBody::DisableTotp(c::DisableTotp { code }) => {
            answer::<c::DisableTotp>(second_factor::disable(ctx, &code).await)
        }
        RequestBody::NewBackupCodes(c::NewBackupCodes { code }) => {
            answer::<c::NewBackupCodes>(second_factor::new_backup_codes(ctx, &code).await)
        }
        RequestBody::BeginPasskey(c::BeginPasskey { name }) => {
            answer::<c::BeginPasskey>(second_factor::begin_passkey(ctx, &name).await)
        }
        RequestBody::FinishPasskey(c::FinishPasskey { name, credential }) => {
            answer::<c::FinishPasskey>(second_factor::finish_passkey(ctx, &name, credential).await)
        }
        RequestBody::RemovePasskey(c::RemovePasskey { name }) => {
            answer::<c::RemovePasskey>(second_factor::remove_passkey(ctx, &name).await)
        }
        RequestBody::ResetSecondFactor(c::ResetSecondFactor { user }) => {
            answer::<c::ResetSecondFactor>(second_factor::reset(ctx, &user).await)
        }
        RequestBody::CreateShare(c::CreateShare {
            device,
            kind,
            minutes,
            single_use,
            label,
        }) => answer::<c::CreateShare>(
            shares::create(ctx, &device, kind, minutes, single_use, &label).await,
        ),
        RequestBody::ListShares(c::ListShares { device }) => {
            answer::<c::ListShares>(shares::list(ctx, device.as_ref()).await)
        }
        RequestBody::RevokeShare(c::RevokeShare { share }) => {
            answer::<c::RevokeShare>(shares::revoke(ctx, &share).await)
        }
        RequestBody::ListRecordings(c::ListRecordings { device }) => answer::<c::ListRecordings>(
            crate::relay::recordings::list(
                ctx.store.raw_store(),
                ctx.datapath,
                ctx.caller,
                device.as_ref(),
            )
            .await
            .map_err(|e| ActionError::Internal(format!("reading the recordings: {e}"))),
        ),
        RequestBody::ListEvents(request) => {
            answer::<c::ListEvents>(super::audit::list(ctx, request).await)
        }
        RequestBody::CreateSession(c::CreateSession { device, kind }) => {
            answer::<c::CreateSession>(sessions::create(ctx, &device, kind).await)
        }
        RequestBody::GetAgentConfig(c::GetAgentConfig { group }) => {
            answer::<c::GetAgentConfig>(install::agent_config(ctx, &group).await)
        }
        RequestBody::CreateInvite(c::CreateInvite {
            group,
            expires_minutes,
            max_devices,
        }) => answer::<c::CreateInvite>(
            install::create_invite(ctx, &group, expires_minutes, max_devices).await,
        ),
        RequestBody::SetAmtAdmin(c::SetAmtAdmin {
            device,
            user,
            password,
        }) => answer::<c::SetAmtAdmin>(amt::set_admin(ctx, &device, &user, &password).await),
        RequestBody::AmtPower(c::AmtPower { device, power }) => {
            answer::<c::AmtPower>(amt::power(ctx, &device, power).await)
        }
        RequestBody::OpenAmtWeb(c::OpenAmtWeb { device }) => {
            answer::<c::OpenAmtWeb>(amt::open_web(ctx, &device).await)
        }
        RequestBody::CreateCiraLogin(c::CreateCiraLogin { group }) => {
            answer::<c::CreateCiraLogin>(cira::create_login(ctx, &group).await)
        }
        RequestBody::RotateEnrolmentKey(c::RotateEnrolmentKey { group }) => {
            answer::<c::RotateEnrolmentKey>(install::rotate_enrolment_key(ctx, &group).await)
        }
        RequestBody::ImportEnrolmentKey(c::ImportEnrolmentKey { group, mesh_id }) => {
            answer::<c::ImportEnrolmentKey>(
                install::import_enrolment_key(ctx, &group, &mesh_id).await,
            )
        }
        RequestBody::ListInvites(c::ListInvites { group }) => {
            answer::<c::ListInvites>(install::list_invites(ctx, &group).await)
        }
        RequestBody::RevokeInvite(c::RevokeInvite { invite }) => {
            answer::<c::RevokeInvite>(install::revoke_invite(ctx, &invite).await)
        }
        RequestBody::ListBlockedDevices(c::ListBlockedDevices { group }) => {
            answer::<c::ListBlockedDevices>(blocked::list(ctx, &group).await)
        }
        RequestBody::UnblockDevice(c::UnblockDevice { device }) => {
            answer::<c::UnblockDevice>(blocked::unblock(ctx, &device).await)
        }
    }
}
