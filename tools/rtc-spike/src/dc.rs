//! Data-channel integrity and throughput: the browser sends `TOTAL` bytes, we hash them
//! and say so; then we send `TOTAL` bytes back in ≤64 KiB messages, never letting more
//! than `HIGH_WATER` sit in the stack's buffer, and announce their SHA-256.

use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::engine::{EngineError, RtcEngine};

pub const TOTAL: usize = 64 << 20;
const MESSAGE: usize = 64 << 10;
const HIGH_WATER: usize = 1 << 20;
const LOW_WATER: usize = 256 << 10;

pub struct DcTest<C> {
    channel: Option<C>,
    rx_bytes: usize,
    rx_hash: Sha256,
    rx_first: Option<Instant>,
    tx: Option<Sender>,
}

struct Sender {
    sent: usize,
    hash: Sha256,
    seed: u64,
    /// A message the stack refused (buffer full); it goes first next time.
    pending: Option<Vec<u8>>,
    started: Instant,
    sha: Option<String>,
    announced: bool,
}

fn hex(d: impl AsRef<[u8]>) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl<C: Copy + Eq + std::fmt::Debug> DcTest<C> {
    pub fn new() -> Self {
        DcTest {
            channel: None,
            rx_bytes: 0,
            rx_hash: Sha256::new(),
            rx_first: None,
            tx: None,
        }
    }

    pub fn on_open<E: RtcEngine<Channel = C>>(&mut self, engine: &mut E, ch: C) {
        engine.set_buffered_low_threshold(ch, LOW_WATER);
        self.channel = Some(ch);
    }

    pub fn on_data<E: RtcEngine<Channel = C>>(
        &mut self,
        engine: &mut E,
        channel: C,
        binary: bool,
        data: &[u8],
        now: Instant,
    ) -> Result<(), EngineError> {
        let Some(ch) = self.channel.filter(|&c| c == channel) else { return Ok(()) };
        if !binary {
            if data == b"close" {
                engine.close_channel(ch);
            }
            return Ok(());
        }
        self.rx_first.get_or_insert(now);
        self.rx_bytes += data.len();
        self.rx_hash.update(data);
        if self.rx_bytes == TOTAL {
            let ms = now.duration_since(self.rx_first.unwrap_or(now)).as_millis();
            let sha = hex(std::mem::take(&mut self.rx_hash).finalize());
            println!("dc rx: {} bytes in {ms} ms, sha256 {sha}", self.rx_bytes);
            let report = format!(r#"{{"rxSha":"{sha}","rxBytes":{},"rxMs":{ms}}}"#, self.rx_bytes);
            // A short text message after a drained receive path: the buffer has room.
            engine.send(ch, false, report.as_bytes())?;
            self.tx = Some(Sender {
                sent: 0,
                hash: Sha256::new(),
                seed: 0x9e37_79b9_7f4a_7c15,
                pending: None,
                started: now,
                sha: None,
                announced: false,
            });
            self.pump(engine, now)?;
        }
        Ok(())
    }

    /// Write as much as back-pressure allows; call on every buffered-low event and tick.
    pub fn pump<E: RtcEngine<Channel = C>>(
        &mut self,
        engine: &mut E,
        now: Instant,
    ) -> Result<(), EngineError> {
        let (Some(ch), Some(tx)) = (self.channel, self.tx.as_mut()) else { return Ok(()) };
        while tx.sent < TOTAL && engine.buffered_amount(ch) < HIGH_WATER {
            let message = match tx.pending.take() {
                Some(m) => m,
                None => next_message(&mut tx.seed, MESSAGE.min(TOTAL - tx.sent)),
            };
            if !engine.send(ch, true, &message)? {
                tx.pending = Some(message);
                return Ok(());
            }
            tx.hash.update(&message);
            tx.sent += message.len();
        }
        if tx.sent == TOTAL && !tx.announced {
            let sha = tx.sha.get_or_insert_with(|| hex(std::mem::take(&mut tx.hash).finalize()));
            let report = format!(r#"{{"txSha":"{sha}","txBytes":{}}}"#, tx.sent);
            // Refused when the buffer is full: the next buffered-low event retries.
            if engine.send(ch, false, report.as_bytes())? {
                tx.announced = true;
                let ms = now.duration_since(tx.started).as_millis();
                println!("dc tx: {} bytes queued in {ms} ms, sha256 {sha}", tx.sent);
            }
        }
        Ok(())
    }
}

/// xorshift64 bytes: incompressible enough, and cheap.
fn next_message(seed: &mut u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}
