//! The systemd units in `installers/systemd/` pass `systemd-analyze verify` (syntax, directives,
//! sandboxing options this systemd knows), with their binaries pointed at this build's, since
//! verify checks that `ExecStart` exists. Skips, saying why, without systemd-analyze (not under CI).

use std::path::{Path, PathBuf};
use std::process::Command;

fn installers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../installers/systemd")
}

#[test]
fn the_systemd_units_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing (apt install systemd)"
        );
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let server = PathBuf::from(env!("CARGO_BIN_EXE_tether-server"));
    let agent = server.with_file_name("tether-agent");
    let dir = tempfile::tempdir().unwrap();
    let mut units = 0;
    for entry in std::fs::read_dir(installers()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("service") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let local = text
            .replace("/usr/bin/tether-server", &server.display().to_string())
            .replace(
                "/usr/lib/tether-agent/tether-agent",
                &agent.display().to_string(),
            );
        let copy = dir.path().join(path.file_name().unwrap());
        std::fs::write(&copy, local).unwrap();
        let verify = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&copy)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&verify.stderr);
        // Lines about units this machine lacks (no systemd running here) are not the unit's fault.
        let problems: Vec<&str> = said
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter(|l| !l.contains("network-online.target") && !l.contains("multi-user.target"))
            .collect();
        assert!(
            verify.status.success() && problems.is_empty(),
            "{}: {said}",
            path.display()
        );
        units += 1;
    }
    assert_eq!(units, 2, "the server's and the agent's unit");
}
