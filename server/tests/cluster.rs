//! Several servers as one: real `tether-server` processes sharing one PostgreSQL database (a
//! database of the test's own) and one NATS server (a `nats-server` of the test's own), behind
//! HAProxy on loopback, with real `tether-agent`s. CI installs PostgreSQL, nats-server and HAProxy
//! (`scripts/install-test-deps.sh`); elsewhere, without them, these tests say so and pass.
//! Build every binary first (`cargo build --workspace --bins`).

mod common;
#[allow(dead_code)]
#[path = "common/postgres.rs"]
mod postgres;
#[allow(dead_code)]
#[path = "relay/sockets.rs"]
mod sockets;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tether_common::control::{
    AddUser, CreateGroup, ErrorCode, Event, GetWhoAmI, InviteChat, ListGroups, ReplyError,
};
use tether_common::ids::DeviceId;
use tether_common::relay::SessionKind;
use tether_common::relay::chat::ChatMessage;
use tether_common::relay::files::{self, FilesReply, FilesRequest};
use tether_common::relay::terminal::{self, StartTerminal, TerminalRequest};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::Message;

use common::TestServer;
use postgres::TestDatabase;
use sockets::{RelaySocket, expect_paired, next_data, open, open_session, send};
use support::{AgentProcess, DEADLINE, Fixture};

/// A `nats-server` of this test's own on a free loopback port; killed when dropped.
struct Nats {
    port: u16,
    child: Option<Child>,
}

impl Nats {
    /// `None` (the test is skipped) when nats-server is not installed, except in CI.
    async fn start() -> Option<Nats> {
        if !Path::new(NATS_SERVER).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI has no {NATS_SERVER} (scripts/install-test-deps.sh installs it)"
            );
            eprintln!("no {NATS_SERVER}; skipped");
            return None;
        }
        let mut nats = Nats {
            port: free_port(),
            child: None,
        };
        nats.restart().await;
        Some(nats)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port and waits until it says it is ready.
    async fn restart(&mut self) {
        let mut child = Command::new(NATS_SERVER)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start nats-server");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let ready = timeout(DEADLINE, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("Server is ready") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(ready, Ok(true), "nats-server did not start");
        // Keep reading, or a full pipe would stall it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

const NATS_SERVER: &str = "/usr/sbin/nats-server";
const HAPROXY: &str = "/usr/sbin/haproxy";

/// HAProxy passing TCP (TLS end to end) round-robin to `ports`, with health checks so a dead
/// server is skipped; killed when dropped.
struct Haproxy {
    port: u16,
    _child: Child,
    _config: tempfile::NamedTempFile,
}

impl Haproxy {
    async fn start(ports: &[u16]) -> Haproxy {
        let port = free_port();
        let servers: String = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("  server s{i} 127.0.0.1:{p} check inter 300ms fall 2 rise 2\n"))
            .collect();
        let config = format!(
            "global\n  maxconn 4096\n\
             defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1h\n  timeout server 1h\n  retries 3\n  option redispatch\n\
             frontend tether\n  bind 127.0.0.1:{port}\n  default_backend servers\n\
             backend servers\n  balance roundrobin\n{servers}"
        );
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), config).unwrap();
        let child = Command::new(HAPROXY)
            .args(["-db", "-f"])
            .arg(file.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start haproxy");
        let deadline = Instant::now() + DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy did not listen");
            sleep(Duration::from_millis(50)).await;
        }
        Haproxy {
            port,
            _child: child,
            _config: file,
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What every server of a test cluster needs, and the folder its key file lives in.
struct Shared {
    db: TestDatabase,
    nats: Nats,
    dir: tempfile::TempDir,
}

impl Shared {
    async fn start() -> Option<Shared> {
        if !Path::new(HAPROXY).exists() {
            assert!(std::env::var_os("CI").is_none(), "CI has no {HAPROXY}");
            eprintln!("no {HAPROXY}; skipped");
            return None;
        }
        let db = TestDatabase::create().await?;
        let nats = Nats::start().await?;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("identity.key"), "5a".repeat(32)).unwrap();
        Some(Shared { db, nats, dir })
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("identity.key")
    }

    async fn server(&self) -> TestServer {
        let (db, nats, key) = (
            self.db.url(),
            self.nats.url(),
            self.key_file().display().to_string(),
        );
        TestServer::start_with(&["--db", &db, "--nats", &nats, "--identity-key-file", &key]).await
    }
}

