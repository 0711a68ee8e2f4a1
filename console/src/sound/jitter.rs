//! The samples between the decoder and the audio callback: playback starts once [`LEAD`] of sound
//! is buffered (network jitter then does not click), starts over after running dry, and never
//! lets the delay grow past [`MAX_AHEAD`] (the oldest sound is dropped), as the browser's player
//! does (`desktopAudio.ts`). Pure, so it is unit-tested.

use std::collections::VecDeque;

/// Buffered before playback starts, as a fraction of a second.
const LEAD: f32 = 0.06;
/// Buffered at most; beyond it the oldest samples go.
const MAX_AHEAD: f32 = 0.3;

pub(super) struct Jitter {
    samples: VecDeque<f32>,
    lead: usize,
    most: usize,
    playing: bool,
}

impl Jitter {
    /// `per_second`: samples a second, all channels together.
    pub(super) fn new(per_second: usize) -> Jitter {
        Jitter {
            samples: VecDeque::with_capacity(per_second),
            lead: (per_second as f32 * LEAD) as usize,
            most: (per_second as f32 * MAX_AHEAD) as usize,
            playing: false,
        }
    }

    pub(super) fn push(&mut self, decoded: &[f32]) {
        self.samples.extend(decoded);
        if self.samples.len() > self.most {
            let drop = self.samples.len() - self.lead;
            self.samples.drain(..drop);
        }
    }

    /// Fills the output with what is buffered, silence where nothing is.
    pub(super) fn fill(&mut self, out: &mut [f32]) {
        if !self.playing && self.samples.len() >= self.lead {
            self.playing = true;
        }
        for slot in out.iter_mut() {
            *slot = if self.playing {
                self.samples.pop_front().unwrap_or(0.0)
            } else {
                0.0
            };
        }
        if self.samples.is_empty() {
            self.playing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Jitter;

    #[test]
    fn waits_for_the_lead_then_plays_in_order() {
        let mut jitter = Jitter::new(1000);
        let mut out = [9.0; 10];
        jitter.push(&[1.0; 50]);
        jitter.fill(&mut out);
        assert_eq!(out, [0.0; 10], "silent until 60 ms are buffered");
        jitter.push(&(0..20).map(|i| i as f32).collect::<Vec<_>>());
        let mut out = [0.0; 60];
        jitter.fill(&mut out);
        assert_eq!(&out[..50], &[1.0; 50]);
        assert_eq!(
            &out[50..],
            &(0..10).map(|i| i as f32).collect::<Vec<_>>()[..]
        );
    }

    #[test]
    fn runs_dry_into_silence_and_waits_again() {
        let mut jitter = Jitter::new(1000);
        jitter.push(&[1.0; 60]);
        let mut out = [0.0; 80];
        jitter.fill(&mut out);
        assert_eq!(&out[60..], &[0.0; 20]);
        jitter.push(&[2.0; 10]);
        let mut out = [5.0; 5];
        jitter.fill(&mut out);
        assert_eq!(out, [0.0; 5], "a new lead is needed after running dry");
    }

    #[test]
    fn the_delay_never_grows_past_the_maximum() {
        let mut jitter = Jitter::new(1000);
        jitter.push(&[1.0; 200]);
        jitter.push(&[2.0; 200]);
        let mut out = vec![0.0; 400];
        jitter.fill(&mut out);
        // Cut back to the lead (60) when 300 was passed: the newest sound stays.
        assert_eq!(&out[..60], &[2.0; 60][..]);
        assert_eq!(&out[60..], &vec![0.0; 340][..]);
    }
}
