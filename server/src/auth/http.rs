//! The login API under `/api/`: status, first-run setup, login, logout, password change and
//! (when enabled) self-registration. Bodies are JSON; errors are `{"error": code, "message": …}`.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tether_common::control::Event;
use tether_common::ids::UserId;

use super::accounts::{self, AccountError, log_event, user_info};
use super::ratelimit::{LimitKind, RetryAfter};
use super::sessions::{self, AuthUser};
use crate::events::{Audience, Signal};
use crate::state::AppState;
use crate::store::{NewEvent, StoreError, UserRecord};

/// An error answer. The message is for the person at the browser; causes that would help an
/// attacker (or leak internals) go to the server log instead.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "Please log in.")
    }

    fn bad_credentials() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            "Wrong user name or password.",
        )
    }

    fn rate_limited(retry: RetryAfter) -> ApiError {
        let minutes = retry.minutes();
        let unit = if minutes == 1 { "minute" } else { "minutes" };
        let scope = match retry.limit {
            LimitKind::Source => "from your network",
            LimitKind::Account => "for this account",
        };
        let message = format!("Too many failed logins {scope}; try again in {minutes} {unit}.");
        ApiError {
            retry_after: Some(retry.seconds()),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        match self.retry_after {
            Some(seconds) => {
                body["retry_after"] = json!(seconds);
                (
                    self.status,
                    [(RETRY_AFTER, seconds.to_string())],
                    Json(body),
                )
                    .into_response()
            }
            None => (self.status, Json(body)).into_response(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        tracing::error!(%error, "database error while handling a login request");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "The server could not complete the request.",
        )
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            rejection.body_text(),
        )
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> ApiError {
        let message = error.to_string();
        match error {
            AccountError::InvalidName(_)
            | AccountError::BadPassword(_)
            | AccountError::InvalidEmail => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
            }
            AccountError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            AccountError::AlreadySetUp => {
                ApiError::new(StatusCode::CONFLICT, "already_set_up", message)
            }
            AccountError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            AccountError::WrongPassword => {
                ApiError::new(StatusCode::FORBIDDEN, "bad_credentials", message)
            }
            AccountError::Store(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
pub struct NewAccountRequest {
    name: String,
    password: String,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginRequest {
    user: String,
    password: String,
}

#[derive(Deserialize)]
pub struct PasswordRequest {
    old_password: String,
    new_password: String,
}

/// `GET /api/status`: what the login page should show.
pub async fn get_status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let setup_required = state.store.user_count().await? == 0;
    let user = sessions::request_user(&state, &headers).await?;
    Ok(Json(json!({
        "setup_required": setup_required,
        "new_accounts": state.config.new_accounts,
        "user": user.as_ref().map(user_info),
    })))
}

/// `POST /api/setup`: creates the administrator on a server with no accounts, and logs it in.
pub async fn post_setup(
    State(state): State<AppState>,
    body: Result<Json<NewAccountRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body?;
    if state.store.user_count().await? > 0 {
        return Err(AccountError::AlreadySetUp.into());
    }
    let user = accounts::create_first_account(
        state.store.as_ref(),
        &request.name,
        &request.password,
        request.email,
    )
    .await?;
    tracing::info!(account = %user.name, "administrator account created");
    logged_in(&state, &user, StatusCode::CREATED).await
}

/// `POST /api/register`: self-service accounts, only when `new_accounts` is on.
pub async fn post_register(
    State(state): State<AppState>,
    body: Result<Json<NewAccountRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    if !state.config.new_accounts {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "This server does not allow creating accounts.",
        ));
    }
    let Json(request) = body?;
    let user = accounts::create_account(
        state.store.as_ref(),
        &request.name,
        &request.password,
        request.email,
    )
    .await?;
    tracing::info!(account = %user.name, "account registered");
    state.events.publish(
        Event::UserAdded {
            user: user_info(&user),
        },
        Audience::admins_only(),
    );
    logged_in(&state, &user, StatusCode::CREATED).await
}

/// `POST /api/login`.
pub async fn post_login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body?;
    let ip = peer.ip();
    let account = printable(&request.user);
    if let Err(retry) = state.login_limiter.check(ip, &request.user) {
        tracing::warn!(%ip, account, wait_seconds = retry.seconds(), "login refused: too many failed logins");
        return Err(ApiError::rate_limited(retry));
    }
    let user = state.store.user(&UserId::from_name(&request.user)).await?;
    let known = user.as_ref().map(|u| u.id.clone());
    let hash = user.as_ref().map(|u| u.password_hash.as_str());
    let verified = accounts::verify_password(&request.password, hash).await;
    let Some(user) = user.filter(|_| verified) else {
        state.login_limiter.record_failure(ip, &request.user);
        tracing::info!(%ip, account, "failed login");
        let message = format!("Failed login as \"{account}\" from {ip}");
        log_event(
            &state,
            NewEvent {
                kind: "login_failed".into(),
                user: known,
                message,
                ..NewEvent::default()
            },
        )
        .await;
        return Err(ApiError::bad_credentials());
    };
    state.login_limiter.record_success(&request.user);
    let message = format!("{} logged in from {ip}", user.name);
    log_event(
        &state,
        NewEvent {
            kind: "login".into(),
            user: Some(user.id.clone()),
            message,
            ..NewEvent::default()
        },
    )
    .await;
    logged_in(&state, &user, StatusCode::OK).await
}

/// `POST /api/logout`: ends the session and clears the cookie (also when there was none).
pub async fn post_logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(user) = sessions::request_user(&state, &headers).await? {
        let message = format!("{} logged out", user.name);
        log_event(
            &state,
            NewEvent {
                kind: "logout".into(),
                user: Some(user.id),
                message,
                ..NewEvent::default()
            },
        )
        .await;
    }
    sessions::end_session(&state, &headers).await?;
    // Sockets opened with this session (`/control`, relay sessions) outlive the request that
    // opened them: tell them it is over.
    if let Some(token) = sessions::token_from_headers(&headers) {
        let token_hash = sessions::token_hash(token);
        state
            .events
            .signal(Signal::LoginSessionEnded { token_hash });
    }
    Ok((
        [(SET_COOKIE, sessions::cleared_cookie(&state.config))],
        Json(json!({ "ok": true })),
    )
        .into_response())
}

