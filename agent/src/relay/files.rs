//! File-manager sessions (`tether_common::relay::files`): list, mkdir, rename, remove, download
//! from an offset, upload to a private temporary file renamed into place when complete (keeping a
//! replaced file's owner and mode: `placing.rs`), resumable uploads kept in the agent's private
//! folder (`partials.rs`). Every path goes through [`paths::Root`] first; downloads and zips read
//! only regular files (`special.rs`).
//!
//! Memory stays flat whatever the file size: downloads are read one chunk at a time and each chunk
//! is sent before the next is read (the relay's back-pressure reaches the disk reads); uploads are
//! written chunk by chunk as they arrive.

mod partials;
mod paths;
mod placing;
mod special;
mod transfer;
mod zip_stream;

use std::time::UNIX_EPOCH;

use futures_util::stream::SplitSink;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tether_common::relay::files::{
    self, CHUNK_SIZE, FileEntry, FileKind, FilesReply, FilesRequest,
};
use tokio_tungstenite::tungstenite::Message;

use super::RelaySocket;
use partials::Partials;
pub(super) use paths::Root;
use transfer::{Download, Upload};
use zip_stream::ZipStream;

/// What uploads need from the agent, the same for every session.
#[derive(Debug, Clone)]
pub(crate) struct Uploads {
    /// Resumable uploads' partial files.
    partials: Partials,
    /// The mode of a new file (0666 less the agent's umask).
    new_file_mode: u32,
}

impl Uploads {
    /// Partial uploads live in `dir` (made 0700); stale ones are removed now.
    pub(crate) fn new(dir: std::path::PathBuf) -> Uploads {
        let partials = Partials::new(dir);
        if let Err(e) = partials.prepare() {
            // Plain uploads still work; resumable ones will say why they cannot.
            tracing::warn!("files: {e}");
        }
        Uploads {
            partials,
            new_file_mode: placing::default_file_mode(),
        }
    }
}

type Sink = SplitSink<RelaySocket, Message>;

/// Serves requests until the console leaves.
pub(super) async fn serve(socket: RelaySocket, root: Root, uploads: Uploads) -> anyhow::Result<()> {
    let (mut sink, mut stream) = socket.split();
    let mut session = Session {
        root,
        uploads,
        download: None,
        upload: None,
    };
    loop {
        // While a download runs, send a chunk, then take whatever the console sent meanwhile
        // without waiting; otherwise wait for the console.
        if let Some(download) = session.download.as_mut() {
            match download.next_chunk(CHUNK_SIZE).await {
                Ok(Some(chunk)) => sink.send(Message::binary(chunk)).await?,
                Ok(None) => {
                    let id = download.id;
                    session.download = None;
                    reply(&mut sink, FilesReply::DownloadEnd { id }).await?;
                }
                Err(e) => {
                    let id = download.id;
                    session.download = None;
                    reply(&mut sink, error(id, format!("reading failed: {e}"))).await?;
                }
            }
            while let Some(message) = stream.next().now_or_never() {
                if !session.on_message(&mut sink, message).await? {
                    return Ok(());
                }
            }
            continue;
        }
        let message = stream.next().await;
        if !session.on_message(&mut sink, message).await? {
            return Ok(());
        }
    }
}

struct Session {
    root: Root,
    uploads: Uploads,
    download: Option<Download>,
    upload: Option<Upload>,
}

