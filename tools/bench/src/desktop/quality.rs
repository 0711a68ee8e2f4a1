//! How close the viewer's picture is to the screen it shows: SSIM and PSNR on luma, so that fewer
//! bytes never hide a worse picture. Pure functions over two same-sized grey images.

/// An 8-bit-range luma image (BT.601 weights), row by row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Gray {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<f32>,
}

impl Gray {
    /// From interleaved pixels of `stride` bytes each, with red, green and blue at the given
    /// offsets (RGBA from a PNG: 0, 1, 2; BGRX from the X server: 2, 1, 0).
    pub(crate) fn from_interleaved(
        width: usize,
        height: usize,
        bytes: &[u8],
        stride: usize,
        [r, g, b]: [usize; 3],
    ) -> Option<Gray> {
        if bytes.len() < width * height * stride {
            return None;
        }
        let pixels = bytes
            .chunks_exact(stride)
            .take(width * height)
            .map(|p| 0.299 * f32::from(p[r]) + 0.587 * f32::from(p[g]) + 0.114 * f32::from(p[b]))
            .collect();
        Some(Gray {
            width,
            height,
            pixels,
        })
    }
}

/// Window side for SSIM: the statistics are taken over 8×8 blocks, side by side.
const WINDOW: usize = 8;
const C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
const C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);

/// Mean structural similarity (1.0 is identical) over non-overlapping 8×8 windows; `None` when
/// the sizes differ or the images are smaller than one window.
pub(crate) fn ssim(a: &Gray, b: &Gray) -> Option<f64> {
    if (a.width, a.height) != (b.width, b.height) || a.width < WINDOW || a.height < WINDOW {
        return None;
    }
    let n = (WINDOW * WINDOW) as f64;
    let mut sum = 0.0;
    let mut windows = 0usize;
    for top in (0..=a.height - WINDOW).step_by(WINDOW) {
        for left in (0..=a.width - WINDOW).step_by(WINDOW) {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for y in top..top + WINDOW {
                let row = y * a.width;
                for x in left..left + WINDOW {
                    let (pa, pb) = (f64::from(a.pixels[row + x]), f64::from(b.pixels[row + x]));
                    sa += pa;
                    sb += pb;
                    saa += pa * pa;
                    sbb += pb * pb;
                    sab += pa * pb;
                }
            }
            let (ma, mb) = (sa / n, sb / n);
            let (va, vb) = (saa / n - ma * ma, sbb / n - mb * mb);
            let cov = sab / n - ma * mb;
            sum += ((2.0 * ma * mb + C1) * (2.0 * cov + C2))
                / ((ma * ma + mb * mb + C1) * (va + vb + C2));
            windows += 1;
        }
    }
    Some(sum / windows as f64)
}

/// Peak signal-to-noise ratio in dB (higher is closer; identical images give `f64::INFINITY`).
pub(crate) fn psnr(a: &Gray, b: &Gray) -> Option<f64> {
    if (a.width, a.height) != (b.width, b.height) || a.pixels.is_empty() {
        return None;
    }
    let squared: f64 = a
        .pixels
        .iter()
        .zip(&b.pixels)
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum();
    let mse = squared / a.pixels.len() as f64;
    Some(if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(width: usize, height: usize, pixel: impl Fn(usize, usize) -> f32) -> Gray {
        let pixels = (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .map(|(x, y)| pixel(x, y))
            .collect();
        Gray {
            width,
            height,
            pixels,
        }
    }

    fn stripes(x: usize, _: usize) -> f32 {
        if (x / 3).is_multiple_of(2) {
            30.0
        } else {
            220.0
        }
    }

    #[test]
    fn identical_pictures_score_one_and_infinite_psnr() {
        let a = image(64, 32, stripes);
        assert!((ssim(&a, &a).unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(psnr(&a, &a), Some(f64::INFINITY));
    }

    #[test]
    fn blur_and_noise_lower_the_scores_in_order() {
        let sharp = image(64, 64, stripes);
        // Text that lost its edges: every stripe pulled towards grey.
        let soft = image(64, 64, |x, y| 0.5 * stripes(x, y) + 0.5 * 125.0);
        let grey = image(64, 64, |_, _| 125.0);
        let (s_soft, s_grey) = (ssim(&sharp, &soft).unwrap(), ssim(&sharp, &grey).unwrap());
        assert!(s_soft < 0.99 && s_grey < s_soft, "{s_soft} {s_grey}");
        assert!(psnr(&sharp, &soft).unwrap() > psnr(&sharp, &grey).unwrap());
    }

    #[test]
    fn sizes_must_match() {
        assert_eq!(ssim(&image(16, 16, stripes), &image(16, 24, stripes)), None);
        assert_eq!(psnr(&image(16, 16, stripes), &image(24, 16, stripes)), None);
    }

    #[test]
    fn reads_rgba_and_bgrx_alike() {
        let rgba = [255, 0, 0, 255, 0, 0, 255, 255];
        let bgrx = [0, 0, 255, 0, 255, 0, 0, 0];
        let a = Gray::from_interleaved(2, 1, &rgba, 4, [0, 1, 2]).unwrap();
        let b = Gray::from_interleaved(2, 1, &bgrx, 4, [2, 1, 0]).unwrap();
        assert_eq!(a, b);
        assert!((a.pixels[0] - 0.299 * 255.0).abs() < 1e-3);
        assert_eq!(Gray::from_interleaved(3, 1, &rgba, 4, [0, 1, 2]), None);
    }
}
