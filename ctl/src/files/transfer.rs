//! Uploads and downloads, chunk by chunk. Each chunk is sent (or written) before the next is read,
//! so memory stays at one chunk whatever the size, and the relay's back-pressure sets the pace.
//!
//! Local disk IO is plain blocking IO: tetherctl runs one task on a current-thread runtime, and the
//! socket and the disk take turns anyway.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tether_common::ids::DeviceId;
use tether_common::relay::files::{CHUNK_SIZE, FilesReply, FilesRequest};

use super::resume::ResumeRecord;
use super::session::{FilesSession, Frame};

/// Sends `local` to `remote`; the bytes sent in this run. With `resumable_on` (the device), the
/// upload is resumable: it continues from what an earlier interrupted resumable upload of the
/// same file left on the device, whose resume id this machine remembers (`resume.rs`).
pub(super) async fn upload(
    session: &mut FilesSession,
    local: &Path,
    remote: &str,
    overwrite: bool,
    resumable_on: Option<&DeviceId>,
) -> anyhow::Result<u64> {
    let mut file = File::open(local).with_context(|| format!("cannot open {}", local.display()))?;
    let size = file.metadata()?.len();
    let id = session.id();
    let path = remote.to_owned();
    let record = resumable_on
        .map(|device| ResumeRecord::locate(device, remote, local, size))
        .transpose()?;
    let request = match &record {
        Some(record) => FilesRequest::ResumeUpload {
            id,
            path,
            size,
            overwrite,
            resume_id: record.load(),
        },
        None => FilesRequest::Upload {
            id,
            path,
            size,
            overwrite,
        },
    };
    let offset = match session.call(request).await? {
        FilesReply::UploadReady { id: ready } if ready == id => 0,
        FilesReply::UploadResumed {
            id: ready,
            offset,
            resume_id,
        } if ready == id && offset <= size => {
            // Remembered before any byte goes, so a run that breaks can always be continued.
            if let (Some(record), Some(resume_id)) = (&record, resume_id) {
                record.save(&resume_id)?;
            }
            offset
        }
        other => bail!("the device did not accept the upload: {other:?}"),
    };
    file.seek(SeekFrom::Start(offset))?;
    let bar = progress(Some(size), "upload");
    bar.set_position(offset);
    let mut buffer = vec![0u8; CHUNK_SIZE];
    let mut sent = offset;
    while sent < size {
        let n = file
            .read(&mut buffer)
            .with_context(|| format!("reading {}", local.display()))?;
        if n == 0 {
            break;
        }
        // Never more than announced, even if the file grew meanwhile.
        let n = n.min(usize::try_from(size - sent).unwrap_or(usize::MAX));
        session.send_bytes(buffer[..n].to_vec()).await?;
        sent += n as u64;
        bar.set_position(sent);
        session.pending_error()?;
    }
    session.send(&FilesRequest::UploadEnd { id }).await?;
    // A file that shrank meanwhile: the device refuses the short upload and keeps nothing.
    let answer = session.reply().await;
    bar.finish_and_clear();
    match answer? {
        FilesReply::Done { .. } => {
            if let Some(record) = record {
                record.forget();
            }
            Ok(sent - offset)
        }
        other => bail!("the device did not confirm the upload: {other:?}"),
    }
}

/// Fetches `remote` into `local`; with `resume`, from the length `local` already has. The bytes
/// received in this run.
pub(super) async fn download(
    session: &mut FilesSession,
    remote: &str,
    local: &Path,
    resume: bool,
) -> anyhow::Result<u64> {
    let offset = if resume {
        match std::fs::metadata(local) {
            Ok(metadata) => metadata.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => bail!("{}: {e}", local.display()),
        }
    } else {
        0
    };
    let id = session.id();
    let request = FilesRequest::Download {
        id,
        path: remote.to_owned(),
        offset,
    };
    let size = match session.call(request).await? {
        FilesReply::DownloadStart {
            size: Some(size), ..
        } => size,
        other => bail!("the device did not start the download: {other:?}"),
    };
    // Opened only once the device has agreed, so a refused download leaves the local file alone.
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(!resume)
        .open(local)
        .with_context(|| format!("cannot write {}", local.display()))?;
    file.seek(SeekFrom::Start(offset))?;
    let mut out = BufWriter::with_capacity(CHUNK_SIZE, file);
    let bar = progress(Some(size), "download");
    bar.set_position(offset);
    let received = receive(session, id, &mut out, &bar).await;
    bar.finish_and_clear();
    let received = received?;
    out.flush()
        .with_context(|| format!("writing {}", local.display()))?;
    if offset + received != size {
        bail!(
            "the download ended after {} of {size} bytes",
            offset + received
        );
    }
    Ok(received)
}

/// Fetches the selection as one zip file `out`; its size. A failed download removes `out`.
pub(super) async fn download_zip(
    session: &mut FilesSession,
    paths: Vec<String>,
    out: &Path,
) -> anyhow::Result<u64> {
    let id = session.id();
    match session.call(FilesRequest::Zip { id, paths }).await? {
        FilesReply::DownloadStart { .. } => {}
        other => bail!("the device did not start the zip download: {other:?}"),
    }
    let file = File::create(out).with_context(|| format!("cannot write {}", out.display()))?;
    let mut writer = BufWriter::with_capacity(CHUNK_SIZE, file);
    let bar = progress(None, "zip");
    let result = receive(session, id, &mut writer, &bar).await;
    bar.finish_and_clear();
    let result = result.and_then(|n| {
        writer
            .flush()
            .with_context(|| format!("writing {}", out.display()))?;
        Ok(n)
    });
    if result.is_err() {
        drop(writer);
        let _ = std::fs::remove_file(out);
    }
    result
}

/// Writes the download's bytes until its end; the number written.
async fn receive(
    session: &mut FilesSession,
    id: u64,
    out: &mut impl Write,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    let mut received = 0u64;
    loop {
        match session.next().await? {
            Frame::Bytes(bytes) => {
                out.write_all(&bytes).context("writing the local file")?;
                received += bytes.len() as u64;
                bar.inc(bytes.len() as u64);
            }
            Frame::Reply(FilesReply::DownloadEnd { id: end }) if end == id => return Ok(received),
            Frame::Reply(other) => bail!("unexpected answer during a download: {other:?}"),
        }
    }
}

/// A progress bar on stderr when it is a terminal; otherwise nothing is drawn.
fn progress(total: Option<u64>, label: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::new(total),
            "{msg:8} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{msg:8} {spinner} {bytes} {binary_bytes_per_sec}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label);
    bar
}
