//! Audit records of relayed sessions: one when the two ends are paired, one when the session
//! ends (who, which device, what kind, bytes each way, how long). Readers: the group's members
//! holding EVENTS, the user themselves, and site administrators.

use std::net::SocketAddr;
use std::time::Duration;

use tether_common::control::Event;
use tether_common::relay::RelayClaims;
use tether_common::rights::Rights;

use crate::clock::now_millis;
use crate::events::Audience;
use crate::state::AppState;
use crate::store::{GroupRecord, NewEvent};

/// Bytes carried in each direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Traffic {
    pub to_device: u64,
    pub from_device: u64,
    /// What a switched session moved on its direct path, as the end that closed it reported
    /// (`rtcTotals`), and which end that was.
    pub direct: Option<(DirectReport, &'static str)>,
    /// The session was recorded (`recording.rs`), under this id.
    pub recorded: Option<String>,
}

/// Session bytes on a direct path, as one end reported them: the server never sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DirectReport {
    pub to_device: u64,
    pub from_device: u64,
}

/// What the session's records are about, read once when it starts.
pub(super) struct Subject {
    claims: RelayClaims,
    device_name: String,
    group: Option<GroupRecord>,
    /// For a guest's session: the sharing link's label.
    share_label: Option<String>,
}

impl Subject {
    pub(super) async fn load(state: &AppState, claims: &RelayClaims) -> Subject {
        let device = state.store.device(&claims.device).await.ok().flatten();
        let group = match &device {
            Some(device) => state.store.group(&device.group).await.ok().flatten(),
            None => None,
        };
        let share_label = match &claims.share {
            Some(id) => Some(match state.store.share(id).await.ok().flatten() {
                Some(share) => share.label,
                None => id.clone(),
            }),
            None => None,
        };
        Subject {
            claims: claims.clone(),
            device_name: device.map_or_else(|| claims.device.to_string(), |d| d.name),
            group,
            share_label,
        }
    }

    /// Who opened the session, as the records say it.
    fn who(&self) -> String {
        match &self.share_label {
            Some(label) => format!("a guest on {}'s link \"{label}\"", self.claims.user),
            None => self.claims.user.to_string(),
        }
    }

    pub(super) fn group_id(&self) -> Option<&tether_common::ids::GroupId> {
        self.group.as_ref().map(|group| &group.id)
    }

    /// The session's recorder when its group records sessions of its kind (`recording.rs`).
    pub(super) async fn recording(
        &self,
        state: &AppState,
        claims: &RelayClaims,
    ) -> std::io::Result<Option<super::recording::Recorder>> {
        use super::recording::{Recorder, path_of, records};
        let Some(group) = self.group.as_ref().filter(|g| records(g, claims.kind)) else {
            return Ok(None);
        };
        let path = path_of(&state.config.datapath, &claims.session).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "odd session id")
        })?;
        let header = tether_common::recording::RecordingHeader {
            version: 1,
            session: claims.session.clone(),
            device: claims.device.to_string(),
            device_name: self.device_name.clone(),
            user: claims.user.to_string(),
            kind: claims.kind,
            started_ms: crate::clock::now_millis(),
        };
        tracing::info!(device = %claims.device, group = %group.name, "relay: recording the session");
        Recorder::create(&path, &header).await.map(Some)
    }

    pub(super) async fn started(&self, state: &AppState, console: SocketAddr) {
        let message = format!(
            "{} opened a {} session to {} from {}",
            self.who(),
            self.claims.kind,
            self.device_name,
            console.ip()
        );
        self.write(state, "session_started", message).await;
    }

    pub(super) async fn ended(
        &self,
        state: &AppState,
        traffic: Traffic,
        duration: Duration,
        why: &str,
    ) {
        let mut message = format!(
            "{}'s {} session to {} ended after {:.1} s ({why}): {} bytes to the device, {} bytes from it",
            self.who(),
            self.claims.kind,
            self.device_name,
            duration.as_secs_f64(),
            traffic.to_device,
            traffic.from_device,
        );
        if let Some((direct, reporter)) = traffic.direct {
            message.push_str(&format!(
                "; on the direct path {} bytes to the device, {} bytes from it (reported by the {reporter})",
                direct.to_device, direct.from_device
            ));
        }
        if let Some(id) = &traffic.recorded {
            message.push_str(&format!("; recorded ({id})"));
        }
        self.write(state, "session_ended", message).await;
    }

    /// Whether this session's chat messages are kept (`chat_transcripts` on the device's group).
    pub(super) fn keeps_transcript(&self) -> bool {
        self.claims.kind == tether_common::relay::SessionKind::Chat
            && self.group.as_ref().is_some_and(|g| g.chat_transcripts)
    }

    /// One chat message, for the transcript: `to_device` says who wrote it.
    pub(super) async fn said(&self, state: &AppState, to_device: bool, text: &str) {
        // The writer's words, as one line of text: no control or bidi characters.
        let text: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .filter(|c| !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
            .take(tether_common::relay::chat::MAX_TEXT_CHARS)
            .collect();
        let at_device = format!("the person at {}", self.device_name);
        let message = if to_device {
            format!("chat: {} to {at_device}: {text}", self.who())
        } else {
            format!("chat: {at_device} to {}: {text}", self.who())
        };
        self.write(state, "chat_message", message).await;
    }

    async fn write(&self, state: &AppState, kind: &str, message: String) {
        let audience = match &self.group {
            Some(group) => Audience::group(group, Rights::EVENTS),
            None => Audience::admins_only(),
        }
        .with_user(&self.claims.user);
        let event = NewEvent {
            time: now_millis(),
            kind: kind.to_owned(),
            user: Some(self.claims.user.clone()),
            group: self.group.as_ref().map(|g| g.id.clone()),
            device: Some(self.claims.device.clone()),
            message,
        };
        match state.store.append_event(event).await {
            Ok(record) => state.events.publish(Event::Logged { record }, audience),
            Err(e) => tracing::warn!(kind, "relay: could not write an audit record: {e}"),
        }
    }
}
