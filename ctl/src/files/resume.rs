//! What `tetherctl upload --resume` remembers between runs: the resume id the device gave a
//! resumable upload, so that running the same command again continues it.
//!
//! One small file per upload in `$XDG_STATE_HOME/tether/uploads/` (else
//! `~/.local/state/tether/uploads/`), named after a hash of the device, the remote path, the size
//! and the local file, and holding the id. It is written before the first byte is sent, and
//! removed once the upload is complete.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use tether_common::ids::DeviceId;

/// The record of one resumable upload (it may not exist yet).
pub(super) struct ResumeRecord {
    path: PathBuf,
}

impl ResumeRecord {
    /// The record for sending `local` (`size` bytes) to `remote` on `device`.
    pub(super) fn locate(
        device: &DeviceId,
        remote: &str,
        local: &Path,
        size: u64,
    ) -> anyhow::Result<ResumeRecord> {
        let local = local
            .canonicalize()
            .with_context(|| format!("cannot open {}", local.display()))?;
        let mut hash = Sha256::new();
        for part in [
            device.to_string().as_bytes(),
            remote.as_bytes(),
            local.as_os_str().as_encoded_bytes(),
            size.to_string().as_bytes(),
        ] {
            // Length-prefixed, so no two different uploads give the same bytes.
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        let name = hex::encode(&hash.finalize()[..16]);
        Ok(ResumeRecord {
            path: state_dir()?.join(name),
        })
    }

    /// The id an earlier run of this upload was given, if any.
    pub(super) fn load(&self) -> Option<String> {
        let text = fs::read_to_string(&self.path).ok()?;
        let id = text.trim();
        (!id.is_empty()).then(|| id.to_owned())
    }

    /// Remembers `id` (private to the user: 0600 in a 0700 folder; written aside and renamed, so
    /// an interrupted write never leaves half an id).
    pub(super) fn save(&self, id: &str) -> anyhow::Result<()> {
        let dir = self.path.parent().context("no folder for resume records")?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let aside = self.path.with_extension("tmp");
        let _ = fs::remove_file(&aside);
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&aside)
            .and_then(|mut file| file.write_all(format!("{id}\n").as_bytes()))
            .and_then(|()| fs::rename(&aside, &self.path));
        written.with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// The upload is complete: nothing to resume any more.
    pub(super) fn forget(&self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// `$XDG_STATE_HOME/tether/uploads`, else `~/.local/state/tether/uploads`.
fn state_dir() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".local").join("state"),
            None => bail!("no HOME to keep the resume state of uploads in"),
        },
    };
    Ok(base.join("tether").join("uploads"))
}
