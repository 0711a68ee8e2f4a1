//! The login API under `/api/`: status, first-run setup, login, logout, password change and
//! (when enabled) self-registration. Bodies are JSON; errors are `crate::http::error::ApiError`.

use std::net::IpAddr;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tether_common::control::Event;
use tether_common::ids::UserId;

use super::accounts::{self, AccountError, log_event, user_info};
use super::passkeys;
use super::ratelimit::{Attempt, LimitKind, RetryAfter};
use super::second_factor::{self, Accepted, Verdict};
use super::sessions::{self, AuthUser};
use crate::events::{Audience, Signal};
use crate::http::client_ip::ClientIp;
pub(crate) use crate::http::error::ApiError;
use crate::state::AppState;
use crate::store::{NewEvent, StoreError, UserRecord};

/// The login API's own errors; the type and its body are `crate::http::error`'s.
impl ApiError {
    fn bad_credentials() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            "Wrong user name or password.",
        )
    }

    fn second_factor_required() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "second_factor_required",
            "Enter the code from your authenticator app, or a backup code.",
        )
    }

    fn bad_second_factor() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_second_factor",
            "Wrong or already used code.",
        )
    }

    fn busy() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "The server is busy; try again in a moment.",
        )
        .retry_after(1)
    }

    pub(crate) fn rate_limited(retry: RetryAfter) -> ApiError {
        let minutes = retry.minutes();
        let unit = if minutes == 1 { "minute" } else { "minutes" };
        let scope = match retry.limit {
            LimitKind::Source => "from your network",
            LimitKind::Account => "for this account from your network",
        };
        let message = format!("Too many failed attempts {scope}; try again in {minutes} {unit}.");
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            .retry_after(retry.seconds())
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
            AccountError::Busy(_) => ApiError::busy(),
            AccountError::Store(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct NewAccountRequest {
    name: String,
    password: String,
    #[serde(default)]
    email: Option<String>,
    /// First-run setup from anywhere but the server's own machine: the code the server printed.
    #[serde(default)]
    setup_code: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct LoginRequest {
    user: String,
    password: String,
    /// The second factor, for accounts that have one: a TOTP code or a backup code...
    #[serde(default)]
    otp: Option<String>,
    /// ...or the answer to the passkey challenge the first try was given.
    #[serde(default)]
    passkey: Option<PasskeyAnswer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PasskeyAnswer {
    challenge_id: String,
    credential: Value,
}

#[derive(Deserialize)]
pub(crate) struct PasswordRequest {
    old_password: String,
    new_password: String,
}

/// `GET /api/status`: what the login page should show.
pub(crate) async fn get_status(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let setup_required = state.store.user_count().await? == 0;
    let user = sessions::request_user(&state, &headers).await?;
    Ok(Json(json!({
        "setup_required": setup_required,
        "setup_code_required": setup_required && !setup_from_this_machine(&state, ip),
        "new_accounts": state.config.new_accounts,
        "user": user.as_ref().map(user_info),
    })))
}

/// `POST /api/setup`: creates the administrator on a server with no accounts, and logs it in.
///
/// Whoever calls it first becomes the site administrator, so a server that is reachable before
/// its owner gets to it must not hand itself out: from anywhere but the server's own machine the
/// request must carry the one-time code the server printed at start (see [`setup_code`]).
pub(crate) async fn post_setup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Result<Json<NewAccountRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body?;
    if state.store.user_count().await? > 0 {
        return Err(AccountError::AlreadySetUp.into());
    }
    if !setup_from_this_machine(&state, ip) {
        let given = request.setup_code.as_deref().unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), state.setup_code.as_bytes()) {
            tracing::warn!(%ip, "first-run setup refused: missing or wrong setup code");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "setup_code_required",
                "Open the setup address the server printed when it started (it ends in #setup=…).",
            ));
        }
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

/// Setup without a code only from the server's own machine, and never through a proxy (where
/// every request comes from loopback).
fn setup_from_this_machine(state: &AppState, ip: IpAddr) -> bool {
    !state.config.tlsoffload && ip.to_canonical().is_loopback()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh one-time code for first-run setup from another machine (see [`post_setup`]).
pub(crate) fn setup_code() -> String {
    sessions::new_token()
}

/// `POST /api/register`: self-service accounts, only when `new_accounts` is on.
pub(crate) async fn post_register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
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
    // Each registration costs a password hash and an account: it spends the network's budget.
    if let Err(retry) = state.login_limiter.spend_source(ip) {
        tracing::warn!(%ip, "registration refused: too many attempts from this network");
        return Err(ApiError::rate_limited(retry));
    }
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

/// `POST /api/login`. The attempt is counted before the password is checked (see `ratelimit`),
/// and the check itself waits for a place at the hashing gate (see `hashing`).
pub(crate) async fn post_login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body?;
    let account = printable(&request.user);
    let attempt = match state.login_limiter.begin(ip, &request.user) {
        Ok(attempt) => attempt,
        Err(retry) => {
            tracing::warn!(%ip, account, wait_seconds = retry.seconds(), "login refused: too many failed logins");
            return Err(ApiError::rate_limited(retry));
        }
    };
    let user = state.store.user(&UserId::from_name(&request.user)).await?;
    let known = user.as_ref().map(|u| u.id.clone());
    let hash = user.as_ref().map(|u| u.password_hash.as_str());
    let verified = check_password(&attempt, &request.password, hash, &account).await?;
    let Some(user) = user.filter(|_| verified) else {
        tracing::info!(%ip, account, "failed login");
        // Only failures on real accounts become audit records: guesses at made-up names (which
        // anyone can send from ever new networks) go to the log alone, so they cannot grow the
        // database.
        if let Some(id) = known {
            let message = format!("Failed login as \"{account}\" from {ip}");
            log_event(
                &state,
                NewEvent {
                    kind: "login_failed".into(),
                    user: Some(id),
                    message,
                    ..NewEvent::default()
                },
            )
            .await;
        }
        return Err(ApiError::bad_credentials());
    };
    let mut how = "";
    if user.has_second_factor() {
        let code = request.otp.as_deref().map(str::trim).unwrap_or_default();
        if code.is_empty() && request.passkey.is_none() {
            // The password was right: asking for the code is no failure (and says nothing a
            // wrong password would not have said first).
            state.login_limiter.succeeded(attempt);
            return second_factor_wanted(&state, &user);
        }
        let verdict = match request.passkey {
            Some(answer) => passkey_verdict(&state, &user, answer).await?,
            None => {
                match second_factor::verify_and_spend(state.store.as_ref(), &user.id, code).await? {
                    Verdict::Accepted(_, Accepted::Totp { .. }) => Ok(" with a TOTP code"),
                    Verdict::Accepted(_, Accepted::Backup { .. }) => Ok(" with a backup code"),
                    Verdict::Wrong => Err(()),
                }
            }
        };
        match verdict {
            Ok(with) => how = with,
            Err(()) => {
                // Counted like a wrong password: the limits cover the second factor too.
                tracing::info!(%ip, account, "failed login: wrong second factor");
                let message = format!("Wrong second factor for \"{account}\" from {ip}");
                log_event(
                    &state,
                    NewEvent {
                        kind: "login_failed".into(),
                        user: Some(user.id.clone()),
                        message,
                        ..NewEvent::default()
                    },
                )
                .await;
                return Err(ApiError::bad_second_factor());
            }
        }
    }
    state.login_limiter.succeeded(attempt);
    let message = format!("{} logged in from {ip}{how}", user.name);
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

/// `second_factor_required`, with a passkey challenge when the account has passkeys.
fn second_factor_wanted(state: &AppState, user: &UserRecord) -> Result<Response, ApiError> {
    let wanted = ApiError::second_factor_required();
    if user.passkeys.is_empty() {
        return Err(wanted);
    }
    let challenge = passkeys::relying_party(&state.config)
        .and_then(|rp| state.passkeys.begin_login(&rp, &user.id, &user.passkeys));
    match challenge {
        Ok((challenge_id, options)) => Ok((
            StatusCode::UNAUTHORIZED,
            Json(json!({
                "error": "second_factor_required",
                "message": "Use your passkey, or enter a code from your authenticator app or a backup code.",
                "passkey": { "challengeId": challenge_id, "options": options },
            })),
        )
            .into_response()),
        Err(e) => {
            tracing::warn!(account = %user.name, "auth: no passkey challenge: {e}");
            Err(wanted)
        }
    }
}

/// Checks a passkey answer; on success the passkey's counter is stored.
async fn passkey_verdict(
    state: &AppState,
    user: &UserRecord,
    answer: PasskeyAnswer,
) -> Result<Result<&'static str, ()>, ApiError> {
    let checked = passkeys::relying_party(&state.config).and_then(|rp| {
        state.passkeys.finish_login(
            &rp,
            &user.id,
            &answer.challenge_id,
            answer.credential,
            &user.passkeys,
        )
    });
    match checked {
        Ok(updated) => {
            if updated != user.passkeys {
                let mut fresh = state
                    .store
                    .user(&user.id)
                    .await?
                    .unwrap_or_else(|| user.clone());
                fresh.passkeys = updated;
                state.store.update_user(&fresh).await?;
            }
            Ok(Ok(" with a passkey"))
        }
        Err(e) => {
            tracing::info!(account = %user.name, "auth: passkey refused: {e}");
            Ok(Err(()))
        }
    }
}

/// Waits out the attempt's per-account delay, then checks the password at the hashing gate.
async fn check_password(
    attempt: &Attempt,
    password: &str,
    hash: Option<&str>,
    account: &str,
) -> Result<bool, ApiError> {
    if !attempt.delay.is_zero() {
        tracing::info!(
            account,
            delay_ms = attempt.delay.as_millis() as u64,
            "login delayed: the account has failed logins"
        );
        tokio::time::sleep(attempt.delay).await;
    }
    accounts::verify_password(password, hash)
        .await
        .map_err(ApiError::from)
}

/// `POST /api/logout`: ends the session and clears the cookie (also when there was none).
pub(crate) async fn post_logout(
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
    for token in sessions::tokens_from_headers(&state.config, &headers) {
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
pub(crate) async fn post_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AuthUser(user): AuthUser,
    body: Result<Json<PasswordRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body?;
    // A stolen cookie must not become an unlimited oracle for the old password.
    let attempt = state
        .login_limiter
        .begin(ip, user.id.as_str())
        .map_err(ApiError::rate_limited)?;
    if !attempt.delay.is_zero() {
        tokio::time::sleep(attempt.delay).await;
    }
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
            tracing::info!(%ip, account = %user.name, "wrong current password on password change");
            return Err(AccountError::WrongPassword.into());
        }
        Err(e @ AccountError::BadPassword(_)) => {
            // The current password was right; only the new one broke a rule.
            state.login_limiter.succeeded(attempt);
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    state.login_limiter.succeeded(attempt);
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
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "61");
    }
}
