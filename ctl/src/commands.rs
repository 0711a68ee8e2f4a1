//! One function per command: build the request(s), print the answer.

use std::collections::HashMap;

use anyhow::{Context, bail};
use serde_json::Value;
use tether_common::control::RequestBody;
use tether_common::ids::{DeviceId, GroupId, UserId};
use tether_common::rights::Rights;

use crate::cli::{Cli, Command};
use crate::connection::Control;
use crate::output::{print_human, print_json, table, text, time_secs};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // Checked before connecting, so a typo does not cost a login.
    if let Command::Grouprights { rights, .. } = &cli.command {
        Rights::parse(rights)?;
    }
    // Read (or asked for) before connecting, so a prompt cannot outlast the login.
    let new_password = match &cli.command {
        Command::Adduser { name, password, .. } | Command::Resetpassword { name, password } => {
            Some(crate::password::new_password(password, name)?)
        }
        _ => None,
    };
    let mut control = Control::open(&cli).await?;
    let result = execute(&mut control, cli.command, new_password, cli.json).await;
    control.close().await;
    result
}

async fn execute(
    control: &mut Control,
    command: Command,
    new_password: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        Command::Serverinfo => {
            let info = control.call(RequestBody::ServerInfo).await?;
            show(json, &info, || {
                let field = |name: &str, key: &str| vec![name.to_owned(), text(&info, key)];
                let rows = vec![
                    field("name", "name"),
                    field("version", "version"),
                    field("protocol", "protocol"),
                    field("https port", "https_port"),
                    field("agent cert hash", "agent_cert_hash"),
                    field("web cert hash", "web_cert_hash"),
                ];
                table(&["FIELD", "VALUE"], &rows)
            })
        }
        Command::Whoami => {
            let me = control.call(RequestBody::WhoAmI).await?;
            let user = me["user"].clone();
            show(json, &me, || {
                format!("{}{}", text(&user, "name"), admin_note(&user))
            })
        }
        Command::Listgroups => {
            let groups = control.call(RequestBody::ListGroups).await?;
            show(json, &groups, || group_table(&groups))
        }
        Command::Addgroup { name, description } => {
            let group = control
                .call(RequestBody::CreateGroup { name, description })
                .await?;
            show(json, &group, || {
                format!(
                    "created device group {} ({})",
                    text(&group, "name"),
                    text(&group, "id")
                )
            })
        }
        Command::Removegroup { group } => {
            let group = find_group(control, &group).await?;
            control
                .call(RequestBody::DeleteGroup {
                    group: group.clone(),
                })
                .await?;
            let done = serde_json::json!({ "deleted": group });
            show(json, &done, || {
                format!("deleted device group {group} and its devices")
            })
        }
        Command::Listusers => {
            let users = control.call(RequestBody::ListUsers).await?;
            show(json, &users, || user_table(&users))
        }
        Command::Adduser {
            name,
            email,
            siteadmin,
            ..
        } => {
            let body = RequestBody::AddUser {
                name,
                password: new_password.context("no password was read")?,
                email,
                site_admin: siteadmin,
            };
            let user = control.call(body).await?;
            show(json, &user, || {
                format!(
                    "created account {}{}",
                    text(&user, "name"),
                    admin_note(&user)
                )
            })
        }
        Command::Removeuser { name } => {
            let result = control
                .call(RequestBody::RemoveUser {
                    user: UserId::from_name(&name),
                })
                .await?;
            show(json, &result, || format!("removed account {name}"))
        }
        Command::Resetpassword { name, .. } => {
            let user = UserId::from_name(&name);
            let password = new_password.context("no password was read")?;
            let result = control
                .call(RequestBody::ResetPassword { user, password })
                .await?;
            show(json, &result, || {
                format!("set a new password for {name}; their sessions have ended")
            })
        }
        Command::Edituser {
            name,
            email,
            siteadmin,
        } => {
            if email.is_none() && siteadmin.is_none() {
                bail!("nothing to change: give --email and/or --siteadmin");
            }
            let body = RequestBody::EditUser {
                user: UserId::from_name(&name),
                email,
                site_admin: siteadmin,
            };
            let user = control.call(body).await?;
            show(json, &user, || {
                format!(
                    "updated account {}{}",
                    text(&user, "name"),
                    admin_note(&user)
                )
            })
        }
        Command::Grouprights {
            group,
            user,
            rights,
        } => {
            let rights = Rights::parse(&rights)?;
            let group = find_group(control, &group).await?;
            let body = RequestBody::SetGroupRights {
                group,
                user: UserId::from_name(&user),
                rights,
            };
            let result = control.call(body).await?;
            show(json, &result, || {
                format!(
                    "{user} now holds '{rights}' on device group {}",
                    text(&result, "name")
                )
            })
        }
        Command::Listdevices { group } => {
            let group = match group {
                Some(group) => Some(find_group(control, &group).await?),
                None => None,
            };
            let devices = control.call(RequestBody::ListDevices { group }).await?;
            if json {
                print_json(&devices);
                return Ok(());
            }
            let groups = control.call(RequestBody::ListGroups).await?;
            println!("{}", device_table(&devices, &group_names(&groups)));
            Ok(())
        }
        Command::Renamedevice { device, name } => {
            let device = find_device(control, &device).await?;
            let result = control
                .call(RequestBody::RenameDevice { device, name })
                .await?;
            show(json, &result, || {
                format!(
                    "renamed device {} to {}",
                    text(&result, "id"),
                    text(&result, "name")
                )
            })
        }
        Command::Removedevice { device, block } => {
            let device = find_device(control, &device).await?;
            let result = control
                .call(RequestBody::DeleteDevice {
                    device: device.clone(),
                    block,
                })
                .await?;
            show(json, &result, || {
                if block {
                    format!("removed device {device} and blocked it from enrolling again")
                } else {
                    format!("removed device {device}")
                }
            })
        }
        Command::Events { limit, group } => {
            let group = match group {
                Some(group) => Some(find_group(control, &group).await?),
                None => None,
            };
            let events = control
                .call(RequestBody::ListEvents {
                    limit,
                    group,
                    device: None,
                })
                .await?;
            show(json, &events, || event_table(&events))
        }
        Command::Agentconfig { group, out } => {
            let group = find_group(control, &group).await?;
            let config = control.call(RequestBody::AgentConfig { group }).await?;
            crate::install::agent_config(&config, out.as_deref(), json)
        }
        Command::Invite {
            group,
            minutes,
            max_devices,
        } => {
            let group = find_group(control, &group).await?;
            let invite = control
                .call(RequestBody::CreateInvite {
                    group,
                    expires_minutes: Some(minutes),
                    max_devices,
                })
                .await?;
            crate::install::invite(&invite, json)
        }
        command @ (Command::Rotatekey { .. }
        | Command::Listinvites { .. }
        | Command::Revokeinvite { .. }
        | Command::Listblocked { .. }
        | Command::Unblockdevice { .. }) => crate::enrolment::execute(control, command, json).await,
        Command::Shell { device, as_user } => {
            let device = find_device(control, &device).await?;
            exit_with(crate::shell::run(control, &device, as_user).await?)
        }
        Command::Screenshot {
            device,
            out,
            display,
        } => {
            let device = find_device(control, &device).await?;
            crate::screenshot::run(control, &device, &out, display, json).await
        }
        command @ (Command::Ls { .. }
        | Command::Upload { .. }
        | Command::Download { .. }
        | Command::Rm { .. }
        | Command::Mkdir { .. }
        | Command::Mv { .. }) => crate::files::execute(control, command, json).await,
        Command::Exec {
            device,
            as_user,
            command,
        } => {
            let device = find_device(control, &device).await?;
            exit_with(crate::exec::run(control, &device, command, as_user).await?)
        }
    }
}

