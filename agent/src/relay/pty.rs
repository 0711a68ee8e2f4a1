//! An interactive program in a pseudo-terminal (portable-pty): the login shell of the agent's
//! account or of the account the console asked for (`run_as.rs`), or the command the console
//! named. PTY reads and writes block, so each runs on its own thread and
//! meets the async side through small channels.

use std::ffi::OsString;
use std::io::{Read, Write};

use portable_pty::{ChildKiller, CommandBuilder, MasterPty, PtySize, native_pty_system};
use tether_common::relay::terminal::{StartTerminal, clamp_size};
use tokio::sync::{mpsc, oneshot};

use super::process::{Control, Exit, OUTPUT_QUEUE, Running};
use super::run_as::{Account, locale_env};

/// Bytes read from the terminal at a time.
const READ_CHUNK: usize = 16 * 1024;

pub(super) fn spawn(start: &StartTerminal, account: &Account) -> anyhow::Result<Running> {
    let (cols, rows) = clamp_size(start.cols, start.rows);
    let pair = native_pty_system().openpty(PtySize {
        rows,
        cols,
        pixel_width: 0,
        pixel_height: 0,
    })?;
    let mut command = match account {
        // The agent account's shell as a login shell, in its home folder.
        Account::Agent if start.command.is_empty() => CommandBuilder::new_default_prog(),
        Account::Agent => {
            CommandBuilder::from_argv(start.command.iter().map(OsString::from).collect())
        }
        Account::Other(other) => {
            let mut command = CommandBuilder::from_argv(other.login_argv(&start.command));
            // runuser builds the login environment; nothing of the agent's should leak into it.
            command.env_clear();
            command.cwd(other.start_dir());
            command
        }
    };
    command.env("TERM", "xterm-256color");
    for (key, value) in locale_env() {
        command.env(key, value);
    }
    let mut child = pair.slave.spawn_command(command)?;
    // Only the child keeps the terminal's other end open, so reads end when it (and whatever it
    // started there) is gone.
    drop(pair.slave);
    let reader = pair.master.try_clone_reader()?;
    let writer = pair.master.take_writer()?;
    let killer = child.clone_killer();

    let (output_sender, output) = mpsc::channel(OUTPUT_QUEUE);
    std::thread::spawn(move || read_terminal(reader, output_sender));
    let (input, input_receiver) = mpsc::channel(1);
    std::thread::spawn(move || write_terminal(writer, input_receiver));
    let (exit_sender, exited) = oneshot::channel();
    std::thread::spawn(move || {
        let exit = match child.wait() {
            Ok(ref status) if let Some(description) = status.signal() => Exit {
                code: None,
                signal: signal_number(description),
            },
            Ok(status) => Exit {
                code: i32::try_from(status.exit_code()).ok(),
                signal: None,
            },
            Err(_) => Exit::default(),
        };
        let _ = exit_sender.send(exit);
    });
    Ok(Running {
        output,
        input: Some(input),
        exited,
        control: Box::new(PtyControl {
            master: pair.master,
            killer,
        }),
    })
}

fn read_terminal(mut reader: Box<dyn Read + Send>, output: mpsc::Sender<Vec<u8>>) {
    let mut buffer = vec![0u8; READ_CHUNK];
    // Linux answers EIO once the other end is closed: that is the end of output too.
    while let Ok(n @ 1..) = reader.read(&mut buffer) {
        if output.blocking_send(buffer[..n].to_vec()).is_err() {
            break;
        }
    }
}

fn write_terminal(mut writer: Box<dyn Write + Send>, mut input: mpsc::Receiver<Vec<u8>>) {
    while let Some(bytes) = input.blocking_recv() {
        if writer
            .write_all(&bytes)
            .and_then(|()| writer.flush())
            .is_err()
        {
            break;
        }
    }
}

struct PtyControl {
    master: Box<dyn MasterPty + Send>,
    killer: Box<dyn ChildKiller + Send + Sync>,
}

impl Control for PtyControl {
    fn resize(&mut self, cols: u16, rows: u16) {
        let size = PtySize {
            rows,
            cols,
            pixel_width: 0,
            pixel_height: 0,
        };
        if let Err(e) = self.master.resize(size) {
            tracing::warn!("relay: cannot resize the terminal: {e}");
        }
    }

    fn kill(&mut self) {
        // The shell first; dropping the master afterwards hangs up the rest of its session.
        let _ = self.killer.kill();
    }
}

/// portable-pty reports a signal by its description (`strsignal`'s: "Killed", "Terminated"), not
/// by its number; the console wants the number, to say "killed by signal 9" and report 128 + N
/// like a shell. The standard Linux signals, and the "Signal N" form it uses for the rest.
fn signal_number(description: &str) -> Option<i32> {
    const NAMES: [&str; 15] = [
        "Hangup",
        "Interrupt",
        "Quit",
        "Illegal instruction",
        "Trace/breakpoint trap",
        "Aborted",
        "Bus error",
        "Floating point exception",
        "Killed",
        "User defined signal 1",
        "Segmentation fault",
        "User defined signal 2",
        "Broken pipe",
        "Alarm clock",
        "Terminated",
    ];
    let description = description.trim();
    match NAMES.iter().position(|name| *name == description) {
        Some(index) => i32::try_from(index + 1).ok(),
        None => description.strip_prefix("Signal ")?.trim().parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::signal_number;

    #[test]
    fn signal_descriptions_map_to_numbers() {
        assert_eq!(signal_number("Hangup"), Some(1));
        assert_eq!(signal_number("Killed"), Some(9));
        assert_eq!(signal_number("Segmentation fault"), Some(11));
        assert_eq!(signal_number("Terminated"), Some(15));
        assert_eq!(signal_number("Signal 34"), Some(34));
        assert_eq!(signal_number("Something else"), None);
    }
}
