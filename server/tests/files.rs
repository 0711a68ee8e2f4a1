//! File-manager sessions end to end: the real server and the real `tether-agent`, whose file
//! sessions are confined to a temporary folder (`--files-root`). Build every binary first
//! (`cargo build --workspace --bins`).

mod common;
#[allow(dead_code)]
#[path = "relay/sockets.rs"]
mod sockets;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tether_common::control::CreateSession;
use tether_common::relay::SessionKind;
use tether_common::relay::files::{self, CHUNK_SIZE, FileKind, FilesReply, FilesRequest};
use tokio::time::{Instant, sleep};
use tokio_tungstenite::tungstenite::Message;

use sockets::{RelaySocket, expect_paired, next_data, open, send};
use support::{AgentProcess, DEADLINE, Fixture};

struct Session {
    fx: Fixture,
    _agent: AgentProcess,
    /// The agent's files root (canonical).
    root: PathBuf,
    _root_dir: tempfile::TempDir,
}

impl Session {
    /// An agent whose file sessions are confined to a fresh temporary folder.
    async fn start() -> Session {
        Session::start_with(tempfile::tempdir().unwrap(), None).await
    }

    /// Confined to `root_dir`, or with `files_root` as the agent's `--files-root` instead
    /// (`root_dir` is still there for the test's files).
    async fn start_with(root_dir: tempfile::TempDir, files_root: Option<&str>) -> Session {
        let mut fx = Fixture::start().await;
        let root = root_dir.path().canonicalize().unwrap();
        let msh = fx.msh.clone();
        let root_arg = root.display().to_string();
        let files_root = files_root.unwrap_or(&root_arg);
        let agent = fx
            .spawn_agent(&msh, &fx.state_dir("a"), &["--files-root", files_root])
            .await;
        let device = agent.device_id.clone();
        fx.wait_device(&device, "online", |d| d.online).await;
        Session {
            fx,
            _agent: agent,
            root,
            _root_dir: root_dir,
        }
    }

    async fn open(&mut self) -> RelaySocket {
        let device = self.fx.devices().await[0].id.clone();
        let ticket = self
            .fx
            .control
            .ok(CreateSession {
                device,
                kind: SessionKind::Files,
            })
            .await;
        let mut ws = open(&self.fx.server, &ticket.url, Some(&self.fx.cookie))
            .await
            .unwrap();
        expect_paired(&mut ws).await;
        ws
    }

    fn path(&self, relative: &str) -> String {
        format!("{}/{relative}", self.root.display())
    }
}

