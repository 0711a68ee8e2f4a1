//! A simulated network and a virtual clock for two str0m peers in one thread.
//!
//! Nothing here sleeps or opens a socket: time is an `Instant` that the driver moves
//! forward to the next thing that can happen (a peer's timeout, a datagram arriving, or
//! a deadline the test asks for). Each direction of the path is a [`Link`]: a FIFO
//! token bucket (rate cap and burst, with a tail-drop queue limit like `tc tbf`'s
//! `latency`), then a fixed one-way delay, with random loss from a seeded generator.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// xorshift64*: deterministic loss decisions and payload bytes, seeded per test.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct LinkConfig {
    pub delay: Duration,
    /// Fraction of datagrams dropped at random, 0.0..1.0.
    pub loss: f64,
    /// `None`: no rate cap (and so no queue).
    pub rate_bps: Option<u64>,
    /// Token bucket depth in bytes (what `tbf burst` sets).
    pub burst_bytes: u64,
    /// A datagram that would wait longer than this in the queue is dropped (`tbf latency`).
    pub queue_limit: Duration,
}

impl LinkConfig {
    pub fn new(delay_ms: u64, loss: f64) -> Self {
        LinkConfig {
            delay: Duration::from_millis(delay_ms),
            loss,
            rate_bps: None,
            burst_bytes: 4 * 1024, // tbf burst 32kbit
            queue_limit: Duration::from_millis(50),
        }
    }
}

#[derive(Default, Debug, Clone, Copy)]
pub struct LinkStats {
    pub sent: u64,
    pub delivered: u64,
    pub lost_random: u64,
    pub dropped_queue: u64,
    pub bytes_delivered: u64,
}

struct InFlight {
    arrives: Instant,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// One direction of the path.
pub struct Link {
    pub config: LinkConfig,
    rng: Rng,
    /// Token bucket state as of the last departure: (when, tokens in bytes).
    bucket_at: Instant,
    tokens: f64,
    in_flight: VecDeque<InFlight>,
    pub stats: LinkStats,
}

impl Link {
    pub fn new(config: LinkConfig, seed: u64, now: Instant) -> Self {
        Link {
            config,
            rng: Rng::new(seed),
            bucket_at: now,
            tokens: config.burst_bytes as f64,
            in_flight: VecDeque::new(),
            stats: LinkStats::default(),
        }
    }

    /// Change the rate cap from `now` on (datagrams already queued keep their slot).
    pub fn set_rate(&mut self, now: Instant, rate_bps: Option<u64>) {
        self.refill(now.max(self.bucket_at));
        self.config.rate_bps = rate_bps;
    }

    fn refill(&mut self, to: Instant) {
        if let Some(rate) = self.config.rate_bps {
            let secs = to.saturating_duration_since(self.bucket_at).as_secs_f64();
            self.tokens = (self.tokens + secs * rate as f64 / 8.0).min(self.config.burst_bytes as f64);
        }
        self.bucket_at = to;
    }

    pub fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        self.stats.sent += 1;
        if self.rng.unit() < self.config.loss {
            self.stats.lost_random += 1;
            return;
        }
        let departs = match self.config.rate_bps {
            None => now,
            Some(rate) => {
                // FIFO: this datagram leaves after the previous one and once the bucket
                // holds enough tokens for it.
                let (saved_at, saved_tokens) = (self.bucket_at, self.tokens);
                let start = now.max(self.bucket_at);
                self.refill(start);
                let size = bytes.len() as f64;
                let wait = if self.tokens >= size {
                    Duration::ZERO
                } else {
                    Duration::from_secs_f64((size - self.tokens) * 8.0 / rate as f64)
                };
                let departs = start + wait;
                if departs.duration_since(now) > self.config.queue_limit {
                    self.bucket_at = saved_at;
                    self.tokens = saved_tokens;
                    self.stats.dropped_queue += 1;
                    return;
                }
                self.refill(departs);
                self.tokens -= size;
                departs
            }
        };
        // Departures are in order and the delay is fixed, so arrivals are in order too.
        self.in_flight.push_back(InFlight { arrives: departs + self.config.delay, from, to, bytes });
    }

