//! Start-up and the listeners: the HTTPS port (or plain HTTP behind a TLS-offloading proxy), the
//! HTTP→HTTPS redirect port, background chores, and a graceful stop on SIGINT/SIGTERM.
//!
//! Each listener caps its open connections in total and per source address (`caps.rs`), closing
//! the excess as it is accepted; each connection has a TLS handshake deadline, an HTTP/1 header
//! deadline, HTTP/2 pings, a per-request deadline and an idle timeout (`activity.rs`).

mod activity;
pub(crate) mod caps;

use std::future::Future;
use std::io::{ErrorKind, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

use self::activity::{Activity, Tracked};
use self::caps::{CapRefused, Caps, ConnectionCounts};
use crate::agents::OnlineAgents;
use crate::auth::ratelimit::LoginLimiter;
use crate::certs;
use crate::config::Config;
use crate::events::EventBus;
use crate::relay::RelayBroker;
use crate::state::AppState;
use crate::store::Store;

/// A client that has not finished the TLS handshake by then is dropped (slowloris guard).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// An HTTP/1 client must send its request headers within this long.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// An HTTP/2 ping not answered within this long means the peer is gone.
const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// On shutdown, open requests get this long to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// The sockets the server serves, bound by the caller: `main` binds what the configuration asks
/// for ([`Listeners::bind`]); tests bind port 0 on loopback and learn the port before the server
/// runs.
#[derive(Debug)]
pub struct Listeners {
    /// HTTPS (plain HTTP with `tlsoffload`): the console, the API, agents and the relay.
    pub https: TcpListener,
    /// Answers every request with a redirect to the HTTPS port (`--redirport`).
    pub redirect: Option<TcpListener>,
    /// Answers STUN Binding requests (`--stunport`; `crate::stun`).
    pub stun: Option<UdpSocket>,
    /// Intel AMT's CIRA connections (`--mpsport`; `crate::mps`).
    pub mps: Option<TcpListener>,
}

impl Listeners {
    /// Binds `--port` and, unless it is 0 or a TLS-offloading proxy owns the public ports,
    /// `--redirport`, on the configured address. A port in use or a privileged port fails here,
    /// with the flag to change, before any slow start-up work.
    pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let https = bind(config.bind_address(), config.port, "--port", 8443).await?;
        let redirect = match (config.redirport, config.tlsoffload) {
            (0, _) => None,
            (_, true) => {
                tracing::info!(
                    "--tlsoffload: no redirect port, the proxy in front owns the public ports"
                );
                None
            }
            (port, false) => Some(bind(config.bind_address(), port, "--redirport", 8080).await?),
        };
        let https_port = https.local_addr()?.port();
        let stun = crate::stun::bind(config.bind_address(), config.stunport, https_port).await?;
        let mps = crate::mps::bind(config.bind_address(), config.mpsport).await?;
        Ok(Listeners {
            https,
            redirect,
            stun,
            mps,
        })
    }
}

