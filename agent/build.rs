//! The agent's version: the package version, or `TETHER_AGENT_VERSION` when set at build time (the
//! update tests build agents at two versions; a packager may add a suffix). Checked here so a bad
//! value fails the build rather than every update offer.

fn main() {
    println!("cargo:rerun-if-env-changed=TETHER_AGENT_VERSION");
    let version = std::env::var("TETHER_AGENT_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| std::env::var("CARGO_PKG_VERSION").unwrap_or_default());
    let plain = version.starts_with(|c: char| c.is_ascii_digit())
        && version.len() <= 64
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'));
    assert!(
        plain,
        "TETHER_AGENT_VERSION {version:?}: 1-64 of 0-9 A-Z a-z . + -, starting with a digit"
    );
    println!("cargo:rustc-env=TETHER_AGENT_VERSION={version}");
}
