//! One download or upload in progress.

use std::path::{Path, PathBuf};

use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::partials::{PartialError, Partials};
use super::zip_stream::ZipStream;
use super::{placing, special};

/// A download: one file from an offset, or a selection as a zip stream.
pub(super) struct Download {
    pub id: u64,
    /// The file's full size (`None` for a zip stream, whose size is known only at its end).
    pub size: Option<u64>,
    source: Source,
}

enum Source {
    File(File),
    Zip(ZipStream),
}

impl Download {
    /// Opens a regular file (never a FIFO, device or socket: see `special.rs`) at `offset`.
    pub(super) async fn open(id: u64, path: &Path, offset: u64) -> std::io::Result<Download> {
        let owned = path.to_owned();
        let file = tokio::task::spawn_blocking(move || special::open_regular(&owned))
            .await
            .map_err(std::io::Error::other)??;
        let metadata = file.metadata()?;
        if offset > metadata.len() {
            return Err(std::io::Error::other(
                "the offset is past the end of the file",
            ));
        }
        let mut file = File::from_std(file);
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        Ok(Download {
            id,
            size: Some(metadata.len()),
            source: Source::File(file),
        })
    }

    pub(super) fn zip(id: u64, stream: ZipStream) -> Download {
        Download {
            id,
            size: None,
            source: Source::Zip(stream),
        }
    }

    /// The next chunk (at most `max` bytes), `None` at the end.
    pub(super) async fn next_chunk(&mut self, max: usize) -> std::io::Result<Option<Vec<u8>>> {
        let file = match &mut self.source {
            Source::File(file) => file,
            Source::Zip(stream) => return stream.next_chunk().await,
        };
        let mut buffer = vec![0u8; max];
        let n = file.read(&mut buffer).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.truncate(n);
        Ok(Some(buffer))
    }
}

/// An upload being written to a private (0600) temporary file. A plain upload's lives beside
/// its target and is removed when the upload is dropped unfinished, so a broken upload never
/// leaves a half file under the real name; a resumable upload's lives in the agent's private
/// folder (`partials.rs`) and stays there when the session breaks.
pub(super) struct Upload {
    pub id: u64,
    target: PathBuf,
    temp: PathBuf,
    file: Option<File>,
    expected: u64,
    written: u64,
    /// Resumable: the temporary file is a partial upload in the agent's private folder.
    resumable: bool,
    /// Removed when dropped: false for a resumable upload until it is cancelled.
    remove_on_drop: bool,
    /// The mode a new file gets (0666 less the umask).
    new_mode: u32,
}

/// A resumable upload and what it continues from.
pub(super) struct Resumed {
    pub upload: Upload,
    pub offset: u64,
    pub resume_id: String,
}

impl Upload {
    pub(super) async fn create(
        id: u64,
        target: PathBuf,
        expected: u64,
        new_mode: u32,
    ) -> std::io::Result<Upload> {
        let beside = target.clone();
        let (file, temp) = tokio::task::spawn_blocking(move || placing::create_beside(&beside))
            .await
            .map_err(std::io::Error::other)??;
        Ok(Upload {
            id,
            target,
            temp,
            file: Some(File::from_std(file)),
            expected,
            written: 0,
            resumable: false,
            remove_on_drop: true,
            new_mode,
        })
    }

    /// A resumable upload: continues the partial upload `resume_id` of the same size to the
    /// same target if the agent still has it, else starts one under a new id.
    pub(super) async fn resume(
        id: u64,
        target: PathBuf,
        expected: u64,
        partials: &Partials,
        resume_id: Option<String>,
        new_mode: u32,
    ) -> Result<Resumed, PartialError> {
        let partials = partials.clone();
        let for_open = target.clone();
        let partial = tokio::task::spawn_blocking(move || {
            partials.open(resume_id.as_deref(), &for_open, expected)
        })
        .await
        .map_err(|e| PartialError::Io(std::io::Error::other(e)))??;
        let upload = Upload {
            id,
            target,
            temp: partial.path,
            file: Some(File::from_std(partial.file)),
            expected,
            written: partial.offset,
            resumable: true,
            remove_on_drop: false,
            new_mode,
        };
        Ok(Resumed {
            upload,
            offset: partial.offset,
            resume_id: partial.id,
        })
    }

    /// Abandons the upload and removes its temporary file, resumable or not (a cancel).
    pub(super) fn discard(mut self) {
        self.remove_on_drop = true;
    }

    pub(super) async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.written + bytes.len() as u64 > self.expected {
            return Err(std::io::Error::other("more bytes than announced"));
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("closed"))?;
        file.write_all(bytes).await?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Checks the size, gives the file its final owner and mode, makes it durable and renames
    /// it into place (`placing.rs`).
    pub(super) async fn finish(mut self) -> std::io::Result<()> {
        if self.written != self.expected {
            return Err(std::io::Error::other(format!(
                "the upload ended after {} of {} bytes",
                self.written, self.expected
            )));
        }
        let mut file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("closed"))?;
        file.flush().await?;
        let mut file = file.into_std().await;
        let (temp, target) = (self.temp.clone(), self.target.clone());
        let (resumable, new_mode) = (self.resumable, self.new_mode);
        tokio::task::spawn_blocking(move || {
            if resumable {
                placing::place_partial(&mut file, &temp, &target, new_mode)
            } else {
                placing::place_beside(&file, &temp, &target, new_mode)
            }
        })
        .await
        .map_err(std::io::Error::other)??;
        // In place: nothing left to clean up.
        self.remove_on_drop = false;
        self.temp = PathBuf::new();
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.remove_on_drop && !self.temp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}
