//! [`ApfMessage`]: APF's messages as data, and their bytes. All integers are big-endian; a string
//! is a u32 length and its bytes.

use super::kind;

/// An AMT machine's UUID as it sends it: 16 bytes, the first three fields little-endian (a
/// Microsoft GUID), which is how AMT and its tools print it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AmtUuid(pub [u8; 16]);

impl std::fmt::Display for AmtUuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9]
        )?;
        b[10..].iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl AmtUuid {
    /// Reads the printed form back (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, either case), which
    /// is also how the machine's SMBIOS UUID reads in `/sys/class/dmi/id/product_uuid`.
    pub fn parse(text: &str) -> Option<AmtUuid> {
        let text = text.trim();
        let groups: Vec<&str> = text.split('-').collect();
        if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
            return None;
        }
        let mut printed = [0u8; 16];
        let digits: String = groups.concat();
        // `from_str_radix` alone would take a sign.
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        for (i, byte) in printed.iter_mut().enumerate() {
            *byte = u8::from_str_radix(digits.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        // The first three fields are printed byte-reversed (see `Display`).
        let p = printed;
        Some(AmtUuid([
            p[3], p[2], p[1], p[0], p[5], p[4], p[7], p[6], p[8], p[9], p[10], p[11], p[12], p[13],
            p[14], p[15],
        ]))
    }
}

impl std::fmt::Debug for AmtUuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AmtUuid({self})")
    }
}

/// A CIRA password, kept out of `Debug` output and so out of logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

/// One APF message. Which side sends which is in each variant's comment ("AMT" is the client,
/// "MPS" this server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApfMessage {
    /// AMT's first message: its APF version (1.0), why it connected, and who it is.
    ProtocolVersion {
        major: u32,
        minor: u32,
        trigger: u32,
        uuid: AmtUuid,
    },
    /// AMT asks for a service (`auth@…`, then `pfwd@…`); the MPS accepts it.
    ServiceRequest {
        service: String,
    },
    ServiceAccept {
        service: String,
    },
    /// AMT logs in; the MPS answers success or failure.
    UserauthRequest {
        user: String,
        service: String,
        method: String,
        password: Password,
    },
    UserauthFailure,
    UserauthSuccess,
    /// AMT asks the MPS to forward one of its ports (`tcpip-forward`), or to stop.
    GlobalRequest {
        request: String,
        want_reply: bool,
        address: String,
        port: u32,
    },
    /// `udp-send-to@amt.intel.com`: AMT sends a datagram through the MPS (read so the connection
    /// can go on; not acted on).
    UdpSendTo {
        address: String,
        port: u32,
        origin_address: String,
        origin_port: u32,
        data: Vec<u8>,
    },
    /// The answer to a global request; `port` for a `tcpip-forward` (the MPS sends it).
    RequestSuccess {
        port: Option<u32>,
    },
    RequestFailure,
    /// Either side opens a channel (the MPS opens `forwarded-tcpip` to one of AMT's ports).
    ChannelOpen {
        channel_type: String,
        sender: u32,
        window: u32,
        max_packet: u32,
        target_address: String,
        target_port: u32,
        origin_address: String,
        origin_port: u32,
    },
    ChannelOpenConfirmation {
        recipient: u32,
        sender: u32,
        window: u32,
        max_packet: u32,
    },
    ChannelOpenFailure {
        recipient: u32,
        reason: u32,
    },
    /// The receiver may take `bytes` more on the channel.
    ChannelWindowAdjust {
        recipient: u32,
        bytes: u32,
    },
    ChannelData {
        recipient: u32,
        data: Vec<u8>,
    },
    ChannelClose {
        recipient: u32,
    },
    Disconnect {
        reason: u32,
    },
    KeepaliveRequest {
        cookie: u32,
    },
    KeepaliveReply {
        cookie: u32,
    },
    /// The MPS tells AMT how often to send keepalives (seconds) and its timeout.
    KeepaliveOptionsRequest {
        interval: u32,
        timeout: u32,
    },
    KeepaliveOptionsReply {
        interval: u32,
        timeout: u32,
    },
}

