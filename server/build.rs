//! Builds the web console (console/web, TypeScript + Svelte via Vite) into console/web/dist when it
//! is missing or older than its sources, so that `cargo run -p tether-server` on a fresh clone
//! serves the real UI. The server embeds dist/ (see src/http/console.rs).
//!
//! Needs Node.js 20+ with npm. `npm ci` runs only when node_modules is missing.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// What the built console depends on, relative to console/web.
const SOURCES: &[&str] = &[
    "src",
    "public",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "svelte.config.js",
    "tsconfig.json",
];

fn main() {
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let web = manifest.join("../console/web");
    for source in SOURCES {
        println!("cargo:rerun-if-changed={}", web.join(source).display());
    }
    // A deleted dist/ must be rebuilt, too.
    let built_index = web.join("dist/index.html");
    println!("cargo:rerun-if-changed={}", built_index.display());

    let newest_source = SOURCES
        .iter()
        .filter_map(|s| newest_mtime(&web.join(s)))
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if is_fresh(&built_index, newest_source) {
        return;
    }

    // Two builds at once (separate target dirs) must not write dist/ together.
    let lock =
        File::create(web.join(".build.lock")).expect("cannot create console/web/.build.lock");
    lock.lock().expect("cannot lock console/web/.build.lock");
    if is_fresh(&built_index, newest_source) {
        return;
    }

    check_npm();
    if !web.join("node_modules").is_dir() {
        run_npm(&web, &["ci", "--no-audit", "--no-fund"]);
    }
    run_npm(&web, &["run", "build"]);

    // Stamp the result with the sources' time, not "now": cargo compares watched paths with the
    // moment this script started, and a newer dist/index.html would make it run again next time.
    if let Ok(file) = File::options().write(true).open(&built_index) {
        let _ = file.set_modified(newest_source);
    }
}

fn is_fresh(built: &Path, newest_source: SystemTime) -> bool {
    fs::metadata(built)
        .and_then(|m| m.modified())
        .is_ok_and(|built| built >= newest_source)
}

/// The newest modification time of a file, or of any file under a directory.
fn newest_mtime(path: &Path) -> Option<SystemTime> {
    let metadata = fs::metadata(path).ok()?;
    if !metadata.is_dir() {
        return metadata.modified().ok();
    }
    fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| newest_mtime(&entry.path()))
        .max()
}

fn check_npm() {
    let found = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        panic!(
            "\n\nBuilding tether-server needs Node.js 20 or newer with npm, to build the web console \
             (console/web).\nInstall Node.js 20+ (e.g. `apt-get install nodejs npm`, or from nodejs.org), \
             then run the build again.\n\n"
        );
    }
}

fn run_npm(web: &Path, args: &[&str]) {
    let output = Command::new("npm")
        .args(args)
        .current_dir(web)
        .output()
        .unwrap_or_else(|e| panic!("cannot run npm {}: {e}", args.join(" ")));
    if !output.status.success() {
        panic!(
            "`npm {}` in console/web failed ({}):\n{}\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
