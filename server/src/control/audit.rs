//! The audit log as the control channel sees it: every mutation writes one record (and pushes it
//! live as `Event::Logged`), and `listEvents` reads back what the caller may read.

use tether_common::control::{Event, EventRecord, ListEvents};
use tether_common::ids::{DeviceId, GroupId, UserId};
use tether_common::rights::Rights;

use super::access::{Events, device_with, group_with, rights_on};
use super::actions::{ActionContext, ActionError};
use crate::clock::now_millis;
use crate::events::Audience;
use crate::store::{EventFilter, GroupRecord, NewEvent, Readable};

pub(super) const DEFAULT_LIMIT: u32 = 100;
pub(super) const MAX_LIMIT: u32 = 1000;
/// Longest search text: the log is scanned once per request, so keep each comparison small.
const MAX_SEARCH: usize = 200;

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

/// [`record`] for a change to one device, read by those who read its group's events.
pub(super) async fn record_for_device(
    ctx: &ActionContext<'_>,
    kind: &str,
    group: &GroupRecord,
    device: &DeviceId,
    message: String,
) {
    let subject = Subject {
        group: Some(&group.id),
        device: Some(device),
        ..Subject::default()
    };
    record(
        ctx,
        kind,
        subject,
        message,
        Audience::group(group, Rights::EVENTS),
    )
    .await;
}

/// `listEvents`: site admins read everything; other users read the events of groups (and their
/// devices) where they hold EVENTS, and the events about their own account.
///
/// The other filters (user, kind, text, time, paging) narrow whatever the caller may read.
pub(super) async fn list(
    ctx: &ActionContext<'_>,
    request: ListEvents,
) -> Result<Vec<EventRecord>, ActionError> {
    let limit = request.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as usize;
    let text = request.text.filter(|t| !t.trim().is_empty());
    if text
        .as_ref()
        .is_some_and(|t| t.chars().count() > MAX_SEARCH)
    {
        return Err(ActionError::BadRequest(format!(
            "search for at most {MAX_SEARCH} characters"
        )));
    }
    let filter = EventFilter {
        limit,
        group: request.group.clone(),
        device: request.device.clone(),
        user: request.user,
        kind: request.kind.filter(|k| !k.is_empty()),
        text,
        since_ms: request.since_ms,
        until_ms: request.until_ms,
        before_id: request.before_id,
        readable_by: None,
    };
    // Asking for one group's or device's events: check that one, then the store filters.
    if let Some(device) = &request.device {
        device_with::<Events>(ctx, device).await?;
    } else if let Some(group) = &request.group {
        group_with::<Events>(ctx, group).await?;
    }
    if ctx.caller.site_admin || request.device.is_some() || request.group.is_some() {
        return Ok(ctx.store.events(&filter).await?);
    }
    readable_events(ctx, filter).await
}

/// The events a non-admin may read among those `filter` picks: their groups' (where they hold
/// EVENTS) and those about their own account; one pass over the log, however many groups they
/// are in.
async fn readable_events(
    ctx: &ActionContext<'_>,
    filter: EventFilter,
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
        readable_by: Some(Readable {
            groups,
            user: ctx.caller.id.clone(),
        }),
        ..filter
    };
    Ok(ctx.store.events(&filter).await?)
}
