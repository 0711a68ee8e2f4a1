//! Remote-desktop sessions over the relay.
//!
//! After `"c"`, the console sends one [`DesktopRequest::Start`] text frame. Then:
//! - **text frames, console → agent**: [`DesktopRequest`] as JSON: settings, acknowledgements,
//!   input, clipboard;
//! - **text frames, agent → console**: [`DesktopEvent`] as JSON: the displays, the stream's
//!   parameters, the pointer, the clipboard, errors;
//! - **binary frames, agent → console**: pictures, each starting with a [`FrameHeader`]-style
//!   kind byte (see [`BinaryKind`]): encoded video, JPEG tiles, the cursor's shape, a PNG snapshot,
//!   and the device's sound ([`AudioHeader`] then one Opus packet) once the viewer asks for it
//!   with [`DesktopRequest::Audio`]. The console sends no binary frames.
//!
//! # Flow control: the latest frame wins
//! Every picture frame carries a sequence number; the console answers [`DesktopRequest::Ack`] once
//! it has drawn it. The agent keeps at most [`FRAME_WINDOW`] frames unacknowledged per viewer;
//! while the window is full it sends nothing and keeps only the newest screen, so a slow link
//! lowers the frame rate instead of queueing seconds of video. A viewer that missed frames of a
//! video stream gets a key frame next.
//!
//! # Large frames
//! A relay message is at most [`MAX_RELAY_FRAME`](super::MAX_RELAY_FRAME) bytes. A picture that
//! does not fit is split over several messages: each repeats the header, all but the last carry
//! [`FLAG_MORE`], and the console joins the payloads in order.
//!
//! # Coordinates
//! Pointer positions are pixels of the picture the console receives (which may be scaled down
//! from the display), with (0, 0) at the selected display's top-left corner; the agent maps them
//! back to the screen.

use serde::{Deserialize, Serialize};

/// Picture frames a viewer may have unacknowledged before the agent waits.
pub const FRAME_WINDOW: u32 = 2;

/// Frame rates and qualities the agent accepts; requests are clamped into these.
pub const MIN_FPS: u8 = 1;
pub const MAX_FPS: u8 = 60;
pub const MIN_QUALITY: u8 = 1;
pub const MAX_QUALITY: u8 = 100;

/// How the agent encodes pictures for a viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// H.264 (Annex B byte stream), for WebCodecs and native decoders.
    H264,
    /// VP8 (raw frames, no container).
    Vp8,
    /// JPEG tiles of the changed regions: for viewers that cannot decode video.
    Jpeg,
}

/// Which part of the screen a session shows.
/// On the wire: the string `"all"` or a display id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DisplaySelection {
    /// The whole X screen (every monitor).
    #[default]
    All,
    /// One monitor, by its [`DisplayInfo::id`].
    One(u32),
}

/// Console → agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum DesktopRequest {
    /// The first frame after `"c"`.
    Start(StartDesktop),
    /// Change some stream settings; absent fields keep their value.
    Settings(StreamSettings),
    /// Show another display (or all of them).
    Display {
        #[serde(default)]
        display: DisplaySelection,
    },
    /// "Send a key frame now" (the viewer joined late or its decoder failed).
    Keyframe,
    /// The viewer has drawn every picture frame up to and including `seq`.
    Ack { seq: u32 },
    /// Pointer position, in picture pixels.
    MouseMove { x: u32, y: u32 },
    /// A pointer button pressed or released (at the last position).
    MouseButton { button: MouseButton, down: bool },
    /// Wheel steps: positive `dy` scrolls down, positive `dx` scrolls right.
    Wheel {
        #[serde(default)]
        dx: i32,
        #[serde(default)]
        dy: i32,
    },
    /// A physical key by its DOM `KeyboardEvent.code` (`"KeyA"`, `"ShiftLeft"`, …): the key at
    /// that place on the remote keyboard, whatever the remote layout makes of it.
    Key { code: String, down: bool },
    /// Characters to type as they are, whatever the remote layout (the agent finds or borrows a
    /// key for each).
    Text { text: String },
    /// Press these keys (DOM codes) in order, then release them in reverse: Ctrl-Alt-Del,
    /// Super, Alt-Tab, …
    Combo { codes: Vec<String> },
    /// Put text on the remote clipboard.
    ClipboardSet { text: String },
    /// Ask for the remote clipboard's text (answered with [`DesktopEvent::Clipboard`]).
    ClipboardGet,
    /// Ask for one lossless PNG of the selected display (answered with a
    /// [`BinaryKind::Snapshot`] frame).
    Snapshot,
    /// Answered at once with [`DesktopEvent::Pong`] carrying the same `t`: the viewer's round-trip
    /// figure.
    Ping { t: u64 },
    /// Start or stop sending what the device plays, or what its microphone hears (answered
    /// with [`DesktopEvent::Audio`]). The microphone only when the device's group allows it
    /// ([`TunnelRequest::microphone`](super::TunnelRequest::microphone)), and never unseen: the
    /// person at the device is shown a notice with a button that stops it.
    Audio {
        on: bool,
        #[serde(default)]
        source: AudioSource,
    },
    #[serde(other)]
    Unknown,
}

