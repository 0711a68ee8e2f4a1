//! Commands that take raw bytes (the page calls `invoke(command, Uint8Array, { headers })`, so
//! nothing is turned into JSON on the way): the bytes, and the number in the header that names
//! what they are for (a direct path, a sound player).

use tauri::ipc::{InvokeBody, Request};

pub(crate) fn numbered_bytes<'a>(
    request: &'a Request<'_>,
    header: &str,
) -> Result<(u32, &'a [u8]), String> {
    let id = request
        .headers()
        .get(header)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| format!("a numeric {header} header is needed"))?;
    match request.body() {
        InvokeBody::Raw(bytes) => Ok((id, bytes)),
        InvokeBody::Json(_) => Err("this command takes raw bytes".into()),
    }
}
