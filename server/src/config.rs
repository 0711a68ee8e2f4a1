//! Server settings: built-in defaults, then `config.toml` in the data folder, then command-line
//! flags (flags win). Option names follow MeshCentral's where it has one, so its users feel at home.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use serde::{Deserialize, Serialize};

/// Command line of `tether-server`.
#[derive(Debug, Clone, Parser, Default)]
#[command(
    name = "tether-server",
    version,
    about = "Tether remote management server"
)]
pub struct Cli {
    /// Data folder: certificates, database, config.toml.
    #[arg(long, value_name = "DIR", default_value = "./tether-data")]
    pub datapath: PathBuf,
    /// HTTPS port for browsers, agents and the relay (0 picks a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// Plain-HTTP port that redirects to HTTPS (0 turns it off).
    #[arg(long)]
    pub redirport: Option<u16>,
    /// Intel AMT MPS port.
    #[arg(long)]
    pub mpsport: Option<u16>,
    /// UDP port answering STUN Binding requests for direct sessions (default: the HTTPS port's
    /// number; 0 turns it off).
    #[arg(long)]
    pub stunport: Option<u16>,
    /// Address to listen on.
    #[arg(long)]
    pub bind: Option<IpAddr>,
    /// Server name written into generated certificates (DNS name or IP address).
    #[arg(long, value_name = "NAME")]
    pub cert: Option<String>,
    /// Generate RSA-2048 instead of RSA-3072 certificates on first run (faster, weaker).
    #[arg(long)]
    pub fastcert: bool,
    /// Serve plain HTTP on --port, for a TLS-terminating reverse proxy in front.
    #[arg(long)]
    pub tlsoffload: bool,
    /// Create an account (the first one becomes the site administrator) and exit. Its password
    /// comes from --pass or TETHER_PASSWORD, or is asked for on the terminal.
    #[arg(long, value_name = "NAME")]
    pub createaccount: Option<String>,
    /// Set a new password for an existing account and exit (password as for --createaccount).
    #[arg(long, value_name = "NAME", conflicts_with = "createaccount")]
    pub resetaccount: Option<String>,
    /// Password for --createaccount / --resetaccount, or `-` to read one line from standard input
    /// (not echoed on a terminal). Written here it is visible to other local users (`ps`) and
    /// kept in shell history: prefer `-` or the TETHER_PASSWORD environment variable.
    #[arg(
        long,
        value_name = "PW|-",
        env = "TETHER_PASSWORD",
        hide_env_values = true
    )]
    pub pass: Option<String>,
    /// E-mail address for --createaccount.
    #[arg(long, value_name = "E")]
    pub email: Option<String>,
    /// Most connections a listener keeps open at once, 0 = no cap (config: `max_connections`).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<u32>,
    /// Most connections one source address (IPv4 address, IPv6 /64) keeps open at once on a
    /// listener, 0 = no cap (config: `max_connections_per_ip`).
    #[arg(long, value_name = "N")]
    pub max_connections_per_ip: Option<u32>,
    /// Where records live: unset, `<datapath>/tether.redb`; `postgres://…`, a PostgreSQL database
    /// several servers may share (config: `db`).
    #[arg(long, value_name = "URL")]
    pub db: Option<DatabaseUrl>,
    /// A file holding 64 hex characters that seal the certificates and keys servers sharing one
    /// PostgreSQL database keep in it; the same file on every server (config:
    /// `identity_key_file`).
    #[arg(long, value_name = "FILE")]
    pub identity_key_file: Option<PathBuf>,
    /// NATS server(s) linking several servers that share one PostgreSQL database, e.g.
    /// `nats://127.0.0.1:4222` (config: `nats`).
    #[arg(long, value_name = "URL")]
    pub nats: Option<NatsUrl>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What `tether-server` does instead of serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Copy every record (accounts, groups, devices, rights, events, settings, certificates and
    /// keys kept in the database) from one database into another, then read the copy back and
    /// verify it. Stop the servers first; re-running is safe.
    Migrate {
        /// `redb:PATH` (a `tether.redb` file) or `postgres://…`.
        #[arg(long, value_name = "DB")]
        from: StoreLocation,
        /// `redb:PATH` or `postgres://…`.
        #[arg(long, value_name = "DB")]
        to: StoreLocation,
    },
}

/// Where a store lives, as `migrate` names it.
#[derive(Debug, Clone)]
pub enum StoreLocation {
    Redb(PathBuf),
    Postgres(DatabaseUrl),
}

impl std::str::FromStr for StoreLocation {
    type Err = String;