    pub fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.front().map(|p| p.arrives)
    }

    fn take_arrived(&mut self, now: Instant) -> Option<InFlight> {
        if self.in_flight.front()?.arrives <= now {
            let p = self.in_flight.pop_front()?;
            self.stats.delivered += 1;
            self.stats.bytes_delivered += p.bytes.len() as u64;
            return Some(p);
        }
        None
    }
}

/// One str0m peer and the events it produced that the test has not looked at yet.
pub struct Peer {
    pub rtc: Rtc,
    pub addr: SocketAddr,
    pub events: VecDeque<Event>,
    timeout: Instant,
}

impl Peer {
    pub fn new(rtc: Rtc, addr: SocketAddr, now: Instant) -> Self {
        let mut p = Peer { rtc, addr, events: VecDeque::new(), timeout: now };
        let c = Candidate::host(addr, "udp").expect("host candidate");
        p.rtc.add_local_candidate(c);
        p
    }

    /// Poll until str0m wants to wait; datagrams go onto `out`.
    fn drain(&mut self, now: Instant, out: &mut Link) {
        loop {
            match self.rtc.poll_output().expect("poll_output") {
                Output::Timeout(t) => {
                    self.timeout = t;
                    return;
                }
                Output::Transmit(t) => out.send(now, t.source, t.destination, t.contents.to_vec()),
                Output::Event(e) => self.events.push_back(e),
            }
        }
    }
}

/// Two peers, `a` and `b`, joined by `ab` (a to b) and `ba`.
pub struct Pair {
    pub now: Instant,
    pub a: Peer,
    pub b: Peer,
    pub ab: Link,
    pub ba: Link,
}

impl Pair {
    pub fn new(now: Instant, a: Rtc, b: Rtc, ab: LinkConfig, ba: LinkConfig, seed: u64) -> Self {
        let a = Peer::new(a, "10.0.0.1:1000".parse().unwrap(), now);
        let b = Peer::new(b, "10.0.0.2:2000".parse().unwrap(), now);
        Pair { now, a, b, ab: Link::new(ab, seed, now), ba: Link::new(ba, seed ^ 0x5555, now) }
    }

    /// Let both peers produce what they have at the current instant.
    pub fn settle(&mut self) {
        self.a.drain(self.now, &mut self.ab);
        self.b.drain(self.now, &mut self.ba);
    }

    /// Move the clock to the next thing that happens (no later than `deadline`) and
    /// feed it to the peers. Returns the new time.
    pub fn step(&mut self, deadline: Instant) -> Instant {
        self.settle();
        let next = [Some(self.a.timeout), Some(self.b.timeout), self.ab.next_arrival(), self.ba.next_arrival()]
            .into_iter()
            .flatten()
            .fold(deadline, Instant::min);
        self.now = next.max(self.now);
        let now = self.now;
        // str0m wants poll_output drained after every input: feeding it a burst of
        // datagrams without polling in between fills dimpl's queue ("receive queue full").
        while let Some(p) = self.ab.take_arrived(now) {
            deliver(&mut self.b, now, p);
            self.b.drain(now, &mut self.ba);
        }
        while let Some(p) = self.ba.take_arrived(now) {
            deliver(&mut self.a, now, p);
            self.a.drain(now, &mut self.ab);
        }
        for peer in [&mut self.a, &mut self.b] {
            if peer.timeout <= now {
                peer.rtc.handle_input(Input::Timeout(now)).expect("timeout");
            }
        }
        self.settle();
        now
    }

    /// Step until `done` holds, or fail after `limit` of virtual time.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Pair) -> bool) {
        let give_up = self.now + limit;
        while !done(self) {
            assert!(self.now < give_up, "condition not reached within {limit:?} of virtual time");
            self.step(give_up);
        }
    }
}

fn deliver(peer: &mut Peer, now: Instant, p: InFlight) {
    let receive = Receive {
        proto: Protocol::Udp,
        source: p.from,
        destination: p.to,
        contents: p.bytes.as_slice().try_into().expect("datagram"),
    };
    peer.rtc.handle_input(Input::Receive(now, receive)).expect("receive");
}
