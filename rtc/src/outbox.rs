//! [`Outbox`]: one of the splice's sinks (the relay, or the session's socket) written by a task of
//! its own, with a short queue in front that the splice fills without waiting.
//!
//! Why: a session carries both directions at once (`tetherctl exec -- cat` with a big input). If
//! the splice's loop waited on a send to one end, it would stop reading the other, and each end
//! would wait for the other to read: a deadlock. So the loop only queues, reads a source only
//! while the queue that source feeds is short (that is the backpressure), and hands the queue's
//! front to the writer task whenever the writer can take it.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{Sink, SinkExt};
use tokio::sync::mpsc::{self, OwnedPermit};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// Messages handed to the writer task and not yet written.
const WRITER_QUEUE: usize = 4;
/// Bytes queued in front of the writer beyond which the splice stops reading what feeds it.
pub(crate) const QUEUE_BYTES: usize = 256 * 1024;

pub(crate) struct Outbox {
    pending: VecDeque<Message>,
    pending_bytes: usize,
    writer: Option<mpsc::Sender<Message>>,
    task: Option<JoinHandle<()>>,
}

impl Outbox {
    /// Starts the writer task on `sink`.
    pub(crate) fn new<S>(mut sink: S) -> Outbox
    where
        S: Sink<Message> + Unpin + Send + 'static,
    {
        let (writer, mut messages) = mpsc::channel::<Message>(WRITER_QUEUE);
        let task = tokio::spawn(async move {
            while let Some(message) = messages.recv().await {
                if sink.send(message).await.is_err() {
                    // The far end is gone; the splice learns it from its reads, or from
                    // `ready` failing once this receiver is dropped.
                    return;
                }
            }
        });
        Outbox {
            pending: VecDeque::new(),
            pending_bytes: 0,
            writer: Some(writer),
            task: Some(task),
        }
    }

    /// Queues a message behind the others (dropped when the sink has failed).
    pub(crate) fn push(&mut self, message: Message) {
        if self.writer.is_some() {
            self.pending_bytes += message.len();
            self.pending.push_back(message);
        }
    }

    /// Whether what feeds this outbox may be read: the queue is short.
    pub(crate) fn has_room(&self) -> bool {
        self.pending_bytes < QUEUE_BYTES
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// A slot at the writer, for [`Outbox::hand_over`]; `None` once the sink has failed. Owns
    /// what it needs, so the splice's select can poll it beside its reads (cancel-safe: a
    /// dropped permit takes nothing with it).
    pub(crate) fn slot(&self) -> impl Future<Output = Option<OwnedPermit<Message>>> + use<> {
        let writer = self.writer.clone();
        async move { writer?.reserve_owned().await.ok() }
    }

    /// Gives the queue's front to the writer (`None`: the sink failed, the queue is dropped).
    pub(crate) fn hand_over(&mut self, slot: Option<OwnedPermit<Message>>) {
        match (slot, self.pending.pop_front()) {
            (Some(slot), Some(message)) => {
                self.pending_bytes -= message.len();
                slot.send(message);
            }
            (_, front) => {
                drop(front);
                self.fail();
            }
        }
    }

    fn fail(&mut self) {
        self.writer = None;
        self.pending.clear();
        self.pending_bytes = 0;
    }

    /// Whether the sink has failed (the far end stopped reading for good).
    pub(crate) fn failed(&self) -> bool {
        self.writer.is_none()
    }

    /// Hands everything queued to the writer and lets it write it, for at most `wait`; then the
    /// writer ends and drops the sink.
    pub(crate) async fn close(&mut self, wait: Duration) {
        let drained = tokio::time::timeout(wait, async {
            while self.has_pending() {
                let slot = self.slot().await;
                self.hand_over(slot);
            }
            self.writer = None;
            if let Some(task) = self.task.as_mut() {
                let _ = task.await;
            }
        })
        .await;
        if drained.is_err() {
            self.fail();
            if let Some(task) = self.task.take() {
                task.abort();
            }
        }
        self.task = None;
    }
}
