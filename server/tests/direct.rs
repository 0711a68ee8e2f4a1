//! Direct paths end to end (issue 13): the real server, the real `tether-agent` and the real
//! `tetherctl` on one machine, their data channel over loopback UDP. A session starts on the
//! relay, moves to the data channel, and the relay then carries control only, which the server's
//! own audit record of the session shows (bytes each way). Build every binary first
//! (`cargo build --workspace --bins`).

mod common;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use support::{AgentProcess, DEADLINE, Fixture};
use tether_common::control::{EditGroup, EventRecord, ListEvents};
use tokio::time::{Instant, sleep};

const BIG: usize = 64 << 20;
/// What the relay may carry beside a switched session: signalling, markers, the file requests
/// and replies sent before the switch. Far below the 64 MiB the session moves.
const CONTROL_ONLY: u64 = 1 << 20;

async fn device(fx: &mut Fixture, root: &Path) -> (AgentProcess, String) {
    let root = root.display().to_string();
    let agent = fx.online_agent("a", &["--files-root", &root]).await;
    let id = agent.device_id.to_string();
    (agent, id)
}

/// Incompressible, deterministic bytes.
fn noise(len: usize) -> Vec<u8> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The audit records of ended sessions, oldest first.
async fn ended_sessions(fx: &mut Fixture) -> Vec<EventRecord> {
    let mut records: Vec<EventRecord> = fx
        .control
        .ok(ListEvents {
            limit: None,
            group: None,
            device: None,
            ..Default::default()
        })
        .await;
    records.retain(|r| r.kind == "session_ended");
    records.sort_by_key(|r| r.id);
    records
}

/// Waits for the `n`th session_ended record; its (bytes to the device, bytes from it).
async fn relay_traffic(fx: &mut Fixture, n: usize) -> (u64, u64) {
    parse_traffic(&ended_message(fx, n).await)
}

/// The `n`th session_ended record's text, once there is one.
async fn ended_message(fx: &mut Fixture, n: usize) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let records = ended_sessions(fx).await;
        if let Some(record) = records.get(n - 1) {
            return record.message.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no session_ended record #{n}: {records:?}"
        );
        sleep(Duration::from_millis(50)).await;
    }
}

