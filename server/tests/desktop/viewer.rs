//! A desktop viewer for the tests: opens a desktop session through the relay, reads events and
//! pictures (joining split ones), acknowledges when told to, and decodes tiles and snapshots
//! with jpeg-decoder and png (video: `xprobe::decode_centre_colours`).

use serde_json::json;
use tether_common::ids::DeviceId;
use tether_common::relay::SessionKind;
use tether_common::relay::desktop::{
    self, AudioHeader, BinaryKind, CursorHeader, DesktopEvent, DesktopRequest, PictureHeader,
    SNAPSHOT_HEADER_LEN, TileHeader,
};
use tokio::time::{Duration, Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message;

use crate::common::TestServer;
use crate::sockets::{RelaySocket, open_session, send};
use crate::support::DEADLINE;

/// What the agent sent, one relay message (or one joined picture) at a time.
#[derive(Debug)]
pub enum Received {
    Event(DesktopEvent),
    Picture {
        header: PictureHeader,
        payload: Vec<u8>,
        /// Bytes on the wire, headers included.
        wire_bytes: usize,
    },
    Cursor(CursorHeader),
    Snapshot(Vec<u8>),
    /// One Opus packet of the device's sound, and its frame's size on the wire.
    Audio {
        header: AudioHeader,
        packet: Vec<u8>,
        wire_bytes: usize,
    },
}

pub struct Viewer {
    ws: RelaySocket,
    /// A picture whose first parts arrived (FLAG_MORE).
    partial: Option<(PictureHeader, Vec<u8>, usize)>,
    snapshot: Vec<u8>,
}

impl Viewer {
    /// Opens a desktop session to `device` as the owner of `cookie` and sends `start` (JSON).
    pub async fn open(
        server: &TestServer,
        cookie: &str,
        device: &DeviceId,
        start: serde_json::Value,
    ) -> Viewer {
        let mut control = server.control(cookie).await;
        let mut ws = open_session(server, &mut control, cookie, device, SessionKind::Desktop).await;
        let mut start = start;
        start["type"] = json!("start");
        send(&mut ws, Message::text(start.to_string())).await;
        Viewer {
            ws,
            partial: None,
            snapshot: Vec::new(),
        }
    }

    pub async fn send(&mut self, request: &DesktopRequest) {
        send(&mut self.ws, Message::text(desktop::to_json(request))).await;
    }

    /// Ends the session from the viewer's side.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    pub async fn ack(&mut self, seq: u32) {
        self.send(&DesktopRequest::Ack { seq }).await;
    }

    /// The next complete thing the agent sent, or `None` at `deadline`. Panics if the session
    /// closes.
    pub async fn next_until(&mut self, deadline: Instant) -> Option<Received> {
        use futures_util::StreamExt;
        loop {
            let message = match timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(message))) => message,
                Ok(other) => panic!("the desktop session ended: {other:?}"),
            };
            let bytes = match message {
                Message::Text(text) => {
                    let event = desktop::parse_event(&text)
                        .unwrap_or_else(|| panic!("not a desktop event: {text}"));
                    return Some(Received::Event(event));
                }
                Message::Binary(bytes) => bytes,
                Message::Close(frame) => panic!("the desktop session closed: {frame:?}"),
                _ => continue,
            };
            match BinaryKind::from_byte(bytes[0]) {
                Some(BinaryKind::Cursor) => {
                    let (header, _) = CursorHeader::read(&bytes).expect("a cursor frame");
                    return Some(Received::Cursor(header));
                }
                Some(BinaryKind::Snapshot) => {
                    self.snapshot
                        .extend_from_slice(&bytes[SNAPSHOT_HEADER_LEN..]);
                    if bytes[1] & desktop::FLAG_MORE == 0 {
                        return Some(Received::Snapshot(std::mem::take(&mut self.snapshot)));
                    }
                }
                Some(BinaryKind::Video | BinaryKind::Tiles) => {
                    let (header, part) = PictureHeader::read(&bytes).expect("a picture header");
                    let (first, mut payload, mut wire) =
                        self.partial.take().unwrap_or((header, Vec::new(), 0));
                    assert_eq!(first.seq, header.seq, "parts of one picture");
                    payload.extend_from_slice(part);
                    wire += bytes.len();
                    if header.has_more() {
                        self.partial = Some((first, payload, wire));
                    } else {
                        return Some(Received::Picture {
                            header: first,
                            payload,
                            wire_bytes: wire,
                        });
                    }
                }
                Some(BinaryKind::Audio) => {
                    let (header, packet) = AudioHeader::read(&bytes).expect("an audio frame");
                    return Some(Received::Audio {
                        header,
                        packet: packet.to_vec(),
                        wire_bytes: bytes.len(),
                    });
                }
                None => panic!("unknown binary frame kind {}", bytes[0]),
            }
        }
    }

    pub async fn next(&mut self) -> Received {
        match self.next_until(Instant::now() + DEADLINE).await {
            Some(received) => received,
            None => panic!("nothing from the agent within {DEADLINE:?}"),
        }
    }

    /// The next event matching `wanted`; everything else is skipped (pictures unacknowledged).
    pub async fn event(
        &mut self,
        what: &str,
        wanted: impl Fn(&DesktopEvent) -> bool,
    ) -> DesktopEvent {
        loop {
            match self.next().await {
                Received::Event(DesktopEvent::Error { message }) if !what.contains("error") => {
                    panic!("the agent reported an error while waiting for {what}: {message}")
                }
                Received::Event(event) if wanted(&event) => return event,
                _ => {}
            }
        }
    }

    /// The next picture (events on the way are skipped, the stream event remembered).
    pub async fn picture(&mut self) -> (PictureHeader, Vec<u8>) {
        loop {
            match self.next().await {
                Received::Picture {
                    header, payload, ..
                } => return (header, payload),
                Received::Event(DesktopEvent::Error { message }) => {
                    panic!("the agent reported an error: {message}")
                }
                _ => {}
            }
        }
    }

    /// Asserts that no picture arrives for `wait` (a deadline, not a sleep: any picture fails
    /// at once).
    pub async fn no_picture_for(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        while let Some(received) = self.next_until(deadline).await {
            if let Received::Picture { header, .. } = received {
                panic!("a picture arrived although nothing changed: {header:?}");
            }
        }
    }
}

/// The tiles of a tiles payload, each decoded: (header, width, height, RGB pixels).
pub fn decode_tiles(payload: &[u8]) -> Vec<(TileHeader, Vec<u8>)> {
    TileHeader::split(payload)
        .expect("a well-formed tiles payload")
        .into_iter()
        .map(|(header, jpeg)| {
            let mut decoder = jpeg_decoder::Decoder::new(jpeg);
            let pixels = decoder.decode().expect("a JPEG");
            let info = decoder.info().unwrap();
            assert_eq!((info.width, info.height), (header.width, header.height));
            (header, pixels)
        })
        .collect()
}

/// A PNG's size and RGB pixels.
pub fn decode_png(png: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    pixels.truncate(info.buffer_size());
    (info.width, info.height, pixels)
}
