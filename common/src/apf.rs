//! Intel AMT's APF (AMT Port Forwarding): what an AMT machine with CIRA (Client Initiated Remote
//! Access) speaks to the server's MPS port over TLS, whatever the state of its operating system.
//! It is a cut-down SSH connection layer: AMT says who it is (`ProtocolVersion`, with its UUID),
//! logs in with a user name and password, asks the server to forward its own ports (WS-Management
//! on 16992/16993, redirection on 16994/16995), and the server then opens channels to those ports
//! through the tunnel, each with SSH's flow-control window.
//!
//! Sans-IO, like the rest of this crate:
//! - `apf/message.rs`: [`ApfMessage`], every message this server and its test client use, and its
//!   encoding;
//! - `apf/codec.rs`: [`Decoder`], which reads messages out of a byte stream that TLS hands over in
//!   arbitrary pieces, checking every length against its bound before it waits for (or holds)
//!   the bytes;
//! - `apf/mps.rs`: [`MpsSession`], the server's side of one connection: the login, the forwarded
//!   ports, keepalives, and channels with flow control both ways.
//!
//! APF has no frame length: a message's size follows from its type and fields, so a message of an
//! unknown type or a request this code cannot read ends the connection.

mod codec;
mod message;
mod mps;

pub use codec::{ApfError, Decoder, Side};
pub use message::{AmtUuid, ApfMessage, Password};
pub use mps::{KEEPALIVE_INTERVAL_S, MAX_CHANNELS, MpsError, MpsEvent, MpsSession, RECEIVE_WINDOW};

/// The longest string field read (user names, services, addresses). MeshCentral uses the same.
pub const MAX_STRING: usize = 2048;
/// The most data one CHANNEL_DATA may carry (Intel's MPS refuses more; MeshCentral meant to).
pub const MAX_CHANNEL_DATA: usize = 1 << 20;

/// The services a client asks for, in this order.
pub const AUTH_SERVICE: &str = "auth@amt.intel.com";
pub const PFWD_SERVICE: &str = "pfwd@amt.intel.com";
/// The only login method AMT uses with an MPS (besides client certificates, not supported here).
pub const PASSWORD_METHOD: &str = "password";

/// Global requests.
pub const TCPIP_FORWARD: &str = "tcpip-forward";
pub const CANCEL_TCPIP_FORWARD: &str = "cancel-tcpip-forward";
pub const UDP_SEND_TO: &str = "udp-send-to@amt.intel.com";

/// Channel types: the server opens `forwarded-tcpip` channels to AMT's ports.
pub const FORWARDED_TCPIP: &str = "forwarded-tcpip";
pub const DIRECT_TCPIP: &str = "direct-tcpip";

/// AMT's own services, which it asks the server to forward.
pub mod port {
    /// WS-Management over HTTP and HTTPS (power, inventory, the web UI on 16992).
    pub const WSMAN: u32 = 16992;
    pub const WSMAN_TLS: u32 = 16993;
    /// Redirection (KVM, serial over LAN, IDE-R) over TCP and TLS.
    pub const REDIRECTION: u32 = 16994;
    pub const REDIRECTION_TLS: u32 = 16995;
    /// RMCP and secure RMCP.
    pub const RMCP: u32 = 623;
    pub const RMCP_SECURE: u32 = 664;
    /// AMT's own VNC server (KVM without the redirection protocol).
    pub const VNC: u32 = 5900;
}

/// Message type numbers (the first byte of every message).
pub mod kind {
    pub const DISCONNECT: u8 = 1;
    pub const SERVICE_REQUEST: u8 = 5;
    pub const SERVICE_ACCEPT: u8 = 6;
    pub const USERAUTH_REQUEST: u8 = 50;
    pub const USERAUTH_FAILURE: u8 = 51;
    pub const USERAUTH_SUCCESS: u8 = 52;
    pub const GLOBAL_REQUEST: u8 = 80;
    pub const REQUEST_SUCCESS: u8 = 81;
    pub const REQUEST_FAILURE: u8 = 82;
    pub const CHANNEL_OPEN: u8 = 90;
    pub const CHANNEL_OPEN_CONFIRMATION: u8 = 91;
    pub const CHANNEL_OPEN_FAILURE: u8 = 92;
    pub const CHANNEL_WINDOW_ADJUST: u8 = 93;
    pub const CHANNEL_DATA: u8 = 94;
    pub const CHANNEL_CLOSE: u8 = 97;
    pub const PROTOCOL_VERSION: u8 = 192;
    pub const KEEPALIVE_REQUEST: u8 = 208;
    pub const KEEPALIVE_REPLY: u8 = 209;
    pub const KEEPALIVE_OPTIONS_REQUEST: u8 = 210;
    pub const KEEPALIVE_OPTIONS_REPLY: u8 = 211;
}

#[cfg(test)]
mod mps_tests;
#[cfg(test)]
mod tests;
