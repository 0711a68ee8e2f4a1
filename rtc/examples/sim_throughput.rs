//! Figures, not a test: how fast the data channel moves 16 MiB one way over a simulated path
//! (`tests/support/sim.rs`: the product's `PeerCore`s, a virtual clock), in the path's own time,
//! and how long the two cores took of this machine's CPU to do it.
//!
//! `cargo run --release -p tether-rtc --example sim_throughput -- [one_way_delay_ms] [cap_mbit]`
//! Defaults: 15 ms, 1000 Mbit/s.

#[path = "../tests/support/sim.rs"]
mod sim;

use std::time::{Duration, Instant};

use sim::{LinkShape, Sim};
use tether_common::relay::switch::Payload;
use tether_rtc::PeerEvent;

const TOTAL: usize = 16 << 20;
const MESSAGE: usize = 64 << 10;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers only"))
        .collect();
    let delay = Duration::from_millis(args.first().copied().unwrap_or(15));
    let cap = args.get(1).copied().unwrap_or(1000);
    let shape = LinkShape {
        queue_bytes: 4 << 20,
        ..LinkShape::new(Some(cap * 1_000_000), delay, 0.0)
    };
    let mut sim = Sim::new(false, shape, shape);
    sim.open();
    let (mut sent, mut received) = (0, 0);
    let cpu = Instant::now();
    let start = sim.elapsed();
    sim.run_until(Duration::from_secs(600), |sim| {
        while sent < TOTAL && sim.viewer.core.can_send() {
            let message = Payload::Binary(vec![0x5a; MESSAGE]);
            sim.viewer.core.send(message).expect("send");
            sent += MESSAGE;
        }
        while let Some(event) = sim.agent.events.pop_front() {
            if let PeerEvent::Message(Payload::Binary(bytes)) = event {
                received += bytes.len();
            }
        }
        received >= TOTAL
    });
    let took = (sim.elapsed() - start).as_secs_f64();
    println!(
        "one way {} ms, cap {cap} Mbit/s: {:.1} MB/s in the path's time; {:?} of CPU",
        delay.as_millis(),
        received as f64 / took / 1e6,
        cpu.elapsed()
    );
}
