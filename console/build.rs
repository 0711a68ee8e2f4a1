fn main() {
    // App commands are listed so that each one needs an explicit permission (the picker's in
    // capabilities/default.json, a trusted server's page's in src/remote_access.rs).
    let attributes =
        tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(&[
            "list_servers",
            "probe_server",
            "trust_server",
            "forget_server",
            "rtc_open",
            "rtc_take",
            "rtc_answer",
            "rtc_candidate",
            "rtc_send",
            "rtc_close",
            "sound_outputs",
            "sound_inputs",
            "sound_open",
            "sound_push",
            "sound_close",
            "notify_settings",
            "notify_configure",
            "notify",
            "call_start",
            "call_take",
            "call_answer",
            "call_candidate",
            "call_mute",
            "call_end",
        ]));
    if let Err(error) = tauri_build::try_build(attributes) {
        panic!("tauri-build failed: {error:#}");
    }
}
