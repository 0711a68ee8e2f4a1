//! A desktop session's pictures on the direct path's H.264 video track (issue 13). Once the
//! session runs on the data channel and the viewer negotiated a video m-line, H.264 pictures go
//! into the track as access units (str0m packetises and paces them) instead of binary frames; the
//! session acknowledges them itself, the viewer's PLI/FIR become key-frame requests, and the
//! congestion controller's estimate caps the encoder's rate. Everything else (events, cursor,
//! input, clipboard) stays on the session socket. Without a track, nothing changes.

use std::time::Instant;

use tether_common::relay::desktop::{BinaryKind, Codec, PictureHeader};
use tether_rtc::{TrackEvent, VideoTrack};
use tokio::sync::oneshot;

/// What the track tells the session.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TrackInput {
    /// Pictures may go on the track now.
    Ready,
    /// The viewer wants a key frame.
    Keyframe,
    /// The path takes about this many bits per second.
    Bitrate(u64),
    /// The track is gone (the peer connection ended): pictures go in band again.
    Gone,
}

pub(super) struct Track {
    /// The splice hands the track over once the session is direct.
    pending: Option<oneshot::Receiver<VideoTrack>>,
    track: Option<VideoTrack>,
    ready: bool,
}

impl Track {
    pub(super) fn new(pending: Option<oneshot::Receiver<VideoTrack>>) -> Track {
        Track {
            pending,
            track: None,
            ready: false,
        }
    }

    /// Whether `codec` pictures go on the track.
    pub(super) fn carries(&self, codec: Codec) -> bool {
        self.ready && codec == Codec::H264
    }

    /// The next thing the track says; never, while there is no track.
    pub(super) async fn next(&mut self) -> TrackInput {
        loop {
            if let Some(track) = &mut self.track {
                match track.next_event().await {
                    Some(TrackEvent::Ready) => {
                        self.ready = true;
                        tracing::info!("desktop: pictures move to the video track");
                        return TrackInput::Ready;
                    }
                    Some(TrackEvent::KeyframeWanted) => return TrackInput::Keyframe,
                    Some(TrackEvent::Bitrate(bps)) => return TrackInput::Bitrate(bps),
                    Some(TrackEvent::Received { .. }) => continue,
                    None => {
                        self.track = None;
                        let was_ready = std::mem::take(&mut self.ready);
                        if was_ready {
                            return TrackInput::Gone;
                        }
                    }
                }
            } else if let Some(pending) = &mut self.pending {
                let handed = pending.await;
                self.pending = None;
                if let Ok(track) = handed {
                    self.track = Some(track);
                }
            } else {
                return std::future::pending().await;
            }
        }
    }

    /// Sends one picture (the hub's relay messages of it) as an access unit; returns its sequence
    /// number, or `None` when it must go in band (not a video picture, or the track failed).
    pub(super) fn send(&mut self, messages: &[Vec<u8>]) -> Option<u32> {
        let track = self.track.as_ref().filter(|_| self.ready)?;
        let (seq, access_unit) = join_picture(messages)?;
        if track.send(access_unit, Instant::now()).is_err() {
            self.ready = false;
            return None;
        }
        Some(seq)
    }
}

/// A video picture's sequence number and payload, joined from its relay messages.
fn join_picture(messages: &[Vec<u8>]) -> Option<(u32, Vec<u8>)> {
    let mut seq = None;
    let mut payload = Vec::new();
    for message in messages {
        let (header, part) = PictureHeader::read(message)?;
        if header.kind != BinaryKind::Video {
            return None;
        }
        seq = Some(header.seq);
        payload.extend_from_slice(part);
    }
    Some((seq?, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desktop::hub::{PictureMeta, picture_messages};

    #[test]
    fn a_split_picture_joins_back_into_one_access_unit() {
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 255) as u8).collect();
        let meta = PictureMeta {
            kind: BinaryKind::Video,
            key: true,
            seq: 7,
            captured_ms: 1,
            encode_us: 2,
            size: (1920, 1080),
        };
        let messages = picture_messages(meta, &payload);
        assert!(messages.len() > 1, "split over several relay messages");
        assert_eq!(join_picture(&messages), Some((7, payload)));
        let tiles = PictureMeta {
            kind: BinaryKind::Tiles,
            ..meta
        };
        assert_eq!(join_picture(&picture_messages(tiles, &[1, 2, 3])), None);
    }
}