/// Appends `message`'s bytes to `out`. Strings and data longer than the protocol's bounds are
/// the caller's bug (this code only sends what it made).
fn encode(message: &ApfMessage, out: &mut Vec<u8>) {
    use ApfMessage as M;
    match message {
        M::ProtocolVersion {
            major,
            minor,
            trigger,
            uuid,
        } => {
            out.push(kind::PROTOCOL_VERSION);
            put_u32s(out, &[*major, *minor, *trigger]);
            out.extend_from_slice(&uuid.0);
            out.extend_from_slice(&[0; 64]);
        }
        M::ServiceRequest { service } => {
            out.push(kind::SERVICE_REQUEST);
            put_str(out, service);
        }
        M::ServiceAccept { service } => {
            out.push(kind::SERVICE_ACCEPT);
            put_str(out, service);
        }
        M::UserauthRequest {
            user,
            service,
            method,
            password,
        } => {
            out.push(kind::USERAUTH_REQUEST);
            put_str(out, user);
            put_str(out, service);
            put_str(out, method);
            // SSH's "change password" flag, always false.
            out.push(0);
            put_str(out, &password.0);
        }
        M::UserauthFailure => {
            // The methods that may continue, and two zero bytes, as AMT has been seen to accept.
            out.push(kind::USERAUTH_FAILURE);
            put_str(out, super::PASSWORD_METHOD);
            out.extend_from_slice(&[0, 0]);
        }
        M::UserauthSuccess => out.push(kind::USERAUTH_SUCCESS),
        M::GlobalRequest {
            request,
            want_reply,
            address,
            port,
        } => {
            out.push(kind::GLOBAL_REQUEST);
            put_str(out, request);
            out.push(u8::from(*want_reply));
            put_str(out, address);
            put_u32s(out, &[*port]);
        }
        M::UdpSendTo {
            address,
            port,
            origin_address,
            origin_port,
            data,
        } => {
            out.push(kind::GLOBAL_REQUEST);
            put_str(out, super::UDP_SEND_TO);
            out.push(0);
            put_str(out, address);
            put_u32s(out, &[*port]);
            put_str(out, origin_address);
            put_u32s(out, &[*origin_port]);
            put_bytes(out, data);
        }
        M::RequestSuccess { port } => {
            out.push(kind::REQUEST_SUCCESS);
            if let Some(port) = port {
                put_u32s(out, &[*port]);
            }
        }
        M::RequestFailure => out.push(kind::REQUEST_FAILURE),
        M::ChannelOpen {
            channel_type,
            sender,
            window,
            max_packet,
            target_address,
            target_port,
            origin_address,
            origin_port,
        } => {
            out.push(kind::CHANNEL_OPEN);
            put_str(out, channel_type);
            put_u32s(out, &[*sender, *window, *max_packet]);
            put_str(out, target_address);
            put_u32s(out, &[*target_port]);
            put_str(out, origin_address);
            put_u32s(out, &[*origin_port]);
        }
        M::ChannelOpenConfirmation {
            recipient,
            sender,
            window,
            max_packet,
        } => {
            out.push(kind::CHANNEL_OPEN_CONFIRMATION);
            put_u32s(out, &[*recipient, *sender, *window, *max_packet]);
        }
        M::ChannelOpenFailure { recipient, reason } => {
            // Then SSH's description and language tag, both empty.
            out.push(kind::CHANNEL_OPEN_FAILURE);
            put_u32s(out, &[*recipient, *reason, 0, 0]);
        }
        M::ChannelWindowAdjust { recipient, bytes } => {
            out.push(kind::CHANNEL_WINDOW_ADJUST);
            put_u32s(out, &[*recipient, *bytes]);
        }
        M::ChannelData { recipient, data } => {
            out.push(kind::CHANNEL_DATA);
            put_u32s(out, &[*recipient]);
            put_bytes(out, data);
        }
        M::ChannelClose { recipient } => {
            out.push(kind::CHANNEL_CLOSE);
            put_u32s(out, &[*recipient]);
        }
        M::Disconnect { reason } => {
            out.push(kind::DISCONNECT);
            put_u32s(out, &[*reason]);
            out.extend_from_slice(&[0, 0]);
        }
        M::KeepaliveRequest { cookie } => {
            out.push(kind::KEEPALIVE_REQUEST);
            put_u32s(out, &[*cookie]);
        }
        M::KeepaliveReply { cookie } => {
            out.push(kind::KEEPALIVE_REPLY);
            put_u32s(out, &[*cookie]);
        }
        M::KeepaliveOptionsRequest { interval, timeout } => {
            out.push(kind::KEEPALIVE_OPTIONS_REQUEST);
            put_u32s(out, &[*interval, *timeout]);
        }
        M::KeepaliveOptionsReply { interval, timeout } => {
            out.push(kind::KEEPALIVE_OPTIONS_REPLY);
            put_u32s(out, &[*interval, *timeout]);
        }
    }
}

impl ApfMessage {
    /// Appends the message's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode(self, out);
    }

    /// The message's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode(self, &mut out);
        out
    }
}

fn put_u32s(out: &mut Vec<u8>, values: &[u32]) {
    for value in values {
        out.extend_from_slice(&value.to_be_bytes());
    }
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put_bytes(out, text.as_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("APF fields are bounded far below 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}
