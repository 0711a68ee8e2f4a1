//! JPEG viewers. Each has its own pace: whenever its window has room and its frame interval has
//! passed, it gets the union of the tiles changed since its last picture, cut from the newest
//! capture (a slow viewer skips intermediate screens but never misses a change). A viewer that
//! asked for a smaller picture gets tiles of a scaled copy, made once per capture and size.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::Instant;

use tether_common::relay::desktop::{BinaryKind, Codec};

use super::run::{CaptureStamp, ViewerState, Viewers, micros};
use super::{HubOutput, PictureMeta, PictureTiming, StreamInfo, picture_messages};
use crate::desktop::damage::DirtyTiles;
use crate::desktop::encode::jpeg::encode_tiles;
use crate::desktop::encode::{Scaler, output_size};
use crate::desktop::frame::{Frame, Rect};

/// Scaled copies of the newest capture, by size.
#[derive(Default)]
pub(super) struct TileViewers {
    scaled: HashMap<(u32, u32), Scaled>,
}

struct Scaled {
    scaler: Scaler,
    frame: Option<(u64, Frame)>,
}

fn is_jpeg(viewer: &ViewerState) -> bool {
    viewer.settings.codec == Codec::Jpeg
}

impl TileViewers {
    /// Adds a capture's changed tiles to every JPEG viewer's set.
    pub(super) fn changed(viewers: &mut Viewers, dirty: &DirtyTiles) {
        for viewer in viewers.values_mut().filter(|v| is_jpeg(v)) {
            viewer.tiles.add(dirty);
        }
    }

    /// Whether some JPEG viewer could take a picture now.
    pub(super) fn any_ready(viewers: &Viewers, now: Instant) -> bool {
        viewers
            .values()
            .any(|v| is_jpeg(v) && v.pacing.can_take(now))
    }

    /// When some JPEG viewer will next take a picture, if there is anything to send.
    pub(super) fn next_due(
        viewers: &Viewers,
        damage_pending: bool,
        now: Instant,
    ) -> Option<Instant> {
        viewers
            .values()
            .filter(|v| is_jpeg(v) && v.pacing.window_open())
            .filter(|v| damage_pending || !v.tiles.is_empty() || v.pacing.needs_key())
            .map(|v| v.pacing.due_at().unwrap_or(now))
            .min()
    }

    /// Sends every JPEG viewer that can take a picture its changed tiles.
    pub(super) fn deliver(
        &mut self,
        viewers: &mut Viewers,
        frame: &Frame,
        region: Rect,
        captured: CaptureStamp,
        now: Instant,
    ) {
        let source = (frame.width, frame.height);
        let mut sizes_in_use = Vec::new();
        for viewer in viewers.values_mut().filter(|v| is_jpeg(v)) {
            let size = output_size(source, viewer.settings.max_width, false);
            sizes_in_use.push(size);
            if !viewer.pacing.can_take(now) {
                continue;
            }
            let info = StreamInfo {
                codec: Codec::Jpeg,
                codec_string: "jpeg".into(),
                width: size.0,
                height: size.1,
                quality: viewer.settings.quality,
                fps: viewer.settings.fps,
                source: region,
            };
            if viewer.pacing.needs_key() || viewer.stream.as_ref() != Some(&info) {
                viewer.tiles = DirtyTiles::all(source.0, source.1);
            }
            if viewer.tiles.is_empty() {
                continue;
            }
            let started = Instant::now();
            let picture = if size == source {
                Some(frame)
            } else {
                self.scaled_frame(frame, size, captured.number)
            };
            let Some(picture) = picture else {
                viewer.send(HubOutput::Notice("cannot scale the picture".into()));
                continue;
            };
            let rects: Vec<Rect> = viewer
                .tiles
                .rects()
                .into_iter()
                .map(|rect| scale_rect(rect, source, size))
                .collect();
            let payload = match encode_tiles(picture, &rects, viewer.settings.quality) {
                Ok(payload) => payload,
                Err(e) => {
                    viewer.send(HubOutput::Notice(format!("JPEG encoding failed: {e}")));
                    continue;
                }
            };
            let key = viewer.tiles.is_all();
            viewer.tiles.clear();
            if viewer.stream.as_ref() != Some(&info) {
                viewer.send(HubOutput::Stream(info.clone()));
                viewer.stream = Some(info);
            }
            let seq = viewer.pacing.sent(now, key);
            let meta = PictureMeta {
                kind: BinaryKind::Tiles,
                key,
                seq,
                captured_ms: viewer.ms_since_join(captured.at),
                encode_us: micros(started.elapsed()),
                size,
            };
            viewer.send(HubOutput::Picture {
                timing: PictureTiming {
                    capture_us: captured.took_us,
                    encode_us: meta.encode_us,
                },
                messages: picture_messages(meta, &payload),
            });
        }
        self.scaled.retain(|size, _| sizes_in_use.contains(size));
    }

    fn scaled_frame(&mut self, frame: &Frame, size: (u32, u32), capture: u64) -> Option<&Frame> {
        let source = (frame.width, frame.height);
        if self
            .scaled
            .get(&size)
            .is_some_and(|s| s.scaler.source() != source)
        {
            self.scaled.remove(&size);
        }
        let scaled = match self.scaled.entry(size) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(Scaled {
                scaler: Scaler::new(source, size),
                frame: None,
            }),
        };
        if scaled
            .frame
            .as_ref()
            .is_none_or(|(number, _)| *number != capture)
        {
            let copy = scaled
                .scaler
                .scale(frame)
                .inspect_err(|e| tracing::warn!("desktop: cannot scale to {size:?}: {e}"))
                .ok()?;
            scaled.frame = Some((capture, copy));
        }
        scaled.frame.as_ref().map(|(_, frame)| frame)
    }
}

/// A rectangle of the capture in the scaled picture's pixels, grown by a pixel on each side: the
/// scaler blends neighbours, so the pixels just outside a changed area change too.
fn scale_rect(rect: Rect, from: (u32, u32), to: (u32, u32)) -> Rect {
    if from == to {
        return rect;
    }
    let scale = |value: i64, to: u32, from: u32| value * i64::from(to) / i64::from(from);
    // Coordinates are never negative here, so this rounds up.
    let ceil = |value: i64, to: u32, from: u32| {
        (value * i64::from(to) + i64::from(from) - 1) / i64::from(from)
    };
    let x0 = (scale(rect.x.into(), to.0, from.0) - 1).max(0);
    let y0 = (scale(rect.y.into(), to.1, from.1) - 1).max(0);
    let x1 = (ceil(rect.right().into(), to.0, from.0) + 1).min(to.0.into());
    let y1 = (ceil(rect.bottom().into(), to.1, from.1) + 1).min(to.1.into());
    Rect::new(
        x0 as i32,
        y0 as i32,
        (x1 - x0).max(0) as u32,
        (y1 - y0).max(0) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rects_scale_outward_and_stay_inside() {
        assert_eq!(
            scale_rect(Rect::new(64, 64, 64, 64), (1920, 1080), (1920, 1080)),
            Rect::new(64, 64, 64, 64)
        );
        assert_eq!(
            scale_rect(Rect::new(64, 64, 64, 64), (1920, 1080), (960, 540)),
            Rect::new(31, 31, 34, 34)
        );
        assert_eq!(
            scale_rect(Rect::new(0, 0, 1920, 1080), (1920, 1080), (960, 540)),
            Rect::new(0, 0, 960, 540)
        );
    }
}
