//! Recording sessions on the server (group policy `record_sessions`): terminal and desktop
//! sessions are written frame for frame as the relay passes them (`common::recording` has the
//! format), under `recordings/` in the data folder, one file per session named after it.
//!
//! A recorded session never leaves the relay: its ticket offers no direct path
//! (`control/sessions.rs`) and the relay drops direct-path signalling, so every byte the viewer
//! sees is in the file. If the file cannot be written, the session ends: a policy that says
//! "recorded" must not quietly stop being true.

use std::path::{Path, PathBuf};
use std::time::Instant;

use axum::extract::ws::Message;
use tether_common::recording::{Direction, Frame, RecordingHeader};
use tether_common::relay::SessionKind;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::store::GroupRecord;

/// The folder under the data path.
pub(crate) const FOLDER: &str = "recordings";
/// A recording's file name ends so.
pub(crate) const EXTENSION: &str = "tether-rec";

/// Whether a session of `kind` to a device of `group` is recorded.
pub(crate) fn records(group: &GroupRecord, kind: SessionKind) -> bool {
    group.record_sessions && matches!(kind, SessionKind::Terminal | SessionKind::Desktop)
}

/// Where the recording of `session` lives; `None` for an id that is not a plain token (ids are
/// the relay's own random base64url, so anything else is someone trying a path).
pub(crate) fn path_of(datapath: &Path, session: &str) -> Option<PathBuf> {
    let plain = !session.is_empty()
        && session.len() <= 64
        && session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plain.then(|| datapath.join(FOLDER).join(format!("{session}.{EXTENSION}")))
}

/// How often a recorded desktop session is asked for a key picture, so that a player can seek:
/// the agent sends key pictures only on request, and a player can start decoding only at one.
/// Costs one key picture per interval (about 30 to 150 KB at 1080p, depending on the screen).
pub(crate) const SEEK_POINT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// One session's recording, shared by the relay's two directions.
pub(super) struct Recorder {
    file: Mutex<tokio::io::BufWriter<tokio::fs::File>>,
    started: Instant,
    /// Desktop recordings: the relay asks the agent for a key picture this often.
    seek_points: Option<std::time::Duration>,
}

impl Recorder {
    /// Creates the file and writes the header.
    pub(super) async fn create(path: &Path, header: &RecordingHeader) -> std::io::Result<Recorder> {
        if let Some(folder) = path.parent() {
            tokio::fs::create_dir_all(folder).await?;
            set_private(folder).await;
        }
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .await?;
        let mut file = tokio::io::BufWriter::new(file);
        file.write_all(&header.to_line()).await?;
        Ok(Recorder {
            file: Mutex::new(file),
            started: Instant::now(),
            seek_points: (header.kind == SessionKind::Desktop).then_some(SEEK_POINT_EVERY),
        })
    }

    /// How often the console → device direction asks for a key picture (desktop sessions).
    pub(super) fn seek_points(&self) -> Option<std::time::Duration> {
        self.seek_points
    }

    /// Appends one frame as it passes; pings, pongs and closes are not the session's content.
    pub(super) async fn frame(
        &self,
        direction: Direction,
        message: &Message,
    ) -> std::io::Result<()> {
        let (text, payload) = match message {
            Message::Text(text) => (true, text.as_bytes()),
            Message::Binary(bytes) => (false, bytes.as_ref()),
            _ => return Ok(()),
        };
        let frame = Frame {
            direction,
            text,
            at_ms: u32::try_from(self.started.elapsed().as_millis()).unwrap_or(u32::MAX),
            payload: payload.to_vec(),
        };
        let mut bytes = Vec::with_capacity(payload.len() + tether_common::recording::FRAME_HEADER);
        frame.encode(&mut bytes);
        self.file.lock().await.write_all(&bytes).await
    }

    /// Writes out what is buffered (at the end of the session).
    pub(super) async fn finish(&self) -> std::io::Result<()> {
        let mut file = self.file.lock().await;
        file.flush().await?;
        file.get_ref().sync_data().await
    }
}

/// The folder holds what people typed and saw: owner only, like the data folder.
async fn set_private(folder: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = tokio::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_session_ids_name_a_file() {
        let data = Path::new("/data");
        assert_eq!(
            path_of(data, "AbC-12_x"),
            Some(PathBuf::from("/data/recordings/AbC-12_x.tether-rec"))
        );
        for bad in ["", "../x", "a/b", "a.b", &"x".repeat(65)] {
            assert_eq!(path_of(data, bad), None, "{bad:?}");
        }
    }
}
