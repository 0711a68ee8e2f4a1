//! VP8 through libvpx's C API (the `env-libvpx-sys` bindings), without FFmpeg in between: the
//! one module that calls it, so its `unsafe` stays here. The settings are `video.rs`'s.
//!
//! The calls follow `vpx_encoder.h`: a configuration from `vpx_codec_enc_config_default`,
//! changed field by field; `vpx_codec_enc_init_ver` with the ABI version the bindings were made
//! for; controls set once; then per picture `vpx_codec_encode` and packets from
//! `vpx_codec_get_cx_data` until it returns null (valid until the next encode).
#![allow(unsafe_code)]

use std::ffi::{CStr, c_int, c_long, c_uint, c_ulong};
use std::mem::MaybeUninit;
use std::ptr;

use vpx_sys as sys;

use super::EncodeError;
use super::yuv420::Picture;

/// How the encoder is opened (the choices are `video.rs`'s).
pub(super) struct Settings {
    pub width: u32,
    pub height: u32,
    pub threads: usize,
    /// The CQ level (lower is better) and the quantiser range around it.
    pub cq_level: u8,
    pub min_quantizer: u32,
    pub max_quantizer: u32,
    /// The rate ceiling constant-quality mode may reach, bits per second.
    pub ceiling: u64,
    pub keyint: u32,
    pub cpu_used: i32,
}

pub(super) struct Vp8 {
    /// Boxed: libvpx keeps pointers into the context, which therefore must not move.
    context: Box<sys::vpx_codec_ctx_t>,
    width: u32,
    height: u32,
}

// SAFETY: a libvpx encoder has no affinity to the thread that opened it; it is used by whoever
// owns this value (the hub's thread), one call at a time, which `&mut self` enforces.
unsafe impl Send for Vp8 {}

impl Vp8 {
    pub(super) fn open(settings: &Settings) -> Result<Vp8, EncodeError> {
        // SAFETY: returns a pointer to libvpx's static VP8 encoder interface.
        let interface = unsafe { sys::vpx_codec_vp8_cx() };
        let mut config = MaybeUninit::<sys::vpx_codec_enc_cfg_t>::zeroed();
        // SAFETY: libvpx fills the caller's configuration with its defaults (usage 0).
        let status =
            unsafe { sys::vpx_codec_enc_config_default(interface, config.as_mut_ptr(), 0) };
        check(status, "default configuration")?;
        // SAFETY: zeroed, then filled in by libvpx.
        let mut config = unsafe { config.assume_init() };
        config.g_w = settings.width;
        config.g_h = settings.height;
        config.g_threads = settings.threads as c_uint;
        config.g_timebase = sys::vpx_rational { num: 1, den: 1000 };
        config.g_pass = sys::vpx_enc_pass::VPX_RC_ONE_PASS;
        config.g_lag_in_frames = 0;
        config.g_error_resilient = sys::VPX_ERROR_RESILIENT_DEFAULT as sys::vpx_codec_er_flags_t;
        config.rc_end_usage = sys::vpx_rc_mode::VPX_CQ;
        config.rc_target_bitrate =
            (settings.ceiling / 1000).clamp(1, u64::from(c_uint::MAX)) as c_uint;
        config.rc_min_quantizer = settings.min_quantizer;
        config.rc_max_quantizer = settings.max_quantizer;
        config.rc_dropframe_thresh = 0;
        config.kf_mode = sys::vpx_kf_mode::VPX_KF_AUTO;
        config.kf_min_dist = 0;
        config.kf_max_dist = settings.keyint;
        let mut context = Box::new(MaybeUninit::<sys::vpx_codec_ctx_t>::zeroed());
        // SAFETY: a zeroed context for libvpx to set up, the interface and configuration above,
        // and the ABI version these bindings describe.
        let status = unsafe {
            sys::vpx_codec_enc_init_ver(
                context.as_mut_ptr(),
                interface,
                &config,
                0,
                sys::VPX_ENCODER_ABI_VERSION as c_int,
            )
        };
        check(status, "opening the encoder")?;
        // SAFETY: initialised by vpx_codec_enc_init_ver, which succeeded.
        let context = unsafe { context.assume_init() };
        let mut vp8 = Vp8 {
            context,
            width: settings.width,
            height: settings.height,
        };
        vp8.control(
            sys::vp8e_enc_control_id::VP8E_SET_CPUUSED,
            settings.cpu_used,
        )?;
        vp8.control(
            sys::vp8e_enc_control_id::VP8E_SET_CQ_LEVEL,
            c_int::from(settings.cq_level),
        )?;
        vp8.control(sys::vp8e_enc_control_id::VP8E_SET_ENABLEAUTOALTREF, 0)?;
        Ok(vp8)
    }

