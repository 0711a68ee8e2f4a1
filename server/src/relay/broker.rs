//! `RelayBroker`: mints session tokens, admits each end once, and introduces the two ends of a
//! session to each other. One per server, in `AppState`.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::clock::now_millis;

use axum::extract::ws::WebSocket;
use tether_common::ids::{DeviceId, UserId};
use tether_common::relay::{RelayClaims, RelaySide, SessionKind};
use tether_common::rights::Rights;
use tokio::sync::{OnceCell, oneshot};

use super::chat_opens::ChatOpens;
use super::invitations::Invitations;
use super::limits::{OpenSessions, QuotaExceeded, RelayLimits};
use super::live::LiveSessions;
use super::pending::{ClaimError, Owner, PendingTable, TableFull};
use super::token::{TokenError, TokenKey, new_session_id};
use crate::config::Config;
use crate::store::{Store, StoreError};

/// Sessions waiting to be paired, server-wide. Each costs a few hundred bytes and lives at most
/// the pairing timeout; the per-user quota keeps one user far below this.
pub(crate) const MAX_PENDING: usize = 4096;

/// What stands for the device in a chat between users (`RelayClaims::device`): the invitee, so
/// that the per-device quota counts chats with one user.
pub(crate) fn user_chat_device(invitee: &UserId) -> DeviceId {
    DeviceId::from(format!("user:{invitee}").as_str())
}

/// One connected end of a session.
pub struct RelayEnd {
    pub socket: WebSocket,
    pub side: RelaySide,
    pub addr: SocketAddr,
    /// The console end: the store key of the login session whose cookie it came with.
    pub login: Option<String>,
}

