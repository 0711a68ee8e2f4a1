//! The messenger's open requests waiting for their agent's answer (`chatopened`): the console's
//! `createSession {kind: "chat"}` waits here, so the administrator learns whether the window
//! opened on the device and, when not, why (`tether_common::relay::chat` has the flow).

use std::collections::HashMap;
use std::sync::Mutex;

use tether_common::ids::DeviceId;
use tether_common::relay::chat::ChatOpened;
use tokio::sync::oneshot;

/// Requests waiting at once, server-wide; each lives at most the console's wait. The relay's
/// per-user quota (each request holds a minted session) keeps one user far below this.
const MAX_WAITING: usize = 1024;

#[derive(Default)]
pub struct ChatOpens {
    waiting: Mutex<HashMap<String, Waiter>>,
}

struct Waiter {
    device: DeviceId,
    answer: oneshot::Sender<ChatOpened>,
}

/// Why a chat window is not asked for now.
#[derive(Debug, thiserror::Error)]
pub enum NotNow {
    #[error("too many chats are being opened at once; try again")]
    TooMany,
    /// A second click while the first window is still being opened would open two windows on
    /// the person's screen (a complaint about MeshCentral's messenger).
    #[error("a chat window is already being opened on this device")]
    AlreadyOpening,
}

/// Removes its request when dropped, whatever became of the wait (answered, timed out, or the
/// console's task ended).
pub struct Waiting<'a> {
    opens: &'a ChatOpens,
    session: String,
    pub answer: oneshot::Receiver<ChatOpened>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.opens.table().remove(&self.session);
    }
}

impl ChatOpens {
    /// Waits for `device`'s answer about `session`.
    pub fn expect(&self, session: &str, device: &DeviceId) -> Result<Waiting<'_>, NotNow> {
        let mut table = self.table();
        if table.len() >= MAX_WAITING {
            return Err(NotNow::TooMany);
        }
        if table.values().any(|waiter| &waiter.device == device) {
            return Err(NotNow::AlreadyOpening);
        }
        let (answer, receiver) = oneshot::channel();
        table.insert(
            session.to_owned(),
            Waiter {
                device: device.clone(),
                answer,
            },
        );
        Ok(Waiting {
            opens: self,
            session: session.to_owned(),
            answer: receiver,
        })
    }

    /// An agent's answer. Only the device the request went to may answer it; anything else
    /// (another device, a request nobody waits for any more) is logged and dropped.
    pub fn answered(&self, from: &DeviceId, report: ChatOpened) {
        let mut table = self.table();
        match table.get(&report.session) {
            Some(waiter) if &waiter.device == from => {
                if let Some(waiter) = table.remove(&report.session) {
                    let _ = waiter.answer.send(report);
                }
            }
            Some(_) => {
                tracing::warn!(device = %from, "agent: a chatopened for another device's chat was ignored")
            }
            None => {
                tracing::debug!(device = %from, "agent: a chatopened came after the console stopped waiting")
            }
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiter>> {
        // Every update is one insert or remove: a panic elsewhere cannot leave it torn.
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(session: &str) -> ChatOpened {
        ChatOpened {
            session: session.into(),
            user: Some("bob".into()),
            display: Some(":0".into()),
            error: None,
        }
    }

    #[tokio::test]
    async fn only_the_asked_device_answers_and_a_dropped_wait_is_forgotten() {
        let opens = ChatOpens::default();
        let (mine, other) = (DeviceId::from("d1"), DeviceId::from("d2"));
        let mut waiting = opens.expect("s1", &mine).unwrap();
        opens.answered(&other, report("s1"));
        assert!(waiting.answer.try_recv().is_err());
        opens.answered(&mine, report("s1"));
        assert_eq!(
            (&mut waiting.answer).await.unwrap().user.as_deref(),
            Some("bob")
        );
        let dropped = opens.expect("s2", &mine).unwrap();
        // One window at a time per device; other devices are not held up.
        assert!(matches!(
            opens.expect("s3", &mine),
            Err(NotNow::AlreadyOpening)
        ));
        let other_device = opens.expect("s4", &other).unwrap();
        drop(other_device);
        drop(dropped);
        assert!(opens.table().is_empty());
        // An answer nobody waits for is harmless.
        opens.answered(&mine, report("s2"));
    }
}