/// What a viewer asks for when it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartDesktop {
    #[serde(default)]
    pub display: DisplaySelection,
    #[serde(flatten)]
    pub settings: StreamSettings,
}

/// Stream settings. In `start`, absent fields take the defaults ([`StreamSettings::DEFAULT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<Codec>,
    /// 1 (smallest) ..= 100 (best).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    /// Most frames per second to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<u8>,
    /// Scale the picture down to at most this many pixels wide (0 or absent: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_width: Option<u32>,
}

/// Settings with every field decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveSettings {
    pub codec: Codec,
    pub quality: u8,
    pub fps: u8,
    pub max_width: Option<u32>,
}

impl StreamSettings {
    pub const DEFAULT: EffectiveSettings = EffectiveSettings {
        codec: Codec::H264,
        quality: 60,
        fps: 30,
        max_width: None,
    };

    /// `base` with this request's fields applied, clamped to what the agent accepts.
    pub fn apply_to(&self, base: EffectiveSettings) -> EffectiveSettings {
        EffectiveSettings {
            codec: self.codec.unwrap_or(base.codec),
            quality: self
                .quality
                .unwrap_or(base.quality)
                .clamp(MIN_QUALITY, MAX_QUALITY),
            fps: self.fps.unwrap_or(base.fps).clamp(MIN_FPS, MAX_FPS),
            max_width: match self.max_width {
                Some(0) => None,
                Some(width) => Some(width.max(64)),
                None => base.max_width,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MouseButton {
    Left,
    Middle,
    Right,
    Back,
    Forward,
}

/// One monitor of the remote screen, in screen pixels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisplayInfo {
    pub id: u32,
    pub name: String,
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
    pub primary: bool,
}

/// Agent → console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum DesktopEvent {
    /// The monitors and which one is shown; sent after `start` and whenever they change.
    Displays {
        displays: Vec<DisplayInfo>,
        selected: DisplaySelection,
    },
    /// The stream's parameters; sent before the first picture and whenever they change (a new
    /// size or codec). The next picture after it is a key frame.
    Stream {
        codec: Codec,
        /// The WebCodecs codec string (`"avc1.42e01f"`, `"vp8"`), or `"jpeg"`.
        codec_string: String,
        /// Picture size in pixels.
        width: u32,
        height: u32,
        quality: u8,
        fps: u8,
        /// True when the user may only watch: the agent ignores input.
        view_only: bool,
        /// The pictures come on the direct path's H.264 video track from now on, not as binary
        /// frames (`tether_rtc::VideoTrack`); the viewer acknowledges none of them and asks for
        /// key frames with RTCP (PLI) instead of `keyframe`. Absent: in band.
        #[serde(default, skip_serializing_if = "is_false")]
        track: bool,
    },
    /// Where the pointer is, in picture pixels (sent when it moves, at most once per picture).
    Pointer { x: i32, y: i32 },
    /// The remote clipboard's text: after `clipboardGet`, and when it changes remotely.
    Clipboard { text: String },
    /// The answer to [`DesktopRequest::Ping`], with what the agent spent on its latest picture
    /// (absent before the first): the viewer's overlay splits the latency into capture and
    /// encode (here), network (half the round trip) and decode (its own), whichever path the
    /// pictures take.
    Pong {
        t: u64,
        /// Microseconds to grab the screen for the latest picture.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        capture_us: Option<u32>,
        /// Microseconds to encode it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encode_us: Option<u32>,
    },
    /// Whether the device's sound now flows ([`BinaryKind::Audio`] frames: Opus, 48 kHz,
    /// `channels`, 20 ms packets), and when it does not, why (nothing to capture, no sound
    /// server, turned off).
    Audio {
        on: bool,
        #[serde(default)]
        source: AudioSource,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channels: Option<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        why: Option<String>,
    },
    /// Input was refused or a request failed; `message` is for people. The session goes on.
    Notice { message: String },
    /// The session cannot go on (no X display, capture failed); the agent closes after it.
    Error { message: String },
    #[serde(other)]
    Unknown,
}

/// What a viewer hears of the device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioSource {
    /// What the device plays (the monitor of its default output).
    #[default]
    Output,
    /// What its default microphone hears.
    Microphone,
}

/// The first byte of every binary frame from the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BinaryKind {
    /// An encoded video frame ([`PictureHeader`], then the codec's bytes).
    Video = 1,
    /// JPEG tiles of changed regions ([`PictureHeader`], then [`TileHeader`] + JPEG, repeated).
    Tiles = 2,
    /// The cursor's shape ([`CursorHeader`], then width × height RGBA pixels, not premultiplied).
    Cursor = 3,
    /// A lossless PNG of the selected display: the kind byte, a flags byte, then PNG bytes.
    Snapshot = 4,
    /// One Opus packet of the device's sound ([`AudioHeader`], then the packet).
    Audio = 5,
}

