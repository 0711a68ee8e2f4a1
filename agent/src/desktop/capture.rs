//! Screen capture: one rectangle of the root window into a [`Frame`], through MIT-SHM (the X
//! server copies the pixels into memory we share, no socket traffic), or plain GetImage when the
//! server has no MIT-SHM 1.2. Each capture is compared with the one before, tile by tile.
//!
//! With MIT-SHM there are two segments, and the X server captures into them in turn: the newest
//! capture is compared with the previous one where both lie ([`damage::diff`]), and the newest
//! *is* the frame the hub encodes. Nothing is copied: a scrolled 1080p screen used to cost an
//! 8 MB copy into a kept frame per picture. GetImage replies are compared with a kept frame and
//! their changed tiles copied into it ([`damage::diff_and_update`]).

use std::sync::Arc;

use x11rb::connection::Connection;
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat, Window};
use x11rb::rust_connection::RustConnection;

use super::damage::{self, DirtyTiles};
use super::frame::{BYTES_PER_PIXEL, Frame, Pixels, Rect};
use super::shm::SharedSegment;
use super::xserver::{XError, XServer};

pub(super) struct Capturer {
    conn: Arc<RustConnection>,
    root: Window,
    region: Rect,
    /// False after MIT-SHM failed once: plain GetImage from then on.
    use_shm: bool,
    /// The last capture (what viewers were or will be sent).
    latest: Latest,
    /// True until the first capture of this region.
    fresh_start: bool,
}

enum Latest {
    /// GetImage replies copied into one frame (also before the first MIT-SHM capture).
    Kept(Frame),
    /// Two MIT-SHM segments the X server captures into in turn.
    Shared(Pair),
}

struct Pair {
    ids: [shm::Seg; 2],
    frames: [Frame; 2],
    /// Which of `frames` holds the newest capture.
    newest: usize,
}

impl Capturer {
    pub(super) fn new(x: &XServer, region: Rect) -> Capturer {
        Capturer {
            conn: x.conn.clone(),
            root: x.root,
            region,
            use_shm: x.has_shm,
            latest: Latest::Kept(Frame::new(region.width, region.height)),
            fresh_start: true,
        }
    }

    /// Plain GetImage even where MIT-SHM works (to test the fallback).
    #[cfg(test)]
    pub(super) fn without_shm(mut self) -> Capturer {
        self.use_shm = false;
        self
    }

    pub(super) fn region(&self) -> Rect {
        self.region
    }

    /// The newest captured picture.
    pub(super) fn frame(&self) -> &Frame {
        match &self.latest {
            Latest::Kept(frame) => frame,
            Latest::Shared(pair) => &pair.frames[pair.newest],
        }
    }

    /// Captures another rectangle from now on (a new monitor layout, another display).
    pub(super) fn set_region(&mut self, region: Rect) {
        if region != self.region {
            self.region = region;
            self.release_segments();
            self.latest = Latest::Kept(Frame::new(region.width, region.height));
            self.fresh_start = true;
        }
    }

    /// Captures the region; returns the tiles that differ from the previous capture (all of them
    /// the first time).
    pub(super) fn capture(&mut self) -> Result<DirtyTiles, XError> {
        let Rect {
            x,
            y,
            width,
            height,
        } = self.region;
        if self.use_shm
            && matches!(self.latest, Latest::Kept(_))
            && let Err(e) = self.make_segments()
        {
            // A remote display, or a server without SHM 1.2 file descriptors.
            tracing::info!("desktop: no MIT-SHM segment ({e}); capturing with GetImage");
            self.use_shm = false;
        }
        let mut tiles = match &mut self.latest {
            Latest::Shared(pair) => Self::capture_shm(&self.conn, self.root, self.region, pair)?,
            Latest::Kept(kept) => Self::capture_plain(&self.conn, self.root, self.region, kept)?,
        };
        if std::mem::take(&mut self.fresh_start) {
            tiles.fill();
        }
        tracing::trace!(
            x,
            y,
            width,
            height,
            dirty = tiles.count(),
            "desktop: captured"
        );
        Ok(tiles)
    }

    fn make_segments(&mut self) -> Result<(), XError> {
        let first = self.make_frame()?;
        let second = match self.make_frame() {
            Ok(second) => second,
            Err(e) => {
                let _ = self.conn.shm_detach(first.0);
                return Err(e);
            }
        };
        self.latest = Latest::Shared(Pair {
            ids: [first.0, second.0],
            frames: [first.1, second.1],
            newest: 0,
        });
        Ok(())
    }

    /// A segment for one capture of the region, and the frame whose pixels it holds.
    fn make_frame(&self) -> Result<(shm::Seg, Frame), XError> {
        let (width, height) = (self.region.width, self.region.height);
        let len = width as usize * height as usize * BYTES_PER_PIXEL;
        let size = u32::try_from(len)
            .map_err(|_| XError::Format("the screen is too large for one segment".into()))?;
        let id = self.conn.generate_id()?;
        let reply = self.conn.shm_create_segment(id, size, false)?.reply()?;
        let memory = match SharedSegment::map(&reply.shm_fd, len) {
            Ok(memory) => memory,
            Err(e) => {
                let _ = self.conn.shm_detach(id);
                return Err(XError::Map(e));
            }
        };
        let frame = Frame {
            width,
            height,
            data: Pixels::Shared(memory),
        };
        Ok((id, frame))
    }

    /// Captures into the older segment, which then becomes the newest.
    fn capture_shm(
        conn: &RustConnection,
        root: Window,
        region: Rect,
        pair: &mut Pair,
    ) -> Result<DirtyTiles, XError> {
        let older = 1 - pair.newest;
        conn.shm_get_image(
            root,
            region.x as i16,
            region.y as i16,
            region.width as u16,
            region.height as u16,
            !0,
            ImageFormat::Z_PIXMAP.into(),
            pair.ids[older],
            0,
        )?
        .reply()?;
        // The reply has come: the X server is done with the segment until the next request.
        let tiles = damage::diff(&pair.frames[pair.newest], &pair.frames[older]);
        pair.newest = older;
        Ok(tiles)
    }

    fn capture_plain(
        conn: &RustConnection,
        root: Window,
        region: Rect,
        kept: &mut Frame,
    ) -> Result<DirtyTiles, XError> {
        let Rect {
            x,
            y,
            width,
            height,
        } = region;
        let reply = conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                root,
                x as i16,
                y as i16,
                width as u16,
                height as u16,
                !0,
            )?
            .reply()?;
        let len = width as usize * height as usize * BYTES_PER_PIXEL;
        if reply.data.len() < len {
            return Err(XError::Format(format!(
                "GetImage returned {} bytes for {width}×{height}",
                reply.data.len()
            )));
        }
        Ok(damage::diff_and_update(kept, &reply.data[..len]))
    }

    fn release_segments(&mut self) {
        if let Latest::Shared(pair) = &self.latest {
            for id in pair.ids {
                let _ = self.conn.shm_detach(id);
            }
        }
    }
}

impl Drop for Capturer {
    fn drop(&mut self) {
        self.release_segments();
        let _ = self.conn.flush();
    }
}
