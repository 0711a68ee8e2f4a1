//! `tetherctl screenshot --device D --out FILE.png [--display N]`: one lossless picture of a
//! device's screen, taken through the same desktop session the console's viewer opens
//! (`common/src/relay/desktop.rs`): start a slow JPEG stream, ask for a `snapshot`, join the PNG's
//! parts, and write it atomically (a temporary file renamed into place), so FILE.png is either
//! the old file or the whole new picture.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use tether_common::ids::DeviceId;
use tether_common::relay::SessionKind;
use tether_common::relay::desktop::{
    self, BinaryKind, Codec, DesktopEvent, DesktopRequest, DisplaySelection, FLAG_MORE,
    PictureHeader, SNAPSHOT_HEADER_LEN, StartDesktop, StreamSettings,
};
use tokio_tungstenite::tungstenite::Message;

use crate::connection::Control;
use crate::output::print_json;
use crate::relay::SessionSocket as Socket;
use crate::relay::{self, close_reason};

/// From asking for the session to holding the picture.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(30);
/// A PNG larger than this is not a screenshot (an 8K screen in RGBA is ~130 MiB uncompressed).
const MAX_PNG: usize = 512 * 1024 * 1024;
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// `display`: a monitor's id, or `None` for the whole screen.
pub(crate) async fn run(
    control: &mut Control,
    device: &DeviceId,
    out: &Path,
    display: Option<u32>,
    json: bool,
) -> anyhow::Result<()> {
    let selection = display.map_or(DisplaySelection::All, DisplaySelection::One);
    let png = tokio::time::timeout(SNAPSHOT_WAIT, async {
        let socket = relay::start(control, device, SessionKind::Desktop).await?;
        take_snapshot(socket, selection).await
    })
    .await
    .map_err(|_| anyhow!("no screenshot from the device within {SNAPSHOT_WAIT:?}"))??;
    let (width, height) = png_size(&png).context("the device sent a snapshot that is not a PNG")?;
    write_atomically(out, &png).with_context(|| format!("writing {}", out.display()))?;
    if json {
        print_json(&serde_json::json!({
            "path": out, "width": width, "height": height, "bytes": png.len(),
        }));
    } else {
        println!(
            "saved {} ({width}×{height}, {} bytes)",
            out.display(),
            png.len()
        );
    }
    Ok(())
}

