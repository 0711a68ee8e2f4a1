//! The audit log as the control channel sees it: every mutation writes one record (and pushes it
//! live as `Event::Logged`), and `listEvents` reads back what the caller may read.

use tether_common::control::{Event, EventRecord};
use tether_common::ids::{DeviceId, GroupId, UserId};
use tether_common::rights::Rights;

use super::access::{Events, device_with, group_with, rights_on};
use super::actions::{ActionContext, ActionError};
use crate::clock::now_millis;
use crate::events::Audience;
use crate::store::{EventFilter, NewEvent, Readable};

pub(super) const DEFAULT_LIMIT: u32 = 100;
pub(super) const MAX_LIMIT: u32 = 1000;

/// What one mutation is about, for its audit record.
#[derive(Default)]
pub(super) struct Subject<'a> {
    pub user: Option<&'a UserId>,
    pub group: Option<&'a GroupId>,
    pub device: Option<&'a DeviceId>,
}

/// Writes the audit record of a mutation done by the caller and pushes it to `audience` (which
/// should be the readers of the subject's events, e.g. `Audience::group(g, Rights::EVENTS)`).
///
/// The mutation already happened, so a failure to log is reported in the server log rather than
/// failing the request.
pub(super) async fn record(
    ctx: &ActionContext<'_>,
    kind: &str,
    subject: Subject<'_>,
    message: String,
    audience: Audience,
) {
    let event = NewEvent {
        time: now_millis(),
        kind: kind.to_owned(),
        user: Some(subject.user.unwrap_or(&ctx.caller.id).clone()),
        group: subject.group.cloned(),
        device: subject.device.cloned(),
        message,
    };
    match ctx.store.append_event(event).await {
        Ok(record) => ctx.events.publish(Event::Logged { record }, audience),
        Err(e) => tracing::error!(kind, "control: could not write an audit record: {e}"),
    }
}

/// `listEvents`: site admins read everything; other users read the events of groups (and their
/// devices) where they hold EVENTS, and the events about their own account.
pub(super) async fn list(
    ctx: &ActionContext<'_>,
    limit: Option<u32>,
    group: Option<&GroupId>,
    device: Option<&DeviceId>,
) -> Result<Vec<EventRecord>, ActionError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as usize;
    // Asking for one group's or device's events: check that one, then the store filters.
    if let Some(device) = device {
        device_with::<Events>(ctx, device).await?;
    } else if let Some(group) = group {
        group_with::<Events>(ctx, group).await?;
    }
    if ctx.caller.site_admin || device.is_some() || group.is_some() {
        let filter = EventFilter {
            limit,
            group: group.cloned(),
            device: device.cloned(),
            ..EventFilter::default()
        };
        return Ok(ctx.store.events(&filter).await?);
    }
    readable_events(ctx, limit).await
}

/// The newest `limit` events a non-admin may read: their groups' (where they hold EVENTS) and
/// those about their own account; one pass over the log, however many groups they are in.
async fn readable_events(
    ctx: &ActionContext<'_>,
    limit: usize,
) -> Result<Vec<EventRecord>, ActionError> {
    let groups = ctx
        .store
        .groups()
        .await?
        .into_iter()
        .filter(|group| rights_on(ctx.caller, group).contains(Rights::EVENTS))
        .map(|group| group.id)
        .collect();
    let filter = EventFilter {
        limit,
        readable_by: Some(Readable {
            groups,
            user: ctx.caller.id.clone(),
        }),
        ..EventFilter::default()
    };
    Ok(ctx.store.events(&filter).await?)
}
