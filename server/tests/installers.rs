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

/// Runs `program args` and returns its stdout; panics with its output if it fails.
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Whether this test can run here: root (for chroot), debootstrap and dpkg-deb.
fn can_build_a_debian_root() -> bool {
    let root = nix_uid_is_root();
    let tools = ["debootstrap", "dpkg-deb", "chroot"].iter().all(|tool| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if root && tools {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the package test needs root, debootstrap and dpkg-deb under CI"
    );
    eprintln!("skipped: the package test needs root, debootstrap and dpkg-deb");
    false
}

fn nix_uid_is_root() -> bool {
    run("id", &["-u"]).trim() == "0"
}

/// The server's and the agent's `.deb`s (`installers/deb/build.sh`) install into a fresh Debian
/// (debootstrap minbase, a `policy-rc.d` that keeps services from starting), upgrade keeping the
/// data, and remove and purge cleanly: files, users and permissions as `installers/README.md`
/// says. Needs root and the network to Debian's mirror (`TETHER_DEBIAN_MIRROR`).
#[test]
fn the_debian_packages_install_upgrade_and_purge_in_a_fresh_debian() {
    if !can_build_a_debian_root() {
        return;
    }
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_tether-server"))
        .parent()
        .unwrap()
        .to_owned();
    let work = tempfile::tempdir().unwrap();
    let debs = work.path().join("debs");
    let build = installers().join("../deb/build.sh");
    for version in ["0.0.1", "0.0.2"] {
        run(
            "bash",
            &[
                &build.display().to_string(),
                version,
                &bin_dir.display().to_string(),
                &debs.display().to_string(),
            ],
        );
    }
    let root = work.path().join("root");
    let mirror = std::env::var("TETHER_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".to_owned());
    run(
        "debootstrap",
        &[
            "--variant=minbase",
            "bookworm",
            &root.display().to_string(),
            &mirror,
        ],
    );
    let policy = root.join("usr/sbin/policy-rc.d");
    std::fs::write(&policy, "#!/bin/sh\nexit 101\n").unwrap();
    std::fs::set_permissions(&policy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(&debs).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, root.join("tmp").join(path.file_name().unwrap())).unwrap();
    }
    let rootfs = root.display().to_string();
    let inside = |args: &[&str]| {
        let mut all = vec![rootfs.as_str()];
        all.extend_from_slice(args);
        run("chroot", &all)
    };
    let apt = |args: &[&str]| {
        let mut all = vec!["apt-get", "-y", "-qq", "--no-install-recommends"];
        all.extend_from_slice(args);
        inside(&all)
    };
    // Links inside the root point at its own absolute paths: look at the link, not its target.
    let exists =
        |path: &str| std::fs::symlink_metadata(root.join(path.trim_start_matches('/'))).is_ok();
    let wants = "etc/systemd/system/multi-user.target.wants";

    // The server: a system user, a private data folder, an enabled (not started) unit.
    apt(&["install", "/tmp/tether-server_0.0.1_amd64.deb"]);
    assert!(inside(&["getent", "passwd", "tether"]).contains(":/var/lib/tether:/usr/sbin/nologin"));
    assert_eq!(
        inside(&["stat", "-c", "%a %U %G", "/var/lib/tether"]).trim(),
        "700 tether tether"
    );
    assert!(inside(&["/usr/bin/tetherctl", "--version"]).contains("tetherctl"));
    assert!(
        exists(&format!("{wants}/tether-server.service")),
        "enabled at boot"
    );
    // An upgrade keeps the data.
    std::fs::write(root.join("var/lib/tether/kept"), "data").unwrap();
    apt(&["install", "/tmp/tether-server_0.0.2_amd64.deb"]);
    assert_eq!(
        inside(&["dpkg-query", "-W", "-f", "${Version}", "tether-server"]),
        "0.0.2"
    );
    assert!(exists("/var/lib/tether/kept"));
    // Remove keeps data and user; purge takes both.
    apt(&["remove", "tether-server"]);
    assert!(!exists("/usr/bin/tether-server") && exists("/var/lib/tether/kept"));
    assert!(inside(&["getent", "passwd", "tether"]).contains("tether"));
    apt(&["purge", "tether-server"]);
    assert!(!exists("/var/lib/tether"));
    assert!(!exists(&format!("{wants}/tether-server.service")));
    let user = Command::new("chroot")
        .args([rootfs.as_str(), "getent", "passwd", "tether"])
        .output()
        .unwrap();
    assert!(!user.status.success(), "the user is gone");

    // The agent: its libraries come from Debian (apt resolves them), and it runs.
    apt(&["update"]);
    apt(&["install", "/tmp/tether-agent_0.0.1_amd64.deb"]);
    assert!(inside(&["/usr/lib/tether-agent/tether-agent", "--version"]).contains("tether-agent"));
    assert_eq!(
        inside(&[
            "stat",
            "-c",
            "%a",
            "/etc/tether-agent",
            "/var/lib/tether-agent"
        ]),
        "700\n700\n"
    );
    assert!(exists(&format!("{wants}/tether-agent.service")));
    apt(&["install", "/tmp/tether-agent_0.0.2_amd64.deb"]);
    apt(&["purge", "tether-agent"]);
    assert!(
        !exists("/usr/lib/tether-agent")
            && !exists("/etc/tether-agent")
            && !exists("/var/lib/tether-agent")
    );
}