impl BinaryKind {
    pub fn from_byte(byte: u8) -> Option<BinaryKind> {
        match byte {
            1 => Some(BinaryKind::Video),
            2 => Some(BinaryKind::Tiles),
            3 => Some(BinaryKind::Cursor),
            4 => Some(BinaryKind::Snapshot),
            5 => Some(BinaryKind::Audio),
            _ => None,
        }
    }
}

/// The 8 bytes in front of an Opus packet (big-endian): the kind byte, a flags byte (0), the
/// packet's sequence number (wrapping), and the milliseconds since the sound started when it was
/// captured (the player's clock for gaps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioHeader {
    pub seq: u16,
    pub captured_ms: u32,
}

impl AudioHeader {
    pub const LEN: usize = 8;

    /// The whole frame: header, then `packet`.
    pub fn frame(&self, packet: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN + packet.len());
        out.push(BinaryKind::Audio as u8);
        out.push(0);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.captured_ms.to_be_bytes());
        out.extend_from_slice(packet);
        out
    }

    /// The header and the Opus packet of an audio frame.
    pub fn read(frame: &[u8]) -> Option<(AudioHeader, &[u8])> {
        if frame.len() < Self::LEN || frame[0] != BinaryKind::Audio as u8 {
            return None;
        }
        let header = AudioHeader {
            seq: u16::from_be_bytes([frame[2], frame[3]]),
            captured_ms: u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
        };
        Some((header, &frame[Self::LEN..]))
    }
}

/// The picture can be decoded on its own (a video key frame; tiles that cover the whole picture).
pub const FLAG_KEY: u8 = 1 << 0;
/// More messages follow with the rest of this picture's payload.
pub const FLAG_MORE: u8 = 1 << 1;

/// The 20 bytes in front of a video frame's or a tile set's payload (big-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PictureHeader {
    pub kind: BinaryKind,
    pub flags: u8,
    /// Acknowledge this number once drawn.
    pub seq: u32,
    /// Milliseconds since the session started when the screen was captured.
    pub captured_ms: u32,
    /// Microseconds the agent spent encoding this picture.
    pub encode_us: u32,
    pub width: u16,
    pub height: u16,
}

impl PictureHeader {
    pub const LEN: usize = 20;

    pub fn is_key(&self) -> bool {
        self.flags & FLAG_KEY != 0
    }