/// "… ended after 1.2 s (…): 123 bytes to the device, 456 bytes from it"
fn parse_traffic(message: &str) -> (u64, u64) {
    let number_before = |suffix: &str| -> u64 {
        let end = message.find(suffix).unwrap_or_else(|| panic!("{message}"));
        let start = message[..end].rfind(' ').unwrap() + 1;
        message[start..end].parse().unwrap()
    };
    (
        number_before(" bytes to the device"),
        number_before(" bytes from it"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_64_mib_upload_and_download_go_direct_and_leave_the_relay_flat() {
    let mut fx = Fixture::start().await;
    let root = tempfile::tempdir().unwrap();
    let root_path = root.path().canonicalize().unwrap();
    let (agent, id) = device(&mut fx, &root_path).await;
    let local = tempfile::tempdir().unwrap();
    let data = noise(BIG);
    let source = local.path().join("big.bin");
    std::fs::write(&source, &data).unwrap();
    let remote = format!("{}/big.bin", root_path.display());
    let source_arg = source.display().to_string();

    let started = Instant::now();
    let (status, _, err) = fx
        .tetherctl(
            &[
                "upload",
                "--direct",
                "always",
                "--device",
                &id,
                &source_arg,
                &remote,
            ],
            None,
        )
        .await;
    let up = started.elapsed();
    assert_eq!(status, 0, "upload: {err}");
    let landed = std::fs::read(root_path.join("big.bin")).unwrap();
    assert_eq!(landed.len(), BIG);
    assert!(sha256(&landed) == sha256(&data), "upload changed the bytes");
    let message = ended_message(&mut fx, 1).await;
    let (to_device, from_device) = parse_traffic(&message);
    assert!(
        to_device < CONTROL_ONLY && from_device < CONTROL_ONLY,
        "the upload's data went through the relay: {to_device} bytes to the device, {from_device} from it"
    );
    // tetherctl closed the session and told the server what the direct path carried.
    let (direct_to, _) = parse_traffic(
        message
            .split("on the direct path")
            .nth(1)
            .unwrap_or_else(|| panic!("{message}")),
    );
    assert!(direct_to >= BIG as u64, "{message}");
    assert!(message.ends_with("(reported by the console)"), "{message}");

    let back = local.path().join("back.bin");
    let back_arg = back.display().to_string();
    let started = Instant::now();
    let (status, _, err) = fx
        .tetherctl(
            &[
                "download", "--direct", "always", "--device", &id, &remote, &back_arg,
            ],
            None,
        )
        .await;
    let down = started.elapsed();
    assert_eq!(status, 0, "download: {err}");
    let fetched = std::fs::read(&back).unwrap();
    assert_eq!(fetched.len(), BIG);
    assert!(
        sha256(&fetched) == sha256(&data),
        "download changed the bytes"
    );
    let (to_device, from_device) = relay_traffic(&mut fx, 2).await;
    assert!(
        to_device < CONTROL_ONLY && from_device < CONTROL_ONLY,
        "the download's data went through the relay: {to_device} bytes to the device, {from_device} from it"
    );
    assert!(
        agent
            .log()
            .contains("direct: session switched to the direct path"),
        "{}",
        agent.log()
    );

    // The same download kept on the relay: the audit record does count the file, so the checks
    // above could fail.
    std::fs::remove_file(&back).unwrap();
    let started = Instant::now();
    let (status, _, err) = fx
        .tetherctl(
            &[
                "download", "--direct", "never", "--device", &id, &remote, &back_arg,
            ],
            None,
        )
        .await;
    let relayed = started.elapsed();
    assert_eq!(status, 0, "relayed download: {err}");
    assert!(sha256(&std::fs::read(&back).unwrap()) == sha256(&data));
    let (_, from_device) = relay_traffic(&mut fx, 3).await;
    assert!(from_device >= BIG as u64, "{from_device}");

    let mbps = |took: Duration| BIG as f64 / took.as_secs_f64() / 1e6;
    println!(
        "64 MiB with tetherctl (whole command): upload direct {:.1} MB/s, download direct {:.1} MB/s, download relayed {:.1} MB/s",
        mbps(up),
        mbps(down),
        mbps(relayed)
    );
}

#[tokio::test]
async fn terminal_echo_works_after_the_switch() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("a", &[]).await;
    let id = agent.device_id.to_string();
    // `always` hands the session over only once it runs direct: every key below takes the data
    // channel, and so does every byte of output.
    let keys = b"echo shell-$((6*7))\nexit 4\n";
    let (status, out, err) = fx
        .tetherctl(
            &["shell", "--direct", "always", "--device", &id],
            Some(keys),
        )
        .await;
    assert_eq!(status, 4, "stdout {out:?}, stderr {err:?}");
    assert!(out.contains("shell-42"), "{out:?}");

    let input = noise(200_000);
    let (status, out, err) = {
        let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
        fx.tetherctl(
            &["exec", "--direct", "always", "--device", &id, "--", "cat"],
            Some(hex.as_bytes()),
        )
        .await
    };
    assert_eq!(status, 0, "{err}");
    assert_eq!(out.len(), 400_000);
    assert!(out.starts_with(&format!("{:02x}", input[0])));
    let (to_device, from_device) = relay_traffic(&mut fx, 2).await;
    assert!(
        to_device < 100_000 && from_device < 100_000,
        "{to_device} / {from_device}"
    );

    // A figure, not a check: `always` starts the program only once the session runs direct, so
    // the difference to `never` is about the time from pairing to the switch.
    let mut best = [Duration::MAX; 2];
    for _ in 0..3 {
        for (i, mode) in ["always", "never"].into_iter().enumerate() {
            let started = Instant::now();
            let (status, _, err) = fx
                .tetherctl(
                    &["exec", "--direct", mode, "--device", &id, "--", "true"],
                    None,
                )
                .await;
            assert_eq!(status, 0, "{err}");
            best[i] = best[i].min(started.elapsed());
        }
    }
    println!(
        "exec true, best of 3: --direct always {:?}, never {:?}",
        best[0], best[1]
    );
}

/// `cat` on the device with 24 MiB on its input: both directions are full at once the whole
/// time, through tetherctl, the splices and the agent, relayed and direct. Each hop used to wait
/// on a send in the loop that also read the other direction, and the session hung.
#[tokio::test]
async fn exec_cat_carries_24_mib_each_way_at_once() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("a", &[]).await;
    let id = agent.device_id.to_string();
    let input: String = noise(12 << 20).iter().map(|b| format!("{b:02x}")).collect();
    for mode in ["never", "always"] {
        let started = Instant::now();
        let (status, out, err) = fx
            .tetherctl(
                &["exec", "--direct", mode, "--device", &id, "--", "cat"],
                Some(input.as_bytes()),
            )
            .await;
        assert_eq!(status, 0, "--direct {mode}: {err}");
        assert_eq!(out.len(), input.len(), "--direct {mode}");
        assert!(
            out == input,
            "--direct {mode}: the output differs from the input"
        );
        println!(
            "exec cat, 24 MiB each way, --direct {mode}: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_relayed_group_fails_always_and_auto_stays_relayed() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("a", &[]).await;
    let id = agent.device_id.to_string();
    let group = fx.group.clone();
    let edited = fx
        .control
        .ok(EditGroup {
            direct_connections: Some(false),
            ..EditGroup::of(group)
        })
        .await;
    assert!(!edited.direct_connections);

    let started = Instant::now();
    let (status, out, err) = fx
        .tetherctl(
            &[
                "exec", "--direct", "always", "--device", &id, "--", "echo", "hi",
            ],
            None,
        )
        .await;
    assert_eq!(status, 1, "stdout {out:?}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err:?}");
    assert!(
        lines[0].starts_with("tetherctl: no direct path") && lines[0].contains("relayed"),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "fails fast");
    assert_eq!(out, "", "nothing ran");

    for args in [&["exec"][..], &["exec", "--direct", "auto"][..]] {
        let mut full = args.to_vec();
        full.extend_from_slice(&["--device", &id, "--", "echo", "hi"]);
        let (status, out, err) = fx.tetherctl(&full, None).await;
        assert_eq!((status, out.as_str(), err.as_str()), (0, "hi\n", ""));
    }
    let (to_device, from_device) = relay_traffic(&mut fx, 3).await;
    assert!(to_device > 0 && from_device > 0);
    assert!(
        !agent.log().contains("direct: session switched"),
        "{}",
        agent.log()
    );
}
