//! rtc-spike: str0m answering Debian's Chromium, to choose Tether's WebRTC stack (issue 13).
//!
//!   rtc-spike chromium dc    10.77.0.1:8080                  64 MiB each way on a data channel
//!   rtc-spike chromium video 10.77.0.1:8080 --clip c.264     H.264 clip at 15 fps for --seconds
//!   rtc-spike chromium bwe   10.77.0.1:8080 --clip c.264 --shape-dev veth0
//!
//! The browser side is `page.html` (served here) driven by `drive.cjs`; `spike.sh` puts
//! both in network namespaces joined by a veth pair. See README.md.

mod bwe;
mod dc;
mod engine;
mod h264;
mod signal;
mod video;

use std::error::Error;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use engine::{EngineEvent, RtcEngine, Step, Str0mEngine};
use signal::Signal;

#[derive(PartialEq)]
enum Mode {
    DataChannel,
    Video,
    Bwe,
}

struct Args {
    mode: Mode,
    listen: SocketAddr,
    clip: Option<String>,
    shape_dev: Option<String>,
    seconds: u64,
}

fn parse_args() -> Result<Args, String> {
    let usage = "usage: rtc-spike chromium dc|video|bwe IP:PORT [--clip FILE] [--shape-dev DEV] [--seconds N]";
    let mut it = std::env::args().skip(1).peekable();
    // The only peer this binary answers is Chromium; the in-memory tests are `cargo test`.
    if it.peek().map(String::as_str) == Some("chromium") {
        it.next();
    }
    let mode = match it.next().as_deref() {
        Some("dc") => Mode::DataChannel,
        Some("video") => Mode::Video,
        Some("bwe") => Mode::Bwe,
        _ => return Err(usage.into()),
    };
    let listen = it.next().and_then(|a| a.parse().ok()).ok_or(usage)?;
    let mut args = Args { mode, listen, clip: None, shape_dev: None, seconds: 20 };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(usage)?;
        match flag.as_str() {
            "--clip" => args.clip = Some(value),
            "--shape-dev" => args.shape_dev = Some(value),
            "--seconds" => args.seconds = value.parse().map_err(|_| usage)?,
            _ => return Err(usage.into()),
        }
    }
    if args.mode != Mode::DataChannel && args.clip.is_none() {
        return Err("video and bwe need --clip".into());
    }
    if args.mode == Mode::Bwe && args.shape_dev.is_none() {
        return Err("bwe needs --shape-dev".into());
    }
    Ok(args)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let listener = TcpListener::bind(args.listen).await?;
    let socket = UdpSocket::bind(SocketAddr::new(args.listen.ip(), 0)).await?;
    let (to_peer, mut signals) = mpsc::channel(64);
    tokio::spawn(signal::serve(listener, to_peer));
    println!("listening on http://{} (rtc {})", args.listen, socket.local_addr()?);

    let (offer, reply) = loop {
        match signals.recv().await {
            Some(Signal::Offer { sdp, answer }) => break (sdp, answer),
            Some(Signal::Candidate(_)) => eprintln!("candidate before offer: ignored"),
            None => return Err("signalling stopped".into()),
        }
    };
    let offered_at = Instant::now();
    let initial_estimate = (args.mode == Mode::Bwe).then_some(1_000_000);
    // RTC_SPIKE_SCTP_BUFFER=bytes overrides str0m's 128 KiB data-channel send buffer.
    let sctp_buffer = std::env::var("RTC_SPIKE_SCTP_BUFFER").ok().and_then(|v| v.parse().ok());
    let mut engine = Str0mEngine::new(offered_at, initial_estimate, sctp_buffer);
    engine.add_local_candidate(socket.local_addr()?)?;
    let answer = engine.accept_offer(&offer)?;
    let _ = reply.send(answer);

    let mut session = Session::new(&args)?;
    let result = run(&mut engine, &socket, &mut signals, &mut session, &args, offered_at).await;
    if let Some(b) = session.bwe.as_mut() {
        b.cleanup();
    }
    result
}

/// How long to keep the engine running after a channel closed (to flush the reset).
const LINGER: Duration = Duration::from_secs(1);

/// What each mode does with the engine's events.
struct Session<C, T> {
    dc: dc::DcTest<C>,
    video: Option<video::VideoSender<T>>,
    bwe: Option<bwe::BweRun>,
    connected_at: Option<Instant>,
    closed_at: Option<Instant>,
    estimates: u64,
}

impl<C: Copy + Eq + std::fmt::Debug, T: Copy> Session<C, T> {
    fn new(args: &Args) -> Result<Self, Box<dyn Error>> {
        let video = match &args.clip {
            Some(path) if args.mode != Mode::DataChannel => {
                let units = h264::access_units(&std::fs::read(path)?);
                let idr = units.iter().filter(|u| u.is_idr).count();
                println!("clip {path}: {} access units, {idr} IDR", units.len());
                Some(video::VideoSender::new(units))
            }
            _ => None,
        };
        Ok(Session {
            dc: dc::DcTest::new(),
            video,
            bwe: args.shape_dev.clone().filter(|_| args.mode == Mode::Bwe).map(bwe::BweRun::new),
            connected_at: None,
            closed_at: None,
            estimates: 0,
        })
    }

