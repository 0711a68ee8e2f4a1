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
//!
//! Only folders and regular files go in (`special.rs`): FIFOs, sockets and devices are left out
//! with a log line, and so are folders on kernel pseudo-filesystems (`/proc`, `/sys`, …), whose
//! files can be endless or block; selecting one of those is refused before the stream starts.
//! Folders nest at most [`MAX_DEPTH`] deep.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::paths::Root;
use super::special::{self, OpenError};

/// Chunks waiting between the zip thread and the session.
const CHANNEL_CHUNKS: usize = 4;
/// Files of at least this size get zip64 headers up front (the size is not known to the
/// streaming writer until the end, so it cannot switch later).
const ZIP64_THRESHOLD: u64 = 0xFFFF_0000;
/// Folders deeper than this below a selected one end the zip with an error.
pub(super) const MAX_DEPTH: usize = 64;

/// Why a selected path cannot be zipped.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refusal {
    #[error("{0} is a system folder ({1}) whose files are kernel state; it cannot be zipped")]
    SystemFolder(String, &'static str),
    #[error("{0} is on a system filesystem ({1}); it cannot be zipped")]
    SystemFile(String, &'static str),
    #[error("{0} is not a regular file or folder ({1})")]
    Special(String, &'static str),
    #[error("{0}: {1}")]
    Io(String, io::Error),
}

/// Checks a selected item (`real`, resolved; `shown` as the console named it) before any byte is
/// sent, so that a refusal is a plain error reply.
pub(super) fn check_selected(real: &Path, shown: &str) -> Result<(), Refusal> {
    let io = |e: io::Error| Refusal::Io(shown.to_owned(), e);
    let kind = std::fs::symlink_metadata(real).map_err(io)?.file_type();
    let (opened, folder) = if kind.is_dir() {
        (special::open_dir(real).map_err(io)?, true)
    } else {
        match special::open_regular(real) {
            Ok(file) => (file, false),
            Err(OpenError::NotRegular(kind)) => {
                return Err(Refusal::Special(shown.to_owned(), kind));
            }
            Err(OpenError::Io(e)) => return Err(io(e)),
        }
    };
    match special::system_filesystem(&opened).map_err(io)? {
        Some(filesystem) if folder => Err(Refusal::SystemFolder(shown.to_owned(), filesystem)),
        Some(filesystem) => Err(Refusal::SystemFile(shown.to_owned(), filesystem)),
        None => Ok(()),
    }
}

pub(super) struct ZipStream {
    chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
}

impl ZipStream {
    /// Starts zipping `selection` (already resolved and checked against `root`).
    pub(super) fn start(root: Root, selection: Vec<PathBuf>, chunk_size: usize) -> ZipStream {
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
    pub(super) async fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
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
        add(&mut zip, root, item, &name, 0)?;
    }
    zip.finish().map_err(io::Error::other)?;
    Ok(())
}

type Writer<'a> = ZipWriter<zip::write::StreamWriter<&'a mut ChannelWriter>>;

/// Adds `path` (a real, checked path) as `name`, recursing into folders; `depth` folders below
/// the selected item.
fn add(zip: &mut Writer<'_>, root: &Root, path: &Path, name: &str, depth: usize) -> io::Result<()> {
    let metadata = std::fs::symlink_metadata(path)?;
    if metadata.is_file() {
        return add_file(zip, path, name);
    }
    if !metadata.is_dir() {
        leave_out(path, special::kind_name(metadata.file_type()));
        return Ok(());
    }
    if depth > MAX_DEPTH {
        return Err(io::Error::other(format!(
            "{name}: folders nested more than {MAX_DEPTH} deep are not zipped"
        )));
    }
    // A folder where a kernel pseudo-filesystem is mounted (say, a selected `/` would hold
    // `/proc`): left out whole.
    if let Some(filesystem) = special::system_filesystem(&special::open_dir(path)?)? {
        leave_out(path, filesystem);
        return Ok(());
    }
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
                    add_file(zip, &real, &child_name)?;
                }
                _ => {}
            }
        } else if kind.is_dir() {
            add(zip, root, &entry.path(), &child_name, depth + 1)?;
        } else if kind.is_file() {
            add_file(zip, &entry.path(), &child_name)?;
        } else {
            leave_out(&entry.path(), special::kind_name(kind));
        }
    }
    Ok(())
}

/// Adds the regular file `path` as `name`; anything else found there is left out.
fn add_file(zip: &mut Writer<'_>, path: &Path, name: &str) -> io::Result<()> {
    let mut file = match special::open_regular(path) {
        Ok(file) => file,
        Err(OpenError::NotRegular(kind)) => {
            leave_out(path, kind);
            return Ok(());
        }
        Err(OpenError::Io(e)) => return Err(e),
    };
    if let Some(filesystem) = special::system_filesystem(&file)? {
        leave_out(path, filesystem);
        return Ok(());
    }
    let metadata = file.metadata()?;
    let options = options(&metadata).large_file(metadata.len() >= ZIP64_THRESHOLD);
    zip.start_file(name, options).map_err(io::Error::other)?;
    io::copy(&mut file, zip)?;
    Ok(())
}

/// Logs what a zip leaves out and why (a FIFO, a device, a system filesystem).
fn leave_out(path: &Path, why: &str) {
    tracing::info!(path = %path.display(), "zip: left out ({why})");
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
