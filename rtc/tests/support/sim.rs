//! A simulated network between two [`PeerCore`]s on a virtual clock: each direction is a link
//! with a rate cap and a drop-tail queue (what `tc tbf` does), a propagation delay and random
//! loss. Nothing sleeps; time jumps to the next datagram or timer, so a minute of a throttled
//! path runs in about a second and every run is the same (seeded loss).

// Each test file uses its own part of the kit.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tether_rtc::{CoreOutput, LocalCandidate, PeerCore, PeerEvent, VideoTrack};

/// One direction of the path.
#[derive(Debug, Clone, Copy)]
pub struct LinkShape {
    /// Bits per second the link serialises; `None` for no cap.
    pub rate_bps: Option<u64>,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Share of datagrams lost at random, 0 to 1.
    pub loss: f64,
    /// Bytes the queue in front of the cap holds before it drops (tbf's `limit`).
    pub queue_bytes: usize,
}

impl LinkShape {
    pub const fn new(rate_bps: Option<u64>, delay: Duration, loss: f64) -> LinkShape {
        LinkShape {
            rate_bps,
            delay,
            loss,
            queue_bytes: 64 * 1024,
        }
    }
}

struct Datagram {
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
    arrives: Instant,
}

/// One direction: datagrams leave the queue at the link's rate and arrive `delay` later.
struct Link {
    shape: LinkShape,
    /// When the last datagram taken leaves the queue (the link is busy until then).
    busy_until: Instant,
    /// Departure times of the datagrams still queued, with their sizes (for the drop-tail).
    queued: VecDeque<(Instant, usize)>,
    in_flight: VecDeque<Datagram>,
    random: u64,
    pub dropped: u64,
    /// Bytes offered to the link, UDP/IP headers included (dropped ones too).
    pub offered: u64,
}

impl Link {
    fn new(shape: LinkShape, now: Instant, seed: u64) -> Link {
        Link {
            shape,
            busy_until: now,
            queued: VecDeque::new(),
            in_flight: VecDeque::new(),
            random: seed | 1,
            dropped: 0,
            offered: 0,
        }
    }

    /// A uniform number in [0, 1) (xorshift64*: reproducible and enough for loss).
    fn uniform(&mut self) -> f64 {
        self.random ^= self.random >> 12;
        self.random ^= self.random << 25;
        self.random ^= self.random >> 27;
        (self.random.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        self.offered += bytes.len() as u64 + 28;
        while self
            .queued
            .front()
            .is_some_and(|(leaves, _)| *leaves <= now)
        {
            self.queued.pop_front();
        }
        if self.shape.loss > 0.0 && self.uniform() < self.shape.loss {
            self.dropped += 1;
            return;
        }
        let leaves = match self.shape.rate_bps {
            Some(rate) => {
                let held: usize = self.queued.iter().map(|(_, size)| size).sum();
                if held + bytes.len() > self.shape.queue_bytes {
                    self.dropped += 1;
                    return;
                }
                // Bits on the wire: the datagram plus UDP/IP headers.
                let bits = (bytes.len() as u64 + 28) * 8;
                let serialise = Duration::from_nanos(bits * 1_000_000_000 / rate);
                let leaves = self.busy_until.max(now) + serialise;
                self.busy_until = leaves;
                self.queued.push_back((leaves, bytes.len()));
                leaves
            }
            None => now,
        };
        let arrives = leaves + self.shape.delay;
        // Arrival order is departure order: the delay is the same for all.
        self.in_flight.push_back(Datagram {
            from,
            to,
            bytes,
            arrives,
        });
    }

    fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.front().map(|d| d.arrives)
    }

    fn take_arrived(&mut self, now: Instant) -> Option<Datagram> {
        if self.in_flight.front()?.arrives <= now {
            self.in_flight.pop_front()
        } else {
            None
        }
    }
}

/// One end of the path.
pub struct End {
    pub core: PeerCore,
    pub video: VideoTrack,
    address: SocketAddr,
    wake: Instant,
    /// Events not yet read by the test.
    pub events: VecDeque<PeerEvent>,
    /// Why the path ended, once it did.
    pub ended: Option<String>,
}

impl End {
    fn new(core: PeerCore, video: VideoTrack, address: SocketAddr, now: Instant) -> End {
        End {
            core,
            video,
            address,
            wake: now,
            events: VecDeque::new(),
            ended: None,
        }
    }

    /// Lets the core act and puts what it sends on `link`.
    fn drain(&mut self, now: Instant, link: &mut Link) {
        if self.ended.is_some() {
            return;
        }
        self.core.handle_media_commands(now);
        loop {
            match self.core.poll() {
                Ok(CoreOutput::Timeout(at)) => {
                    self.wake = at.max(now);
                    return;
                }
                Ok(CoreOutput::Transmit {
                    source,
                    destination,
                    contents,
                }) => link.send(now, source, destination, contents),
                Ok(CoreOutput::Event(event)) => self.events.push_back(event),
                Err(reason) => {
                    self.ended = Some(reason);
                    return;
                }
            }
        }
    }

