//! Keeping enrolment under control: rotating a group's enrolment key, listing and revoking
//! invites, and the devices blocked from enrolling again.

use anyhow::bail;
use serde_json::Value;
use tether_common::control::RequestBody;
use tether_common::ids::DeviceId;

use crate::cli::Command;
use crate::commands::{find_group, show};
use crate::connection::Control;
use crate::output::{table, text, time_secs};

pub async fn execute(control: &mut Control, command: Command, json: bool) -> anyhow::Result<()> {
    match command {
        Command::Rotatekey { group, out } => {
            let group = find_group(control, &group).await?;
            let config = control
                .call(RequestBody::RotateEnrolmentKey { group })
                .await?;
            if out.is_none() && !json {
                eprintln!(
                    "tetherctl: replaced the enrolment key; .msh files handed out before admit no new device"
                );
            }
            crate::install::agent_config(&config, out.as_deref(), json)
        }
        Command::Listinvites { group } => {
            let group = find_group(control, &group).await?;
            let invites = control.call(RequestBody::ListInvites { group }).await?;
            show(json, &invites, || invite_table(&invites))
        }
        Command::Revokeinvite { invite } => {
            let result = control
                .call(RequestBody::RevokeInvite {
                    invite: invite.clone(),
                })
                .await?;
            show(json, &result, || format!("revoked invite {invite}"))
        }
        Command::Listblocked { group } => {
            let group = find_group(control, &group).await?;
            let blocked = control
                .call(RequestBody::ListBlockedDevices { group })
                .await?;
            show(json, &blocked, || blocked_table(&blocked))
        }
        Command::Unblockdevice { device } => {
            let result = control
                .call(RequestBody::UnblockDevice {
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

fn invite_table(invites: &Value) -> String {
    let items = invites.as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            let enrolled = match i["max_devices"].as_u64() {
                Some(max) => format!("{}/{max}", text(i, "enrolled")),
                None => text(i, "enrolled"),
            };
            vec![
                text(i, "id"),
                text(i, "status"),
                text(i, "created_by"),
                time_secs(i["created"].as_i64().unwrap_or_default()),
                time_secs(i["expires"].as_i64().unwrap_or_default()),
                enrolled,
            ]
        })
        .collect();
    table(
        &["ID", "STATUS", "BY", "CREATED", "EXPIRES", "DEVICES"],
        &rows,
    )
}

fn blocked_table(blocked: &Value) -> String {
    let items = blocked.as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|b| {
            vec![
                text(b, "name"),
                text(b, "device"),
                text(b, "blocked_by"),
                time_secs(b["time"].as_i64().unwrap_or_default()),
            ]
        })
        .collect();
    table(&["NAME", "DEVICE", "BLOCKED BY", "SINCE"], &rows)
}
