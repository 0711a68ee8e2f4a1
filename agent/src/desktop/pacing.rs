//! Per-viewer flow control, as pure state machines (no clock of their own: every call is given
//! `now`), so the rules can be tested exactly.
//!
//! - [`Pacing`]: a viewer takes a picture only when fewer than [`FRAME_WINDOW`] are
//!   unacknowledged and its frame interval has passed. A video viewer that was passed over while
//!   its encoder went on has lost a reference picture and must get a key frame before it can
//!   decode again.
//! - [`KeyLimiter`]: forced key frames are big; one encoder makes at most one per
//!   [`KEY_FRAME_GAP`], however many viewers ask.
//! - [`Pressure`]: a viewer that keeps skipping pictures cannot take the stream as it is, so the
//!   encoder's quality goes down a step (at most once per [`PRESSURE_STEP_GAP`]) and comes back
//!   one step after [`PRESSURE_RECOVERY`] without skips. Frame rate needs no rule of its own: a
//!   slow viewer acknowledges late, its window stays full, and it simply gets fewer pictures.

use std::time::{Duration, Instant};

use tether_common::relay::desktop::{FRAME_WINDOW, MAX_FPS, MIN_FPS, MIN_QUALITY};

/// At most one forced key frame per encoder this often.
pub(super) const KEY_FRAME_GAP: Duration = Duration::from_millis(500);
/// Lower quality at most this often while a viewer skips.
pub(super) const PRESSURE_STEP_GAP: Duration = Duration::from_secs(1);
/// Raise quality one step after this long without a skip.
pub(super) const PRESSURE_RECOVERY: Duration = Duration::from_secs(5);
/// Quality points per pressure step, and the most steps.
pub(super) const PRESSURE_STEP: u8 = 15;
pub(super) const MAX_PRESSURE: u8 = 4;

/// One viewer's picture window and frame rate.
#[derive(Debug, Clone)]
pub(super) struct Pacing {
    /// The last sequence number handed out (pictures are numbered from 1).
    last_sent: u32,
    /// The highest sequence number acknowledged.
    acked: u32,
    interval: Duration,
    sent_at: Option<Instant>,
    needs_key: bool,
}

impl Pacing {
    /// A new viewer: nothing in flight, and its first picture must be a key frame.
    pub(super) fn new(fps: u8) -> Pacing {
        Pacing {
            last_sent: 0,
            acked: 0,
            interval: frame_interval(fps),
            sent_at: None,
            needs_key: true,
        }
    }

    pub(super) fn set_fps(&mut self, fps: u8) {
        self.interval = frame_interval(fps);
    }

    pub(super) fn in_flight(&self) -> u32 {
        self.last_sent.wrapping_sub(self.acked)
    }

    pub(super) fn window_open(&self) -> bool {
        self.in_flight() < FRAME_WINDOW
    }

    /// When the frame interval allows the next picture.
    pub(super) fn due_at(&self) -> Option<Instant> {
        self.sent_at.map(|at| at + self.interval)
    }

    pub(super) fn is_due(&self, now: Instant) -> bool {
        self.due_at().is_none_or(|due| now >= due)
    }

    /// Window open and interval passed.
    pub(super) fn can_take(&self, now: Instant) -> bool {
        self.window_open() && self.is_due(now)
    }

    /// Whether a picture of this kind is any use to the viewer now.
    pub(super) fn accepts(&self, key: bool) -> bool {
        key || !self.needs_key
    }

    pub(super) fn needs_key(&self) -> bool {
        self.needs_key
    }

    /// Records a picture sent; returns its sequence number.
    pub(super) fn sent(&mut self, now: Instant, key: bool) -> u32 {
        self.last_sent = self.last_sent.wrapping_add(1);
        self.sent_at = Some(now);
        if key {
            self.needs_key = false;
        }
        self.last_sent
    }