async fn ask(ws: &mut RelaySocket, request: FilesRequest) -> FilesReply {
    send(ws, Message::text(files::to_json(&request))).await;
    match next_data(ws).await {
        Message::Text(text) => {
            files::parse_reply(&text).unwrap_or_else(|| panic!("odd reply {text}"))
        }
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn error_of(reply: FilesReply) -> String {
    match reply {
        FilesReply::Error { message, .. } => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn list_mkdir_rename_remove_inside_the_root_only() {
    let mut s = Session::start().await;
    std::fs::write(s.root.join("a.txt"), "hello").unwrap();
    std::os::unix::fs::symlink("/etc", s.root.join("etc-link")).unwrap();
    let mut ws = s.open().await;

    let mkdir = FilesRequest::Mkdir {
        id: 1,
        path: s.path("docs"),
    };
    assert_eq!(ask(&mut ws, mkdir).await, FilesReply::Done { id: 1 });
    let rename = FilesRequest::Rename {
        id: 2,
        from: s.path("a.txt"),
        to: s.path("docs/b.txt"),
    };
    assert_eq!(ask(&mut ws, rename).await, FilesReply::Done { id: 2 });
    let FilesReply::Listing { entries, .. } = ask(
        &mut ws,
        FilesRequest::List {
            id: 3,
            path: s.path("docs"),
        },
    )
    .await
    else {
        panic!("no listing");
    };
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].name.as_str(), entries[0].kind, entries[0].size),
        ("b.txt", FileKind::File, 5)
    );
    assert!(
        entries[0].mtime > 0 && entries[0].mode & 0o400 != 0,
        "{:?}",
        entries[0]
    );
    let FilesReply::Listing { entries, .. } = ask(
        &mut ws,
        FilesRequest::List {
            id: 4,
            path: s.path(""),
        },
    )
    .await
    else {
        panic!("no listing");
    };
    let link = entries.iter().find(|e| e.name == "etc-link").unwrap();
    assert_eq!(link.kind, FileKind::Symlink);

    // A folder with contents goes only when asked to recurse.
    let remove = |id, recursive| FilesRequest::Remove {
        id,
        path: s.path("docs"),
        recursive,
    };
    assert!(error_of(ask(&mut ws, remove(5, false)).await).contains("docs"));
    assert_eq!(
        ask(&mut ws, remove(6, true)).await,
        FilesReply::Done { id: 6 }
    );
    assert!(!s.root.join("docs").exists());

    // Ways out of the root are refused with a clear message.
    let refused = [
        (
            FilesRequest::List {
                id: 7,
                path: s.path(".."),
            },
            "'..'",
        ),
        (
            FilesRequest::List {
                id: 8,
                path: s.path("etc-link"),
            },
            "outside",
        ),
        (
            FilesRequest::Download {
                id: 9,
                path: s.path("etc-link/passwd"),
                offset: 0,
            },
            "outside",
        ),
        (
            FilesRequest::List {
                id: 10,
                path: "/etc".into(),
            },
            "outside",
        ),
        (
            FilesRequest::List {
                id: 11,
                path: "relative/path".into(),
            },
            "absolute",
        ),
        (
            FilesRequest::Mkdir {
                id: 12,
                path: s.path("etc-link/new"),
            },
            "outside",
        ),
        (
            FilesRequest::Remove {
                id: 13,
                path: s.path(""),
                recursive: true,
            },
            "outside",
        ),
    ];
    for (request, why) in refused {
        let message = error_of(ask(&mut ws, request.clone()).await);
        assert!(message.contains(why), "{request:?}: {message}");
    }
    // Removing the link removes the link, not /etc.
    let unlink = FilesRequest::Remove {
        id: 14,
        path: s.path("etc-link"),
        recursive: true,
    };
    assert_eq!(ask(&mut ws, unlink).await, FilesReply::Done { id: 14 });
    assert!(Path::new("/etc/passwd").exists());
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// Downloads `path` from `offset`; the bytes.
async fn download(ws: &mut RelaySocket, id: u64, path: String, offset: u64) -> Vec<u8> {
    let reply = ask(ws, FilesRequest::Download { id, path, offset }).await;
    let FilesReply::DownloadStart {
        size: Some(size), ..
    } = reply
    else {
        panic!("no download: {reply:?}");
    };
    let mut bytes = Vec::new();
    loop {
        match next_data(ws).await {
            Message::Binary(chunk) => {
                assert!(chunk.len() <= CHUNK_SIZE);
                bytes.extend_from_slice(&chunk);
            }
            Message::Text(text) => {
                assert_eq!(
                    files::parse_reply(&text),
                    Some(FilesReply::DownloadEnd { id })
                );
                break;
            }
            _ => unreachable!(),
        }
    }
    assert_eq!(bytes.len() as u64, size - offset);
    bytes
}

#[tokio::test]
async fn upload_and_download_round_trip_and_downloads_resume() {
    let mut s = Session::start().await;
    let mut ws = s.open().await;
    let data = pattern(3 * 1024 * 1024 + 123);
    let upload = FilesRequest::Upload {
        id: 1,
        path: s.path("big.bin"),
        size: data.len() as u64,
        overwrite: false,
    };
    assert_eq!(
        ask(&mut ws, upload).await,
        FilesReply::UploadReady { id: 1 }
    );
    for chunk in data.chunks(CHUNK_SIZE) {
        send(&mut ws, Message::binary(chunk.to_vec())).await;
    }
    assert_eq!(
        ask(&mut ws, FilesRequest::UploadEnd { id: 1 }).await,
        FilesReply::Done { id: 1 }
    );
    assert_eq!(
        Sha256::digest(std::fs::read(s.root.join("big.bin")).unwrap()),
        Sha256::digest(&data)
    );

    // An existing file is not replaced unless asked.
    let again = FilesRequest::Upload {
        id: 2,
        path: s.path("big.bin"),
        size: 1,
        overwrite: false,
    };
    assert!(error_of(ask(&mut ws, again).await).contains("already exists"));

    let whole = download(&mut ws, 3, s.path("big.bin"), 0).await;
    assert_eq!(Sha256::digest(&whole), Sha256::digest(&data));
    let rest = download(&mut ws, 4, s.path("big.bin"), 1_000_000).await;
    assert_eq!(rest, data[1_000_000..]);
}

#[tokio::test]
async fn an_interrupted_upload_leaves_no_file_behind() {
    let mut s = Session::start().await;
    let mut ws = s.open().await;
    let upload = FilesRequest::Upload {
        id: 1,
        path: s.path("partial.bin"),
        size: 1 << 20,
        overwrite: false,
    };
    assert_eq!(
        ask(&mut ws, upload).await,
        FilesReply::UploadReady { id: 1 }
    );
    send(&mut ws, Message::binary(pattern(100_000))).await;
    // The upload's temporary file exists while it runs…
    let deadline = Instant::now() + DEADLINE;
    let entries = |root: &Path| std::fs::read_dir(root).unwrap().count();
    while entries(&s.root) == 0 {
        assert!(Instant::now() < deadline, "no temporary file appeared");
        sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !s.root.join("partial.bin").exists(),
        "never under the real name before the end"
    );
    // …and is gone when the console disconnects mid-way.
    drop(ws);
    while entries(&s.root) != 0 {
        assert!(
            Instant::now() < deadline,
            "the partial upload stayed behind"
        );
        sleep(Duration::from_millis(20)).await;
    }

    // Ending an upload short is an error, and leaves nothing either.
    let mut ws = s.open().await;
    let upload = FilesRequest::Upload {
        id: 2,
        path: s.path("short.bin"),
        size: 10,
        overwrite: false,
    };
    assert_eq!(
        ask(&mut ws, upload).await,
        FilesReply::UploadReady { id: 2 }
    );
    send(&mut ws, Message::binary(vec![1, 2, 3])).await;
    let message = error_of(ask(&mut ws, FilesRequest::UploadEnd { id: 2 }).await);
    assert!(message.contains("3 of 10"), "{message}");
    assert_eq!(entries(&s.root), 0);
}

/// Resident memory of the process whose command line mentions `needle`, in bytes (max over
/// matches; 0 if none).
fn rss_of(needle: &str) -> u64 {
    let mut best = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmdline).contains(needle) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        if let Some(kib) = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<u64>().ok())
        {
            best = best.max(kib * 1024);
        }
    }
    best
}