/// Serves `listeners` until `shutdown` resolves, then stops accepting, tells every open
/// connection to finish (WebSockets get a "server stopping" close frame), waits up to
/// [`SHUTDOWN_GRACE`] for them, and returns. The process-wide set-up (the rustls crypto provider,
/// the open-file limit, signals) is the caller's: see `main.rs`.
pub async fn run(
    mut config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    certs::ensure_private_dir(config.datapath()).context("preparing the data folder")?;
    let store: Arc<dyn Store> = crate::store::open(&config)
        .await
        .context("opening the database")?;
    let Listeners {
        https,
        redirect,
        stun,
        mps,
    } = listeners;
    // With `--port 0` the OS picks; everything downstream (serverInfo, .msh files) needs the real one.
    config.port = https.local_addr()?.port();
    // Likewise the STUN port as bound (0: none), which session tickets name.
    config.stunport = Some(match &stun {
        Some(socket) => socket.local_addr()?.port(),
        None => 0,
    });
    // And the MPS port (0: off), which CIRA logins name.
    config.mpsport = match &mps {
        Some(listener) => listener.local_addr()?.port(),
        None => 0,
    };

    let certs = certs::shared::load(&config, store.as_ref())
        .await
        .context("loading the server certificates")?;
    tracing::info!(server_id = %hex::encode(certs.agent_server_id()), "agent-server certificate ready");

    let tls = match config.tlsoffload {
        true => None,
        false => Some(TlsAcceptor::from(crate::tls::server_config(&certs)?)),
    };
    let config = Arc::new(config);
    let setup_code: Arc<str> = crate::auth::http::setup_code().into();
    let needs_setup = store.user_count().await.is_ok_and(|n| n == 0);
    let update_signing = crate::updates::Signing::of(&certs);
    let cluster = Arc::new(crate::cluster::Cluster::new(
        std::time::Duration::from_secs(config.cluster_timeout_secs.max(1)),
    ));
    let state = AppState {
        login_limiter: Arc::new(LoginLimiter::new(&config)),
        setup_code: setup_code.clone(),
        config: config.clone(),
        certs: Arc::new(certs),
        store: store.clone(),
        events: EventBus::default(),
        agents: Arc::new(OnlineAgents::new(cluster.clone())),
        cluster: cluster.clone(),
        amt: Arc::new(crate::mps::AmtOnline::default()),
        passkeys: Arc::new(crate::auth::passkeys::Ceremonies::default()),
        relay: Arc::new(RelayBroker::from_config(&config)),
        updates: Arc::new(crate::updates::Updates::new(update_signing)),
        stopping: CancellationToken::new(),
        tasks: TaskTracker::new(),
    };
    let (stopping, tasks) = (state.stopping.clone(), state.tasks.clone());
    if let Some(nats) = &config.nats {
        crate::cluster::start(&state, nats.expose(), &config.cluster_subject_prefix)
            .await
            .context("joining the cluster")?;
    }
    if let Some(listener) = mps {
        let acceptor = TlsAcceptor::from(crate::tls::mps_server_config(&state.certs)?);
        println!(
            "tether-server accepting Intel AMT (CIRA) on tls://{}",
            listener.local_addr()?
        );
        tasks.spawn(crate::mps::serve(listener, acceptor, state.clone()));
    }
    let revocations = crate::relay::watch_revocations(state.clone(), stopping.clone());
    tasks.spawn(crate::updates::Updates::drive(state.clone()));
    if config.agent_auto_update {
        tasks.spawn(crate::updates::start_on_boot(state.clone()));
    }
    let app = crate::http::router(state);

    let limits = ListenerLimits::of(&config);
    let https_port = https.local_addr()?.port();
    let host = public_host(&config);
    if let Some(listener) = redirect {
        let port = listener.local_addr()?.port();
        println!("tether-server redirecting http://{host}:{port}/ to https://{host}:{https_port}/");
        let app = crate::http::redirect_router(https_port, host.clone());
        tasks.spawn(accept_loop(
            listener,
            None,
            app,
            limits,
            stopping.clone(),
            tasks.clone(),
        ));
    }
    if let Some(socket) = stun {
        println!(
            "tether-server answering STUN on udp://{}",
            socket.local_addr()?
        );
        tasks.spawn(crate::stun::answer(socket, stopping.clone()));
    }
    tasks.spawn(accept_loop(
        https,
        tls,
        app,
        limits,
        stopping.clone(),
        tasks.clone(),
    ));
    tasks.spawn(prune_daily(
        store,
        config.datapath.clone(),
        config.event_retention_days,
        stopping.clone(),
    ));
    tasks.spawn(revocations);
    let scheme = if config.tlsoffload { "http" } else { "https" };
    if needs_setup {
        // Shown to whoever started the server (its terminal or service log), never over the network.
        println!(
            "tether-server has no account yet: create the administrator from this machine, or open \
             {scheme}://{host}:{https_port}/#setup={setup_code} from anywhere"
        );
    }
    // Tests and scripts wait for exactly this line.
    println!("tether-server listening on {scheme}://{host}:{https_port}/");
    std::io::stdout().flush().ok();

    shutdown.await;
    tracing::info!("shutting down");
    stopping.cancel();
    tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within {SHUTDOWN_GRACE:?}; closing them");
    }
    Ok(())
}

