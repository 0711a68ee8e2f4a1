//! The driver of the agent's control session. Every decision (when to connect and to which
//! server, pings and the idle timeout, answers, `agentinfo`, which tunnels to serve, how long to
//! back off) is `tether_common::agent_session::AgentSession`'s; this file reads the socket, the
//! timer and the tunnels' ends, feeds them in, and does what comes out.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tether_common::agent_session::{
    Action, AgentSession, Input, ServerMessage, SessionConfig, Timestamp, Transmit, TunnelId,
};
use tether_common::relay::TunnelRequest;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::agent::Agent;
use crate::handshake::{self, Socket};
use crate::{relay, sysinfo, update};

/// A send that takes longer than this means the server stopped reading.
pub(crate) const SEND_DEADLINE: Duration = Duration::from_secs(20);

/// Runs the session until the process is stopped, going round `urls` (the `.msh`'s servers).
pub(crate) async fn run(agent: &Agent, urls: Vec<String>) -> anyhow::Result<()> {
    anyhow::ensure!(!urls.is_empty(), "the .msh file names no MeshServer");
    let clock = Clock::start();
    let config = SessionConfig::new(
        urls.len(),
        agent.timing.ping_interval,
        agent.timing.idle_timeout,
    );
    let (finished, mut tunnel_ends) = mpsc::unbounded_channel();
    let (fetched, mut fetches) = mpsc::unbounded_channel();
    let (chats, mut chat_reports) = mpsc::unbounded_channel();
    let mut driver = Driver {
        agent,
        urls,
        clock,
        machine: AgentSession::new(config, rand::random(), clock.now()),
        link: None,
        finished,
        fetched,
        chats,
    };
    loop {
        driver.perform_outputs().await;
        let deadline = driver.machine.poll_timeout().map(|at| clock.instant(at));
        tokio::select! {
            message = read(&mut driver.link) => driver.on_read(message),
            Some(id) = tunnel_ends.recv() => {
                driver.machine.handle_input(clock.now(), Input::TunnelFinished(id));
            }
            Some(fetch) = fetches.recv() => driver.on_fetched(fetch).await,
            Some(report) = chat_reports.recv() => {
                driver.machine.handle_input(clock.now(), Input::ChatOpened(report));
            }
            () = sleep_until_deadline(deadline) => driver.machine.handle_timeout(clock.now()),
        }
    }
}

/// The machine's time: a monotonic clock from the driver's start.
#[derive(Clone, Copy)]
struct Clock {
    origin: Instant,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_since_origin(self.origin.elapsed())
    }

    fn instant(&self, at: Timestamp) -> Instant {
        self.origin + at.since_origin()
    }
}

/// The open, authenticated connection.
struct Link {
    url: String,
    sink: SplitSink<Socket, Message>,
    stream: SplitStream<Socket>,
    /// What this connection's tunnels need (its server and certificate).
    relay: Arc<relay::Settings>,
}

struct Driver<'a> {
    agent: &'a Agent,
    urls: Vec<String>,
    clock: Clock,
    machine: AgentSession,
    link: Option<Link>,
    /// Each tunnel task reports its end here (sessions outlive the connection that asked).
    finished: mpsc::UnboundedSender<TunnelId>,
    /// An update's download reports here, for the trial and swap (which stop this loop).
    fetched: mpsc::UnboundedSender<Fetch>,
    /// What became of each `openchat`, for the server.
    chats: mpsc::UnboundedSender<tether_common::relay::chat::ChatOpened>,
}

/// An update's download, done or failed, with the slot that keeps a second one out.
struct Fetch {
    offered: String,
    outcome: anyhow::Result<update::Fetched>,
    slot: update::UpdateSlot,
}

