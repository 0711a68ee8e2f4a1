//! Test harness: runs the real `tether-server` on loopback with a fresh data folder — as the
//! binary ([`TestServer::start`]), or in this process through `tether_server::run` on port 0
//! ([`TestServer::in_process`]) — and offers clients for its HTTP API and its `/control`
//! WebSocket. Not every test uses every part.
//!
//! In-process is cheaper (no process start, no stdout parsing) and is the default for tests that
//! only talk HTTP and WebSockets; tests of the binary itself (flags, stdout, signals, exit codes,
//! SIGKILL) use the binary.
#![allow(dead_code)]

pub mod fake_agent;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tether_common::control::{Action, ErrorCode, Event, EventFrame, Reply, ReplyError, Request};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// Generous: the machine running the tests may be busy, and the first start makes four RSA keys.
pub const START_DEADLINE: Duration = Duration::from_secs(120);
/// How long a single request or reply may take before the test fails.
pub const REPLY_DEADLINE: Duration = Duration::from_secs(30);
const LISTENING: &str = "tether-server listening on ";
const REDIRECTING: &str = "tether-server redirecting ";

pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A running `tether-server`; killed (SIGKILL) when dropped, its data folder removed.
pub struct TestServer {
    /// `https://127.0.0.1:PORT` (no trailing slash).
    pub url: String,
    pub port: u16,
    /// Set when started with a non-zero `--redirport`.
    pub redirect_port: Option<u16>,
    pub datapath: PathBuf,
    pub root_cert_pem: String,
    /// Everything the server wrote to stderr, across restarts.
    pub stderr_log: PathBuf,
    /// What the server printed on stdout before its "listening" line, at the latest start.
    pub startup_output: Vec<String>,
    args: Vec<String>,
    in_process: bool,
    running: Option<Running>,
    _dir: tempfile::TempDir,
}

enum Running {
    Binary(Child),
    InProcess(InProcessServer),
}

/// `tether_server::run` on a thread of its own, with its own runtime (so sync and async tests can
/// use it alike) and its own log file (the thread's default tracing subscriber).
struct InProcessServer {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl InProcessServer {
    /// Resolves the server's shutdown future and waits for `run` to return.
    fn stop(&mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err("the server thread panicked".to_owned()),
            None => Ok(()),
        }
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(&[]).await
    }

    /// Starts with extra flags; a flag given here replaces the harness default of the same name
    /// (e.g. `&["--redirport", "8080"]`).
    pub async fn start_with(extra: &[&str]) -> TestServer {
        TestServer::start_mode(extra, false).await
    }

    /// Runs the server in this process (see the module doc), with the same defaults as
    /// [`TestServer::start`].
    pub async fn in_process() -> TestServer {
        TestServer::start_mode(&[], true).await
    }

    /// [`TestServer::start_with`] for a start that may fail: the error says why (with the
    /// server's log).
    pub async fn try_start_with(extra: &[&str]) -> Result<TestServer, String> {
        TestServer::try_start_mode(extra, false).await
    }

    async fn start_mode(extra: &[&str], in_process: bool) -> TestServer {
        TestServer::try_start_mode(extra, in_process)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn try_start_mode(extra: &[&str], in_process: bool) -> Result<TestServer, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let datapath = dir.path().join("data");
        let defaults = [
            ("--port", "0"),
            ("--redirport", "0"),
            // Off unless a test asks: parallel servers would all want 4433.
            ("--mpsport", "0"),
            ("--bind", "127.0.0.1"),
            ("--cert", "localhost"),
        ];
        let mut args = Vec::new();
        for (flag, value) in defaults {
            if !extra.contains(&flag) {
                args.extend([flag.to_owned(), value.to_owned()]);
            }
        }
        args.extend([
            "--fastcert".to_owned(),
            "--datapath".to_owned(),
            datapath.display().to_string(),
        ]);
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut server = TestServer {
            url: String::new(),
            port: 0,
            redirect_port: None,
            stderr_log: dir.path().join("server-stderr.log"),
            startup_output: Vec::new(),
            datapath,
            root_cert_pem: String::new(),
            args,
            in_process,
            running: None,
            _dir: dir,
        };
        server.spawn().await?;
        Ok(server)
    }

    /// Starts with `config_toml` as the data folder's `config.toml` (added by helper "accounts").
    /// The first start makes the data folder and certificates; the server then restarts on the
    /// same port with the file in place.
    pub async fn start_with_config(config_toml: &str) -> TestServer {
        let mut server = TestServer::start().await;
        server.stop().await;
        std::fs::write(server.file("config.toml"), config_toml).expect("write config.toml");
        server.restart().await;
        server
    }