/// A freshly minted session: one token per side.
pub struct MintedSession {
    pub session: String,
    pub console_token: String,
    pub agent_token: String,
    pub expires_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Busy(#[from] TableFull),
    #[error(transparent)]
    Quota(#[from] QuotaExceeded),
}

/// Why a relay connection is refused before the WebSocket opens.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    BadToken(#[from] TokenError),
    #[error("this relay token has expired")]
    Expired,
    #[error(transparent)]
    Claim(#[from] ClaimError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an arriving end finds.
pub enum Meeting {
    /// The other end was waiting and now has this one: its task runs the session.
    HandedOver,
    /// The other end was waiting but left just now; this end is given back.
    PeerGone(RelayEnd),
    /// The session expired or was cancelled.
    Gone(RelayEnd),
    /// First to arrive: wait on `peer` until `deadline`.
    Wait {
        end: RelayEnd,
        peer: oneshot::Receiver<RelayEnd>,
        deadline: Instant,
    },
}

pub struct RelayBroker {
    key: OnceCell<TokenKey>,
    pending: Mutex<PendingTable<oneshot::Sender<RelayEnd>>>,
    live: LiveSessions,
    chat_opens: ChatOpens,
    invitations: Invitations,
    pair_timeout: Duration,
    limits: RelayLimits,
    /// This server's id when it is one of several (`cluster.rs`): written into every token.
    home: std::sync::OnceLock<String>,
}

impl RelayBroker {
    /// `pair_timeout`: how long a token admits, and how long a lone end waits for its peer.
    /// Default quotas and no maximum length; the server uses [`from_config`](Self::from_config).
    pub fn new(pair_timeout: Duration) -> RelayBroker {
        RelayBroker::with_limits(pair_timeout, RelayLimits::default())
    }

    pub fn from_config(config: &Config) -> RelayBroker {
        let pair_timeout = Duration::from_secs(config.relay_pair_timeout_secs);
        RelayBroker::with_limits(pair_timeout, RelayLimits::from_config(config))
    }

    fn with_limits(pair_timeout: Duration, limits: RelayLimits) -> RelayBroker {
        RelayBroker {
            key: OnceCell::new(),
            pending: Mutex::new(PendingTable::new(MAX_PENDING)),
            live: LiveSessions::default(),
            chat_opens: ChatOpens::default(),
            invitations: Invitations::default(),
            pair_timeout,
            limits,
            home: std::sync::OnceLock::new(),
        }
    }

    /// Names this server in every token minted from now on (set once, when the server joins a
    /// cluster), so that an end reaching another server is passed on here.
    pub(crate) fn set_home(&self, server: &str) {
        let _ = self.home.set(server.to_owned());
    }

    pub fn pair_timeout(&self) -> Duration {
        self.pair_timeout
    }

    pub fn limits(&self) -> &RelayLimits {
        &self.limits
    }

    /// Chats whose console waits to hear whether the window opened on the device.
    pub fn chat_opens(&self) -> &ChatOpens {
        &self.chat_opens
    }

    /// Chats between two users waiting for the invitee.
    pub fn invitations(&self) -> &Invitations {
        &self.invitations
    }

    /// The sessions being relayed now.
    pub fn live(&self) -> &LiveSessions {
        &self.live
    }

    /// Mints a session for `user` on `device`, holding `rights` there; `share` when a guest opens
    /// it with that sharing link (`user` is then the link's creator, whose quota it counts on).
    pub async fn mint(
        &self,
        store: &dyn Store,
        device: &DeviceId,
        user: &UserId,
        kind: SessionKind,
        rights: Rights,
        share: Option<String>,
    ) -> Result<MintedSession, MintError> {
        let claims = |session: String, expires_ms| RelayClaims {
            session,
            side: RelaySide::Console,
            device: device.clone(),
            user: user.clone(),
            kind,
            rights,
            expires_ms,
            share: share.clone(),
            peer: None,
            home: None,
        };
        self.mint_with(store, claims).await
    }

    /// Mints a chat between `inviter` (the console end) and `invitee` (the other end, who must
    /// come with their own login). Counted on the inviter's quota, and per invitee as a device.
    pub async fn mint_user_chat(
        &self,
        store: &dyn Store,
        inviter: &UserId,
        invitee: &UserId,
    ) -> Result<MintedSession, MintError> {
        let device = user_chat_device(invitee);
        let claims = |session: String, expires_ms| RelayClaims {
            session,
            side: RelaySide::Console,
            device: device.clone(),
            user: inviter.clone(),
            kind: SessionKind::Chat,
            rights: Rights::CHAT,
            expires_ms,
            share: None,
            peer: Some(invitee.clone()),
            home: None,
        };
        self.mint_with(store, claims).await
    }

    /// Mints the session `claims` describes (given its id and expiry), under the quotas.
    async fn mint_with(
        &self,
        store: &dyn Store,
        claims: impl FnOnce(String, i64) -> RelayClaims,
    ) -> Result<MintedSession, MintError> {
        let key = self.key(store).await?;
        let session = new_session_id();
        let now = Instant::now();
        let expires_ms = now_millis() + self.pair_timeout.as_millis() as i64;
        let mut claims = claims(session.clone(), expires_ms);
        claims.home = self.home.get().cloned();
        let (user, device) = (&claims.user, &claims.device);
        let owner = Owner {
            user: user.clone(),
            device: device.clone(),
        };
        {
            let mut table = self.table();
            table.sweep(now);
            // Counted and inserted under the table's lock, so parallel mints cannot overshoot.
            let waiting = table.waiting_for(&owner);
            let live = self.live.open_for(&owner);
            let open = OpenSessions {
                of_user: waiting.of_user + live.of_user,
                on_device: waiting.on_device + live.on_device,
            };
            self.limits.admit(open, user, device)?;
            table.insert(session.clone(), owner, now + self.pair_timeout, now)?;
        }
        Ok(MintedSession {
            console_token: key.sign(&claims),
            agent_token: key.sign(&claims.for_side(RelaySide::Agent)),
            session,
            expires_ms,
        })
    }

    /// Forgets a minted session (e.g. the agent could not be told about it).
    pub fn cancel(&self, session: &str) {
        self.table().remove(session);
    }

    /// The claims of a genuine, unexpired token. Does not use it up: see [`claim`](Self::claim).
    pub async fn check(&self, store: &dyn Store, token: &str) -> Result<RelayClaims, Refusal> {
        let claims = self.key(store).await?.verify(token)?;
        if claims.is_expired(now_millis()) {
            return Err(Refusal::Expired);
        }
        Ok(claims)
    }

    /// Uses up the token's side of its session.
    pub fn claim(&self, claims: &RelayClaims) -> Result<(), Refusal> {
        Ok(self
            .table()
            .claim(&claims.session, claims.side, Instant::now())?)
    }

    /// Introduces a connected end to its session: hands it to a waiting peer, or leaves it to wait.
    pub fn meet(&self, session: &str, end: RelayEnd) -> Meeting {
        let mut table = self.table();
        if let Some(waiting) = table.take_waiting(session) {
            drop(table);
            return match waiting.send(end) {
                Ok(()) => Meeting::HandedOver,
                Err(end) => Meeting::PeerGone(end),
            };
        }
        let (sender, peer) = oneshot::channel();
        match table.wait(session, sender, Instant::now()) {
            Ok(deadline) => Meeting::Wait {
                end,
                peer,
                deadline,
            },
            Err(_) => Meeting::Gone(end),
        }
    }

    /// A waiting end leaves (timed out or closed): nobody can hand it a peer any more.
    pub fn stop_waiting(&self, session: &str) {
        drop(self.table().take_waiting(session));
    }

    async fn key(&self, store: &dyn Store) -> Result<&TokenKey, StoreError> {
        self.key
            .get_or_try_init(|| TokenKey::load_or_create(store))
            .await
    }

    fn table(&self) -> std::sync::MutexGuard<'_, PendingTable<oneshot::Sender<RelayEnd>>> {
        // Every update is a single insert/remove/flag: a panic elsewhere cannot leave it torn.
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redb::RedbStore;

    async fn broker_and_store() -> (RelayBroker, RedbStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("t.redb")).unwrap();
        (RelayBroker::new(Duration::from_secs(60)), store, dir)
    }

    #[tokio::test]
    async fn minted_tokens_admit_each_side_once() {
        let (broker, store, _dir) = broker_and_store().await;
        let minted = broker
            .mint(
                &store,
                &"d".into(),
                &"alice".into(),
                SessionKind::Files,
                Rights::FILES,
                None,
            )
            .await
            .unwrap();
        let console = broker.check(&store, &minted.console_token).await.unwrap();
        let agent = broker.check(&store, &minted.agent_token).await.unwrap();
        assert_eq!(
            (console.side, agent.side),
            (RelaySide::Console, RelaySide::Agent)
        );
        assert_eq!(console.session, minted.session);
        assert_eq!(console.kind, SessionKind::Files);
        broker.claim(&console).unwrap();
        broker.claim(&agent).unwrap();
        assert!(matches!(
            broker.claim(&console),
            Err(Refusal::Claim(ClaimError::AlreadyUsed))
        ));
    }

    #[tokio::test]
    async fn the_key_survives_a_restart_and_cancel_forgets() {
        let (broker, store, _dir) = broker_and_store().await;
        let minted = broker
            .mint(
                &store,
                &"d".into(),
                &"a".into(),
                SessionKind::Chat,
                Rights::CHAT,
                None,
            )
            .await
            .unwrap();
        // A new broker on the same store reads the same key, so the token still verifies.
        let after_restart = RelayBroker::new(Duration::from_secs(60));
        let claims = after_restart
            .check(&store, &minted.agent_token)
            .await
            .unwrap();
        broker.cancel(&minted.session);
        assert!(matches!(
            broker.claim(&claims),
            Err(Refusal::Claim(ClaimError::Unknown))
        ));
    }

    #[tokio::test]
    async fn an_expired_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("t.redb")).unwrap();
        let broker = RelayBroker::new(Duration::ZERO);
        let minted = broker
            .mint(
                &store,
                &"d".into(),
                &"a".into(),
                SessionKind::Terminal,
                Rights::FULL,
                None,
            )
            .await
            .unwrap();
        assert!(matches!(
            broker.check(&store, &minted.console_token).await,
            Err(Refusal::Expired)
        ));
    }

    #[tokio::test]
    async fn a_user_over_the_quota_is_refused_while_others_go_on() {
        let (_, store, _dir) = broker_and_store().await;
        let limits = RelayLimits {
            per_user: 2,
            per_device: 3,
            max_session: None,
        };
        let broker = RelayBroker::with_limits(Duration::from_secs(60), limits);
        let mint = |user: &'static str, device: &'static str| {
            let (broker, store) = (&broker, &store);
            async move {
                broker
                    .mint(
                        store,
                        &device.into(),
                        &user.into(),
                        SessionKind::Chat,
                        Rights::CHAT,
                        None,
                    )
                    .await
            }
        };
        mint("alice", "d1").await.unwrap();
        let second = mint("alice", "d1").await.unwrap();
        assert!(matches!(
            mint("alice", "d2").await,
            Err(MintError::Quota(QuotaExceeded::User { .. }))
        ));
        mint("bob", "d1").await.unwrap();
        assert!(matches!(
            mint("bob", "d1").await,
            Err(MintError::Quota(QuotaExceeded::Device { .. }))
        ));
        // A cancelled session frees its slot.
        broker.cancel(&second.session);
        mint("alice", "d2").await.unwrap();
    }
}
