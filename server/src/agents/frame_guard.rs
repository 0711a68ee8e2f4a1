//! A size limit on the agent's WebSocket frames that applies as their headers arrive, and can
//! change while the socket lives.
//!
//! tungstenite checks its frame and message limits only against its configuration, fixed when
//! the socket is made, and it reserves a frame's declared length once the header is in. One
//! limit for the whole connection would be either too large before authentication (anyone could
//! make us buffer megabytes) or too small after it (an agent's `agentinfo` on a machine with
//! hundreds of interfaces may pass 64 KiB, and refusing it would drop the agent, which would
//! reconnect and be dropped again). So the socket is configured with the post-authentication
//! limit, and this guard, between the connection and tungstenite, walks the frame headers in the
//! byte stream and fails the read as soon as a header declares a frame, or a fragmented message,
//! larger than the limit of the moment: 64 KiB until the agent is admitted, 1 KiB while held.
//! The guard never buffers: it only counts the bytes it passes on.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest frame or message the peer may send now; shared by the guard and the code that
/// decides (admission raises it, holding lowers it).
#[derive(Clone, Debug)]
pub(super) struct FrameLimit(Arc<AtomicUsize>);

impl FrameLimit {
    pub(super) fn new(bytes: usize) -> FrameLimit {
        FrameLimit(Arc::new(AtomicUsize::new(bytes)))
    }

    pub(super) fn set(&self, bytes: usize) {
        self.0.store(bytes, Ordering::Relaxed);
    }

    pub(super) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the guard refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum TooLarge {
    #[error("a frame of {declared} bytes exceeds the limit of {limit}")]
    Frame { declared: u64, limit: usize },
    #[error("a fragmented message of at least {declared} bytes exceeds the limit of {limit}")]
    Message { declared: u64, limit: usize },
}

/// Follows the client's frames through the byte stream: gathers each header (at most 14
/// bytes), checks it, then skips its payload.
#[derive(Debug, Default)]
pub(super) struct FrameScanner {
    header: [u8; 14],
    header_len: usize,
    payload_left: u64,
    /// Payload bytes of the data message being received in fragments so far.
    message_len: u64,
}

impl FrameScanner {
    pub(super) fn scan(&mut self, mut bytes: &[u8], limit: usize) -> Result<(), TooLarge> {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let skip = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.payload_left -= skip as u64;
                bytes = &bytes[skip..];
                continue;
            }
            self.header[self.header_len] = bytes[0];
            self.header_len += 1;
            bytes = &bytes[1..];
            if let Some(payload) = self.complete_header() {
                self.header_len = 0;
                self.check(payload, limit)?;
                self.payload_left = payload;
            }
        }
        Ok(())
    }

    /// The payload length once the header gathered so far is complete.
    fn complete_header(&self) -> Option<u64> {
        if self.header_len < 2 {
            return None;
        }
        let short = self.header[1] & 0x7F;
        let extended = match short {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
        if self.header_len < 2 + extended + mask {
            return None;
        }
        Some(match extended {
            0 => u64::from(short),
            2 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            _ => {
                let mut length = [0u8; 8];
                length.copy_from_slice(&self.header[2..10]);
                u64::from_be_bytes(length)
            }
        })
    }

    fn check(&mut self, payload: u64, limit: usize) -> Result<(), TooLarge> {
        let limit_u64 = limit as u64;
        if payload > limit_u64 {
            return Err(TooLarge::Frame {
                declared: payload,
                limit,
            });
        }
        let opcode = self.header[0] & 0x0F;
        if opcode & 0x08 != 0 {
            // Control frames (close, ping, pong) stand alone, between a message's fragments.
            return Ok(());
        }
        let message = match opcode {
            0 => self.message_len.saturating_add(payload),
            _ => payload,
        };
        if message > limit_u64 {
            return Err(TooLarge::Message {
                declared: message,
                limit,
            });
        }
        let last_fragment = self.header[0] & 0x80 != 0;
        self.message_len = if last_fragment { 0 } else { message };
        Ok(())
    }
}

/// The agent's connection as tungstenite reads it: bytes pass unchanged, unless a frame header
/// breaks the limit; then this read and every later one fails.
pub(super) struct FrameGuard<S> {
    inner: S,
    limit: FrameLimit,
    scanner: FrameScanner,
    refused: Option<TooLarge>,
}

impl<S> FrameGuard<S> {
    pub(super) fn new(inner: S, limit: FrameLimit) -> FrameGuard<S> {
        FrameGuard {
            inner,
            limit,
            scanner: FrameScanner::default(),
            refused: None,
        }
    }
}

