//! `createSession { device, kind }`: opens a relayed session (terminal, files, desktop, chat) to
//! a device. Checks the caller's right for that kind on the device's group, mints the session's
//! tokens, tells the agent where to connect, and answers with the console's relay URL.

use axum::http::uri::Authority;
use tether_common::ids::DeviceId;
use tether_common::relay::consent::ConsentMode;
use tether_common::relay::{
    DirectPath, IceServer, SessionKind, SessionTicket, TunnelRequest, relay_url,
};

use super::access::{SessionGrant, session_on};
use super::actions::{ActionContext, ActionError};
use super::chat;
use crate::agents::Outgoing;
use crate::relay::{MintError, MintedSession};
use crate::store::GroupRecord;

pub(super) async fn create(
    ctx: &ActionContext<'_>,
    id: &DeviceId,
    kind: SessionKind,
) -> Result<SessionTicket, ActionError> {
    let granted = session_on(ctx, id, kind).await?;
    let (device, rights) = (granted.device().clone(), granted.rights());
    // A recorded session stays on the relay, where it is recorded; so does a chat whose
    // messages are kept.
    let kept = kind == SessionKind::Chat && granted.group().chat_transcripts;
    let direct = direct_path(
        granted.group(),
        ctx.server_info.stun_port,
        &ctx.site.authority,
        ctx.turn,
    )
    .filter(|_| !crate::relay::recording::records(granted.group(), kind) && !kept);
    if !ctx.agents.is_online(&device.id) {
        return Err(ActionError::Conflict(format!(
            "device {} is offline",
            device.name
        )));
    }
    let minted = ctx
        .store
        .mint_session(ctx.relay, &granted)
        .await
        .map_err(|e| match e {
            MintError::Busy(busy) => ActionError::Conflict(busy.to_string()),
            MintError::Quota(quota) => {
                tracing::warn!(user = %ctx.caller.id, device = %device.id, "relay: session refused: {quota}");
                ActionError::Conflict(quota.to_string())
            }
            MintError::Store(e) => ActionError::Internal(format!("relay token key: {e}")),
        })?;
    // A chat has the agent open its page for the person at the screen (who answers the
    // console's direct-path offer, `direct.ts` role "answer"); the rest join as a tunnel.
    let (consent_mode, chat) = if kind == SessionKind::Chat {
        let window = chat::open_on_device(ctx, &device, &minted).await;
        let window = window.inspect_err(|_| ctx.relay.cancel(&minted.session))?;
        (Default::default(), Some(window))
    } else {
        (tunnel(ctx, &granted, &minted, direct.clone()).await?, None)
    };
    Ok(SessionTicket {
        url: relay_url(&minted.console_token),
        device: device.id,
        kind,
        rights,
        expires_ms: minted.expires_ms,
        direct,
        consent: consent_mode,
        chat,
    })
}

/// Tells the agent to join the session; what the person at the device is shown or asked.
async fn tunnel(
    ctx: &ActionContext<'_>,
    granted: &SessionGrant,
    minted: &MintedSession,
    direct: Option<DirectPath>,
) -> Result<ConsentMode, ActionError> {
    let (device, kind) = (granted.device(), granted.kind());
    // The agent shows or asks the person at the device, as the group's policy says.
    let consent = granted
        .group()
        .consent
        .request_for(kind, &viewer_name(ctx.caller));
    let consent_mode = consent.as_ref().map(|c| c.mode).unwrap_or_default();
    let tunnel = TunnelRequest {
        url: relay_url(&minted.agent_token),
        kind,
        rights: granted.rights(),
        user: ctx.caller.id.clone(),
        direct,
        consent,
        microphone: kind == SessionKind::Desktop && granted.group().microphone,
    };
    if !ctx
        .agents
        .send(&device.id, Outgoing::Text(tunnel.to_json()))
    {
        ctx.relay.cancel(&minted.session);
        return Err(ActionError::Conflict(format!(
            "device {} went offline or is not keeping up; try again",
            device.name
        )));
    }
    Ok(consent_mode)
}

/// How the person at the device reads who is connecting: the account name, and its e-mail
/// address when it has one (names are chosen by administrators, addresses are harder to fake).
pub(super) fn viewer_name(user: &crate::store::UserRecord) -> String {
    match &user.email {
        Some(email) => format!("{} <{email}>", user.name),
        None => user.name.clone(),
    }
}

/// The direct-path offer for a chat between two users (no group to ask): this server's STUN
/// and TURN servers, when it has either.
pub(super) fn site_direct_path(ctx: &ActionContext<'_>) -> Option<DirectPath> {
    Some(ice_servers(
        ctx.server_info.stun_port,
        &ctx.site.authority,
        ctx.turn,
    ))
    .filter(|path| !path.ice_servers.is_empty())
}

/// The direct-path offer for a session to a device of `group`: `None` when the group keeps its
/// sessions relayed; else the ICE servers, which is this server's STUN port (if it has one) at
/// the host name the console reached it by, a name the agent can resolve as well, since agents
/// are told the same name in their `.msh` file.
pub(crate) fn direct_path(
    group: &GroupRecord,
    stun_port: Option<u16>,
    authority: &str,
    turn: Option<&crate::config::TurnConfig>,
) -> Option<DirectPath> {
    group
        .direct_connections
        .then(|| ice_servers(stun_port, authority, turn))
}

/// This server's STUN port (at the host name the console reached it by) and TURN server.
fn ice_servers(
    stun_port: Option<u16>,
    authority: &str,
    turn: Option<&crate::config::TurnConfig>,
) -> DirectPath {
    let ice_servers = stun_port
        .and_then(|port| {
            let host = authority.parse::<Authority>().ok()?;
            Some(IceServer {
                urls: vec![format!("stun:{}:{port}", host.host())],
                username: None,
                credential: None,
            })
        })
        .into_iter()
        .chain(turn.map(turn_server))
        .collect();
    let relay_only = turn.is_some_and(|turn| turn.relay_only);
    DirectPath {
        ice_servers,
        relay_only,
    }
}

/// The configured TURN server with a credential minted for this session alone; its tag is random,
/// so neither the TURN server nor the peers learn who opened the session.
fn turn_server(turn: &crate::config::TurnConfig) -> IceServer {
    let tag = hex::encode(rand::random::<[u8; 8]>());
    let expires = u64::try_from(crate::clock::now_secs()).unwrap_or(0) + turn.credential_secs;
    let (username, credential) = crate::turn::credential(&turn.secret, &tag, expires);
    IceServer {
        urls: turn.urls.clone(),
        username: Some(username),
        credential: Some(credential),
    }
}
