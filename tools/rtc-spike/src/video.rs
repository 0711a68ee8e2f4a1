//! Send a pre-encoded H.264 clip in a loop at its frame rate, as the agent's encoder would
//! send pictures. A key-frame request jumps to the clip's next IDR picture, the closest a
//! file can come to "encode the next picture as a key frame".

use std::time::{Duration, Instant};

use crate::engine::{EngineError, RtcEngine};
use crate::h264::AccessUnit;

const FPS: u64 = 15;
const TICKS_PER_FRAME: u64 = 90_000 / FPS;

pub struct VideoSender<T> {
    units: Vec<AccessUnit>,
    track: Option<T>,
    next_unit: usize,
    frame_no: u64,
    next_due: Option<Instant>,
    keyframe_wanted: bool,
    pub frames_written: u64,
    pub keyframe_requests: u64,
    pub bytes_written: u64,
}

impl<T: Copy> VideoSender<T> {
    pub fn new(units: Vec<AccessUnit>) -> Self {
        VideoSender {
            units,
            track: None,
            next_unit: 0,
            frame_no: 0,
            next_due: None,
            keyframe_wanted: false,
            frames_written: 0,
            keyframe_requests: 0,
            bytes_written: 0,
        }
    }

    pub fn on_track(&mut self, track: T) {
        self.track = Some(track);
    }

    pub fn on_connected(&mut self, now: Instant) {
        self.next_due = Some(now);
    }

    pub fn on_keyframe_request(&mut self) {
        self.keyframe_requests += 1;
        self.keyframe_wanted = true;
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.next_due
    }

    /// Write every frame that is due by `now`.
    pub fn tick<E: RtcEngine<Track = T>>(
        &mut self,
        engine: &mut E,
        now: Instant,
    ) -> Result<(), EngineError> {
        let (Some(track), Some(mut due)) = (self.track, self.next_due) else { return Ok(()) };
        while due <= now && !self.units.is_empty() {
            if self.keyframe_wanted {
                self.keyframe_wanted = false;
                let n = self.units.len();
                if let Some(k) = (0..n).map(|i| (self.next_unit + i) % n).find(|&i| self.units[i].is_idr) {
                    self.next_unit = k;
                }
            }
            let unit = &self.units[self.next_unit];
            engine.write_h264(track, now, self.frame_no * TICKS_PER_FRAME, &unit.bytes)?;
            self.bytes_written += unit.bytes.len() as u64;
            self.frames_written += 1;
            self.frame_no += 1;
            self.next_unit = (self.next_unit + 1) % self.units.len();
            due += Duration::from_micros(1_000_000 / FPS);
        }
        self.next_due = Some(due);
        Ok(())
    }
}
