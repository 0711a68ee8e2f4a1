//! When to capture what was just drawn. After a quiet spell, the first damage is usually one part
//! of a change that comes in several draws a millisecond or two apart: a typed glyph and then the
//! caret, a menu and then its shadow. Capturing at the first one sends two pictures for one
//! change (each a full encode), so the hub waits [`SETTLE`] for the rest. While the screen keeps
//! changing (scrolling, video), the frame rate paces captures anyway, and nothing waits.

use std::time::{Duration, Instant};

/// How long to wait for the rest of a change: a terminal draws a glyph and its caret within a
/// millisecond or two. Every change after a quiet spell pays it once (a click's first picture
/// comes this much later), so it is kept short.
pub(crate) const SETTLE: Duration = Duration::from_millis(4);
/// Damage this long after the last capture starts a new change. While the screen keeps changing,
/// new damage follows a capture at once (the drawing never stopped), whatever the frame rate;
/// fast typing (25 characters a second) still leaves 40 ms between keystrokes.
pub(crate) const QUIET: Duration = Duration::from_millis(25);

/// The earliest moment to capture damage first seen at `first_damage`, given the previous
/// capture at `last_capture`.
pub(crate) fn capture_at(first_damage: Instant, last_capture: Instant) -> Instant {
    if first_damage.saturating_duration_since(last_capture) >= QUIET {
        first_damage + SETTLE
    } else {
        first_damage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_change_after_a_quiet_spell_waits() {
        let t0 = Instant::now();
        // Typing after a pause: wait for the caret.
        let first = t0 + Duration::from_secs(2);
        assert_eq!(capture_at(first, t0), first + SETTLE);
        // Motion: drawing goes on right after each capture; capture at once.
        let busy = t0 + Duration::from_millis(2);
        assert_eq!(capture_at(busy, t0), busy);
        // Fast typing, 25 characters a second: each keystroke is a new change.
        let next_key = t0 + Duration::from_millis(40);
        assert_eq!(capture_at(next_key, t0), next_key + SETTLE);
    }
}