    fn control(&mut self, id: sys::vp8e_enc_control_id, value: c_int) -> Result<(), EncodeError> {
        // SAFETY: every control set here takes one `int` argument (vp8cx.h).
        let status = unsafe { sys::vpx_codec_control_(&mut *self.context, id as c_int, value) };
        check(status, "setting a control")
    }

    /// Encodes `picture` (a key frame when `key`), appending the frame to `out`; whether it is a
    /// key frame, or `None` when libvpx produced nothing for it.
    pub(super) fn encode(
        &mut self,
        picture: &Picture,
        pts: i64,
        key: bool,
        out: &mut Vec<u8>,
    ) -> Result<Option<bool>, EncodeError> {
        if (picture.width(), picture.height()) != (self.width, self.height) {
            return Err(failed(
                "a picture of another size than the encoder's".into(),
            ));
        }
        let mut image = MaybeUninit::<sys::vpx_image_t>::zeroed();
        // SAFETY: describes the picture's buffer as an I420 image without copying it; the
        // planes and strides are then set explicitly to the picture's own.
        let wrapped = unsafe {
            sys::vpx_img_wrap(
                image.as_mut_ptr(),
                sys::vpx_img_fmt::VPX_IMG_FMT_I420,
                self.width,
                self.height,
                1,
                picture.plane(0).as_ptr().cast_mut(),
            )
        };
        if wrapped.is_null() {
            return Err(failed("libvpx cannot wrap the picture".into()));
        }
        // SAFETY: initialised by vpx_img_wrap.
        let mut image = unsafe { image.assume_init() };
        for plane in 0..3 {
            // libvpx reads the planes of the image it encodes and never writes them.
            image.planes[plane] = picture.plane(plane).as_ptr().cast_mut();
            image.stride[plane] = picture.stride(plane) as c_int;
        }
        let flags = if key { sys::VPX_EFLAG_FORCE_KF } else { 0 };
        // SAFETY: the image's planes point into `picture`, borrowed for the whole call and
        // sized for the encoder's width and height (checked above).
        let status = unsafe {
            sys::vpx_codec_encode(
                &mut *self.context,
                &image,
                pts,
                1,
                flags as c_long,
                c_ulong::from(sys::VPX_DL_REALTIME),
            )
        };
        check(status, "encoding")?;
        let mut iterator: sys::vpx_codec_iter_t = ptr::null();
        let mut produced = None;
        loop {
            // SAFETY: iterates the packets of the encode above; each stays valid until the
            // next call on this context, and its bytes are copied out at once.
            let packet = unsafe { sys::vpx_codec_get_cx_data(&mut *self.context, &mut iterator) };
            // SAFETY: null ends the list; otherwise a packet libvpx owns.
            let Some(packet) = (unsafe { packet.as_ref() }) else {
                break;
            };
            if packet.kind != sys::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                continue;
            }
            // SAFETY: a frame packet's payload is the `frame` member of the union.
            let frame = unsafe { packet.data.frame };
            if !frame.buf.is_null() && frame.sz > 0 {
                // SAFETY: `sz` bytes at `buf`, owned by libvpx until the next call.
                let bytes = unsafe {
                    std::slice::from_raw_parts(frame.buf.cast::<u8>(), frame.sz as usize)
                };
                out.extend_from_slice(bytes);
            }
            let is_key = frame.flags & sys::VPX_FRAME_IS_KEY != 0;
            produced = Some(produced.unwrap_or(false) | is_key);
        }
        Ok(produced)
    }
}

impl Drop for Vp8 {
    fn drop(&mut self) {
        // SAFETY: initialised at open, destroyed once, never used after.
        unsafe { sys::vpx_codec_destroy(&mut *self.context) };
    }
}

fn check(status: sys::vpx_codec_err_t, what: &str) -> Result<(), EncodeError> {
    if status == sys::vpx_codec_err_t::VPX_CODEC_OK {
        return Ok(());
    }
    // SAFETY: libvpx returns a static, NUL-terminated description for any error code.
    let reason = unsafe { CStr::from_ptr(sys::vpx_codec_err_to_string(status)) };
    Err(failed(format!("{what}: {}", reason.to_string_lossy())))
}

fn failed(message: String) -> EncodeError {
    EncodeError::Library {
        library: "libvpx",
        message,
    }
}