/// The host name shown to people: loopback stays loopback, anything else is the certificate name.
fn public_host(config: &Config) -> String {
    match config.bind_address() {
        IpAddr::V4(ip) if ip.is_loopback() => "127.0.0.1".to_owned(),
        IpAddr::V6(ip) if ip.is_loopback() => "[::1]".to_owned(),
        _ if config.cert.contains(':') => format!("[{}]", config.cert),
        _ => config.cert.clone(),
    }
}

async fn bind(ip: IpAddr, port: u16, flag: &str, example: u16) -> anyhow::Result<TcpListener> {
    match TcpListener::bind((ip, port)).await {
        Ok(listener) => Ok(listener),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => anyhow::bail!(
            "cannot listen on port {port}: permission denied (ports below 1024 need root or \
             CAP_NET_BIND_SERVICE); choose another with {flag} {example}"
        ),
        Err(e) if e.kind() == ErrorKind::AddrInUse => {
            anyhow::bail!("port {port} is already in use; choose another with {flag}")
        }
        Err(e) if e.kind() == ErrorKind::AddrNotAvailable => {
            anyhow::bail!(
                "cannot listen on {ip}: this machine has no such address; choose another with --bind"
            )
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {ip}:{port}")),
    }
}

/// What every listener enforces on its connections (from the configuration).
#[derive(Debug, Clone, Copy)]
struct ListenerLimits {
    caps: Caps,
    idle_timeout: Duration,
    request_timeout: Duration,
    http2_keepalive: Duration,
}

impl ListenerLimits {
    fn of(config: &Config) -> ListenerLimits {
        let per_source = if config.tlsoffload && config.max_connections_per_ip != 0 {
            // Every connection comes from the proxy: a per-address cap would cap everyone.
            tracing::info!(
                "--tlsoffload: no cap per source address (max_connections_per_ip), the proxy is the only source"
            );
            0
        } else {
            config.max_connections_per_ip
        };
        ListenerLimits {
            caps: Caps {
                total: config.max_connections,
                per_source,
            },
            idle_timeout: Duration::from_secs(config.http_idle_timeout_secs.max(1)),
            request_timeout: Duration::from_secs(config.http_request_timeout_secs.max(1)),
            http2_keepalive: Duration::from_secs(config.http2_keepalive_secs.max(1)),
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: ListenerLimits,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let failures = Arc::new(HandshakeFailures::default());
    let open = ConnectionCounts::default();
    let refusals = CapRefusals::default();
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Refused before TLS: the excess costs one accept and one close, nothing more.
        let permit = match open.try_acquire(peer.ip(), limits.caps) {
            Ok(permit) => permit,
            Err(refused) => {
                refusals.record(peer, refused);
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (app, shutdown, tls, failures) =
            (app.clone(), shutdown.clone(), tls.clone(), failures.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let Some(tls) = tls else {
                return serve_connection(tcp, peer, app, limits, shutdown).await;
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                Ok(Ok(stream)) => serve_connection(stream, peer, app, limits, shutdown).await,
                Ok(Err(e)) => failures.record(peer, &e.to_string()),
                Err(_) => failures.record(peer, "timed out"),
            }
        });
    }
}

/// Serves HTTP/1.1 or HTTP/2 (with WebSocket upgrades) on one connection, handing handlers the
/// peer address as `ConnectInfo<SocketAddr>`.
async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    limits: ListenerLimits,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    let inner = match make_service.call(peer).await {
        Ok(service) => service,
        Err(never) => match never {},
    };
    let activity = Activity::new();
    let service = Tracked {
        inner,
        activity: activity.clone(),
        request_timeout: limits.request_timeout,
        peer,
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.http2_keepalive)
        .keep_alive_timeout(HTTP2_PING_TIMEOUT);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        () = activity.idle_for_at_least(limits.idle_timeout) => {
            tracing::debug!(%peer, "closing a connection idle for {:?}", limits.idle_timeout);
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, connection.as_mut()).await {
                Ok(result) => result,
                Err(_) => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Connections over a cap are closed at accept. Under a flood that is many a second, so the
/// log says so at most once a minute per listener, with how many were refused meanwhile.
#[derive(Default)]
struct CapRefusals {
    state: Mutex<RefusalLog>,
}

#[derive(Default)]
struct RefusalLog {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl CapRefusals {
    const LOG_EVERY: Duration = Duration::from_secs(60);

    fn record(&self, peer: SocketAddr, refused: CapRefused) {
        let Ok(mut log) = self.state.lock() else {
            return;
        };
        if log
            .last_logged
            .is_some_and(|last| last.elapsed() < Self::LOG_EVERY)
        {
            log.unlogged += 1;
            return;
        }
        let also_refused = std::mem::take(&mut log.unlogged);
        log.last_logged = Some(Instant::now());
        let setting = match refused {
            CapRefused::Total { .. } => "max_connections",
            CapRefused::PerSource { .. } => "max_connections_per_ip",
        };
        tracing::warn!(
            %peer,
            also_refused,
            "connection refused: {refused} ({setting}); closing it (at most one such line a minute)"
        );
    }
}

/// Failed TLS handshakes are routine on a public port (scanners, old clients): each goes to the
/// debug log, and at most one summary a minute to the info log.
struct HandshakeFailures {
    since_report: AtomicU64,
    last_report: Mutex<Instant>,
}

impl Default for HandshakeFailures {
    fn default() -> Self {
        HandshakeFailures {
            since_report: AtomicU64::new(0),
            last_report: Mutex::new(Instant::now()),
        }
    }
}

impl HandshakeFailures {
    fn record(&self, peer: SocketAddr, error: &str) {
        tracing::debug!(%peer, error, "TLS handshake failed");
        let count = self.since_report.fetch_add(1, Ordering::Relaxed) + 1;
        let Ok(mut last) = self.last_report.lock() else {
            return;
        };
        if last.elapsed() >= Duration::from_secs(60) {
            *last = Instant::now();
            self.since_report.store(0, Ordering::Relaxed);
            tracing::info!(
                count,
                "TLS handshakes failed recently (RUST_LOG=tether_server=debug shows each)"
            );
        }
    }
}

/// Housekeeping at start and then daily: deletes expired login sessions and old sharing links,
/// and audit events and
/// session recordings older than the retention period (0 keeps them forever).
async fn prune_daily(
    store: Arc<dyn Store>,
    datapath: std::path::PathBuf,
    retention_days: u32,
    shutdown: CancellationToken,
) {
    let mut every_day = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every_day.tick() => {}
        }
        let now_ms = crate::clock::now_millis();
        match store.prune_sessions(now_ms / 1000).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "deleted expired login sessions"),
            Err(e) => tracing::warn!(error = %e, "could not delete expired login sessions"),
        }
        // Sharing links a month past their end (or whose device is gone) are of no more use.
        match store.prune_shares(now_ms - 30 * 24 * 60 * 60 * 1000).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "deleted old sharing links"),
            Err(e) => tracing::warn!(error = %e, "could not delete old sharing links"),
        }
        if retention_days == 0 {
            continue;
        }
        let before_ms = now_ms - i64::from(retention_days) * 24 * 60 * 60 * 1000;
        match store.prune_events(before_ms).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, retention_days, "deleted old audit events"),
            Err(e) => tracing::warn!(error = %e, "could not delete old audit events"),
        }
        // Recordings are kept as long as the audit records that name them.
        match crate::relay::recordings::prune(&datapath, before_ms).await {
            0 => {}
            count => tracing::info!(count, retention_days, "deleted old session recordings"),
        }
    }
}
