//! The console end of a files session: requests out as text frames, replies and bytes back.

use anyhow::{Context, bail};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tether_common::ids::DeviceId;
use tether_common::relay::SessionKind;
use tether_common::relay::files::{self, FilesReply, FilesRequest};
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::connection::Control;
use crate::relay::SessionSocket as Socket;
use crate::relay::{self, close_reason};

/// What the device sent next.
pub(crate) enum Frame {
    Reply(FilesReply),
    Bytes(Bytes),
}

pub(crate) struct FilesSession {
    sink: SplitSink<Socket, Message>,
    stream: SplitStream<Socket>,
    next_id: u64,
}

impl FilesSession {
    pub(crate) async fn open(
        control: &mut Control,
        device: &DeviceId,
    ) -> anyhow::Result<FilesSession> {
        let socket = relay::start(control, device, SessionKind::Files).await?;
        let (sink, stream) = socket.split();
        Ok(FilesSession {
            sink,
            stream,
            next_id: 1,
        })
    }

    /// A fresh request id.
    pub(crate) fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(crate) async fn send(&mut self, request: &FilesRequest) -> anyhow::Result<()> {
        self.sink
            .send(Message::text(files::to_json(request)))
            .await
            .context("sending to the device")
    }

    /// Sends a chunk of an upload; returns when the relay has taken it (flow control).
    pub(crate) async fn send_bytes(&mut self, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.sink
            .send(Message::binary(bytes))
            .await
            .context("sending to the device")
    }

    /// Sends `request` and waits for its answer; the device's error message is the error.
    pub(crate) async fn call(&mut self, request: FilesRequest) -> anyhow::Result<FilesReply> {
        self.send(&request).await?;
        self.reply().await
    }

    /// The next reply (bytes in between are a protocol error); an `error` reply is the error.
    pub(crate) async fn reply(&mut self) -> anyhow::Result<FilesReply> {
        match self.next().await? {
            Frame::Reply(reply) => Ok(reply),
            Frame::Bytes(_) => bail!("the device sent bytes where an answer was expected"),
        }
    }

    /// The next reply or chunk of bytes; an `error` reply is the error.
    pub(crate) async fn next(&mut self) -> anyhow::Result<Frame> {
        loop {
            let message = self.stream.next().await;
            if let Some(frame) = frame_of(message)? {
                return Ok(frame);
            }
        }
    }

    /// An error the device sent without being asked (e.g. a failed write during an upload),
    /// without waiting for one.
    pub(crate) fn pending_error(&mut self) -> anyhow::Result<()> {
        while let Some(message) = self.stream.next().now_or_never() {
            if let Some(Frame::Reply(reply)) = frame_of(message)? {
                bail!("the device sent an unexpected answer: {reply:?}");
            }
        }
        Ok(())
    }

    pub(crate) async fn close(&mut self) {
        let _ = self.sink.close().await;
    }
}

/// `None` for frames that carry nothing (pings).
fn frame_of(
    message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> anyhow::Result<Option<Frame>> {
    match message {
        Some(Ok(Message::Binary(bytes))) => Ok(Some(Frame::Bytes(bytes))),
        Some(Ok(Message::Text(text))) => match files::parse_reply(&text) {
            Some(FilesReply::Error { message, .. }) => bail!("{message}"),
            Some(FilesReply::Unknown) | None => Ok(None),
            Some(reply) => Ok(Some(Frame::Reply(reply))),
        },
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Ok(None),
        other => bail!("the files session ended ({})", close_reason(other)),
    }
}
