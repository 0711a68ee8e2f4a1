//! Client-side TLS and WebSocket plumbing shared by the agent, tetherctl and the load tool.
//! (`tether-common` stays free of IO and tokio; anything network-facing they share lives here.)

pub mod tls;