    fn from_str(text: &str) -> Result<StoreLocation, String> {
        if let Some(path) = text.strip_prefix("redb:") {
            return Ok(StoreLocation::Redb(PathBuf::from(path)));
        }
        text.parse()
            .map(StoreLocation::Postgres)
            .map_err(|_| "a database is redb:PATH or postgres://…".to_owned())
    }
}

/// Everything the running server needs to know. Every field can be set in `config.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    #[serde(skip)]
    pub datapath: PathBuf,
    /// HTTPS port (MeshCentral: `port`).
    pub port: u16,
    /// HTTP→HTTPS redirect port, 0 = off (MeshCentral: `redirPort`).
    pub redirport: u16,
    /// Intel AMT MPS port (MeshCentral: `mpsPort`); 0 = off.
    pub mpsport: u16,
    /// RSA size of the MPS certificate made on first start: 2048 (every AMT 12+) or 3072 (newer
    /// firmware only).
    pub mps_key_bits: u32,
    /// UDP port that answers STUN Binding requests, so agents and viewers learn the address the
    /// server sees them at (their server-reflexive ICE candidate) without any STUN server outside
    /// the deployment. Unset: the HTTPS port's number (UDP and TCP ports are separate), or nothing
    /// if that UDP port is taken; 0: off.
    pub stunport: Option<u16>,
    /// Address to listen on. Unset: every interface, but loopback only with `tlsoffload` (plain
    /// HTTP must be reachable by the proxy alone). See [`Config::bind_address`].
    pub bind: Option<IpAddr>,
    /// A TURN server for direct sessions that cannot connect peer to peer (both ends behind
    /// NATs that map per destination): coturn with `use-auth-secret`, whose shared secret lets
    /// this server mint short-lived credentials per session (`turn.rs`). Unset: no TURN.
    pub turn: Option<TurnConfig>,
    /// Name in generated certificates (MeshCentral: `cert`).
    pub cert: String,
    pub fastcert: bool,
    pub tlsoffload: bool,
    /// Reverse proxies (CIDRs, e.g. `["127.0.0.1/32"]`) whose `X-Forwarded-For` header names the
    /// client. Without them every request behind a proxy seems to come from the proxy.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Development over plain HTTP with no TLS anywhere: the session cookie drops `Secure` and the
    /// `__Host-` prefix that requires it. Never for a server people use.
    pub insecure_cookies: bool,
    /// Let anyone create an account on the login page (MeshCentral: `newAccounts`). Off by default.
    pub new_accounts: bool,
    /// Who must sign in with a second factor: `"off"`, `"admins"` (site administrators) or
    /// `"everyone"`. Someone it covers who has none set up may only set one up until they do.
    pub require_second_factor: SecondFactorPolicy,
    /// Audit events older than this are deleted.
    pub event_retention_days: u32,
    /// Login sessions last this long.
    pub session_hours: u32,
    /// Failed logins allowed per source address (IPv4 /24, IPv6 /64) per window.
    pub login_limit_per_ip: u32,
    /// Failed logins allowed per account per window.
    pub login_limit_per_account: u32,
    /// The rate-limit window, in minutes.
    pub login_limit_window_minutes: u32,
    /// Seconds between the WebSocket pings the server sends each connected agent (keeps NAT and
    /// proxy mappings alive and proves the agent is still there).
    pub agent_ping_interval_secs: u64,
    /// An agent that sends nothing, not even a pong, for this many seconds is dropped and shown
    /// offline (MeshCentral: `agentIdleTimeout`, 150).
    pub agent_idle_timeout_secs: u64,
    /// An agent must complete the authentication handshake within this many seconds.
    pub agent_handshake_timeout_secs: u64,
    /// How long the server silently holds the connection of an agent that proved its key but
    /// cannot be admitted (its device group does not exist) before closing it. Closing at once
    /// would make the agent reconnect at once; MeshCentral holds for the same reason.
    pub agent_hold_secs: u64,
    /// Most connections held at once (all sources), and from one source address: an agent is
    /// held only after it proved its key, so these only bound what a key-holder can pin down.
    pub agent_hold_max: u32,
    pub agent_hold_max_per_ip: u32,
    /// Admissions per device per minute (each writes the store and tells consoles); a device
    /// reconnecting faster is refused until it slows down. 0 = no limit.
    pub agent_admissions_per_minute: u32,
    /// When the server starts with an agent binary whose version enrolled agents do not run, it
    /// updates them in the default waves (1, 10, 50, 100 %), as MeshCentral updates its agents
    /// when it is upgraded. Off by default: an operator starts campaigns (`updates/`).
    pub agent_auto_update: bool,
    /// A relay session's tokens admit for this many seconds; an end that connected waits this
    /// long (at most) for the other.
    pub relay_pair_timeout_secs: u64,
    /// A relay session (terminal, files, desktop) ends after this many seconds; 0 = no limit of
    /// its own. Either way it ends with the login session that opened it (`session_hours`).
    pub relay_max_session_secs: u64,
    /// Relay sessions one user may have open or waiting to pair at once, over all devices.
    pub relay_sessions_per_user: u32,
    /// Relay sessions one device may have open or waiting to pair at once, for all users. Above
    /// the per-user quota, so that one user cannot take a device's every slot.
    pub relay_sessions_per_device: u32,
    /// Most connections a listener keeps open at once; more are closed as they are accepted.
    /// 0 = no cap (the open-file limit is then the only one).
    pub max_connections: u32,
    /// Most connections from one source (IPv4 address, IPv6 /64) per listener, 0 = no cap. Off
    /// behind `tlsoffload` (every connection comes from the proxy). A fleet behind one NAT
    /// address needs this raised.
    pub max_connections_per_ip: u32,
    /// A connection with no request in progress for this long is closed (HTTP/2 clients, and
    /// clients that never send a request; HTTP/1 waits for headers at most 30 s anyway).
    /// Upgraded WebSockets have their own keepalives and are not affected.
    pub http_idle_timeout_secs: u64,
    /// A request must be read and answered (its response head) within this long, so a client
    /// cannot trickle a body forever.
    pub http_request_timeout_secs: u64,
    /// Seconds between HTTP/2 pings; an unanswered ping (20 s) closes the connection.
    pub http2_keepalive_secs: u64,
    /// Where records live: unset, the embedded redb file `<datapath>/tether.redb`;
    /// `postgres://user@host/db` (or `postgres:///db?host=/run/postgresql` over a Unix socket), a
    /// PostgreSQL database that several servers share. Never logged: it may hold a password.
    pub db: Option<DatabaseUrl>,
    /// Most connections this server keeps to PostgreSQL.
    pub db_connections: u32,
    /// With `db`: the file whose key seals the certificates and keys every server sharing the
    /// database presents (`certs/shared.rs`). Required with PostgreSQL.
    pub identity_key_file: Option<PathBuf>,
    /// NATS, linking the servers that share `db` (`cluster.rs`). Unset: this server is alone.
    pub nats: Option<NatsUrl>,
    /// What every subject of this cluster starts with, so several clusters can share one NATS.
    pub cluster_subject_prefix: String,
    /// How the other servers reach this one's HTTPS port to join relay sessions that began here
    /// (`https://host:port`). Unset: this server's bind address (loopback when it listens on
    /// every interface) and port.
    pub cluster_address: Option<String>,
    /// A server not heard from for this long is taken for dead, and its agents for offline.
    pub cluster_timeout_secs: u64,
}

