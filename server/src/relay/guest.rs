//! `POST /api/share/session`: a guest trades a sharing link (`tether_common::share`) for one
//! session ticket. No account and no cookie: the link's secret is the credential, checked against
//! its stored SHA-256; wrong secrets count against the caller's network like failed logins.
//!
//! The session runs on the link's kind alone (never more than its creator holds now), under the
//! creator's name and quotas, tagged with the link so that `lifetime.rs` ends it with the link.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use tether_common::control::Event;
use tether_common::relay::{TunnelRequest, relay_url};
use tether_common::rights::Rights;
use tether_common::share::{GuestRequest, GuestTicket, ShareStatus, split_token};

use super::MintError;
use crate::agents::Outgoing;
use crate::clock::now_millis;
use crate::control::rights_on;
use crate::events::Audience;
use crate::http::client_ip::ClientIp;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::store::{NewEvent, ShareUse};

pub(super) async fn post_guest_session(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<Json<GuestRequest>, JsonRejection>,
) -> Result<Json<GuestTicket>, ApiError> {
    let Json(request) = body?;
    let invalid = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "This sharing link is not valid.",
        )
    };
    let Some((id, secret)) = split_token(&request.token) else {
        tracing::info!(%ip, "share: malformed guest link");
        return Err(invalid());
    };
    let attempt = match state.login_limiter.begin(ip, &format!("share:{id}")) {
        Ok(attempt) => attempt,
        Err(retry) => {
            tracing::warn!(%ip, share = id, "share: refused: too many wrong links from this network");
            return Err(ApiError::rate_limited(retry));
        }
    };
    let share = state.store.share(id).await?;
    let Some(share) = share.filter(|s| {
        let given = crate::control::shares::secret_hash(secret);
        constant_time_eq(given.as_bytes(), s.secret_sha256.as_bytes())
    }) else {
        tracing::warn!(%ip, share = id, "share: wrong or unknown guest link");
        return Err(invalid());
    };
    state.login_limiter.succeeded(attempt);

    let gone = |why: &str| ApiError::new(StatusCode::GONE, "expired", why);
    let (Some(device), Some(creator)) = (
        state.store.device(&share.device).await?,
        state.store.user(&share.creator).await?,
    ) else {
        return Err(gone("The shared device or the link's creator is gone."));
    };
    let Some(group) = state.store.group(&device.group).await? else {
        return Err(gone("The shared device is gone."));
    };
    if !share.kind.allowed_by(rights_on(&creator, &group)) {
        tracing::info!(
            share = id,
            "share: refused: its creator no longer holds the right"
        );
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "The person who shared this device may no longer open such sessions.",
        ));
    }
    if !state.agents.is_online(&device.id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("{} is offline; try again later.", device.name),
        ));
    }
    let share = match state.store.use_share(id, now_millis()).await? {
        ShareUse::Admitted(share) => share,
        ShareUse::Refused(status) => {
            let why = match status {
                ShareStatus::Revoked => "This sharing link was revoked.",
                ShareStatus::Used => "This single-use link was already used.",
                ShareStatus::Expired | ShareStatus::Active => "This sharing link has expired.",
            };
            tracing::info!(%ip, share = id, "share: refused: {why}");
            return Err(gone(why));
        }
        ShareUse::Unknown => return Err(invalid()),
    };

    let kind = share.kind.session_kind();
    let rights = share.kind.right();
    let minted = state
        .relay
        .mint(
            state.store.as_ref(),
            &device.id,
            &creator.id,
            kind,
            rights,
            Some(share.id.clone()),
        )
        .await
        .map_err(|e| match e {
            MintError::Busy(busy) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", busy.to_string())
            }
            MintError::Quota(quota) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", quota.to_string())
            }
            MintError::Store(e) => ApiError::from(e),
        })?;
    let authority = crate::agents::server_authority(&headers, &state.config);
    let server_info = crate::control::server_info(&state);
    let direct = crate::control::sessions::direct_path(
        &group,
        server_info.stun_port,
        &authority,
        state.config.turn.as_ref(),
    )
    .filter(|_| !super::recording::records(&group, kind));
    let viewer = format!("A guest (\"{}\", invited by {})", share.label, creator.name);
    let consent = group.consent.request_for(kind, &viewer);
    let consent_mode = consent.as_ref().map(|c| c.mode).unwrap_or_default();
    let tunnel = TunnelRequest {
        url: relay_url(&minted.agent_token),
        kind,
        rights,
        user: creator.id.clone(),
        direct: direct.clone(),
        consent,
        // A guest's link never reaches the device's microphone.
        microphone: false,
    };
    if !state
        .agents
        .send(&device.id, Outgoing::Text(tunnel.to_json()))
    {
        state.relay.cancel(&minted.session);
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("{} went offline; try again.", device.name),
        ));
    }
    let message = format!(
        "a guest used {}'s link \"{}\" from {ip}: {} session to {} (use {}{})",
        creator.name,
        share.label,
        share.kind.describe(),
        device.name,
        share.uses,
        if share.single_use { ", single use" } else { "" }
    );
    tracing::info!(share = id, device = %device.id, %ip, "share: guest session opened");
    let event = NewEvent {
        time: now_millis(),
        kind: "share_used".into(),
        user: Some(creator.id.clone()),
        group: Some(group.id.clone()),
        device: Some(device.id.clone()),
        message,
    };
    match state.store.append_event(event).await {
        Ok(record) => state.events.publish(
            Event::Logged { record },
            Audience::group(&group, Rights::EVENTS).with_user(&creator.id),
        ),
        Err(e) => tracing::warn!("share: could not write an audit record: {e}"),
    }
    Ok(Json(GuestTicket {
        url: relay_url(&minted.console_token),
        device: device.id,
        device_name: device.name,
        kind: share.kind,
        creator: creator.id,
        link_expires_ms: share.expires_ms,
        direct,
        consent: consent_mode,
    }))
}

/// Compares two equal-length digests without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
