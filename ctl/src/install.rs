//! `agentconfig`, `rotatekey` and `invite`: what an administrator needs to enrol a machine.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use tether_common::install::{AgentConfig, Invite};

use crate::output::{print_json, printable, time_secs};

/// Prints the `.msh` (as the server wrote it, CRLF and all), or writes it to `out`.
pub(crate) fn agent_config(
    config: &AgentConfig,
    out: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            write_private(path, config.msh.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            if json {
                print_json(config);
            } else {
                println!("wrote {}", path.display());
            }
        }
        None if json => print_json(config),
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(config.msh.as_bytes())?;
            stdout.flush()?;
        }
    }
    Ok(())
}

pub(crate) fn invite(invite: &Invite, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(invite);
        return Ok(());
    }
    println!(
        "Invite {} valid until {} UTC. On the machine to enrol, run (as root to install into \
         /usr/local/lib/tether-agent, otherwise it goes to ~/.local/lib/tether-agent):\n",
        invite.id,
        time_secs(invite.expires)
    );
    println!("{}\n", printable(&invite.install_command));
    println!(
        "It fetches the server's root certificate, stops unless its SHA-256 is {}, and \
         then runs the install script over a connection checked against it. Anyone holding the \
         link can enrol machines in this group until it expires or is revoked \
         (tetherctl revokeinvite ID).",
        printable(&invite.root_cert_sha256)
    );
    Ok(())
}

/// The `.msh` lets its holder enrol devices: readable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` applies to a new file only; an existing one is narrowed too.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)
}