/// A remote program's status as this process's outcome.
fn exit_with(status: i32) -> anyhow::Result<()> {
    match status {
        0 => Ok(()),
        status => Err(crate::relay::RemoteExit(status).into()),
    }
}

pub(crate) fn show(
    json: bool,
    value: &Value,
    human: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json {
        print_json(value);
    } else {
        print_human(&human());
    }
    Ok(())
}

fn admin_note(user: &Value) -> &'static str {
    if user["site_admin"].as_bool() == Some(true) {
        " (site administrator)"
    } else {
        ""
    }
}

/// A group by id, or by a name exactly one visible group has (ignoring case).
pub(crate) async fn find_group(control: &mut Control, wanted: &str) -> anyhow::Result<GroupId> {
    let groups = control.call(RequestBody::ListGroups).await?;
    let id = find_by_id_or_name(&groups, wanted, "device group")?;
    Ok(GroupId(id))
}

pub(crate) async fn find_device(control: &mut Control, wanted: &str) -> anyhow::Result<DeviceId> {
    let devices = control
        .call(RequestBody::ListDevices { group: None })
        .await?;
    let id = find_by_id_or_name(&devices, wanted, "device")?;
    Ok(DeviceId(id))
}

fn find_by_id_or_name(list: &Value, wanted: &str, what: &str) -> anyhow::Result<String> {
    let items = list
        .as_array()
        .context("the server sent an unexpected list")?;
    if let Some(item) = items
        .iter()
        .find(|item| item["id"].as_str() == Some(wanted))
    {
        return Ok(text(item, "id"));
    }
    let named: Vec<&Value> = items
        .iter()
        .filter(|item| {
            item["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(wanted))
        })
        .collect();
    match named.as_slice() {
        [one] => Ok(text(one, "id")),
        [] => bail!("no {what} with the id or name {wanted:?}"),
        several => bail!(
            "{} {what}s are named {wanted:?}; give the id instead",
            several.len()
        ),
    }
}

fn group_names(groups: &Value) -> HashMap<String, String> {
    let items = groups.as_array().map(Vec::as_slice).unwrap_or_default();
    items
        .iter()
        .map(|g| (text(g, "id"), text(g, "name")))
        .collect()
}

fn group_table(groups: &Value) -> String {
    let items = groups.as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|g| {
            let members = g["members"].as_array().map_or(0, Vec::len);
            vec![
                text(g, "name"),
                text(g, "id"),
                members.to_string(),
                text(g, "description"),
            ]
        })
        .collect();
    table(&["NAME", "ID", "MEMBERS", "DESCRIPTION"], &rows)
}

