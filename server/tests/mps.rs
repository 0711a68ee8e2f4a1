//! The MPS port end to end (issue 16): the real server, and a simulated Intel AMT CIRA client
//! (`mps/cira.rs`; no AMT hardware can exist here) over real TLS on loopback. A machine logs in
//! with its group's CIRA login and shows as an online device, a wrong password is refused and
//! logged without the password, broken APF closes that connection and nothing else, and TLS
//! below 1.2 is refused.

#[path = "mps/cira.rs"]
mod cira;
mod common;
#[allow(dead_code)]
#[path = "agent/fakes.rs"]
mod fakes;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;

use std::process::Stdio;
use std::time::Duration;

use cira::CiraClient;
use common::{ControlClient, TestServer};
use tether_common::apf::{AmtUuid, ApfMessage, KEEPALIVE_INTERVAL_S};
use tether_common::control::{
    AddUser, CiraLogin, CreateCiraLogin, CreateGroup, Event, ListDevices,
};
use tether_common::ids::{DeviceId, GroupId};

const UUID: AmtUuid = AmtUuid([
    0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
]);
const EVENT_WAIT: Duration = Duration::from_secs(10);
const ADMIN: (&str, &str) = ("admin", "correct horse battery staple");

struct Mps {
    server: TestServer,
    control: ControlClient,
    group: GroupId,
    port: u16,
}

async fn start() -> Mps {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = TestServer::start_with(&["--mpsport", &port.to_string()]).await;
    server.create_admin(ADMIN.0, ADMIN.1).await;
    let cookie = server.login(ADMIN.0, ADMIN.1).await;
    let mut control = server.control(&cookie).await;
    let group = control
        .ok(CreateGroup {
            name: "Vault".into(),
            description: String::new(),
        })
        .await
        .id;
    Mps {
        server,
        control,
        group,
        port,
    }
}

