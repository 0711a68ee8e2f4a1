//! Does the egress estimate follow a link capped with `tc tbf`? Run a schedule of caps on
//! the veth this process sends through, log every estimate, then summarise each phase:
//! lowest and settled estimate, and how long until it stayed within ±20% of the cap.

use std::process::Command;
use std::time::{Duration, Instant};

struct Phase {
    name: &'static str,
    cap_bps: Option<u64>,
    seconds: u64,
}

const SCHEDULE: &[Phase] = &[
    Phase { name: "uncapped", cap_bps: None, seconds: 15 },
    Phase { name: "tbf 2mbit", cap_bps: Some(2_000_000), seconds: 30 },
    Phase { name: "tbf 5mbit", cap_bps: Some(5_000_000), seconds: 30 },
    Phase { name: "tbf 20mbit", cap_bps: Some(20_000_000), seconds: 30 },
];

pub struct BweRun {
    device: String,
    started: Option<Instant>,
    phase: usize,
    qdisc_added: bool,
    /// (ms since start, estimate bits/s)
    samples: Vec<(u64, u64)>,
    pub finished: bool,
}

impl BweRun {
    pub fn new(device: String) -> Self {
        BweRun { device, started: None, phase: 0, qdisc_added: false, samples: Vec::new(), finished: false }
    }

    pub fn on_connected(&mut self, now: Instant) {
        self.started = Some(now);
        println!("bwe phase {:>10} at {:>6} ms", SCHEDULE[0].name, 0);
    }

    pub fn on_estimate(&mut self, now: Instant, bps: u64) {
        let Some(t0) = self.started else { return };
        let ms = now.duration_since(t0).as_millis() as u64;
        println!("bwe estimate t={ms} ms {:.2} Mbit/s", bps as f64 / 1e6);
        self.samples.push((ms, bps));
    }

    fn phase_start_ms(i: usize) -> u64 {
        SCHEDULE[..i].iter().map(|p| p.seconds * 1000).sum()
    }

    pub fn next_due(&self) -> Option<Instant> {
        let t0 = self.started?;
        Some(t0 + Duration::from_millis(Self::phase_start_ms(self.phase + 1)))
    }

    pub fn tick(&mut self, now: Instant) {
        let Some(due) = self.next_due() else { return };
        if now < due || self.finished {
            return;
        }
        self.phase += 1;
        match SCHEDULE.get(self.phase) {
            Some(p) => {
                if let Some(cap) = p.cap_bps {
                    let verb = if self.qdisc_added { "change" } else { "add" };
                    self.tc(&[verb, "dev", &self.device.clone(), "root", "tbf", "rate", &format!("{cap}bit"), "burst", "32kbit", "latency", "50ms"]);
                    self.qdisc_added = true;
                }
                println!("bwe phase {:>10} at {:>6} ms", p.name, Self::phase_start_ms(self.phase));
            }
            None => {
                self.cleanup();
                self.summarise();
                self.finished = true;
            }
        }
    }

    fn tc(&self, args: &[&str]) {
        let mut full = vec!["qdisc"];
        full.extend_from_slice(args);
        match Command::new("tc").args(&full).status() {
            Ok(s) if s.success() => {}
            other => eprintln!("tc {}: {other:?}", full.join(" ")),
        }
    }

    pub fn cleanup(&mut self) {
        if self.qdisc_added {
            self.tc(&["del", "dev", &self.device.clone(), "root"]);
            self.qdisc_added = false;
        }
    }

    fn summarise(&self) {
        for (i, p) in SCHEDULE.iter().enumerate() {
            let (start, end) = (Self::phase_start_ms(i), Self::phase_start_ms(i + 1));
            let before = self.samples.iter().rev().find(|s| s.0 < start).map(|s| s.1);
            let inside: Vec<_> = self.samples.iter().filter(|s| s.0 >= start && s.0 < end).collect();
            let min = inside.iter().map(|s| s.1).chain(before).min().unwrap_or(0);
            let mut tail: Vec<u64> = inside.iter().filter(|s| s.0 + 5000 >= end).map(|s| s.1).collect();
            tail.sort_unstable();
            let settled = tail.get(tail.len() / 2).copied().or(inside.last().map(|s| s.1)).or(before).unwrap_or(0);
            let mbit = |b: u64| b as f64 / 1e6;
            let Some(cap) = p.cap_bps else {
                println!("bwe summary {:>10}: settled {:.2} Mbit/s, {} estimates", p.name, mbit(settled), inside.len());
                continue;
            };
            let within = |b: u64| (b as f64 - cap as f64).abs() <= 0.2 * cap as f64;
            // Settled from the first estimate after which every estimate in the phase is in band.
            let mut since = before.filter(|&b| within(b)).map(|_| start);
            for s in &inside {
                if within(s.1) { since.get_or_insert(s.0); } else { since = None; }
            }
            let settle = since.map_or("never".to_string(), |t| format!("{:.1} s", (t - start) as f64 / 1000.0));
            println!(
                "bwe summary {:>10}: min {:.2}, settled {:.2} Mbit/s (cap {:.0}), below cap: {}, within ±20% after {settle}, {} estimates",
                p.name, mbit(min), mbit(settled), mbit(cap), min < cap, inside.len()
            );
        }
    }
}
