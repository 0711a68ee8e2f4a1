//! One function per command: build the request(s), print the answer.

use std::collections::HashMap;

use anyhow::{Context, bail};
use tether_common::control::{
    AddUser, CreateGroup, CreateInvite, DeleteDevice, DeleteGroup, DeviceInfo, EditGroup, EditUser,
    EventRecord, GetAgentConfig, GetServerInfo, GetWhoAmI, GroupInfo, ListDevices, ListEvents,
    ListGroups, ListRecordings, ListUsers, RemoveUser, RenameDevice, ResetPassword, SetGroupRights,
    UninstallAgent, UserInfo,
};
use tether_common::ids::{DeviceId, GroupId, UserId};
use tether_common::relay::consent::{ConsentMode, ConsentPolicy, WhenNobody};
use tether_common::rights::Rights;

use crate::cli::{Cli, Command, Switch};
use crate::connection::Control;
use crate::output::{print_human, print_json, table, time_secs};

pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    // Checked before connecting, so a typo does not cost a login.
    if let Command::Grouprights { rights, .. } = &cli.command {
        Rights::parse(rights)?;
    }
    // Read (or asked for) before connecting, so a prompt cannot outlast the login.
    let new_password = match &cli.command {
        Command::Adduser { name, password, .. } | Command::Resetpassword { name, password } => {
            Some(crate::password::new_password(password, name)?)
        }
        Command::Amtadmin { user, password, .. } => {
            Some(crate::password::new_password(password, user)?)
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
            let info = control.call(GetServerInfo {}).await?;
            show(json, &info, || {
                let field = |name: &str, value: String| vec![name.to_owned(), value];
                let rows = vec![
                    field("name", info.name.clone()),
                    field("version", info.version.clone()),
                    field("protocol", info.protocol.to_string()),
                    field("https port", info.https_port.to_string()),
                    field("agent cert hash", info.agent_cert_hash.clone()),
                    field("web cert hash", info.web_cert_hash.clone()),
                ];
                table(&["FIELD", "VALUE"], &rows)
            })
        }
        Command::Whoami => {
            let me = control.call(GetWhoAmI {}).await?;
            show(json, &me, || {
                format!("{}{}", me.user.name, admin_note(&me.user))
            })
        }
        Command::Listgroups => {
            let groups = control.call(ListGroups {}).await?;
            show(json, &groups, || group_table(&groups))
        }
        Command::Addgroup { name, description } => {
            let group = control.call(CreateGroup { name, description }).await?;
            show(json, &group, || {
                format!("created device group {} ({})", group.name, group.id)
            })
        }
        Command::Editgroup {
            group,
            name,
            description,
            direct,
            record,
            transcripts,
            microphone,
            consent,
        } => {
            let current = find_group_info(control, &group).await?;
            let edited = control
                .call(EditGroup {
                    group: current.id,
                    name,
                    description,
                    direct_connections: direct.map(Switch::is_on),
                    record_sessions: record.map(Switch::is_on),
                    chat_transcripts: transcripts.map(Switch::is_on),
                    microphone: microphone.map(Switch::is_on),
                    consent: consent.apply(current.consent),
                })
                .await?;
            show(json, &edited, || group_table(std::slice::from_ref(&edited)))
        }
        Command::Removegroup { group } => {
            let group = find_group(control, &group).await?;
            let done = control
                .call(DeleteGroup {
                    group: group.clone(),
                })
                .await?;
            show(json, &done, || {
                format!("deleted device group {group} and its devices")
            })
        }
        Command::Listusers => {
            let users = control.call(ListUsers {}).await?;
            show(json, &users, || user_table(&users))
        }
        Command::Adduser {
            name,
            email,
            siteadmin,
            ..
        } => {
            let body = AddUser {
                name,
                password: new_password.context("no password was read")?,
                email,
                site_admin: siteadmin,
            };
            let user = control.call(body).await?;
            show(json, &user, || {
                format!("created account {}{}", user.name, admin_note(&user))
            })
        }
        Command::Removeuser { name } => {
            let result = control
                .call(RemoveUser {
                    user: UserId::from_name(&name),
                })
                .await?;
            show(json, &result, || format!("removed account {name}"))
        }
        Command::Resetpassword { name, .. } => {
            let user = UserId::from_name(&name);
            let password = new_password.context("no password was read")?;
            let result = control.call(ResetPassword { user, password }).await?;
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
            let body = EditUser {
                user: UserId::from_name(&name),
                email,
                site_admin: siteadmin,
            };
            let user = control.call(body).await?;
            show(json, &user, || {
                format!("updated account {}{}", user.name, admin_note(&user))
            })
        }
        Command::Grouprights {
            group,
            user,
            rights,
        } => {
            let rights = Rights::parse(&rights)?;
            let group = find_group(control, &group).await?;
            let body = SetGroupRights {
                group,
                user: UserId::from_name(&user),
                rights,
            };
            let result = control.call(body).await?;
            show(json, &result, || {
                format!(
                    "{user} now holds '{rights}' on device group {}",
                    result.name
                )
            })
        }
        Command::Listdevices { group } => {
            let group = match group {
                Some(group) => Some(find_group(control, &group).await?),
                None => None,
            };
            let devices = control.call(ListDevices { group }).await?;
            if json {
                print_json(&devices);
                return Ok(());
            }
            let groups = control.call(ListGroups {}).await?;
            println!("{}", device_table(&devices, &group_names(&groups)));
            Ok(())
        }
        Command::Renamedevice { device, name } => {
            let device = find_device(control, &device).await?;
            let result = control.call(RenameDevice { device, name }).await?;
            show(json, &result, || {
                format!("renamed device {} to {}", result.id, result.name)
            })
        }
        Command::Removedevice { device, block } => {
            let device = find_device(control, &device).await?;
            let result = control
                .call(DeleteDevice {
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
        Command::Uninstallagent { device } => {
            let device = find_device(control, &device).await?;
            let info = control
                .call(UninstallAgent {
                    device: device.clone(),
                })
                .await?;
            show(json, &info, || {
                format!("asked the agent on {} to uninstall itself", info.name)
            })
        }
        Command::Recordings { device } => {
            let device = match device {
                Some(device) => Some(find_device(control, &device).await?),
                None => None,
            };
            let recordings = control.call(ListRecordings { device }).await?;
            show(json, &recordings, || {
                recordings
                    .iter()
                    .map(|r| {
                        format!(
                            "{}  {}  {} on {}  {:.0} s  {} bytes  {}",
                            time_secs(r.started_ms / 1000),
                            r.kind,
                            r.user,
                            r.device_name,
                            r.duration_ms as f64 / 1000.0,
                            r.bytes,
                            r.id
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        Command::Recording { id, out, asciicast } => {
            // Ids are the relay's base64url: nothing else may reach the URL.
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                bail!("{id:?} is not a recording id (see tetherctl recordings)");
            }
            let format = if asciicast { "?format=asciicast" } else { "" };
            let bytes = control
                .http_get(&format!("/api/recordings/{id}{format}"), 1 << 30)
                .await?;
            std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            if !json {
                println!("saved {} bytes to {}", bytes.len(), out.display());
            }
            Ok(())
        }
        Command::Events {
            limit,
            group,
            device,
            user,
            kind,
            text,
            hours,
        } => {
            let group = match group {
                Some(group) => Some(find_group(control, &group).await?),
                None => None,
            };
            let device = match device {
                Some(device) => Some(find_device(control, &device).await?),
                None => None,
            };
            let since_ms = hours.map(|h| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                now - i64::from(h) * 3_600_000
            });
            let events = control
                .call(ListEvents {
                    limit,
                    group,
                    device,
                    user: user.map(|name| UserId::from_name(&name)),
                    kind,
                    text,
                    since_ms,
                    ..Default::default()
                })
                .await?;
            show(json, &events, || event_table(&events))
        }
        Command::Agentconfig { group, out } => {
            let group = find_group(control, &group).await?;
            let config = control.call(GetAgentConfig { group }).await?;
            crate::install::agent_config(&config, out.as_deref(), json)
        }
        Command::Invite {
            group,
            minutes,
            max_devices,
        } => {
            let group = find_group(control, &group).await?;
            let invite = control
                .call(CreateInvite {
                    group,
                    expires_minutes: Some(minutes),
                    max_devices,
                })
                .await?;
            crate::install::invite(&invite, json)
        }
        command @ (Command::Amtlogin { .. }
        | Command::Amtadmin { .. }
        | Command::Amtpower { .. }
        | Command::Amtweb { .. }) => {
            crate::amt::execute(control, command, new_password, json).await
        }
        command @ (Command::Rotatekey { .. }
        | Command::Importmeshid { .. }
        | Command::Listinvites { .. }
        | Command::Revokeinvite { .. }
        | Command::Listblocked { .. }
        | Command::Unblockdevice { .. }) => crate::enrolment::execute(control, command, json).await,
        Command::Update { step } => crate::updates::execute(control, step, json).await,
        command @ (Command::Share { .. } | Command::Shares { .. } | Command::Unshare { .. }) => {
            crate::shares::execute(control, command, json).await
        }
        Command::Shell {
            device, as_user, ..
        } => {
            let device = find_device(control, &device).await?;
            exit_with(crate::shell::run(control, &device, as_user).await?)
        }
        Command::Chat { device, text } => {
            let device = find_device(control, &device).await?;
            crate::chat::run(control, &device, text, json).await
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
            ..
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
    value: &impl serde::Serialize,
    human: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json {
        print_json(value);
    } else {
        print_human(&human());
    }
    Ok(())
}

fn admin_note(user: &UserInfo) -> &'static str {
    if user.site_admin {
        " (site administrator)"
    } else {
        ""
    }
}

/// A group by id, or by a name exactly one visible group has (ignoring case).
pub(crate) async fn find_group(control: &mut Control, wanted: &str) -> anyhow::Result<GroupId> {
    Ok(find_group_info(control, wanted).await?.id)
}

async fn find_group_info(control: &mut Control, wanted: &str) -> anyhow::Result<GroupInfo> {
    let groups = control.call(ListGroups {}).await?;
    let named = groups.iter().map(|g| (&g.id, g.name.as_str()));
    let id = find_by_id_or_name(named, wanted, "device group")?.clone();
    Ok(groups
        .into_iter()
        .find(|g| g.id == id)
        .expect("found among these groups"))
}

pub(crate) async fn find_device(control: &mut Control, wanted: &str) -> anyhow::Result<DeviceId> {
    let devices = control.call(ListDevices { group: None }).await?;
    let named = devices.iter().map(|d| (&d.id, d.name.as_str()));
    Ok(find_by_id_or_name(named, wanted, "device")?.clone())
}

/// The id of the item whose id is `wanted`, else of the one item named `wanted` (ignoring case).
fn find_by_id_or_name<'a, Id: AsRef<str> + 'a>(
    items: impl Iterator<Item = (&'a Id, &'a str)> + Clone,
    wanted: &str,
    what: &str,
) -> anyhow::Result<&'a Id> {
    if let Some((id, _)) = items.clone().find(|(id, _)| id.as_ref() == wanted) {
        return Ok(id);
    }
    let named: Vec<&Id> = items
        .filter(|(_, name)| name.eq_ignore_ascii_case(wanted))
        .map(|(id, _)| id)
        .collect();
    match named.as_slice() {
        [one] => Ok(one),
        [] => bail!("no {what} with the id or name {wanted:?}"),
        several => bail!(
            "{} {what}s are named {wanted:?}; give the id instead",
            several.len()
        ),
    }
}

fn group_names(groups: &[GroupInfo]) -> HashMap<&GroupId, &str> {
    groups.iter().map(|g| (&g.id, g.name.as_str())).collect()
}

fn group_table(groups: &[GroupInfo]) -> String {
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                g.name.clone(),
                g.id.to_string(),
                g.members.len().to_string(),
                if g.direct_connections { "on" } else { "off" }.to_owned(),
                if g.record_sessions { "on" } else { "off" }.to_owned(),
                if g.chat_transcripts { "on" } else { "off" }.to_owned(),
                consent_summary(&g.consent),
                g.description.clone(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "ID",
            "MEMBERS",
            "DIRECT",
            "RECORD",
            "TRANSCRIPTS",
            "CONSENT",
            "DESCRIPTION",
        ],
        &rows,
    )
}

/// `desktop:prompt terminal:notify (30 s, nobody: refuse)`, or `none`.
fn consent_summary(policy: &ConsentPolicy) -> String {
    let parts: Vec<String> = [
        ("desktop", policy.desktop),
        ("terminal", policy.terminal),
        ("files", policy.files),
    ]
    .into_iter()
    .filter(|(_, mode)| *mode != ConsentMode::None)
    .map(|(kind, mode)| {
        let mode = if mode == ConsentMode::Prompt {
            "prompt"
        } else {
            "notify"
        };
        format!("{kind}:{mode}")
    })
    .collect();
    if parts.is_empty() {
        return "none".to_owned();
    }
    let nobody = match policy.when_nobody {
        WhenNobody::Allow => "allow",
        WhenNobody::Refuse => "refuse",
    };
    format!(
        "{} ({} s, nobody: {nobody})",
        parts.join(" "),
        policy.prompt_secs
    )
}

fn user_table(users: &[UserInfo]) -> String {
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            let admin = if u.site_admin { "yes" } else { "" };
            vec![
                u.name.clone(),
                u.id.to_string(),
                admin.to_owned(),
                u.email.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["NAME", "ID", "SITE ADMIN", "EMAIL"], &rows)
}

fn device_table(devices: &[DeviceInfo], group_names: &HashMap<&GroupId, &str>) -> String {
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            let group = match group_names.get(&d.group) {
                Some(name) => (*name).to_owned(),
                None => d.group.to_string(),
            };
            let online = if d.online { "online" } else { "offline" };
            vec![
                d.name.clone(),
                group,
                online.to_owned(),
                d.os.clone(),
                time_secs(d.lastseen),
                d.id.to_string(),
            ]
        })
        .collect();
    table(&["NAME", "GROUP", "STATE", "OS", "LAST SEEN", "ID"], &rows)
}

fn event_table(events: &[EventRecord]) -> String {
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                time_secs(e.time / 1000),
                e.kind.clone(),
                e.user.as_ref().map(UserId::to_string).unwrap_or_default(),
                e.message.clone(),
            ]
        })
        .collect();
    table(&["TIME (UTC)", "KIND", "USER", "MESSAGE"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_id_then_by_unique_name() {
        let list: Vec<(GroupId, &str)> = vec![
            ("g1".into(), "Office"),
            ("g2".into(), "Lab"),
            ("g3".into(), "lab"),
        ];
        let items = || list.iter().map(|(id, name)| (id, *name));
        let found = |wanted| find_by_id_or_name(items(), wanted, "group").map(GroupId::as_str);
        assert_eq!(found("g2").unwrap(), "g2");
        assert_eq!(found("office").unwrap(), "g1");
        let twice = found("LAB").unwrap_err().to_string();
        assert!(twice.contains("2 groups are named"), "{twice}");
        assert!(found("nowhere").is_err());
    }
}
