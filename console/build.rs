fn main() {
    // The Tauri config lives at the repository root (next to icons/), so point tauri-build at it;
    // paths inside it are relative to the root. App commands are listed so that each one needs
    // an explicit permission in capabilities/default.json.
    let attributes = tauri_build::Attributes::new()
        .config_path("../tauri.conf.json")
        .app_manifest(tauri_build::AppManifest::new().commands(&[
            "list_servers",
            "probe_server",
            "trust_server",
            "forget_server",
            "rtc_open",
            "rtc_answer",
            "rtc_candidate",
            "rtc_send",
            "rtc_close",
        ]));
    if let Err(error) = tauri_build::try_build(attributes) {
        panic!("tauri-build failed: {error:#}");
    }
}
