//! libx264 through its C API (the `x264-sys` bindings), without FFmpeg in between: the one
//! module that calls it, so its `unsafe` stays here. What the settings mean for a live screen is
//! said in `video.rs`; this file only carries them to x264 and pictures back.
//!
//! Every call follows `x264.h` (build 164, Debian 12's): parameters come from
//! `x264_param_default_preset`, are changed field by field, and given to `x264_encoder_open`,
//! which copies them; `x264_encoder_encode` returns the NAL units of one picture in memory that
//! stays valid until the next call, "guaranteed to be sequential", so one copy takes them all.
#![allow(unsafe_code)]

use std::ffi::c_int;
use std::mem::MaybeUninit;
use std::ptr;

use x264_sys as sys;

use super::EncodeError;
use super::yuv420::Picture;

/// How the encoder is opened (the choices are `video.rs`'s).
pub(super) struct Settings {
    pub width: u32,
    pub height: u32,
    pub fps: u8,
    pub threads: usize,
    /// Constant rate factor: lower is better.
    pub crf: u8,
    /// The VBV's rate ceiling and buffer, bits per second and bits.
    pub max_rate: u64,
    pub buffer: u64,
    pub keyint: u32,
}

pub(super) struct X264 {
    encoder: ptr::NonNull<sys::x264_t>,
    /// Kept for `x264_encoder_reconfig`, which takes a whole parameter set.
    params: Box<sys::x264_param_t>,
    width: u32,
    height: u32,
}

// SAFETY: an x264 encoder has no affinity to the thread that opened it; it is used by whoever
// owns this value (the hub's thread), one call at a time, which `&mut self` enforces.
unsafe impl Send for X264 {}

/// x264's VUI codes (H.264 Annex E): BT.709 primaries, sRGB transfer, BT.601 (SMPTE 170M) matrix.
const PRIMARIES_BT709: c_int = 1;
const TRANSFER_SRGB: c_int = 13;
const MATRIX_SMPTE170M: c_int = 6;

impl X264 {
    pub(super) fn open(settings: &Settings) -> Result<X264, EncodeError> {
        let mut params = Box::new(MaybeUninit::<sys::x264_param_t>::zeroed());
        // SAFETY: the preset and tune are NUL-terminated names x264 knows; it fills the whole
        // struct (zeroed first, so no field is left uninitialised either way).
        let status = unsafe {
            sys::x264_param_default_preset(
                params.as_mut_ptr(),
                c"ultrafast".as_ptr(),
                c"zerolatency".as_ptr(),
            )
        };
        if status < 0 {
            return Err(failed("x264 has no ultrafast/zerolatency preset"));
        }
        // SAFETY: zeroed, then filled in by x264 above: every field holds a valid value.
        let mut params = unsafe { params.assume_init() };
        params.i_log_level = sys::X264_LOG_ERROR as c_int;
        params.i_threads = settings.threads as c_int;
        params.i_width = settings.width as c_int;
        params.i_height = settings.height as c_int;
        params.i_csp = sys::X264_CSP_I420 as c_int;
        params.i_fps_num = u32::from(settings.fps.max(1));
        params.i_fps_den = 1;
        params.i_timebase_num = 1;
        params.i_timebase_den = 1000;
        params.i_keyint_max = settings.keyint as c_int;
        params.i_bframe = 0;
        params.b_repeat_headers = 1;
        params.b_annexb = 1;
        params.vui.b_fullrange = 0;
        params.vui.i_colorprim = PRIMARIES_BT709;
        params.vui.i_transfer = TRANSFER_SRGB;
        params.vui.i_colmatrix = MATRIX_SMPTE170M;
        params.rc.i_rc_method = sys::X264_RC_CRF as c_int;
        params.rc.f_rf_constant = f32::from(settings.crf);
        params.rc.i_vbv_max_bitrate = kbits(settings.max_rate);
        params.rc.i_vbv_buffer_size = kbits(settings.buffer);
        // SAFETY: a valid parameter set and a NUL-terminated profile name.
        if unsafe { sys::x264_param_apply_profile(&mut *params, c"baseline".as_ptr()) } < 0 {
            return Err(failed(
                "x264 cannot make a baseline stream with these settings",
            ));
        }
        // SAFETY: x264 copies the parameters; the pointer is only read during the call.
        let encoder = unsafe { sys::x264_encoder_open(&mut *params) };
        let encoder = ptr::NonNull::new(encoder)
            .ok_or_else(|| failed("x264 refused the parameters (see its log line)"))?;
        Ok(X264 {
            encoder,
            params,
            width: settings.width,
            height: settings.height,
        })
    }