    /// Stops the server (SIGTERM) if it runs, and starts it again on the same port and data folder.
    pub async fn restart(&mut self) {
        if self.running.is_some() {
            self.stop().await;
        }
        self.set_arg("--port", &self.port.to_string());
        if let Some(port) = self.redirect_port {
            self.set_arg("--redirport", &port.to_string());
        }
        if let Err(e) = self.spawn().await {
            panic!("{e}");
        }
    }

    /// SIGTERM, then waits for the exit (SIGKILL if it takes longer than the deadline).
    pub async fn stop(&mut self) -> ExitStatus {
        let mut child = match self.running.take().expect("server is running") {
            Running::Binary(child) => child,
            Running::InProcess(mut server) => {
                use std::os::unix::process::ExitStatusExt;
                let stopped = tokio::task::spawn_blocking(move || server.stop())
                    .await
                    .expect("join the stopping task");
                return match stopped {
                    Ok(()) => ExitStatus::from_raw(0),
                    Err(e) => panic!("the in-process server failed: {e}\n{}", self.stderr()),
                };
            }
        };
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match timeout(START_DEADLINE, child.wait()).await {
            Ok(status) => status.expect("wait for server"),
            Err(_) => {
                let _ = child.kill().await;
                panic!(
                    "server did not stop within {START_DEADLINE:?} of SIGTERM\n{}",
                    self.stderr()
                );
            }
        }
    }