    /// An acknowledgement; numbers not in flight (old, repeated, or never sent) change nothing.
    pub(super) fn ack(&mut self, seq: u32) {
        let ahead_of_acked = seq.wrapping_sub(self.acked);
        if ahead_of_acked != 0 && ahead_of_acked <= self.in_flight() {
            self.acked = seq;
        }
    }

    /// The encoder went on without this viewer: it cannot decode what follows without a key.
    pub(super) fn missed(&mut self) {
        self.needs_key = true;
    }

    /// The viewer asked for a key frame (it joined late or its decoder failed).
    pub(super) fn request_key(&mut self) {
        self.needs_key = true;
    }
}

fn frame_interval(fps: u8) -> Duration {
    Duration::from_secs(1) / u32::from(fps.clamp(MIN_FPS, MAX_FPS))
}

/// Rate limit for forced key frames of one encoder.
#[derive(Debug, Clone, Default)]
pub(super) struct KeyLimiter {
    last: Option<Instant>,
}

impl KeyLimiter {
    pub(super) fn allows(&self, now: Instant) -> bool {
        self.last.is_none_or(|last| now >= last + KEY_FRAME_GAP)
    }

    /// When the next forced key frame is allowed.
    pub(super) fn next_allowed(&self) -> Option<Instant> {
        self.last.map(|last| last + KEY_FRAME_GAP)
    }

    pub(super) fn forced(&mut self, now: Instant) {
        self.last = Some(now);
    }
}

/// Back-pressure on one encoder: how many quality steps it is below what viewers asked for.
#[derive(Debug, Clone, Default)]
pub(super) struct Pressure {
    level: u8,
    last_skip: Option<Instant>,
    last_change: Option<Instant>,
}

impl Pressure {
    pub(super) fn level(&self) -> u8 {
        self.level
    }

    /// A viewer skipped a picture. True when the level went up (the encoder should follow).
    pub(super) fn skipped(&mut self, now: Instant) -> bool {
        self.last_skip = Some(now);
        let may_step = self
            .last_change
            .is_none_or(|at| now >= at + PRESSURE_STEP_GAP);
        if self.level < MAX_PRESSURE && may_step {
            self.level += 1;
            self.last_change = Some(now);
            return true;
        }
        false
    }

    /// Time passed without skips. True when the level went down.
    pub(super) fn recover(&mut self, now: Instant) -> bool {
        let quiet = |at: Option<Instant>| at.is_none_or(|at| now >= at + PRESSURE_RECOVERY);
        if self.level > 0 && quiet(self.last_skip) && quiet(self.last_change) {
            self.level -= 1;
            self.last_change = Some(now);
            return true;
        }
        false
    }

    /// When [`recover`](Self::recover) could next lower the level.
    pub(super) fn next_recovery(&self) -> Option<Instant> {
        if self.level == 0 {
            return None;
        }
        let latest = self.last_skip.max(self.last_change)?;
        Some(latest + PRESSURE_RECOVERY)
    }