    pub fn has_more(&self) -> bool {
        self.flags & FLAG_MORE != 0
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(self.kind as u8);
        out.push(self.flags);
        out.extend_from_slice(&[0, 0]); // reserved
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.captured_ms.to_be_bytes());
        out.extend_from_slice(&self.encode_us.to_be_bytes());
        out.extend_from_slice(&self.width.to_be_bytes());
        out.extend_from_slice(&self.height.to_be_bytes());
    }

    /// Reads the header of a video or tiles frame; returns it and the payload.
    pub fn read(frame: &[u8]) -> Option<(PictureHeader, &[u8])> {
        if frame.len() < Self::LEN {
            return None;
        }
        let kind = BinaryKind::from_byte(frame[0])?;
        if !matches!(kind, BinaryKind::Video | BinaryKind::Tiles) {
            return None;
        }
        let header = PictureHeader {
            kind,
            flags: frame[1],
            seq: be_u32(&frame[4..8]),
            captured_ms: be_u32(&frame[8..12]),
            encode_us: be_u32(&frame[12..16]),
            width: be_u16(&frame[16..18]),
            height: be_u16(&frame[18..20]),
        };
        Some((header, &frame[Self::LEN..]))
    }
}

/// In front of each JPEG inside a [`BinaryKind::Tiles`] payload (big-endian, 12 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileHeader {
    pub x: u16,
    pub y: u16,
    pub width: u16,
    pub height: u16,
    /// Bytes of JPEG that follow.
    pub len: u32,
}

impl TileHeader {
    pub const LEN: usize = 12;

    pub fn write(&self, out: &mut Vec<u8>) {
        for value in [self.x, self.y, self.width, self.height] {
            out.extend_from_slice(&value.to_be_bytes());
        }
        out.extend_from_slice(&self.len.to_be_bytes());
    }

    /// Splits a whole (joined) tiles payload into tiles; `None` if it is malformed.
    pub fn split(mut payload: &[u8]) -> Option<Vec<(TileHeader, &[u8])>> {
        let mut tiles = Vec::new();
        while !payload.is_empty() {
            if payload.len() < Self::LEN {
                return None;
            }
            let header = TileHeader {
                x: be_u16(&payload[0..2]),
                y: be_u16(&payload[2..4]),
                width: be_u16(&payload[4..6]),
                height: be_u16(&payload[6..8]),
                len: be_u32(&payload[8..12]),
            };
            let end = Self::LEN.checked_add(header.len as usize)?;
            let jpeg = payload.get(Self::LEN..end)?;
            tiles.push((header, jpeg));
            payload = &payload[end..];
        }
        Some(tiles)
    }
}

/// In front of a cursor shape's pixels (big-endian, 12 bytes including kind and flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorHeader {
    pub width: u16,
    pub height: u16,
    pub hot_x: u16,
    pub hot_y: u16,
}

impl CursorHeader {
    pub const LEN: usize = 12;

    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(BinaryKind::Cursor as u8);
        out.push(0);
        out.extend_from_slice(&[0, 0]);
        for value in [self.width, self.height, self.hot_x, self.hot_y] {
            out.extend_from_slice(&value.to_be_bytes());
        }
    }

    /// Reads a cursor frame; `None` unless the pixel count matches the size.
    pub fn read(frame: &[u8]) -> Option<(CursorHeader, &[u8])> {
        if frame.len() < Self::LEN || frame[0] != BinaryKind::Cursor as u8 {
            return None;
        }
        let header = CursorHeader {
            width: be_u16(&frame[4..6]),
            height: be_u16(&frame[6..8]),
            hot_x: be_u16(&frame[8..10]),
            hot_y: be_u16(&frame[10..12]),
        };
        let pixels = &frame[Self::LEN..];
        (pixels.len() == header.width as usize * header.height as usize * 4)
            .then_some((header, pixels))
    }
}

/// Splits one picture (or snapshot) into relay messages of at most `max_message` bytes: each
/// message is `header` (with [`FLAG_MORE`] set on all but the last) followed by the next part of
/// `payload`. `write_header(flags, out)` writes the header with the given flags byte.
pub fn split_payload(
    payload: &[u8],
    header_len: usize,
    max_message: usize,
    mut write_header: impl FnMut(u8, &mut Vec<u8>),
    base_flags: u8,
) -> Vec<Vec<u8>> {
    let room = max_message.saturating_sub(header_len).max(1);
    let mut chunks: Vec<&[u8]> = payload.chunks(room).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(index, chunk)| {
            let flags = if index < last {
                base_flags | FLAG_MORE
            } else {
                base_flags & !FLAG_MORE
            };
            let mut message = Vec::with_capacity(header_len + chunk.len());
            write_header(flags, &mut message);
            message.extend_from_slice(chunk);
            message
        })
        .collect()
}

