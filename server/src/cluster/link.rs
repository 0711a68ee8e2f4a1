//! The NATS side of a cluster: connects, subscribes to the cluster's subjects, and runs the task
//! that publishes this server's heartbeat, presence, events and signals and applies everyone
//! else's. async-nats reconnects on its own (forever, with backoff); on each reconnection this
//! server asks every server for its full list and publishes its own, since messages sent while
//! the link was down are lost.

use std::time::{Duration, Instant};

use async_nats::{Client, ConnectOptions, Subscriber};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;

use super::Outbound;
use super::presence::Lost;
use super::wire::{
    AgentBody, AgentMessage, ForwardedEvent, ForwardedSignal, HeldDevice, PresenceMessage,
    ServerId, Subjects,
};
use crate::agents::Outgoing;
use crate::events::Forward;
use crate::state::AppState;

/// How often a server says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// Devices per message of a full list (well under NATS's 1 MB default payload limit).
const LIST_CHUNK: usize = 500;
/// How many messages may wait for the link before publishers are told it is congested.
const OUTBOX_CAPACITY: usize = 16_384;
/// How long the first connection may take before the server refuses to start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A server whose digest disagrees is asked for its list at most this often.
const RESYNC_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("cannot subscribe to {subject}: {reason}")]
    Subscribe { subject: String, reason: String },
}

/// Links this server to the cluster on NATS at `url`; the task runs until the server stops.
pub(crate) async fn start(state: &AppState, url: &str, prefix: &str) -> Result<(), LinkError> {
    let (link_events, link_events_rx) = mpsc::unbounded_channel();
    let options = ConnectOptions::new()
        .name(format!("tether-server {}", state.cluster.me()))
        .connection_timeout(CONNECT_TIMEOUT)
        .max_reconnects(None)
        .event_callback(move |event| {
            let link_events = link_events.clone();
            async move {
                let _ = link_events.send(event);
            }
        });
    let client = tokio::time::timeout(CONNECT_TIMEOUT, options.connect(url))
        .await
        .map_err(|_| LinkError::Connect {
            url: redact(url),
            reason: "timed out".into(),
        })?
        .map_err(|e| LinkError::Connect {
            url: redact(url),
            reason: e.to_string(),
        })?;
    let subjects = Subjects::new(prefix);
    let me = state.cluster.me();
    let subscribe = |subject: String| {
        let client = client.clone();
        async move {
            client
                .subscribe(subject.clone())
                .await
                .map_err(|e| LinkError::Subscribe {
                    subject,
                    reason: e.to_string(),
                })
        }
    };
    let inbox = Inbox {
        presence: subscribe(subjects.presence()).await?,
        events: subscribe(subjects.events()).await?,
        signals: subscribe(subjects.signals()).await?,
        agent: subscribe(subjects.agent(&me)).await?,
    };
    let (outbox, outbox_rx) = mpsc::channel(OUTBOX_CAPACITY);
    let (forward, forward_rx) = mpsc::channel(OUTBOX_CAPACITY);
    let _ = state.cluster.outbox.set(outbox);
    state.events.forward_to(forward);
    state.relay.set_home(me.as_str());
    state.cluster.lock().connected(Instant::now());
    tracing::info!(server = %me, address = %state.config.cluster_address(), "cluster: linked to NATS");
    let link = Link {
        state: state.clone(),
        client,
        subjects,
        me,
        address: state.config.cluster_address(),
        epoch: 0,
        last_resync: std::collections::HashMap::new(),
    };
    state
        .tasks
        .clone()
        .spawn(link.run(inbox, outbox_rx, forward_rx, link_events_rx));
    Ok(())
}

struct Inbox {
    presence: Subscriber,
    events: Subscriber,
    signals: Subscriber,
    agent: Subscriber,
}

struct Link {
    state: AppState,
    client: Client,
    subjects: Subjects,
    me: ServerId,
    address: String,
    /// Numbers this server's full lists, so a late chunk of an older one is ignored.
    epoch: u64,
    last_resync: std::collections::HashMap<ServerId, Instant>,
}