/// The macOS and Windows pieces cannot run here, so at least they must parse and agree with the
/// agent's service seam, which names the same daemon and service.
#[test]
fn the_macos_plist_and_the_windows_msi_name_what_the_agent_expects() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let seam =
        |file: &str| std::fs::read_to_string(root.join("agent/src/service").join(file)).unwrap();

    let plist = plist::Value::from_file(root.join("installers/macos/com.tether.agent.plist"))
        .expect("the launchd plist parses");
    let daemon = plist.as_dictionary().expect("a dictionary");
    let label = daemon
        .get("Label")
        .and_then(plist::Value::as_string)
        .unwrap();
    assert_eq!(label, "com.tether.agent");
    let launchd = seam("launchd.rs");
    assert!(launchd.contains(&format!("\"system/{label}\"")));
    assert!(launchd.contains(&format!("\"/Library/LaunchDaemons/{label}.plist\"")));
    let args: Vec<&str> = daemon
        .get("ProgramArguments")
        .and_then(plist::Value::as_array)
        .unwrap()
        .iter()
        .map(|a| a.as_string().unwrap())
        .collect();
    // Binary and .msh in one folder: what self-update requires of an install.
    let folder = Path::new(args[0]).parent().unwrap();
    assert_eq!(
        args[1..4],
        [
            "run",
            "--config",
            &*folder.join("agent.msh").to_string_lossy()
        ]
    );
    assert_eq!(
        daemon.get("KeepAlive").and_then(plist::Value::as_boolean),
        Some(true)
    );

    let wxs = std::fs::read_to_string(root.join("installers/windows/tether-agent.wxs")).unwrap();
    let mut reader = quick_xml::Reader::from_str(&wxs);
    let mut services = Vec::new();
    loop {
        match reader
            .read_event()
            .expect("the WiX source is well-formed XML")
        {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)
                if e.name().0 == "ServiceInstall" =>
            {
                let name = e
                    .try_get_attribute("Name")
                    .unwrap()
                    .expect("a service name")
                    .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .unwrap()
                    .into_owned();
                services.push(name);
            }
            _ => {}
        }
    }
    assert_eq!(services, ["TetherAgent"]);
    assert!(seam("windows.rs").contains("const SERVICE: &str = \"TetherAgent\";"));
}

/// The HAProxy example for several servers is a configuration HAProxy accepts.
#[test]
fn the_cluster_haproxy_example_is_valid() {
    let haproxy = Path::new("/usr/sbin/haproxy");
    if !haproxy.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is missing (apt install haproxy)"
        );
        eprintln!("skipped: haproxy is not installed");
        return;
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../installers/cluster/haproxy.cfg");
    let check = Command::new(haproxy)
        .arg("-c")
        .arg("-f")
        .arg(&example)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