/// Uploads then downloads 1 GiB through the relay, hashing both ends, and checks that neither the
/// server's nor the agent's resident memory grows with the file. The printed rates are figures
/// (`cargo test -p tether-server --test files one_gib -- --nocapture`), not part of the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_through_a_files_session() {
    const SIZE: u64 = 1 << 30;
    let mut s = Session::start().await;
    let mut ws = s.open().await;
    let server_pid = s.fx.server.pid().unwrap().to_string();
    let agent_needle = s.fx.state_dir("a").display().to_string();
    let sample = |max: &mut (u64, u64)| {
        let server = std::fs::read_to_string(format!("/proc/{server_pid}/status"))
            .ok()
            .and_then(|st| {
                st.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .map(str::to_owned)
            })
            .and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024;
        *max = (max.0.max(server), max.1.max(rss_of(&agent_needle)));
    };
    let mut peak = (0, 0);
    sample(&mut peak);
    eprintln!(
        "before: server RSS {} MiB, agent RSS {} MiB",
        peak.0 >> 20,
        peak.1 >> 20
    );

    let chunk: Vec<u8> = pattern(CHUNK_SIZE);
    let upload = FilesRequest::Upload {
        id: 1,
        path: s.path("gig.bin"),
        size: SIZE,
        overwrite: false,
    };
    assert_eq!(
        ask(&mut ws, upload).await,
        FilesReply::UploadReady { id: 1 }
    );
    let started = Instant::now();
    let mut hasher = Sha256::new();
    let mut sent = 0;
    while sent < SIZE {
        send(&mut ws, Message::binary(chunk.clone())).await;
        hasher.update(&chunk);
        sent += CHUNK_SIZE as u64;
        if sent.is_multiple_of(64 << 20) {
            sample(&mut peak);
        }
    }
    assert_eq!(
        ask(&mut ws, FilesRequest::UploadEnd { id: 1 }).await,
        FilesReply::Done { id: 1 }
    );
    let up = started.elapsed().as_secs_f64();
    let sent_hash = hasher.finalize();

    let reply = ask(
        &mut ws,
        FilesRequest::Download {
            id: 2,
            path: s.path("gig.bin"),
            offset: 0,
        },
    )
    .await;
    assert!(
        matches!(
            reply,
            FilesReply::DownloadStart {
                size: Some(SIZE),
                ..
            }
        ),
        "{reply:?}"
    );
    let started = Instant::now();
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    loop {
        match next_data(&mut ws).await {
            Message::Binary(bytes) => {
                hasher.update(&bytes);
                received += bytes.len() as u64;
                if received.is_multiple_of(64 << 20) {
                    sample(&mut peak);
                }
            }
            Message::Text(_) => break,
            _ => unreachable!(),
        }
    }
    let down = started.elapsed().as_secs_f64();
    assert_eq!(received, SIZE);
    assert_eq!(hasher.finalize(), sent_hash, "SHA-256 differs");
    // Memory must not follow the file: a few chunks in flight, not a fraction of a gibibyte.
    assert!(
        peak.0 < 128 << 20,
        "server RSS peaked at {} MiB",
        peak.0 >> 20
    );
    assert!(
        peak.1 < 64 << 20,
        "agent RSS peaked at {} MiB",
        peak.1 >> 20
    );
    eprintln!(
        "1 GiB upload {:.0} MB/s, download {:.0} MB/s; peak RSS server {} MiB, agent {} MiB; SHA-256 equal",
        SIZE as f64 / up / 1e6,
        SIZE as f64 / down / 1e6,
        peak.0 >> 20,
        peak.1 >> 20
    );
}