fn refusal(too_large: TooLarge) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, too_large)
}

impl<S: AsyncRead + Unpin> AsyncRead for FrameGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(too_large) = this.refused {
            return Poll::Ready(Err(refusal(too_large)));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let arrived = &buf.filled()[before..];
        if let Err(too_large) = this.scanner.scan(arrived, this.limit.get()) {
            // A failed read hands over nothing (AsyncRead's contract).
            buf.set_filled(before);
            this.refused = Some(too_large);
            return Poll::Ready(Err(refusal(too_large)));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The `TooLarge` behind a failed read, if the guard failed it.
pub(super) fn too_large_in(error: &io::Error) -> Option<TooLarge> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TooLarge>())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A masked client frame header: FIN and opcode in the first byte, then the length.
    fn header(first: u8, payload: u64) -> Vec<u8> {
        let mut header = vec![first];
        match payload {
            0..=125 => header.push(0x80 | payload as u8),
            126..=0xFFFF => {
                header.push(0x80 | 126);
                header.extend((payload as u16).to_be_bytes());
            }
            _ => {
                header.push(0x80 | 127);
                header.extend(payload.to_be_bytes());
            }
        }
        header.extend([1, 2, 3, 4]);
        header
    }

    fn frame(first: u8, payload: usize) -> Vec<u8> {
        let mut frame = header(first, payload as u64);
        frame.extend(std::iter::repeat_n(0x55, payload));
        frame
    }

    const BINARY: u8 = 0x82;
    const BINARY_FIRST_FRAGMENT: u8 = 0x02;
    const CONTINUATION: u8 = 0x00;
    const LAST_CONTINUATION: u8 = 0x80;
    const PING: u8 = 0x89;

    #[test]
    fn frames_up_to_the_limit_pass_in_any_split() {
        let mut stream = Vec::new();
        for size in [0, 1, 125, 126, 1000, 65535, 65536] {
            stream.extend(frame(BINARY, size));
        }
        for chunk in [1, 3, 7, 4096, stream.len()] {
            let mut scanner = FrameScanner::default();
            for piece in stream.chunks(chunk) {
                scanner.scan(piece, 65536).unwrap();
            }
            assert_eq!(scanner.header_len, 0);
            assert_eq!(scanner.payload_left, 0);
        }
    }

    #[test]
    fn a_large_header_is_refused_before_its_payload() {
        let mut scanner = FrameScanner::default();
        assert_eq!(
            scanner.scan(&header(BINARY, 16 * 1024 * 1024), 65536),
            Err(TooLarge::Frame {
                declared: 16 * 1024 * 1024,
                limit: 65536
            })
        );
        let mut scanner = FrameScanner::default();
        assert!(scanner.scan(&header(BINARY, u64::MAX), 65536).is_err());
    }

    #[test]
    fn fragments_count_towards_their_message_and_pings_between_them_do_not() {
        let mut scanner = FrameScanner::default();
        scanner
            .scan(&frame(BINARY_FIRST_FRAGMENT, 600), 1000)
            .unwrap();
        scanner.scan(&frame(PING, 100), 1000).unwrap();
        scanner.scan(&frame(CONTINUATION, 300), 1000).unwrap();
        assert_eq!(
            scanner.scan(&header(LAST_CONTINUATION, 101), 1000),
            Err(TooLarge::Message {
                declared: 1001,
                limit: 1000
            })
        );
        let mut scanner = FrameScanner::default();
        scanner
            .scan(&frame(BINARY_FIRST_FRAGMENT, 600), 1000)
            .unwrap();
        scanner.scan(&frame(LAST_CONTINUATION, 400), 1000).unwrap();
        scanner
            .scan(&frame(BINARY, 1000), 1000)
            .expect("a new message starts from zero");
    }

    #[tokio::test]
    async fn the_guard_fails_the_read_and_stays_failed_and_follows_limit_changes() {
        let limit = FrameLimit::new(100);
        let mut bytes = frame(BINARY, 100);
        bytes.extend(header(BINARY, 5000));
        let mut guard = FrameGuard::new(&bytes[..], limit.clone());
        let mut sink = Vec::new();
        let error = guard.read_to_end(&mut sink).await.unwrap_err();
        assert_eq!(
            too_large_in(&error),
            Some(TooLarge::Frame {
                declared: 5000,
                limit: 100
            })
        );
        assert!(guard.read(&mut [0u8; 16]).await.is_err());

        let mut guard = FrameGuard::new(&bytes[..], limit.clone());
        limit.set(5000);
        let mut sink = Vec::new();
        guard.read_to_end(&mut sink).await.unwrap();
        assert_eq!(sink, bytes);
    }
}
