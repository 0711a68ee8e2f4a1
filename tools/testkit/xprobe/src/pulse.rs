//! A private PulseAudio daemon for sound tests: a null sink as the default output (so its
//! monitor is what "the device plays"), no hardware, no D-Bus, in a runtime folder of its own.
//! [`PulseAudio::play_tone`] plays a sine into it with `pacat`, as a program on the device would.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PulseAudio {
    daemon: Child,
    players: Vec<Child>,
    dir: PathBuf,
    /// `unix:<runtime>/pulse/native`: what clients set as `PULSE_SERVER`.
    pub server: String,
    /// Its `XDG_RUNTIME_DIR`.
    pub runtime_dir: String,
}

impl PulseAudio {
    /// Starts the daemon; `None` (after saying why) when PulseAudio is not installed and this is
    /// not CI, which installs it.
    pub fn start() -> Option<PulseAudio> {
        let found = Command::new("pulseaudio")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            assert!(
                std::env::var_os("CI").is_none(),
                "pulseaudio is missing (scripts/install-test-deps.sh installs it)"
            );
            eprintln!("skipping: pulseaudio is not installed");
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "tether-pulse-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ u128::from(rand_u32())
        ));
        std::fs::create_dir_all(&dir).expect("pulse runtime folder");
        let runtime_dir = dir.display().to_string();
        let daemon = Command::new("pulseaudio")
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disable-shm",
                "--use-pid-file=no",
                "-L",
                "module-null-sink sink_name=tether",
                "-L",
                "module-native-protocol-unix",
            ])
            .env("XDG_RUNTIME_DIR", &runtime_dir)
            .env("HOME", &runtime_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pulseaudio");
        let socket = dir.join("pulse").join("native");
        let until = Instant::now() + crate::DEADLINE;
        while !socket.exists() {
            assert!(Instant::now() < until, "pulseaudio did not open its socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(PulseAudio {
            daemon,
            players: Vec::new(),
            server: format!("unix:{}", socket.display()),
            runtime_dir,
            dir,
        })
    }

    /// Plays a `hz` sine (48 kHz stereo, 16-bit) into the default sink for `seconds`.
    pub fn play_tone(&mut self, hz: f64, seconds: u32) {
        let mut player = Command::new("pacat")
            .args(["--raw", "--format=s16le", "--rate=48000", "--channels=2"])
            .env("PULSE_SERVER", &self.server)
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .env("HOME", &self.runtime_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pacat (pulseaudio-utils)");
        let mut pcm = Vec::with_capacity(48_000 * 4 * seconds as usize);
        for i in 0..48_000 * seconds {
            let v = ((2.0 * std::f64::consts::PI * hz * f64::from(i) / 48_000.0).sin() * 12_000.0)
                as i16;
            pcm.extend_from_slice(&v.to_le_bytes());
            pcm.extend_from_slice(&v.to_le_bytes());
        }
        let mut input = player.stdin.take().expect("pacat's input");
        std::thread::spawn(move || {
            let _ = input.write_all(&pcm);
        });
        self.players.push(player);
    }
}

impl Drop for PulseAudio {
    fn drop(&mut self) {
        for player in &mut self.players {
            let _ = player.kill();
            let _ = player.wait();
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_u32() -> u32 {
    // Distinct folders for daemons started by parallel tests in one process.
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
