//! Accounts and logins through the real binary: first-run setup, login, the rate limiter, logout,
//! password changes, the session cookie, self-registration and `--createaccount`.

mod common;

use std::process::Output;

use common::TestServer;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "correct horse battery";

async fn post(server: &TestServer, client: &reqwest::Client, path: &str, body: Value) -> Response {
    client
        .post(format!("{}{path}", server.url))
        .json(&body)
        .send()
        .await
        .expect("POST")
}

async fn login_response(server: &TestServer, user: &str, password: &str) -> Response {
    post(
        server,
        &server.http_client(),
        "/api/login",
        json!({ "user": user, "password": password }),
    )
    .await
}

/// `/api/status` as seen by a request carrying exactly `cookie` (or none), no cookie store.
async fn status_with(server: &TestServer, cookie: Option<&str>) -> Value {
    let mut request = server
        .http_client()
        .get(format!("{}/api/status", server.url));
    if let Some(cookie) = cookie {
        request = request.header("cookie", format!("__Host-tether_session={cookie}"));
    }
    let response = request.send().await.expect("GET /api/status");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("status JSON")
}

fn set_cookie(response: &Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-tether_session="))
        .unwrap_or_else(|| panic!("no tether_session cookie in {:?}", response.headers()))
        .to_owned()
}

fn cookie_value(set_cookie: &str) -> String {
    let pair = set_cookie.split(';').next().unwrap();
    pair.trim_start_matches("__Host-tether_session=").to_owned()
}

fn run_tether(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tether-server"))
        .args(args)
        .output()
        .expect("run tether-server")
}

