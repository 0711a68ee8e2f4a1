//! A channel through a CIRA tunnel as a byte stream for the rest of the server: whoever opens one
//! ([`super::AmtOnline::open`]) gets a `DuplexStream` (an HTTP client for WS-Management, a proxied
//! web page), and a task per channel moves bytes between the other end of that stream and the
//! connection's driver.
//!
//! Flow control holds end to end. Towards AMT, the driver takes a channel's bytes only while
//! little of that channel waits for AMT's window (`READY_BYTES`). From AMT, bytes are handed on
//! here and reported back as consumed once the reader took them, and only then does the session
//! grant AMT more window: a reader that stops reading stops AMT.

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

/// Bytes buffered in the in-memory stream each way.
pub(super) const STREAM_BUFFER: usize = 64 * 1024;
/// Read at a time from the server's side.
const READ_CHUNK: usize = 16 * 1024;

/// What a channel's task tells the driver.
#[derive(Debug)]
pub(super) enum FromBridge {
    /// Bytes for AMT.
    Data(u32, Vec<u8>),
    /// The reader took this many of AMT's bytes.
    Consumed(u32, usize),
    /// The server's side closed the stream.
    Closed(u32),
}

/// The driver's handle on one channel's task.
pub(super) struct Bridge {
    /// AMT's bytes for the reader. Unbounded, but bounded in fact: AMT sends only within the
    /// window, and the window grows only as `Consumed` comes back.
    pub to_reader: mpsc::UnboundedSender<Vec<u8>>,
    /// The driver takes this channel's bytes when ready (a permit per read chunk).
    pub ready: mpsc::Sender<()>,
}

/// Starts the task for `channel` on one end of a new in-memory stream and returns the other end.
pub(super) fn spawn(channel: u32, driver: mpsc::Sender<FromBridge>) -> (Bridge, DuplexStream) {
    let (ours, theirs) = tokio::io::duplex(STREAM_BUFFER);
    let (to_reader, mut from_amt) = mpsc::unbounded_channel::<Vec<u8>>();
    let (ready, mut may_read) = mpsc::channel::<()>(1);
    let (mut read_half, mut write_half) = tokio::io::split(ours);
    // One task per direction, so that neither waits for the other (a reader that is itself
    // waiting for our bytes must still get AMT's).
    let towards_amt = driver.clone();
    tokio::spawn(async move {
        let mut buffer = vec![0; READ_CHUNK];
        // Each permit from the driver lets one chunk go: AMT's window sets the pace.
        while may_read.recv().await.is_some() {
            match read_half.read(&mut buffer).await {
                Ok(0) | Err(_) => {
                    let _ = towards_amt.send(FromBridge::Closed(channel)).await;
                    return;
                }
                Ok(n) => {
                    let data = FromBridge::Data(channel, buffer[..n].to_vec());
                    if towards_amt.send(data).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        while let Some(data) = from_amt.recv().await {
            // A reader that is gone drops what AMT sends; it still counts as consumed, so AMT is
            // not held up until the channel closes.
            let _ = write_half.write_all(&data).await;
            if driver
                .send(FromBridge::Consumed(channel, data.len()))
                .await
                .is_err()
            {
                return;
            }
        }
        // AMT closed the channel: the reader sees the end of the stream.
        let _ = write_half.shutdown().await;
    });
    (Bridge { to_reader, ready }, theirs)
}
