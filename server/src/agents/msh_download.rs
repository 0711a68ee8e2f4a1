//! `GET /api/groups/{id}/agent.msh`: the install policy an agent needs to join a group, in
//! MeshCentral's `.msh` format. Its `MeshID` is the group's enrolment key (`enrolment.rs`), so
//! anyone holding it can enrol devices there: only users who may manage the group's devices get it.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tether_common::ids::GroupId;
use tether_common::msh::{MESH_TYPE_AGENT, Msh};
use tether_common::rights::Rights;

use super::enrolment::{EnrolmentKey, group_key};
use crate::auth::sessions::AuthUser;
use crate::config::Config;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::store::{GroupRecord, UserRecord};

pub(super) async fn get_agent_msh(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let group = match enrollable_group(&state, &user, &GroupId(id)).await {
        Ok(group) => group,
        Err(refusal) => return refusal,
    };
    let key = match group_key(state.store.as_ref(), &group.id).await {
        Ok(key) => key,
        Err(e) => {
            tracing::error!(group = %group.id, "enrolment: the group's enrolment key: {e}");
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Database error.",
            )
            .into_response();
        }
    };
    let authority = server_authority(&headers, &state.config);
    msh_response(group_msh(&group, &key, state.certs.agent_server_id(), &authority).to_string())
}

/// The group `id` if `user` may enrol devices in it; otherwise the HTTP answer to give (a group
/// the caller cannot see is reported like one that does not exist).
pub(crate) async fn enrollable_group(
    state: &AppState,
    user: &UserRecord,
    id: &GroupId,
) -> Result<GroupRecord, Response> {
    match state.store.group(id).await {
        Ok(Some(group)) if may_enrol(user, &group) => Ok(group),
        Ok(Some(group)) if can_see(user, &group) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "You may not add devices to this group.",
        )
        .into_response()),
        Ok(_) => Err(
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such device group.")
                .into_response(),
        ),
        Err(e) => {
            tracing::error!("enrolment: reading group {id}: {e}");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Database error.",
            )
            .into_response())
        }
    }
}

/// The `.msh` that enrols an agent in `group` with enrolment key `key` (its `MeshID`), dialling
/// `authority` (`host:port`) and pinning the agent-server identity `server_id`.
pub(crate) fn group_msh(
    group: &GroupRecord,
    key: &EnrolmentKey,
    server_id: [u8; 48],
    authority: &str,
) -> Msh {
    Msh {
        mesh_name: group.name.replace(['\r', '\n'], " "),
        mesh_type: MESH_TYPE_AGENT,
        mesh_id: key.bytes(),
        server_id,
        mesh_server: format!("wss://{authority}/agent.ashx"),
        extra: Vec::new(),
    }
}

/// A `.msh` file as a download.
pub(crate) fn msh_response(text: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"meshagent.msh\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}

fn can_see(user: &UserRecord, group: &GroupRecord) -> bool {
    user.site_admin || group.members.get(&user.id).is_some_and(|r| !r.is_empty())
}

/// Whether `user` may enrol devices in `group`: site admins, and members who manage the group or
/// its devices. Every way to get a group's `.msh` (download, `agentConfig`, invites) asks this.
pub(crate) fn may_enrol(user: &UserRecord, group: &GroupRecord) -> bool {
    if user.site_admin {
        return true;
    }
    let rights = group.members.get(&user.id).copied().unwrap_or(Rights::NONE);
    rights.contains(Rights::MANAGE_GROUP) || rights.contains(Rights::MANAGE_DEVICES)
}

/// `host:port` agents should dial: the one the browser used (it reached us), else the configured
/// name and port. Anything but host characters is refused, so the header cannot inject lines.
pub(crate) fn server_authority(headers: &HeaderMap, config: &Config) -> String {
    let from_request = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        });
    match from_request {
        Some(host) => host.to_owned(),
        None => format!("{}:{}", config.cert, config.port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_host_header_names_the_server_unless_it_is_odd() {
        let config = Config {
            cert: "tether.example".into(),
            port: 8443,
            ..Config::default()
        };
        let mut headers = HeaderMap::new();
        assert_eq!(server_authority(&headers, &config), "tether.example:8443");
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:5000"));
        assert_eq!(server_authority(&headers, &config), "127.0.0.1:5000");
        headers.insert(header::HOST, HeaderValue::from_static("evil/path?x"));
        assert_eq!(server_authority(&headers, &config), "tether.example:8443");
    }
}
