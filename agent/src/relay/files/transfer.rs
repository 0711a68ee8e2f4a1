//! One download or upload in progress.

use std::path::{Path, PathBuf};

use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::zip_stream::ZipStream;

/// A download: one file from an offset, or a selection as a zip stream.
pub struct Download {
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
    pub async fn open(id: u64, path: &Path, offset: u64) -> std::io::Result<Download> {
        let mut file = File::open(path).await?;
        let metadata = file.metadata().await?;
        if !metadata.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        if offset > metadata.len() {
            return Err(std::io::Error::other(
                "the offset is past the end of the file",
            ));
        }
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        Ok(Download {
            id,
            size: Some(metadata.len()),
            source: Source::File(file),
        })
    }

    pub fn zip(id: u64, stream: ZipStream) -> Download {
        Download {
            id,
            size: None,
            source: Source::Zip(stream),
        }
    }

    /// The next chunk (at most `max` bytes), `None` at the end.
    pub async fn next_chunk(&mut self, max: usize) -> std::io::Result<Option<Vec<u8>>> {
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

/// An upload being written to a temporary file beside its target. Dropped unfinished, the
/// temporary file is removed (unless the upload is resumable), so a broken upload never leaves a
/// half file under the real name.
pub struct Upload {
    pub id: u64,
    target: PathBuf,
    temp: PathBuf,
    file: Option<File>,
    expected: u64,
    written: u64,
    /// A resumable upload keeps its temporary file when the session breaks.
    keep_on_drop: bool,
}

impl Upload {
    pub async fn create(id: u64, target: PathBuf, expected: u64) -> std::io::Result<Upload> {
        let name = target
            .file_name()
            .ok_or_else(|| std::io::Error::other("no file name"))?
            .to_string_lossy()
            .into_owned();
        let temp = target.with_file_name(format!(
            ".{name}.tether-upload-{:016x}",
            rand::random::<u64>()
        ));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .await?;
        Ok(Upload {
            id,
            target,
            temp,
            file: Some(file),
            expected,
            written: 0,
            keep_on_drop: false,
        })
    }

    /// A resumable upload: its temporary file is named after the target and size
    /// (`.NAME.tether-upload-SIZE`), so a later `resume` of the same upload finds the bytes an
    /// interrupted one left. Returns the upload and the bytes already there.
    pub async fn resume(id: u64, target: PathBuf, expected: u64) -> std::io::Result<(Upload, u64)> {
        let name = target
            .file_name()
            .ok_or_else(|| std::io::Error::other("no file name"))?
            .to_string_lossy()
            .into_owned();
        let temp = target.with_file_name(format!(".{name}.tether-upload-{expected}"));
        // Never through a link someone put in the temporary file's place.
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&temp)
            .await?;
        let metadata = file.metadata().await?;
        if !metadata.is_file() {
            return Err(std::io::Error::other(
                "the temporary file is not a regular file",
            ));
        }
        let mut written = metadata.len();
        if written > expected {
            // Not from this upload after all: start again.
            file.set_len(0).await?;
            written = 0;
        }
        file.seek(std::io::SeekFrom::Start(written)).await?;
        let upload = Upload {
            id,
            target,
            temp,
            file: Some(file),
            expected,
            written,
            keep_on_drop: true,
        };
        Ok((upload, written))
    }

    /// Abandons the upload and removes its temporary file, resumable or not (a cancel).
    pub fn discard(mut self) {
        self.keep_on_drop = false;
    }

    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
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

    /// Checks the size, makes the bytes durable and renames the file into place.
    pub async fn finish(mut self) -> std::io::Result<()> {
        if self.written != self.expected {
            return Err(std::io::Error::other(format!(
                "the upload ended after {} of {} bytes",
                self.written, self.expected
            )));
        }
        let file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("closed"))?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&self.temp, &self.target).await?;
        self.keep_on_drop = false;
        // Renamed: nothing left to clean up.
        self.temp = PathBuf::new();
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.keep_on_drop && !self.temp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}