    fn end_if(&mut self, result: Result<(), String>) {
        if let Err(reason) = result {
            self.ended.get_or_insert(reason);
        }
    }
}

/// Two peers, the viewer (offerer) and the agent (answerer), and the links between them.
pub struct Sim {
    pub start: Instant,
    pub now: Instant,
    pub viewer: End,
    pub agent: End,
    to_agent: Link,
    to_viewer: Link,
}

impl Sim {
    /// Negotiates (the viewer offers a data channel, and a receive-only video m-line when
    /// `video`) over links shaped `to_agent` and `to_viewer`.
    pub fn new(video: bool, to_agent: LinkShape, to_viewer: LinkShape) -> Sim {
        let start = Instant::now();
        let viewer_address: SocketAddr = "10.0.0.1:40000".parse().expect("address");
        let agent_address: SocketAddr = "10.0.0.2:40000".parse().expect("address");
        let (viewer, offer, viewer_video) =
            PeerCore::offer(start, &[LocalCandidate::Host(viewer_address)], video).expect("offer");
        let (agent, answer, agent_video) =
            PeerCore::answer(start, &offer, &[LocalCandidate::Host(agent_address)])
                .expect("answer");
        let mut viewer = End::new(viewer, viewer_video, viewer_address, start);
        viewer.core.accept_answer(&answer).expect("accept answer");
        Sim {
            start,
            now: start,
            viewer,
            agent: End::new(agent, agent_video, agent_address, start),
            to_agent: Link::new(to_agent, start, 0x9e37_79b9_7f4a_7c15),
            to_viewer: Link::new(to_viewer, start, 0xd1b5_4a32_d192_ed03),
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Changes the shape of both directions from now on (datagrams already queued keep theirs).
    pub fn reshape(&mut self, to_agent: LinkShape, to_viewer: LinkShape) {
        self.to_agent.shape = to_agent;
        self.to_viewer.shape = to_viewer;
    }

    /// Datagrams the links dropped so far (queue full or random loss), towards the agent and
    /// towards the viewer.
    pub fn dropped(&self) -> (u64, u64) {
        (self.to_agent.dropped, self.to_viewer.dropped)
    }

    /// Bytes the ends sent so far (UDP/IP headers included), towards the agent and towards the
    /// viewer.
    pub fn offered(&self) -> (u64, u64) {
        (self.to_agent.offered, self.to_viewer.offered)
    }

    /// Lets both ends act on what they have been given, then moves time to the next event no
    /// later than `limit`, and delivers what is due.
    pub fn step(&mut self, limit: Instant) {
        self.viewer.drain(self.now, &mut self.to_agent);
        self.agent.drain(self.now, &mut self.to_viewer);
        let next = [
            Some(self.viewer.wake),
            Some(self.agent.wake),
            self.to_agent.next_arrival(),
            self.to_viewer.next_arrival(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(limit)
        .min(limit);
        self.now = self.now.max(next);
        let now = self.now;
        while let Some(d) = self.to_agent.take_arrived(now) {
            if self.agent.ended.is_none() && d.to == self.agent.address {
                let result = self.agent.core.handle_datagram(now, d.from, d.to, &d.bytes);
                self.agent.end_if(result);
            }
        }
        while let Some(d) = self.to_viewer.take_arrived(now) {
            if self.viewer.ended.is_none() && d.to == self.viewer.address {
                let result = self
                    .viewer
                    .core
                    .handle_datagram(now, d.from, d.to, &d.bytes);
                self.viewer.end_if(result);
            }
        }
        for end in [&mut self.viewer, &mut self.agent] {
            if end.ended.is_none() && end.wake <= now {
                let result = end.core.handle_timeout(now);
                end.end_if(result);
            }
        }
        self.viewer.drain(self.now, &mut self.to_agent);
        self.agent.drain(self.now, &mut self.to_viewer);
    }

    /// Steps until `until` returns true or `within` passes; whether it came true.
    pub fn run_until(&mut self, within: Duration, mut until: impl FnMut(&mut Sim) -> bool) -> bool {
        let limit = self.now + within;
        loop {
            if until(self) {
                return true;
            }
            if self.now >= limit || self.viewer.ended.is_some() || self.agent.ended.is_some() {
                return until(self);
            }
            self.step(limit);
        }
    }

    /// Runs until both channels are open; panics with the reason otherwise.
    pub fn open(&mut self) {
        let opened = self.run_until(Duration::from_secs(10), |sim| {
            sim.viewer.core.is_open() && sim.agent.core.is_open()
        });
        assert!(
            opened,
            "the channel did not open: viewer {:?}, agent {:?}",
            self.viewer.ended, self.agent.ended
        );
        for end in [&mut self.viewer, &mut self.agent] {
            end.events.retain(|e| *e != PeerEvent::Open);
        }
    }
}