/// Writes a snapshot frame's two header bytes.
pub fn write_snapshot_header(flags: u8, out: &mut Vec<u8>) {
    out.push(BinaryKind::Snapshot as u8);
    out.push(flags);
}

/// The two header bytes of a snapshot frame.
pub const SNAPSHOT_HEADER_LEN: usize = 2;

/// Whether a desktop session with these rights may send input (view-only otherwise).
pub fn input_allowed(rights: crate::rights::Rights) -> bool {
    rights.contains(crate::rights::Rights::REMOTE_CONTROL)
}

fn is_false(value: &bool) -> bool {
    !*value
}

pub fn to_json<T: Serialize>(message: &T) -> String {
    // These enums hold only strings and numbers: serialising cannot fail.
    serde_json::to_string(message).unwrap_or_default()
}

pub fn parse_request(text: &str) -> Option<DesktopRequest> {
    serde_json::from_str(text).ok()
}

pub fn parse_event(text: &str) -> Option<DesktopEvent> {
    serde_json::from_str(text).ok()
}

fn be_u16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

impl Serialize for DisplaySelection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            DisplaySelection::All => serializer.serialize_str("all"),
            DisplaySelection::One(id) => serializer.serialize_u32(*id),
        }
    }
}

impl<'de> Deserialize<'de> for DisplaySelection {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Id(u32),
            Name(String),
        }
        match Wire::deserialize(deserializer)? {
            Wire::Id(id) => Ok(DisplaySelection::One(id)),
            Wire::Name(name) if name == "all" => Ok(DisplaySelection::All),
            Wire::Name(name) => Err(serde::de::Error::custom(format!(
                "unknown display {name:?} (expected \"all\" or a display id)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn audio_frames_round_trip_and_other_frames_are_not_audio() {
        let header = super::AudioHeader {
            seq: 65535,
            captured_ms: 123_456,
        };
        let frame = header.frame(b"opus");
        assert_eq!(frame.len(), super::AudioHeader::LEN + 4);
        assert_eq!(
            super::AudioHeader::read(&frame),
            Some((header, &b"opus"[..]))
        );
        assert_eq!(super::AudioHeader::read(&frame[..7]), None);
        let mut video = frame.clone();
        video[0] = super::BinaryKind::Video as u8;
        assert_eq!(super::AudioHeader::read(&video), None);
        let on = super::parse_request(r#"{"type":"audio","on":true}"#);
        assert_eq!(
            on,
            Some(super::DesktopRequest::Audio {
                on: true,
                source: super::AudioSource::Output
            })
        );
        let mic = super::parse_request(r#"{"type":"audio","on":true,"source":"microphone"}"#);
        assert!(matches!(
            mic,
            Some(super::DesktopRequest::Audio {
                source: super::AudioSource::Microphone,
                ..
            })
        ));
    }

    use super::*;
    use crate::rights::Rights;

    #[test]
    fn a_minimal_start_takes_the_defaults() {
        let request = parse_request(r#"{"type":"start"}"#).unwrap();
        let DesktopRequest::Start(start) = request else {
            panic!("not a start: {request:?}");
        };
        assert_eq!(start.display, DisplaySelection::All);
        assert_eq!(
            start.settings.apply_to(StreamSettings::DEFAULT),
            StreamSettings::DEFAULT
        );
    }

    #[test]
    fn start_carries_display_and_settings() {
        let text =
            r#"{"type":"start","display":1,"codec":"jpeg","quality":200,"fps":0,"maxWidth":10}"#;
        let DesktopRequest::Start(start) = parse_request(text).unwrap() else {
            panic!("not a start");
        };
        assert_eq!(start.display, DisplaySelection::One(1));
        let effective = start.settings.apply_to(StreamSettings::DEFAULT);
        assert_eq!(effective.codec, Codec::Jpeg);
        assert_eq!(effective.quality, MAX_QUALITY);
        assert_eq!(effective.fps, MIN_FPS);
        assert_eq!(effective.max_width, Some(64));
        let back = parse_request(&to_json(&DesktopRequest::Start(start.clone()))).unwrap();
        assert_eq!(back, DesktopRequest::Start(start));
    }

    #[test]
    fn settings_change_only_what_they_name() {
        let base = EffectiveSettings {
            codec: Codec::Vp8,
            quality: 40,
            fps: 10,
            max_width: Some(1280),
        };
        let DesktopRequest::Settings(change) =
            parse_request(r#"{"type":"settings","fps":24}"#).unwrap()
        else {
            panic!("not settings");
        };
        let after = change.apply_to(base);
        assert_eq!(after.fps, 24);
        assert_eq!(after.codec, Codec::Vp8);
        assert_eq!(after.max_width, Some(1280));
        let cleared = StreamSettings {
            max_width: Some(0),
            ..StreamSettings::default()
        };
        assert_eq!(cleared.apply_to(base).max_width, None);
    }

    #[test]
    fn display_selection_is_all_or_an_id() {
        assert_eq!(
            parse_request(r#"{"type":"display","display":"all"}"#),
            Some(DesktopRequest::Display {
                display: DisplaySelection::All
            })
        );
        assert_eq!(
            parse_request(r#"{"type":"display","display":2}"#),
            Some(DesktopRequest::Display {
                display: DisplaySelection::One(2)
            })
        );
        assert_eq!(
            parse_request(r#"{"type":"display","display":"left"}"#),
            None
        );
        let event = DesktopEvent::Displays {
            displays: vec![],
            selected: DisplaySelection::One(0),
        };
        assert_eq!(
            to_json(&event),
            r#"{"type":"displays","displays":[],"selected":0}"#
        );
    }

    #[test]
    fn input_messages_parse() {
        assert_eq!(
            parse_request(r#"{"type":"mouseMove","x":10,"y":20}"#),
            Some(DesktopRequest::MouseMove { x: 10, y: 20 })
        );
        assert_eq!(
            parse_request(r#"{"type":"mouseButton","button":"right","down":true}"#),
            Some(DesktopRequest::MouseButton {
                button: MouseButton::Right,
                down: true
            })
        );
        assert_eq!(
            parse_request(r#"{"type":"wheel","dy":-3}"#),
            Some(DesktopRequest::Wheel { dx: 0, dy: -3 })
        );
        assert_eq!(
            parse_request(r#"{"type":"key","code":"KeyA","down":false}"#),
            Some(DesktopRequest::Key {
                code: "KeyA".into(),
                down: false
            })
        );
        assert_eq!(
            parse_request(r#"{"type":"text","text":"äß€"}"#),
            Some(DesktopRequest::Text {
                text: "äß€".into()
            })
        );
        assert_eq!(
            parse_request(r#"{"type":"combo","codes":["ControlLeft","AltLeft","Delete"]}"#),
            Some(DesktopRequest::Combo {
                codes: vec!["ControlLeft".into(), "AltLeft".into(), "Delete".into()]
            })
        );
        assert_eq!(parse_request(r#"{"type":"mouseMove","x":-1,"y":0}"#), None);
        assert_eq!(
            parse_request(r#"{"type":"teleport"}"#),
            Some(DesktopRequest::Unknown)
        );
        assert_eq!(parse_request("c"), None);
        assert_eq!(
            parse_request(r#"{"type":"ping","t":5}"#),
            Some(DesktopRequest::Ping { t: 5 })
        );
        assert_eq!(
            to_json(&DesktopEvent::Pong {
                t: 5,
                capture_us: None,
                encode_us: None
            }),
            r#"{"type":"pong","t":5}"#
        );
        assert_eq!(
            to_json(&DesktopEvent::Pong {
                t: 5,
                capture_us: Some(2_100),
                encode_us: Some(4_500)
            }),
            r#"{"type":"pong","t":5,"captureUs":2100,"encodeUs":4500}"#
        );
    }

    #[test]
    fn stream_events_name_their_codec() {
        let event = DesktopEvent::Stream {
            codec: Codec::H264,
            codec_string: "avc1.42e01f".into(),
            width: 1920,
            height: 1080,
            quality: 60,
            fps: 30,
            view_only: false,
            track: false,
        };
        let text = to_json(&event);
        assert!(!text.contains("track"), "in band by default: {text}");
        assert!(text.contains(r#""codec":"h264""#), "{text}");
        assert!(text.contains(r#""codecString":"avc1.42e01f""#), "{text}");
        assert!(text.contains(r#""viewOnly":false"#), "{text}");
        assert_eq!(parse_event(&text), Some(event));
    }

    #[test]
    fn picture_headers_round_trip() {
        let header = PictureHeader {
            kind: BinaryKind::Video,
            flags: FLAG_KEY,
            seq: 0x01020304,
            captured_ms: 77,
            encode_us: 1234,
            width: 1920,
            height: 1080,
        };
        let mut frame = Vec::new();
        header.write(&mut frame);
        assert_eq!(frame.len(), PictureHeader::LEN);
        frame.extend_from_slice(b"nal");
        let (back, payload) = PictureHeader::read(&frame).unwrap();
        assert_eq!(back, header);
        assert!(back.is_key() && !back.has_more());
        assert_eq!(payload, b"nal");
        assert!(PictureHeader::read(&frame[..19]).is_none());
        frame[0] = BinaryKind::Cursor as u8;
        assert!(PictureHeader::read(&frame).is_none());
    }

    #[test]
    fn tiles_split_and_refuse_truncation() {
        let mut payload = Vec::new();
        for (x, jpeg) in [(0u16, &b"abc"[..]), (64, &b""[..]), (128, &b"zz"[..])] {
            TileHeader {
                x,
                y: 8,
                width: 64,
                height: 64,
                len: jpeg.len() as u32,
            }
            .write(&mut payload);
            payload.extend_from_slice(jpeg);
        }
        let tiles = TileHeader::split(&payload).unwrap();
        assert_eq!(tiles.len(), 3);
        assert_eq!(tiles[0].1, b"abc");
        assert_eq!(tiles[2].0.x, 128);
        assert_eq!(tiles[2].1, b"zz");
        assert!(TileHeader::split(&payload[..payload.len() - 1]).is_none());
        assert!(TileHeader::split(&payload[..5]).is_none());
        assert_eq!(TileHeader::split(&[]).unwrap().len(), 0);
    }

    #[test]
    fn cursor_frames_check_their_pixel_count() {
        let header = CursorHeader {
            width: 2,
            height: 1,
            hot_x: 1,
            hot_y: 0,
        };
        let mut frame = Vec::new();
        header.write(&mut frame);
        frame.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let (back, pixels) = CursorHeader::read(&frame).unwrap();
        assert_eq!(back, header);
        assert_eq!(pixels.len(), 8);
        assert!(CursorHeader::read(&frame[..frame.len() - 1]).is_none());
    }

    #[test]
    fn big_pictures_are_split_with_more_flags() {
        let payload: Vec<u8> = (0..250u8).collect();
        let header = |flags: u8, out: &mut Vec<u8>| {
            PictureHeader {
                kind: BinaryKind::Video,
                flags,
                seq: 9,
                captured_ms: 0,
                encode_us: 0,
                width: 1,
                height: 1,
            }
            .write(out)
        };
        let messages = split_payload(&payload, PictureHeader::LEN, 120, header, FLAG_KEY);
        assert_eq!(messages.len(), 3);
        let mut joined = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            assert!(message.len() <= 120);
            let (h, part) = PictureHeader::read(message).unwrap();
            assert!(h.is_key());
            assert_eq!(h.has_more(), index < 2);
            joined.extend_from_slice(part);
        }
        assert_eq!(joined, payload);
        let empty = split_payload(&[], SNAPSHOT_HEADER_LEN, 100, write_snapshot_header, 0);
        assert_eq!(empty, vec![vec![BinaryKind::Snapshot as u8, 0]]);
    }

    #[test]
    fn only_remote_control_may_send_input() {
        assert!(input_allowed(Rights::REMOTE_CONTROL));
        assert!(input_allowed(Rights::FULL));
        assert!(!input_allowed(
            Rights::DESKTOP_VIEW_ONLY.union(Rights::VIEW)
        ));
    }
}