/// Which of `servers` logged the agent of `device` connecting last (by the time of its line).
fn holder(servers: &[&TestServer], device: &DeviceId) -> Option<usize> {
    let needle = format!("agent: connected device={device}");
    servers
        .iter()
        .enumerate()
        .filter_map(|(i, server)| {
            let log = server.stderr();
            let line = log.lines().rfind(|l| l.contains(&needle))?;
            Some((line[..27.min(line.len())].to_owned(), i))
        })
        .max()
        .map(|(_, i)| i)
}

async fn wait_holder(servers: &[&TestServer], device: &DeviceId, unlike: Option<usize>) -> usize {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(i) = holder(servers, device).filter(|i| Some(*i) != unlike) {
            return i;
        }
        assert!(Instant::now() < deadline, "no server holds {device}");
        sleep(Duration::from_millis(100)).await;
    }
}

async fn ask(ws: &mut RelaySocket, request: FilesRequest) -> FilesReply {
    send(ws, Message::text(files::to_json(&request))).await;
    match next_data(ws).await {
        Message::Text(text) => files::parse_reply(&text).expect("a files reply"),
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_behind_haproxy_share_devices_events_sessions_and_survive_a_kill() {
    let Some(shared) = Shared::start().await else {
        return;
    };
    // The first server stores the identity; the other two start together and adopt it.
    let first = shared.server().await;
    let (second, third) = tokio::join!(shared.server(), shared.server());
    for other in [&second, &third] {
        assert_eq!(
            std::fs::read(other.file("agentserver-cert-public.crt")).unwrap(),
            std::fs::read(first.file("agentserver-cert-public.crt")).unwrap(),
            "every server presents the identity agents pin"
        );
    }
    let haproxy = Haproxy::start(&[first.port, second.port, third.port]).await;
    let mut fx = Fixture::with_server(first).await;
    let mut others = vec![second, third];
    let msh = fx.msh_via_port(haproxy.port);
    let files_root = tempfile::tempdir().unwrap();
    let root = files_root.path().canonicalize().unwrap();
    let root_arg = root.display().to_string();

    // Agents through HAProxy land on the three servers; the console on the first sees each
    // come online, live.
    let mut agents: Vec<AgentProcess> = Vec::new();
    for name in ["a", "b", "c"] {
        let state = fx.state_dir(name);
        let agent = fx
            .spawn_agent(&msh, &state, &["--files-root", &root_arg])
            .await;
        let device = agent.device_id.clone();
        fx.wait_event(
            "device online",
            |e| matches!(e, Event::DeviceOnline { device: d, .. } if *d == device),
        )
        .await;
        agents.push(agent);
    }
    let mut holders = Vec::new();
    for agent in &agents {
        let all = [&fx.server, &others[0], &others[1]];
        holders.push(wait_holder(&all, &agent.device_id, None).await);
    }
    let mut distinct = holders.clone();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.len() >= 2,
        "HAProxy spread the agents: {holders:?}"
    );
    eprintln!("agents held by servers {holders:?}");
    for agent in &agents {
        fx.wait_device(&agent.device_id, "online", |d| d.online)
            .await;
    }

    // A terminal to an agent held by another server than the console's, whose relay end
    // reaches yet another server: the session was minted on the first, and both ends meet there.
    let (far, far_holder) = agents
        .iter()
        .zip(&holders)
        .find(|(_, h)| **h != 0)
        .map(|(a, h)| (a.device_id.clone(), *h))
        .expect("an agent on another server");
    let relay_server = if far_holder == 1 { 1 } else { 0 };
    let mut console = open_session(
        &others[relay_server],
        &mut fx.control,
        &fx.cookie,
        &far,
        SessionKind::Terminal,
    )
    .await;
    let start = StartTerminal {
        command: vec!["/bin/sh".into()],
        ..StartTerminal::shell(80, 24)
    };
    send(
        &mut console,
        Message::text(terminal::to_json(&TerminalRequest::Start(start))),
    )
    .await;
    send(
        &mut console,
        Message::binary(b"echo cluster-$((6*7))\n".to_vec()),
    )
    .await;
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("cluster-42") {
        if let Message::Binary(bytes) = next_data(&mut console).await {
            seen.extend_from_slice(&bytes);
        }
    }
    drop(console);

    // A file of 256 MiB from that agent, viewer on a third server: equal SHA-256.
    let size = 256 << 20;
    let content: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), &content).unwrap();
    let wanted = Sha256::digest(&content);
    drop(content);
    let mut viewer = open_session(
        &others[relay_server],
        &mut fx.control,
        &fx.cookie,
        &far,
        SessionKind::Files,
    )
    .await;
    let started = Instant::now();
    let path = root.join("big.bin").display().to_string();
    let reply = ask(
        &mut viewer,
        FilesRequest::Download {
            id: 1,
            path,
            offset: 0,
        },
    )
    .await;
    assert!(
        matches!(reply, FilesReply::DownloadStart { .. }),
        "{reply:?}"
    );
    let mut hasher = Sha256::new();
    let mut received = 0usize;
    loop {
        match next_data(&mut viewer).await {
            Message::Binary(chunk) => {
                received += chunk.len();
                hasher.update(&chunk);
            }
            Message::Text(text) => {
                assert_eq!(
                    files::parse_reply(&text),
                    Some(FilesReply::DownloadEnd { id: 1 })
                );
                break;
            }
            _ => unreachable!(),
        }
    }
    assert_eq!(received, size);
    assert_eq!(hasher.finalize(), wanted, "the file arrived whole");
    eprintln!(
        "256 MiB across servers in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(viewer);

    // A write acknowledged by one server, then kill -9 of that server: the write stays, its
    // agents come back through HAProxy to the others, and the console sees them online.
    let victim = far_holder - 1;
    let admin_there = others[victim]
        .login(support::ADMIN.0, support::ADMIN.1)
        .await;
    let mut control_there = others[victim].control(&admin_there).await;
    control_there
        .ok(CreateGroup {
            name: "Written before the kill".into(),
            description: String::new(),
        })
        .await;
    others[victim].kill9().await;
    let groups = fx.control.ok(ListGroups {}).await;
    assert!(groups.iter().any(|g| g.name == "Written before the kill"));
    {
        let all = [&fx.server, &others[0], &others[1]];
        let new_holder = wait_holder(&all, &far, Some(far_holder)).await;
        assert_ne!(new_holder, far_holder);
    }
    fx.wait_device(&far, "online again", |d| d.online).await;
    // Sessions reach it at its new server.
    let console = open_session(
        &fx.server,
        &mut fx.control,
        &fx.cookie,
        &far,
        SessionKind::Terminal,
    )
    .await;
    drop(console);

    // An agent gone with its server (both killed) is shown offline once the server is missed.
    let survivor = 1 - victim;
    let lonely = agents
        .iter()
        .zip(&holders)
        .position(|(_, h)| *h == survivor + 1);
    eprintln!(
        "killed server {far_holder}; the agent left alone on server {}: {lonely:?}",
        survivor + 1
    );
    if let Some(index) = lonely {
        let device = agents[index].device_id.clone();
        others[survivor].kill9().await;
        agents.remove(index).kill().await;
        fx.wait_event(
            "device offline after its server went silent",
            |e| matches!(e, Event::DeviceOffline { device: d, .. } if *d == device),
        )
        .await;
        fx.wait_device(&device, "offline", |d| !d.online).await;
    }
    drop(agents);
    drop(fx);
    drop(others);
    shared.db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_nats_restart_events_and_presence_flow_again() {
    let Some(mut shared) = Shared::start().await else {
        return;
    };
    let first = shared.server().await;
    let second = shared.server().await;
    let mut fx = Fixture::with_server(first).await;
    let cookie = second.login(support::ADMIN.0, support::ADMIN.1).await;
    let mut control_two = second.control(&cookie).await;

    shared.nats.kill().await;
    // An agent connects to the second server while NATS is down…
    let msh = fx.msh_via_port(second.port);
    let mut agent = fx.spawn_agent(&msh, &fx.state_dir("a"), &[]).await;
    agent.wait_line("tether-agent connected ").await;
    shared.nats.restart().await;
    // …and once both servers are back on NATS, the first lists it online (the full lists
    // servers exchange on reconnecting), and events from the second reach its console again.
    fx.wait_device(&agent.device_id, "online", |d| d.online)
        .await;
    let deadline = Instant::now() + DEADLINE;
    for attempt in 0.. {
        assert!(
            Instant::now() < deadline,
            "no event crossed after the restart"
        );
        let name = format!("after restart {attempt}");
        control_two
            .ok(CreateGroup {
                name: name.clone(),
                description: String::new(),
            })
            .await;
        let crossed = timeout(Duration::from_secs(2), async {
            loop {
                match fx.control.try_next_event(Duration::from_secs(2)).await {
                    Some(Event::GroupCreated { group }) if group.name == name => return true,
                    Some(_) => continue,
                    None => return false,
                }
            }
        })
        .await;
        if crossed == Ok(true) {
            break;
        }
    }
    drop(agent);
    drop(fx);
    drop(second);
    shared.db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_at_consoles_of_different_servers_chat() {
    let Some(shared) = Shared::start().await else {
        return;
    };
    let first = shared.server().await;
    let second = shared.server().await;
    let mut fx = Fixture::with_server(first).await;
    let password = "bob's password, long enough";
    fx.control
        .ok(AddUser {
            name: "bob".into(),
            password: password.into(),
            email: None,
            site_admin: false,
        })
        .await;
    let bob_cookie = second.login("bob", password).await;
    let mut bob = second.control(&bob_cookie).await;
    bob.ok(GetWhoAmI {}).await;

    // The first server hears from the second's heartbeat that bob is at a console there; until
    // then the invitation is refused as "no console open".
    let deadline = Instant::now() + DEADLINE;
    let ticket = loop {
        match fx.control.call(InviteChat { user: "bob".into() }).await {
            Ok(ticket) => break ticket,
            Err(ReplyError::Refused(e)) if e.code == ErrorCode::Conflict => {
                assert!(
                    Instant::now() < deadline,
                    "bob never counted as at a console"
                );
                sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    // The invitation (meant for bob alone) reaches his console on the second server, and the
    // two ends pair on the first, where the session was minted.
    let url = loop {
        match bob.next_event(DEADLINE).await {
            Event::ChatInvitation { url, .. } => break url,
            _ => continue,
        }
    };
    let (admin_end, bob_end) = tokio::join!(
        open(&fx.server, &ticket.url, Some(&fx.cookie)),
        open(&second, &url, Some(&bob_cookie))
    );
    let (mut admin_end, mut bob_end) = (admin_end.unwrap(), bob_end.unwrap());
    expect_paired(&mut admin_end).await;
    expect_paired(&mut bob_end).await;
    let hello = ChatMessage::Text {
        id: 1,
        text: "hello from the first server".into(),
    };
    send(&mut admin_end, Message::text(hello.to_json())).await;
    match next_data(&mut bob_end).await {
        Message::Text(got) => assert_eq!(ChatMessage::parse(&got), Some(hello)),
        other => panic!("{other:?}"),
    }
    drop((admin_end, bob_end, bob, fx, second));
    shared.db.drop().await;
}
