//! Where resumable uploads keep their bytes between sessions: a private folder of the agent's
//! (`<state>/uploads`, 0700, owned by the agent's account), not beside the target. A file beside
//! the target at a predictable name could be planted by any local user who may write to that
//! folder; the upload would then continue from their bytes, or (with a hard link) write through
//! to another file.
//!
//! Each resumable upload gets a random id (128 bits), returned to the viewer, which names it to
//! continue. The partial file's name is `ID-SIZE-TAG` (TAG: the start of the SHA-256 of the target
//! path), so an id only continues the upload of the same size to the same place. A partial file
//! is opened with `O_NOFOLLOW` and used only if it is a regular file of the agent's own account
//! with one link; it is locked (`flock`) while a session writes it, so two sessions cannot
//! interleave their bytes. Partial files untouched for a day are removed (at start and whenever
//! an upload starts: the folder holds only unfinished uploads, so this is cheap).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

/// Partial uploads older than this are removed.
pub(super) const MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// Random bytes in an upload's id (hex in names and on the wire).
const ID_BYTES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub(super) enum PartialError {
    #[error("the agent's folder for resumable uploads {0} is unusable: {1}")]
    Folder(PathBuf, String),
    #[error("the resume id is malformed (expected {} hex digits)", ID_BYTES * 2)]
    BadId,
    #[error("this upload is still running in another session; try again when it has stopped")]
    Busy,
    #[error("the partial upload {0} is not the agent's own file; it was left alone")]
    NotOurs(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The agent's folder of partial uploads.
#[derive(Debug, Clone)]
pub(super) struct Partials {
    dir: PathBuf,
}

/// A partial upload, open for writing at its end and locked to this session.
pub(super) struct Partial {
    pub file: File,
    pub path: PathBuf,
    pub id: String,
    /// The bytes it already holds.
    pub offset: u64,
}

impl Partials {
    pub(super) fn new(dir: PathBuf) -> Partials {
        Partials { dir }
    }

    /// Makes the folder (0700, the agent's own) if needed and removes stale partial uploads.
    pub(super) fn prepare(&self) -> Result<(), PartialError> {
        let unusable = |why: String| PartialError::Folder(self.dir.clone(), why);
        crate::files::ensure_private_dir(&self.dir).map_err(|e| unusable(e.to_string()))?;
        let metadata = std::fs::symlink_metadata(&self.dir).map_err(|e| unusable(e.to_string()))?;
        if !metadata.is_dir() || metadata.uid() != euid() || metadata.mode() & 0o077 != 0 {
            return Err(unusable(
                "not a private folder of the agent's account".into(),
            ));
        }
        self.remove_stale(SystemTime::now());
        Ok(())
    }

    /// Removes partial uploads last written before `now - MAX_AGE`.
    fn remove_stale(&self, now: SystemTime) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            let stale = metadata
                .modified()
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age > MAX_AGE);
            if stale && !metadata.is_dir() {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => tracing::info!(
                        file = %entry.path().display(),
                        "files: removed a partial upload untouched for a day"
                    ),
                    Err(e) => tracing::warn!(
                        file = %entry.path().display(),
                        "files: cannot remove a stale partial upload: {e}"
                    ),
                }
            }
        }
    }

    /// The partial upload `resume_id` of `size` bytes to `target`, or a new one (offset 0, a
    /// new id) when there is no id or the agent no longer has that upload.
    pub(super) fn open(
        &self,
        resume_id: Option<&str>,
        target: &Path,
        size: u64,
    ) -> Result<Partial, PartialError> {
        self.prepare()?;
        if let Some(id) = resume_id {
            if !is_valid_id(id) {
                return Err(PartialError::BadId);
            }
            if let Some(partial) = self.continue_upload(id, target, size)? {
                return Ok(partial);
            }
            tracing::info!(
                target = %target.display(),
                "files: resume id unknown or expired; the upload starts over"
            );
        }
        self.start_upload(target, size)
    }

    fn path_of(&self, id: &str, target: &Path, size: u64) -> PathBuf {
        let tag = Sha256::digest(target.as_os_str().as_bytes());
        self.dir
            .join(format!("{id}-{size}-{}", hex::encode(&tag[..8])))
    }

    fn continue_upload(
        &self,
        id: &str,
        target: &Path,
        size: u64,
    ) -> Result<Option<Partial>, PartialError> {
        let path = self.path_of(id, target, size);
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(&path);
        let mut file = match opened {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let metadata = file.metadata()?;
        if !metadata.is_file()
            || metadata.uid() != euid()
            || metadata.nlink() != 1
            || metadata.len() > size
        {
            tracing::warn!(
                file = %path.display(),
                uid = metadata.uid(),
                links = metadata.nlink(),
                "files: refusing to resume into a partial upload the agent did not write"
            );
            return Err(PartialError::NotOurs(path.display().to_string()));
        }
        lock(&file)?;
        let offset = file.seek(SeekFrom::End(0))?;
        Ok(Some(Partial {
            file,
            path,
            id: id.to_owned(),
            offset,
        }))
    }

    fn start_upload(&self, target: &Path, size: u64) -> Result<Partial, PartialError> {
        loop {
            let id = hex::encode(rand::random::<[u8; ID_BYTES]>());
            let path = self.path_of(&id, target, size);
            let created = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&path);
            match created {
                Ok(file) => {
                    lock(&file)?;
                    return Ok(Partial {
                        file,
                        path,
                        id,
                        offset: 0,
                    });
                }
                // 128 random bits: a clash means a broken random source, but never reuse.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn lock(file: &File) -> Result<(), PartialError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(PartialError::Busy),
        Err(TryLockError::Error(e)) => Err(e.into()),
    }
}

fn is_valid_id(id: &str) -> bool {
    id.len() == ID_BYTES * 2
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn setup() -> (tempfile::TempDir, Partials, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let partials = Partials::new(dir.path().join("state/uploads"));
        let target = dir.path().join("target.bin");
        (dir, partials, target)
    }

    #[test]
    fn an_upload_continues_only_by_its_id_size_and_target() {
        let (_dir, partials, target) = setup();
        let mut first = partials.open(None, &target, 10).unwrap();
        assert_eq!(first.offset, 0);
        assert!(is_valid_id(&first.id), "{}", first.id);
        let folder = std::fs::metadata(partials.dir.as_path()).unwrap();
        assert_eq!(folder.permissions().mode() & 0o777, 0o700);
        let file = std::fs::metadata(&first.path).unwrap();
        assert_eq!(file.permissions().mode() & 0o777, 0o600);
        first.file.write_all(b"0123").unwrap();
        let id = first.id.clone();

        // Locked while the first session holds it.
        assert!(matches!(
            partials.open(Some(&id), &target, 10),
            Err(PartialError::Busy)
        ));
        drop(first);
        let again = partials.open(Some(&id), &target, 10).unwrap();
        assert_eq!((again.id.as_str(), again.offset), (id.as_str(), 4));
        drop(again);

        // Another size or target is another upload: a fresh start under a new id.
        let other = partials.open(Some(&id), &target, 11).unwrap();
        assert_eq!(other.offset, 0);
        assert_ne!(other.id, id);
        let elsewhere = partials
            .open(Some(&id), &target.with_file_name("other"), 10)
            .unwrap();
        assert_eq!(elsewhere.offset, 0);

        assert!(matches!(
            partials.open(Some("../../etc/passwd"), &target, 10),
            Err(PartialError::BadId)
        ));
        assert!(matches!(
            partials.open(Some(&id.to_uppercase()), &target, 10),
            Err(PartialError::BadId)
        ));
    }

    #[test]
    fn links_and_foreign_files_are_not_resumed() {
        let (dir, partials, target) = setup();
        let first = partials.open(None, &target, 10).unwrap();
        let (id, path) = (first.id.clone(), first.path.clone());
        drop(first);
        // A hard link elsewhere to the partial file: two links.
        std::fs::hard_link(&path, dir.path().join("second-link")).unwrap();
        assert!(matches!(
            partials.open(Some(&id), &target, 10),
            Err(PartialError::NotOurs(_))
        ));
        std::fs::remove_file(dir.path().join("second-link")).unwrap();
        // A symbolic link in its place is not followed.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(dir.path().join("elsewhere"), "EVIL").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &path).unwrap();
        assert!(partials.open(Some(&id), &target, 10).is_err());
    }

    #[test]
    fn partial_uploads_older_than_a_day_are_removed() {
        let (_dir, partials, target) = setup();
        let partial = partials.open(None, &target, 10).unwrap();
        let path = partial.path.clone();
        drop(partial);
        partials.remove_stale(SystemTime::now() + MAX_AGE / 2);
        assert!(path.exists(), "younger than a day");
        partials.remove_stale(SystemTime::now() + MAX_AGE + Duration::from_secs(60));
        assert!(!path.exists(), "older than a day");
    }
}
