//! Invites: a MAC'd token "whoever holds this may download the agent and the `.msh` of group G
//! until time T", minted by a user who may enrol devices in G, and a stored [`InviteRecord`] that
//! can be listed and revoked.
//!
//! The token carries its id, group, creator and expiry under the server's invite key
//! (`crate::tokens`), so an expiry cannot be extended without the key; the token itself is never
//! stored or logged. The record holds what changes: whether it was revoked and how many devices it
//! enrolled (an invite may be limited to N devices). It also holds the invite's own enrolment key,
//! the `MeshID` of the `.msh` it serves (see `agents/enrolment.rs`), so an invite that stops
//! being usable also stops its `.msh` from enrolling anything.
//!
//! Usable means: the record exists and is not revoked, expired or used up; the group still exists;
//! its creator still holds the right to enrol there (removing someone's rights or account voids the
//! invites they handed out). Downloads and enrolments ask the same question ([`usable`]).

use serde::{Deserialize, Serialize};
use tether_common::ids::{GroupId, UserId};

use crate::agents::{EnrolmentKey, may_enrol};
use crate::store::{GroupRecord, InviteRecord, Store, StoreResult};
use crate::tokens::{MacKey, TokenError, random_id};

/// The store setting holding the invite key (hex). Separate from other tokens' keys.
pub(crate) const KEY_SETTING: &str = "invite_token_key";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InviteClaims {
    /// Random; names the invite in the audit log (the token itself never is logged).
    pub id: String,
    pub group: GroupId,
    /// Who created it.
    pub by: UserId,
    /// Unix seconds after which it is void.
    pub exp: i64,
}

/// Why an invite was refused. The client only ever sees "not found"; this goes to the log.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InviteError {
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error("no invite was ever created on this server")]
    NoKey,
    #[error("invite {id} expired at {exp}")]
    Expired { id: String, exp: i64 },
    #[error("invite {id} is not known here (made before invites were stored, or long expired)")]
    Unknown { id: String },
    #[error("invite {id} was revoked")]
    Revoked { id: String },
    #[error("invite {id} enrolled as many devices as it may")]
    UsedUp { id: String },
    #[error("invite {id}: its device group is gone")]
    GroupGone { id: String },
    #[error("invite {id}: its creator {by} no longer may enrol devices in that group")]
    CreatorLostRights { id: String, by: UserId },
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Makes and stores an invite to `group` by `by`, valid `minutes` from `now` (unix seconds), for at
/// most `max_devices` new devices (`None`: any number); returns its token and record.
pub(crate) async fn mint(
    store: &dyn Store,
    group: &GroupId,
    by: &UserId,
    minutes: u32,
    max_devices: Option<u32>,
    now: i64,
) -> StoreResult<(String, InviteRecord)> {
    let key = MacKey::load_or_create(store, KEY_SETTING).await?;
    let claims = InviteClaims {
        id: random_id(12),
        group: group.clone(),
        by: by.clone(),
        exp: now + i64::from(minutes) * 60,
    };
    let record = InviteRecord {
        id: claims.id.clone(),
        group: group.clone(),
        created_by: by.clone(),
        created: now,
        expires: claims.exp,
        enrolment_key: EnrolmentKey::random().to_hex(),
        enrolled: 0,
        max_devices,
        revoked: None,
        revoked_by: None,
    };
    store.create_invite(&record).await?;
    Ok((key.sign(&claims), record))
}

/// The claims of `token` if `key` signed it and it has not expired at `now` (unix seconds).
pub(crate) fn check(key: &MacKey, token: &str, now: i64) -> Result<InviteClaims, InviteError> {
    let claims: InviteClaims = key.verify(token)?;
    if now >= claims.exp {
        return Err(InviteError::Expired {
            id: claims.id,
            exp: claims.exp,
        });
    }
    Ok(claims)
}

/// The usable invite `token` stands for: signed, on record and usable (see [`usable`]).
pub(crate) async fn resolve(
    store: &dyn Store,
    token: &str,
    now: i64,
) -> Result<(InviteRecord, GroupRecord), InviteError> {
    let key = MacKey::load(store, KEY_SETTING)
        .await?
        .ok_or(InviteError::NoKey)?;
    let claims = check(&key, token, now)?;
    let Some(invite) = store.invite(&claims.id).await? else {
        return Err(InviteError::Unknown { id: claims.id });
    };
    let group = usable(store, &invite, now).await?;
    Ok((invite, group))
}

/// The invite's group if the invite may still serve downloads and enrol devices at `now`.
pub(crate) async fn usable(
    store: &dyn Store,
    invite: &InviteRecord,
    now: i64,
) -> Result<GroupRecord, InviteError> {
    let id = invite.id.clone();
    if invite.revoked.is_some() {
        return Err(InviteError::Revoked { id });
    }
    if now >= invite.expires {
        return Err(InviteError::Expired {
            id,
            exp: invite.expires,
        });
    }
    if invite.unusable_at(now).is_some() {
        return Err(InviteError::UsedUp { id });
    }
    let Some(group) = store.group(&invite.group).await? else {
        return Err(InviteError::GroupGone { id });
    };
    match store.user(&invite.created_by).await? {
        Some(creator) if may_enrol(&creator, &group) => Ok(group),
        _ => Err(InviteError::CreatorLostRights {
            id,
            by: invite.created_by.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn signed(key: &MacKey, exp: i64) -> String {
        key.sign(&InviteClaims {
            id: "inv1".into(),
            group: GroupId::from_bytes(&[3; 48]),
            by: UserId::from_name("alice"),
            exp,
        })
    }

    #[test]
    fn an_invite_is_good_until_its_expiry_and_not_a_second_longer() {
        let key = MacKey::from_bytes([1; 32]);
        let token = signed(&key, NOW + 60);
        let claims = check(&key, &token, NOW).unwrap();
        assert_eq!(claims.group, GroupId::from_bytes(&[3; 48]));
        assert!(check(&key, &token, NOW + 59).is_ok());
        assert!(matches!(
            check(&key, &token, NOW + 60),
            Err(InviteError::Expired { exp, .. }) if exp == NOW + 60
        ));
        assert!(matches!(
            check(&key, &token, NOW + 86_400),
            Err(InviteError::Expired { .. })
        ));
    }

    #[test]
    fn a_later_expiry_cannot_be_written_into_a_token() {
        let key = MacKey::from_bytes([1; 32]);
        let token = signed(&key, NOW - 1);
        let (body, tag) = token.split_once('.').unwrap();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        claims["exp"] = (NOW + 3600).into();
        let extended = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        );
        assert!(matches!(
            check(&key, &extended, NOW),
            Err(InviteError::Token(TokenError::BadSignature))
        ));
        assert!(matches!(
            check(&MacKey::from_bytes([2; 32]), &signed(&key, NOW + 60), NOW),
            Err(InviteError::Token(TokenError::BadSignature))
        ));
    }

    #[test]
    fn another_tokens_claims_do_not_pass_as_an_invite() {
        // Even under the same key, claims of another shape are refused.
        let key = MacKey::from_bytes([1; 32]);
        let other = key.sign(&serde_json::json!({
            "id": "x", "group": "g", "by": "u", "exp": NOW + 60, "side": "agent"
        }));
        assert!(matches!(
            check(&key, &other, NOW),
            Err(InviteError::Token(TokenError::Malformed))
        ));
    }
}