impl Mps {
    /// Runs the real `tetherctl ARGS` as the admin; (exit status, stdout, stderr).
    async fn tetherctl(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let binary =
            std::path::Path::new(env!("CARGO_BIN_EXE_tether-server")).with_file_name("tetherctl");
        let known = tempfile::tempdir().unwrap();
        let output = tokio::process::Command::new(binary)
            .env(
                "TETHER_URL",
                format!("wss://127.0.0.1:{}", self.server.port),
            )
            .env("TETHER_USER", ADMIN.0)
            .env("TETHER_PASS", ADMIN.1)
            .env("TETHER_KNOWN_SERVERS", known.path().join("known_servers"))
            .envs(env.iter().copied())
            .arg("--trust-root")
            .arg(self.server.file("root-cert-public.crt"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run tetherctl (build it first: cargo build --workspace --bins)");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    async fn cira_login(&mut self) -> CiraLogin {
        self.control
            .ok(CreateCiraLogin {
                group: self.group.clone(),
            })
            .await
    }

    async fn client(&self) -> CiraClient {
        CiraClient::connect(self.port, self.server.tls_client_config()).await
    }

    async fn online(&mut self, device: &DeviceId) -> Option<bool> {
        let devices = self.control.ok(ListDevices { group: None }).await;
        devices.iter().find(|d| &d.id == device).map(|d| d.online)
    }

    /// The next event of the wanted kind (others skipped).
    async fn event(&mut self, what: &str, wanted: impl Fn(&Event) -> bool) -> Event {
        let deadline = tokio::time::Instant::now() + EVENT_WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.control.try_next_event(left).await {
                Some(event) if wanted(&event) => return event,
                Some(_) => continue,
                None => panic!("no {what} event within {EVENT_WAIT:?}"),
            }
        }
    }
}

#[tokio::test]
async fn an_amt_machine_logs_in_with_its_group_s_login_and_is_online_while_its_tunnel_is_up() {
    let mut mps = start().await;
    let login = mps.cira_login().await;
    assert_eq!(login.user.len(), 16);
    assert_eq!(login.mps_port, mps.port);
    assert_eq!(login.mps_host, "localhost");
    assert_eq!(login.root_cert_sha256.len(), 64);
    assert!(
        login
            .root_cert_pem
            .starts_with("-----BEGIN CERTIFICATE-----")
    );

    let mut amt = mps.client().await;
    let answer = amt.log_in(UUID, &login.user, &login.password).await;
    assert_eq!(answer, Some(ApfMessage::UserauthSuccess));
    amt.forward(&[16992, 16993]).await;
    amt.expect(ApfMessage::RequestSuccess { port: Some(16992) })
        .await;
    amt.expect(ApfMessage::KeepaliveOptionsRequest {
        interval: KEEPALIVE_INTERVAL_S,
        timeout: 0,
    })
    .await;
    amt.expect(ApfMessage::RequestSuccess { port: Some(16993) })
        .await;
    amt.send(ApfMessage::KeepaliveRequest { cookie: 77 }).await;
    amt.expect(ApfMessage::KeepaliveReply { cookie: 77 }).await;

    // The console hears of a new device, named after the UUID as AMT prints it, and it is online.
    let device = DeviceId::from_amt_uuid(&UUID.0);
    let added = mps
        .event("deviceAdded", |e| matches!(e, Event::DeviceAdded { .. }))
        .await;
    let Event::DeviceAdded { device: info } = added else {
        unreachable!()
    };
    assert_eq!(info.id, device);
    assert_eq!(info.name, "Intel AMT 00112233-4455-6677-8899-aabbccddeeff");
    assert_eq!(info.os, "Intel AMT");
    mps.event(
        "deviceOnline",
        |e| matches!(e, Event::DeviceOnline { device: d, .. } if *d == device),
    )
    .await;
    assert_eq!(mps.online(&device).await, Some(true));

    // The tunnel goes: the device goes offline.
    drop(amt);
    mps.event(
        "deviceOffline",
        |e| matches!(e, Event::DeviceOffline { device: d, .. } if *d == device),
    )
    .await;
    assert_eq!(mps.online(&device).await, Some(false));

    // A new login replaces the old: the old password no longer gets in, the new one does.
    let newer = mps.cira_login().await;
    assert_eq!(newer.user, login.user, "the user name stays the group's");
    let mut amt = mps.client().await;
    assert_eq!(
        amt.log_in(UUID, &login.user, &login.password).await,
        Some(ApfMessage::UserauthFailure)
    );
    let mut amt = mps.client().await;
    assert_eq!(
        amt.log_in(UUID, &newer.user, &newer.password).await,
        Some(ApfMessage::UserauthSuccess)
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused_logged_and_never_shown() {
    let mut mps = start().await;
    let login = mps.cira_login().await;
    let wrong = "Wr0ng!passw0rd-x";
    let mut amt = mps.client().await;
    assert_eq!(
        amt.log_in(UUID, &login.user, wrong).await,
        Some(ApfMessage::UserauthFailure)
    );
    assert_eq!(
        amt.recv().await,
        Some(ApfMessage::Disconnect { reason: 14 })
    );
    assert_eq!(amt.recv().await, None, "the server closes the connection");
    // An unknown user fares the same.
    let mut amt = mps.client().await;
    assert_eq!(
        amt.log_in(UUID, "tnobody00000000", wrong).await,
        Some(ApfMessage::UserauthFailure)
    );
    let device = DeviceId::from_amt_uuid(&UUID.0);
    assert_eq!(
        mps.online(&device).await,
        None,
        "no device for a refused machine"
    );
    let log = mps.server.stderr();
    assert!(log.contains("CIRA login refused"), "{log}");
    assert!(!log.contains(wrong), "the password reached the log");
    assert!(
        !log.contains(&login.password),
        "the real password reached the log"
    );
}

#[tokio::test]
async fn broken_apf_closes_its_connection_and_nothing_else() {
    let mut mps = start().await;
    let login = mps.cira_login().await;
    // Another machine is connected all along.
    let mut steady = mps.client().await;
    let other = AmtUuid([9; 16]);
    assert_eq!(
        steady.log_in(other, &login.user, &login.password).await,
        Some(ApfMessage::UserauthSuccess)
    );

    // Garbage instead of PROTOCOLVERSION.
    let mut garbage = mps.client().await;
    garbage.send_raw(&[0x42, 1, 2, 3]).await;
    assert_eq!(
        garbage.recv().await,
        Some(ApfMessage::Disconnect { reason: 2 })
    );
    assert_eq!(garbage.recv().await, None);

    // A logged-in machine announcing 1 MiB + 1 of channel data: closed on the header alone.
    let mut oversized = mps.client().await;
    assert_eq!(
        oversized.log_in(UUID, &login.user, &login.password).await,
        Some(ApfMessage::UserauthSuccess)
    );
    let mut header = vec![94, 0, 0, 0, 1];
    header.extend_from_slice(&((1u32 << 20) + 1).to_be_bytes());
    oversized.send_raw(&header).await;
    assert_eq!(
        oversized.recv().await,
        Some(ApfMessage::Disconnect { reason: 2 })
    );
    assert_eq!(oversized.recv().await, None);

    // Out of order: a login before the auth service.
    let mut early = mps.client().await;
    early
        .send(ApfMessage::ProtocolVersion {
            major: 1,
            minor: 0,
            trigger: 0,
            uuid: UUID,
        })
        .await;
    early.send(ApfMessage::UserauthSuccess).await;
    assert_eq!(
        early.recv().await,
        Some(ApfMessage::Disconnect { reason: 2 })
    );

    // The steady machine never noticed.
    steady
        .send(ApfMessage::KeepaliveRequest { cookie: 5 })
        .await;
    steady
        .expect(ApfMessage::KeepaliveReply { cookie: 5 })
        .await;
    let log = mps.server.stderr();
    assert!(log.contains("unreadable APF"), "{log}");
}

#[tokio::test]
async fn tls_below_1_2_is_refused_and_the_login_needs_the_group_right() {
    let mut mps = start().await;
    // Debian's openssl, allowed to offer TLS 1.1 (its own policy would refuse to).
    let output = tokio::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", mps.port),
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "a TLS 1.1 handshake succeeded:\n{text}"
    );
    assert!(
        text.contains("protocol version") || text.contains("Cipher is (NONE)"),
        "{text}"
    );
    // And TLS 1.2 is taken.
    let output = tokio::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", mps.port),
            "-tls1_2",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("ECDHE-RSA-AES"), "{text}");

    // A login is the group managers' to make: another account that is no member gets "not found".
    mps.control
        .ok(AddUser {
            name: "bob".into(),
            password: "correct horse battery 2".into(),
            email: None,
            site_admin: false,
        })
        .await;
    let bob = mps.server.login("bob", "correct horse battery 2").await;
    let mut bob = mps.server.control(&bob).await;
    let code = bob
        .refused(CreateCiraLogin {
            group: mps.group.clone(),
        })
        .await;
    assert_eq!(code, tether_common::control::ErrorCode::NotFound);
}

#[path = "mps/fake_amt.rs"]
mod fake_amt;

#[tokio::test]
async fn power_actions_reach_amt_through_its_tunnel_with_digest_authentication() {
    use tether_common::control::{AmtPower, AmtPowerAction, ErrorCode, ListEvents, SetAmtAdmin};

    let mut mps = start().await;
    let (device, machine) = serving_amt(&mut mps).await;
    let power = |power| AmtPower {
        device: device.clone(),
        power,
    };

    // Without an administrator there is nothing to log in with.
    assert_eq!(
        mps.control.refused(power(AmtPowerAction::State)).await,
        ErrorCode::Conflict
    );
    mps.control
        .ok(SetAmtAdmin {
            device: device.clone(),
            user: "admin".into(),
            password: "AMT-p4ssw0rd!".into(),
        })
        .await;
    let state = mps.control.ok(power(AmtPowerAction::State)).await;
    assert_eq!((state.state, state.label.as_str()), (2, "on"));
    let state = mps.control.ok(power(AmtPowerAction::Off)).await;
    assert_eq!((state.state, state.label.as_str()), (8, "off"));
    let state = mps.control.ok(power(AmtPowerAction::On)).await;
    assert_eq!(state.state, 2);
    mps.control.ok(power(AmtPowerAction::Reset)).await;
    mps.control.ok(power(AmtPowerAction::Cycle)).await;
    assert_eq!(
        machine.lock().unwrap().changes,
        [8, 2, 10, 5],
        "what reached AMT, in order"
    );
    assert_eq!(machine.lock().unwrap().refused, 0);

    // A figure, not a check: a power-state read's round trip (channel, two HTTP exchanges with
    // Digest, the tunnel both ways), debug build.
    let mut took = Vec::new();
    for _ in 0..20 {
        let started = std::time::Instant::now();
        mps.control.ok(power(AmtPowerAction::State)).await;
        took.push(started.elapsed());
    }
    took.sort();
    println!(
        "amtPower state round trip: p50 {:?}, max {:?}",
        took[10], took[19]
    );

    // The same from the command line, the administrator's password from the environment.
    let id = device.to_string();
    let (status, _, err) = mps
        .tetherctl(
            &["amtadmin", &id, "--user", "admin", "--pass-env", "AMT_PW"],
            &[("AMT_PW", "AMT-p4ssw0rd!")],
        )
        .await;
    assert_eq!(status, 0, "{err}");
    let (status, out, err) = mps.tetherctl(&["amtpower", &id, "off"], &[]).await;
    assert_eq!((status, out.trim()), (0, "power: off (8)"), "{err}");
    let (status, _, err) = mps.tetherctl(&["amtpower", &id, "sideways"], &[]).await;
    assert_ne!(status, 0);
    assert!(
        err.contains("is not one of state, on, off, reset, cycle"),
        "{err}"
    );
    let (status, out, err) = mps.tetherctl(&["amtlogin", "Vault"], &[]).await;
    assert_eq!(status, 0, "{err}");
    assert!(
        out.contains("MPS server: localhost:") && out.contains("BEGIN CERTIFICATE"),
        "{out}"
    );
    mps.control.ok(power(AmtPowerAction::On)).await;

    // The audit log says who asked for what.
    let records = mps
        .control
        .ok(ListEvents {
            limit: None,
            group: None,
            device: None,
            ..Default::default()
        })
        .await;
    assert!(
        records.iter().any(|r| r.kind == "amt_power"
            && r.message.contains("admin asked Intel AMT")
            && r.message.contains("power off")),
        "{records:?}"
    );
    // The password is sealed in the store, and never in the log.
    let log = mps.server.stderr();
    assert!(!log.contains("AMT-p4ssw0rd!"));

    // A wrong administrator password: AMT refuses it, the console hears why.
    mps.control
        .ok(SetAmtAdmin {
            device: device.clone(),
            user: "admin".into(),
            password: "not-the-password".into(),
        })
        .await;
    assert_eq!(
        mps.control.refused(power(AmtPowerAction::Off)).await,
        ErrorCode::Conflict
    );
    assert!(machine.lock().unwrap().refused >= 1);
    assert_eq!(machine.lock().unwrap().power, 2, "nothing changed");
}

/// A machine logged in, its fake AMT serving the server's channels.
async fn serving_amt(mps: &mut Mps) -> (DeviceId, fake_amt::Shared) {
    let login = mps.cira_login().await;
    let mut amt = mps.client().await;
    assert_eq!(
        amt.log_in(UUID, &login.user, &login.password).await,
        Some(ApfMessage::UserauthSuccess)
    );
    amt.forward(&[16992]).await;
    amt.expect(ApfMessage::RequestSuccess { port: Some(16992) })
        .await;
    amt.recv().await; // the keepalive options
    let machine = fake_amt::state("admin", "AMT-p4ssw0rd!");
    tokio::spawn(fake_amt::serve(amt, machine.clone()));
    let device = DeviceId::from_amt_uuid(&UUID.0);
    (device, machine)
}

/// [`serving_amt`], with its administrator set on the server.
async fn amt_with_admin(mps: &mut Mps) -> (DeviceId, fake_amt::Shared) {
    use tether_common::control::SetAmtAdmin;

    let (device, machine) = serving_amt(mps).await;
    mps.control
        .ok(SetAmtAdmin {
            device: device.clone(),
            user: "admin".into(),
            password: "AMT-p4ssw0rd!".into(),
        })
        .await;
    (device, machine)
}

#[tokio::test]
async fn amt_s_web_ui_is_proxied_sandboxed_under_a_link_that_checks_rights_on_every_request() {
    use tether_common::control::{OpenAmtWeb, SetGroupRights};
    use tether_common::rights::Rights;

    let mut mps = start().await;
    let (device, machine) = amt_with_admin(&mut mps).await;
    let link = mps
        .control
        .ok(OpenAmtWeb {
            device: device.clone(),
        })
        .await;
    assert!(link.path.starts_with("/amt-web/") && link.path.ends_with('/'));
    let base = format!("https://localhost:{}{}", mps.server.port, link.path);
    let http = mps.server.http_client();

    // The start page: AMT's redirect stays under the link, its absolute links are moved under
    // it, its cookie stays behind, and it runs sandboxed.
    let root = http.get(&base).send().await.unwrap();
    assert_eq!(root.status(), 303);
    let location = root.headers()["location"].to_str().unwrap();
    assert_eq!(location, format!("{}index.htm", link.path));
    let page = http
        .get(format!("https://localhost:{}{location}", mps.server.port))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("sandbox ") && !csp.contains("allow-same-origin"),
        "{csp}"
    );
    assert!(
        headers.get("set-cookie").is_none(),
        "AMT's cookie was passed on"
    );
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!(r#"href="{}hw-sys.htm""#, link.path)),
        "{html}"
    );
    assert!(
        html.contains(&format!(r#"action="{}index.htm""#, link.path)),
        "{html}"
    );
    assert!(
        machine
            .lock()
            .unwrap()
            .pages
            .contains(&"GET /index.htm".to_owned()),
        "AMT served the page, logged in with Digest"
    );

    // 8 MiB from AMT through one channel: every byte in order, within the windows both ways
    // (the server closes a tunnel whose AMT overruns, and the fake counts the server's overruns).
    const BIG: usize = 8 * 1024 * 1024;
    let started = std::time::Instant::now();
    let big = http
        .get(format!("{base}big?bytes={BIG}"))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 200);
    let bytes = big.bytes().await.unwrap();
    let took = started.elapsed();
    assert_eq!(bytes.len(), BIG);
    assert!(
        bytes[..] == fake_amt::pattern(BIG)[..],
        "the bytes changed on the way"
    );
    assert_eq!(machine.lock().unwrap().overruns, 0);
    // A figure, not a check (debug build).
    println!(
        "8 MiB through a CIRA channel: {:.1} MB/s",
        BIG as f64 / took.as_secs_f64() / 1e6
    );

    // The same link from the command line.
    let (status, out, err) = mps.tetherctl(&["amtweb", device.as_ref()], &[]).await;
    assert_eq!(status, 0, "{err}");
    let printed = out
        .trim()
        .strip_prefix(&format!("https://127.0.0.1:{}", mps.server.port))
        .unwrap_or_else(|| panic!("not a link to this server: {out}"));
    let page = format!("https://localhost:{}{printed}index.htm", mps.server.port);
    assert_eq!(http.get(page).send().await.unwrap().status(), 200);

    // A link that was tampered with, or a path outside the links, is nothing.
    let forged = base.replace("/amt-web/", "/amt-web/x");
    assert_eq!(http.get(&forged).send().await.unwrap().status(), 404);

    // Taking the right away ends the link at once.
    mps.control
        .ok(AddUser {
            name: "carol".into(),
            password: "correct horse battery 3".into(),
            email: None,
            site_admin: false,
        })
        .await;
    let carol_id = tether_common::ids::UserId::from("carol");
    mps.control
        .ok(SetGroupRights {
            group: mps.group.clone(),
            user: carol_id.clone(),
            rights: Rights::VIEW.union(Rights::MANAGE_DEVICES),
        })
        .await;
    let carol = mps.server.login("carol", "correct horse battery 3").await;
    let mut carol = mps.server.control(&carol).await;
    let carols = carol
        .ok(OpenAmtWeb {
            device: device.clone(),
        })
        .await;
    let carols = format!(
        "https://localhost:{}{}index.htm",
        mps.server.port, carols.path
    );
    assert_eq!(http.get(&carols).send().await.unwrap().status(), 200);
    mps.control
        .ok(SetGroupRights {
            group: mps.group.clone(),
            user: carol_id,
            rights: Rights::VIEW,
        })
        .await;
    assert_eq!(http.get(&carols).send().await.unwrap().status(), 403);
    // Someone with view alone gets no link at all.
    assert_eq!(
        carol.refused(OpenAmtWeb { device }).await,
        tether_common::control::ErrorCode::Forbidden
    );
    // The admin's link still works, and each link opened is in the audit log.
    assert_eq!(
        http.get(format!("{base}index.htm"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let records = mps
        .control
        .ok(tether_common::control::ListEvents {
            limit: None,
            group: None,
            device: None,
            ..Default::default()
        })
        .await;
    assert_eq!(
        records.iter().filter(|r| r.kind == "amt_web").count(),
        3,
        "{records:?}"
    );
}

/// A Tether agent of the fixture's group that reports `system_uuid`; it stays connected while
/// the returned socket lives.
async fn agent_reporting(
    mps: &mut Mps,
    system_uuid: &str,
) -> (DeviceId, common::fake_agent::AgentSocket) {
    use futures_util::SinkExt;
    use tether_common::control::GetAgentConfig;
    use tokio_tungstenite::tungstenite::Message;

    let config = mps
        .control
        .ok(GetAgentConfig {
            group: mps.group.clone(),
        })
        .await;
    let mesh_id = tether_common::msh::Msh::parse(&config.msh).unwrap().mesh_id;
    let agent = fakes::FakeAgent::new(mesh_id);
    let (ending, mut socket) = agent.run_until(&mps.server, std::future::pending()).await;
    assert_eq!(ending, fakes::Ending::Accepted);
    let info = serde_json::json!({
        "action": "agentinfo",
        "hostname": "desk-7",
        "os_name": "Debian GNU/Linux",
        "system_uuid": system_uuid,
    });
    socket.send(Message::text(info.to_string())).await.unwrap();
    (agent.device_id(), socket)
}

#[tokio::test]
async fn a_machine_with_an_agent_and_amt_is_one_device_whichever_connects_first() {
    use tether_common::control::{AmtPower, AmtPowerAction, SetAmtAdmin};

    let mut mps = start().await;
    let login = mps.cira_login().await;
    let own_id = DeviceId::from_amt_uuid(&UUID.0);

    // AMT first: a record of its own, with its administrator.
    let mut amt = mps.client().await;
    assert_eq!(
        amt.log_in(UUID, &login.user, &login.password).await,
        Some(ApfMessage::UserauthSuccess)
    );
    mps.event(
        "the AMT record",
        |e| matches!(e, Event::DeviceOnline { device, .. } if *device == own_id),
    )
    .await;
    mps.control
        .ok(SetAmtAdmin {
            device: own_id.clone(),
            user: "admin".into(),
            password: "AMT-p4ssw0rd!".into(),
        })
        .await;

    // Then the agent reports the same machine (upper case, as some firmware prints it): AMT's
    // record is folded into the agent's device, and AMT is asked to come back.
    let (agent_id, agent_socket) =
        agent_reporting(&mut mps, &UUID.to_string().to_uppercase()).await;
    mps.event(
        "the AMT record folded in",
        |e| matches!(e, Event::DeviceRemoved { device, .. } if *device == own_id),
    )
    .await;
    assert_eq!(
        amt.recv_any()
            .await
            .map(|m| matches!(m, ApfMessage::Disconnect { .. })),
        Some(true)
    );
    let devices = mps.control.ok(ListDevices { group: None }).await;
    assert_eq!(devices.len(), 1, "{devices:?}");
    assert_eq!(devices[0].id, agent_id);
    assert_eq!(
        devices[0].amt_uuid.as_deref(),
        Some(UUID.to_string().as_str())
    );

    // AMT logs in again and joins the agent's device; its administrator came along.
    let mut amt = mps.client().await;
    assert_eq!(
        amt.log_in(UUID, &login.user, &login.password).await,
        Some(ApfMessage::UserauthSuccess)
    );
    amt.forward(&[16992]).await;
    amt.expect(ApfMessage::RequestSuccess { port: Some(16992) })
        .await;
    amt.recv().await; // the keepalive options
    let machine = fake_amt::state("admin", "AMT-p4ssw0rd!");
    let serving = tokio::spawn(fake_amt::serve(amt, machine.clone()));
    let state = mps
        .control
        .ok(AmtPower {
            device: agent_id.clone(),
            power: AmtPowerAction::Off,
        })
        .await;
    assert_eq!(state.label, "off");
    assert_eq!(mps.control.ok(ListDevices { group: None }).await.len(), 1);

    // The agent goes: the device stays online through AMT. AMT goes too: now it is offline.
    drop(agent_socket);
    wait_for_log(&mps, &format!("device={agent_id}"), "agent: disconnected").await;
    assert_eq!(mps.online(&agent_id).await, Some(true));
    serving.abort();
    mps.event(
        "offline once both are gone",
        |e| matches!(e, Event::DeviceOffline { device, .. } if *device == agent_id),
    )
    .await;
    assert_eq!(mps.online(&agent_id).await, Some(false));

    // Agent first: AMT's login lands on the agent's device straight away, no record of its own.
    let other = AmtUuid([7; 16]);
    let (second_agent, _socket) = agent_reporting(&mut mps, &other.to_string()).await;
    mps.event("the second agent described", |e| {
        matches!(e, Event::DeviceChanged { device } if device.id == second_agent && device.agent.is_some())
    })
    .await;
    let mut amt = mps.client().await;
    assert_eq!(
        amt.log_in(other, &login.user, &login.password).await,
        Some(ApfMessage::UserauthSuccess)
    );
    let joined = mps
        .event("AMT on the second agent's device", |e| {
            matches!(e, Event::DeviceChanged { device } if device.id == second_agent && device.amt_uuid.is_some())
        })
        .await;
    let Event::DeviceChanged { device } = joined else {
        unreachable!()
    };
    assert_eq!(device.amt_uuid, Some(other.to_string()));
    let devices = mps.control.ok(ListDevices { group: None }).await;
    assert_eq!(devices.len(), 2, "{devices:?}");
    assert!(devices.iter().all(|d| d.os != "Intel AMT"), "{devices:?}");
}

/// Waits until the server's log has a line with both `what` and `needle` (the log is the only
/// outside sign that the server finished handling an agent's disconnection).
async fn wait_for_log(mps: &Mps, needle: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    loop {
        if mps
            .server
            .stderr()
            .lines()
            .any(|line| line.contains(what) && line.contains(needle))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log line with {what:?} and {needle:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