/// Sends `data` as the bytes of upload `id` and ends it; the agent's answer.
async fn send_upload(ws: &mut RelaySocket, id: u64, data: &[u8]) -> FilesReply {
    for chunk in data.chunks(CHUNK_SIZE) {
        send(ws, Message::binary(chunk.to_vec())).await;
    }
    ask(ws, FilesRequest::UploadEnd { id }).await
}

/// `mkfifo path` (coreutils: the test crate has no safe wrapper for mknod).
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Overwriting a file keeps its permissions and owner: an administrator who edits a private key
/// through the file manager must not leave it readable by everyone (review finding 12).
#[tokio::test]
async fn an_overwritten_file_keeps_its_mode_and_owner() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut s = Session::start().await;
    let key = s.root.join("id_ed25519");
    std::fs::write(&key, "old secret").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The test and the agent run as the account that made the root folder. As root (the usual
    // agent), the file belongs to someone else too: nobody.
    let my_uid = std::fs::metadata(&s.root).unwrap().uid();
    if my_uid == 0 {
        std::os::unix::fs::chown(&key, Some(65534), Some(65534)).unwrap();
    }
    let before = std::fs::metadata(&key).unwrap();
    let mut ws = s.open().await;
    let data = b"new secret, longer than before".to_vec();
    let upload = FilesRequest::Upload {
        id: 1,
        path: s.path("id_ed25519"),
        size: data.len() as u64,
        overwrite: true,
    };
    assert_eq!(
        ask(&mut ws, upload).await,
        FilesReply::UploadReady { id: 1 }
    );
    assert_eq!(
        send_upload(&mut ws, 1, &data).await,
        FilesReply::Done { id: 1 }
    );
    let after = std::fs::metadata(&key).unwrap();
    assert_eq!(std::fs::read(&key).unwrap(), data);
    assert_eq!(after.mode() & 0o7777, 0o600, "mode changed");
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));

    // A new file gets the usual mode (0666 less the agent's umask), never 0600 by accident.
    let upload = FilesRequest::Upload {
        id: 2,
        path: s.path("fresh.txt"),
        size: 2,
        overwrite: false,
    };
    assert_eq!(
        ask(&mut ws, upload).await,
        FilesReply::UploadReady { id: 2 }
    );
    assert_eq!(
        send_upload(&mut ws, 2, b"hi").await,
        FilesReply::Done { id: 2 }
    );
    let fresh = std::fs::metadata(s.root.join("fresh.txt")).unwrap();
    assert_eq!(
        fresh.mode() & 0o7777,
        0o644,
        "the agent runs with umask 022"
    );
    assert_eq!(fresh.uid(), my_uid);
}

