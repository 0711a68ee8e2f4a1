//! Chats between two users of the console (`listChatPeers`, `inviteChat`, `declineChat`).
//!
//! Who may chat with whom: a site administrator with anyone; another user with the users who
//! share a device group with them (people who work on the same machines). The invitee must have
//! a console open. The session is a relay chat like the device's (`tether_common::relay::chat`),
//! except that the other end is the invitee's console, which must come with the invitee's own
//! login (`RelayClaims::peer`). The invitation goes to the invitee alone (not to site
//! administrators, as other events do): it carries their end of the session.

use std::collections::BTreeSet;

use tether_common::control::{ChatDeclined, ChatPeer, Event};
use tether_common::ids::UserId;
use tether_common::relay::{SessionKind, SessionTicket, relay_url};
use tether_common::rights::Rights;

use super::actions::{ActionContext, ActionError};
use crate::events::Audience;
use crate::relay::MintError;

/// Whom `caller` may chat with: everyone for a site administrator, else the members of the
/// groups the caller is a member of.
async fn peers_of(ctx: &ActionContext<'_>) -> Result<Option<BTreeSet<UserId>>, ActionError> {
    if ctx.caller.site_admin {
        return Ok(None);
    }
    let groups = ctx.store.groups().await?;
    let peers = groups
        .iter()
        .filter(|group| group.members.contains_key(&ctx.caller.id))
        .flat_map(|group| group.members.keys().cloned())
        .collect();
    Ok(Some(peers))
}

pub(super) async fn list_peers(ctx: &ActionContext<'_>) -> Result<Vec<ChatPeer>, ActionError> {
    let peers = peers_of(ctx).await?;
    let online: BTreeSet<UserId> = ctx.events.listeners().into_iter().collect();
    let mut users: Vec<ChatPeer> = ctx
        .store
        .users()
        .await?
        .into_iter()
        .filter(|user| user.id != ctx.caller.id && online.contains(&user.id))
        // Site administrators may chat with anyone, and anyone may reach them.
        .filter(|user| peers.as_ref().is_none_or(|p| p.contains(&user.id)) || user.site_admin)
        .map(|user| ChatPeer {
            id: user.id,
            name: user.name,
            email: user.email,
        })
        .collect();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(users)
}

pub(super) async fn invite(
    ctx: &ActionContext<'_>,
    invitee: &UserId,
) -> Result<SessionTicket, ActionError> {
    let not_available = || ActionError::NotFound(format!("no user {invitee} to chat with"));
    let Some(user) = ctx.store.user(invitee).await? else {
        return Err(not_available());
    };
    let allowed = user.site_admin
        || peers_of(ctx)
            .await?
            .is_none_or(|peers| peers.contains(invitee));
    if !allowed || user.id == ctx.caller.id {
        tracing::info!(by = %ctx.caller.id, user = %invitee, "chat: invitation refused: not a chat peer");
        return Err(not_available());
    }
    if !ctx.events.is_listening(invitee) {
        return Err(ActionError::Conflict(format!(
            "{} has no console open; try again later",
            user.name
        )));
    }
    let minted = ctx
        .store
        .mint_user_chat(ctx.relay, &ctx.caller.id, invitee)
        .await
        .map_err(|e| match e {
            MintError::Busy(busy) => ActionError::Conflict(busy.to_string()),
            MintError::Quota(quota) => ActionError::Conflict(quota.to_string()),
            MintError::Store(e) => ActionError::Internal(format!("relay token key: {e}")),
        })?;
    let until = std::time::Instant::now() + ctx.relay.pair_timeout();
    ctx.relay
        .invitations()
        .add(&minted.session, &ctx.caller.id, invitee, until);
    ctx.events.publish(
        Event::ChatInvitation {
            invitation: minted.session.clone(),
            from: ctx.caller.id.clone(),
            from_name: super::sessions::viewer_name(ctx.caller),
            url: relay_url(&minted.agent_token),
            expires_ms: minted.expires_ms,
        },
        Audience::only(invitee),
    );
    tracing::info!(by = %ctx.caller.id, user = %invitee, "chat: invitation sent");
    Ok(SessionTicket {
        url: relay_url(&minted.console_token),
        device: crate::relay::user_chat_device(invitee),
        kind: SessionKind::Chat,
        rights: Rights::CHAT,
        expires_ms: minted.expires_ms,
        direct: super::sessions::site_direct_path(ctx),
        consent: Default::default(),
        chat: None,
    })
}

pub(super) async fn decline(
    ctx: &ActionContext<'_>,
    invitation: &str,
) -> Result<ChatDeclined, ActionError> {
    let Some(open) = ctx.relay.invitations().take_for(invitation, &ctx.caller.id) else {
        return Err(ActionError::NotFound(
            "no such invitation (it was answered, or it expired)".into(),
        ));
    };
    ctx.relay.cancel(invitation);
    ctx.events.publish(
        Event::ChatDeclined {
            invitation: invitation.to_owned(),
            by_name: super::sessions::viewer_name(ctx.caller),
        },
        Audience::only(&open.inviter),
    );
    tracing::info!(by = %ctx.caller.id, inviter = %open.inviter, "chat: invitation declined");
    Ok(ChatDeclined {
        invitation: invitation.to_owned(),
    })
}
