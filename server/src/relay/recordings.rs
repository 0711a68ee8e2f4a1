//! Reading recordings back (`recording.rs` writes them): the list a user may see, the download
//! (`GET /api/recordings/{id}`, the file as recorded, or `?format=asciicast` for a terminal
//! session), and their retention.
//!
//! Who may see a recording: whoever may read the audit log of the device's group (the EVENTS
//! right), and site administrators; a recording of a device that was removed since is theirs
//! alone. Every download is in the audit log.

use std::path::Path;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tether_common::control::RecordingInfo;
use tether_common::ids::DeviceId;
use tether_common::recording::{RecordingHeader, parse, to_asciicast};
use tether_common::relay::SessionKind;
use tether_common::rights::Rights;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

use super::recording::{EXTENSION, FOLDER, path_of};
use crate::auth::accounts::log_event;
use crate::auth::sessions::AuthUser;
use crate::control::rights_on;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::store::{NewEvent, Store, UserRecord};

/// Largest recording served as asciicast (it is converted in memory).
const MAX_CONVERTED: u64 = 256 * 1024 * 1024;

/// Whether `user` may see recordings of `device` (by id; `None` if it is gone).
async fn may_see(store: &dyn Store, user: &UserRecord, device: &DeviceId) -> bool {
    if user.site_admin {
        return true;
    }
    let Ok(Some(device)) = store.device(device).await else {
        return false;
    };
    match store.group(&device.group).await {
        Ok(Some(group)) => rights_on(user, &group).contains(Rights::EVENTS),
        _ => false,
    }
}

/// The header line of a recording file.
async fn header_of(path: &Path) -> Option<RecordingHeader> {
    let file = tokio::fs::File::open(path).await.ok()?;
    let mut line = String::new();
    tokio::io::BufReader::new(file)
        .take(8 * 1024)
        .read_line(&mut line)
        .await
        .ok()?;
    serde_json::from_str(line.trim_end()).ok()
}

/// Every recording `user` may see (of `device`, when given), newest first.
pub(crate) async fn list(
    store: &dyn Store,
    datapath: &Path,
    user: &UserRecord,
    device: Option<&DeviceId>,
) -> std::io::Result<Vec<RecordingInfo>> {
    let folder = datapath.join(FOLDER);
    let mut entries = match tokio::fs::read_dir(&folder).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
            continue;
        }
        let Some(header) = header_of(&path).await else {
            continue;
        };
        let id = DeviceId::from(header.device.as_str());
        if device.is_some_and(|wanted| *wanted != id) || !may_see(store, user, &id).await {
            continue;
        }
        let metadata = entry.metadata().await?;
        let ended_ms = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(header.started_ms, |d| d.as_millis() as i64);
        found.push(RecordingInfo {
            id: header.session,
            device: id,
            device_name: header.device_name,
            user: header.user,
            kind: header.kind,
            started_ms: header.started_ms,
            duration_ms: (ended_ms - header.started_ms).max(0),
            bytes: metadata.len(),
        });
    }
    found.sort_by_key(|r| std::cmp::Reverse(r.started_ms));
    Ok(found)
}

#[derive(Deserialize)]
pub(crate) struct Format {
    #[serde(default)]
    format: Option<String>,
}

/// `GET /api/recordings/{id}`: the recording as recorded, or `?format=asciicast`.
pub(crate) async fn get_recording(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    UrlPath(id): UrlPath<String>,
    Query(format): Query<Format>,
) -> Response {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such recording.");
    let Some(path) = path_of(&state.config.datapath, &id) else {
        return not_found().into_response();
    };
    let Some(header) = header_of(&path).await else {
        return not_found().into_response();
    };
    // Not seeing it reads the same as it not existing: ids cannot be probed.
    if !may_see(
        state.store.as_ref(),
        &user,
        &DeviceId::from(header.device.as_str()),
    )
    .await
    {
        return not_found().into_response();
    }
    let asciicast = match format.format.as_deref() {
        None | Some("raw") => false,
        Some("asciicast") if header.kind == SessionKind::Terminal => true,
        Some(_) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "format is raw, or asciicast for a terminal session",
            )
            .into_response();
        }
    };
    let message = format!(
        "{} downloaded the recording of {}'s {} session to {}",
        user.name, header.user, header.kind, header.device_name
    );
    log_event(
        &state,
        NewEvent {
            kind: "recording_downloaded".into(),
            user: Some(user.id.clone()),
            device: Some(DeviceId::from(header.device.as_str())),
            message,
            ..NewEvent::default()
        },
    )
    .await;
    let too_big = tokio::fs::metadata(&path)
        .await
        .map_or(true, |m| asciicast && m.len() > MAX_CONVERTED);
    if too_big {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "Too large to convert; download it raw.",
        )
        .into_response();
    }
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!("recordings: cannot read {}: {e}", path.display());
            return not_found().into_response();
        }
    };
    let (body, kind, name) = if asciicast {
        let Ok((header, frames, _)) = parse(&bytes) else {
            return not_found().into_response();
        };
        let cast = to_asciicast(&header, &frames).into_bytes();
        (cast, "application/x-asciicast", format!("{id}.cast"))
    } else {
        (
            bytes,
            "application/octet-stream",
            format!("{id}.{EXTENSION}"),
        )
    };
    (
        [
            (CONTENT_TYPE, kind.to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}

/// Deletes recordings whose session started before `before_ms`; how many went.
pub(crate) async fn prune(datapath: &Path, before_ms: i64) -> u64 {
    let Ok(mut entries) = tokio::fs::read_dir(datapath.join(FOLDER)).await else {
        return 0;
    };
    let mut removed = 0;
    while let Ok(Some(entry)) = entries.next_entry().await {
        let path = entry.path();
        let old = header_of(&path)
            .await
            .is_some_and(|header| header.started_ms < before_ms);
        if old && tokio::fs::remove_file(&path).await.is_ok() {
            removed += 1;
        }
    }
    removed
}
