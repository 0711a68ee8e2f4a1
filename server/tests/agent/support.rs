//! For the agent tests: a server with an admin, a device group and its `.msh`, and real
//! `tether-agent` processes whose stdout lines say what they are doing.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tether_common::control::{CreateGroup, DeviceInfo, Event, ListDevices};
use tether_common::ids::{DeviceId, GroupId};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout, timeout_at};

use crate::common::{ControlClient, TestServer};

/// Upper bound for things that normally take a second; the machine running tests may be busy.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub const ADMIN: (&str, &str) = ("admin", "correct horse battery staple");

pub struct Fixture {
    pub server: TestServer,
    pub cookie: String,
    pub control: ControlClient,
    pub group: GroupId,
    /// The group's `.msh` as the server serves it.
    pub msh: String,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub async fn start() -> Fixture {
        Fixture::with_server(TestServer::start().await).await
    }

    /// With `config_toml` in the data folder (e.g. short agent keepalive times).
    pub async fn start_with_config(config_toml: &str) -> Fixture {
        Fixture::with_server(TestServer::start_with_config(config_toml).await).await
    }

    /// An admin, a group and its `.msh` on a server already started.
    pub async fn with_server(server: TestServer) -> Fixture {
        server.create_admin(ADMIN.0, ADMIN.1).await;
        let cookie = server.login(ADMIN.0, ADMIN.1).await;
        let mut control = server.control(&cookie).await;
        let group = control
            .ok(CreateGroup {
                name: "Lab".into(),
                description: String::new(),
            })
            .await
            .id;
        let mut fixture = Fixture {
            server,
            cookie,
            control,
            group,
            msh: String::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        let (status, msh) = fixture
            .get(&format!("/api/groups/{}/agent.msh", fixture.group), true)
            .await;
        assert_eq!(status, 200, "{msh}");
        fixture.msh = msh;
        fixture
    }

    /// `GET path`, with or without the admin's session; (status, body).
    pub async fn get(&self, path: &str, logged_in: bool) -> (u16, String) {
        let mut request = reqwest::Client::builder()
            .tls_certs_only([
                reqwest::Certificate::from_pem(self.server.root_cert_pem.as_bytes()).unwrap(),
            ])
            .build()
            .unwrap()
            .get(format!("{}{path}", self.server.url));
        if logged_in {
            request = request.header("cookie", format!("__Host-tether_session={}", self.cookie));
        }
        let response = request.send().await.expect("GET");
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    }

    /// The `.msh` with its MeshServer pointed at another port on loopback (a proxy in front).
    pub fn msh_via_port(&self, port: u16) -> String {
        let server_line = self
            .msh
            .lines()
            .find(|l| l.starts_with("MeshServer="))
            .unwrap();
        self.msh.replace(
            server_line,
            &format!("MeshServer=wss://127.0.0.1:{port}/agent.ashx"),
        )
    }

    /// The group's enrolment key: the MeshID of its `.msh`.
    pub fn enrolment_key(&self) -> [u8; 48] {
        tether_common::msh::Msh::parse(&self.msh).unwrap().mesh_id
    }

    /// A fresh state folder for one agent.
    pub fn state_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `tether-agent run` with `msh` and waits for its device id.
    pub async fn spawn_agent(&self, msh: &str, state: &Path, extra: &[&str]) -> AgentProcess {
        let msh_path = state.with_extension("msh");
        std::fs::write(&msh_path, msh).unwrap();
        AgentProcess::spawn(&msh_path, state, extra).await
    }

    /// Starts `tether-agent run` on the group's `.msh` with state folder `name` and `extra`
    /// flags, and waits until it says it connected and the server lists it online.
    pub async fn online_agent(&mut self, name: &str, extra: &[&str]) -> AgentProcess {
        let mut agent = self
            .spawn_agent(&self.msh.clone(), &self.state_dir(name), extra)
            .await;
        agent.wait_line("tether-agent connected ").await;
        let device = agent.device_id.clone();
        self.wait_device(&device, "online", |d| d.online).await;
        agent
    }

    /// [`Fixture::online_agent`] with these environment variables added (a sound server's
    /// address, say).
    pub async fn online_agent_with_env(
        &mut self,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> AgentProcess {
        let state = self.state_dir(name);
        let msh_path = state.with_extension("msh");
        std::fs::write(&msh_path, &self.msh).unwrap();
        let binary = std::env::var_os("TETHER_AGENT_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_BIN_EXE_tether-server")).with_file_name("tether-agent")
            });
        let mut agent =
            AgentProcess::spawn_binary_with_env(&binary, &msh_path, &state, extra, env).await;
        agent.wait_line("tether-agent connected ").await;
        let device = agent.device_id.clone();
        self.wait_device(&device, "online", |d| d.online).await;
        agent
    }

    /// Runs `tetherctl ARGS` as the admin, trusting this server's root, with `stdin` as its
    /// standard input (or none); (exit status, stdout, stderr).
    pub async fn tetherctl(&self, args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
        let binary = Path::new(env!("CARGO_BIN_EXE_tether-server")).with_file_name("tetherctl");
        let mut child = Command::new(binary)
            .env(
                "TETHER_URL",
                format!("wss://127.0.0.1:{}", self.server.port),
            )
            .env("TETHER_USER", ADMIN.0)
            .env("TETHER_PASS", ADMIN.1)
            .env(
                "TETHER_KNOWN_SERVERS",
                self.dir.path().join("known_servers"),
            )
            .arg("--trust-root")
            .arg(self.server.file("root-cert-public.crt"))
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run tetherctl (build it first: cargo build --workspace --bins)");
        // Written beside the reading below: a program that echoes its input (`cat`) stops
        // reading it until its output is read.
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            let input = input.to_vec();
            tokio::spawn(async move {
                // tetherctl may end before it read everything (a failing test says why).
                let _ = pipe.write_all(&input).await;
            });
        }
        // A backstop: tetherctl itself waits up to DEADLINE for some answers (a screenshot).
        let output = timeout(DEADLINE * 2, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("tetherctl {args:?} timed out"))
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    pub async fn devices(&mut self) -> Vec<DeviceInfo> {
        self.control.ok(ListDevices { group: None }).await
    }

    /// Polls `listDevices` until `device` is listed and `check` holds for it.
    pub async fn wait_device(
        &mut self,
        device: &DeviceId,
        what: &str,
        check: impl Fn(&DeviceInfo) -> bool,
    ) -> DeviceInfo {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(info) = self.devices().await.into_iter().find(|d| &d.id == device)
                && check(&info)
            {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "device {device} never became {what}\n{}",
                self.server.stderr()
            );
            sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for a pushed event matching `wanted`, skipping others.
    pub async fn wait_event(&mut self, what: &str, wanted: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.control.try_next_event(left).await {
                Some(event) if wanted(&event) => return event,
                Some(_) => continue,
                None => panic!(
                    "no {what} event within {DEADLINE:?}\n{}",
                    self.server.stderr()
                ),
            }
        }
    }

    /// Opens a new console connection (after a server restart the old one is gone).
    pub async fn reconnect_control(&mut self) {
        self.control = self.server.control(&self.cookie).await;
    }
}

