//! An acknowledged write survives `kill -9` the instant after the acknowledgement: the store
//! commits durably before a handler answers.

mod common;

use common::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn session_cookie(response: &reqwest::Response) -> String {
    let header = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("__Host-tether_session="))
        .expect("a session cookie");
    header.split(';').next().unwrap().to_owned()
}

async fn user_behind(server: &TestServer, cookie: &str) -> Value {
    let response = server
        .http_client()
        .get(format!("{}/api/status", server.url))
        .header("cookie", format!("__Host-tether_session={cookie}"))
        .send()
        .await
        .expect("GET /api/status");
    response.json::<Value>().await.expect("status JSON")["user"].clone()
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let mut server = TestServer::start().await;

    let setup = server
        .http_client()
        .post(format!("{}/api/setup", server.url))
        .json(&json!({ "name": "admin", "password": "password-0" }))
        .send()
        .await
        .unwrap();
    assert_eq!(setup.status(), StatusCode::CREATED);
    let mut cookie = session_cookie(&setup);
    server.kill9().await;
    server.restart().await;
    assert_eq!(
        user_behind(&server, &cookie).await["id"],
        "admin",
        "the account and its session survived"
    );

    for round in 1..=4 {
        let (old, new) = (
            format!("password-{}", round - 1),
            format!("password-{round}"),
        );
        let changed = server
            .http_client()
            .post(format!("{}/api/password", server.url))
            .header("cookie", format!("__Host-tether_session={cookie}"))
            .json(&json!({ "old_password": old, "new_password": new }))
            .send()
            .await
            .unwrap();
        assert_eq!(changed.status(), StatusCode::OK, "round {round}");
        let previous = std::mem::replace(&mut cookie, session_cookie(&changed));
        server.kill9().await;
        server.restart().await;

        assert_eq!(
            user_behind(&server, &cookie).await["id"],
            "admin",
            "round {round}: new session kept"
        );
        assert_eq!(
            user_behind(&server, &previous).await,
            Value::Null,
            "round {round}: old session stays dead"
        );
        let login = |password: String| {
            let client = server.http_client();
            let url = format!("{}/api/login", server.url);
            async move {
                client
                    .post(url)
                    .json(&json!({ "user": "admin", "password": password }))
                    .send()
                    .await
            }
        };
        assert_eq!(
            login(new).await.unwrap().status(),
            StatusCode::OK,
            "round {round}: new password kept"
        );
        assert_eq!(
            login(old).await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "round {round}"
        );
    }
}
