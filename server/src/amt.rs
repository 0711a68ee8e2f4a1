//! Intel AMT's own services, reached through a machine's CIRA tunnel (`crate::mps`): its power,
//! over WS-Management, and its own web UI.
//!
//! - `amt/digest.rs`: HTTP Digest authentication (what AMT's web services ask for);
//! - `amt/wsman.rs`: the WS-Management calls for the power state and power changes;
//! - `amt/web.rs`: the web UI on port 16992, proxied under `/amt-web/TOKEN/`;
//! - the administrator passwords are sealed at rest by `crate::vault`.

pub(crate) mod digest;
pub(crate) mod web;
pub(crate) mod wsman;

use tether_common::apf::port;
use tether_common::control::{AmtPowerAction, AmtPowerState};
use tether_common::ids::DeviceId;

use crate::mps::AmtOnline;
use wsman::{PowerChange, Wsman, WsmanError};

#[derive(Debug, thiserror::Error)]
pub(crate) enum AmtError {
    #[error("{0}")]
    Channel(#[from] crate::mps::OpenError),
    #[error("WS-Management: {0}")]
    Wsman(#[from] WsmanError),
}

/// Carries out `action` on the machine and reads its power state afterwards.
pub(crate) async fn power(
    online: &AmtOnline,
    device: &DeviceId,
    user: &str,
    password: &str,
    action: AmtPowerAction,
) -> Result<AmtPowerState, AmtError> {
    let stream = online.open(device, port::WSMAN).await?;
    let mut wsman = Wsman::connect(stream, user, password).await?;
    let change = match action {
        AmtPowerAction::State => None,
        AmtPowerAction::On => Some(PowerChange::On),
        AmtPowerAction::Off => Some(PowerChange::Off),
        AmtPowerAction::Reset => Some(PowerChange::Reset),
        AmtPowerAction::Cycle => Some(PowerChange::Cycle),
    };
    if let Some(change) = change {
        wsman.change_power(change).await?;
    }
    Ok(AmtPowerState::of(wsman.power_state().await?))
}