    /// SIGKILL: no chance to clean up, as in a power cut.
    pub async fn kill9(&mut self) {
        let Some(Running::Binary(mut child)) = self.running.take() else {
            panic!("kill9 needs the server binary (TestServer::start)");
        };
        child.kill().await.expect("SIGKILL the server");
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The server's process id while it runs (added by helper "loadgen", for `--server-pid`).
    pub fn pid(&self) -> Option<u32> {
        match &self.running {
            Some(Running::Binary(child)) => child.id(),
            _ => None,
        }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.datapath.join(name)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// A rustls client configuration that trusts only this server's root.
    pub fn tls_client_config(&self) -> Arc<rustls::ClientConfig> {
        install_crypto_provider();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(pem_cert_der(&self.root_cert_pem))
            .expect("root certificate");
        Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// An HTTP client that trusts this server's root, keeps cookies and does not follow redirects.
    pub fn http_client(&self) -> reqwest::Client {
        install_crypto_provider();
        let root = reqwest::Certificate::from_pem(self.root_cert_pem.as_bytes())
            .expect("root certificate");
        reqwest::Client::builder()
            .tls_certs_only([root])
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REPLY_DEADLINE)
            .build()
            .expect("http client")
    }

    /// Creates the first account (the site administrator) through `POST /api/setup`.
    pub async fn create_admin(&self, name: &str, password: &str) {
        let response = self
            .http_client()
            .post(format!("{}/api/setup", self.url))
            .json(&json!({ "name": name, "password": password }))
            .send()
            .await
            .expect("POST /api/setup");
        let status = response.status();
        assert!(
            status.is_success(),
            "setup failed: {status} {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// Logs in through `POST /api/login` and returns the `tether_session` cookie value.
    pub async fn login(&self, name: &str, password: &str) -> String {
        let response = self
            .http_client()
            .post(format!("{}/api/login", self.url))
            .json(&json!({ "user": name, "password": password }))
            .send()
            .await
            .expect("POST /api/login");
        let status = response.status();
        let cookie = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(|value| value.strip_prefix("__Host-tether_session="))
            .map(|rest| rest.split(';').next().unwrap_or_default().to_owned());
        match cookie {
            Some(cookie) if status.is_success() && !cookie.is_empty() => cookie,
            _ => panic!(
                "login failed: {status} {}",
                response.text().await.unwrap_or_default()
            ),
        }
    }

    /// Opens `/control` with the session cookie; panics if the server refuses.
    pub async fn control(&self, cookie: &str) -> ControlClient {
        match self.try_control(Some(cookie)).await {
            Ok(client) => client,
            Err(e) => panic!("cannot open /control: {e}"),
        }
    }

    pub async fn try_control(
        &self,
        cookie: Option<&str>,
    ) -> Result<ControlClient, tokio_tungstenite::tungstenite::Error> {
        let mut request = format!("wss://127.0.0.1:{}/control", self.port).into_client_request()?;
        let headers = request.headers_mut();
        if let Some(cookie) = cookie {
            headers.insert(
                "cookie",
                format!("__Host-tether_session={cookie}")
                    .parse()
                    .expect("cookie header"),
            );
        }
        headers.insert("origin", self.url.parse().expect("origin header"));
        let connector = Connector::Rustls(self.tls_client_config());
        let connect =
            tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector));
        let (ws, _) = timeout(REPLY_DEADLINE, connect)
            .await
            .expect("WebSocket connect timed out")?;
        Ok(ControlClient {
            ws,
            next_id: 1,
            events: VecDeque::new(),
        })
    }

    fn set_arg(&mut self, flag: &str, value: &str) {
        match self.args.iter().position(|a| a == flag) {
            Some(i) => self.args[i + 1] = value.to_owned(),
            None => self.args.extend([flag.to_owned(), value.to_owned()]),
        }
    }

    async fn spawn(&mut self) -> Result<(), String> {
        if self.in_process {
            return self.spawn_in_process().await;
        }
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_log)
            .map_err(|e| format!("stderr log: {e}"))?;
        // TETHER_SERVER_BIN swaps in another build (e.g. release, for CPU figures).
        let binary = std::env::var_os("TETHER_SERVER_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_tether-server").into());
        let mut child = Command::new(binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start tether-server: {e}"))?;
        let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let deadline = Instant::now() + START_DEADLINE;
        self.startup_output.clear();
        let url = loop {
            let line = match tokio::time::timeout_at(deadline, lines.next_line()).await {
                Ok(Ok(Some(line))) => line,
                Ok(_) => {
                    let status = child.wait().await.map_err(|e| e.to_string())?;
                    return Err(format!(
                        "tether-server exited ({status}) before listening:\n{}",
                        self.stderr()
                    ));
                }
                Err(_) => {
                    let _ = child.kill().await;
                    return Err(format!(
                        "tether-server did not listen within {START_DEADLINE:?}:\n{}",
                        self.stderr()
                    ));
                }
            };
            if let Some(rest) = line.strip_prefix(REDIRECTING) {
                self.redirect_port = port_of(rest);
            } else if let Some(url) = line.strip_prefix(LISTENING) {
                break url.trim_end_matches('/').to_owned();
            } else {
                self.startup_output.push(line);
            }
        };
        // Keep reading stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.port = port_of(&url).ok_or_else(|| format!("no port in {url}"))?;
        self.url = url;
        self.root_cert_pem = std::fs::read_to_string(self.datapath.join("root-cert-public.crt"))
            .map_err(|e| format!("root certificate: {e}"))?;
        self.running = Some(Running::Binary(child));
        Ok(())
    }

    async fn spawn_in_process(&mut self) -> Result<(), String> {
        install_crypto_provider();
        let args = std::iter::once("tether-server".to_owned()).chain(self.args.iter().cloned());
        let cli = <tether_server::config::Cli as clap::Parser>::try_parse_from(args)
            .map_err(|e| format!("flags: {e}"))?;
        let config = tether_server::config::Config::load(&cli).map_err(|e| format!("{e:#}"))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_log)
            .map_err(|e| format!("server log: {e}"))?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<u16, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
                .with_ansi(false)
                .with_writer(move || log.try_clone().expect("clone the log file"))
                .finish();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("runtime: {e}"))?;
            tracing::subscriber::with_default(subscriber, || {
                runtime.block_on(async move {
                    // Made before `run`, so the root certificate is on disk once the port is known.
                    if let Err(e) = tether_server::ServerCerts::load_or_create(&config) {
                        let _ = ready_tx.send(Err(format!("certificates: {e:#}")));
                        return Ok(());
                    }
                    let listeners = match tether_server::serve::Listeners::bind(&config).await {
                        Ok(listeners) => listeners,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("{e:#}")));
                            return Ok(());
                        }
                    };
                    let port = listeners
                        .https
                        .local_addr()
                        .map_err(|e| e.to_string())?
                        .port();
                    let _ = ready_tx.send(Ok(port));
                    let stopped = async {
                        let _ = stop_rx.await;
                    };
                    tether_server::run(config, listeners, stopped)
                        .await
                        .map_err(|e| format!("{e:#}"))
                })
            })
        });
        let mut server = InProcessServer {
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        let port = match timeout(START_DEADLINE, ready_rx).await {
            Ok(Ok(Ok(port))) => port,
            Ok(Ok(Err(e))) => return Err(format!("the in-process server did not start: {e}")),
            Ok(Err(_)) => {
                let failure = server.stop().err().unwrap_or_default();
                return Err(format!(
                    "the in-process server ended before listening: {failure}"
                ));
            }
            Err(_) => return Err(format!("no in-process server within {START_DEADLINE:?}")),
        };
        self.port = port;
        self.url = format!("https://127.0.0.1:{port}");
        self.root_cert_pem = std::fs::read_to_string(self.datapath.join("root-cert-public.crt"))
            .map_err(|e| format!("root certificate: {e}"))?;
        self.running = Some(Running::InProcess(server));
        Ok(())
    }
}

/// `[scheme://]host:PORT/...` → PORT (the first URL in `text`).
fn port_of(text: &str) -> Option<u16> {
    let after_scheme = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .unwrap_or(text);
    let authority = after_scheme.split('/').next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}

