//! Intel AMT from the command line: `amtlogin GROUP` (the group's CIRA login, to provision
//! machines with), `amtadmin DEVICE --user U` (the machine's AMT administrator, password as for
//! `adduser`), `amtpower DEVICE state|on|off|reset|cycle`, and `amtweb DEVICE` (a link to the
//! machine's own web UI through the server).

use tether_common::control::{AmtPower, AmtPowerAction, CreateCiraLogin, OpenAmtWeb, SetAmtAdmin};

use crate::cli::Command;
use crate::commands::{find_device, find_group, show};
use crate::connection::Control;

pub(crate) async fn execute(
    control: &mut Control,
    command: Command,
    password: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        Command::Amtlogin { group } => {
            let group = find_group(control, &group).await?;
            let login = control.call(CreateCiraLogin { group }).await?;
            show(json, &login, || {
                format!(
                    "MPS server: {}:{}\nuser: {}\npassword: {} (shown once; a new login replaces it)\n\
                     trusted root certificate SHA-256: {}\n{}",
                    login.mps_host,
                    login.mps_port,
                    login.user,
                    login.password,
                    login.root_cert_sha256,
                    login.root_cert_pem.trim_end()
                )
            })
        }
        Command::Amtadmin { device, user, .. } => {
            let device = find_device(control, &device).await?;
            let password = password.ok_or_else(|| anyhow::anyhow!("no password was read"))?;
            let info = control
                .call(SetAmtAdmin {
                    device,
                    user,
                    password,
                })
                .await?;
            show(json, &info, || {
                format!("set the Intel AMT administrator of {}", info.name)
            })
        }
        Command::Amtpower { device, power } => {
            let device = find_device(control, &device).await?;
            let state = control.call(AmtPower { device, power }).await?;
            show(json, &state, || {
                format!("power: {} ({})", state.label, state.state)
            })
        }
        Command::Amtweb { device } => {
            let device = find_device(control, &device).await?;
            let mut link = control.call(OpenAmtWeb { device }).await?;
            link.path = format!("{}{}", control.https_origin(), link.path);
            show(json, &link, || link.path.clone())
        }
        other => unreachable!("not an AMT command: {other:?}"),
    }
}

/// `state`, `on`, `off`, `reset`, `cycle`.
pub(crate) fn parse_power(text: &str) -> Result<AmtPowerAction, String> {
    match text {
        "state" => Ok(AmtPowerAction::State),
        "on" => Ok(AmtPowerAction::On),
        "off" => Ok(AmtPowerAction::Off),
        "reset" => Ok(AmtPowerAction::Reset),
        "cycle" => Ok(AmtPowerAction::Cycle),
        other => Err(format!(
            "{other:?} is not one of state, on, off, reset, cycle"
        )),
    }
}
