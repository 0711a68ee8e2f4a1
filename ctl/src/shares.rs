//! Guest sharing links: `share` makes one and prints it, `shares` lists them, `unshare` ends one
//! and the sessions opened with it.

use tether_common::control::{CreateShare, ListShares, RevokeShare};
use tether_common::share::{ShareInfo, ShareStatus};

use crate::cli::Command;
use crate::commands::{find_device, show};
use crate::connection::Control;
use crate::output::{table, time_secs};

pub(crate) async fn execute(
    control: &mut Control,
    command: Command,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        Command::Share {
            device,
            kind,
            minutes,
            single_use,
            label,
        } => {
            let device = find_device(control, &device).await?;
            let link = control
                .call(CreateShare {
                    device,
                    kind: kind.kind(),
                    minutes,
                    single_use,
                    label,
                })
                .await?;
            if !json {
                eprintln!(
                    "tetherctl: guest link {} to {} ({}), until {}; it is shown only now",
                    link.share.id,
                    link.share.device_name,
                    link.share.kind.describe(),
                    time_secs(link.share.expires_ms / 1000)
                );
            }
            show(json, &link, || link.url.clone())
        }
        Command::Shares { device } => {
            let device = match device {
                Some(device) => Some(find_device(control, &device).await?),
                None => None,
            };
            let shares = control.call(ListShares { device }).await?;
            show(json, &shares, || share_table(&shares))
        }
        Command::Unshare { share } => {
            let revoked = control.call(RevokeShare { share }).await?;
            show(json, &revoked, || {
                format!(
                    "revoked guest link {} to {}",
                    revoked.id, revoked.device_name
                )
            })
        }
        _ => unreachable!("only sharing commands are sent here"),
    }
}

fn share_table(shares: &[ShareInfo]) -> String {
    let rows: Vec<Vec<String>> = shares
        .iter()
        .map(|s| {
            let status = match s.status {
                ShareStatus::Active => "active",
                ShareStatus::Expired => "expired",
                ShareStatus::Used => "used",
                ShareStatus::Revoked => "revoked",
            };
            vec![
                s.id.clone(),
                s.device_name.clone(),
                s.kind.describe().to_owned(),
                s.label.clone(),
                s.creator.to_string(),
                time_secs(s.expires_ms / 1000),
                s.uses.to_string(),
                status.to_owned(),
            ]
        })
        .collect();
    table(
        &[
            "ID", "DEVICE", "KIND", "LABEL", "BY", "UNTIL", "USES", "STATUS",
        ],
        &rows,
    )
}
