//! Path confinement for file sessions: every path the console names must resolve, after `..` and
//! symbolic links, inside the session's root folder.
//!
//! Rules: paths are absolute; no `..` components (refused rather than interpreted, so the check
//! cannot be fooled by how `..` meets a symbolic link); no NUL bytes. The deepest part of the
//! path that exists is resolved with `canonicalize` (following every link) and must stay under
//! the canonical root; what does not exist yet (a new folder or upload) is appended to that as
//! plain names.

use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathError {
    #[error("paths must be absolute: {0:?}")]
    NotAbsolute(String),
    #[error("'..' is not allowed in paths: {0:?}")]
    ParentComponent(String),
    #[error("{0:?} is outside the folders this session may use")]
    OutsideRoot(String),
    #[error("{0:?}: {1}")]
    Io(String, String),
}

/// Where a session's file operations are allowed.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    canonical: PathBuf,
}

impl Root {
    pub(crate) fn new(path: &Path) -> std::io::Result<Root> {
        Ok(Root {
            canonical: path.canonicalize()?,
        })
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.canonical
    }

    /// The real path for `requested`, checked to be inside the root. The last component may name
    /// something that does not exist yet; if it exists and is a symbolic link, it is resolved too.
    pub(crate) fn resolve(&self, requested: &str) -> Result<PathBuf, PathError> {
        let path = self.checked(requested)?;
        let mut existing = path.as_path();
        let mut missing = Vec::new();
        let resolved = loop {
            match existing.canonicalize() {
                Ok(real) => break real,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let Some(name) = existing.file_name() else {
                        return Err(PathError::Io(requested.to_owned(), e.to_string()));
                    };
                    missing.push(name.to_owned());
                    existing = existing.parent().unwrap_or(Path::new("/"));
                }
                Err(e) => return Err(PathError::Io(requested.to_owned(), e.to_string())),
            }
        };
        let full = missing
            .iter()
            .rev()
            .fold(resolved, |acc, name| acc.join(name));
        self.inside(&full, requested)
    }

    /// Like [`resolve`](Self::resolve), but a symbolic link in the last place is the link itself
    /// (to remove or rename a link, not what it points to).
    pub(crate) fn resolve_entry(&self, requested: &str) -> Result<PathBuf, PathError> {
        let path = self.checked(requested)?;
        let Some(name) = path.file_name() else {
            return Err(PathError::OutsideRoot(requested.to_owned()));
        };
        let parent = path.parent().unwrap_or(Path::new("/"));
        let parent = self.resolve(&parent.to_string_lossy())?;
        let full = parent.join(name);
        if full == self.canonical {
            // The root itself is not an entry one may remove or rename.
            return Err(PathError::OutsideRoot(requested.to_owned()));
        }
        self.inside(&full, requested)
    }

    /// Whether a real (already resolved) path lies inside the root.
    pub(crate) fn contains(&self, real: &Path) -> bool {
        real.starts_with(&self.canonical)
    }

    fn checked(&self, requested: &str) -> Result<PathBuf, PathError> {
        if requested.contains('\0') {
            return Err(PathError::OutsideRoot(requested.to_owned()));
        }
        let path = Path::new(requested);
        if !path.is_absolute() {
            return Err(PathError::NotAbsolute(requested.to_owned()));
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(PathError::ParentComponent(requested.to_owned()));
        }
        Ok(path.components().collect())
    }

    fn inside(&self, full: &Path, requested: &str) -> Result<PathBuf, PathError> {
        if full.starts_with(&self.canonical) {
            Ok(full.to_owned())
        } else {
            Err(PathError::OutsideRoot(requested.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn setup() -> (tempfile::TempDir, Root, String) {
        let dir = tempfile::tempdir().unwrap();
        let root_path = dir.path().join("root");
        std::fs::create_dir_all(root_path.join("sub")).unwrap();
        std::fs::write(root_path.join("sub/a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        symlink(dir.path().join("secret"), root_path.join("escape")).unwrap();
        symlink(dir.path(), root_path.join("escape-dir")).unwrap();
        symlink(root_path.join("sub/a.txt"), root_path.join("inner")).unwrap();
        let root = Root::new(&root_path).unwrap();
        let base = root.path().display().to_string();
        (dir, root, base)
    }

    #[test]
    fn paths_inside_resolve() {
        let (_dir, root, base) = setup();
        assert_eq!(
            root.resolve(&format!("{base}/sub/a.txt")).unwrap(),
            root.path().join("sub/a.txt")
        );
        // Not there yet: a new file in an existing folder, or a new folder tree.
        assert_eq!(
            root.resolve(&format!("{base}/sub/new/deeper")).unwrap(),
            root.path().join("sub/new/deeper")
        );
        // Links that stay inside are fine.
        assert_eq!(
            root.resolve(&format!("{base}/inner")).unwrap(),
            root.path().join("sub/a.txt")
        );
        assert_eq!(
            root.resolve(&format!("{base}//sub/./a.txt")).unwrap(),
            root.path().join("sub/a.txt")
        );
    }

    #[test]
    fn escapes_are_refused() {
        let (_dir, root, base) = setup();
        for bad in [
            format!("{base}/../secret"),
            format!("{base}/sub/../../secret"),
            format!("{base}/escape"),
            format!("{base}/escape-dir/secret"),
            format!("{base}/escape-dir/new-file"),
            "/etc/passwd".to_owned(),
            "sub/a.txt".to_owned(),
            format!("{base}/sub\0/a.txt"),
        ] {
            assert!(root.resolve(&bad).is_err(), "{bad:?} resolved");
        }
    }

    #[test]
    fn entries_are_the_links_themselves() {
        let (_dir, root, base) = setup();
        // Removing the link "escape" removes the link inside the root, not the target outside.
        assert_eq!(
            root.resolve_entry(&format!("{base}/escape")).unwrap(),
            root.path().join("escape")
        );
        assert!(root.resolve_entry(&base).is_err(), "the root itself");
        assert!(
            root.resolve_entry(&format!("{base}/escape-dir/secret"))
                .is_err()
        );
    }
}