#[tokio::test]
async fn setup_creates_the_administrator_once() {
    let server = TestServer::start().await;
    let status = status_with(&server, None).await;
    assert_eq!(status["setup_required"], true);
    assert_eq!(status["user"], Value::Null);

    let client = server.http_client();
    let response = post(
        &server,
        &client,
        "/api/setup",
        json!({ "name": "Admin", "password": ADMIN_PASSWORD }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (&body["user"]["name"], &body["user"]["siteAdmin"]),
        (&json!("Admin"), &json!(true))
    );

    // The setup logged this browser in.
    let me: Value = client
        .get(format!("{}/api/status", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["id"], "admin");
    assert_eq!(me["setup_required"], false);

    let again = post(
        &server,
        &server.http_client(),
        "/api/setup",
        json!({ "name": "Mallory", "password": "mallory-pass" }),
    )
    .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"],
        "already_set_up"
    );
    assert_eq!(
        login_response(&server, "mallory", "mallory-pass")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn setup_refuses_a_short_password() {
    let server = TestServer::start().await;
    let response = post(
        &server,
        &server.http_client(),
        "/api/setup",
        json!({ "name": "a", "password": "short" }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(status_with(&server, None).await["setup_required"], true);
}

#[tokio::test]
async fn login_accepts_the_password_and_nothing_else() {
    let server = TestServer::start().await;
    server.create_admin("admin", ADMIN_PASSWORD).await;

    let ok = login_response(&server, "ADMIN", ADMIN_PASSWORD).await;
    assert_eq!(ok.status(), StatusCode::OK, "names are case-insensitive");
    let cookie = cookie_value(&set_cookie(&ok));
    assert_eq!(
        status_with(&server, Some(&cookie)).await["user"]["name"],
        "admin"
    );

    let wrong = login_response(&server, "admin", "wrong password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong: Value = wrong.json().await.unwrap();
    let unknown = login_response(&server, "nobody", ADMIN_PASSWORD).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(wrong["error"], "bad_credentials");
    assert_eq!(
        wrong, unknown,
        "an unknown user looks exactly like a wrong password"
    );
}

#[tokio::test]
async fn the_session_cookie_is_locked_down() {
    let server = TestServer::start().await;
    server.create_admin("admin", ADMIN_PASSWORD).await;
    let cookie = set_cookie(&login_response(&server, "admin", ADMIN_PASSWORD).await);
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(
            cookie.split("; ").any(|a| a == attribute),
            "{attribute} missing from {cookie}"
        );
    }
    assert_eq!(
        cookie_value(&cookie).len(),
        43,
        "32 random bytes in base64url"
    );
}

#[tokio::test]
async fn repeated_failures_from_one_network_are_rate_limited() {
    let server =
        TestServer::start_with_config("login_limit_per_ip = 3\nlogin_limit_per_account = 100\n")
            .await;
    server.create_admin("admin", ADMIN_PASSWORD).await;
    for attempt in 0..3 {
        let response = login_response(&server, &format!("guess{attempt}"), "wrong password").await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    // Refused before the password is checked: even the right one.
    let refused = login_response(&server, "admin", ADMIN_PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_header: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(body["retryAfter"], retry_header);
    assert!((1..=600).contains(&retry_header), "{retry_header}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("try again in 10 minutes"), "{message}");
    let log = server.stderr();
    assert!(
        log.contains("too many failed logins") && log.contains("127.0.0.1"),
        "{log}"
    );
    assert!(
        !log.contains(ADMIN_PASSWORD),
        "the password must never be logged"
    );
}

#[tokio::test]
async fn repeated_failures_on_one_account_are_rate_limited() {
    let server =
        TestServer::start_with_config("login_limit_per_ip = 100\nlogin_limit_per_account = 2\n")
            .await;
    server.create_admin("admin", ADMIN_PASSWORD).await;
    for _ in 0..2 {
        assert_eq!(
            login_response(&server, "admin", "wrong password")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let refused = login_response(&server, "Admin", ADMIN_PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        refused.json::<Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("for this account")
    );
    // Another account from the same address is not affected.
    let other = login_response(&server, "nobody", "wrong password").await;
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_ends_the_session_on_the_server() {
    let server = TestServer::start().await;
    server.create_admin("admin", ADMIN_PASSWORD).await;
    let client = server.http_client();
    let login = post(
        &server,
        &client,
        "/api/login",
        json!({ "user": "admin", "password": ADMIN_PASSWORD }),
    )
    .await;
    let cookie = cookie_value(&set_cookie(&login));
    assert_eq!(
        status_with(&server, Some(&cookie)).await["user"]["id"],
        "admin"
    );

    let logout = client
        .post(format!("{}/api/logout", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::OK);
    let cleared = set_cookie(&logout);
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(
        status_with(&server, Some(&cookie)).await["user"],
        Value::Null,
        "the old cookie is dead"
    );
    assert!(
        server.try_control(Some(&cookie)).await.is_err(),
        "/control refuses the old cookie"
    );
}

#[tokio::test]
async fn changing_the_password_ends_every_older_session() {
    let server = TestServer::start().await;
    server.create_admin("admin", ADMIN_PASSWORD).await;
    let other_browser = server.login("admin", ADMIN_PASSWORD).await;
    let client = server.http_client();
    let mine = post(
        &server,
        &client,
        "/api/login",
        json!({ "user": "admin", "password": ADMIN_PASSWORD }),
    )
    .await;
    let my_old_cookie = cookie_value(&set_cookie(&mine));

    let wrong = post(
        &server,
        &client,
        "/api/password",
        json!({ "old_password": "not it", "new_password": "brand new pass" }),
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let short = post(
        &server,
        &client,
        "/api/password",
        json!({ "old_password": ADMIN_PASSWORD, "new_password": "short" }),
    )
    .await;
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);

    let changed = post(
        &server,
        &client,
        "/api/password",
        json!({ "old_password": ADMIN_PASSWORD, "new_password": "brand new pass" }),
    )
    .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let my_new_cookie = cookie_value(&set_cookie(&changed));

    assert_eq!(
        status_with(&server, Some(&other_browser)).await["user"],
        Value::Null
    );
    assert_eq!(
        status_with(&server, Some(&my_old_cookie)).await["user"],
        Value::Null
    );
    assert_eq!(
        status_with(&server, Some(&my_new_cookie)).await["user"]["id"],
        "admin"
    );
    assert_eq!(
        login_response(&server, "admin", ADMIN_PASSWORD)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_response(&server, "admin", "brand new pass")
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn api_calls_without_a_session_are_unauthorized() {
    let server = TestServer::start().await;
    server.create_admin("admin", ADMIN_PASSWORD).await;
    let response = post(
        &server,
        &server.http_client(),
        "/api/password",
        json!({ "old_password": "x", "new_password": "y" }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "unauthorized"
    );
}

#[tokio::test]
async fn registration_is_off_unless_configured() {
    let closed = TestServer::start().await;
    closed.create_admin("admin", ADMIN_PASSWORD).await;
    let refused = post(
        &closed,
        &closed.http_client(),
        "/api/register",
        json!({ "name": "eve", "password": "eve-password" }),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(status_with(&closed, None).await["new_accounts"], false);

    let open = TestServer::start_with_config("new_accounts = true\n").await;
    open.create_admin("admin", ADMIN_PASSWORD).await;
    assert_eq!(status_with(&open, None).await["new_accounts"], true);
    let client = open.http_client();
    let created = post(
        &open,
        &client,
        "/api/register",
        json!({ "name": "Eve", "password": "eve-password" }),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let user = &created.json::<Value>().await.unwrap()["user"];
    assert_eq!(
        (&user["id"], &user["siteAdmin"]),
        (&json!("eve"), &json!(false))
    );
    let taken = post(
        &open,
        &client,
        "/api/register",
        json!({ "name": "EVE", "password": "eve-password" }),
    )
    .await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn createaccount_works_on_a_stopped_data_folder_and_refuses_a_running_one() {
    let mut server = TestServer::start().await;
    let datapath = server.datapath.display().to_string();
    let busy = run_tether(&[
        "--datapath",
        &datapath,
        "--createaccount",
        "alice",
        "--pass",
        ADMIN_PASSWORD,
    ]);
    assert!(!busy.status.success());
    let stderr = String::from_utf8_lossy(&busy.stderr);
    assert!(stderr.contains("in use"), "{stderr}");

    server.stop().await;
    let created = run_tether(&[
        "--datapath",
        &datapath,
        "--createaccount",
        "alice",
        "--pass",
        ADMIN_PASSWORD,
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(
        String::from_utf8_lossy(&created.stdout)
            .contains("created account alice (site administrator)")
    );
    let second = run_tether(&[
        "--datapath",
        &datapath,
        "--createaccount",
        "bob",
        "--pass",
        "bob-password",
    ]);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let reset = run_tether(&[
        "--datapath",
        &datapath,
        "--resetaccount",
        "bob",
        "--pass",
        "bob-new-password",
    ]);
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );

    server.restart().await;
    assert_eq!(status_with(&server, None).await["setup_required"], false);
    let alice = server.login("alice", ADMIN_PASSWORD).await;
    assert_eq!(
        status_with(&server, Some(&alice)).await["user"]["siteAdmin"],
        true
    );
    let bob = server.login("bob", "bob-new-password").await;
    assert_eq!(
        status_with(&server, Some(&bob)).await["user"]["siteAdmin"],
        false
    );
}
