//! The messenger's side of `createSession {kind: "chat"}`: the agent is asked to open the chat
//! page for the person at the device (`openchat`), and the console's reply waits for its answer,
//! so the administrator learns whom it opened for, or why it did not open.

use std::time::Duration;

use tether_common::relay::chat::{ChatWindow, MESSENGER_PATH, OpenChat};

use super::actions::{ActionContext, ActionError};
use super::sessions::viewer_name;
use crate::agents::Outgoing;
use crate::relay::MintedSession;
use crate::store::DeviceRecord;

/// How long the console waits for the agent's answer. Opening a browser as another user takes
/// the agent a second or two; the agent itself gives up on the opener after 15 s.
const ANSWER_WAIT: Duration = Duration::from_secs(20);

pub(super) async fn open_on_device(
    ctx: &ActionContext<'_>,
    device: &DeviceRecord,
    minted: &MintedSession,
) -> Result<ChatWindow, ActionError> {
    let mut waiting = ctx
        .relay
        .chat_opens()
        .expect(&minted.session, &device.id)
        .map_err(|busy| ActionError::Conflict(busy.to_string()))?;
    let request = OpenChat {
        session: minted.session.clone(),
        // The token rides in the fragment: browsers never send it to a server or a log.
        path: format!("{MESSENGER_PATH}#t={}", minted.agent_token),
        from: viewer_name(ctx.caller),
    };
    let text = tether_common::agent_proto::to_json(
        &tether_common::agent_proto::ServerToAgent::OpenChat(request),
    );
    if !ctx.agents.send(&device.id, Outgoing::Text(text)) {
        return Err(ActionError::Conflict(format!(
            "device {} went offline or is not keeping up; try again",
            device.name
        )));
    }
    let answer = tokio::time::timeout(ANSWER_WAIT, &mut waiting.answer).await;
    match answer {
        Ok(Ok(report)) => match (report.error, report.user, report.display) {
            (None, Some(user), Some(screen)) => {
                tracing::info!(device = %device.id, by = %ctx.caller.id, %user, display = %screen, "chat: opened on the device");
                Ok(ChatWindow {
                    user,
                    display: screen,
                })
            }
            (error, ..) => {
                let why = error.unwrap_or_else(|| "the agent gave no reason".into());
                tracing::info!(device = %device.id, by = %ctx.caller.id, "chat: did not open on the device: {why}");
                Err(ActionError::Conflict(format!(
                    "the chat did not open on {}: {why}",
                    device.name
                )))
            }
        },
        // The agent's connection ended (its entry went with it) or it never answered.
        Ok(Err(_)) | Err(_) => {
            tracing::info!(device = %device.id, by = %ctx.caller.id, "chat: the agent did not answer");
            Err(ActionError::Conflict(format!(
                "{} did not say whether the chat opened (its agent may be too old for chat); try again",
                device.name
            )))
        }
    }
}
