//! Cut an Annex-B H.264 elementary stream into access units (one per picture).
//!
//! The clip is made by x264 with one slice per picture, so an access unit is every
//! non-picture NAL unit (SPS, PPS, SEI, AUD) up to and including the next slice.

pub struct AccessUnit {
    /// Annex-B bytes, start codes included: what str0m's packetizer expects.
    pub bytes: Vec<u8>,
    pub is_idr: bool,
}

const NAL_SLICE: u8 = 1;
const NAL_IDR: u8 = 5;

/// Offsets of every NAL unit's first byte after its 3- or 4-byte start code, and of that start code.
fn nal_starts(stream: &[u8]) -> Vec<(usize, usize)> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            let code_at = if i > 0 && stream[i - 1] == 0 { i - 1 } else { i };
            starts.push((code_at, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
}

pub fn access_units(stream: &[u8]) -> Vec<AccessUnit> {
    let starts = nal_starts(stream);
    let mut units = Vec::new();
    let mut unit_begin = starts.first().map_or(0, |s| s.0);
    for (n, &(_, payload_at)) in starts.iter().enumerate() {
        let nal_type = stream.get(payload_at).map_or(0, |b| b & 0x1f);
        if nal_type == NAL_SLICE || nal_type == NAL_IDR {
            let end = starts.get(n + 1).map_or(stream.len(), |s| s.0);
            units.push(AccessUnit {
                bytes: stream[unit_begin..end].to_vec(),
                is_idr: nal_type == NAL_IDR,
            });
            unit_begin = end;
        }
    }
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_parameter_sets_with_the_following_picture() {
        let sps = [0, 0, 0, 1, 0x67, 0xaa];
        let pps = [0, 0, 0, 1, 0x68, 0xbb];
        let idr = [0, 0, 1, 0x65, 0xcc, 0xdd];
        let p = [0, 0, 0, 1, 0x41, 0xee];
        let stream = [&sps[..], &pps, &idr, &p].concat();
        let units = access_units(&stream);
        assert_eq!(units.len(), 2);
        assert!(units[0].is_idr && !units[1].is_idr);
        assert_eq!(units[0].bytes, [&sps[..], &pps, &idr].concat());
        assert_eq!(units[1].bytes, p);
    }
}
