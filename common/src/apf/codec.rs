//! [`Decoder`]: APF messages out of a byte stream. TLS hands over bytes in pieces of any size, so
//! a message may arrive split or several at once. Every length field is checked against its bound
//! as soon as it is read, before the decoder waits for the bytes it announces, so a peer can make
//! it hold at most one largest message plus what one read brought.

use super::message::{AmtUuid, ApfMessage, Password};
use super::{CANCEL_TCPIP_FORWARD, MAX_CHANNEL_DATA, MAX_STRING, TCPIP_FORWARD, UDP_SEND_TO, kind};

/// The most one `udp-send-to` may carry (a UDP datagram).
const MAX_DATAGRAM: usize = 65_535;

/// Which end is reading. The two read REQUEST_SUCCESS differently: the MPS answers AMT's
/// `tcpip-forward` with the port, while the MPS itself sends AMT no global requests, so a
/// success it reads carries nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The server, reading what AMT sends.
    Mps,
    /// AMT (or a simulated client), reading what the server sends.
    Amt,
}

/// Why a stream of APF stopped making sense. The connection ends after any of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApfError {
    #[error("unknown APF message type {0}")]
    UnknownType(u8),
    #[error("{message}: the {field} is {len} bytes, more than {max}")]
    TooLong {
        message: &'static str,
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{message}: the {field} is not UTF-8")]
    NotUtf8 {
        message: &'static str,
        field: &'static str,
    },
    #[error("GLOBAL_REQUEST {0:?} is not one this server reads")]
    UnknownRequest(String),
}

/// Reads messages out of the bytes pushed into it.
#[derive(Debug)]
pub struct Decoder {
    side: Side,
    buffer: Vec<u8>,
}

impl Decoder {
    pub fn new(side: Side) -> Decoder {
        Decoder {
            side,
            buffer: Vec::new(),
        }
    }

    /// Bytes as they came off the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole message, `None` until its last byte is in. After an error the stream is
    /// beyond repair: close the connection.
    pub fn next_message(&mut self) -> Result<Option<ApfMessage>, ApfError> {
        if self.buffer.is_empty() {
            return Ok(None);
        }
        let mut reader = Reader {
            bytes: &self.buffer,
            at: 0,
        };
        match read_message(&mut reader, self.side) {
            Ok(message) => {
                let used = reader.at;
                self.buffer.drain(..used);
                Ok(Some(message))
            }
            Err(Stop::More) => Ok(None),
            Err(Stop::Bad(error)) => Err(error),
        }
    }

    /// Bytes held, waiting for the rest of a message.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }
}

/// Why a read stopped: the message is not all in yet, or it is wrong.
enum Stop {
    More,
    Bad(ApfError),
}

impl From<ApfError> for Stop {
    fn from(error: ApfError) -> Stop {
        Stop::Bad(error)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], Stop> {
        let end = self.at.checked_add(len).ok_or(Stop::More)?;
        let slice = self.bytes.get(self.at..end).ok_or(Stop::More)?;
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, Stop> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, Stop> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length-prefixed field, refused as soon as its length says it is over `max`.
    fn bytes(
        &mut self,
        message: &'static str,
        field: &'static str,
        max: usize,
    ) -> Result<&'a [u8], Stop> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(Stop::Bad(ApfError::TooLong {
                message,
                field,
                len,
                max,
            }));
        }
        self.take(len)
    }

    fn string(&mut self, message: &'static str, field: &'static str) -> Result<String, Stop> {
        let bytes = self.bytes(message, field, MAX_STRING)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| Stop::Bad(ApfError::NotUtf8 { message, field }))
    }
}

