//! Opening what a file session reads without being fooled by special files: a FIFO blocks
//! `open` until someone writes to it, opening some devices has side effects (a tape rewinds, a
//! serial line hangs up), and pseudo-filesystems such as `/proc` hold files that never end
//! (`/proc/kcore`) or block and consume what they return (`/proc/kmsg`).
//!
//! So: the kind is checked with `lstat` before opening (a device is never opened), the open uses
//! `O_NOFOLLOW | O_NONBLOCK` (a FIFO or link swapped in meanwhile cannot block or redirect it),
//! and the kind is checked again on the open file. Zips also ask `fstatfs` which filesystem a
//! folder is on, and leave kernel pseudo-filesystems out.

use std::fs::{File, FileType, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use nix::sys::statfs::{self, FsType};

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("not a regular file ({0})")]
    NotRegular(&'static str),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<OpenError> for io::Error {
    fn from(e: OpenError) -> io::Error {
        match e {
            OpenError::Io(e) => e,
            refused => io::Error::new(io::ErrorKind::InvalidInput, refused),
        }
    }
}

/// Opens `path` for reading if, and only if, it is a regular file (not through a symbolic link).
pub(super) fn open_regular(path: &Path) -> Result<File, OpenError> {
    let before = std::fs::symlink_metadata(path)?;
    refuse_unless_regular(before.file_type())?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?;
    // Something else may have been put in its place between the two looks.
    refuse_unless_regular(file.metadata()?.file_type())?;
    Ok(file)
}

/// Opens the folder `path` (not through a symbolic link), to ask which filesystem it is on.
pub(super) fn open_dir(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_DIRECTORY | nix::libc::O_NONBLOCK)
        .open(path)
}

fn refuse_unless_regular(kind: FileType) -> Result<(), OpenError> {
    if kind.is_file() {
        Ok(())
    } else {
        Err(OpenError::NotRegular(kind_name(kind)))
    }
}

/// What a file is, for messages.
pub(super) fn kind_name(kind: FileType) -> &'static str {
    if kind.is_file() {
        "a file"
    } else if kind.is_dir() {
        "a folder"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

/// Kernel pseudo-filesystems a zip never reads: their files are views of kernel state, some
/// endless or with side effects when read. (devtmpfs reports itself as tmpfs; its device nodes
/// are left out as special files anyway.)
const SYSTEM_FILESYSTEMS: [(FsType, &str); 16] = [
    (statfs::PROC_SUPER_MAGIC, "proc"),
    (statfs::SYSFS_MAGIC, "sysfs"),
    (statfs::DEBUGFS_MAGIC, "debugfs"),
    (statfs::TRACEFS_MAGIC, "tracefs"),
    (statfs::SECURITYFS_MAGIC, "securityfs"),
    (statfs::CGROUP_SUPER_MAGIC, "cgroup"),
    (statfs::CGROUP2_SUPER_MAGIC, "cgroup2"),
    (statfs::BPF_FS_MAGIC, "bpf"),
    (statfs::DEVPTS_SUPER_MAGIC, "devpts"),
    (statfs::SELINUX_MAGIC, "selinuxfs"),
    (statfs::SMACK_MAGIC, "smackfs"),
    (statfs::NSFS_MAGIC, "nsfs"),
    // Not named by nix; the values are linux/magic.h's.
    (FsType(0x6265_6570), "configfs"),
    (FsType(0x6165_676C), "pstore"),
    (FsType(0x6573_5543), "fusectl"),
    (FsType(0x4249_4E4D), "binfmt_misc"),
];

/// The name of the kernel pseudo-filesystem `file` is on, if it is on one.
pub(super) fn system_filesystem(file: &File) -> io::Result<Option<&'static str>> {
    let kind = statfs::fstatfs(file)?.filesystem_type();
    Ok(SYSTEM_FILESYSTEMS
        .iter()
        .find(|(magic, _)| *magic == kind)
        .map(|(_, name)| *name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_are_refused_before_opening() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Opening a FIFO with no writer would block this test forever.
        let refused = open_regular(&fifo).unwrap_err();
        assert_eq!(refused.to_string(), "not a regular file (a FIFO)");
        assert!(matches!(
            open_regular(Path::new("/dev/null")),
            Err(OpenError::NotRegular("a character device"))
        ));
        assert!(matches!(
            open_regular(dir.path()),
            Err(OpenError::NotRegular("a folder"))
        ));
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        std::os::unix::fs::symlink(&file, dir.path().join("link")).unwrap();
        assert!(matches!(
            open_regular(&dir.path().join("link")),
            Err(OpenError::NotRegular("a symbolic link"))
        ));
        assert!(open_regular(&file).is_ok());
    }

    #[test]
    fn pseudo_filesystems_are_recognised() {
        let proc_dir = open_dir(Path::new("/proc")).unwrap();
        assert_eq!(system_filesystem(&proc_dir).unwrap(), Some("proc"));
        let sys = open_dir(Path::new("/sys")).unwrap();
        assert_eq!(system_filesystem(&sys).unwrap(), Some("sysfs"));
        let temp = tempfile::tempdir().unwrap();
        let temp = open_dir(temp.path()).unwrap();
        assert_eq!(system_filesystem(&temp).unwrap(), None);
    }
}
