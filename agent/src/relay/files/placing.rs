//! Putting a finished upload in place: temporary files are created 0600 (nobody else can read
//! a file while it arrives), then get their final owner and mode just before the rename that
//! makes them the target. A replaced file keeps its owner, group and permission bits (an
//! administrator who edits `~alice/.ssh/id_ed25519`, 0600 alice, through the file manager must not
//! leave it 0644 root); a new file gets 0666 less the agent's umask, as `cp` or an editor would
//! give it. (ACLs and other extended attributes of a replaced file are not carried over.)
//!
//! The rename is atomic: readers see the old file or the whole new one. A resumable upload's
//! bytes wait in the agent's private folder; when that is on another filesystem than the target,
//! they are first copied into a new temporary file beside the target (`O_EXCL`, random name).

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates a temporary file beside `target` (`.NAME.tether-upload-RANDOM`, 0600, never an
/// existing file or a link).
pub(super) fn create_beside(target: &Path) -> io::Result<(File, PathBuf)> {
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::other("no file name"))?
        .to_string_lossy()
        .into_owned();
    loop {
        let temp = target.with_file_name(format!(
            ".{name}.tether-upload-{:016x}",
            rand::random::<u64>()
        ));
        let created = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&temp);
        match created {
            Ok(file) => return Ok((file, temp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Gives `file` (written at `temp`, beside `target`) its final owner and mode, makes it durable
/// and renames it over `target`.
pub(super) fn place_beside(
    file: &File,
    temp: &Path,
    target: &Path,
    new_mode: u32,
) -> io::Result<()> {
    give_final_metadata(file, target, new_mode)?;
    file.sync_all()?;
    // In a folder others may write to, our temporary file could have been swapped for theirs:
    // rename only the file we wrote.
    let there = std::fs::symlink_metadata(temp)?;
    let ours = file.metadata()?;
    if (there.dev(), there.ino()) != (ours.dev(), ours.ino()) {
        return Err(io::Error::other(
            "the temporary file was replaced while the upload ran",
        ));
    }
    std::fs::rename(temp, target)
}

/// Moves a finished partial upload (`file`, at `partial` in the agent's private folder) over
/// `target`: a rename when both are on one filesystem, else a copy beside the target first.
pub(super) fn place_partial(
    file: &mut File,
    partial: &Path,
    target: &Path,
    new_mode: u32,
) -> io::Result<()> {
    let moved = move_partial(file, partial, target, new_mode);
    if moved.is_err() {
        // Still a partial upload: make it the agent's private file again, or resuming it would
        // find a file of another owner and refuse it.
        let _ = std::os::unix::fs::fchown(
            &*file,
            Some(nix::unistd::geteuid().as_raw()),
            Some(nix::unistd::getegid().as_raw()),
        );
        let _ = file.set_permissions(Permissions::from_mode(0o600));
    }
    moved
}

fn move_partial(file: &mut File, partial: &Path, target: &Path, new_mode: u32) -> io::Result<()> {
    give_final_metadata(file, target, new_mode)?;
    file.sync_all()?;
    match std::fs::rename(partial, target) {
        Err(e) if e.raw_os_error() == Some(nix::libc::EXDEV) => {}
        done => return done,
    }
    let (mut copy, temp) = create_beside(target)?;
    let copied = (|| {
        file.seek(SeekFrom::Start(0))?;
        io::copy(file, &mut copy)?;
        place_beside(&copy, &temp, target, new_mode)
    })();
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    std::fs::remove_file(partial)
}

/// The owner and mode of the file `target` if it is one (an overwrite), else `new_mode`.
fn give_final_metadata(file: &File, target: &Path, new_mode: u32) -> io::Result<()> {
    let existing = match std::fs::symlink_metadata(target) {
        Ok(existing) if existing.is_file() => existing,
        // New, or a link or special file that the rename replaces: nothing to keep.
        Ok(_) => return file.set_permissions(Permissions::from_mode(new_mode)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return file.set_permissions(Permissions::from_mode(new_mode));
        }
        Err(e) => return Err(e),
    };
    let mut mode = existing.mode() & 0o7777;
    let ours = file.metadata()?;
    if (ours.uid(), ours.gid()) != (existing.uid(), existing.gid())
        && let Err(e) = std::os::unix::fs::fchown(file, Some(existing.uid()), Some(existing.gid()))
    {
        // Only root may give a file away. Keep the group if we may, and never hand set-id bits
        // to an owner they did not belong to.
        tracing::warn!(
            target = %target.display(),
            uid = existing.uid(),
            gid = existing.gid(),
            "files: the replaced file's owner cannot be kept: {e}"
        );
        let _ = std::os::unix::fs::fchown(file, None, Some(existing.gid()));
        mode &= !0o6000;
    }
    // After the chown, which clears set-id bits.
    file.set_permissions(Permissions::from_mode(mode))
}

/// 0666 less the process's umask: the mode a new file gets. Read from `/proc/self/status`
/// (setting the umask to learn it would race with other threads creating files).
pub(super) fn default_file_mode() -> u32 {
    let umask = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Umask:"))
                .and_then(|value| u32::from_str_radix(value.trim(), 8).ok())
        })
        .unwrap_or(0o022);
    0o666 & !umask
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn temporary_files_are_private_and_replacements_keep_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("key");
        std::fs::write(&target, "old").unwrap();
        std::fs::set_permissions(&target, Permissions::from_mode(0o640)).unwrap();
        let (mut file, temp) = create_beside(&target).unwrap();
        assert_eq!(file.metadata().unwrap().mode() & 0o777, 0o600);
        file.write_all(b"new").unwrap();
        place_beside(&file, &temp, &target, 0o644).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o7777, 0o640);
        assert!(!temp.exists());

        let fresh = dir.path().join("fresh");
        let (file, temp) = create_beside(&fresh).unwrap();
        place_beside(&file, &temp, &fresh, 0o604).unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o7777, 0o604);
    }

    #[test]
    fn a_swapped_temporary_file_is_not_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("x");
        let (file, temp) = create_beside(&target).unwrap();
        std::fs::remove_file(&temp).unwrap();
        std::fs::write(&temp, "EVIL").unwrap();
        assert!(place_beside(&file, &temp, &target, 0o644).is_err());
        assert!(!target.exists());
    }

    #[test]
    fn a_partial_upload_on_another_filesystem_is_copied_beside_the_target() {
        // /dev/shm is a tmpfs on Linux; the test is moot where the temporary folder is one too.
        let Ok(private) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("x");
        std::fs::write(&target, "old").unwrap();
        std::fs::set_permissions(&target, Permissions::from_mode(0o640)).unwrap();
        let partial = private.path().join("partial");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .unwrap();
        file.write_all(b"copied across").unwrap();
        place_partial(&mut file, &partial, &target, 0o644).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"copied across");
        assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o7777, 0o640);
        assert!(!partial.exists());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x"], "no temporary file left beside the target");
    }

    #[test]
    fn the_default_mode_follows_the_umask() {
        // The test process has some umask; the result must at least be a plain file mode.
        let mode = default_file_mode();
        assert_eq!(mode & !0o666, 0, "{mode:o}");
        assert_ne!(mode & 0o600, 0, "the owner can read and write: {mode:o}");
    }
}
