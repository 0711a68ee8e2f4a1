//! `tetherctl update status|start|pause|resume|cancel`: agent self-update in waves.

use tether_common::agent_update::{CampaignInfo, CampaignState, DeviceUpdateState};
use tether_common::control::{
    CancelAgentUpdate, GetAgentUpdates, PauseAgentUpdate, ResumeAgentUpdate, StartAgentUpdate,
};

use crate::cli::UpdateStep;
use crate::commands::{find_group, show};
use crate::connection::Control;
use crate::output::{table, time_secs};

pub(crate) async fn execute(
    control: &mut Control,
    step: UpdateStep,
    json: bool,
) -> anyhow::Result<()> {
    let campaign = match step {
        UpdateStep::Status => {
            let status = control.call(GetAgentUpdates {}).await?;
            return show(json, &status, || {
                let shipped = match &status.release {
                    Some(r) => format!(
                        "the server ships agent {} for {} ({} bytes, SHA-384 {}…)",
                        r.version,
                        r.platform,
                        r.size,
                        &r.sha384[..16.min(r.sha384.len())]
                    ),
                    None => format!("the server ships no agent: {}", status.problem),
                };
                match &status.campaign {
                    Some(campaign) => format!("{shipped}\n{}", describe(campaign)),
                    None => format!("{shipped}\nno update campaign since the server started"),
                }
            });
        }
        UpdateStep::Start {
            group,
            waves,
            wave_timeout,
            max_failures,
        } => {
            let group = match group {
                Some(group) => Some(find_group(control, &group).await?),
                None => None,
            };
            control
                .call(StartAgentUpdate {
                    group,
                    waves,
                    wave_timeout_secs: wave_timeout,
                    max_failures,
                })
                .await?
        }
        UpdateStep::Pause => control.call(PauseAgentUpdate {}).await?,
        UpdateStep::Resume => control.call(ResumeAgentUpdate {}).await?,
        UpdateStep::Cancel => control.call(CancelAgentUpdate {}).await?,
    };
    show(json, &campaign, || describe(&campaign))
}

/// The campaign in a few lines: where it is, the counts, then each device with a problem.
fn describe(c: &CampaignInfo) -> String {
    let state = match c.state {
        CampaignState::Running => format!("running, wave {} of {}", c.wave, c.waves.len()),
        CampaignState::Paused => format!("paused in wave {}: {}", c.wave, c.why),
        CampaignState::Done => "done".to_owned(),
        CampaignState::Cancelled => "cancelled".to_owned(),
    };
    let n = &c.counts;
    let mut out = format!(
        "campaign {} to {}: {state}\n{} devices: {} updated, {} offered, {} waiting, {} failed, {} rolled back\nwaves {:?} %, {} s per device, at most {} failures per wave; started {} by {}",
        c.id,
        c.version,
        c.total,
        n.updated,
        n.offered,
        n.waiting,
        n.failed,
        n.rolled_back,
        c.waves,
        c.wave_timeout_secs,
        c.max_failures,
        time_secs(c.started_at as i64),
        c.started_by,
    );
    if !c.problems.is_empty() {
        let rows: Vec<Vec<String>> = c
            .problems
            .iter()
            .map(|p| {
                let state = match p.state {
                    DeviceUpdateState::RolledBack => "rolled back",
                    _ => "failed",
                };
                vec![p.name.clone(), state.to_owned(), p.why.clone()]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(&["DEVICE", "STATE", "WHY"], &rows));
    }
    out
}