fn read_message(r: &mut Reader<'_>, side: Side) -> Result<ApfMessage, Stop> {
    use ApfMessage as M;
    let message = match r.u8()? {
        kind::PROTOCOL_VERSION => {
            let (major, minor, trigger) = (r.u32()?, r.u32()?, r.u32()?);
            let mut uuid = [0; 16];
            uuid.copy_from_slice(r.take(16)?);
            // Reserved.
            r.take(64)?;
            M::ProtocolVersion {
                major,
                minor,
                trigger,
                uuid: AmtUuid(uuid),
            }
        }
        kind::SERVICE_REQUEST => M::ServiceRequest {
            service: r.string("SERVICE_REQUEST", "service")?,
        },
        kind::SERVICE_ACCEPT => M::ServiceAccept {
            service: r.string("SERVICE_ACCEPT", "service")?,
        },
        kind::USERAUTH_REQUEST => {
            const NAME: &str = "USERAUTH_REQUEST";
            let user = r.string(NAME, "user name")?;
            let service = r.string(NAME, "service")?;
            let method = r.string(NAME, "method")?;
            // SSH's "change password" flag.
            r.u8()?;
            let password = Password(r.string(NAME, "password")?);
            M::UserauthRequest {
                user,
                service,
                method,
                password,
            }
        }
        kind::USERAUTH_FAILURE => {
            r.bytes("USERAUTH_FAILURE", "methods", MAX_STRING)?;
            r.take(2)?;
            M::UserauthFailure
        }
        kind::USERAUTH_SUCCESS => M::UserauthSuccess,
        kind::GLOBAL_REQUEST => read_global_request(r)?,
        kind::REQUEST_SUCCESS => M::RequestSuccess {
            port: match side {
                Side::Amt => Some(r.u32()?),
                Side::Mps => None,
            },
        },
        kind::REQUEST_FAILURE => M::RequestFailure,
        kind::CHANNEL_OPEN => {
            const NAME: &str = "CHANNEL_OPEN";
            let channel_type = r.string(NAME, "channel type")?;
            let (sender, window, max_packet) = (r.u32()?, r.u32()?, r.u32()?);
            let target_address = r.string(NAME, "target address")?;
            let target_port = r.u32()?;
            let origin_address = r.string(NAME, "origin address")?;
            let origin_port = r.u32()?;
            M::ChannelOpen {
                channel_type,
                sender,
                window,
                max_packet,
                target_address,
                target_port,
                origin_address,
                origin_port,
            }
        }
        kind::CHANNEL_OPEN_CONFIRMATION => M::ChannelOpenConfirmation {
            recipient: r.u32()?,
            sender: r.u32()?,
            window: r.u32()?,
            max_packet: r.u32()?,
        },
        kind::CHANNEL_OPEN_FAILURE => {
            let (recipient, reason) = (r.u32()?, r.u32()?);
            r.bytes("CHANNEL_OPEN_FAILURE", "description", MAX_STRING)?;
            r.bytes("CHANNEL_OPEN_FAILURE", "language", MAX_STRING)?;
            M::ChannelOpenFailure { recipient, reason }
        }
        kind::CHANNEL_WINDOW_ADJUST => M::ChannelWindowAdjust {
            recipient: r.u32()?,
            bytes: r.u32()?,
        },
        kind::CHANNEL_DATA => {
            let recipient = r.u32()?;
            let data = r.bytes("CHANNEL_DATA", "data", MAX_CHANNEL_DATA)?.to_vec();
            M::ChannelData { recipient, data }
        }
        kind::CHANNEL_CLOSE => M::ChannelClose {
            recipient: r.u32()?,
        },
        kind::DISCONNECT => {
            let reason = r.u32()?;
            r.take(2)?;
            M::Disconnect { reason }
        }
        kind::KEEPALIVE_REQUEST => M::KeepaliveRequest { cookie: r.u32()? },
        kind::KEEPALIVE_REPLY => M::KeepaliveReply { cookie: r.u32()? },
        kind::KEEPALIVE_OPTIONS_REQUEST => M::KeepaliveOptionsRequest {
            interval: r.u32()?,
            timeout: r.u32()?,
        },
        kind::KEEPALIVE_OPTIONS_REPLY => M::KeepaliveOptionsReply {
            interval: r.u32()?,
            timeout: r.u32()?,
        },
        other => return Err(Stop::Bad(ApfError::UnknownType(other))),
    };
    Ok(message)
}

fn read_global_request(r: &mut Reader<'_>) -> Result<ApfMessage, Stop> {
    const NAME: &str = "GLOBAL_REQUEST";
    let request = r.string(NAME, "request")?;
    let want_reply = r.u8()? != 0;
    if request == TCPIP_FORWARD || request == CANCEL_TCPIP_FORWARD {
        let address = r.string(NAME, "address")?;
        let port = r.u32()?;
        return Ok(ApfMessage::GlobalRequest {
            request,
            want_reply,
            address,
            port,
        });
    }
    if request == UDP_SEND_TO {
        let address = r.string(NAME, "address")?;
        let port = r.u32()?;
        let origin_address = r.string(NAME, "origin address")?;
        let origin_port = r.u32()?;
        let data = r.bytes(NAME, "datagram", MAX_DATAGRAM)?.to_vec();
        return Ok(ApfMessage::UdpSendTo {
            address,
            port,
            origin_address,
            origin_port,
            data,
        });
    }
    // Its fields are unknown, and so is where the next message starts.
    Err(Stop::Bad(ApfError::UnknownRequest(request)))
}
