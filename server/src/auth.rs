//! Accounts and logins: password hashing, login sessions, the rate limiter, and the `/api/` login
//! routes the console page uses.

pub mod accounts;
pub(crate) mod hashing;
pub(crate) mod http;
pub(crate) mod passkeys;
pub(crate) mod passwords;
pub(crate) mod ratelimit;
pub(crate) mod second_factor;
pub(crate) mod sessions;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/status", get(http::get_status))
        .route("/api/setup", post(http::post_setup))
        .route("/api/login", post(http::post_login))
        .route("/api/logout", post(http::post_logout))
        .route("/api/password", post(http::post_password))
        .route("/api/register", post(http::post_register))
        .route(
            "/api/recordings/{id}",
            get(crate::relay::recordings::get_recording),
        )
}