impl Driver<'_> {
    /// Sends the frames and does the actions the machine has ready, feeding back what they
    /// produce, until it has nothing more.
    async fn perform_outputs(&mut self) {
        loop {
            if let Some(frame) = self.machine.poll_transmit() {
                self.transmit(frame).await;
            } else if let Some(action) = self.machine.poll_action() {
                self.perform(action).await;
            } else {
                return;
            }
        }
    }

    async fn transmit(&mut self, frame: Transmit) {
        let Some(link) = &mut self.link else {
            return;
        };
        let message = match frame {
            Transmit::Text(text) => Message::text(text),
            Transmit::Binary(bytes) => Message::binary(bytes),
            Transmit::Ping => Message::Ping(Default::default()),
        };
        if let Err(e) = send(&mut link.sink, message).await {
            let why = format!("{e:#}");
            self.machine
                .handle_input(self.clock.now(), Input::ConnectionLost(why));
        }
    }

    async fn perform(&mut self, action: Action) {
        match action {
            Action::Connect { server } => self.connect(server).await,
            Action::CollectInfo => {
                if let Some(mut info) = sysinfo::collect_off_thread().await {
                    // No platform, no offers: a packaged agent is updated by its package manager.
                    if self.agent.updater.replaceable_exe().is_err() {
                        info.platform.clear();
                    }
                    self.machine
                        .handle_input(self.clock.now(), Input::MachineInfo(info));
                }
            }
            Action::StartTunnel { id, request } => self.start_tunnel(id, request),
            Action::TurnAway {
                id,
                request,
                message,
            } => self.turn_away(id, request, message),
            Action::DropTunnel { request } => {
                let config = self.machine.config();
                tracing::warn!(
                    user = %request.user,
                    kind = %request.kind,
                    "relay: dropping a session request: already serving {} and refusing {}",
                    config.max_tunnels,
                    config.max_turned_away
                );
            }
            Action::Uninstall { by } => {
                tracing::warn!(user = %by, "uninstalling: asked by the server");
                println!("tether-agent uninstalling: asked by {by}");
                let Some(dir) = self.agent.install_dir.clone() else {
                    tracing::error!("uninstall: this agent does not know its install folder");
                    return;
                };
                // Removes the files, then has the service manager stop us (if it runs us).
                match tokio::task::spawn_blocking(move || crate::uninstall::remove_self(&dir)).await
                {
                    Ok(Ok(())) => std::process::exit(0),
                    Ok(Err(e)) => tracing::error!("uninstall failed: {e:#}"),
                    Err(e) => tracing::error!("uninstall failed: {e}"),
                }
            }
            Action::Update(offer) => self.start_update(offer),
            Action::Rollback => {
                tracing::warn!("rolling back to the previous version: asked by the server");
                println!("tether-agent rolling back");
                let failed = update::roll_back(&self.agent.updater);
                self.update_failed("previous", format!("{failed:#}"));
            }
            Action::OpenChat(request) => self.open_chat(request),
            Action::UnknownMessage => {
                tracing::debug!("ignoring a server message this agent does not know");
            }
            Action::Close(why) => {
                if let Some(mut link) = self.link.take() {
                    let _ = timeout(SEND_DEADLINE, link.sink.send(Message::Close(None))).await;
                    tracing::info!("disconnected from {}: {why}", link.url);
                }
                println!("tether-agent disconnected: {why}");
            }
            Action::Reconnect { after } => tracing::debug!("reconnecting in {after:?}"),
        }
    }

    async fn connect(&mut self, server: usize) {
        let url = self.urls[server % self.urls.len()].clone();
        match handshake::connect(self.agent, &url).await {
            Ok(authenticated) => {
                let pinned = if authenticated.skipped_server_check {
                    " (pinned certificate)"
                } else {
                    ""
                };
                tracing::info!("connected to {url}{pinned}");
                println!("tether-agent connected {url}");
                self.agent.updater.authenticated();
                let relay = Arc::new(relay::Settings {
                    url: url.clone(),
                    cert_der: authenticated.web_cert_der,
                    files_root: self.agent.files_root.clone(),
                    uploads: self.agent.uploads.clone(),
                    x_display: self.agent.x_display.clone(),
                    path_identity: self.agent.path_identity(),
                    #[cfg(feature = "desktop")]
                    desktop_hubs: self.agent.desktop_hubs.clone(),
                });
                let (sink, stream) = authenticated.socket.split();
                self.link = Some(Link {
                    url,
                    sink,
                    stream,
                    relay,
                });
                self.machine
                    .handle_input(self.clock.now(), Input::Connected);
            }
            Err(e) => {
                tracing::warn!("cannot connect to {url}: {e:#}");
                println!("tether-agent disconnected: {e:#}");
                self.machine
                    .handle_input(self.clock.now(), Input::ConnectFailed);
            }
        }
    }

    fn on_read(&mut self, message: Option<Result<Message, tungstenite::Error>>) {
        let now = self.clock.now();
        let message = match message {
            None => {
                let why = "the server closed the connection".to_owned();
                return self.machine.handle_input(now, Input::ConnectionLost(why));
            }
            Some(Err(e)) => {
                let why = format!("connection failed: {e}");
                return self.machine.handle_input(now, Input::ConnectionLost(why));
            }
            Some(Ok(message)) => message,
        };
        let detail;
        let message = match &message {
            Message::Text(text) => ServerMessage::Text(text.as_str()),
            Message::Binary(frame) => ServerMessage::Binary(frame),
            Message::Close(frame) => {
                detail = format!("{frame:?}");
                ServerMessage::Close { detail: &detail }
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => ServerMessage::Control,
        };
        self.machine.handle_input(now, Input::Message(message));
    }

    /// Downloads an offered version on its own task (the connection stays served meanwhile).
    fn start_update(&mut self, offer: tether_common::agent_update::UpdateOffer) {
        let Some(slot) = self.agent.updater.begin() else {
            tracing::info!(version = %offer.version, "update: ignoring an offer while another update is under way");
            return;
        };
        let exe = match self.agent.updater.replaceable_exe() {
            Ok(exe) => exe.to_owned(),
            Err(why) => return self.update_failed(&offer.version, why),
        };
        let Some(link) = &self.link else {
            return;
        };
        tracing::info!(version = %offer.version, "update: fetching the offered version");
        let (relay, server_id, done) = (
            link.relay.clone(),
            self.agent.msh.server_id,
            self.fetched.clone(),
        );
        tokio::spawn(async move {
            let outcome = update::fetch(&relay, &exe, &offer, &server_id).await;
            let _ = done.send(Fetch {
                offered: offer.version,
                outcome,
                slot,
            });
        });
    }

    /// A download finished: try the new binary, then become it. Returns only if that failed.
    async fn on_fetched(&mut self, fetch: Fetch) {
        let Fetch {
            offered,
            outcome,
            slot,
        } = fetch;
        let fetched = match outcome {
            Ok(fetched) => fetched,
            Err(e) => return self.update_failed(&offered, format!("{e:#}")),
        };
        println!("tether-agent trying version {}", fetched.version);
        let failure = match update::trial(&self.agent.updater, &fetched.path).await {
            Ok(()) => {
                tracing::info!(version = %fetched.version, "update: the trial run connected; restarting as the new version");
                update::restart_into(&self.agent.updater, &fetched.path, &fetched.version)
            }
            Err(e) => e,
        };
        let _ = std::fs::remove_file(&fetched.path);
        drop(slot);
        self.update_failed(&fetched.version, format!("{failure:#}"));
    }

    /// Logs a failed update or rollback and tells the server.
    fn update_failed(&mut self, version: &str, why: String) {
        tracing::warn!(version, "update failed: {why}");
        println!("tether-agent update failed: {why}");
        let input = Input::UpdateFailed {
            version: version.to_owned(),
            running: crate::version::VERSION.to_owned(),
            why,
        };
        self.machine.handle_input(self.clock.now(), input);
    }

    /// Opens the messenger page on its own task; its report comes back through `chats`.
    fn open_chat(&self, request: tether_common::relay::chat::OpenChat) {
        let Some(link) = &self.link else {
            return;
        };
        let (url, display) = (link.url.clone(), self.agent.x_display.clone());
        let (opener, done) = (self.agent.chat_opener.clone(), self.chats.clone());
        tokio::spawn(async move {
            let report = crate::chat_open::open(&url, display, opener, request).await;
            let _ = done.send(report);
        });
    }

    /// Each session runs on its own task and outlives this connection if it drops.
    fn start_tunnel(&self, id: TunnelId, request: TunnelRequest) {
        let Some(link) = &self.link else {
            return self.finished_now(id);
        };
        let (relay, ended) = (link.relay.clone(), self.tunnel_end(id));
        tokio::spawn(async move {
            if let Err(e) = relay::serve_tunnel(relay, request).await {
                tracing::warn!("relay session failed: {e:#}");
            }
            drop(ended);
        });
    }

    fn turn_away(&self, id: TunnelId, request: TunnelRequest, message: String) {
        let Some(link) = &self.link else {
            return self.finished_now(id);
        };
        tracing::warn!(
            user = %request.user,
            kind = %request.kind,
            "relay: refusing a session: already serving {}",
            self.machine.config().max_tunnels
        );
        let (relay, ended) = (link.relay.clone(), self.tunnel_end(id));
        tokio::spawn(async move {
            if let Err(e) = relay::turn_away(relay, request, &message).await {
                tracing::info!("could not tell the console its session was refused: {e:#}");
            }
            drop(ended);
        });
    }

    fn tunnel_end(&self, id: TunnelId) -> TunnelEnd {
        TunnelEnd {
            id,
            finished: self.finished.clone(),
        }
    }

    /// A tunnel that could not even start still gives its slot back.
    fn finished_now(&self, id: TunnelId) {
        drop(self.tunnel_end(id));
    }
}

/// Reports a tunnel's end when dropped, so a task that fails or panics still frees its slot.
struct TunnelEnd {
    id: TunnelId,
    finished: mpsc::UnboundedSender<TunnelId>,
}

impl Drop for TunnelEnd {
    fn drop(&mut self) {
        // The receiver lives as long as the driver; if it is gone, so is the count.
        let _ = self.finished.send(self.id);
    }
}

/// The next message of the open connection; never, while there is none.
async fn read(link: &mut Option<Link>) -> Option<Result<Message, tungstenite::Error>> {
    match link {
        Some(link) => link.stream.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_deadline(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn send(sink: &mut SplitSink<Socket, Message>, message: Message) -> anyhow::Result<()> {
    timeout(SEND_DEADLINE, sink.send(message))
        .await
        .map_err(|_| anyhow::anyhow!("the server stopped reading"))??;
    Ok(())
}
