//! The MeshCentral side: the real server from the npm registry, installed once into a cache
//! (`~/.cache/tether-bench/meshcentral`) and run with a fresh data folder per repetition.
//!
//! Its config keeps it offline and comparable: high ports, `WANonly`, certificate name
//! `127.0.0.1`, no agent time-stamping (which would call a time-stamp server), no Let's Encrypt
//! (simply not configured), no self-update, no backups, no native agent updates (our simulated
//! agents have no binary to hash), and `exactPorts` so it never wanders to another port. The data
//! and files paths point into the per-run folder, so the cache stays a plain npm install.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;
use tokio::process::Command;

use crate::server::{Kind, ServerSpec, Tools, Web};

pub(crate) const PORT: u16 = 21443;
pub(crate) const USER: &str = "bench";
pub(crate) const PASSWORD: &str = crate::tether::PASSWORD;

/// Where the npm install lives: `<cache>/node_modules/meshcentral`.
pub(crate) fn cache_dir() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache"),
    };
    Ok(base.join("tether-bench").join("meshcentral"))
}

/// The installed version, if any.
pub(crate) fn installed_version(cache: &Path) -> Option<String> {
    let text = std::fs::read_to_string(cache.join("node_modules/meshcentral/package.json")).ok()?;
    let package: serde_json::Value = serde_json::from_str(&text).ok()?;
    package["version"].as_str().map(str::to_owned)
}

/// `npm install meshcentral@VERSION` into the cache unless that version is already there.
/// Runs outside the namespace: the registry is the one outside connection the bench makes.
pub(crate) async fn install(cache: &Path, version: &str) -> anyhow::Result<()> {
    if installed_version(cache).as_deref() == Some(version) {
        return Ok(());
    }
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let package = cache.join("package.json");
    if !package.exists() {
        std::fs::write(
            &package,
            r#"{"name":"tether-bench-meshcentral","private":true}"#,
        )?;
    }
    eprintln!(
        "tether-bench: npm install meshcentral@{version} into {}",
        cache.display()
    );
    let status = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--omit=dev"])
        .arg(format!("meshcentral@{version}"))
        .current_dir(cache)
        .status()
        .await
        .context("running npm")?;
    if !status.success() {
        bail!("npm install meshcentral@{version} failed ({status})");
    }
    Ok(())
}

/// `node --version`, for the report.
pub(crate) async fn node_version() -> Option<String> {
    let output = Command::new("node").arg("--version").output().await.ok()?;
    Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// `meshcentral-data/config.json`.
pub(crate) fn config(port: u16, fastcert: bool) -> serde_json::Value {
    json!({
        "settings": {
            "cert": "127.0.0.1",
            "port": port,
            "redirPort": 0,
            "mpsPort": 0,
            "exactPorts": true,
            "WANonly": true,
            "agentTimeStampServer": false,
            "noAgentUpdate": true,
            "selfUpdate": false,
            "autoBackup": false,
            "fastCert": fastcert,
        },
        "domains": { "": { "title": "bench" } }
    })
}

/// A fresh MeshCentral in `dir`: config and account written offline with its own CLI, first
/// (cold) start timed, device group made with `meshctrl.js`, `.msh` fetched, then stopped.
pub(crate) async fn prepare(
    cache: &Path,
    dir: &Path,
    fastcert: bool,
    web: &Web,
    log: PathBuf,
) -> anyhow::Result<(ServerSpec, Duration)> {
    let root = dir.join("meshcentral");
    let data = root.join("data");
    let files = root.join("files");
    for folder in [&data, &files] {
        std::fs::create_dir_all(folder)?;
    }
    std::fs::write(
        data.join("config.json"),
        serde_json::to_string_pretty(&config(PORT, fastcert))?,
    )?;
    let main = cache.join("node_modules/meshcentral");
    let base_args: Vec<std::ffi::OsString> = vec![
        main.clone().into(),
        "--datapath".into(),
        data.into(),
        "--filespath".into(),
        files.into(),
    ];
    run_cli(
        &root,
        &base_args,
        &["--createaccount", USER, "--pass", PASSWORD],
    )
    .await?;
    run_cli(&root, &base_args, &["--adminaccount", USER]).await?;

    let spec = ServerSpec {
        kind: Kind::MeshCentral,
        program: "node".into(),
        args: base_args,
        cwd: root.clone(),
        base_url: format!("https://127.0.0.1:{PORT}"),
        user: USER.into(),
        password: PASSWORD.into(),
        msh: dir.join("meshcentral.msh"),
        log,
        tools: Tools::MeshCentral {
            install: main.clone(),
        },
    };
    let mut running = spec.start(web).await?;
    let made = make_group_msh(&main, &root, &spec, web).await;
    running.guard.stop().await;
    made?;
    Ok((spec, running.ready_after))
}

/// One offline MeshCentral command (`--createaccount`, `--adminaccount`): it prints "Done." and exits.
async fn run_cli(
    cwd: &Path,
    base_args: &[std::ffi::OsString],
    args: &[&str],
) -> anyhow::Result<()> {
    let output = Command::new("node")
        .args(base_args)
        .args(args)
        .current_dir(cwd)
        .output()
        .await
        .context("running node")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !stdout.contains("Done") {
        bail!(
            "meshcentral {} failed: {} {}",
            args[0],
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

async fn make_group_msh(
    main: &Path,
    cwd: &Path,
    spec: &ServerSpec,
    web: &Web,
) -> anyhow::Result<()> {
    let output = Command::new("node")
        .arg(main.join("meshctrl.js"))
        .args(["--url", &format!("wss://127.0.0.1:{PORT}")])
        .args(["--loginuser", USER, "--loginpass", PASSWORD])
        .args(["adddevicegroup", "--name", "bench"])
        .current_dir(cwd)
        .output()
        .await
        .context("running meshctrl.js")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let id = group_id_from_meshctrl(&stdout)
        .with_context(|| format!("meshctrl adddevicegroup said: {}", stdout.trim()))?;
    // Without `lockAgentDownload`, the install policy is served to anyone who knows the group id.
    let msh = web
        .get_text(&format!("{}/meshsettings?id={id}", spec.base_url), None)
        .await?;
    std::fs::write(&spec.msh, msh).with_context(|| format!("writing {}", spec.msh.display()))
}

/// `ok mesh//<id>` → `<id>` (the domain is the default, empty one).
pub(crate) fn group_id_from_meshctrl(output: &str) -> Option<&str> {
    output
        .lines()
        .find_map(|line| line.trim().strip_prefix("ok mesh//"))
        .map(str::trim)
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_meshcentral_offline_and_on_our_port() {
        let config = config(21443, false);
        let settings = &config["settings"];
        assert_eq!(settings["port"], 21443);
        assert_eq!(settings["WANonly"], true);
        assert_eq!(settings["cert"], "127.0.0.1");
        assert_eq!(settings["agentTimeStampServer"], false);
        assert_eq!(settings["redirPort"], 0);
        assert!(settings.get("letsencrypt").is_none() && config.get("letsencrypt").is_none());
    }

    #[test]
    fn reads_the_group_id_meshctrl_prints() {
        let out = "ok mesh//69kMP7eHwJu3ej6vshNfWr01F1WeBvpX$sw@I5eFERAF\n";
        assert_eq!(
            group_id_from_meshctrl(out),
            Some("69kMP7eHwJu3ej6vshNfWr01F1WeBvpX$sw@I5eFERAF")
        );
        assert_eq!(group_id_from_meshctrl("Invalid login."), None);
    }
}