/// `require_second_factor` in `config.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecondFactorPolicy {
    #[default]
    Off,
    Admins,
    Everyone,
}

impl SecondFactorPolicy {
    /// Whether an account with these rights must have a second factor.
    pub fn covers(self, site_admin: bool) -> bool {
        match self {
            SecondFactorPolicy::Off => false,
            SecondFactorPolicy::Admins => site_admin,
            SecondFactorPolicy::Everyone => true,
        }
    }
}

/// `[turn]` in `config.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnConfig {
    /// What browsers are told, e.g. `["turn:turn.example.org:3478?transport=udp",
    /// "turns:turn.example.org:5349?transport=tcp"]`.
    pub urls: Vec<String>,
    /// coturn's `static-auth-secret`.
    pub secret: TurnSecret,
    /// How long a minted credential works, in seconds (long enough for the session to start;
    /// coturn keeps an allocation made with it alive past that).
    #[serde(default = "default_turn_credential_secs")]
    pub credential_secs: u64,
    /// Viewers reach devices through this TURN server only, never straight: a device never
    /// learns a viewer's address (and a viewer that cannot use TURN stays on the relay).
    #[serde(default)]
    pub relay_only: bool,
}

fn default_turn_credential_secs() -> u64 {
    3600
}

/// A database address; it may carry a password, so it never appears in logs or `Debug` output.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(…)")
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<DatabaseUrl, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl(url.to_owned()))
        } else {
            Err("a database address starts with postgres://".to_owned())
        }
    }
}

