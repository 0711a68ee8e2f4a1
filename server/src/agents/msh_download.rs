//! `GET /api/groups/{id}/agent.msh`: the install policy an agent needs to join a group, in
//! MeshCentral's `.msh` format. It names the group, so anyone holding it can enrol devices there:
//! only users who may manage the group's devices get it.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tether_common::ids::GroupId;
use tether_common::msh::{MESH_TYPE_AGENT, Msh};
use tether_common::rights::Rights;

use crate::auth::sessions::AuthUser;
use crate::config::Config;
use crate::state::AppState;
use crate::store::{GroupRecord, UserRecord};

pub async fn get_agent_msh(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let group = match state.store.group(&GroupId(id)).await {
        Ok(Some(group)) if may_enrol(&user, &group) != Rights::NONE => group,
        Ok(Some(group)) if can_see(&user, &group) => {
            return error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "You may not add devices to this group.",
            );
        }
        // A group the caller cannot see is reported like one that does not exist.
        Ok(_) => return error(StatusCode::NOT_FOUND, "not_found", "No such device group."),
        Err(e) => {
            tracing::error!("agent.msh: {e}");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Database error.",
            );
        }
    };
    let Some(mesh_id) = group.id.to_bytes() else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "This group has no MeshCentral-style id.",
        );
    };
    let msh = Msh {
        mesh_name: group.name.replace(['\r', '\n'], " "),
        mesh_type: MESH_TYPE_AGENT,
        mesh_id,
        server_id: state.certs.agent_server_id(),
        mesh_server: format!(
            "wss://{}/agent.ashx",
            server_authority(&headers, &state.config)
        ),
        extra: Vec::new(),
    };
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"meshagent.msh\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        msh.to_string(),
    )
        .into_response()
}

fn can_see(user: &UserRecord, group: &GroupRecord) -> bool {
    user.site_admin || group.members.get(&user.id).is_some_and(|r| !r.is_empty())
}

/// The rights that allow enrolling devices (managing the group or its devices); `NONE` if absent.
fn may_enrol(user: &UserRecord, group: &GroupRecord) -> Rights {
    if user.site_admin {
        return Rights::FULL;
    }
    let rights = group.members.get(&user.id).copied().unwrap_or(Rights::NONE);
    if rights.contains(Rights::MANAGE_GROUP) || rights.contains(Rights::MANAGE_DEVICES) {
        rights
    } else {
        Rights::NONE
    }
}

/// `host:port` agents should dial: the one the browser used (it reached us), else the configured
/// name and port. Anything but host characters is refused, so the header cannot inject lines.
fn server_authority(headers: &HeaderMap, config: &Config) -> String {
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

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": code, "message": message })),
    )
        .into_response()
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
