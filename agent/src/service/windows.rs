//! The Windows service control manager, through the `windows-service` crate. NEVER COMPILED OR
//! RUN: written from that crate's documentation; see `installers/README.md`. The service itself
//! ("TetherAgent", installed by `installers/windows/tether-agent.wxs`) is configured to restart
//! on failure, which is how an update comes into effect: Windows cannot replace a running
//! program's file, but it can rename it.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use windows_service::service::{ServiceAccess, ServiceState};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

const SERVICE: &str = "TetherAgent";

fn open_service(
    access: ServiceAccess,
) -> anyhow::Result<Option<windows_service::service::Service>> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)?;
    match manager.open_service(SERVICE, access) {
        Ok(service) => Ok(Some(service)),
        // ERROR_SERVICE_DOES_NOT_EXIST: not installed as a service.
        Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(1060) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Stops the service, waits for it to stop (a minute at most), and deletes it.
pub(crate) fn remove() -> anyhow::Result<()> {
    let access = ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE;
    let Some(service) = open_service(access)? else {
        return Ok(());
    };
    if service.query_status()?.current_state != ServiceState::Stopped {
        let _ = service.stop();
        for _ in 0..60 {
            if service.query_status()?.current_state == ServiceState::Stopped {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    service.delete()?;
    println!("tether-agent uninstall: stopped and removed the {SERVICE} service");
    Ok(())
}

/// From inside the service: mark it for deletion (done when it stops), then ask it to stop.
pub(crate) fn remove_self() -> anyhow::Result<()> {
    let Some(service) = open_service(ServiceAccess::STOP | ServiceAccess::DELETE)? else {
        return Ok(());
    };
    service.delete()?;
    let _ = service.stop();
    Ok(())
}

/// The new binary is already in place (the old one renamed): exit with a failure code so the
/// service manager's recovery action starts the service again, from the new file. An agent run
/// by hand just ends here and is started again by whoever started it.
pub(crate) fn restart_as(_exe: &Path, _args: &[OsString]) -> anyhow::Error {
    println!("tether-agent exiting for the service manager to start the new version");
    std::process::exit(3)
}
