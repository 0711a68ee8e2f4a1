//! Video viewers: one encoder per (codec, picture size), shared by every viewer that asked for
//! that codec and size.
//!
//! An encoder makes a picture when its frame interval (the fastest of its viewers' frame rates)
//! has passed and some viewer has room in its window; the picture goes to every viewer that has
//! room and can decode it. A viewer without room misses it, and since the next pictures refer to
//! it, that viewer needs a key frame: forced key frames are rate-limited per encoder
//! ([`KeyLimiter`]), so a joiner or a struggling viewer waits at most that long. A viewer that
//! misses pictures because its window is full pushes the encoder's quality down a step
//! ([`Pressure`]); quality comes back one step after a quiet while. A quality change reopens the
//! encoder, which starts with a key frame, so it too waits for the key-frame limiter.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tether_common::relay::desktop::{BinaryKind, Codec, EffectiveSettings, MAX_FPS, MIN_FPS};

use super::run::{CaptureStamp, Viewers};
use super::{HubOutput, PictureMeta, PictureTiming, StreamInfo, ViewerId, picture_messages};
use crate::desktop::damage::DirtyTiles;
use crate::desktop::encode::output_size;
use crate::desktop::encode::video::VideoEncoder;
use crate::desktop::frame::{Frame, Rect};
use crate::desktop::pacing::{KeyLimiter, Pressure};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct GroupKey {
    codec: Codec,
    size: (u32, u32),
}

/// The encoders in use, by codec and size.
#[derive(Default)]
pub(super) struct VideoGroups {
    groups: HashMap<GroupKey, VideoGroup>,
}

struct VideoGroup {
    encoder: Option<VideoEncoder>,
    /// The screen changed since the last picture.
    pending: bool,
    /// Where it changed since the last picture (`None`: not known, convert everything).
    changed: Option<DirtyTiles>,
    limiter: KeyLimiter,
    pressure: Pressure,
    encoded_at: Option<Instant>,
    /// The encoder failed; its viewers were told and will leave.
    failed: bool,
}

/// Who watches through one encoder, and what they ask of it.
struct Members {
    ids: Vec<ViewerId>,
    fps: u8,
    quality: u8,
    /// The slowest member path's estimate (direct viewers), bits per second.
    bitrate: Option<u64>,
}

fn group_key(settings: &EffectiveSettings, region: Rect) -> Option<GroupKey> {
    (settings.codec != Codec::Jpeg).then(|| GroupKey {
        codec: settings.codec,
        size: output_size((region.width, region.height), settings.max_width, true),
    })
}

fn members(viewers: &Viewers, region: Rect) -> HashMap<GroupKey, Members> {
    let mut groups: HashMap<GroupKey, Members> = HashMap::new();
    for (id, viewer) in viewers {
        let Some(key) = group_key(&viewer.settings, region) else {
            continue;
        };
        let members = groups.entry(key).or_insert(Members {
            ids: Vec::new(),
            fps: MIN_FPS,
            quality: 0,
            bitrate: None,
        });
        members.ids.push(*id);
        members.fps = members.fps.max(viewer.settings.fps);
        members.quality = members.quality.max(viewer.settings.quality);
        if let Some(bps) = viewer.bitrate {
            members.bitrate = Some(members.bitrate.map_or(bps, |least| least.min(bps)));
        }
    }
    for members in groups.values_mut() {
        if let Some(bps) = members.bitrate {
            members.fps = members.fps.min(fps_for_rate(bps));
        }
    }
    groups
}

/// The frame rate a direct path's estimate affords: below about 1 Mbit/s, fewer pictures of a
/// usable quality beat many blurred ones (as WebRTC's "balanced" degradation does), one picture
/// for every [`BITS_PER_PICTURE`] a second, never under [`LOW_RATE_FPS`].
fn fps_for_rate(bps: u64) -> u8 {
    u8::try_from(bps / BITS_PER_PICTURE)
        .unwrap_or(u8::MAX)
        .clamp(LOW_RATE_FPS, MAX_FPS)
}

/// What one picture of a changing desktop needs at the lowest useful quality.
const BITS_PER_PICTURE: u64 = 33_000;
/// The least frame rate an estimate brings the stream down to (a pointer still moves smoothly
/// enough to aim with).
const LOW_RATE_FPS: u8 = 5;

fn interval(fps: u8) -> Duration {
    Duration::from_secs(1) / u32::from(fps.clamp(MIN_FPS, MAX_FPS))
}