impl Link {
    async fn run(
        mut self,
        mut inbox: Inbox,
        mut outbox: mpsc::Receiver<Outbound>,
        mut forward: mpsc::Receiver<Forward>,
        mut link_events: mpsc::UnboundedReceiver<async_nats::Event>,
    ) {
        self.ask_for_lists(None).await;
        self.publish_list().await;
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.state.stopping.cancelled() => break,
                _ = heartbeat.tick() => self.heartbeat().await,
                Some(message) = inbox.presence.next() => self.on_presence(&message.payload).await,
                Some(message) = inbox.events.next() => self.on_event(&message.payload),
                Some(message) = inbox.signals.next() => self.on_signal(&message.payload),
                Some(message) = inbox.agent.next() => self.on_agent(&message.payload),
                Some(message) = outbox.recv() => self.on_outbound(message).await,
                Some(message) = forward.recv() => self.on_forward(message).await,
                Some(event) = link_events.recv() => self.on_link_event(event).await,
            }
        }
        // The agents this server held come back through the others: say so at once rather
        // than after the timeout.
        let gone = PresenceMessage::Gone {
            server: self.me.clone(),
        };
        self.publish(self.subjects.presence(), &gone).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.flush()).await;
    }

    async fn heartbeat(&mut self) {
        let (count, digest) = self.state.cluster.lock().digest_of(&self.me);
        let beat = PresenceMessage::Heartbeat {
            server: self.me.clone(),
            address: self.address.clone(),
            count,
            digest,
            listeners: self.state.events.local_listeners(),
        };
        self.publish(self.subjects.presence(), &beat).await;
        let lost = self.state.cluster.lock().expire(Instant::now());
        self.refresh_listeners();
        if !lost.is_empty() {
            tracing::warn!(
                devices = lost.len(),
                "cluster: a server went silent; its agents are offline until they reconnect"
            );
        }
        self.announce_lost(lost).await;
    }

    async fn on_presence(&mut self, payload: &[u8]) {
        let message: PresenceMessage = match serde_json::from_slice(payload) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!("cluster: unreadable presence message ignored: {e}");
                return;
            }
        };
        let cluster = &self.state.cluster;
        match message {
            PresenceMessage::Heartbeat {
                server,
                address,
                count,
                digest,
                listeners,
            } => {
                let differs = cluster.lock().heartbeat(
                    &server,
                    &address,
                    (count, digest),
                    listeners,
                    Instant::now(),
                );
                self.refresh_listeners();
                let due = self
                    .last_resync
                    .get(&server)
                    .is_none_or(|t| t.elapsed() >= RESYNC_EVERY);
                if differs && due {
                    tracing::debug!(%server, "cluster: presence digest differs; asking for its list");
                    self.last_resync.insert(server.clone(), Instant::now());
                    self.ask_for_lists(Some(server)).await;
                }
            }
            PresenceMessage::Online {
                server,
                device,
                group,
                since_ms,
            } if server != self.me => {
                let won = cluster.lock().online(&server, &device, &group, since_ms);
                if won {
                    // One device, one connection, cluster-wide: an older one here goes.
                    self.state.agents.replace_local(&device);
                }
            }
            PresenceMessage::Offline { server, device } if server != self.me => {
                cluster.lock().offline(&server, &device);
            }
            PresenceMessage::SyncRequest { to, from }
                if from != self.me && to.as_ref().is_none_or(|to| *to == self.me) =>
            {
                // A newcomer also needs our address now, not at the next heartbeat.
                self.heartbeat().await;
                self.publish_list().await;
            }
            PresenceMessage::Holdings {
                server,
                epoch,
                devices,
                last,
            } if server != self.me => {
                let lost = cluster.lock().holdings(&server, epoch, &devices, last);
                for held in &devices {
                    if cluster.lock().holder(&held.device) == Some(&server) {
                        self.state.agents.replace_local(&held.device);
                    }
                }
                self.announce_lost(lost).await;
            }
            PresenceMessage::Gone { server } if server != self.me => {
                let lost = cluster.lock().gone(&server);
                self.refresh_listeners();
                tracing::info!(%server, devices = lost.len(), "cluster: a server stopped");
                self.announce_lost(lost).await;
            }
            PresenceMessage::Disconnect { device } => {
                self.state.agents.disconnect_local(&device);
            }
            PresenceMessage::DisconnectGroup { group } => {
                self.state.agents.disconnect_group_local(&group);
            }
            // Our own messages, echoed back by NATS.
            _ => {}
        }
    }

    /// Tells the event bus who is at a console on the other servers now.
    fn refresh_listeners(&self) {
        let elsewhere = self.state.cluster.lock().listeners_elsewhere();
        self.state.events.set_listening_elsewhere(elsewhere);
    }

    fn on_event(&self, payload: &[u8]) {
        match serde_json::from_slice::<ForwardedEvent>(payload) {
            Ok(forwarded) if forwarded.origin != self.me => {
                self.state
                    .events
                    .publish_local(forwarded.event, forwarded.audience);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("cluster: unreadable event ignored: {e}"),
        }
    }

    fn on_signal(&self, payload: &[u8]) {
        match serde_json::from_slice::<ForwardedSignal>(payload) {
            Ok(forwarded) if forwarded.origin != self.me => {
                self.state.events.signal_local(forwarded.signal);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("cluster: unreadable signal ignored: {e}"),
        }
    }

    fn on_agent(&self, payload: &[u8]) {
        let message: AgentMessage = match serde_json::from_slice(payload) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!("cluster: unreadable agent message ignored: {e}");
                return;
            }
        };
        let outgoing = match message.body {
            AgentBody::Text(text) => Outgoing::Text(text),
            AgentBody::Binary(bytes) => Outgoing::Binary(bytes),
        };
        if !self.state.agents.send_local(&message.device, outgoing) {
            tracing::info!(device = %message.device, "cluster: a message for an agent that is no longer here was dropped");
        }
    }

    async fn on_outbound(&self, message: Outbound) {
        match message {
            Outbound::Presence(message) => self.publish(self.subjects.presence(), &message).await,
            Outbound::Agent(server, message) => {
                self.publish(self.subjects.agent(&server), &message).await;
            }
        }
    }

    async fn on_forward(&self, message: Forward) {
        match message {
            Forward::Event(published) => {
                let forwarded = ForwardedEvent {
                    origin: self.me.clone(),
                    event: published.event.clone(),
                    audience: published.audience.clone(),
                };
                self.publish(self.subjects.events(), &forwarded).await;
            }
            Forward::Signal(signal) => {
                let forwarded = ForwardedSignal {
                    origin: self.me.clone(),
                    signal,
                };
                self.publish(self.subjects.signals(), &forwarded).await;
            }
        }
    }

    async fn on_link_event(&mut self, event: async_nats::Event) {
        match event {
            async_nats::Event::Connected => {
                tracing::info!("cluster: NATS link back; exchanging presence");
                self.state.cluster.lock().connected(Instant::now());
                self.ask_for_lists(None).await;
                self.publish_list().await;
            }
            async_nats::Event::Disconnected => {
                tracing::warn!("cluster: NATS link lost; reconnecting");
                self.state.cluster.lock().disconnected();
            }
            other => tracing::info!("cluster: NATS: {other}"),
        }
    }

    async fn ask_for_lists(&self, to: Option<ServerId>) {
        let request = PresenceMessage::SyncRequest {
            from: self.me.clone(),
            to,
        };
        self.publish(self.subjects.presence(), &request).await;
    }

    /// Publishes everything this server holds, in chunks.
    async fn publish_list(&mut self) {
        self.epoch += 1;
        let own: Vec<HeldDevice> = self.state.cluster.lock().own();
        let mut chunks = own.chunks(LIST_CHUNK).peekable();
        if chunks.peek().is_none() {
            self.publish_chunk(Vec::new(), true).await;
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            self.publish_chunk(chunk.to_vec(), last).await;
        }
    }

    async fn publish_chunk(&self, devices: Vec<HeldDevice>, last: bool) {
        let message = PresenceMessage::Holdings {
            server: self.me.clone(),
            epoch: self.epoch,
            devices,
            last,
        };
        self.publish(self.subjects.presence(), &message).await;
    }

    /// Devices that went offline with their server: this server's consoles are told (each
    /// server tells its own, so the event is not forwarded).
    async fn announce_lost(&self, lost: Vec<Lost>) {
        for lost in lost {
            if self.state.agents.is_local(&lost.device) {
                continue;
            }
            crate::agents::announce_lost(&self.state, &lost.device, &lost.group).await;
        }
    }

    async fn publish(&self, subject: String, message: &impl Serialize) {
        let payload = match serde_json::to_vec(message) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::error!("cluster: cannot encode a message: {e}");
                return;
            }
        };
        if let Err(e) = self.client.publish(subject, payload.into()).await {
            tracing::warn!("cluster: publishing failed: {e}");
        }
    }
}

/// The NATS address without any user or password it may carry, for messages.
fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((scheme_and_credentials, host)) => {
            let scheme = scheme_and_credentials
                .split_once("://")
                .map_or("", |(scheme, _)| scheme);
            format!("{scheme}://…@{host}")
        }
        None => url.to_owned(),
    }
}
