//! STUB: being written.

#[derive(Default)]
pub struct LoginLimiter {}
