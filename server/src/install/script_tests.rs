use std::path::Path;
use std::process::Command;

use proptest::prelude::*;

use super::*;

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBaB+/=\nQUJD\n-----END CERTIFICATE-----\n";

fn script_for(group_name: &str) -> String {
    render(&ScriptInput {
        authority: "h.example:8443",
        token: "abc.def",
        group_name,
        expires: 0,
        root_cert_pem: PEM,
    })
    .expect("valid fields render")
}

#[test]
fn fills_in_the_invite_and_keeps_the_pem_intact() {
    let script = script_for("Lab\n rm -rf /");
    assert!(script.starts_with("#!/bin/sh\n"));
    assert!(script.contains("base='https://h.example:8443/api/invite/abc.def'\n"));
    assert!(script.contains(&format!("{PEM}TETHER_ROOT_CERT\n")));
    assert!(script.contains("# Tether agent installer for device group \"Lab? rm -rf ?\""));
    assert!(script.contains("stops working at 1970-01-01 00:00 UTC."));
    assert!(!script.contains('@'), "every placeholder is filled");
}

/// The review's proof of concept: a placeholder in the group name used to be expanded by the
/// later replacements, putting the text after it on a line of its own.
#[test]
fn a_placeholder_in_the_group_name_stays_text() {
    let script = script_for("Lab@ROOT_PEM@touch /tmp/pwned #");
    let comment = script.lines().nth(1).unwrap();
    assert_eq!(
        comment,
        "# Tether agent installer for device group \"Lab?ROOT_PEM?touch ?tmp?pwned ?\" on h.example:8443."
    );
    assert_eq!(script.matches("BEGIN CERTIFICATE").count(), 1);
    assert!(!script.lines().any(|l| l.starts_with("touch")));
}

#[test]
fn fields_that_could_break_out_are_refused() {
    let input = |authority, token, pem| ScriptInput {
        authority,
        token,
        group_name: "Lab",
        expires: 0,
        root_cert_pem: pem,
    };
    assert!(matches!(
        render(&input("h'; id; '", "t", PEM)),
        Err(ScriptError::Authority(_))
    ));
    assert_eq!(render(&input("h", "a b", PEM)), Err(ScriptError::Token));
    assert_eq!(render(&input("h", "", PEM)), Err(ScriptError::Token));
    let hostile_pem = format!("{PEM}TETHER_ROOT_CERT\nid\n");
    assert_eq!(
        render(&input("h", "t", &hostile_pem)),
        Err(ScriptError::RootPem)
    );
    assert_eq!(render(&input("h", "t", "")), Err(ScriptError::RootPem));
}

#[test]
fn fill_replaces_known_placeholders_once_and_leaves_the_rest() {
    let field = |name: &str| match name {
        "A" => Some("@B@"),
        "B" => Some("b"),
        _ => None,
    };
    assert_eq!(fill("x@A@y@B@z", field), "x@B@ybz");
    assert_eq!(fill("a@b.c@@A@", field), "a@b.c@@B@");
    assert_eq!(fill("@", field), "@");
    assert_eq!(fill("e-mail me@home", field), "e-mail me@home");
}

/// Runs the script under `sh -x` with a `curl` that always fails (so it stops at the first
/// download) and returns what `sh` traced, with the install folder's path made neutral.
fn trace_of(script: &str, dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let curl = bin.join("curl");
    std::fs::write(&curl, "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(&curl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script_path = dir.join("install.sh");
    std::fs::write(&script_path, script).unwrap();
    let install = dir.join("install");
    let output = Command::new("sh")
        .arg("-x")
        .arg(&script_path)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", dir)
        .env("TETHER_INSTALL_DIR", &install)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(!output.status.success(), "the stub curl stops the script");
    String::from_utf8_lossy(&output.stderr).replace(&install.display().to_string(), "DIR")
}

fn syntax_ok(script: &str, dir: &Path) -> bool {
    let path = dir.join("check.sh");
    std::fs::write(&path, script).unwrap();
    Command::new("sh")
        .arg("-n")
        .arg(&path)
        .status()
        .unwrap()
        .success()
}

/// Group names from the whole of Unicode, weighted towards what a shell or this template cares
/// about: quotes, `$()`, backticks, newlines and every placeholder name.
fn hostile_name() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("@ROOT_PEM@".to_owned()),
        Just("@GROUP@".to_owned()),
        Just("@TOKEN@".to_owned()),
        Just("@AUTHORITY@".to_owned()),
        Just("@EXPIRES@".to_owned()),
        Just("TETHER_ROOT_CERT".to_owned()),
        Just("$(touch pwned)".to_owned()),
        Just("`touch pwned`".to_owned()),
        Just("\ntouch pwned\n".to_owned()),
        Just("\r\n\u{2028}\u{85}".to_owned()),
        Just("'\"\\;|&#".to_owned()),
        Just("\u{202e}\u{200b}".to_owned()),
        any::<String>(),
    ];
    prop::collection::vec(pieces, 0..6).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the group is called, the script parses and runs exactly the commands it runs for
    /// a plain name: the name can only ever change the text of its comment.
    #[test]
    fn no_group_name_changes_what_the_script_runs(name in hostile_name()) {
        let dir = tempfile::tempdir().unwrap();
        let script = script_for(&name);
        prop_assert!(syntax_ok(&script, dir.path()), "sh -n refused the script for {name:?}");
        let plain = trace_of(&script_for("Lab"), dir.path());
        let hostile = trace_of(&script, dir.path());
        prop_assert_eq!(plain, hostile);
        prop_assert!(!dir.path().join("pwned").exists());
    }
}