impl DatabaseUrl {
    /// For connecting, nothing else.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

/// A NATS address; it may carry a user and password, so it never appears in logs or `Debug`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NatsUrl(String);

impl std::fmt::Debug for NatsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NatsUrl(…)")
    }
}

impl std::str::FromStr for NatsUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<NatsUrl, String> {
        if url.starts_with("nats://") || url.starts_with("tls://") {
            Ok(NatsUrl(url.to_owned()))
        } else {
            Err("a NATS address starts with nats:// or tls://".to_owned())
        }
    }
}

impl NatsUrl {
    /// For connecting, nothing else.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

/// The shared secret; it never appears in logs or `Debug` output.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TurnSecret(String);

impl std::fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TurnSecret(…)")
    }
}

impl TurnSecret {
    #[cfg(test)]
    pub(crate) fn new(secret: &str) -> TurnSecret {
        TurnSecret(secret.to_owned())
    }

    /// For minting credentials (`turn.rs`), nothing else.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            datapath: PathBuf::from("./tether-data"),
            port: 443,
            redirport: 80,
            mpsport: 4433,
            mps_key_bits: 2048,
            stunport: None,
            turn: None,
            bind: None,
            cert: "localhost".to_owned(),
            fastcert: false,
            tlsoffload: false,
            trusted_proxies: Vec::new(),
            insecure_cookies: false,
            new_accounts: false,
            require_second_factor: SecondFactorPolicy::Off,
            event_retention_days: 90,
            session_hours: 12,
            login_limit_per_ip: 10,
            login_limit_per_account: 10,
            login_limit_window_minutes: 10,
            agent_ping_interval_secs: 30,
            agent_idle_timeout_secs: 150,
            agent_handshake_timeout_secs: 30,
            agent_hold_secs: 600,
            agent_hold_max: 1_000,
            agent_hold_max_per_ip: 100,
            agent_admissions_per_minute: 10,
            agent_auto_update: false,
            relay_pair_timeout_secs: 60,
            relay_max_session_secs: 0,
            relay_sessions_per_user: 64,
            relay_sessions_per_device: 96,
            max_connections: 20_000,
            max_connections_per_ip: 1_000,
            http_idle_timeout_secs: 120,
            http_request_timeout_secs: 60,
            http2_keepalive_secs: 30,
            db: None,
            db_connections: 16,
            identity_key_file: None,
            nats: None,
            cluster_subject_prefix: "tether".to_owned(),
            cluster_address: None,
            cluster_timeout_secs: 15,
        }
    }
}

pub const CONFIG_FILE: &str = "config.toml";

