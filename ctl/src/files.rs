//! `tetherctl ls|mkdir|mv|rm|upload|download --device D …`: a files session
//! (`tether_common::relay::files`) on one device, one request at a time.
//!
//! Paths on the device are absolute, as the device sees them; the agent refuses anything outside
//! the folders the session may use, and its message becomes tetherctl's error line.

mod resume;
mod session;
mod transfer;

use std::path::PathBuf;

use anyhow::{Context, bail};
use tether_common::ids::DeviceId;
use tether_common::relay::files::{FileEntry, FileKind, FilesReply, FilesRequest};

use crate::cli::Command;
use crate::commands::find_device;
use crate::connection::Control;
use crate::output::{print_human, print_json, table, time_secs};
pub(crate) use session::FilesSession;

/// Runs one file command (any other command is a programming error).
pub(crate) async fn execute(
    control: &mut Control,
    command: Command,
    json: bool,
) -> anyhow::Result<()> {
    // Checked before a session is opened, so a mistake costs nothing on the device.
    if let Command::Download {
        zip: None, paths, ..
    } = &command
        && paths.len() != 2
    {
        bail!("download takes REMOTE LOCAL (or --zip OUT.zip PATH…)");
    }
    let device = match &command {
        Command::Ls { device, .. }
        | Command::Mkdir { device, .. }
        | Command::Mv { device, .. }
        | Command::Rm { device, .. }
        | Command::Upload { device, .. }
        | Command::Download { device, .. } => find_device(control, device).await?,
        _ => bail!("not a file command"),
    };
    let mut session = FilesSession::open(control, &device).await?;
    let result = run(&mut session, &device, command, json).await;
    session.close().await;
    result
}

async fn run(
    session: &mut FilesSession,
    device: &DeviceId,
    command: Command,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        Command::Ls { path, .. } => {
            let id = session.id();
            let reply = session.call(FilesRequest::List { id, path }).await?;
            let FilesReply::Listing { entries, .. } = reply else {
                bail!("the device sent an unexpected answer to a listing");
            };
            if json {
                print_json(&entries);
            } else if !entries.is_empty() {
                println!("{}", listing_table(&entries));
            }
            Ok(())
        }
        Command::Mkdir { path, .. } => {
            let id = session.id();
            let request = FilesRequest::Mkdir {
                id,
                path: path.clone(),
            };
            session.call(request).await?;
            done(json, &format!("created {path}"))
        }
        Command::Mv { from, to, .. } => {
            let id = session.id();
            let request = FilesRequest::Rename {
                id,
                from: from.clone(),
                to: to.clone(),
            };
            session.call(request).await?;
            done(json, &format!("moved {from} to {to}"))
        }
        Command::Rm {
            path, recursive, ..
        } => {
            let id = session.id();
            let request = FilesRequest::Remove {
                id,
                path: path.clone(),
                recursive,
            };
            session.call(request).await?;
            done(json, &format!("removed {path}"))
        }
        Command::Upload {
            local,
            remote,
            overwrite,
            resume,
            ..
        } => {
            let remote = upload_target(&local, &remote)?;
            let resumable_on = resume.then_some(device);
            let sent = transfer::upload(session, &local, &remote, overwrite, resumable_on).await?;
            report(
                json,
                "uploaded",
                &local.display().to_string(),
                &remote,
                sent,
            )
        }
        Command::Download {
            paths,
            zip: Some(out),
            ..
        } => {
            let bytes = transfer::download_zip(session, paths, &out).await?;
            let out = out.display().to_string();
            report(json, "zipped", "selection", &out, bytes)
        }
        Command::Download { paths, resume, .. } => {
            let [remote, local] = <[String; 2]>::try_from(paths)
                .map_err(|_| anyhow::anyhow!("download takes REMOTE LOCAL"))?;
            let local = download_target(&remote, PathBuf::from(local));
            let bytes = transfer::download(session, &remote, &local, resume).await?;
            report(
                json,
                "downloaded",
                &remote,
                &local.display().to_string(),
                bytes,
            )
        }
        _ => bail!("not a file command"),
    }
}

/// `REMOTE` ending in `/` names a folder: the file keeps its local name there.
fn upload_target(local: &std::path::Path, remote: &str) -> anyhow::Result<String> {
    if !remote.ends_with('/') {
        return Ok(remote.to_owned());
    }
    let name = local
        .file_name()
        .context("the local path names no file")?
        .to_str()
        .context("the local file name is not UTF-8")?;
    Ok(format!("{remote}{name}"))
}

/// A local folder receives the file under its remote name.
fn download_target(remote: &str, local: PathBuf) -> PathBuf {
    let name = remote.rsplit('/').next().filter(|n| !n.is_empty());
    match name {
        Some(name) if local.is_dir() => local.join(name),
        _ => local,
    }
}

fn done(json: bool, message: &str) -> anyhow::Result<()> {
    if json {
        print_json(&serde_json::json!({ "ok": true }));
    } else {
        print_human(message);
    }
    Ok(())
}

fn report(json: bool, verb: &str, from: &str, to: &str, bytes: u64) -> anyhow::Result<()> {
    if json {
        print_json(&serde_json::json!({ "from": from, "to": to, "bytes": bytes }));
    } else {
        print_human(&format!("{verb} {from} to {to} ({bytes} bytes)"));
    }
    Ok(())
}

fn listing_table(entries: &[FileEntry]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let size = if e.kind == FileKind::Dir {
                "-".to_owned()
            } else {
                e.size.to_string()
            };
            vec![
                kind_name(e.kind).to_owned(),
                size,
                time_secs(e.mtime),
                permissions(e.kind, e.mode),
                e.name.clone(),
            ]
        })
        .collect();
    table(
        &["KIND", "SIZE", "MODIFIED (UTC)", "PERMISSIONS", "NAME"],
        &rows,
    )
}

fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::File => "file",
        FileKind::Dir => "dir",
        FileKind::Symlink => "link",
        FileKind::Other => "other",
    }
}

/// `drwxr-xr-x`, as `ls -l` shows it (set-id and sticky bits as `s`/`t`).
fn permissions(kind: FileKind, mode: u32) -> String {
    let mut out = String::with_capacity(10);
    out.push(match kind {
        FileKind::Dir => 'd',
        FileKind::Symlink => 'l',
        FileKind::File => '-',
        FileKind::Other => '?',
    });
    let special = [0o4000, 0o2000, 0o1000];
    let marks = ['s', 's', 't'];
    for (i, shift) in [6u32, 3, 0].into_iter().enumerate() {
        let bits = (mode >> shift) & 0o7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        let execute = bits & 1 != 0;
        out.push(match (mode & special[i] != 0, execute) {
            (true, true) => marks[i],
            (true, false) => marks[i].to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_read_like_ls() {
        assert_eq!(permissions(FileKind::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(permissions(FileKind::File, 0o640), "-rw-r-----");
        assert_eq!(permissions(FileKind::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(permissions(FileKind::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(permissions(FileKind::File, 0o1644), "-rw-r--r-T");
    }

    #[test]
    fn targets_keep_names_when_a_folder_is_named() {
        let local = std::path::Path::new("/tmp/some/file.bin");
        assert_eq!(upload_target(local, "/srv/").unwrap(), "/srv/file.bin");
        assert_eq!(upload_target(local, "/srv/x").unwrap(), "/srv/x");
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            download_target("/srv/a.txt", dir.path().to_owned()),
            dir.path().join("a.txt")
        );
        let file = dir.path().join("b");
        assert_eq!(download_target("/srv/a.txt", file.clone()), file);
    }
}