    fn next_due(&self) -> Option<Instant> {
        let v = self.video.as_ref().and_then(|v| v.next_due());
        let b = self.bwe.as_ref().and_then(|b| b.next_due());
        let c = self.closed_at.map(|t| t + LINGER);
        v.into_iter().chain(b).chain(c).min()
    }
}

async fn run<E: RtcEngine>(
    engine: &mut E,
    socket: &UdpSocket,
    signals: &mut mpsc::Receiver<Signal>,
    s: &mut Session<E::Channel, E::Track>,
    args: &Args,
    offered_at: Instant,
) -> Result<(), Box<dyn Error>> {
    let local = socket.local_addr()?;
    let mut buf = vec![0u8; 2048];
    if s.bwe.is_some() {
        // An encoder that always has more to send: padding fills up to the estimate.
        engine.set_bitrate_target(50_000_000, 50_000_000);
    }
    loop {
        let now = Instant::now();
        if !engine.is_alive() {
            println!("peer connection closed by the peer");
            if let Some(v) = s.video.as_ref() {
                println!(
                    "video: {} frames, {} bytes written, {} key-frame requests",
                    v.frames_written, v.bytes_written, v.keyframe_requests
                );
            }
            return Ok(());
        }
        if let Some(v) = s.video.as_mut() {
            v.tick(engine, now)?;
        }
        if let Some(b) = s.bwe.as_mut() {
            b.tick(now);
            if b.finished {
                return Ok(());
            }
        }
        s.dc.pump(engine, now)?;
        if s.closed_at.is_some_and(|t| now >= t + LINGER) {
            return Ok(());
        }
        if args.mode == Mode::Video {
            if let Some(t) = s.connected_at {
                if now.duration_since(t) >= Duration::from_secs(args.seconds) {
                    let v = s.video.as_ref().ok_or("no video")?;
                    println!(
                        "video: {} frames, {} bytes written, {} key-frame requests",
                        v.frames_written, v.bytes_written, v.keyframe_requests
                    );
                    return Ok(());
                }
            }
        }

        let wait_until = loop {
            match engine.poll()? {
                Step::Transmit { to, bytes } => {
                    socket.send_to(&bytes, to).await?;
                }
                Step::WaitUntil(t) => break t,
                Step::Event(e) => {
                    if on_event(engine, s, e, offered_at)? {
                        return Ok(());
                    }
                }
            }
        };
        let wake = s.next_due().map_or(wait_until, |d| d.min(wait_until));

        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, from) = r?;
                engine.handle_datagram(Instant::now(), from, local, &buf[..n])?;
            }
            Some(signal) = signals.recv() => {
                if let Signal::Candidate(c) = signal {
                    println!("remote candidate: {}", c.trim());
                    if let Err(e) = engine.add_remote_candidate(&c) {
                        eprintln!("remote candidate {c:?}: {e}");
                    }
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                engine.handle_timeout(Instant::now())?;
            }
        }
    }
}

/// Returns true when the session is over.
fn on_event<E: RtcEngine>(
    engine: &mut E,
    s: &mut Session<E::Channel, E::Track>,
    event: EngineEvent<E::Channel, E::Track>,
    offered_at: Instant,
) -> Result<bool, Box<dyn Error>> {
    let now = Instant::now();
    let since_offer = now.duration_since(offered_at).as_millis();
    match event {
        EngineEvent::Connected => {
            println!("connected {since_offer} ms after the offer arrived");
            s.connected_at = Some(now);
            if let Some(v) = s.video.as_mut() {
                v.on_connected(now);
            }
            if let Some(b) = s.bwe.as_mut() {
                b.on_connected(now);
            }
        }
        EngineEvent::Disconnected => {
            println!("ICE disconnected");
            return Ok(true);
        }
        EngineEvent::ChannelOpen(ch, label) => {
            println!("channel {label:?} open {since_offer} ms after the offer arrived");
            s.dc.on_open(engine, ch);
        }
        EngineEvent::ChannelData { channel, binary, data } => {
            s.dc.on_data(engine, channel, binary, &data, now)?
        }
        EngineEvent::ChannelBufferedLow(_) => s.dc.pump(engine, now)?,
        EngineEvent::ChannelClosed(_) => {
            // Keep driving the engine a little so the stream reset reaches the browser.
            println!("channel closed");
            s.closed_at = Some(now);
        }
        EngineEvent::VideoTrack(t) => {
            println!("video track negotiated (H.264)");
            if let Some(v) = s.video.as_mut() {
                v.on_track(t);
            }
        }
        EngineEvent::KeyframeRequest(_) => {
            if let Some(v) = s.video.as_mut() {
                v.on_keyframe_request();
            }
        }
        EngineEvent::BitrateEstimate(bps) => {
            s.estimates += 1;
            if let Some(b) = s.bwe.as_mut() {
                b.on_estimate(now, bps);
            }
        }
    }
    Ok(false)
}
