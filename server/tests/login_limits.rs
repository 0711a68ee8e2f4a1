//! The login limits against the real server (security review, findings 2, 8, 9, 10 and 18): a
//! parallel burst of guesses, an account under attack, password changes on `/control`, clients
//! behind a trusted proxy, and first-run setup from another machine.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{REPLY_DEADLINE, TestServer};
use futures_util::future::join_all;
use serde_json::json;
use tether_common::control::{ChangePassword, ErrorCode};

const ADMIN: &str = "admin";
const PASSWORD: &str = "correct horse battery staple";

/// A client that speaks from `local` (any 127.0.0.0/8 address is this machine).
fn client_from(server: &TestServer, local: &str) -> reqwest::Client {
    common::install_crypto_provider();
    let root = reqwest::Certificate::from_pem(server.root_cert_pem.as_bytes()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([root])
        .local_address(local.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

async fn login_status(client: &reqwest::Client, url: &str, user: &str, password: &str) -> u16 {
    client
        .post(format!("{url}/api/login"))
        .json(&json!({ "user": user, "password": password }))
        .send()
        .await
        .expect("POST /api/login")
        .status()
        .as_u16()
}

/// (VmRSS, VmHWM) of a process, in MiB.
fn memory_mib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .unwrap()
            / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test]
async fn a_parallel_burst_of_guesses_reaches_argon2_only_as_often_as_the_limit_allows() {
    let server = TestServer::start().await;
    server.create_admin(ADMIN, PASSWORD).await;
    let pid = server.pid().unwrap();
    let (idle, _) = memory_mib(pid);
    let attacker = client_from(&server, "127.0.0.1");
    let burst = (0..200).map(|n| {
        let attacker = attacker.clone();
        let url = server.url.clone();
        async move { login_status(&attacker, &url, ADMIN, &format!("guess {n}")).await }
    });
    let statuses = join_all(burst).await;
    let count = |code: u16| statuses.iter().filter(|s| **s == code).count();
    let (checked, limited, busy) = (count(401), count(429), count(503));
    let (rss, peak) = memory_mib(pid);
    println!(
        "200 parallel wrong logins: {checked} checked (401), {limited} refused by the limit (429), \
         {busy} refused as busy (503); server RSS {idle} MiB before, {rss} MiB after, peak {peak} MiB"
    );
    assert_eq!(checked + limited + busy, 200, "{statuses:?}");
    assert!(
        checked <= 10,
        "only the per-network limit (10) may reach argon2, {checked} did"
    );
    assert!(peak < 200, "server peak RSS {peak} MiB");

    // The owner, from another network, still gets in (after the account's delay).
    let owner = client_from(&server, "127.0.1.1");
    let started = Instant::now();
    assert_eq!(
        login_status(&owner, &server.url, ADMIN, PASSWORD).await,
        200
    );
    println!(
        "the owner's login from another network took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn failures_from_one_network_never_lock_the_owner_out() {
    let server = TestServer::start().await;
    server.create_admin(ADMIN, PASSWORD).await;
    let attacker = client_from(&server, "127.0.1.2");
    for n in 0..10 {
        let status = login_status(&attacker, &server.url, ADMIN, &format!("guess {n}")).await;
        assert_eq!(status, 401);
    }
    assert_eq!(
        login_status(&attacker, &server.url, ADMIN, "guess 11").await,
        429,
        "the guessing network is refused"
    );
    let owner = client_from(&server, "127.0.0.1");
    assert_eq!(
        login_status(&owner, &server.url, ADMIN, PASSWORD).await,
        200
    );
}

#[tokio::test]
async fn change_password_on_control_spends_the_same_budget_as_a_login() {
    let server = TestServer::start().await;
    server.create_admin(ADMIN, PASSWORD).await;
    let cookie = server.login(ADMIN, PASSWORD).await;
    let mut control = server.control(&cookie).await;
    let mut codes = Vec::new();
    for n in 0..12 {
        let reply = control
            .call(ChangePassword {
                old_password: format!("guess {n}"),
                new_password: "a new password 1".into(),
            })
            .await;
        codes.push(reply.err().and_then(|e| e.code()));
    }
    assert!(
        codes[..10].iter().all(|c| *c == Some(ErrorCode::Forbidden)),
        "ten wrong passwords are checked: {codes:?}"
    );
    assert_eq!(
        codes[10..],
        [Some(ErrorCode::RateLimited); 2],
        "then the limit refuses: {codes:?}"
    );
    // The HTTP login from the same network and for the same account shares that budget.
    let same = client_from(&server, "127.0.0.1");
    assert_eq!(login_status(&same, &server.url, ADMIN, PASSWORD).await, 429);
}

/// The setup address the server printed at start (`…#setup=CODE …`).
fn printed_setup_code(server: &TestServer) -> String {
    server
        .startup_output
        .iter()
        .find_map(|line| line.split("#setup=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no setup code in {:?}", server.startup_output))
        .to_owned()
}

#[tokio::test]
async fn behind_a_trusted_proxy_setup_needs_the_printed_code_and_each_client_has_its_own_budget() {
    let server =
        TestServer::start_with_config("tlsoffload = true\ntrusted_proxies = [\"127.0.0.1/32\"]\n")
            .await;
    assert!(server.url.starts_with("http://"), "{}", server.url);
    // reqwest wants a crypto provider even for plain HTTP; other tests in this binary may or may
    // not have installed it first.
    common::install_crypto_provider();
    let proxy = reqwest::Client::builder()
        .timeout(REPLY_DEADLINE)
        .build()
        .unwrap();
    let setup = |code: Option<String>| {
        let mut body = json!({ "name": ADMIN, "password": PASSWORD });
        if let Some(code) = code {
            body["setup_code"] = json!(code);
        }
        proxy
            .post(format!("{}/api/setup", server.url))
            .header("x-forwarded-for", "198.51.100.7")
            .json(&body)
            .send()
    };
    // Through a proxy every request comes from loopback, so loopback proves nothing: the code is
    // needed, and a wrong one is refused.
    let refused = setup(None).await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    assert_eq!(
        setup(Some("wrong".into())).await.unwrap().status().as_u16(),
        403
    );
    let created = setup(Some(printed_setup_code(&server))).await.unwrap();
    assert_eq!(created.status().as_u16(), 201);

    let login = |client_ip: &'static str, user: &'static str, password: &'static str| {
        proxy
            .post(format!("{}/api/login", server.url))
            .header("x-forwarded-for", client_ip)
            .json(&json!({ "user": user, "password": password }))
            .send()
    };
    for _ in 0..10 {
        let status = login("203.0.113.9", "nobody", "guess")
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 401);
    }
    assert_eq!(
        login("203.0.113.9", "nobody", "guess")
            .await
            .unwrap()
            .status()
            .as_u16(),
        429,
        "the guessing client is limited"
    );
    let owner = login("192.0.2.44", ADMIN, PASSWORD).await.unwrap();
    assert_eq!(
        owner.status().as_u16(),
        200,
        "another client behind the same proxy is not"
    );
    let cookie = owner
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("__Host-tether_session="))
        .unwrap()
        .to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn with_the_limits_off_the_hashing_gate_still_bounds_the_work() {
    let server =
        TestServer::start_with_config("login_limit_per_ip = 0\nlogin_limit_per_account = 0\n")
            .await;
    server.create_admin(ADMIN, PASSWORD).await;
    let pid = server.pid().unwrap();
    let client = client_from(&server, "127.0.0.1");
    let burst = (0..200).map(|n| {
        let client = client.clone();
        let url = server.url.clone();
        async move { login_status(&client, &url, &format!("user{n}"), "guess").await }
    });
    let statuses = join_all(burst).await;
    let count = |code: u16| statuses.iter().filter(|s| **s == code).count();
    let (checked, busy) = (count(401), count(503));
    let (rss, peak) = memory_mib(pid);
    println!(
        "200 parallel logins, limits off: {checked} checked, {busy} told to retry (503); \
         server RSS {rss} MiB, peak {peak} MiB"
    );
    assert_eq!(checked + busy, 200, "{statuses:?}");
    assert!(busy > 0, "a burst larger than the queue is turned away");
    assert!(peak < 200, "server peak RSS {peak} MiB");
    // Once the burst is over, the server answers again.
    assert_eq!(
        login_status(&client, &server.url, ADMIN, PASSWORD).await,
        200
    );
}