impl VideoGroups {
    /// The screen changed in `dirty`: every encoder has something new to send.
    pub(super) fn changed(&mut self, dirty: &DirtyTiles) {
        for group in self.groups.values_mut() {
            group.pending = true;
            match &mut group.changed {
                Some(changed) => changed.add(dirty),
                None => group.changed = Some(dirty.clone()),
            }
        }
    }

    /// Whether some encoder could send a picture now (so a capture is worth making).
    pub(super) fn any_ready(&self, viewers: &Viewers, region: Rect, now: Instant) -> bool {
        members(viewers, region).iter().any(|(key, members)| {
            let group = self.groups.get(key);
            group.is_none_or(|g| !g.failed && g.is_due(now, members.fps))
                && (can_send_delta(viewers, members)
                    || (wants_key(viewers, members) && group.is_none_or(|g| g.key_allowed(now))))
        })
    }

    /// When some encoder will next have something to do (`None`: nothing until a message).
    pub(super) fn next_due(
        &self,
        viewers: &Viewers,
        region: Rect,
        damage_pending: bool,
        now: Instant,
    ) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |at: Instant| next = Some(next.map_or(at, |n| n.min(at)));
        for (key, members) in members(viewers, region) {
            let Some(group) = self.groups.get(&key) else {
                // A new encoder: its first viewers want a key frame now.
                if any_open(viewers, &members) {
                    consider(now);
                }
                continue;
            };
            if group.failed {
                continue;
            }
            let due = group.due_at(members.fps).unwrap_or(now);
            if (damage_pending || group.pending) && can_send_delta(viewers, &members) {
                consider(due);
            }
            let stale = group.stale(&members);
            if wants_key(viewers, &members) || (stale && any_open(viewers, &members)) {
                consider(due.max(group.limiter.next_allowed().unwrap_or(now)));
            }
            if let Some(at) = group.pressure.next_recovery() {
                consider(at);
            }
        }
        next
    }

    /// Lets every encoder send what it can from `frame` (the capture of `region`).
    pub(super) fn deliver(
        &mut self,
        viewers: &mut Viewers,
        frame: &Frame,
        region: Rect,
        captured: CaptureStamp,
        now: Instant,
    ) {
        let groups = members(viewers, region);
        // Encoders nobody uses any more are closed.
        self.groups.retain(|key, _| groups.contains_key(key));
        for (key, members) in groups {
            let group = self.groups.entry(key).or_insert_with(VideoGroup::new);
            if !group.failed {
                group.deliver(key, &members, viewers, frame, region, captured, now);
            }
        }
    }
}

fn any_open(viewers: &Viewers, members: &Members) -> bool {
    members
        .ids
        .iter()
        .any(|id| viewers[id].pacing.window_open())
}

/// A viewer with room that can decode the next delta picture.
fn can_send_delta(viewers: &Viewers, members: &Members) -> bool {
    members.ids.iter().any(|id| {
        let pacing = &viewers[id].pacing;
        pacing.window_open() && !pacing.needs_key()
    })
}

/// A viewer with room that waits for a key frame.
fn wants_key(viewers: &Viewers, members: &Members) -> bool {
    members.ids.iter().any(|id| {
        let pacing = &viewers[id].pacing;
        pacing.window_open() && pacing.needs_key()
    })
}

impl VideoGroup {
    fn new() -> VideoGroup {
        VideoGroup {
            encoder: None,
            pending: true,
            changed: None,
            limiter: KeyLimiter::default(),
            pressure: Pressure::default(),
            encoded_at: None,
            failed: false,
        }
    }

    fn due_at(&self, fps: u8) -> Option<Instant> {
        self.encoded_at.map(|at| at + interval(fps))
    }

    fn is_due(&self, now: Instant, fps: u8) -> bool {
        self.due_at(fps).is_none_or(|due| now >= due)
    }

    /// A key frame may be made now (a new encoder's first frame always may).
    fn key_allowed(&self, now: Instant) -> bool {
        self.encoder.is_none() || self.limiter.allows(now)
    }

    /// The quality the encoder should have: the best any viewer asked for, less back-pressure.
    fn target_quality(&self, members: &Members) -> u8 {
        self.pressure.apply(members.quality)
    }