/// Starts the stream, asks for a snapshot once the agent shows the session is up, acknowledges
/// the pictures meanwhile (so the agent never waits on us) and returns the joined PNG.
async fn take_snapshot(socket: Socket, selection: DisplaySelection) -> anyhow::Result<Vec<u8>> {
    let (mut sink, mut stream) = socket.split();
    let start = DesktopRequest::Start(StartDesktop {
        display: selection,
        settings: StreamSettings {
            codec: Some(Codec::Jpeg),
            fps: Some(1),
            ..StreamSettings::default()
        },
    });
    sink.send(Message::text(desktop::to_json(&start)))
        .await
        .context("starting the desktop session")?;
    let mut snapshot = SnapshotParts::default();
    let mut asked = false;
    loop {
        let started = match stream.next().await {
            Some(Ok(Message::Text(text))) => match desktop::parse_event(&text) {
                Some(DesktopEvent::Error { message }) => bail!("the device refused: {message}"),
                // The agent answers a request it cannot serve (a failed snapshot) with a notice.
                Some(DesktopEvent::Notice { message }) if asked => {
                    bail!("the device could not take the screenshot: {message}")
                }
                Some(DesktopEvent::Displays { displays, .. }) => {
                    if let DisplaySelection::One(id) = selection
                        && !displays.iter().any(|d| d.id == id)
                    {
                        let ids: Vec<String> = displays.iter().map(|d| d.id.to_string()).collect();
                        bail!(
                            "the device has no display {id} (its displays: {})",
                            ids.join(", ")
                        );
                    }
                    true
                }
                Some(DesktopEvent::Stream { .. }) => true,
                _ => false,
            },
            Some(Ok(Message::Binary(frame))) => {
                match frame.first().copied().and_then(BinaryKind::from_byte) {
                    Some(BinaryKind::Snapshot) => {
                        if let Some(png) = snapshot.push(&frame)? {
                            let _ = sink.close().await;
                            return Ok(png);
                        }
                        false
                    }
                    Some(BinaryKind::Video | BinaryKind::Tiles) => {
                        if let Some((header, _)) = PictureHeader::read(&frame)
                            && !header.has_more()
                        {
                            let ack = DesktopRequest::Ack { seq: header.seq };
                            sink.send(Message::text(desktop::to_json(&ack))).await?;
                        }
                        true
                    }
                    _ => false,
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => false,
            other => bail!(
                "the session ended before the screenshot arrived ({})",
                close_reason(other)
            ),
        };
        if started && !asked {
            let request = desktop::to_json(&DesktopRequest::Snapshot);
            sink.send(Message::text(request))
                .await
                .context("asking for the screenshot")?;
            asked = true;
        }
    }
}

/// A snapshot's payload, joined from its messages (all but the last carry [`FLAG_MORE`]).
#[derive(Default)]
struct SnapshotParts {
    png: Vec<u8>,
}

impl SnapshotParts {
    /// Adds one snapshot message; the whole PNG once the last part is in.
    fn push(&mut self, frame: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        if frame.len() < SNAPSHOT_HEADER_LEN || frame[0] != BinaryKind::Snapshot as u8 {
            bail!("a malformed snapshot frame");
        }
        let part = &frame[SNAPSHOT_HEADER_LEN..];
        if self.png.len() + part.len() > MAX_PNG {
            bail!("the snapshot is larger than {MAX_PNG} bytes");
        }
        self.png.extend_from_slice(part);
        if frame[1] & FLAG_MORE != 0 {
            Ok(None)
        } else {
            Ok(Some(std::mem::take(&mut self.png)))
        }
    }
}

/// (width, height) from a PNG's header chunk, which must come first.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    let rest = png.strip_prefix(PNG_SIGNATURE)?;
    let ihdr = rest.get(4..16)?;
    if &ihdr[..4] != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(ihdr[4..8].try_into().ok()?);
    let height = u32::from_be_bytes(ihdr[8..12].try_into().ok()?);
    Some((width, height))
}

/// Writes `bytes` to a hidden file beside `path`, flushes it to disk, then renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .context("the output path names no file")?
        .to_string_lossy();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let temp = dir.join(format!(".{name}.{}.part", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    Ok(written?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_common::relay::desktop::{split_payload, write_snapshot_header};

    /// A PNG's signature and header chunk (enough for `png_size`).
    fn png_head(width: u32, height: u32) -> Vec<u8> {
        let mut png = PNG_SIGNATURE.to_vec();
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(b"IHDR");
        png.extend_from_slice(&width.to_be_bytes());
        png.extend_from_slice(&height.to_be_bytes());
        png.extend_from_slice(&[8, 6, 0, 0, 0]);
        png
    }

    #[test]
    fn reads_the_size_from_the_png_header() {
        assert_eq!(png_size(&png_head(1024, 768)), Some((1024, 768)));
        assert_eq!(png_size(b"GIF89a"), None);
        assert_eq!(png_size(&png_head(1, 1)[..20]), None);
        let mut other_first = png_head(1, 1);
        other_first[12..16].copy_from_slice(b"gAMA");
        assert_eq!(png_size(&other_first), None);
    }

    #[test]
    fn joins_a_split_snapshot() {
        let payload: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let messages = split_payload(&payload, SNAPSHOT_HEADER_LEN, 300, write_snapshot_header, 0);
        assert_eq!(messages.len(), 4);
        let mut parts = SnapshotParts::default();
        let mut joined = None;
        for message in &messages {
            assert!(
                joined.is_none(),
                "the PNG was complete before its last part"
            );
            joined = parts.push(message).unwrap();
        }
        assert_eq!(joined, Some(payload));
        // A single-message snapshot, then a malformed one.
        let one = split_payload(b"png", SNAPSHOT_HEADER_LEN, 300, write_snapshot_header, 0);
        assert_eq!(parts.push(&one[0]).unwrap(), Some(b"png".to_vec()));
        assert!(parts.push(&[BinaryKind::Snapshot as u8]).is_err());
        assert!(parts.push(&[BinaryKind::Video as u8, 0]).is_err());
    }

    #[test]
    fn writes_atomically_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("shot.png");
        std::fs::write(&out, b"old").unwrap();
        write_atomically(&out, b"new picture").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"new picture");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["shot.png"]);
        // A folder that does not exist: an error, and nothing left behind.
        let missing = dir.path().join("nowhere/shot.png");
        assert!(write_atomically(&missing, b"x").is_err());
        assert!(write_atomically(dir.path(), b"x").is_err());
        assert_eq!(std::fs::read(&out).unwrap(), b"new picture");
    }
}
