//! A server on PostgreSQL rides out a database restart: requests made while the database is down
//! fail with a clear error (no hang past the pool's wait, no panic), the server keeps running,
//! and once the database is back the same requests succeed. The database is a PostgreSQL of the
//! test's own (Debian's binaries, run as the `postgres` account, listening on a private socket
//! folder only), since restarting the machine's would disturb other tests. Needs root (for
//! `runuser`) and Debian's postgresql; skipped elsewhere, except in CI.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::TestServer;
use tokio::time::{Instant, sleep};

const BIN: &str = "/usr/lib/postgresql/15/bin";
const DEADLINE: Duration = Duration::from_secs(60);

/// A private PostgreSQL: data and socket in one folder the `postgres` account owns.
struct PrivatePostgres {
    dir: PathBuf,
}

impl PrivatePostgres {
    fn start() -> Option<PrivatePostgres> {
        let root = nix_is_root();
        if !Path::new(BIN).join("initdb").exists() || !root {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root with Debian's postgresql installed"
            );
            eprintln!("needs root and {BIN}/initdb; skipped");
            return None;
        }
        let made = as_postgres(&["mktemp", "-d", "/tmp/tether-pg-XXXXXX"]);
        let dir = PathBuf::from(made.trim());
        let data = dir.display().to_string();
        as_postgres(&[
            &format!("{BIN}/initdb"),
            "-D",
            &data,
            "-A",
            "trust",
            "-U",
            "tether",
            "--no-sync",
        ]);
        let postgres = PrivatePostgres { dir };
        postgres.pg_ctl("start");
        let created = Command::new(format!("{BIN}/createdb"))
            .args(["-h", &data, "-U", "tether", "tether"])
            .status()
            .unwrap();
        assert!(created.success(), "createdb");
        Some(postgres)
    }

    fn url(&self) -> String {
        format!("postgres:///tether?host={}&user=tether", self.dir.display())
    }

    fn pg_ctl(&self, action: &str) {
        let data = self.dir.display().to_string();
        // Only the socket in its own folder: no TCP port, nothing another test could reach.
        let options = format!("-c listen_addresses='' -k {data}");
        as_postgres(&[
            &format!("{BIN}/pg_ctl"),
            "-D",
            &data,
            "-o",
            &options,
            "-l",
            &format!("{data}/log"),
            "-w",
            "-m",
            "fast",
            action,
        ]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.display().to_string();
        let _ = Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &format!("{BIN}/pg_ctl"),
                "-D",
                &data,
            ])
            .args(["-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Runs a command as `postgres` from `/` (which it may enter); its standard output.
fn as_postgres(args: &[&str]) -> String {
    let output = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args)
        .current_dir("/")
        .output()
        .expect("runuser");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_rides_out_a_postgres_restart_under_load() {
    let Some(postgres) = PrivatePostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("identity.key");
    std::fs::write(&key, "3c".repeat(32)).unwrap();
    let url = postgres.url();
    let server =
        TestServer::start_with(&["--db", &url, "--identity-key-file", key.to_str().unwrap()]).await;
    server
        .create_admin("admin", "correct horse battery staple")
        .await;

    let cookie = server.login("admin", "correct horse battery staple").await;
    let server = Arc::new(server);

    // Requests that read the login session and the account go on all the while, each waiting
    // for its answer.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = tokio::spawn({
        let (server, stop, ok, failed) = (server.clone(), stop.clone(), ok.clone(), failed.clone());
        async move {
            let client = server.http_client();
            while !stop.load(Ordering::Relaxed) {
                let answer = client
                    .get(format!("{}/api/status", server.url))
                    .header("cookie", format!("__Host-tether_session={cookie}"))
                    .send()
                    .await;
                let status = answer.as_ref().map(|r| r.status());
                match status {
                    Ok(status) if status.is_success() => {
                        let body: serde_json::Value = answer.unwrap().json().await.unwrap();
                        assert!(!body["user"].is_null(), "the session was lost: {body}");
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    // While the database is down: an error answer, never a hang or a crash.
                    Ok(status) if status.is_server_error() => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    other => panic!("unexpected answer while PostgreSQL restarts: {other:?}"),
                }
            }
        }
    });
    let wait_for_successes = |after: usize| {
        let ok = ok.clone();
        async move {
            let deadline = Instant::now() + DEADLINE;
            while ok.load(Ordering::Relaxed) <= after {
                assert!(Instant::now() < deadline, "no request succeeded");
                sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for_successes(0).await;

    // Down for a while (stop, then start), so requests certainly meet it down.
    let before_down = failed.load(Ordering::Relaxed);
    tokio::task::block_in_place(|| postgres.pg_ctl("stop"));
    let deadline = Instant::now() + DEADLINE;
    while failed.load(Ordering::Relaxed) == before_down {
        assert!(
            Instant::now() < deadline,
            "no request met the database down"
        );
        sleep(Duration::from_millis(50)).await;
    }
    tokio::task::block_in_place(|| postgres.pg_ctl("start"));
    let back = ok.load(Ordering::Relaxed);
    wait_for_successes(back).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();

    let log = server.stderr();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains("PostgreSQL"),
        "the failures were logged as database errors:\n{log}"
    );
    eprintln!(
        "requests: {} answered, {} refused while PostgreSQL was down",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
}