    /// The encoder must be reopened (another quality).
    fn stale(&self, members: &Members) -> bool {
        self.encoder
            .as_ref()
            .is_some_and(|e| e.quality() != self.target_quality(members))
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &mut self,
        key: GroupKey,
        members: &Members,
        viewers: &mut Viewers,
        frame: &Frame,
        region: Rect,
        captured: CaptureStamp,
        now: Instant,
    ) {
        self.pressure.recover(now);
        if !self.is_due(now, members.fps) {
            return;
        }
        let source = (frame.width, frame.height);
        if self.encoder.as_ref().is_some_and(|e| e.source() != source) {
            // The captured rectangle changed size: this encoder can take no more frames.
            self.encoder = None;
        }
        let reopen = self.encoder.is_none() || self.stale(members);
        let key_wanted = wants_key(viewers, members) || (reopen && any_open(viewers, members));
        let make_key = key_wanted && self.key_allowed(now);
        let make_delta = self.pending && can_send_delta(viewers, members);
        if !make_key && !make_delta {
            return;
        }
        if make_key && reopen {
            let quality = self.target_quality(members);
            match VideoEncoder::open(key.codec, source, key.size, quality, members.fps) {
                Ok(encoder) => {
                    tracing::debug!(?key, quality, "desktop: video encoder opened");
                    self.encoder = Some(encoder);
                }
                Err(e) => {
                    return self.fail(
                        members,
                        viewers,
                        &format!("cannot start the {:?} encoder: {e}", key.codec),
                    );
                }
            }
        }
        let Some(encoder) = self.encoder.as_mut() else {
            return;
        };
        encoder.cap_rate(members.bitrate);
        self.pending = false;
        self.encoded_at = Some(now);
        // A new group's first frame converts everything; after that, what changed since.
        let changed = self.changed.take().map(|tiles| tiles.rects());
        let picture = match encoder.encode(frame, changed.as_deref(), make_key) {
            Ok(Some(picture)) => picture,
            Ok(None) => return,
            Err(e) => return self.fail(members, viewers, &format!("video encoding failed: {e}")),
        };
        if picture.key {
            self.limiter.forced(now);
        }
        let codec_string = encoder.codec_string().unwrap_or("avc1.42c01f").to_owned();
        for id in &members.ids {
            let viewer = viewers.get_mut(id).expect("members are viewers");
            let info = StreamInfo {
                codec: key.codec,
                codec_string: codec_string.clone(),
                width: key.size.0,
                height: key.size.1,
                quality: viewer.settings.quality,
                fps: viewer.settings.fps,
                source: region,
            };
            let same_stream = viewer.stream.as_ref() == Some(&info);
            let has_room = viewer.pacing.window_open();
            if has_room && viewer.pacing.accepts(picture.key) && (same_stream || picture.key) {
                if !same_stream {
                    viewer.send(HubOutput::Stream(info.clone()));
                    viewer.stream = Some(info);
                }
                let seq = viewer.pacing.sent(now, picture.key);
                let meta = PictureMeta {
                    kind: BinaryKind::Video,
                    key: picture.key,
                    seq,
                    captured_ms: viewer.ms_since_join(captured.at),
                    encode_us: picture.encode_us,
                    size: key.size,
                };
                viewer.send(HubOutput::Picture {
                    timing: PictureTiming {
                        capture_us: captured.took_us,
                        encode_us: picture.encode_us,
                    },
                    messages: picture_messages(meta, &picture.data),
                });
            } else {
                // This picture is lost to the viewer, and with it the reference for the next.
                viewer.pacing.missed();
                if !has_room && self.pressure.skipped(now) {
                    tracing::debug!(
                        ?key,
                        level = self.pressure.level(),
                        "desktop: a viewer lags; lowering quality"
                    );
                }
            }
        }
    }

    fn fail(&mut self, members: &Members, viewers: &Viewers, message: &str) {
        tracing::warn!("desktop: {message}");
        self.failed = true;
        self.encoder = None;
        for id in &members.ids {
            viewers[id].send(HubOutput::Failed(message.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_low_estimate_lowers_the_frame_rate_within_bounds() {
        assert_eq!(fps_for_rate(20_000_000), MAX_FPS);
        assert_eq!(fps_for_rate(1_000_000), 30);
        assert_eq!(fps_for_rate(500_000), 15);
        assert_eq!(fps_for_rate(100_000), LOW_RATE_FPS);
        assert_eq!(fps_for_rate(0), LOW_RATE_FPS);
    }

    #[test]
    fn an_encoder_learns_every_change_since_its_last_picture() {
        let key = GroupKey {
            codec: Codec::H264,
            size: (256, 128),
        };
        let mut groups = VideoGroups::default();
        groups.groups.insert(key, VideoGroup::new());
        // Two captures before the encoder's next picture (its frame interval had not passed).
        let mut first = DirtyTiles::none(256, 128);
        first.mark(0, 0);
        let mut second = DirtyTiles::none(256, 128);
        second.mark(3, 1);
        groups.changed(&first);
        groups.changed(&second);
        let changed = groups.groups[&key].changed.clone().unwrap();
        assert!(changed.is_dirty(0, 0) && changed.is_dirty(3, 1));
        assert_eq!(changed.count(), 2);
    }
}