    /// Lowers or raises the VBV's rate ceiling from the next picture on.
    pub(super) fn set_max_rate(&mut self, bps: u64) -> Result<(), EncodeError> {
        self.params.rc.i_vbv_max_bitrate = kbits(bps);
        // SAFETY: the encoder is open and the parameters are the ones it was opened with, but
        // for the field x264 documents as changeable.
        let status =
            unsafe { sys::x264_encoder_reconfig(self.encoder.as_ptr(), &mut *self.params) };
        if status < 0 {
            return Err(failed("x264 refused a new rate ceiling"));
        }
        Ok(())
    }

    /// Encodes `picture` (an IDR when `idr`), appending the access unit to `out`; whether it is
    /// a key frame, or `None` when x264 produced nothing for it.
    pub(super) fn encode(
        &mut self,
        picture: &Picture,
        pts: i64,
        idr: bool,
        out: &mut Vec<u8>,
    ) -> Result<Option<bool>, EncodeError> {
        if (picture.width(), picture.height()) != (self.width, self.height) {
            return Err(failed("a picture of another size than the encoder's"));
        }
        let mut input = MaybeUninit::<sys::x264_picture_t>::zeroed();
        // SAFETY: x264_picture_init sets every field of a caller-owned picture to its default.
        unsafe { sys::x264_picture_init(input.as_mut_ptr()) };
        // SAFETY: initialised just above.
        let mut input = unsafe { input.assume_init() };
        input.i_pts = pts;
        input.i_type = if idr {
            sys::X264_TYPE_IDR
        } else {
            sys::X264_TYPE_AUTO
        } as c_int;
        input.img.i_csp = sys::X264_CSP_I420 as c_int;
        input.img.i_plane = 3;
        for plane in 0..3 {
            input.img.i_stride[plane] = picture.stride(plane) as c_int;
            // x264 reads the input planes and never writes them (its API is not const-correct).
            input.img.plane[plane] = picture.plane(plane).as_ptr().cast_mut();
        }
        let mut output = MaybeUninit::<sys::x264_picture_t>::zeroed();
        let mut nals: *mut sys::x264_nal_t = ptr::null_mut();
        let mut count: c_int = 0;
        // SAFETY: the planes point into `picture`, borrowed for the whole call, sized for the
        // encoder's width and height (checked above); x264 writes `nals`, `count` and `output`.
        let size = unsafe {
            sys::x264_encoder_encode(
                self.encoder.as_ptr(),
                &mut nals,
                &mut count,
                &mut input,
                output.as_mut_ptr(),
            )
        };
        if size < 0 {
            return Err(failed("x264 could not encode a picture"));
        }
        if size == 0 || count == 0 || nals.is_null() {
            return Ok(None);
        }
        // SAFETY: `size` bytes of NAL units start at the first unit's payload, one after another
        // (x264.h), valid until the next call on this encoder; copied out at once.
        let bytes = unsafe { std::slice::from_raw_parts((*nals).p_payload, size as usize) };
        out.extend_from_slice(bytes);
        // SAFETY: x264 filled `output` in because it returned a picture.
        let key = unsafe { output.assume_init_ref() }.b_keyframe != 0;
        Ok(Some(key))
    }
}

impl Drop for X264 {
    fn drop(&mut self) {
        // SAFETY: opened by x264_encoder_open, closed once, never used after.
        unsafe { sys::x264_encoder_close(self.encoder.as_ptr()) };
    }
}

/// x264 counts rates in kbit/s and kbit.
fn kbits(bits: u64) -> c_int {
    (bits / 1000).clamp(1, c_int::MAX as u64) as c_int
}

fn failed(what: &str) -> EncodeError {
    EncodeError::Library {
        library: "libx264",
        message: what.to_owned(),
    }
}
