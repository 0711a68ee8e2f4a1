//! A command with plain pipes (`tetherctl exec`): exact bytes, standard output and error kept
//! apart (each output frame starts with its stream byte), standard input from the console until
//! it sends `eof`. As another account, the command runs under `runuser -u` (`run_as.rs`).

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tether_common::relay::terminal::{OutputStream, StartTerminal, encode_output};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

use super::process::{Control, Exit, OUTPUT_QUEUE, Running};
use super::run_as::{Account, PLAIN_PATH, locale_env};

const READ_CHUNK: usize = 16 * 1024;

pub(super) fn spawn(start: &StartTerminal, account: &Account) -> anyhow::Result<Running> {
    if start.command.is_empty() {
        bail!("no command to run");
    }
    let argv: Vec<OsString> = match account {
        Account::Agent => start.command.iter().map(OsString::from).collect(),
        Account::Other(other) => other.exec_argv(&start.command),
    };
    let (program, args) = argv.split_first().context("no command to run")?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so stopping the session stops what the program started too
        // (with runuser, the program itself is runuser's child).
        .process_group(0)
        .kill_on_drop(true);
    match account {
        Account::Agent => {
            if let Some(home) = std::env::var_os("HOME") {
                command.current_dir(home);
            }
        }
        Account::Other(other) => {
            // The agent's environment is the agent's: the account gets a plain PATH and the
            // locale; runuser sets HOME, USER and LOGNAME.
            command
                .env_clear()
                .env("PATH", PLAIN_PATH)
                .envs(locale_env())
                .current_dir(other.start_dir());
        }
    }
    let mut child = command.spawn()?;
    let (output_sender, output) = mpsc::channel(OUTPUT_QUEUE);
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(read_stream(
            stdout,
            OutputStream::Stdout,
            output_sender.clone(),
        ));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(read_stream(stderr, OutputStream::Stderr, output_sender));
    }
    let (input, input_receiver) = mpsc::channel(1);
    if let Some(stdin) = child.stdin.take() {
        tokio::spawn(write_stdin(stdin, input_receiver));
    }
    let (kill_sender, kill) = oneshot::channel();
    let (exit_sender, exited) = oneshot::channel();
    tokio::spawn(wait(child, kill, exit_sender));
    Ok(Running {
        output,
        input: Some(input),
        exited,
        control: Box::new(PipeControl {
            kill: Some(kill_sender),
        }),
    })
}

async fn read_stream(
    mut stream: impl AsyncRead + Unpin,
    which: OutputStream,
    output: mpsc::Sender<Vec<u8>>,
) {
    let mut buffer = vec![0u8; READ_CHUNK];
    while let Ok(n @ 1..) = stream.read(&mut buffer).await {
        if output
            .send(encode_output(which, &buffer[..n]))
            .await
            .is_err()
        {
            break;
        }
    }
}

async fn write_stdin(mut stdin: tokio::process::ChildStdin, mut input: mpsc::Receiver<Vec<u8>>) {
    while let Some(bytes) = input.recv().await {
        if stdin.write_all(&bytes).await.is_err() {
            break;
        }
    }
    // Dropping stdin here is the program's end of input.
}

async fn wait(mut child: Child, kill: oneshot::Receiver<()>, exited: oneshot::Sender<Exit>) {
    let status = tokio::select! {
        status = child.wait() => status,
        _ = kill => {
            if let Some(group) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
                let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
            }
            let _ = child.start_kill();
            child.wait().await
        }
    };
    let exit = match status {
        Ok(status) => Exit {
            code: status.code(),
            signal: status.signal(),
        },
        Err(_) => Exit::default(),
    };
    let _ = exited.send(exit);
}

struct PipeControl {
    kill: Option<oneshot::Sender<()>>,
}

impl Control for PipeControl {
    fn resize(&mut self, _cols: u16, _rows: u16) {}

    fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
}
