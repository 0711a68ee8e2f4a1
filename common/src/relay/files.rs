//! File-manager sessions over the relay.
//!
//! The console sends [`FilesRequest`]s as text frames, each with an `id` it chooses; the agent
//! answers each with one [`FilesReply`] carrying the same `id` (a download answers
//! `downloadStart`, then its bytes, then `downloadEnd`).
//!
//! Bytes travel in binary frames, one transfer at a time per direction:
//! - **download**: after `downloadStart`, the agent's binary frames are the file's bytes from the
//!   requested offset, until `downloadEnd` (or `error`);
//! - **upload**: after the agent's `uploadReady`, the console's binary frames are the file's
//!   bytes, then it sends `uploadEnd`; the agent writes to a private (0600) temporary file and
//!   renames it over the target only when all `size` bytes have arrived, so a broken upload
//!   never leaves a half file under the real name. A file replaced this way keeps its owner and
//!   permissions; a new one gets 0666 less the agent's umask.
//!
//! There are no acknowledgements: the relay forwards one frame at a time per direction, so a slow
//! reader slows the writer through WebSocket and TCP back-pressure end to end.
//!
//! Paths are absolute as the agent sees them (`/home/alice/x`); the agent refuses anything outside
//! the roots the user's rights allow, after resolving `..` and symbolic links.

use serde::{Deserialize, Serialize};