/// A running `tether-agent`, killed when dropped.
/// CPU seconds (user + system) process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces and parentheses) start at field 3.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // /proc counts in USER_HZ, which Linux fixes at 100 for user space.
    ticks / 100.0
}

pub struct AgentProcess {
    pub device_id: DeviceId,
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// Everything printed so far, for failure messages.
    pub seen: Vec<String>,
    /// Its stderr (the tracing log).
    log: PathBuf,
}

impl AgentProcess {
    pub async fn spawn(msh_path: &Path, state: &Path, extra: &[&str]) -> AgentProcess {
        // TETHER_AGENT_BIN swaps in another build (e.g. release, for the RSS figure).
        let binary = std::env::var_os("TETHER_AGENT_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_BIN_EXE_tether-server")).with_file_name("tether-agent")
            });
        AgentProcess::spawn_binary(&binary, msh_path, state, extra).await
    }

    /// [`AgentProcess::spawn`] with this agent binary (one installed in a folder, say).
    pub async fn spawn_binary(
        binary: &Path,
        msh_path: &Path,
        state: &Path,
        extra: &[&str],
    ) -> AgentProcess {
        AgentProcess::spawn_binary_with_env(binary, msh_path, state, extra, &[]).await
    }

    /// [`AgentProcess::spawn_binary`] with these environment variables added.
    pub async fn spawn_binary_with_env(
        binary: &Path,
        msh_path: &Path,
        state: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> AgentProcess {
        let log = state.with_extension("log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = Command::new(binary)
            .args(["run", "--config"])
            .arg(msh_path)
            .arg("--state")
            .arg(state)
            .arg("--small-key")
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} (build all binaries first): {e}",
                    binary.display()
                )
            });
        let (sender, lines) = mpsc::unbounded_channel();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut agent = AgentProcess {
            device_id: DeviceId::from(""),
            child,
            lines,
            seen: Vec::new(),
            log,
        };
        let line = agent.wait_line("tether-agent device ").await;
        agent.device_id = DeviceId::from(line.trim_start_matches("tether-agent device ").trim());
        agent
    }

    /// Waits for the agent to exit by itself; its status.
    pub async fn wait_exit(&mut self) -> std::process::ExitStatus {
        timeout_at(Instant::now() + DEADLINE, self.child.wait())
            .await
            .expect("the agent did not exit in time")
            .unwrap()
    }

    /// Moves every line printed so far into `seen`, without waiting for more.
    pub fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// The next stdout line starting with `prefix` (earlier lines are skipped).
    pub async fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Ok(None) => panic!(
                    "tether-agent exited; it printed {:?}\n{}",
                    self.seen,
                    self.log()
                ),
                Err(_) => panic!(
                    "tether-agent never printed {prefix:?}; it printed {:?}\n{}",
                    self.seen,
                    self.log()
                ),
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the agent runs")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}