/// A resumable upload never continues from a file a local user planted beside the target
/// (review finding 12: the old name was `.NAME.tether-upload-SIZE`).
#[tokio::test]
async fn a_resumable_upload_ignores_a_planted_partial_file() {
    let mut s = Session::start().await;
    let planted = s.root.join(".x.tether-upload-10");
    std::fs::write(&planted, "EVIL").unwrap();
    let mut ws = s.open().await;
    let data = b"0123456789".to_vec();
    let resume = FilesRequest::ResumeUpload {
        id: 1,
        path: s.path("x"),
        size: 10,
        overwrite: false,
        resume_id: None,
    };
    let FilesReply::UploadResumed { id: 1, offset, .. } = ask(&mut ws, resume).await else {
        panic!("no resumable upload");
    };
    assert_eq!(offset, 0, "continued from the planted file");
    assert_eq!(
        send_upload(&mut ws, 1, &data).await,
        FilesReply::Done { id: 1 }
    );
    assert_eq!(std::fs::read(s.root.join("x")).unwrap(), data);
    assert_eq!(
        std::fs::read(&planted).unwrap(),
        b"EVIL",
        "left alone, not used"
    );
}

/// Downloading a FIFO answers an error at once instead of blocking the agent on `open` (review
/// finding 16); the session stays usable.
#[tokio::test]
async fn a_fifo_is_refused_for_download_without_hanging() {
    let mut s = Session::start().await;
    mkfifo(&s.root.join("pipe"));
    std::fs::write(s.root.join("plain.txt"), "plain").unwrap();
    let mut ws = s.open().await;
    let request = FilesRequest::Download {
        id: 1,
        path: s.path("pipe"),
        offset: 0,
    };
    let reply = tokio::time::timeout(DEADLINE, ask(&mut ws, request))
        .await
        .expect("the download of a FIFO hung");
    let message = error_of(reply);
    assert!(message.contains("not a regular file"), "{message}");
    assert_eq!(download(&mut ws, 2, s.path("plain.txt"), 0).await, b"plain");
}

/// Reads a zip stream to its end; the archive's bytes, or the error that ended it.
async fn zip_stream(ws: &mut RelaySocket, id: u64, paths: Vec<String>) -> Result<Vec<u8>, String> {
    match ask(ws, FilesRequest::Zip { id, paths }).await {
        FilesReply::DownloadStart { .. } => {}
        FilesReply::Error { message, .. } => return Err(message),
        other => panic!("odd answer to zip: {other:?}"),
    }
    let mut bytes = Vec::new();
    loop {
        match next_data(ws).await {
            Message::Binary(chunk) => bytes.extend_from_slice(&chunk),
            Message::Text(text) => match files::parse_reply(&text) {
                Some(FilesReply::DownloadEnd { id: end }) if end == id => return Ok(bytes),
                Some(FilesReply::Error { message, .. }) => return Err(message),
                other => panic!("odd reply during a zip: {other:?}"),
            },
            _ => unreachable!(),
        }
    }
}