impl Session {
    /// `false` when the console has gone.
    async fn on_message(
        &mut self,
        sink: &mut Sink,
        message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> anyhow::Result<bool> {
        match message {
            Some(Ok(Message::Text(text))) => {
                let answer = match files::parse_request(&text) {
                    Some(request) => self.on_request(request).await,
                    None => None,
                };
                if let Some(answer) = answer {
                    reply(sink, answer).await?;
                }
                Ok(true)
            }
            Some(Ok(Message::Binary(bytes))) => {
                if let Some(upload) = self.upload.as_mut()
                    && let Err(e) = upload.write(&bytes).await
                {
                    let id = upload.id;
                    self.upload = None;
                    reply(sink, error(id, format!("writing failed: {e}"))).await?;
                }
                Ok(true)
            }
            Some(Ok(_)) => Ok(true),
            // Dropping an unfinished upload removes its temporary file.
            Some(Err(_)) | None => Ok(false),
        }
    }

    async fn on_request(&mut self, request: FilesRequest) -> Option<FilesReply> {
        let answer = match request {
            FilesRequest::List { id, path } => self.list(id, &path).await,
            FilesRequest::Mkdir { id, path } => self.mkdir(id, &path).await,
            FilesRequest::Rename { id, from, to } => self.rename(id, &from, &to).await,
            FilesRequest::Remove {
                id,
                path,
                recursive,
            } => self.remove(id, &path, recursive).await,
            FilesRequest::Download { id, path, offset } => {
                self.start_download(id, &path, offset).await
            }
            FilesRequest::Upload {
                id,
                path,
                size,
                overwrite,
            } => self.start_upload(id, &path, size, overwrite).await,
            FilesRequest::ResumeUpload {
                id,
                path,
                size,
                overwrite,
                resume_id,
            } => {
                self.resume_upload(id, &path, size, overwrite, resume_id)
                    .await
            }
            FilesRequest::UploadEnd { id } => self.finish_upload(id).await,
            FilesRequest::Cancel { id } => {
                if self.download.as_ref().is_some_and(|d| d.id == id) {
                    self.download = None;
                }
                if let Some(upload) = self.upload.take_if(|u| u.id == id) {
                    upload.discard();
                }
                Ok(FilesReply::Done { id })
            }
            FilesRequest::Zip { id, paths } => self.start_zip(id, &paths),
            FilesRequest::Unknown => return None,
        };
        Some(answer.unwrap_or_else(|reply| reply))
    }

    async fn list(&self, id: u64, path: &str) -> Result<FilesReply, FilesReply> {
        let dir = self
            .root
            .resolve(path)
            .map_err(|e| error(id, e.to_string()))?;
        let mut reader = tokio::fs::read_dir(&dir)
            .await
            .map_err(|e| io_error(id, path, &e))?;
        let mut entries = Vec::new();
        while let Some(entry) = reader
            .next_entry()
            .await
            .map_err(|e| io_error(id, path, &e))?
        {
            // An entry that vanished or cannot be read is left out rather than failing the list.
            if let Ok(metadata) = tokio::fs::symlink_metadata(entry.path()).await {
                entries.push(describe(&entry.file_name().to_string_lossy(), &metadata));
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(FilesReply::Listing {
            id,
            path: path.to_owned(),
            entries,
        })
    }

    async fn mkdir(&self, id: u64, path: &str) -> Result<FilesReply, FilesReply> {
        let target = self
            .root
            .resolve_entry(path)
            .map_err(|e| error(id, e.to_string()))?;
        tokio::fs::create_dir(&target)
            .await
            .map_err(|e| io_error(id, path, &e))?;
        Ok(FilesReply::Done { id })
    }

    async fn rename(&self, id: u64, from: &str, to: &str) -> Result<FilesReply, FilesReply> {
        let source = self
            .root
            .resolve_entry(from)
            .map_err(|e| error(id, e.to_string()))?;
        let target = self
            .root
            .resolve_entry(to)
            .map_err(|e| error(id, e.to_string()))?;
        if tokio::fs::symlink_metadata(&target).await.is_ok() {
            return Err(error(id, format!("{to} already exists")));
        }
        tokio::fs::rename(&source, &target)
            .await
            .map_err(|e| io_error(id, from, &e))?;
        Ok(FilesReply::Done { id })
    }

    async fn remove(&self, id: u64, path: &str, recursive: bool) -> Result<FilesReply, FilesReply> {
        let target = self
            .root
            .resolve_entry(path)
            .map_err(|e| error(id, e.to_string()))?;
        let metadata = tokio::fs::symlink_metadata(&target)
            .await
            .map_err(|e| io_error(id, path, &e))?;
        let removed = if !metadata.is_dir() {
            // Files and links (never what a link points to).
            tokio::fs::remove_file(&target).await
        } else if recursive {
            tokio::fs::remove_dir_all(&target).await
        } else {
            tokio::fs::remove_dir(&target).await
        };
        removed.map_err(|e| io_error(id, path, &e))?;
        Ok(FilesReply::Done { id })
    }

    async fn start_download(
        &mut self,
        id: u64,
        path: &str,
        offset: u64,
    ) -> Result<FilesReply, FilesReply> {
        if self.download.is_some() {
            return Err(error(
                id,
                "a download is already running in this session".into(),
            ));
        }
        let source = self
            .root
            .resolve(path)
            .map_err(|e| error(id, e.to_string()))?;
        let download = Download::open(id, &source, offset).await.map_err(|e| {
            tracing::info!(path, "files: download refused: {e}");
            io_error(id, path, &e)
        })?;
        let reply = FilesReply::DownloadStart {
            id,
            size: download.size,
            offset,
        };
        self.download = Some(download);
        Ok(reply)
    }

    /// Every path is checked before any byte is sent, so a refusal is a plain error reply.
    fn start_zip(&mut self, id: u64, paths: &[String]) -> Result<FilesReply, FilesReply> {
        if self.download.is_some() {
            return Err(error(
                id,
                "a download is already running in this session".into(),
            ));
        }
        if paths.is_empty() {
            return Err(error(id, "nothing selected".into()));
        }
        let mut selection = Vec::with_capacity(paths.len());
        for path in paths {
            let real = self
                .root
                .resolve(path)
                .map_err(|e| error(id, e.to_string()))?;
            zip_stream::check_selected(&real, path).map_err(|e| {
                tracing::info!(path, "files: zip refused: {e}");
                error(id, e.to_string())
            })?;
            selection.push(real);
        }
        let stream = ZipStream::start(self.root.clone(), selection, CHUNK_SIZE);
        self.download = Some(Download::zip(id, stream));
        Ok(FilesReply::DownloadStart {
            id,
            size: None,
            offset: 0,
        })
    }

    /// Where an upload of `path` would go, if this session may start one there now.
    async fn upload_target(
        &self,
        id: u64,
        path: &str,
        overwrite: bool,
    ) -> Result<std::path::PathBuf, FilesReply> {
        if self.upload.is_some() {
            return Err(error(
                id,
                "an upload is already running in this session".into(),
            ));
        }
        let target = self
            .root
            .resolve(path)
            .map_err(|e| error(id, e.to_string()))?;
        if !overwrite && tokio::fs::symlink_metadata(&target).await.is_ok() {
            return Err(error(id, format!("{path} already exists")));
        }
        Ok(target)
    }

    async fn start_upload(
        &mut self,
        id: u64,
        path: &str,
        size: u64,
        overwrite: bool,
    ) -> Result<FilesReply, FilesReply> {
        let target = self.upload_target(id, path, overwrite).await?;
        // Each upload also sweeps out stale partial uploads (cheap: a small private folder).
        let partials = self.uploads.partials.clone();
        let _ = tokio::task::spawn_blocking(move || partials.prepare()).await;
        let upload = Upload::create(id, target, size, self.uploads.new_file_mode)
            .await
            .map_err(|e| io_error(id, path, &e))?;
        self.upload = Some(upload);
        Ok(FilesReply::UploadReady { id })
    }

    async fn resume_upload(
        &mut self,
        id: u64,
        path: &str,
        size: u64,
        overwrite: bool,
        resume_id: Option<String>,
    ) -> Result<FilesReply, FilesReply> {
        let target = self.upload_target(id, path, overwrite).await?;
        let resumed = Upload::resume(
            id,
            target,
            size,
            &self.uploads.partials,
            resume_id,
            self.uploads.new_file_mode,
        )
        .await
        .map_err(|e| {
            tracing::warn!(path, "files: resumable upload refused: {e}");
            io_error(id, path, &e)
        })?;
        self.upload = Some(resumed.upload);
        Ok(FilesReply::UploadResumed {
            id,
            offset: resumed.offset,
            resume_id: Some(resumed.resume_id),
        })
    }

    async fn finish_upload(&mut self, id: u64) -> Result<FilesReply, FilesReply> {
        match self.upload.take() {
            Some(upload) if upload.id == id => upload
                .finish()
                .await
                .map(|()| FilesReply::Done { id })
                .map_err(|e| error(id, e.to_string())),
            other => {
                self.upload = other;
                Err(error(id, "no such upload".into()))
            }
        }
    }
}

fn describe(name: &str, metadata: &std::fs::Metadata) -> FileEntry {
    use std::os::unix::fs::PermissionsExt;
    let kind = if metadata.is_symlink() {
        FileKind::Symlink
    } else if metadata.is_dir() {
        FileKind::Dir
    } else if metadata.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    };
    let mtime = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    FileEntry {
        name: name.to_owned(),
        kind,
        size: if metadata.is_file() {
            metadata.len()
        } else {
            0
        },
        mtime,
        mode: metadata.permissions().mode() & 0o7777,
    }
}

fn error(id: u64, message: String) -> FilesReply {
    FilesReply::Error { id, message }
}

fn io_error(id: u64, path: &str, e: &dyn std::fmt::Display) -> FilesReply {
    error(id, format!("{path}: {e}"))
}

async fn reply(sink: &mut Sink, reply: FilesReply) -> anyhow::Result<()> {
    sink.send(Message::text(files::to_json(&reply))).await?;
    Ok(())
}
