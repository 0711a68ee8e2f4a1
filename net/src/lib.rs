//! Client-side TLS and WebSocket plumbing shared by the agent, tetherctl and the load tool.
//! (`tether-common` stays free of IO and tokio; anything network-facing they share lives here.)

// Kept here, not in the workspace [lints], because they must not reach the integration tests
// (see CONTRIBUTING.md, "Lints").
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod tls;