    /// `quality` lowered by the current level.
    pub(super) fn apply(&self, quality: u8) -> u8 {
        quality
            .saturating_sub(self.level * PRESSURE_STEP)
            .max(MIN_QUALITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_closes_at_frame_window_and_acks_reopen_it() {
        let t0 = Instant::now();
        let mut pacing = Pacing::new(60);
        assert!(pacing.can_take(t0));
        let mut now = t0;
        let mut seqs = Vec::new();
        while pacing.can_take(now) {
            seqs.push(pacing.sent(now, true));
            now += Duration::from_secs(1);
        }
        assert_eq!(seqs.len() as u32, FRAME_WINDOW);
        assert_eq!(seqs, (1..=FRAME_WINDOW).collect::<Vec<_>>());
        // An ack of something never sent, or of nothing new, changes nothing.
        pacing.ack(FRAME_WINDOW + 5);
        pacing.ack(0);
        assert!(!pacing.window_open());
        // Acking the first frees one slot; acking the last frees all (acks are cumulative).
        pacing.ack(1);
        assert_eq!(pacing.in_flight(), FRAME_WINDOW - 1);
        assert!(pacing.can_take(now));
        pacing.ack(FRAME_WINDOW);
        assert_eq!(pacing.in_flight(), 0);
        // A late, older ack does not reopen anything twice.
        pacing.ack(1);
        assert_eq!(pacing.in_flight(), 0);
    }

    #[test]
    fn the_frame_interval_spaces_pictures() {
        let t0 = Instant::now();
        let mut pacing = Pacing::new(10);
        pacing.sent(t0, true);
        pacing.ack(1);
        assert!(!pacing.can_take(t0 + Duration::from_millis(99)));
        assert!(pacing.can_take(t0 + Duration::from_millis(100)));
        assert_eq!(pacing.due_at(), Some(t0 + Duration::from_millis(100)));
        pacing.set_fps(0); // clamped to MIN_FPS
        assert!(!pacing.can_take(t0 + Duration::from_millis(999)));
    }

    #[test]
    fn a_skipped_video_picture_means_waiting_for_a_key() {
        let t0 = Instant::now();
        let mut pacing = Pacing::new(30);
        assert!(pacing.needs_key(), "a new viewer starts with a key frame");
        assert!(!pacing.accepts(false));
        pacing.sent(t0, true);
        assert!(pacing.accepts(false));
        pacing.sent(t0, false);
        assert!(!pacing.window_open());
        // The encoder moves on while this viewer's window is full.
        pacing.missed();
        pacing.ack(2);
        assert!(pacing.can_take(t0 + Duration::from_secs(1)));
        assert!(!pacing.accepts(false), "deltas are useless now");
        assert!(pacing.accepts(true));
        pacing.sent(t0 + Duration::from_secs(1), true);
        assert!(pacing.accepts(false));
        pacing.request_key();
        assert!(!pacing.accepts(false));
    }

    #[test]
    fn forced_key_frames_are_rate_limited() {
        let t0 = Instant::now();
        let mut limiter = KeyLimiter::default();
        assert!(limiter.allows(t0));
        assert_eq!(limiter.next_allowed(), None);
        limiter.forced(t0);
        assert!(!limiter.allows(t0 + KEY_FRAME_GAP - Duration::from_millis(1)));
        assert!(limiter.allows(t0 + KEY_FRAME_GAP));
        assert_eq!(limiter.next_allowed(), Some(t0 + KEY_FRAME_GAP));
    }

    #[test]
    fn pressure_lowers_quality_in_steps_and_recovers_slowly() {
        let t0 = Instant::now();
        let mut pressure = Pressure::default();
        assert_eq!(pressure.apply(60), 60);
        assert!(pressure.skipped(t0));
        assert_eq!(pressure.apply(60), 60 - PRESSURE_STEP);
        // More skips within the step gap do not pile up.
        assert!(!pressure.skipped(t0 + Duration::from_millis(500)));
        assert!(pressure.skipped(t0 + PRESSURE_STEP_GAP));
        assert_eq!(pressure.level(), 2);
        for step in 2..10u32 {
            pressure.skipped(t0 + PRESSURE_STEP_GAP * step);
        }
        assert_eq!(pressure.level(), MAX_PRESSURE);
        assert_eq!(pressure.apply(20), MIN_QUALITY);
        let last_skip = t0 + PRESSURE_STEP_GAP * 9;
        assert!(!pressure.recover(last_skip + PRESSURE_RECOVERY - Duration::from_millis(1)));
        assert_eq!(
            pressure.next_recovery(),
            Some(last_skip + PRESSURE_RECOVERY)
        );
        assert!(pressure.recover(last_skip + PRESSURE_RECOVERY));
        assert_eq!(pressure.level(), MAX_PRESSURE - 1);
        // One step per recovery period, not all at once.
        assert!(!pressure.recover(last_skip + PRESSURE_RECOVERY + Duration::from_secs(1)));
        assert!(pressure.recover(last_skip + PRESSURE_RECOVERY * 2));
    }
}