/// Largest binary frame a side should send in a transfer (well under `MAX_RELAY_FRAME`).
pub const CHUNK_SIZE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum FilesRequest {
    /// A folder's entries.
    List {
        id: u64,
        path: String,
    },
    Mkdir {
        id: u64,
        path: String,
    },
    /// Moves or renames `from` to `to` (both full paths).
    Rename {
        id: u64,
        from: String,
        to: String,
    },
    /// Removes a file or an empty folder; a folder with contents only when `recursive`.
    Remove {
        id: u64,
        path: String,
        #[serde(default)]
        recursive: bool,
    },
    /// Sends a file from `offset` (to resume an interrupted download).
    Download {
        id: u64,
        path: String,
        #[serde(default)]
        offset: u64,
    },
    /// Sends the selected files and folders as one zip stream (size unknown in advance).
    Zip {
        id: u64,
        paths: Vec<String>,
    },
    /// Announces an upload of `size` bytes to `path`; the bytes follow `uploadReady`.
    Upload {
        id: u64,
        path: String,
        size: u64,
        /// Replace an existing file (otherwise an existing `path` is an error).
        #[serde(default)]
        overwrite: bool,
    },
    /// Like `upload`, but resumable: the agent keeps what arrived when the session breaks, in
    /// a private folder of its own (never beside the target, where a local user could plant a
    /// file), and answers `uploadResumed` with the bytes it has and the upload's `resumeId`.
    /// To continue, the console sends `resumeUpload` again with that `resumeId` and the same
    /// `path` and `size`, then the bytes from `offset`. Without a `resumeId`, or with one the
    /// agent no longer knows (partial uploads are removed after a day), the upload starts over
    /// at offset 0 under a new id. (The bytes kept are trusted to be the start of the same
    /// file, as with a resumed download.)
    ResumeUpload {
        id: u64,
        path: String,
        size: u64,
        #[serde(default)]
        overwrite: bool,
        #[serde(default, rename = "resumeId", skip_serializing_if = "Option::is_none")]
        resume_id: Option<String>,
    },
    /// All bytes of the current upload were sent.
    UploadEnd {
        id: u64,
    },
    /// Abandons the transfer `id` (download or upload; an upload's temporary file is removed).
    Cancel {
        id: u64,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum FilesReply {
    Listing {
        id: u64,
        path: String,
        entries: Vec<FileEntry>,
    },
    /// The request succeeded (mkdir, rename, remove, a completed upload, a cancel).
    Done {
        id: u64,
    },
    /// Bytes follow; `size` is the file's full size (absent for zip streams).
    DownloadStart {
        id: u64,
        #[serde(default)]
        size: Option<u64>,
        offset: u64,
    },
    DownloadEnd {
        id: u64,
    },
    /// Send the upload's bytes now.
    UploadReady {
        id: u64,
    },
    /// Send the upload's bytes from `offset` on (the answer to `resumeUpload`); `resumeId`
    /// names this upload to continue it later (absent from agents that predate it).
    UploadResumed {
        id: u64,
        offset: u64,
        #[serde(default, rename = "resumeId", skip_serializing_if = "Option::is_none")]
        resume_id: Option<String>,
    },
    /// The request failed; `message` says why, for people (e.g. "outside the allowed folders").
    /// Without an `id` (0), the whole session failed (e.g. refused by the agent) and it closes.
    Error {
        #[serde(default)]
        id: u64,
        message: String,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub kind: FileKind,
    /// Bytes (0 for folders).
    pub size: u64,
    /// Unix seconds of the last modification.
    pub mtime: i64,
    /// Unix permission bits (`0o755`); 0 where the platform has none.
    pub mode: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Other,
}

pub fn to_json<T: Serialize>(message: &T) -> String {
    // Strings, numbers and lists only: serialising cannot fail.
    serde_json::to_string(message).unwrap_or_default()
}

pub fn parse_request(text: &str) -> Option<FilesRequest> {
    serde_json::from_str(text).ok()
}

pub fn parse_reply(text: &str) -> Option<FilesReply> {
    serde_json::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_with_defaults() {
        assert_eq!(
            parse_request(r#"{"type":"remove","id":4,"path":"/tmp/x"}"#),
            Some(FilesRequest::Remove {
                id: 4,
                path: "/tmp/x".into(),
                recursive: false
            })
        );
        assert_eq!(
            parse_request(r#"{"type":"download","id":5,"path":"/f"}"#),
            Some(FilesRequest::Download {
                id: 5,
                path: "/f".into(),
                offset: 0
            })
        );
        let upload = FilesRequest::Upload {
            id: 6,
            path: "/u".into(),
            size: 10,
            overwrite: true,
        };
        let text = to_json(&upload);
        assert_eq!(
            text,
            r#"{"type":"upload","id":6,"path":"/u","size":10,"overwrite":true}"#
        );
        assert_eq!(parse_request(&text), Some(upload));
        assert_eq!(
            parse_request(r#"{"type":"resumeUpload","id":7,"path":"/u","size":10}"#),
            Some(FilesRequest::ResumeUpload {
                id: 7,
                path: "/u".into(),
                size: 10,
                overwrite: false,
                resume_id: None
            })
        );
        let resume = FilesRequest::ResumeUpload {
            id: 8,
            path: "/u".into(),
            size: 10,
            overwrite: false,
            resume_id: Some("0f".repeat(16)),
        };
        let text = to_json(&resume);
        assert!(text.contains(r#""resumeId":"0f0f"#), "{text}");
        assert_eq!(parse_request(&text), Some(resume));
        // From an agent that predates resume ids.
        assert_eq!(
            parse_reply(r#"{"type":"uploadResumed","id":7,"offset":4}"#),
            Some(FilesReply::UploadResumed {
                id: 7,
                offset: 4,
                resume_id: None
            })
        );
        assert_eq!(
            parse_reply(r#"{"type":"uploadResumed","id":7,"offset":0,"resumeId":"ab"}"#),
            Some(FilesReply::UploadResumed {
                id: 7,
                offset: 0,
                resume_id: Some("ab".into())
            })
        );
        assert_eq!(
            parse_request(r#"{"type":"findfile","id":1}"#),
            Some(FilesRequest::Unknown)
        );
        assert_eq!(
            parse_request(r#"{"type":"list","path":"/"}"#),
            None,
            "id is required"
        );
    }

    #[test]
    fn replies_round_trip() {
        let listing = FilesReply::Listing {
            id: 1,
            path: "/home".into(),
            entries: vec![FileEntry {
                name: "a.txt".into(),
                kind: FileKind::File,
                size: 3,
                mtime: 1_700_000_000,
                mode: 0o644,
            }],
        };
        let text = to_json(&listing);
        assert!(text.starts_with(r#"{"type":"listing","id":1,"#), "{text}");
        assert!(text.contains(r#""kind":"file""#), "{text}");
        assert_eq!(parse_reply(&text), Some(listing));
        let start = FilesReply::DownloadStart {
            id: 2,
            size: None,
            offset: 0,
        };
        assert_eq!(parse_reply(&to_json(&start)), Some(start));
        assert_eq!(
            parse_reply(r#"{"type":"error","message":"refused"}"#),
            Some(FilesReply::Error {
                id: 0,
                message: "refused".into()
            }),
            "a session-level error (the agent's refusal) reads as a files error"
        );
        assert_eq!(
            parse_reply(r#"{"type":"error","id":3,"message":"outside the allowed folders"}"#),
            Some(FilesReply::Error {
                id: 3,
                message: "outside the allowed folders".into()
            })
        );
    }
}
