//! Two-factor sign-in end to end against the real server: setting TOTP up over `/control`, signing
//! in with a code or a backup code through `POST /api/login` and `tetherctl --otp`, codes that
//! work once, the login limits covering wrong codes, turning it off, an administrator's reset, and
//! the site policy that makes administrators set it up before anything else.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{ControlClient, TestServer};
use serde_json::{Value, json};
use tether_common::control::{
    AddUser, BackupCodes, BeginTotp, ConfirmTotp, DisableTotp, ErrorCode, GetWhoAmI, ListEvents,
    ListGroups, NewBackupCodes, ResetSecondFactor, TotpSetup,
};
use totp_rs::{Builder, Secret};

const ADMIN: (&str, &str) = ("admin", "correct horse battery staple");

/// The authenticator app: the code for `secret` at `now + offset` seconds.
fn app_code(setup: &TotpSetup, offset: i64) -> String {
    let secret = Secret::try_from_base32(&setup.secret).expect("base32");
    let totp = Builder::new()
        .with_secret(secret)
        .build()
        .expect("a valid TOTP");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    totp.generate((now + offset) as u64).to_string()
}

/// `POST /api/login` with an optional code: (status, the error code of a refusal).
async fn log_in(server: &TestServer, user: (&str, &str), otp: Option<&str>) -> (u16, String) {
    let mut body = json!({ "user": user.0, "password": user.1 });
    if let Some(otp) = otp {
        body["otp"] = json!(otp);
    }
    let response = server
        .http_client()
        .post(format!("{}/api/login", server.url))
        .json(&body)
        .send()
        .await
        .expect("POST /api/login");
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap_or_default();
    (
        status,
        answer["error"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Sets TOTP up for the console's account; the setup and the backup codes.
async fn enrol(control: &mut ControlClient) -> (TotpSetup, BackupCodes) {
    let setup = control.ok(BeginTotp {}).await;
    let wrong = ConfirmTotp {
        code: "000000".into(),
    };
    // (One chance in a million that 000000 is the current code.)
    assert_eq!(control.refused(wrong).await, ErrorCode::BadRequest);
    let codes = control
        .ok(ConfirmTotp {
            code: app_code(&setup, 0),
        })
        .await;
    (setup, codes)
}

#[tokio::test]
async fn totp_and_backup_codes_sign_in_once_each_and_an_admin_can_reset_them() {
    let server = TestServer::start().await;
    server.create_admin(ADMIN.0, ADMIN.1).await;
    let cookie = server.login(ADMIN.0, ADMIN.1).await;
    let mut admin = server.control(&cookie).await;
    let (setup, backup) = enrol(&mut admin).await;
    assert!(setup.uri.starts_with("otpauth://totp/"), "{}", setup.uri);
    assert!(setup.qr_svg.contains("<svg"));
    assert_eq!(backup.codes.len(), 10);
    assert!(admin.ok(GetWhoAmI {}).await.user.second_factor);

    // The password alone is not enough any more, and says what is missing.
    assert_eq!(
        log_in(&server, ADMIN, None).await,
        (401, "second_factor_required".into())
    );
    assert_eq!(
        log_in(&server, ADMIN, Some("123456")).await.1,
        "bad_second_factor"
    );
    // The code that confirmed the setup was spent; the app's next one works, once.
    assert_eq!(
        log_in(&server, ADMIN, Some(&app_code(&setup, 0))).await.1,
        "bad_second_factor"
    );
    let next = app_code(&setup, 30);
    assert_eq!(log_in(&server, ADMIN, Some(&next)).await.0, 200);
    assert_eq!(
        log_in(&server, ADMIN, Some(&next)).await.1,
        "bad_second_factor"
    );
    // A backup code, typed any way, works once.
    let typed = backup.codes[0].to_uppercase().replace('-', " ");
    assert_eq!(log_in(&server, ADMIN, Some(&typed)).await.0, 200);
    assert_eq!(
        log_in(&server, ADMIN, Some(&backup.codes[0])).await.1,
        "bad_second_factor"
    );

    // tetherctl: --otp, and a clear line without it.
    let run = |otp: Option<&str>| {
        let mut command = tokio::process::Command::new(
            std::path::Path::new(env!("CARGO_BIN_EXE_tether-server")).with_file_name("tetherctl"),
        );
        command
            .env("TETHER_URL", format!("wss://127.0.0.1:{}", server.port))
            .env("TETHER_USER", ADMIN.0)
            .env("TETHER_PASS", ADMIN.1)
            .env_remove("TETHER_OTP")
            .env(
                "TETHER_KNOWN_SERVERS",
                server.file("known_servers_for_test"),
            )
            .arg("--trust-root")
            .arg(server.file("root-cert-public.crt"));
        if let Some(otp) = otp {
            command.env("TETHER_OTP", otp);
        }
        command.arg("whoami");
        command
    };
    let output = run(None).output().await.expect("run tetherctl");
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("--otp"), "{err}");
    let output = run(Some(&backup.codes[1])).output().await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // New backup codes replace the old ones; then a backup code turns the second factor off.
    let renewed = admin
        .ok(NewBackupCodes {
            code: backup.codes[2].clone(),
        })
        .await;
    assert_eq!(
        log_in(&server, ADMIN, Some(&backup.codes[3])).await.1,
        "bad_second_factor",
        "old codes are gone"
    );
    let off = admin
        .ok(DisableTotp {
            code: renewed.codes[0].clone(),
        })
        .await;
    assert!(!off.second_factor);
    assert_eq!(log_in(&server, ADMIN, None).await.0, 200);

    // Bob loses his phone; a site administrator turns his second factor off, and it is logged.
    admin
        .ok(AddUser {
            name: "bob".into(),
            password: "correct horse battery 2".into(),
            email: None,
            site_admin: false,
        })
        .await;
    let bob_login = ("bob", "correct horse battery 2");
    let bob_cookie = server.login(bob_login.0, bob_login.1).await;
    let mut bob = server.control(&bob_cookie).await;
    enrol(&mut bob).await;
    assert_eq!(
        log_in(&server, bob_login, None).await.1,
        "second_factor_required"
    );
    assert_eq!(
        bob.refused(ResetSecondFactor {
            user: "admin".into()
        })
        .await,
        ErrorCode::Forbidden
    );
    let reset = admin.ok(ResetSecondFactor { user: "bob".into() }).await;
    assert!(!reset.second_factor);
    assert_eq!(log_in(&server, bob_login, None).await.0, 200);
    let records = admin
        .ok(ListEvents {
            limit: None,
            group: None,
            device: None,
            ..Default::default()
        })
        .await;
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    for kind in [
        "second_factor_on",
        "backup_codes_renewed",
        "second_factor_off",
        "second_factor_reset",
    ] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }
    assert!(
        records
            .iter()
            .any(|r| r.message.contains("logged in from")
                && r.message.ends_with("with a backup code")),
        "{records:?}"
    );
    // No code or secret in the log.
    let log = server.stderr();
    assert!(!log.contains(&setup.secret) && !log.contains(&backup.codes[4]));
}

#[tokio::test]
async fn wrong_codes_spend_the_login_limit() {
    let server = TestServer::start_with_config("login_limit_per_account = 3\n").await;
    server.create_admin(ADMIN.0, ADMIN.1).await;
    let cookie = server.login(ADMIN.0, ADMIN.1).await;
    let mut admin = server.control(&cookie).await;
    let (setup, _) = enrol(&mut admin).await;
    // Asking for the code is no failure: the password was right.
    for _ in 0..4 {
        assert_eq!(
            log_in(&server, ADMIN, None).await.1,
            "second_factor_required"
        );
    }
    for _ in 0..3 {
        assert_eq!(
            log_in(&server, ADMIN, Some("111111")).await.1,
            "bad_second_factor"
        );
    }
    // Now even the right code waits.
    let (status, error) = log_in(&server, ADMIN, Some(&app_code(&setup, 30))).await;
    assert_eq!((status, error.as_str()), (429, "rate_limited"));
}

#[tokio::test]
async fn the_site_policy_makes_an_administrator_set_up_a_second_factor_first() {
    let server = TestServer::start_with_config("require_second_factor = \"admins\"\n").await;
    server.create_admin(ADMIN.0, ADMIN.1).await;
    let cookie = server.login(ADMIN.0, ADMIN.1).await;
    let mut admin = server.control(&cookie).await;
    assert!(admin.ok(GetWhoAmI {}).await.second_factor_needed);
    assert_eq!(admin.refused(ListGroups {}).await, ErrorCode::Forbidden);
    enrol(&mut admin).await;
    assert!(!admin.ok(GetWhoAmI {}).await.second_factor_needed);
    admin.ok(ListGroups {}).await;
}
