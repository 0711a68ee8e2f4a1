//! Writing the agent's state: private (0600 files in a 0700 folder) and atomic (write aside,
//! then rename), so a crash never leaves half a key.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub(crate) fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let aside = path.with_extension("tmp");
    let _ = fs::remove_file(&aside);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&aside)?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&aside, path)
}
