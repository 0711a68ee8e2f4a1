//! Screen capture: one rectangle of the root window into a [`Frame`], through a reusable MIT-SHM
//! segment (the X server copies the pixels into memory we share, no socket traffic), or plain
//! GetImage when the server has no MIT-SHM 1.2. Each capture is compared with the kept frame
//! tile by tile ([`damage::diff_and_update`]), which also updates it.

use std::sync::Arc;

use x11rb::connection::Connection;
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat, Window};
use x11rb::rust_connection::RustConnection;

use super::damage::{self, DirtyTiles};
use super::frame::{BYTES_PER_PIXEL, Frame, Rect};
use super::shm::SharedSegment;
use super::xserver::{XError, XServer};

pub(super) struct Capturer {
    conn: Arc<RustConnection>,
    root: Window,
    region: Rect,
    segment: Option<Segment>,
    /// False after MIT-SHM failed once: plain GetImage from then on.
    use_shm: bool,
    /// The last capture (what viewers were or will be sent).
    kept: Frame,
    /// True until the first capture of this region.
    fresh_start: bool,
}

struct Segment {
    id: shm::Seg,
    memory: SharedSegment,
}

impl Capturer {
    pub(super) fn new(x: &XServer, region: Rect) -> Capturer {
        Capturer {
            conn: x.conn.clone(),
            root: x.root,
            region,
            segment: None,
            use_shm: x.has_shm,
            kept: Frame::new(region.width, region.height),
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
        &self.kept
    }

    /// Captures another rectangle from now on (a new monitor layout, another display).
    pub(super) fn set_region(&mut self, region: Rect) {
        if region != self.region {
            self.region = region;
            self.release_segment();
            self.kept = Frame::new(region.width, region.height);
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
        let len = width as usize * height as usize * BYTES_PER_PIXEL;
        if self.use_shm
            && self.segment.is_none()
            && let Err(e) = self.make_segment(len)
        {
            // A remote display, or a server without SHM 1.2 file descriptors.
            tracing::info!("desktop: no MIT-SHM segment ({e}); capturing with GetImage");
            self.use_shm = false;
        }
        let mut tiles = if self.use_shm {
            self.capture_shm(len)?
        } else {
            self.capture_plain()?
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

    fn make_segment(&mut self, len: usize) -> Result<(), XError> {
        let id = self.conn.generate_id()?;
        let size = u32::try_from(len)
            .map_err(|_| XError::Format("the screen is too large for one segment".into()))?;
        let reply = self.conn.shm_create_segment(id, size, false)?.reply()?;
        let memory = SharedSegment::map(&reply.shm_fd, len).map_err(XError::Map)?;
        self.segment = Some(Segment { id, memory });
        Ok(())
    }

    fn capture_shm(&mut self, len: usize) -> Result<DirtyTiles, XError> {
        let segment = self.segment.as_ref().expect("made before");
        let Rect {
            x,
            y,
            width,
            height,
        } = self.region;
        self.conn
            .shm_get_image(
                self.root,
                x as i16,
                y as i16,
                width as u16,
                height as u16,
                !0,
                ImageFormat::Z_PIXMAP.into(),
                segment.id,
                0,
            )?
            .reply()?;
        Ok(damage::diff_and_update(
            &mut self.kept,
            &segment.memory.bytes()[..len],
        ))
    }

    fn capture_plain(&mut self) -> Result<DirtyTiles, XError> {
        let Rect {
            x,
            y,
            width,
            height,
        } = self.region;
        let reply = self
            .conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                self.root,
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
        Ok(damage::diff_and_update(&mut self.kept, &reply.data[..len]))
    }

    fn release_segment(&mut self) {
        if let Some(segment) = self.segment.take() {
            let _ = self.conn.shm_detach(segment.id);
        }
    }
}

impl Drop for Capturer {
    fn drop(&mut self) {
        self.release_segment();
        let _ = self.conn.flush();
    }
}
