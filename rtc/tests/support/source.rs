//! A stand-in for the agent's H.264 encoder on the track: pictures whose sizes follow the rate
//! the content needs, capped the way the agent caps x264 (`cap_rate` in
//! `agent/src/desktop/encode/video.rs`: 80% of the estimate, never under 200 kbit/s), with a key
//! frame first and on request. The bytes are made up; only their sizes and order matter here.

// Each test file uses its own part of the kit.
#![allow(dead_code)]

use std::time::Duration;

/// One encoded picture.
pub struct Picture {
    pub number: u32,
    pub key: bool,
    pub bytes: usize,
}

pub struct Encoder {
    /// What the content would take without a cap.
    demand_bps: u64,
    /// The cap the estimate sets.
    cap_bps: u64,
    key_wanted: bool,
    number: u32,
}

impl Encoder {
    /// 30 pictures a second, as the agent's default.
    pub const FRAME_INTERVAL: Duration = Duration::from_nanos(1_000_000_000 / 30);
    /// The agent's floor for the encoder's rate.
    const MIN_RATE: u64 = 200_000;
    /// A key frame costs this many times a picture of the same rate.
    const KEY_COST: usize = 3;

    pub fn new(demand_bps: u64) -> Encoder {
        Encoder {
            demand_bps,
            cap_bps: demand_bps,
            key_wanted: true,
            number: 0,
        }
    }

    /// The congestion controller's estimate, as the agent applies it.
    pub fn cap(&mut self, estimate_bps: u64) {
        self.cap_bps = (estimate_bps / 10 * 8).max(Self::MIN_RATE);
    }

    pub fn request_key(&mut self) {
        self.key_wanted = true;
    }

    pub fn next_picture(&mut self) -> Picture {
        let rate = self.demand_bps.min(self.cap_bps);
        let per_picture = (rate as f64 * Self::FRAME_INTERVAL.as_secs_f64() / 8.0) as usize;
        let key = std::mem::take(&mut self.key_wanted);
        let bytes = if key {
            (per_picture * Self::KEY_COST).max(8_000)
        } else {
            per_picture.max(200)
        };
        self.number += 1;
        Picture {
            number: self.number,
            key,
            bytes,
        }
    }
}

/// The picture as an Annex B access unit: SPS, PPS and an IDR slice for a key frame, one slice
/// otherwise. Payload bytes are never zero, so no start code appears inside a unit.
pub fn annex_b_frame(picture: &Picture) -> Vec<u8> {
    let slice = |header: u8, len: usize| {
        let seed = picture.number.to_le_bytes();
        std::iter::once(header)
            .chain((0..len).map(move |i| (i as u8).wrapping_mul(31) ^ seed[i % 4] | 1))
    };
    let mut units: Vec<Vec<u8>> = Vec::new();
    if picture.key {
        units.push(slice(0x67, 12).collect());
        units.push(slice(0x68, 4).collect());
        units.push(slice(0x65, picture.bytes).collect());
    } else {
        units.push(slice(0x41, picture.bytes).collect());
    }
    units
        .iter()
        .flat_map(|unit| [0, 0, 0, 1].into_iter().chain(unit.iter().copied()))
        .collect()
}