pub fn pem_cert_der(pem: &str) -> rustls_pki_types::CertificateDer<'static> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM certificate")
}

pub fn read_cert_der(path: &Path) -> rustls_pki_types::CertificateDer<'static> {
    pem_cert_der(&std::fs::read_to_string(path).expect("certificate file"))
}

/// A console's `/control` connection: numbered requests, replies matched by id, pushed events
/// queued until asked for.
pub struct ControlClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    events: VecDeque<Event>,
}

impl ControlClient {
    /// The WebSocket itself, for tests that read frames as they come (close frames, say).
    pub fn into_socket(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.ws
    }

    /// Sends `{"action": ..., ...}` with a fresh `id` and returns the matching reply; events that
    /// arrive meanwhile are kept for [`next_event`](Self::next_event).
    pub async fn request(&mut self, mut request: Value) -> Reply {
        let id = self.next_id;
        self.next_id += 1;
        request["id"] = json!(id);
        self.send_raw(&request.to_string()).await;
        let reply = self.next_reply(REPLY_DEADLINE).await;
        assert_eq!(reply.id, Some(id), "reply to another request: {reply:?}");
        reply
    }

    /// Sends one typed request and reads its reply back as the action's typed output, or the
    /// server's refusal (code and message). Events that arrive meanwhile are queued.
    pub async fn call<A: Action>(&mut self, request: A) -> Result<A::Output, ReplyError> {
        let id = self.next_id;
        self.next_id += 1;
        let text = serde_json::to_string(&Request::new(id, request)).expect("encode a request");
        self.send_raw(&text).await;
        let reply = self.next_reply(REPLY_DEADLINE).await;
        assert_eq!(reply.id, Some(id), "reply to another request: {reply:?}");
        reply.into_result()
    }

    /// [`call`](Self::call) that must succeed.
    pub async fn ok<A: Action>(&mut self, request: A) -> A::Output {
        let name = A::NAME;
        self.call(request)
            .await
            .unwrap_or_else(|e| panic!("{name} failed: {e}"))
    }

    /// [`call`](Self::call) that must be refused; returns the error code.
    pub async fn refused<A: Action>(&mut self, request: A) -> ErrorCode
    where
        A::Output: std::fmt::Debug,
    {
        let name = A::NAME;
        match self.call(request).await {
            Err(ReplyError::Refused(error)) => error.code,
            other => panic!("{name} was not refused: {other:?}"),
        }
    }

    /// Sends a text frame as it is (for malformed-request tests).
    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::text(text))
            .await
            .expect("send on /control");
    }

    /// The next reply, queueing events that come first.
    pub async fn next_reply(&mut self, wait: Duration) -> Reply {
        let deadline = Instant::now() + wait;
        loop {
            let Some(frame) = self.next_json(deadline).await else {
                panic!("no reply within {wait:?}");
            };
            if let Ok(event) = serde_json::from_value::<EventFrame>(frame.clone()) {
                self.events.push_back(event.event);
            } else {
                return serde_json::from_value(frame.clone())
                    .unwrap_or_else(|e| panic!("bad reply {frame}: {e}"));
            }
        }
    }

    pub async fn next_event(&mut self, wait: Duration) -> Event {
        match self.try_next_event(wait).await {
            Some(event) => event,
            None => panic!("no event within {wait:?}"),
        }
    }

    /// `None` if no event arrives within `wait` (to check that something was *not* sent).
    pub async fn try_next_event(&mut self, wait: Duration) -> Option<Event> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        let frame = self.next_json(Instant::now() + wait).await?;
        match serde_json::from_value::<EventFrame>(frame.clone()) {
            Ok(event) => Some(event.event),
            Err(_) => panic!("unexpected frame while waiting for an event: {frame}"),
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// Waits until the server closes this connection: `Ok(close reason)` (empty without a close
    /// frame), or `Err(the text frames it sent instead)` when `wait` passes first.
    pub async fn wait_closed(&mut self, wait: Duration) -> Result<String, Vec<String>> {
        let deadline = Instant::now() + wait;
        let mut received = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Err(received),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Ok(frame.map(|f| f.reason.to_string()).unwrap_or_default());
                }
                Ok(Some(Ok(Message::Text(text)))) => received.push(text.to_string()),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_)) | None) => return Ok(String::new()),
            }
        }
    }

    /// The next JSON text frame, or `None` at the deadline. Panics if the server closes.
    async fn next_json(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            let message = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(None) => panic!("/control closed by the server"),
                Ok(Some(Err(e))) => panic!("/control failed: {e}"),
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => {
                    return Some(
                        serde_json::from_str(&text)
                            .unwrap_or_else(|e| panic!("not JSON: {text}: {e}")),
                    );
                }
                Message::Close(frame) => panic!("/control closed by the server: {frame:?}"),
                _ => continue,
            }
        }
    }
}