/// `POST /api/password`: change one's own password. Ends every other session of the account and
/// hands this browser a new one.
pub async fn post_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    AuthUser(user): AuthUser,
    body: Result<Json<PasswordRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body?;
    let ip: IpAddr = peer.ip();
    // A stolen cookie must not become an unlimited oracle for the old password.
    state
        .login_limiter
        .check(ip, user.id.as_str())
        .map_err(ApiError::rate_limited)?;
    let changed = accounts::change_password(
        state.store.as_ref(),
        &user,
        &request.old_password,
        &request.new_password,
    )
    .await;
    let user = match changed {
        Ok(user) => user,
        Err(AccountError::WrongPassword) => {
            state.login_limiter.record_failure(ip, user.id.as_str());
            tracing::info!(%ip, account = %user.name, "wrong current password on password change");
            return Err(AccountError::WrongPassword.into());
        }
        Err(e) => return Err(e.into()),
    };
    state.events.publish(
        Event::UserChanged {
            user: user_info(&user),
        },
        Audience::user(&user.id),
    );
    logged_in(&state, &user, StatusCode::OK).await
}

/// Starts a session for `user` and answers `{"user": …}` with its cookie.
async fn logged_in(
    state: &AppState,
    user: &UserRecord,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let cookie = sessions::start_session(state, user).await?;
    Ok((
        status,
        [(SET_COOKIE, cookie)],
        Json(json!({ "user": user_info(user) })),
    )
        .into_response())
}

/// A user-supplied name as it may appear in logs: no control characters (no forged log lines),
/// at most 64 characters.
fn printable(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_safe_for_logs() {
        assert_eq!(printable("evil\nINFO forged"), "evilINFO forged");
        assert_eq!(printable(&"x".repeat(500)).len(), 64);
    }

    #[test]
    fn rate_limit_answers_say_when_to_come_back() {
        let retry = RetryAfter {
            wait: std::time::Duration::from_secs(61),
            limit: LimitKind::Account,
        };
        let response = ApiError::rate_limited(retry).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "61");
    }
}