fn user_table(users: &Value) -> String {
    let items = users.as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|u| {
            let admin = if u["site_admin"].as_bool() == Some(true) {
                "yes"
            } else {
                ""
            };
            vec![
                text(u, "name"),
                text(u, "id"),
                admin.to_owned(),
                text(u, "email"),
            ]
        })
        .collect();
    table(&["NAME", "ID", "SITE ADMIN", "EMAIL"], &rows)
}

fn device_table(devices: &Value, group_names: &HashMap<String, String>) -> String {
    let items = devices.as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|d| {
            let group = text(d, "group");
            let online = if d["online"].as_bool() == Some(true) {
                "online"
            } else {
                "offline"
            };
            vec![
                text(d, "name"),
                group_names.get(&group).cloned().unwrap_or(group),
                online.to_owned(),
                text(d, "os"),
                time_secs(d["lastseen"].as_i64().unwrap_or_default()),
                text(d, "id"),
            ]
        })
        .collect();
    table(&["NAME", "GROUP", "STATE", "OS", "LAST SEEN", "ID"], &rows)
}

fn event_table(events: &Value) -> String {
    let items = events.as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|e| {
            let millis = e["time"].as_i64().unwrap_or_default();
            vec![
                time_secs(millis / 1000),
                text(e, "kind"),
                text(e, "user"),
                text(e, "message"),
            ]
        })
        .collect();
    table(&["TIME (UTC)", "KIND", "USER", "MESSAGE"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_by_id_then_by_unique_name() {
        let list = json!([
            {"id": "g1", "name": "Office"},
            {"id": "g2", "name": "Lab"},
            {"id": "g3", "name": "lab"},
        ]);
        assert_eq!(find_by_id_or_name(&list, "g2", "group").unwrap(), "g2");
        assert_eq!(find_by_id_or_name(&list, "office", "group").unwrap(), "g1");
        let twice = find_by_id_or_name(&list, "LAB", "group")
            .unwrap_err()
            .to_string();
        assert!(twice.contains("2 groups are named"), "{twice}");
        assert!(find_by_id_or_name(&list, "nowhere", "group").is_err());
    }
}