/// Zipping `/proc` (or `/sys`) is refused with a clear error, since it would read
/// `/proc/kcore` and block on `/proc/kmsg`; a folder holding a FIFO zips without it
/// (review finding 16).
#[tokio::test]
async fn zip_refuses_proc_and_leaves_out_special_files() {
    let mut s = Session::start_with(tempfile::tempdir().unwrap(), Some("/")).await;
    let mut ws = s.open().await;
    for system in ["/proc", "/sys", "/proc/self"] {
        let message = tokio::time::timeout(DEADLINE, zip_stream(&mut ws, 1, vec![system.into()]))
            .await
            .expect("zip of a system folder hung")
            .expect_err("a system folder was zipped");
        assert!(message.contains(system), "{message}");
    }

    let folder = s.root.join("folder");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("a.txt"), "aaa").unwrap();
    mkfifo(&folder.join("pipe"));
    let bytes = tokio::time::timeout(DEADLINE, zip_stream(&mut ws, 2, vec![s.path("folder")]))
        .await
        .expect("zip of a folder with a FIFO hung")
        .expect("zip of a folder with a FIFO");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut names: Vec<String> = archive
        .file_names()
        .map(|name| name.unwrap().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["folder/", "folder/a.txt"]);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("folder/a.txt").unwrap(), &mut text)
        .unwrap();
    assert_eq!(text, "aaa");
}

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A resumable upload waits in the agent's private folder (not beside the target) under a random
/// id, is continued by that id once its first session is gone (never by two sessions at once),
/// and lands whole. The files root is on another filesystem than the agent's state where the
/// machine has a tmpfs at /dev/shm, so the final move is a copy beside the target and a rename.
#[tokio::test]
async fn a_resumable_upload_continues_by_its_resume_id() {
    use std::os::unix::fs::PermissionsExt;
    let root_dir =
        tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let mut s = Session::start_with(root_dir, None).await;
    let partials = s.fx.state_dir("a").join("uploads");
    let data = pattern(2 * 1024 * 1024 + 5);
    let first = 300_000;
    let target = s.path("resumed.bin");
    let resume = |id, resume_id: Option<String>| FilesRequest::ResumeUpload {
        id,
        path: target.clone(),
        size: data.len() as u64,
        overwrite: false,
        resume_id,
    };

    let mut ws = s.open().await;
    let FilesReply::UploadResumed {
        id: 1,
        offset: 0,
        resume_id: Some(resume_id),
    } = ask(&mut ws, resume(1, None)).await
    else {
        panic!("no resumable upload");
    };
    assert!(
        resume_id.len() == 32 && resume_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{resume_id}"
    );
    for chunk in data[..first].chunks(CHUNK_SIZE) {
        send(&mut ws, Message::binary(chunk.to_vec())).await;
    }
    // The bytes wait in the agent's private folder, nothing beside the target.
    let deadline = Instant::now() + DEADLINE;
    let partial_len = || {
        std::fs::read_dir(&partials)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum::<u64>()
    };
    while partial_len() != first as u64 {
        assert!(
            Instant::now() < deadline,
            "the partial upload did not arrive"
        );
        sleep(Duration::from_millis(20)).await;
    }
    assert!(names_in(&s.root).is_empty(), "{:?}", names_in(&s.root));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&partials), 0o700);
    let partial = std::fs::read_dir(&partials)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(mode(&partial.path()), 0o600);

    // Not by two sessions at once.
    let mut second = s.open().await;
    let busy = error_of(ask(&mut second, resume(1, Some(resume_id.clone()))).await);
    assert!(busy.contains("still running"), "{busy}");
    // A malformed id is refused; an unknown one starts over under a new id.
    let bad = error_of(ask(&mut second, resume(2, Some("../x".into()))).await);
    assert!(bad.contains("malformed"), "{bad}");

    // Once the first session is gone, the id continues the upload from where it stopped.
    drop(ws);
    let mut attempt = 3;
    let offset = loop {
        match ask(&mut second, resume(attempt, Some(resume_id.clone()))).await {
            FilesReply::UploadResumed {
                offset,
                resume_id: Some(again),
                ..
            } => {
                assert_eq!(again, resume_id);
                break offset;
            }
            FilesReply::Error { message, .. } if message.contains("still running") => {
                assert!(Instant::now() < deadline, "the first session never let go");
                attempt += 1;
                sleep(Duration::from_millis(20)).await;
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(offset, first as u64);
    assert_eq!(
        send_upload(&mut second, attempt, &data[first..]).await,
        FilesReply::Done { id: attempt }
    );
    assert!(std::fs::read(s.root.join("resumed.bin")).unwrap() == data);
    assert_eq!(names_in(&s.root), ["resumed.bin"]);
    assert!(names_in(&partials).is_empty(), "{:?}", names_in(&partials));
    assert_eq!(
        mode(&s.root.join("resumed.bin")),
        0o644,
        "a new file's usual mode"
    );

    // An id the agent does not know (expired, say) starts over at 0 under a new one.
    let FilesReply::UploadResumed {
        offset: 0,
        resume_id: Some(fresh),
        ..
    } = ask(
        &mut second,
        FilesRequest::ResumeUpload {
            id: 100,
            path: s.path("another.bin"),
            size: 10,
            overwrite: false,
            resume_id: Some("0".repeat(32)),
        },
    )
    .await
    else {
        panic!("an unknown id did not start over");
    };
    assert_ne!(fresh, "0".repeat(32));
}
