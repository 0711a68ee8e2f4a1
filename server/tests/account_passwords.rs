//! `tether-server --createaccount/--resetaccount` without the password on the command line
//! (where `ps` shows it to every local user): from TETHER_PASSWORD, or one line on standard
//! input with `--pass -`.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::TestServer;

/// Runs tether-server on `datapath` with `args`, `env` added (TETHER_PASSWORD unset otherwise)
/// and `stdin` on its standard input.
fn run_tether(datapath: &str, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether-server"))
        .arg("--datapath")
        .arg(datapath)
        .args(args)
        .env_remove("TETHER_PASSWORD")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tether-server");
    let mut input = child.stdin.take().expect("piped stdin");
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().expect("wait for tether-server")
}

fn assert_ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn account_passwords_come_from_the_environment_or_standard_input() {
    let mut server = TestServer::start().await;
    server.stop().await;
    let datapath = server.datapath.display().to_string();

    let created = run_tether(
        &datapath,
        &["--createaccount", "alice"],
        &[("TETHER_PASSWORD", "alice from the environment")],
        "",
    );
    assert!(assert_ok(&created).contains("created account alice (site administrator)"));

    let reset = run_tether(
        &datapath,
        &["--resetaccount", "alice", "--pass", "-"],
        &[],
        "alice from stdin\nnot this line\n",
    );
    assert!(assert_ok(&reset).contains("password of alice reset"));

    // No password anywhere and no terminal to ask on: refused, saying how to give one.
    let refused = run_tether(&datapath, &["--createaccount", "bob"], &[], "");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("TETHER_PASSWORD"), "{stderr}");
    let empty = run_tether(
        &datapath,
        &["--createaccount", "bob", "--pass", "-"],
        &[],
        "\n",
    );
    assert!(!empty.status.success());
    let no_bob = run_tether(
        &datapath,
        &["--resetaccount", "bob", "--pass", "x"],
        &[],
        "",
    );
    assert!(!no_bob.status.success(), "bob was never created");

    server.restart().await;
    server.login("alice", "alice from stdin").await;
    let old = server
        .http_client()
        .post(format!("{}/api/login", server.url))
        .json(&serde_json::json!({ "user": "alice", "password": "alice from the environment" }))
        .send()
        .await
        .unwrap();
    assert!(!old.status().is_success(), "the old password still works");
}
