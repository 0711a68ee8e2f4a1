//! One download or upload in progress.

use std::path::{Path, PathBuf};

use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

pub struct Download {
    pub id: u64,
    pub size: u64,
    file: File,
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
            size: metadata.len(),
            file,
        })
    }

    /// The next chunk, `None` at the end.
    pub async fn next_chunk(&mut self, max: usize) -> std::io::Result<Option<Vec<u8>>> {
        let mut buffer = vec![0u8; max];
        let n = self.file.read(&mut buffer).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.truncate(n);
        Ok(Some(buffer))
    }
}

/// An upload being written to a temporary file beside its target. Dropped unfinished, the
/// temporary file is removed, so a broken upload never leaves a half file under the real name.
pub struct Upload {
    pub id: u64,
    target: PathBuf,
    temp: PathBuf,
    file: Option<File>,
    expected: u64,
    written: u64,
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
        })
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
        // Renamed: nothing left to clean up.
        self.temp = PathBuf::new();
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}