impl Config {
    /// Reads `config.toml` from the data folder (if present) and lays the flags over it.
    pub fn load(cli: &Cli) -> anyhow::Result<Config> {
        let path = cli.datapath.join(CONFIG_FILE);
        let mut config = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<Config>(&text)
                .with_context(|| format!("reading {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        config.datapath = cli.datapath.clone();
        config.apply_flags(cli);
        if !matches!(config.mps_key_bits, 2048 | 3072) {
            anyhow::bail!(
                "{}: mps_key_bits is 2048 or 3072, not {}",
                path.display(),
                config.mps_key_bits
            );
        }
        Ok(config)
    }

    fn apply_flags(&mut self, cli: &Cli) {
        if let Some(port) = cli.port {
            self.port = port;
        }
        if let Some(port) = cli.redirport {
            self.redirport = port;
        }
        if let Some(port) = cli.mpsport {
            self.mpsport = port;
        }
        if let Some(port) = cli.stunport {
            self.stunport = Some(port);
        }
        if let Some(bind) = cli.bind {
            self.bind = Some(bind);
        }
        if let Some(cert) = &cli.cert {
            self.cert = cert.clone();
        }
        if let Some(max) = cli.max_connections {
            self.max_connections = max;
        }
        if let Some(db) = &cli.db {
            self.db = Some(db.clone());
        }
        if let Some(file) = &cli.identity_key_file {
            self.identity_key_file = Some(file.clone());
        }
        if let Some(nats) = &cli.nats {
            self.nats = Some(nats.clone());
        }
        if let Some(max) = cli.max_connections_per_ip {
            self.max_connections_per_ip = max;
        }
        self.fastcert |= cli.fastcert;
        self.tlsoffload |= cli.tlsoffload;
    }

    /// Where to listen: `bind` when set; else every interface, or loopback behind a TLS-offloading
    /// proxy, so that plain HTTP is never offered to the network by default.
    pub fn bind_address(&self) -> IpAddr {
        match (self.bind, self.tlsoffload) {
            (Some(address), _) => address,
            (None, true) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            (None, false) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }

    /// How peers reach this server (`cluster_address`, else the bind address and port).
    pub fn cluster_address(&self) -> String {
        if let Some(address) = &self.cluster_address {
            return address.trim_end_matches('/').to_owned();
        }
        let host = match self.bind_address() {
            address if address.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            address => address,
        };
        let scheme = if self.tlsoffload { "http" } else { "https" };
        match host {
            IpAddr::V6(v6) => format!("{scheme}://[{v6}]:{}", self.port),
            IpAddr::V4(v4) => format!("{scheme}://{v4}:{}", self.port),
        }
    }

    pub fn data_file(&self, name: &str) -> PathBuf {
        self.datapath.join(name)
    }

    pub fn datapath(&self) -> &Path {
        &self.datapath
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "port = 8443\nredirport = 8080\ncert = \"file.example\"\n",
        )
        .unwrap();
        let cli = Cli::parse_from([
            "tether-server",
            "--datapath",
            dir.path().to_str().unwrap(),
            "--port",
            "9443",
        ]);
        let config = Config::load(&cli).unwrap();
        assert_eq!(config.port, 9443);
        assert_eq!(config.redirport, 8080);
        assert_eq!(config.cert, "file.example");
        assert_eq!(config.mpsport, 4433);
    }

    #[test]
    fn plain_http_listens_on_loopback_unless_told_otherwise() {
        let offload = Config {
            tlsoffload: true,
            ..Config::default()
        };
        assert_eq!(offload.bind_address(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(
            Config::default().bind_address(),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
        let chosen = Config {
            bind: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
            ..offload
        };
        assert_eq!(
            chosen.bind_address(),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
        );
    }

    #[test]
    fn the_mps_key_is_2048_or_3072_bits() {
        let dir = tempfile::tempdir().unwrap();
        let cli = Cli::parse_from(["tether-server", "--datapath", dir.path().to_str().unwrap()]);
        assert_eq!(Config::load(&cli).unwrap().mps_key_bits, 2048);
        std::fs::write(dir.path().join(CONFIG_FILE), "mps_key_bits = 3072\n").unwrap();
        assert_eq!(Config::load(&cli).unwrap().mps_key_bits, 3072);
        std::fs::write(dir.path().join(CONFIG_FILE), "mps_key_bits = 1024\n").unwrap();
        let error = Config::load(&cli).unwrap_err().to_string();
        assert!(error.contains("mps_key_bits is 2048 or 3072"), "{error}");
    }

    #[test]
    fn the_cluster_example_config_loads() {
        let dir = tempfile::tempdir().unwrap();
        let example = include_str!("../../installers/cluster/config.toml");
        std::fs::write(dir.path().join(CONFIG_FILE), example).unwrap();
        let cli = Cli::parse_from(["tether-server", "--datapath", dir.path().to_str().unwrap()]);
        let config = Config::load(&cli).unwrap();
        assert!(config.db.is_some() && config.nats.is_some());
        assert_eq!(config.cluster_address(), "https://10.0.0.11:443");
        assert_eq!(config.max_connections_per_ip, 0);
        assert!(
            !format!("{config:?}").contains("db.example.org"),
            "the database address stays out of Debug output"
        );
    }

    #[test]
    fn the_cluster_address_defaults_to_where_the_server_listens() {
        let config = Config {
            bind: Some("10.1.2.3".parse().unwrap()),
            port: 8443,
            ..Config::default()
        };
        assert_eq!(config.cluster_address(), "https://10.1.2.3:8443");
        let everywhere = Config {
            port: 443,
            ..Config::default()
        };
        assert_eq!(everywhere.cluster_address(), "https://127.0.0.1:443");
    }

    #[test]
    fn trusted_proxies_are_cidrs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "trusted_proxies = [\"127.0.0.1/32\", \"fd00::/8\"]\n",
        )
        .unwrap();
        let cli = Cli::parse_from(["tether-server", "--datapath", dir.path().to_str().unwrap()]);
        let config = Config::load(&cli).unwrap();
        assert_eq!(config.trusted_proxies.len(), 2);
    }

    #[test]
    fn unknown_keys_are_an_error_not_a_silent_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "prot = 1\n").unwrap();
        let cli = Cli::parse_from(["tether-server", "--datapath", dir.path().to_str().unwrap()]);
        let err = Config::load(&cli).unwrap_err();
        assert!(format!("{err:#}").contains("prot"), "{err:#}");
    }
}
