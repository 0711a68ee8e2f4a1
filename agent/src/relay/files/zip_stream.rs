//! A selection of files and folders as one zip stream.
//!
//! The `zip` crate writes synchronously, so the archive is built on a blocking thread that hands
//! finished chunks to the session through a small bounded channel: when the console reads slowly,
//! `blocking_send` waits, the thread stops reading files, and memory stays at a few chunks
//! whatever the selection's size. Dropping the [`ZipStream`] (cancel, console gone) closes the
//! channel, and the thread stops at its next send.
//!
//! Entries are named relative to each selected item's parent folder (`/srv/docs` gives
//! `docs/…`). Inside a selected folder, a symbolic link is followed only when it leads to a
//! regular file inside the session's root; links to folders are left out (no cycles).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::paths::Root;

/// Chunks waiting between the zip thread and the session.
const CHANNEL_CHUNKS: usize = 4;
/// Files of at least this size get zip64 headers up front (the size is not known to the
/// streaming writer until the end, so it cannot switch later).
const ZIP64_THRESHOLD: u64 = 0xFFFF_0000;

pub struct ZipStream {
    chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
}

impl ZipStream {
    /// Starts zipping `selection` (already resolved and checked against `root`).
    pub fn start(root: Root, selection: Vec<PathBuf>, chunk_size: usize) -> ZipStream {
        let (sender, chunks) = mpsc::channel(CHANNEL_CHUNKS);
        tokio::task::spawn_blocking(move || {
            let mut out = ChannelWriter {
                sender: sender.clone(),
                buffer: Vec::with_capacity(chunk_size),
                chunk_size,
            };
            let result = write_archive(&root, &selection, &mut out).and_then(|()| out.flush());
            if let Err(e) = result {
                // The session may have gone; then nobody needs to hear about it.
                let _ = sender.blocking_send(Err(e));
            }
        });
        ZipStream { chunks }
    }

    /// The next chunk of the archive, `None` at its end.
    pub async fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.chunks.recv().await.transpose()
    }
}

fn write_archive(root: &Root, selection: &[PathBuf], out: &mut ChannelWriter) -> io::Result<()> {
    let mut zip = ZipWriter::new_stream(out);
    for item in selection {
        let name = item
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                io::Error::other("the root itself cannot be zipped; select its contents")
            })?;
        add(&mut zip, root, item, &name)?;
    }
    zip.finish().map_err(io::Error::other)?;
    Ok(())
}

type Writer<'a> = ZipWriter<zip::write::StreamWriter<&'a mut ChannelWriter>>;

/// Adds `path` (a real, checked path) as `name`, recursing into folders.
fn add(zip: &mut Writer<'_>, root: &Root, path: &Path, name: &str) -> io::Result<()> {
    let metadata = std::fs::metadata(path)?;
    if metadata.is_dir() {
        zip.add_directory(format!("{name}/"), options(&metadata))
            .map_err(io::Error::other)?;
        let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let child_name = format!("{name}/{}", entry.file_name().to_string_lossy());
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                match std::fs::canonicalize(entry.path()) {
                    Ok(real) if root.contains(&real) && real.is_file() => {
                        add(zip, root, &real, &child_name)?;
                    }
                    _ => {}
                }
            } else if kind.is_dir() || kind.is_file() {
                add(zip, root, &entry.path(), &child_name)?;
            }
        }
    } else if metadata.is_file() {
        let options = options(&metadata).large_file(metadata.len() >= ZIP64_THRESHOLD);
        zip.start_file(name, options).map_err(io::Error::other)?;
        let mut file = File::open(path)?;
        io::copy(&mut file, zip)?;
    }
    Ok(())
}

fn options(metadata: &std::fs::Metadata) -> SimpleFileOptions {
    use std::os::unix::fs::PermissionsExt;
    let mut options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        // Fast: the archive is for carrying files, and the link is usually faster than deflate.
        .compression_level(Some(1))
        .unix_permissions(metadata.permissions().mode() & 0o7777);
    if let Some(time) = metadata
        .modified()
        .ok()
        .map(time::OffsetDateTime::from)
        // Zip times have no zone; UTC, as the listing shows.
        .and_then(|t| {
            zip::DateTime::try_from(time::PrimitiveDateTime::new(t.date(), t.time())).ok()
        })
    {
        options = options.last_modified_time(time);
    }
    options
}

/// Collects the archive's bytes into chunks and sends each, waiting while the channel is full.
struct ChannelWriter {
    sender: mpsc::Sender<io::Result<Vec<u8>>>,
    buffer: Vec<u8>,
    chunk_size: usize,
}

impl Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let room = self.chunk_size - self.buffer.len();
        let n = room.min(bytes.len());
        self.buffer.extend_from_slice(&bytes[..n]);
        if self.buffer.len() == self.chunk_size {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(self.chunk_size));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the download was abandoned"))
    }
}
