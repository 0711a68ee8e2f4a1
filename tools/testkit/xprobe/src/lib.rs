//! The desktop test kit: what the agent's desktop unit tests and the server's desktop end-to-end
//! tests share. Each test gets its own Xvfb ([`Xvfb`]), may run the xprobe client on it and read
//! what it prints ([`XProbe`]), and, with the `decode` feature, decodes the agent's video
//! pictures back with FFmpeg ([`decode_centre_colours`]); sound tests get a private PulseAudio
//! daemon ([`PulseAudio`]) and decode the agent's Opus ([`decode_opus`], [`tone_power`]). The xprobe binary is `src/main.rs`.

// Kept here, not in the workspace [lints], because they must not reach the integration tests
// (see CONTRIBUTING.md, "Lints").
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

#[cfg(feature = "decode")]
mod decode;
mod lines;
mod probe;
mod pulse;
mod xvfb;

use std::time::Duration;

#[cfg(feature = "decode")]
pub use decode::{decode_centre_colours, decode_opus, tone_power};
pub use probe::{XProbe, xprobe_path};
pub use pulse::PulseAudio;
pub use xvfb::Xvfb;

/// How long anything in a desktop test may take before it fails: generous, the machine running
/// the tests may be busy.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Whether every channel of `actual` is within `tolerance` of `expected` (lossy codecs).
pub fn close_to(actual: [u8; 3], expected: [u8; 3], tolerance: u8) -> bool {
    actual
        .iter()
        .zip(expected)
        .all(|(a, e)| a.abs_diff(e) <= tolerance)
}
