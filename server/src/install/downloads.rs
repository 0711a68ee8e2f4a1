//! The enrolment downloads:
//!
//! - `GET /api/root.crt`: the root certificate (public);
//! - `GET /api/groups/{id}/tether-agent`: the agent binary, for a logged-in user who may enrol
//!   devices in the group (the same rule as its `agent.msh`);
//! - `GET /api/invite/{token}/{agent.msh | tether-agent | install.sh}`: the same without a login,
//!   the invite token being the credential. A bad, tampered, expired, revoked or used-up invite
//!   gets a plain 404 (the reason goes to the log, never the token); each use is an audit record
//!   for the group. The `.msh` carries the invite's own enrolment key.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tether_common::control::Event;
use tether_common::ids::GroupId;
use tether_common::rights::Rights;

use super::invite;
use super::script::{self, ScriptInput};
use super::{Site, binary};
use crate::agents::{EnrolmentKey, enrollable_group, group_msh, msh_response};
use crate::auth::sessions::AuthUser;
use crate::clock::{now_millis, now_secs};
use crate::events::Audience;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::store::{GroupRecord, InviteRecord, NewEvent};

pub(super) const MSH_FILE: &str = "agent.msh";
pub(super) const AGENT_FILE: &str = "tether-agent";
pub(super) const SCRIPT_FILE: &str = "install.sh";

pub(super) async fn get_root_cert(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        state.certs.root.cert_pem.clone(),
    )
        .into_response()
}

pub(super) async fn get_group_agent_binary(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Response {
    match enrollable_group(&state, &user, &GroupId(id)).await {
        Ok(_) => binary::response(&state.config).await,
        Err(refusal) => refusal,
    }
}

pub(super) async fn get_invite_file(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((token, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if ![MSH_FILE, AGENT_FILE, SCRIPT_FILE].contains(&file.as_str()) {
        return not_found();
    }
    let (invite, group) = match invite::resolve(state.store.as_ref(), &token, now_secs()).await {
        Ok(found) => found,
        Err(invite::InviteError::Store(e)) => {
            tracing::error!("invite: reading the store: {e}");
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Database error.",
            )
            .into_response();
        }
        Err(e) => {
            tracing::warn!(peer = %peer.ip(), file, "invite: refused a download: {e}");
            return not_found();
        }
    };
    let site = Site::of_request(&state, &headers);
    let response = match file.as_str() {
        MSH_FILE => match EnrolmentKey::from_hex(&invite.enrolment_key) {
            Some(key) => msh_response(
                group_msh(&group, &key, site.agent_server_id, &site.authority).to_string(),
            ),
            None => {
                tracing::error!(
                    invite = invite.id,
                    "invite: its stored enrolment key is unreadable"
                );
                not_found()
            }
        },
        AGENT_FILE => binary::response(&state.config).await,
        _ => script_response(&site, &token, &invite, &group),
    };
    if response.status().is_success() {
        record_use(&state, &invite, &group, &file, peer).await;
    }
    response
}

fn script_response(
    site: &Site,
    token: &str,
    invite: &InviteRecord,
    group: &GroupRecord,
) -> Response {
    let rendered = script::render(&ScriptInput {
        authority: &site.authority,
        token,
        group_name: &group.name,
        expires: invite.expires,
        root_cert_pem: &site.root_cert_pem,
    });
    let text = match rendered {
        Ok(text) => text,
        Err(e) => {
            tracing::error!("invite: cannot write install.sh: {e}");
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "The server cannot write an install script for this address.",
            )
            .into_response();
        }
    };
    (
        [
            (header::CONTENT_TYPE, "text/x-shellscript; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"install.sh\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}

/// One audit record per download, readable by the group's EVENTS holders.
async fn record_use(
    state: &AppState,
    invite: &InviteRecord,
    group: &GroupRecord,
    file: &str,
    peer: SocketAddr,
) {
    let event = NewEvent {
        time: now_millis(),
        kind: "invite_used".into(),
        user: None,
        group: Some(group.id.clone()),
        device: None,
        message: format!(
            "Invite {} (by {}) to device group {} used from {} to download {file}",
            invite.id,
            invite.created_by,
            group.name,
            peer.ip()
        ),
    };
    match state.store.append_event(event).await {
        Ok(record) => state.events.publish(
            Event::Logged { record },
            Audience::group(group, Rights::EVENTS),
        ),
        Err(e) => tracing::error!("invite: could not write the audit record of a use: {e}"),
    }
}

fn not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "This invite link is not valid: it expired, was mistyped, or was withdrawn.",
    )
    .into_response()
}
