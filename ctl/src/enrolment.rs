//! Keeping enrolment under control: rotating a group's enrolment key, listing and revoking
//! invites, and the devices blocked from enrolling again.

use anyhow::bail;
use tether_common::control::{
    ImportEnrolmentKey, ListBlockedDevices, ListInvites, RevokeInvite, RotateEnrolmentKey,
    UnblockDevice,
};
use tether_common::ids::DeviceId;
use tether_common::install::{BlockedDevice, InviteInfo, InviteStatus};

use crate::cli::Command;
use crate::commands::{find_group, show};
use crate::connection::Control;
use crate::output::{table, time_secs};

pub(crate) async fn execute(
    control: &mut Control,
    command: Command,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        Command::Rotatekey { group, out } => {
            let group = find_group(control, &group).await?;
            let config = control.call(RotateEnrolmentKey { group }).await?;
            if out.is_none() && !json {
                eprintln!(
                    "tetherctl: replaced the enrolment key; .msh files handed out before admit no new device"
                );
            }
            crate::install::agent_config(&config, out.as_deref(), json)
        }
        Command::Importmeshid {
            group,
            mesh_id,
            msh,
            out,
        } => {
            let mesh_id = match (mesh_id, msh) {
                (Some(id), _) => id,
                (None, Some(file)) => mesh_id_in(&file)?,
                (None, None) => bail!("give --mesh-id or --msh"),
            };
            let group = find_group(control, &group).await?;
            let config = control.call(ImportEnrolmentKey { group, mesh_id }).await?;
            if out.is_none() && !json {
                eprintln!(
                    "tetherctl: MeshAgents of that MeshCentral group now enrol into this group once they reach this server"
                );
            }
            crate::install::agent_config(&config, out.as_deref(), json)
        }
        Command::Listinvites { group } => {
            let group = find_group(control, &group).await?;
            let invites = control.call(ListInvites { group }).await?;
            show(json, &invites, || invite_table(&invites))
        }
        Command::Revokeinvite { invite } => {
            let result = control
                .call(RevokeInvite {
                    invite: invite.clone(),
                })
                .await?;
            show(json, &result, || format!("revoked invite {invite}"))
        }
        Command::Listblocked { group } => {
            let group = find_group(control, &group).await?;
            let blocked = control.call(ListBlockedDevices { group }).await?;
            show(json, &blocked, || blocked_table(&blocked))
        }
        Command::Unblockdevice { device } => {
            let result = control
                .call(UnblockDevice {
                    device: DeviceId(device.clone()),
                })
                .await?;
            show(json, &result, || {
                format!("unblocked device {device}: it may enrol again")
            })
        }
        other => bail!("not an enrolment command: {other:?}"),
    }
}

fn invite_table(invites: &[InviteInfo]) -> String {
    let rows: Vec<Vec<String>> = invites
        .iter()
        .map(|i| {
            let enrolled = match i.max_devices {
                Some(max) => format!("{}/{max}", i.enrolled),
                None => i.enrolled.to_string(),
            };
            vec![
                i.id.clone(),
                status_name(i.status).to_owned(),
                i.created_by.to_string(),
                time_secs(i.created),
                time_secs(i.expires),
                enrolled,
            ]
        })
        .collect();
    table(
        &["ID", "STATUS", "BY", "CREATED", "EXPIRES", "DEVICES"],
        &rows,
    )
}

/// As the JSON output spells it.
fn status_name(status: InviteStatus) -> &'static str {
    match status {
        InviteStatus::Active => "active",
        InviteStatus::Revoked => "revoked",
        InviteStatus::Expired => "expired",
        InviteStatus::UsedUp => "used_up",
    }
}

fn blocked_table(blocked: &[BlockedDevice]) -> String {
    let rows: Vec<Vec<String>> = blocked
        .iter()
        .map(|b| {
            vec![
                b.name.clone(),
                b.device.to_string(),
                b.blocked_by.to_string(),
                time_secs(b.time),
            ]
        })
        .collect();
    table(&["NAME", "DEVICE", "BLOCKED BY", "SINCE"], &rows)
}

/// The `MeshID=` value of a `.msh` file (MeshCentral's or ours).
fn mesh_id_in(file: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    text.lines()
        .find_map(|line| line.trim().strip_prefix("MeshID="))
        .map(|id| id.trim().to_owned())
        .with_context(|| format!("{} has no MeshID line", file.display()))
}
